#!/usr/bin/python3
"""Writes whole Whisper models with seeded random weights in the Hugging Face
layout (config.json, model.safetensors, generation_config.json,
preprocessor_config.json) and their decoders exported by torch.onnx.export
in the onnx-community layout (onnx/decoder_model.onnx,
onnx/decoder_with_past_model.onnx, opset 14, and the two merged into
onnx/decoder_model_merged.onnx with an If on use_cache_branch), plus the inputs of the
decoder check (decoder.json: forced token sequences; enc.npy: encoder hidden
states of the model's own encoder on real speech and noise; torch_<i>.npy:
the PyTorch model's logits, step by step with its cache; torch_align_<i>.npy:
its cross-attention weights of the alignment heads, for sequence 1).
testdata/ort/decoder_golden.js adds ONNX Runtime's logits (ort_<i>.npy).

  /usr/bin/python3 testdata/gen/gen_whisper_hf.py micro
      # testdata/models/hf-micro (HF files and onnx/ committed: the three decoder
      # exports are ~1.7 MB each, decoder_model_fp16.onnx (fp16 weights) ~0.9 MB; model.safetensors and encoder_model.onnx come out
      # byte-identical) and its check in testdata/golden/hf-micro (committed; a rerun
      # rewrites its .npy with float-level noise: `git checkout -- testdata/golden/hf-micro`)
  /usr/bin/python3 testdata/gen/gen_whisper_hf.py SIZE OUT_DIR
      # SIZE: tiny | tiny.en | base (real vocabulary; tiny.en: GPT-2 English-only); check in OUT_DIR/check

Every weight is rounded to BF16 and stored as float32 (see whisper_hf.build).
Seeds are fixed, so the outputs are reproducible.
"""
import base64
import json
import os
import struct
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whisper_hf as hf  # noqa: E402
import whisper_module as wm  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# openai/whisper's non-speech suppression list for the multilingual GPT-2
# based vocabulary, as openai/whisper-base's generation_config.json has it
# (text tokens, then sot, translate, transcribe, startoflm, startofprev, nospeech).
SUPPRESS_MULTILINGUAL = [
    1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93, 359, 503, 522, 542,
    873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253, 3268, 3536, 3846, 3961, 4183, 4667,
    6585, 6647, 7273, 9061, 9383, 10428, 10929, 11938, 12033, 12331, 12562, 13793, 14157, 14635, 15265, 15618,
    16553, 16604, 18362, 18956, 20075, 21675, 22520, 26130, 26161, 26435, 28279, 29464, 31650, 32302, 32470,
    36865, 42863, 47425, 49870, 50254, 50258, 50358, 50359, 50360, 50361, 50362,
]

# Model shapes. micro: a byte-level vocabulary (256 ranks, no merges) with
# Whisper's 1,608 special tokens after it, so every special-token rule has
# its place at a committable size. tiny, base: openai/whisper-tiny and -base
# shapes with the real multilingual vocabulary (51,865).
SIZES = {
    "micro": dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=256,
                  decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=256, n_text=256,
                  alignment_heads=[[1, 0], [1, 2], [1, 3]], seed=448),
    "tiny": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                 decoder_layers=4, decoder_attention_heads=6, decoder_ffn_dim=1536, n_text=50257,
                 alignment_heads=[[2, 2], [3, 0], [3, 2], [3, 3], [3, 4], [3, 5]], seed=384),
    # tiny.en: the tiny shape with the English-only GPT-2 vocabulary (51,864)
    "tiny.en": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                    decoder_layers=4, decoder_attention_heads=6, decoder_ffn_dim=1536, n_text=50256,
                    alignment_heads=[[2, 2], [3, 0], [3, 2], [3, 3], [3, 4], [3, 5]], seed=385),
    "base": dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048,
                 decoder_layers=6, decoder_attention_heads=8, decoder_ffn_dim=2048, n_text=50257,
                 alignment_heads=[[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]], seed=512),
}


