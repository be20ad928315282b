"""A Whisper encoder in PyTorch with Hugging Face's module names.

Mirrors transformers' WhisperEncoder (pre-LayerNorm blocks, exact erf GELU,
k_proj without bias, q scaled by head_dim**-0.5 after the projection), so a
torch.onnx.export of it has the structure of the encoders HF optimum exports.
"""
import math

import torch
from torch import nn


class WhisperAttention(nn.Module):
    def __init__(self, d_model, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.q_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _shape(self, x, seq, bsz):
        return x.view(bsz, seq, self.heads, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, x):
        bsz, seq, d = x.size()
        q = self.q_proj(x) * self.scaling
        k = self._shape(self.k_proj(x), -1, bsz)
        v = self._shape(self.v_proj(x), -1, bsz)
        shape = (bsz * self.heads, -1, self.head_dim)
        q = self._shape(q, seq, bsz).view(*shape)
        k = k.reshape(*shape)
        v = v.reshape(*shape)
        w = torch.bmm(q, k.transpose(1, 2))
        w = nn.functional.softmax(w, dim=-1)
        out = torch.bmm(w, v)
        out = out.view(bsz, self.heads, seq, self.head_dim).transpose(1, 2)
        out = out.reshape(bsz, seq, d)
        return self.out_proj(out)


class WhisperEncoderLayer(nn.Module):
    def __init__(self, d_model, heads, ffn):
        super().__init__()
        self.self_attn = WhisperAttention(d_model, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn)
        self.fc2 = nn.Linear(ffn, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)

    def forward(self, x):
        r = x
        x = self.self_attn(self.self_attn_layer_norm(x))
        x = r + x
        r = x
        x = self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))
        return r + x


def sinusoids(length, channels, max_timescale=10000):
    """Whisper's positional table: [sin | cos] of log-spaced timescales."""
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class WhisperEncoder(nn.Module):
    """slice_positions adds embed_positions.weight[:seq] (newer transformers
    releases) instead of the whole table, so shorter inputs trace."""

    def __init__(self, d_model, layers, heads, ffn, n_mels, positions, slice_positions=False):
        super().__init__()
        self.slice_positions = slice_positions
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(positions, d_model)
        self.layers = nn.ModuleList(
            [WhisperEncoderLayer(d_model, heads, ffn) for _ in range(layers)])
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, input_features):
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x))
        x = x.permute(0, 2, 1)
        if self.slice_positions:
            x = x + self.embed_positions.weight[: x.shape[1]]
        else:
            x = x + self.embed_positions.weight
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


def build(cfg, seed, sinusoidal=False):
    """A seeded encoder; every parameter (LayerNorm too) gets distinct random
    values so a mis-mapped tensor cannot go unnoticed."""
    torch.manual_seed(seed)
    m = WhisperEncoder(cfg["d_model"], cfg["encoder_layers"], cfg["encoder_attention_heads"],
                       cfg["encoder_ffn_dim"], cfg["num_mel_bins"], cfg["max_source_positions"])
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif name == "embed_positions.weight":
                if sinusoidal:
                    p.copy_(sinusoids(*p.shape))
                else:
                    p.copy_(0.5 * torch.randn_like(p))
    return m.eval()


def export(model, path, opset, frames, n_mels, dynamic_frames=False):
    x = torch.randn(1, n_mels, frames)
    axes = {"input_features": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}}
    if dynamic_frames:
        axes = {"input_features": {0: "batch_size", 2: "frames"}, "last_hidden_state": {0: "batch_size", 1: "positions"}}
    torch.onnx.export(
        model, (x,), path, opset_version=opset,
        input_names=["input_features"], output_names=["last_hidden_state"],
        dynamic_axes=axes, do_constant_folding=True)
