#!/usr/bin/python3
"""Reference log-mel spectrograms for encoder/mel, computed with torch.stft.

Run from the repository root with Debian's python3-torch (1.13) and sox:

    /usr/bin/python3 testdata/gen/mel_reference.py

It writes testdata/mel/:
  jfk_16k.wav            ../shared/data/whisper/jfk.flac as 16 kHz mono float32 WAV (sox)
  <signal>_<n_mels>.npy  the log-mel [n_mels, 3000] float32 of each signal

Whisper's log-mel (audio.py): pad or trim to 480000 samples; STFT n_fft 400,
hop 160, periodic Hann window, centred with reflect padding; drop the last
frame; |X|^2; filters @ power with mel_filters.npz; log10(max(mel, 1e-10));
clamp below at global max - 8; (x + 4) / 4. The reference is computed in
float64 (the exact value); it also prints how far Whisper's own float32
computation is from it, for scale.

The synthetic signals are defined by formulas that encoder/mel's test
evaluates the same way in Go (float64 math, rounded to float32), so no
signal is committed except jfk.
"""
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "testdata", "mel")
SHARED = os.path.join(ROOT, "..", "shared", "data", "whisper")
RATE, N_FFT, HOP, N_SAMPLES = 16000, 400, 160, 480000


def lcg_noise(n, seed):
    """Uniform noise in [-0.5, 0.5) from a 32-bit LCG (Numerical Recipes constants)."""
    out = np.empty(n, dtype=np.float64)
    x = seed
    for i in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out[i] = x / 4294967296.0 - 0.5
    return out


def synthetic():
    """The synthetic test signals, float64 formulas rounded to float32."""
    t30 = np.arange(30 * RATE, dtype=np.float64) / RATE
    chirp = 0.5 * np.sin(2 * np.pi * (50 * t30 + (8000 - 50) / (2 * 30) * t30 ** 2))
    t20 = np.arange(20 * RATE, dtype=np.float64) / RATE
    tones = (0.3 * np.sin(2 * np.pi * 440 * t20) + 0.2 * np.sin(2 * np.pi * 1234.5 * t20 + 1)
             + 0.1 * np.cos(2 * np.pi * 5000 * t20) + 0.01 * lcg_noise(len(t20), 42))
    t07 = np.arange(int(0.7 * RATE), dtype=np.float64) / RATE
    burst = 0.8 * np.exp(-3 * t07) * np.sin(2 * np.pi * 1000 * t07)
    t35 = np.arange(35 * RATE, dtype=np.float64) / RATE
    long = 0.25 * np.sin(2 * np.pi * 300 * t35) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t35))
    return {"chirp": chirp, "tones_noise": tones, "burst": burst, "long": long}


def log_mel(audio, filters, dtype):
    audio = torch.from_numpy(np.asarray(audio, dtype=np.float32)).to(dtype)
    if audio.shape[0] > N_SAMPLES:
        audio = audio[:N_SAMPLES]
    audio = torch.nn.functional.pad(audio, (0, N_SAMPLES - audio.shape[0]))
    window = torch.hann_window(N_FFT, dtype=dtype)
    stft = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(filters).to(dtype) @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).numpy()


def main():
    os.makedirs(OUT, exist_ok=True)
    filters = np.load(os.path.join(SHARED, "mel_filters.npz"))
    wav = os.path.join(OUT, "jfk_16k.wav")
    subprocess.run(["sox", os.path.join(SHARED, "jfk.flac"), "-r", "16000", "-c", "1",
                    "-e", "floating-point", "-b", "32", wav], check=True)
    raw = subprocess.run(["sox", wav, "-t", "f32", "-"], check=True, capture_output=True).stdout
    signals = {"jfk": np.frombuffer(raw, dtype="<f4").astype(np.float64)}
    signals.update(synthetic())
    plan = [("jfk", 80), ("jfk", 128), ("chirp", 80), ("tones_noise", 80), ("burst", 80), ("long", 128)]
    for name, n_mels in plan:
        f = filters[f"mel_{n_mels}"]
        ref = log_mel(signals[name], f, torch.float64)
        f32 = log_mel(signals[name], f, torch.float32)
        path = os.path.join(OUT, f"{name}_{n_mels}.npy")
        tmp = path + ".tmp.npy"
        np.save(tmp, ref.astype(np.float32))
        os.replace(tmp, path)
        print(f"{name}_{n_mels}: shape {ref.shape}, range [{ref.min():.4f}, {ref.max():.4f}], "
              f"Whisper float32 vs float64 max |diff| {np.abs(f32 - ref).max():.2e}", file=sys.stderr)


if __name__ == "__main__":
    main()
