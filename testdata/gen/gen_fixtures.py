#!/usr/bin/python3
"""Generates the staging fixtures with real tools: PyTorch's torch.onnx.export
of a Whisper-encoder-shaped module with Hugging Face's module names, and the
onnx helpers for the fp16, external-data and quantized variants.

  /usr/bin/python3 testdata/gen/gen_fixtures.py fixtures   # testdata/models + the bundled demo model
  /usr/bin/python3 testdata/gen/gen_fixtures.py graphs [SIZE...]  # graph-only exports of every Whisper size
  /usr/bin/python3 testdata/gen/gen_fixtures.py bench OUT  # whisper-base-sized fp32 export (~82 MB)

Needs Debian's python3-torch (1.13) and python3-onnx (1.12); `make fixtures`
runs it. Seeds are fixed, so the outputs are reproducible.
"""
import gzip
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quantize  # noqa: E402
import whisper_module as wm  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.path.join(ROOT, "testdata", "models")
BUNDLED = os.path.join(ROOT, "encoder", "bundled")

# The small fixture: shapes that tell every tensor kind apart except q/k/v/out
# (all [d, d]), which only the graph can tell apart.
TINY = dict(d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
            num_mel_bins=80, max_source_positions=24)
# The bundled demo model: full 30 s windows (3000 frames → 1500 positions).
DEMO = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=256,
            num_mel_bins=80, max_source_positions=1500)
# Every Whisper size (openai/whisper model dims).
SIZES = {
    "tiny": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536, num_mel_bins=80),
    "base": dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048, num_mel_bins=80),
    "small": dict(d_model=768, encoder_layers=12, encoder_attention_heads=12, encoder_ffn_dim=3072, num_mel_bins=80),
    "medium": dict(d_model=1024, encoder_layers=24, encoder_attention_heads=16, encoder_ffn_dim=4096, num_mel_bins=80),
    "large-v2": dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=80),
    "large-v3": dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128),
}
for s in SIZES.values():
    s["max_source_positions"] = 1500


def frames(cfg):
    return 2 * cfg["max_source_positions"]


def export(model, cfg, path, opset):
    wm.export(model, path, opset, frames(cfg), cfg["num_mel_bins"])
    onnx.checker.check_model(path)


def state_npz(model, path):
    np.savez(path, **{k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()})


def canonical_ref(model_onnx, ref):
    """Maps {initializer name: value in source layout} to canonical HF names
    ([out, in] for linear weights) through the MatMul/Conv node names; used
    only to write the expected dequantized values of the quantized fixtures."""
    out = {}
    for n in model_onnx.graph.node:
        for i, x in enumerate(n.input):
            base = x[:-len("_fp32")] if x.endswith("_fp32") else x
            if base not in ref:
                continue
            mod = n.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            if n.op_type == "MatMul":
                out[mod + ".weight"] = ref[base].T.copy()
            elif n.op_type == "Conv" and i == 1:
                out[mod + ".weight"] = ref[base]
    return out


def typed_copy(model, names):
    """Stores the named FLOAT initializers in float_data instead of raw_data."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = []
    for i in m.graph.initializer:
        if i.name in names:
            a = numpy_helper.to_array(i)
            i = helper.make_tensor(i.name, TensorProto.FLOAT, a.shape, a.flatten().tolist(), raw=False)
        inits.append(i)
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)
    return m


def nameless_copy(model):
    """No node names, and the MatMul weights renamed so that their names sort
    against graph order (onnx::MatMul_1000 < onnx::MatMul_999 < ...)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    mats = [i.name for i in m.graph.initializer if i.name.startswith("onnx::MatMul_")]
    rename = {old: "onnx::MatMul_%d" % (1000 - k) for k, old in enumerate(mats)}
    for i in m.graph.initializer:
        i.name = rename.get(i.name, i.name)
    for n in m.graph.node:
        n.name = ""
        for k, x in enumerate(n.input):
            n.input[k] = rename.get(x, x)
    return m


def save(model, name):
    path = os.path.join(MODELS, name)
    onnx.save(model, path)
    onnx.checker.check_model(path)
    return path


class TinyDecoder(torch.nn.Module):
    """A Whisper-decoder-shaped module: token embedding, self and cross attention."""

    def __init__(self, d=32, vocab=50, heads=4):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(vocab, d)
        self.embed_positions = torch.nn.Embedding(16, d)
        self.self_attn = wm.WhisperAttention(d, heads)
        self.encoder_attn_q = torch.nn.Linear(d, d)
        self.layer_norm = torch.nn.LayerNorm(d)

    def forward(self, input_ids, encoder_hidden_states):
        x = self.embed_tokens(input_ids) + self.embed_positions.weight[: input_ids.shape[1]]
        x = x + self.self_attn(x)
        q = self.encoder_attn_q(x)
        w = torch.softmax(q @ encoder_hidden_states.transpose(1, 2), -1)
        return self.layer_norm(x + w @ encoder_hidden_states) @ self.embed_tokens.weight.T


