"""``H``: the motion diffusion transformer of VASA-1 (stage 2), predicting ``x0`` for a window.

``H(X_t, t, C)`` with ``X_t`` the noisy motion window (``B x W x D``, D = z_pose + z_dyn dims) and
``C = [X_pre, A_pre; A, g, d, e]`` plus the reference motion ``x_ref``
(:class:`~vasa.motion.conditions.MotionConditions`).

* ``conditioning = "tokens"`` (the paper): the conditions are tokens placed with the noisy motion
  along the time axis -- ``[t, g, d, e, x_ref, X_pre (K), A_pre (K), A (W), X_t (W)]``, 2W + 2K + 5 tokens,
  one transformer encoder, full attention. Audio and motion tokens of the same frame share a learned
  frame-position embedding, token kinds a learned type embedding; the timestep embedding is a token
  and is also added to the noisy motion tokens.
* ``conditioning = "adaln"`` (FLOAT-style ablation): only motion tokens ``[X_pre (K), X_t (W)]``; each
  token is modulated by adaLN-Zero from its frame's condition ``t + g + d + e + A_i`` (``A_pre`` for
  the past tokens), with ``x_ref`` added to every token's condition.

Every condition has a learned null embedding, used where the condition is dropped (CFG, training
dropout) or missing; audio frames past the end of the audio (``audio_mask`` False) get the null
audio embedding too. With ``objective = "regression"`` the same backbone is a deterministic
regressor: ``X_t`` is replaced by zeros and ``t`` by 0, and it is trained with MSE on ``X``.

Motion is normalised inside the generator with the dataset statistics kept as buffers
(``motion_mean``, ``motion_std``), so exported weights carry them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vasa.errors import VasaError
from vasa.motion.conditions import MotionConditions
from vasa.motion.config import MotionConfig, motion_config


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps: ``B`` -> ``B x dim``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class Block(nn.Module):
    """Pre-norm transformer block; with ``adaln`` the norms are modulated per token (adaLN-Zero)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, adaln: bool):
        super().__init__()
        self.heads, self.adaln = heads, adaln
        self.norm1 = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)
        if adaln:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
            nn.init.zeros_(self.modulation[1].weight)  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(self.modulation[1].bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:  # B x N x C
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop.p if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: B x N x C tokens; ``cond``: B x N x C per-token condition (adaln only)."""
        if not self.adaln:
            x = x + self.drop(self.attention(self.norm1(x)))
            return x + self.drop(self.mlp(self.norm2(x)))
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(cond).chunk(6, dim=-1)  # each B x N x C
        x = x + g1 * self.drop(self.attention(self.norm1(x) * (1 + sc1) + sh1))
        return x + g2 * self.drop(self.mlp(self.norm2(x) * (1 + sc2) + sh2))


class MotionDiT(nn.Module):
    """``H(X_t, t, C) -> x0``: B x W x D noisy (normalised) motion -> B x W x D clean motion estimate."""

    def __init__(self, cfg: MotionConfig | str = "S", **overrides):
        super().__init__()
        cfg = motion_config(cfg, **overrides) if isinstance(cfg, str) else cfg
        self.cfg = cfg
        c, d, f, k, w = cfg.width, cfg.motion_dim, cfg.audio_dim, cfg.past, cfg.window
        self.adaln = cfg.conditioning == "adaln"
        # inputs: X_t, X_pre (motion), A / A_pre (audio), g, d, e, t
        self.x_in = nn.Linear(d, c)
        self.pre_in = nn.Linear(d, c)
        self.audio_norm = nn.LayerNorm(f)
        self.a_in = nn.Linear(f, c)
        self.g_in, self.d_in, self.e_in = nn.Linear(2, c), nn.Linear(1, c), nn.Linear(cfg.emotion_dim, c)
        self.r_in = nn.Linear(d, c)  # x_ref
        self.t_mlp = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, c))
        # learned null embeddings (dropped or missing conditions)
        self.null = nn.ParameterDict({n: nn.Parameter(torch.randn(c) * 0.02)
                                      for n in ("audio", "gaze", "distance", "emotion", "x_pre", "a_pre", "ref")})
        self.pos = nn.Parameter(torch.randn(k + w, c) * 0.02)  # frame positions: X_pre / A_pre, then X_t / A
        n_types = 2 if self.adaln else 9  # tokens: t, g, d, e, X_pre, A_pre, A, X_t, x_ref
        self.type_emb = nn.Parameter(torch.randn(n_types, c) * 0.02)
        self.blocks = nn.ModuleList(Block(c, cfg.heads, cfg.mlp_ratio, cfg.dropout, self.adaln)
                                    for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(c, elementwise_affine=not self.adaln)
        if self.adaln:
            self.out_mod = nn.Sequential(nn.SiLU(), nn.Linear(c, 2 * c))
            nn.init.zeros_(self.out_mod[1].weight)
            nn.init.zeros_(self.out_mod[1].bias)
        self.out = nn.Linear(c, d)
        self.register_buffer("motion_mean", torch.zeros(d))
        self.register_buffer("motion_std", torch.ones(d))

    # ------------------------------------------------------------------ normalisation
    def set_motion_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the dataset's per-dimension motion mean / std (``D`` each)."""
        self.motion_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.motion_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:  # ... x D
        return (x - self.motion_mean) / self.motion_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:  # ... x D
        return x * self.motion_std + self.motion_mean

    # ------------------------------------------------------------------ embeddings
    def _embed_conditions(self, c: MotionConditions) -> dict[str, torch.Tensor]:
        """Each condition embedded (or its null where dropped): g/d/e ``B x C``, audio ``B x W x C``,
        X_pre / A_pre ``B x K x C``."""
        b, k = c.batch, self.cfg.past

        def pick(name: str, key: str, value: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
            null = self.null[key].expand(*shape, -1)
            if value is None:
                return null
            keep = c.kept(name).view(b, *([1] * (len(shape) - 1)), 1)
            return torch.where(keep, value, null)

        emb = {
            "gaze": pick("gaze", "gaze", None if c.gaze is None else self.g_in(c.gaze), (b,)),
            "distance": pick("distance", "distance", None if c.distance is None else self.d_in(c.distance), (b,)),
            "emotion": pick("emotion", "emotion", None if c.emotion is None else self.e_in(c.emotion), (b,)),
            "ref": pick("ref", "ref", None if c.ref is None else self.r_in(c.ref), (b,)),
        }
        a = self.a_in(self.audio_norm(c.audio))  # B x W x C
        emb["audio"] = torch.where(c.frame_mask()[..., None], a, self.null["audio"].expand_as(a))
        x_pre = None if c.x_pre is None else self.pre_in(c.x_pre)
        a_pre = None if c.a_pre is None else self.a_in(self.audio_norm(c.a_pre))
        emb["x_pre"] = pick("past", "x_pre", x_pre, (b, k))
        emb["a_pre"] = pick("past", "a_pre", a_pre, (b, k))
        return emb

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, c: MotionConditions) -> torch.Tensor:
        """``x_t``: B x W x D (normalised), ``t``: B timesteps -> predicted ``x0``: B x W x D."""
        cfg = self.cfg
        b, w, d = x_t.shape
        if w != cfg.window or d != cfg.motion_dim or c.audio.shape[1] != w:
            raise VasaError(f"motion window must be {cfg.window} x {cfg.motion_dim} with {cfg.window} audio "
                            f"frames, got {w} x {d} and {c.audio.shape[1]}")
        if c.x_pre is not None and c.x_pre.shape[1] != cfg.past:
            raise VasaError(f"X_pre must have K = {cfg.past} frames, got {c.x_pre.shape[1]}")
        if cfg.objective == "regression":
            x_t, t = torch.zeros_like(x_t), torch.zeros_like(t)
        k = cfg.past
        temb = self.t_mlp(timestep_embedding(t, cfg.width))  # B x C
        e = self._embed_conditions(c)
        pos_pre, pos_win = self.pos[:k], self.pos[k:]
        motion = self.x_in(x_t) + pos_win  # B x W x C
        if self.adaln:
            glob = temb + e["gaze"] + e["distance"] + e["emotion"] + e["ref"]  # B x C
            tokens = torch.cat([e["x_pre"] + pos_pre, motion], 1) + self.type_emb[:1]  # B x (K+W) x C
            cond = glob[:, None] + torch.cat([e["a_pre"], e["audio"]], 1) + self.type_emb[1:]  # B x (K+W) x C
            for blk in self.blocks:
                tokens = blk(tokens, cond)
            shift, scale = self.out_mod(cond).chunk(2, dim=-1)
            h = self.out_norm(tokens) * (1 + scale) + shift
            return self.out(h[:, k:])  # B x W x D
        te = self.type_emb
        tokens = torch.cat([
            (temb + te[0])[:, None], (e["gaze"] + te[1])[:, None], (e["distance"] + te[2])[:, None],
            (e["emotion"] + te[3])[:, None], (e["ref"] + te[8])[:, None],
            e["x_pre"] + pos_pre + te[4], e["a_pre"] + pos_pre + te[5],
            e["audio"] + pos_win + te[6], motion + temb[:, None] + te[7],
        ], 1)  # B x (5 + 2K + 2W) x C
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.out(self.out_norm(tokens[:, -w:]))  # B x W x D


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
