"""A whole Whisper model in PyTorch, shaped and named like Hugging Face's
WhisperForConditionalGeneration: model.encoder.* (whisper_module's encoder),
model.decoder.{embed_tokens, embed_positions, layers.N.{self_attn,
encoder_attn, self_attn_layer_norm, encoder_attn_layer_norm, fc1, fc2,
final_layer_norm}, layer_norm} and proj_out tied to embed_tokens.

The decoder mirrors transformers' WhisperDecoder: learned positional table,
pre-LayerNorm blocks (causal self-attention with a key/value cache,
cross-attention over the encoder output with k_proj without bias, exact
GELU MLP), final LayerNorm, logits through the tied embedding. The wrappers
at the end have the inputs and outputs of onnx-community's
decoder_model.onnx and decoder_with_past_model.onnx.
"""
import torch
from torch import nn

import whisper_module as wm

# Whisper's languages in token order (openai/whisper tokenizer.LANGUAGES);
# large-v3 appends "yue".
LANGUAGES = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi",
    "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la",
    "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy",
    "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be",
    "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su",
]


def special_ids(n_text, languages=LANGUAGES):
    """Whisper's special tokens follow the n_text ranks of the BPE vocabulary
    in a fixed order; returns their ids and the vocabulary size."""
    eot = n_text
    lang0 = eot + 2
    t = lang0 + len(languages)
    ids = dict(eot=eot, sot=eot + 1, translate=t, transcribe=t + 1, startoflm=t + 2, startofprev=t + 3,
               nospeech=t + 4, notimestamps=t + 5, timestamp_begin=t + 6)
    ids["lang"] = {code: lang0 + i for i, code in enumerate(languages)}
    ids["vocab_size"] = ids["timestamp_begin"] + 1501
    return ids


class Attention(nn.Module):
    """transformers' WhisperAttention: q scaled after the projection, k_proj
    without bias; heads side by side in d_model."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.q_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.keep = False  # keep the last attention weights (self.weights [b, h, t, keys])

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [b, h, t, hd]

    def kv(self, x):
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def attend(self, x, k, v, mask=None):
        b, t, d = x.shape
        q = self.split(self.q_proj(x) * self.scaling)
        w = torch.matmul(q, k.transpose(2, 3))
        if mask is not None:
            w = w.masked_fill(mask, float("-inf"))
        w = torch.softmax(w, dim=-1)
        if self.keep:
            self.weights = w
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, d)
        return self.out_proj(o)


class DecoderLayer(nn.Module):
    def __init__(self, d_model, heads, ffn):
        super().__init__()
        self.self_attn = Attention(d_model, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.encoder_attn = Attention(d_model, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn)
        self.fc2 = nn.Linear(ffn, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)

    def forward(self, x, past_k, past_v, cross_k, cross_v):
        """x [b, t, d] at positions past..past+t−1; returns x and the self
        cache extended by t keys and values."""
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.kv(h)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        t, n = x.shape[1], k.shape[2]
        qpos = torch.arange(t) + (n - t)
        mask = torch.arange(n)[None, :] > qpos[:, None]  # causal: key after query
        x = x + self.self_attn.attend(h, k, v, mask)
        x = x + self.encoder_attn.attend(self.encoder_attn_layer_norm(x), cross_k, cross_v)
        x = x + self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))
        return x, k, v


class WhisperDecoder(nn.Module):
    def __init__(self, vocab, d_model, layers, heads, ffn, positions=448):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d_model)
        self.embed_positions = nn.Embedding(positions, d_model)
        self.layers = nn.ModuleList([DecoderLayer(d_model, heads, ffn) for _ in range(layers)])
        self.layer_norm = nn.LayerNorm(d_model)

    def cross_kv(self, enc):
        return [l.encoder_attn.kv(enc) for l in self.layers]

    def forward(self, input_ids, past, cross):
        """past: per layer (k, v) or None; cross: per layer (k, v). Returns
        the final hidden state and the extended self caches."""
        start = 0 if past[0] is None else past[0][0].shape[2]
        t = input_ids.shape[1]
        x = self.embed_tokens(input_ids) + self.embed_positions.weight[start:start + t]
        present = []
        for layer, p, c in zip(self.layers, past, cross):
            x, k, v = layer(x, p[0] if p else None, p[1] if p else None, c[0], c[1])
            present.append((k, v))
        return self.layer_norm(x), present


class WhisperModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = wm.WhisperEncoder(cfg["d_model"], cfg["encoder_layers"], cfg["encoder_attention_heads"],
                                         cfg["encoder_ffn_dim"], cfg["num_mel_bins"], cfg["max_source_positions"])
        self.decoder = WhisperDecoder(cfg["vocab_size"], cfg["d_model"], cfg["decoder_layers"],
                                      cfg["decoder_attention_heads"], cfg["decoder_ffn_dim"],
                                      cfg["max_target_positions"])


class WhisperForConditionalGeneration(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.model = WhisperModel(cfg)
        self.proj_out = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False)
        self.proj_out.weight = self.model.decoder.embed_tokens.weight  # tied, as in HF

    def logits(self, input_ids, past, cross):
        h, present = self.model.decoder(input_ids, past, cross)
        return self.proj_out(h), present


class Export(nn.Module):
    """Holds the model's modules under their own names (model.decoder.*,
    proj_out), so the exported initializers are named as in HF's exports."""

    def __init__(self, m):
        super().__init__()
        self.model, self.proj_out = m.model, m.proj_out

    def logits(self, input_ids, past, cross):
        h, present = self.model.decoder(input_ids, past, cross)
        return self.proj_out(h), present