def fixtures():
    os.makedirs(MODELS, exist_ok=True)
    model = wm.build(TINY, seed=20240601)
    state_npz(model, os.path.join(MODELS, "tiny-state.npz"))
    p14 = os.path.join(MODELS, "tiny-op14.onnx")
    export(model, TINY, p14, 14)
    p17 = os.path.join(MODELS, "tiny-op17.onnx")
    export(model, TINY, p17, 17)
    m14 = onnx.load(p14)
    m17 = onnx.load(p17)
    mats17 = [i.name for i in m17.graph.initializer if i.name.startswith("onnx::MatMul_")]
    # opset 17 with some weights in the typed float_data field
    save(typed_copy(m17, {"conv2.weight", "layers.1.fc1.bias", "layer_norm.weight", mats17[0]}), "tiny-op17.onnx")
    # external data: every tensor in tiny-op14-external.onnx_data
    ext = onnx.load(p14)
    data = os.path.join(MODELS, "tiny-op14-external.onnx_data")
    if os.path.exists(data):
        os.remove(data)  # onnx.save appends to an existing data file
    onnx.save(ext, os.path.join(MODELS, "tiny-op14-external.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="tiny-op14-external.onnx_data", size_threshold=0)
    onnx.checker.check_model(os.path.join(MODELS, "tiny-op14-external.onnx"))
    save(nameless_copy(m14), "tiny-op14-nonames.onnx")
    mats14 = [i.name for i in m14.graph.initializer if i.name.startswith("onnx::MatMul_")]
    h, href = quantize.fp16(m14, typed={"conv1.weight", "layers.0.fc2.bias", mats14[1]})
    save(h, "tiny-op14-fp16.onnx")
    fp16ref = {k: v for k, v in href.items() if not k.startswith("onnx::")}
    fp16ref.update(canonical_ref(m14, href))
    np.savez(os.path.join(MODELS, "tiny-op14-fp16-ref.npz"), **fp16ref)
    for name, (qm, ref) in {
        "tiny-int8": quantize.dynamic(m14, TensorProto.INT8, conv=False),
        "tiny-uint8": quantize.dynamic(m14, TensorProto.UINT8, conv=True),
        "tiny-q4": quantize.q4(m14, zero_point_modules=("/fc1/", "/fc2/")),
    }.items():
        save(qm, name + ".onnx")
        np.savez(os.path.join(MODELS, name + "-ref.npz"), **canonical_ref(m14, ref))
        # the same graph as the fp32 export with the dequantized weights: the
        # reference check_quantized.js compares the quantized file against
        deq = onnx.load(p14)
        for i in deq.graph.initializer:
            if i.name in ref:
                i.CopyFrom(numpy_helper.from_array(ref[i.name].astype(np.float32), i.name))
        onnx.save(deq, os.path.join(GEN_TMP, name + "-dequant.onnx"))
    # a block whose FFN disagrees with the rest: the config cannot hold it
    bad = wm.build(TINY, seed=7)
    bad.layers[1].fc1 = torch.nn.Linear(TINY["d_model"], 96)
    bad.layers[1].fc2 = torch.nn.Linear(96, TINY["d_model"])
    export(bad.eval(), TINY, os.path.join(MODELS, "bad-ffn.onnx"), 14)
    # not Whisper encoders
    torch.manual_seed(3)
    dec = TinyDecoder().eval()
    torch.onnx.export(dec, (torch.zeros(1, 5, dtype=torch.long), torch.randn(1, 24, 32)),
                      os.path.join(MODELS, "not-encoder-decoder.onnx"), opset_version=14,
                      input_names=["input_ids", "encoder_hidden_states"], output_names=["logits"])
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)).eval()
    torch.onnx.export(mlp, (torch.randn(1, 16),), os.path.join(MODELS, "not-encoder-mlp.onnx"), opset_version=14,
                      input_names=["x"], output_names=["y"])
    # the bundled demo model (embedded in the binary): full 30 s windows
    os.makedirs(BUNDLED, exist_ok=True)
    demo = wm.build(DEMO, seed=1500, sinusoidal=True)
    export(demo, DEMO, os.path.join(BUNDLED, "whisper-demo.onnx"), 14)
    write_index()


