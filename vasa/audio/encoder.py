"""``A_enc``: the audio content encoder (our stand-in for the paper's Wav2Vec2), streamable.

Stacked log-mel frames (25 fps) -> LayerNorm + linear -> a *look-ahead* convolution (the only
module that sees the future: frames ``t .. t + L``) -> causal temporal convolutions -> causal
transformer layers whose attention sees the last ``attn_context`` frames (a learned relative-position
bias per head, no absolute positions, so a window of the stream computes what the whole clip does)
-> ``A`` (``B x T x width``). Output frame ``t`` depends on input frames ``t - receptive_past .. t + L``.

Pretraining heads (content supervision from the corpus): frame phoneme classes (vocabulary built
from the corpus, :mod:`vasa.audio.train`) and viseme classes (:data:`vasa.synth.visemes.VISEMES`).

>>> enc = AudioEncoder(audio_config("S", n_phonemes=60))
>>> out = enc(feats)            # feats B x T x 320 -> {"features": B x T x 192, "phoneme_logits", "viseme_logits"}
>>> A = enc.encode(feats)       # B x T x 192, the condition A of the motion DiT
>>> A = enc.encode_audio(audio) # T x 192 from 16 kHz samples (offline; streaming: vasa.audio.stream)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vasa.audio.config import AudioConfig, audio_config
from vasa.audio.features import log_mel_frames


class LookaheadConv(nn.Module):
    """Residual conv over frames ``t .. t + L`` (``L = lookahead``): the encoder's only future access."""

    def __init__(self, width: int, lookahead: int):
        super().__init__()
        self.lookahead = lookahead
        self.conv = nn.Conv1d(width, width, lookahead + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x T x C -> B x T x C
        y = F.pad(x.transpose(1, 2), (0, self.lookahead))  # B x C x (T + L)
        return x + self.conv(y).transpose(1, 2)


class CausalConvBlock(nn.Module):
    """Pre-norm residual depthwise-separable causal conv (conformer-lite): frame t sees t-k+1 .. t."""

    def __init__(self, width: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.kernel = kernel
        self.depthwise = nn.Conv1d(width, width, kernel, groups=width)
        self.pointwise = nn.Linear(width, 2 * width)  # GLU
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x T x C
        y = F.pad(self.norm(x).transpose(1, 2), (self.kernel - 1, 0))
        y = self.depthwise(y).transpose(1, 2)  # B x T x C
        return x + self.drop(F.glu(self.pointwise(F.gelu(y)), dim=-1))


class CausalAttentionBlock(nn.Module):
    """Pre-norm transformer layer; frame ``i`` attends to frames ``i - context .. i`` with a learned
    relative-position bias per head."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, context: int, dropout: float):
        super().__init__()
        self.heads, self.context = heads, context
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, context + 1))  # distance 0..context
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)

    def attn_bias(self, t: int, device: torch.device) -> torch.Tensor:
        """``heads x T x T`` additive bias: relative bias inside the causal window, -inf outside."""
        i = torch.arange(t, device=device)
        dist = i[:, None] - i[None, :]  # T x T, query - key
        ok = (dist >= 0) & (dist <= self.context)
        bias = self.rel_bias[:, dist.clamp(0, self.context)]  # H x T x T
        return bias.masked_fill(~ok, float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x T x C
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.attn_bias(t, x.device).to(q.dtype),
                                           dropout_p=self.drop.p if self.training else 0.0)  # B x H x T x c/H
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))
        return x + self.drop(self.mlp(self.norm2(x)))


class AudioEncoder(nn.Module):
    """Log-mel frames ``B x T x F`` -> audio features ``A`` ``B x T x width`` (+ phoneme/viseme logits)."""

    def __init__(self, cfg: AudioConfig | str = "S"):
        super().__init__()
        cfg = audio_config(cfg) if isinstance(cfg, str) else cfg
        self.cfg = cfg
        self.in_norm = nn.LayerNorm(cfg.feature_dim)
        self.inp = nn.Linear(cfg.feature_dim, cfg.width)
        self.lookahead = LookaheadConv(cfg.width, cfg.lookahead)
        self.convs = nn.ModuleList(CausalConvBlock(cfg.width, cfg.conv_kernel, cfg.dropout)
                                   for _ in range(cfg.conv_layers))
        self.blocks = nn.ModuleList(CausalAttentionBlock(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.attn_context,
                                                         cfg.dropout) for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(cfg.width)
        self.phoneme_head = nn.Linear(cfg.width, cfg.n_phonemes) if cfg.n_phonemes else None
        self.viseme_head = nn.Linear(cfg.width, cfg.n_visemes) if cfg.n_visemes else None

    @property
    def dim(self) -> int:
        """Width of ``A``."""
        return self.cfg.width

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """``B x T x F`` stacked log-mel -> ``A``: ``B x T x width``."""
        x = self.lookahead(self.inp(self.in_norm(feats)))  # B x T x C
        for conv in self.convs:
            x = conv(x)
        for block in self.blocks:
            x = block(x)
        return self.out_norm(x)

    @torch.no_grad()
    def encode_audio(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Offline ``A`` of one clip: 16 kHz samples ``(S,)`` -> ``T x width`` (eval mode, CPU tensor)."""
        was = self.training
        self.eval()
        try:
            p = next(self.parameters())
            feats = log_mel_frames(audio, self.cfg).to(p.device, p.dtype)  # T x F
            return self.encode(feats[None])[0].cpu()
        finally:
            self.train(was)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features and logits: ``features`` B x T x C, ``phoneme_logits`` B x T x P, ``viseme_logits`` B x T x V."""
        a = self.encode(feats)
        out = {"features": a}
        if self.phoneme_head is not None:
            out["phoneme_logits"] = self.phoneme_head(a)
        if self.viseme_head is not None:
            out["viseme_logits"] = self.viseme_head(a)
        return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