def config(size):
    s = SIZES[size]
    ids = hf.special_ids(s["n_text"])
    cfg = {k: v for k, v in s.items() if k not in ("n_text", "alignment_heads", "seed")}
    cfg.update(num_mel_bins=80, max_source_positions=1500, max_target_positions=448, vocab_size=ids["vocab_size"])
    return cfg, ids


def suppress_tokens(size, ids):
    if SIZES[size]["n_text"] == 50257:
        return SUPPRESS_MULTILINGUAL
    if SIZES[size]["n_text"] == 50256:
        # English-only: the single-character symbols of the GPT-2 vocabulary
        # (a subset of Whisper's list; both sides of a test read this file)
        ranks = ranks_of(size)
        return sorted(ranks[c.encode()] for c in '"#()*+/:;<=>@[\\]^_`{|}~') + [
            ids["sot"], ids["translate"], ids["transcribe"], ids["startoflm"], ids["startofprev"], ids["nospeech"]]
    # byte vocabulary: the single-byte symbols Whisper suppresses, then the
    # same special tokens as the multilingual list
    symbols = sorted(set(ord(c) for c in '"#()*+/:;<=>@[\\]^_`{|}~'))
    return symbols + [ids["sot"], ids["translate"], ids["transcribe"], ids["startoflm"], ids["startofprev"],
                      ids["nospeech"]]


def hf_config(size, cfg, ids):
    """config.json with transformers.WhisperConfig's fields."""
    return {
        "_name_or_path": "xdna-whisper/testdata/whisper-%s-random" % size,
        "activation_dropout": 0.0, "activation_function": "gelu", "apply_spec_augment": False,
        "architectures": ["WhisperForConditionalGeneration"], "attention_dropout": 0.0,
        "begin_suppress_tokens": [220 if size != "micro" else 32, ids["eot"]],
        "bos_token_id": ids["eot"], "classifier_proj_size": 256,
        "d_model": cfg["d_model"], "decoder_attention_heads": cfg["decoder_attention_heads"],
        "decoder_ffn_dim": cfg["decoder_ffn_dim"], "decoder_layerdrop": 0.0, "decoder_layers": cfg["decoder_layers"],
        "decoder_start_token_id": ids["sot"], "dropout": 0.0,
        "encoder_attention_heads": cfg["encoder_attention_heads"], "encoder_ffn_dim": cfg["encoder_ffn_dim"],
        "encoder_layerdrop": 0.0, "encoder_layers": cfg["encoder_layers"], "eos_token_id": ids["eot"],
        "init_std": 0.02, "is_encoder_decoder": True, "mask_feature_length": 10, "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0, "mask_time_length": 10, "mask_time_min_masks": 2, "mask_time_prob": 0.05,
        "max_length": 448, "max_source_positions": cfg["max_source_positions"],
        "max_target_positions": cfg["max_target_positions"], "median_filter_width": 7, "model_type": "whisper",
        "num_hidden_layers": cfg["encoder_layers"], "num_mel_bins": cfg["num_mel_bins"], "pad_token_id": ids["eot"],
        "scale_embedding": False, "torch_dtype": "float32", "transformers_version": "4.27.0.dev0",
        "use_cache": True, "use_weighted_layer_sum": False, "vocab_size": cfg["vocab_size"],
    }


def multilingual(size):
    return SIZES[size]["n_text"] != 50256