class DecoderNoPast(Export):
    """decoder_model.onnx: input_ids, encoder_hidden_states → logits and
    present.N.{decoder,encoder}.{key,value}."""

    def forward(self, input_ids, encoder_hidden_states):
        cross = self.model.decoder.cross_kv(encoder_hidden_states)
        logits, present = self.logits(input_ids, [None] * len(cross), cross)
        out = [logits]
        for (k, v), (ck, cv) in zip(present, cross):
            out += [k, v, ck, cv]
        return tuple(out)


class DecoderWithPast(Export):
    """decoder_with_past_model.onnx: input_ids and
    past_key_values.N.{decoder,encoder}.{key,value} → logits and
    present.N.decoder.{key,value}."""

    def forward(self, input_ids, *pkv):
        n = len(pkv) // 4
        past = [(pkv[4 * i], pkv[4 * i + 1]) for i in range(n)]
        cross = [(pkv[4 * i + 2], pkv[4 * i + 3]) for i in range(n)]
        logits, present = self.logits(input_ids, past, cross)
        out = [logits]
        for k, v in present:
            out += [k, v]
        return tuple(out)


def build(cfg, seed):
    """A seeded model with activations of realistic scale: LayerNorm gains
    1 ± 0.1 and distinct biases everywhere (a mis-mapped tensor cannot go
    unnoticed), q/k projections doubled so attention is not uniform, token
    embeddings of std 1/√d and a final LayerNorm gain of 4 ± 0.4, so that
    logits spread over several units (std ≈ 4) without the tied embedding
    making every step predict its own input token, Whisper's
    sinusoidal encoder positions; then every parameter rounded to BF16
    (kept as float32), so a BF16 decoder sees exactly the reference's
    weights."""
    torch.manual_seed(seed)
    m = WhisperForConditionalGeneration(cfg)
    d = cfg["d_model"]
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name == "model.decoder.layer_norm.weight":
                p.copy_(4 * (1 + 0.1 * torch.randn_like(p)))
            elif name.endswith("layer_norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(2)
            elif name == "model.encoder.embed_positions.weight":
                p.copy_(wm.sinusoids(*p.shape))
            elif name == "model.decoder.embed_positions.weight":
                p.copy_(0.2 * torch.randn_like(p))
            elif name == "model.decoder.embed_tokens.weight":
                p.copy_(torch.randn_like(p) / d ** 0.5)
        for p in m.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return m.eval()
