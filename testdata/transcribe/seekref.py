#!/usr/bin/python3
"""seekref.py — a PyTorch reference of openai/whisper's transcribe() seek loop
WITH timestamps, for encoder/transcribe's TestReferenceSeek.

  /usr/bin/python3 testdata/transcribe/seekref.py SIZE MODEL_DIR OUT.json [SECONDS]

SIZE is gen_whisper_hf.py's (tiny, tiny.en, base): the model is rebuilt from
its seed (the weights of MODEL_DIR/model.safetensors, checked tensor by
tensor). The audio is clips.mjs's longClip (jfk, 5 s silence, jfk, 10 s
noise, repeated, cut at SECONDS, default 305).

The loop is Whisper's (written from its rules): language en, task
transcribe, temperature 0 only (greedy, no fallback), no no-speech skip,
condition on previous text (<|startofprev|> and the last 223 tokens since
the last reset), sample_len 224 and the 448-token context, logit filters in
Whisper's order: SuppressBlank, SuppressTokens (generation_config.json's
lists), ApplyTimestampRules (no <|notimestamps|>, pairs, monotonic with
nonzero-length segments, first token a timestamp <= max_initial_timestamp
index, timestamp forced when their total probability beats every text
token); segments at consecutive timestamps, the next seek at the last
timestamp (or the window's end after a single final timestamp); a segment
whose start equals its end or whose text is blank is kept with no tokens.
One deliberate difference from openai/whisper, as in the Go side and Hugging
Face's feature extractor: each window's log-mel is computed from its own
30 s of audio (zero-padded after the end of the file) and normalised on its
own, where Whisper computes the whole file's at once and pads the last
window's features.

It writes per window the seek, the sampled ids and per step the top-1 minus
top-2 filtered logit (for near-ties), and the segments.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "testdata", "gen"))
import gen_whisper_hf as gen  # noqa: E402
import mel_reference  # noqa: E402
import whisper_hf as hf  # noqa: E402

RATE, HOP, N_FRAMES, N_CTX, SAMPLE_LEN = 16000, 160, 3000, 448, 224
PRECISION = 2 * HOP / RATE  # 0.02 s a timestamp step


def read_wav(path):
    """A 16 kHz mono float32 RIFF/WAVE file (testdata/mel/jfk_16k.wav)."""
    b = open(path, "rb").read()
    assert b[:4] == b"RIFF" and b[8:12] == b"WAVE", path + ": expected RIFF/WAVE"
    off, fmt = 12, None
    while off + 8 <= len(b):
        cid, size = b[off:off + 4], struct.unpack("<I", b[off + 4:off + 8])[0]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHI", b[off + 8:off + 16])
        elif cid == b"data":
            assert fmt == (3, 1, RATE), "%s: expected 16 kHz mono float32, found %s" % (path, fmt)
            return np.frombuffer(b[off + 8:off + 8 + size], dtype="<f4").copy()
        off += 8 + size + (size & 1)
    raise ValueError(path + ": no data chunk")


def noise(n, a, seed):
    """The Go test's noise: a 32-bit LCG, float32 arithmetic."""
    out = np.empty(n, dtype=np.float32)
    a32, two, one, scale = np.float32(a), np.float32(2), np.float32(1), np.float32(1 << 24)
    s = seed
    for i in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = a32 * (np.float32(s >> 8) / scale * two - one)
    return out


def long_clip(jfk, seconds):
    out, k = [], 0
    n = seconds * RATE
    while sum(len(p) for p in out) < n:
        out += [jfk, np.zeros(5 * RATE, np.float32), jfk, noise(10 * RATE, 0.3, 7 + k)]
        k += 1
    return np.concatenate(out)[:n]


def load_model(size, model_dir):
    cfg, ids = gen.config(size)
    m = hf.build(cfg, gen.SIZES[size]["seed"]).eval()
    check_weights(m, os.path.join(model_dir, "model.safetensors"))
    return m, ids


def check_weights(m, path):
    """Every tensor of the rebuilt model equals model.safetensors' (F32)."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    state = gen.state(m)
    for name, t in state.items():
        h = header[name]
        lo, hi = h["data_offsets"]
        got = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype="<f4").reshape(h["shape"])
        if not np.array_equal(got, t.detach().numpy()):
            sys.exit("seekref.py: %s of %s differs from the model rebuilt from its seed" % (name, path))


class Rules:
    """Whisper's logit filters of one window (sample_begin = prompt length)."""

    def __init__(self, gc, ids):
        self.begin = gc["begin_suppress_tokens"]
        self.suppress = gc["suppress_tokens"]
        self.max_initial = gc["max_initial_timestamp_index"]
        self.eot, self.tb, self.notimestamps = ids["eot"], ids["timestamp_begin"], ids["notimestamps"]

    def apply(self, logits, sampled):
        inf = float("-inf")
        if not sampled:
            logits[self.begin] = inf
        logits[self.suppress] = inf
        tb = self.tb
        logits[self.notimestamps] = inf
        last = len(sampled) >= 1 and sampled[-1] >= tb
        penultimate = len(sampled) < 2 or sampled[-2] >= tb
        if last:
            if penultimate:
                logits[tb:] = inf
            else:
                logits[:self.eot] = inf
        stamps = [t for t in sampled if t >= tb]
        if stamps:
            limit = stamps[-1] if last and not penultimate else stamps[-1] + 1
            logits[tb:limit] = inf
        if not sampled:
            logits[:tb] = inf
            logits[tb + self.max_initial + 1:] = inf
        lp = torch.log_softmax(logits.double(), dim=-1)
        if torch.logsumexp(lp[tb:], dim=-1) > lp[:tb].max():
            logits[:tb] = inf