def generation_config(size, ids):
    """generation_config.json with the fields of openai/whisper-base's."""
    return {
        "alignment_heads": SIZES[size]["alignment_heads"],
        "begin_suppress_tokens": [220 if size != "micro" else 32, ids["eot"]],
        "bos_token_id": ids["eot"],
        "decoder_start_token_id": ids["sot"],
        "eos_token_id": ids["eot"],
        "forced_decoder_ids": [[1, None], [2, ids["transcribe"]]] if multilingual(size) else [[1, ids["notimestamps"]]],
        "is_multilingual": multilingual(size),
        "lang_to_id": {"<|%s|>" % code: i for code, i in ids["lang"].items()} if multilingual(size) else {},
        "max_initial_timestamp_index": 50,
        "max_length": 448,
        "no_timestamps_token_id": ids["notimestamps"],
        "pad_token_id": ids["eot"],
        "prev_sot_token_id": ids["startofprev"],
        "return_timestamps": False,
        "suppress_tokens": suppress_tokens(size, ids),
        "task_to_id": {"transcribe": ids["transcribe"], "translate": ids["translate"]} if multilingual(size) else {},
        "transformers_version": "4.31.0.dev0",
    }


PREPROCESSOR = {
    "chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80,
    "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
    "padding_value": 0.0, "processor_class": "WhisperProcessor", "return_attention_mask": False,
    "sampling_rate": 16000,
}


def write_json(path, v):
    with open(path, "w") as f:
        json.dump(v, f, indent=2)
        f.write("\n")


def write_safetensors(path, tensors):
    """The safetensors format: u64 header length, JSON header, data (F32,
    little-endian, C order), header padded with spaces to 8 bytes."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy().astype("<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def state(m):
    """HF's saved state: every parameter but the tied proj_out.weight."""
    return {k: v for k, v in m.state_dict().items() if k != "proj_out.weight"}


