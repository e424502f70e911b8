"""The DDPM of the motion generator: noise schedule, forward process ``q(X_t | X_0)`` and the losses.

The network predicts ``x0`` (the paper), so every quantity the samplers need derives from
``alphas_cumprod``: ``eps = (X_t - sqrt(a_t) x0) / sqrt(1 - a_t)``. Timesteps are integers
``0 .. T-1`` (``t = 0`` is the least noisy step).

Losses are small named classes (EDM style), each ``loss(pred, target, mask, x_pre=None) -> scalar``
over the valid frames (``mask``: ``B x W`` bool):

* :class:`X0Loss`          L2 between predicted and true ``x0``.
* :class:`VelocityLoss`    L2 between first differences (optionally across the window boundary,
                           from ``X_pre[-1]`` to ``X[0]``: what makes windows join without a seam).
* :class:`SmoothnessLoss`  L2 on the prediction's second differences (an acceleration penalty).
"""

from __future__ import annotations

import math

import torch

from vasa.errors import VasaError


class NoiseSchedule:
    """``T`` DDPM steps with a ``"cosine"`` (Nichol & Dhariwal) or ``"linear"`` (Ho et al.) beta schedule."""

    def __init__(self, steps: int = 1000, kind: str = "cosine"):
        if steps < 1:
            raise VasaError(f"diffusion steps must be >= 1, got {steps}")
        if kind == "cosine":
            s = 0.008
            x = torch.arange(steps + 1, dtype=torch.float64) / steps
            f = torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        elif kind == "linear":
            scale = 1000.0 / steps
            betas = torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
        else:
            raise VasaError(f"unknown noise schedule {kind!r} (allowed: cosine, linear)")
        self.steps, self.kind = steps, kind
        self.betas = betas  # T, float64
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)  # T, float64: a_t

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """``a_t`` for integer timesteps (``t = -1`` gives 1: clean data), float64."""
        a = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        return a.to(t.device)[t.long() + 1]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``X_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps``; ``x0``/``noise`` B x W x D, ``t`` B."""
        a = self.alpha_bar(t).to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by an ``x0`` estimate at step ``t``."""
        a = self.alpha_bar(t).to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1)))
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def sample_timesteps(self, batch: int, device: torch.device | str = "cpu",
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform training timesteps ``B`` in ``0 .. T-1``."""
        return torch.randint(0, self.steps, (batch,), device=device, generator=generator)


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``err`` (B x N x D) over the frames where ``mask`` (B x N) is True."""
    m = mask.to(err.dtype)[..., None]
    return (err * m).sum() / (m.sum() * err.shape[-1]).clamp_min(1.0)


class X0Loss:
    """L2 between the predicted and the true clean motion, over valid frames."""

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 x_pre: torch.Tensor | None = None) -> torch.Tensor:
        return _masked_mean((pred - target) ** 2, mask)


class VelocityLoss:
    """L2 between first differences of prediction and target.

    With ``x_pre`` (``B x K x D``, the true past, or None) the step ``X_pre[-1] -> X[0]`` counts too,
    for the samples where ``x_pre_valid`` is set (pass it through ``mask_pre``).
    """

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 x_pre: torch.Tensor | None = None, mask_pre: torch.Tensor | None = None) -> torch.Tensor:
        valid = mask[:, 1:] & mask[:, :-1]  # B x (W-1)
        dp, dt = pred.diff(dim=1), target.diff(dim=1)
        if x_pre is not None and x_pre.shape[1] > 0:
            last = x_pre[:, -1:]  # B x 1 x D
            dp = torch.cat([pred[:, :1] - last, dp], 1)
            dt = torch.cat([target[:, :1] - last, dt], 1)
            first = mask[:, :1] & (mask_pre[:, None] if mask_pre is not None else torch.ones_like(mask[:, :1]))
            valid = torch.cat([first, valid], 1)
        return _masked_mean((dp - dt) ** 2, valid)


class SmoothnessLoss:
    """Mean squared second difference (acceleration) of the prediction over valid frames."""

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 x_pre: torch.Tensor | None = None) -> torch.Tensor:
        valid = mask[:, 2:] & mask[:, 1:-1] & mask[:, :-2]
        return _masked_mean(pred.diff(n=2, dim=1) ** 2, valid)