def decode_window(m, enc, prompt, rules, eot):
    """Greedy with the KV cache: the sampled ids (<|endoftext|> included when
    reached) and the margin of each step."""
    cross = m.model.decoder.cross_kv(enc)
    layers = len(cross)
    logits, past = m.logits(torch.tensor([prompt]), [None] * layers, cross)
    tokens, margins = list(prompt), []
    sampled = []
    for _ in range(SAMPLE_LEN):
        row = logits[0, -1].clone()
        rules.apply(row, sampled)
        top = torch.topk(row, 2)
        gap = float(top.values[0] - top.values[1])
        margins.append(round(gap, 4) if np.isfinite(gap) else 1e9)  # one token allowed: no tie
        tok = int(torch.argmax(row))
        sampled.append(tok)
        tokens.append(tok)
        if tok == eot or len(tokens) > N_CTX:
            break
        logits, past = m.logits(torch.tensor([[tok]]), past, cross)
    return sampled, margins


def text_blank(tokens, ranks, eot):
    b = b"".join(ranks[t] for t in tokens if t < eot)
    return b.decode("utf-8", errors="replace").strip() == ""


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in gen.SIZES:
        sys.exit("usage: seekref.py {%s} MODEL_DIR OUT.json [SECONDS]" % " | ".join(gen.SIZES))
    size, model_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds = int(sys.argv[4]) if len(sys.argv) == 5 else 305
    torch.set_num_threads(int(os.environ.get("SEEKREF_THREADS", "2")))
    m, ids = load_model(size, model_dir)
    gc = json.load(open(os.path.join(model_dir, "generation_config.json")))
    rules = Rules(gc, ids)
    ranks = {r: b for b, r in gen.ranks_of(size).items()}
    eot, tb = ids["eot"], ids["timestamp_begin"]
    sot = [ids["sot"]] + ([ids["lang"]["en"], ids["transcribe"]] if gen.multilingual(size) else [])
    filters = np.load(os.path.join(ROOT, "..", "shared", "data", "whisper", "mel_filters.npz"))["mel_80"]
    pcm = long_clip(read_wav(os.path.join(ROOT, "testdata", "mel", "jfk_16k.wav")), seconds)
    content = len(pcm) // HOP
    seek, all_tokens, windows, segments = 0, [], [], []
    while seek < content:
        seg_size = min(N_FRAMES, content - seek)
        mel = mel_reference.log_mel(pcm[seek * HOP:seek * HOP + N_FRAMES * HOP], filters, torch.float64)
        with torch.no_grad():
            enc = m.model.encoder(torch.from_numpy(mel.astype(np.float32))[None])
            prev = all_tokens[-(N_CTX // 2 - 1):]
            prompt = ([ids["startofprev"]] + prev if prev else []) + sot
            sampled, margins = decode_window(m, enc, prompt, rules, eot)
        windows.append({"seek": seek, "ids": sampled, "margins": margins})
        toks = sampled[:-1] if sampled and sampled[-1] == eot else sampled
        new, seek = split(toks, tb, seek, seg_size)
        for s in new:
            if s["start"] == s["end"] or text_blank(s["tokens"], ranks, eot):
                s["tokens"] = []
            all_tokens += s["tokens"]
        segments += new
        print("seek %d: %d ids, %d segments, next %d" % (windows[-1]["seek"], len(sampled), len(new), seek),
              file=sys.stderr)
    json.dump({"about": __doc__.split("\n\n")[2].replace("\n", " "), "size": size, "seconds": seconds,
               "torch": torch.__version__, "windows": windows, "segments": segments}, open(out, "w"))
    print("%d s: %d windows, %d segments" % (seconds, len(windows), len(segments)))


def split(toks, tb, seek, seg_size):
    """Whisper's segmentation of one window; returns the segments and the next seek."""
    offset = seek * HOP / RATE
    ts = [t >= tb for t in toks]
    single = ts[-2:] == [False, True]
    cuts = [i for i in range(1, len(toks)) if ts[i - 1] and ts[i]]
    if cuts:
        if single:
            cuts.append(len(toks))
        segs, last = [], 0
        for c in cuts:
            piece = toks[last:c]
            segs.append({"seek": seek, "start": offset + (piece[0] - tb) * PRECISION,
                         "end": offset + (piece[-1] - tb) * PRECISION, "tokens": piece})
            last = c
        if single:
            return segs, seek + seg_size
        return segs, seek + (toks[last - 1] - tb) * 2
    duration = seg_size * HOP / RATE
    stamps = [t for t in toks if t >= tb]
    if stamps and stamps[-1] != tb:
        duration = (stamps[-1] - tb) * PRECISION
    return [{"seek": seek, "start": offset, "end": offset + duration, "tokens": toks}], seek + seg_size


if __name__ == "__main__":
    main()