def export_decoders(m, cfg, out):
    os.makedirs(out, exist_ok=True)
    d, h, layers = cfg["d_model"], cfg["decoder_attention_heads"], cfg["decoder_layers"]
    hd = d // h
    ids = torch.tensor([[1, 2, 3]], dtype=torch.long)
    enc = torch.randn(1, 20, d)
    present, axes = [], {"input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                         "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length / 2"},
                         "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    for i in range(layers):
        for kind in ("decoder", "encoder"):
            for kv in ("key", "value"):
                n = "present.%d.%s.%s" % (i, kind, kv)
                present.append(n)
                axes[n] = {0: "batch_size", 2: "decoder_sequence_length" if kind == "decoder" else "encoder_sequence_length_out"}
    with torch.no_grad():
        torch.onnx.export(hf.DecoderNoPast(m), (ids, enc), os.path.join(out, "decoder_model.onnx"), opset_version=14,
                          input_names=["input_ids", "encoder_hidden_states"], output_names=["logits"] + present,
                          dynamic_axes=axes, do_constant_folding=True)
    past, pnames, axes = [], [], {"input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                                  "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    outs = ["logits"]
    for i in range(layers):
        for kind, n in (("decoder", 3), ("encoder", 20)):
            for kv in ("key", "value"):
                name = "past_key_values.%d.%s.%s" % (i, kind, kv)
                pnames.append(name)
                past.append(torch.randn(1, h, n, hd))
                axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length" if kind == "decoder" else "encoder_sequence_length_out"}
        for kv in ("key", "value"):
            name = "present.%d.decoder.%s" % (i, kv)
            outs.append(name)
            axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length + 1"}
    with torch.no_grad():
        torch.onnx.export(hf.DecoderWithPast(m), (ids[:, :1], *past), os.path.join(out, "decoder_with_past_model.onnx"),
                          opset_version=14, input_names=["input_ids"] + pnames, output_names=outs,
                          dynamic_axes=axes, do_constant_folding=True)
    for f in ("decoder_model.onnx", "decoder_with_past_model.onnx"):
        onnx.checker.check_model(os.path.join(out, f))
    merge_decoders(out)


def merge_decoders(out):
    """onnx/decoder_model_merged.onnx as HF optimum lays it out: the inputs of
    both exports (input_ids, encoder_hidden_states, every past_key_values.*)
    plus use_cache_branch (bool [1]), and one If on it: then decoder_with_past
    (the encoder key/values passed through as presents), else decoder_model.
    The initializers of both, deduplicated by value, live in the outer graph."""
    a = onnx.load(os.path.join(out, "decoder_model.onnx"))
    b = onnx.load(os.path.join(out, "decoder_with_past_model.onnx"))
    inits, by_value, names = [], {}, set()

    def hoist(g, prefix):
        rename = {}
        for t in g.initializer:
            arr = numpy_helper.to_array(t)
            key = (t.data_type, tuple(t.dims), arr.tobytes())
            if key not in by_value:
                name = t.name if t.name not in names else prefix + t.name
                names.add(name)
                by_value[key] = name
                inits.append(numpy_helper.from_array(arr, name))
            rename[t.name] = by_value[key]
        return rename

    def branch(g, prefix, passthrough):
        rename = hoist(g, prefix)
        outer = {i.name for i in g.input}
        local = lambda x: x if x == "" or x in outer else rename.get(x, prefix + x)
        nodes = []
        for n in g.node:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = prefix + n.name
            for k, x in enumerate(n.input):
                c.input[k] = local(x)
            for k, x in enumerate(n.output):
                c.output[k] = local(x)
            nodes.append(c)
        outs = {o.name: o for o in g.output}
        result = []
        for name in OUTPUTS:
            if name in outs:
                vi = onnx.ValueInfoProto()
                vi.CopyFrom(outs[name])
                vi.name = local(name)
                result.append(vi)
            else:  # an encoder present of the cached branch: the past passes through
                src = passthrough(name)
                nodes.append(helper.make_node("Identity", [src], [prefix + name], name=prefix + "passthrough/" + name))
                vi = onnx.ValueInfoProto()
                vi.CopyFrom(next(i for i in g.input if i.name == src))
                vi.name = prefix + name
                result.append(vi)
        return helper.make_graph(nodes, prefix.strip("/"), [], result)

    OUTPUTS = [o.name for o in a.graph.output]
    no_past = branch(a.graph, "no_past/", None)
    with_past = branch(b.graph, "with_past/", lambda n: n.replace("present.", "past_key_values."))
    flag = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    inputs = [i for i in a.graph.input] + [i for i in b.graph.input if i.name != "input_ids"] + [flag]
    node = helper.make_node("If", ["use_cache_branch"], OUTPUTS, name="optimum::if",
                            then_branch=with_past, else_branch=no_past)
    graph = helper.make_graph([node], "merged", inputs, list(a.graph.output), inits)
    merged = helper.make_model(graph, opset_imports=a.opset_import, producer_name="xdna-whisper testdata")
    merged.ir_version = a.ir_version
    path = os.path.join(out, "decoder_model_merged.onnx")
    onnx.save(merged, path)
    onnx.checker.check_model(path)


def fp16_weights(src, dst):
    """An fp16 copy of a decoder export (no If) with fp16 weights: every
    float initializer stored as FLOAT16 under a new name and a Cast to FLOAT
    producing the old one (fp16 storage, fp32 compute), for the staging of
    fp16 decoders (encoder/convert)."""
    m = onnx.load(src)
    g = m.graph
    casts, keep = [], []
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT:
            keep.append(t)
            continue
        arr = numpy_helper.to_array(t).astype(np.float16)
        keep.append(numpy_helper.from_array(arr, t.name + "_fp16"))
        casts.append(helper.make_node("Cast", [t.name + "_fp16"], [t.name], to=TensorProto.FLOAT,
                                      name="/fp16/Cast_" + str(len(casts))))
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.save(m, dst)
    onnx.checker.check_model(dst)


def export_encoder(m, cfg, out):
    """onnx/encoder_model.onnx as onnx-community lays it out (input_features
    [batch, n_mels, 3000] -> last_hidden_state), for transformers.js and for
    our staging (encoder/convert)."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "encoder_model.onnx")
    with torch.no_grad():
        wm.export(m.model.encoder, path, 14, 2 * cfg["max_source_positions"], cfg["num_mel_bins"])
    onnx.checker.check_model(path)


def bytes_to_unicode():
    """GPT-2's byte -> printable character table of byte-level BPE files."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def ranks_of(size):
    """The ordinary tokens' bytes -> rank: single bytes (rank = byte) for
    micro, Whisper's gpt2.tiktoken for .en, multilingual.tiktoken otherwise
    (its empty rank 50,256 has no token)."""
    if SIZES[size]["n_text"] == 256:
        return {bytes([b]): b for b in range(256)}
    ranks = {}
    name = "multilingual.tiktoken" if multilingual(size) else "gpt2.tiktoken"
    with open(os.path.join(ROOT, "..", "shared", "data", "whisper", name)) as f:
        for line in f:
            tok, rank = line.split()
            b = base64.b64decode(tok)
            if b:
                ranks[b] = int(rank)
    return ranks


def merges_of(ranks):
    """The BPE merge of each multi-byte token, in rank order: byte-level BPE
    on its bytes with only lower ranks leaves exactly two parts."""
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = [bytes([b]) for b in tok]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        assert len(parts) == 2, (tok, rank, parts)
        merges.append(parts)
    return merges


def special_names(ids):
    names = {ids["eot"]: "<|endoftext|>", ids["sot"]: "<|startoftranscript|>", ids["translate"]: "<|translate|>",
             ids["transcribe"]: "<|transcribe|>", ids["startoflm"]: "<|startoflm|>",
             ids["startofprev"]: "<|startofprev|>", ids["nospeech"]: "<|nospeech|>",
             ids["notimestamps"]: "<|notimestamps|>"}
    for code, i in ids["lang"].items():
        names[i] = "<|%s|>" % code
    for k in range(1501):
        names[ids["timestamp_begin"] + k] = "<|%.2f|>" % (0.02 * k)
    return names


def write_tokenizer(size, ids, out):
    """tokenizer.json (byte-level BPE, GPT-2 pre-tokenisation, Whisper's
    added tokens) and tokenizer_config.json, as Hugging Face's Whisper
    repositories have them, so transformers.js can load the fixture."""
    ranks = ranks_of(size)
    u = bytes_to_unicode()
    spell = lambda b: "".join(u[x] for x in b)
    vocab = {spell(b): r for b, r in ranks.items()}
    added = []
    for i, name in sorted(special_names(ids).items()):
        vocab[name] = i
        added.append({"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": byte_level, "post_processor": dict(byte_level, trim_offsets=False), "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": [spell(a) + " " + spell(b) for a, b in merges_of(ranks)]},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    eot = "<|endoftext|>"
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "WhisperTokenizer", "model_max_length": 1024, "add_prefix_space": False,
        "errors": "replace", "bos_token": eot, "eos_token": eot, "unk_token": eot, "pad_token": eot})


def check_inputs(m, size, ids, out):
    """check/enc.npy: the model's encoder on the jfk log-mel and on seeded
    noise [2, 1500, d]; check/decoder.json: forced sequences over them."""
    os.makedirs(out, exist_ok=True)
    mel = np.load(os.path.join(ROOT, "testdata", "mel", "jfk_80.npy")).astype(np.float32)
    g = torch.Generator().manual_seed(80)
    noise = 3 * torch.rand(80, 3000, generator=g) - 1.5
    with torch.no_grad():
        enc = m.model.encoder(torch.stack([torch.from_numpy(mel), noise]))
    np.save(os.path.join(out, "enc.npy"), enc.numpy().astype(np.float32))
    text = list(range(32, 32 + 40)) if size == "micro" else list(range(1000, 1000 + 40 * 97, 97))
    ts = ids["timestamp_begin"]
    seqs = [
        # transcribe English without timestamps: 4-token prompt, then text and eot
        {"enc": 0, "prompt": [ids["sot"], ids["lang"]["en"], ids["transcribe"], ids["notimestamps"]],
         "tokens": text[:14] + [ids["eot"]]},
        # conditioned on previous text, translate from German with timestamps
        {"enc": 1, "prompt": [ids["startofprev"]] + text[20:26] + [ids["sot"], ids["lang"]["de"], ids["translate"]],
         "tokens": [ts] + text[5:13] + [ts + 50, ts + 50] + text[30:35]},
        # the first sequence's tokens over the noise window
        {"enc": 1, "prompt": [ids["sot"], ids["lang"]["en"], ids["transcribe"], ids["notimestamps"]],
         "tokens": text[:10]},
    ]
    write_json(os.path.join(out, "decoder.json"), {
        "about": "forced decoder sequences: prompt (prefilled at once) then tokens (one step each) over enc.npy[enc]",
        "sequences": seqs})


def torch_check(m, out, heads):
    """Logits of the PyTorch model itself, step by step with its cache, for
    the check sequences (torch_<i>.npy [rows, vocab]): a second reference
    next to ONNX Runtime's; and, for sequence 1, the cross-attention weights
    of the alignment heads (torch_align_1.npy [heads, rows, positions])."""
    spec = json.load(open(os.path.join(out, "decoder.json")))
    enc = torch.from_numpy(np.load(os.path.join(out, "enc.npy")))
    dec = m.model.decoder
    for layer in dec.layers:
        layer.encoder_attn.keep = True
    for i, s in enumerate(spec["sequences"]):
        cross = dec.cross_kv(enc[s["enc"]:s["enc"] + 1])
        align = [[] for _ in heads]

        def keep():
            for j, (l, h) in enumerate(heads):
                align[j].append(dec.layers[l].encoder_attn.weights[0, h])

        with torch.no_grad():
            logits, past = m.logits(torch.tensor([s["prompt"]]), [None] * len(cross), cross)
            rows = [logits[0]]
            keep()
            for t in s["tokens"][:-1]:
                logits, past = m.logits(torch.tensor([[t]]), past, cross)
                rows.append(logits[0])
                keep()
        np.save(os.path.join(out, "torch_%d.npy" % i), torch.cat(rows).numpy().astype(np.float32))
        if i == 1:  # the prompt with previous text, timestamps, translate (one sequence keeps the goldens small)
            np.save(os.path.join(out, "torch_align_%d.npy" % i),
                    torch.stack([torch.cat(a) for a in align]).numpy().astype(np.float32))


def generate(size, out, check):
    cfg, ids = config(size)
    m = hf.build(cfg, SIZES[size]["seed"])
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), hf_config(size, cfg, ids))
    write_json(os.path.join(out, "generation_config.json"), generation_config(size, ids))
    write_json(os.path.join(out, "preprocessor_config.json"), PREPROCESSOR)
    write_safetensors(os.path.join(out, "model.safetensors"), state(m))
    export_decoders(m, cfg, os.path.join(out, "onnx"))
    if size == "micro":
        fp16_weights(os.path.join(out, "onnx", "decoder_model.onnx"), os.path.join(out, "onnx", "decoder_model_fp16.onnx"))
    export_encoder(m, cfg, os.path.join(out, "onnx"))
    write_tokenizer(size, ids, out)
    check_inputs(m, size, ids, check)
    torch_check(m, check, SIZES[size]["alignment_heads"])
    print("%s: %s (vocab %d, d_model %d, %d decoder layers)" % (size, out, cfg["vocab_size"], cfg["d_model"],
                                                                  cfg["decoder_layers"]))


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "micro":
        generate("micro", os.path.join(ROOT, "testdata", "models", "hf-micro"),
                 os.path.join(ROOT, "testdata", "golden", "hf-micro"))
    elif len(sys.argv) == 3 and sys.argv[1] in SIZES:
        generate(sys.argv[1], sys.argv[2], os.path.join(sys.argv[2], "check"))
    else:
        sys.exit("usage: gen_whisper_hf.py micro | gen_whisper_hf.py {%s} OUT_DIR" % " | ".join(SIZES))