def write_index():
    idx = {
        "generator": "testdata/gen/gen_fixtures.py (torch %s, onnx %s)" % (torch.__version__, onnx.__version__),
        "inputs": {"input_features": "float32 [batch_size, num_mel_bins, 2*max_source_positions]"},
        "outputs": {"last_hidden_state": "float32 [batch_size, max_source_positions, d_model]"},
        "tiny": TINY, "demo": DEMO, "sizes": SIZES,
        "files": {
            "tiny-state.npz": "the PyTorch state dict (float32, HF names) of the tiny model",
            "tiny-op14.onnx": "torch.onnx.export opset 14 (decomposed LayerNorm), raw_data",
            "tiny-op17.onnx": "opset 17 (LayerNormalization); some initializers in float_data",
            "tiny-op14-external.onnx": "opset 14 with every tensor in tiny-op14-external.onnx_data",
            "tiny-op14-nonames.onnx": "opset 14 without node names; MatMul weights renamed against graph order",
            "tiny-op14-fp16.onnx": "FLOAT16 initializers (some in int32_data), Cast to float at use",
            "tiny-op14-fp16-ref.npz": "fp32 values of the fp16 weights (HF names, [out, in])",
            "tiny-int8.onnx": "DynamicQuantizeLinear + MatMulInteger, int8 symmetric weights; convs fp32",
            "tiny-uint8.onnx": "DynamicQuantizeLinear + MatMulInteger/ConvInteger, uint8 asymmetric weights",
            "tiny-q4.onnx": "com.microsoft::MatMulNBits 4-bit block 32; fc1/fc2 with explicit zero points",
            "tiny-*-ref.npz": "dequantized weights (HF names, [out, in]) the stager must reproduce",
            "ort-check.json": "onnxruntime-node outputs of the quantized files vs their dequantized fp32 twins",
            "not-encoder-*.onnx": "valid ONNX models that are not Whisper encoders",
            "bad-ffn.onnx": "a tiny encoder whose block 1 has FFN 96 instead of 128",
            "graphs/whisper-*.onnx.gz": "graph-only exports of every Whisper size (external data absent); medium and large slice the positional table (traced on 20 frames)",
        },
    }
    with open(os.path.join(MODELS, "fixtures.json"), "w") as f:
        json.dump(idx, f, indent=1)
        f.write("\n")


def lazy_init():
    """Skip parameter initialization (graph-only and benchmark exports)."""
    for cls in (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Embedding, torch.nn.LayerNorm):
        cls.reset_parameters = lambda self: None


# Sizes whose graph-only export slices the positional table and is traced
# on a short input: tracing the full 3000 frames through 24-32 wide blocks
# takes hours on a small shared machine; the graph is the same but for the
# Slice and the dynamic frames axis.
SLICED = {"medium", "large-v2", "large-v3"}


def graphs(names=None):
    """Graph-only exports: the real torch.onnx.export graph of every Whisper
    size, tensors pointed at an external-data file that is not kept."""
    out = os.path.join(MODELS, "graphs")
    os.makedirs(out, exist_ok=True)
    lazy_init()
    for name, cfg in SIZES.items():
        if names and name not in names:
            continue
        sliced = name in SLICED
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            model = wm.WhisperEncoder(cfg["d_model"], cfg["encoder_layers"], cfg["encoder_attention_heads"],
                                      cfg["encoder_ffn_dim"], cfg["num_mel_bins"], cfg["max_source_positions"],
                                      slice_positions=sliced).eval()
            with torch.no_grad():  # distinct constants: the exporter merges equal initializers
                for k, p in enumerate(model.parameters()):
                    p.fill_(1 + k)
            path = os.path.join(tmp, "model.onnx")
            wm.export(model, path, 14, 20 if sliced else frames(cfg), cfg["num_mel_bins"], dynamic_frames=sliced)
            del model
            m = onnx.load(path, load_external_data=False)
            data = "whisper-%s.onnx_data" % name
            offset = 0
            for t in m.graph.initializer:
                size = tensor_bytes(t)
                t.ClearField("raw_data")
                del t.external_data[:]
                t.data_location = TensorProto.EXTERNAL
                for k, v in (("location", data), ("offset", str(offset)), ("length", str(size))):
                    e = t.external_data.add()
                    e.key, e.value = k, v
                offset += (size + 4095) // 4096 * 4096
            raw = m.SerializeToString()
            with gzip.GzipFile(os.path.join(out, "whisper-%s.onnx.gz" % name), "wb", mtime=0) as f:
                f.write(raw)
            print("graph %s: %d nodes, %d initializers, payload %.1f MB" % (
                name, len(m.graph.node), len(m.graph.initializer), offset / 1e6))


def tensor_bytes(t):
    n = int(np.prod(t.dims)) if len(t.dims) else 1
    return n * {TensorProto.FLOAT: 4, TensorProto.INT64: 8}[t.data_type]


def bench(out):
    """whisper-base-sized fp32 export with random weights (~82 MB)."""
    cfg = SIZES["base"]
    model = wm.build(cfg, seed=512)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    wm.export(model, tmp, 14, frames(cfg), cfg["num_mel_bins"])
    os.replace(tmp, out)


GEN_TMP = None

if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    if what == "fixtures":
        GEN_TMP = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="xdna-fixtures-")
        os.makedirs(GEN_TMP, exist_ok=True)
        fixtures()
        print("dequantized twins for check_quantized.js in", GEN_TMP)
    elif what == "graphs":
        graphs(sys.argv[2:])
    elif what == "bench":
        bench(sys.argv[2])
    else:
        sys.exit("usage: gen_fixtures.py fixtures [TMPDIR] | graphs [SIZE...] | bench OUT")
