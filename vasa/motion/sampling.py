"""Samplers as pure functions with one signature (k-diffusion style), and classifier-free guidance.

Every sampler is ``sampler(denoise, noise, schedule, *, steps, generator) -> x0`` where
``denoise(x_t, t) -> x0`` (``x_t`` B x W x D, ``t`` B integer timesteps) is the network ``H`` with its
conditions bound (:func:`guided_denoiser`), ``noise`` the starting ``X_T`` (B x W x D standard
normal) and ``generator`` the source of any further noise (so a seed fixes the whole sample).

* :func:`sample_ddpm`      ancestral DDPM over all ``T`` steps (the paper's sampler family).
* :func:`sample_ddim`      DDIM over any number of steps; ``eta = 0`` deterministic, ``eta = 1`` with
                           ``steps = T`` is exactly DDPM (tested).
* :func:`sample_dpmpp_2m`  DPM-Solver++(2M), a second-order multistep solver for few steps (5-10).
* :func:`sample_onestep`   one call of ``H`` (the regression baseline; a crude 1-step diffusion sample).

Guidance (the paper's formula, one scale per condition, all variants in one batched forward)::

    x0 = (1 + sum_c l_c) H(X_t, t, C) - sum_c l_c H(X_t, t, C | c = null)
"""

from __future__ import annotations

from typing import Callable

import torch

from vasa.errors import VasaError
from vasa.motion.conditions import MotionConditions
from vasa.motion.config import CONDITIONS
from vasa.motion.diffusion import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t B x W x D, t B) -> x0 B x W x D
DEFAULT_GUIDANCE: dict[str, float] = {"audio": 0.5, "gaze": 1.0}  # the paper's defaults


def guided_denoiser(model: torch.nn.Module, cond: MotionConditions,
                    scales: dict[str, float] | None = None) -> Denoiser:
    """``H`` with conditions ``cond`` and CFG scales ``{condition: l_c}`` bound (0 / absent = no guidance)."""
    scales = DEFAULT_GUIDANCE if scales is None else scales
    bad = [n for n in scales if n not in CONDITIONS]
    if bad:
        raise VasaError(f"unknown guidance condition {bad[0]!r} (allowed: {', '.join(CONDITIONS)})")
    active = [(n, float(s)) for n, s in scales.items() if s != 0]
    if not active:
        return lambda x_t, t: model(x_t, t, cond)
    batched = MotionConditions.cat([cond] + [cond.dropped(n) for n, _ in active])
    n = 1 + len(active)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x_t.repeat(n, 1, 1), t.repeat(n), batched).chunk(n)  # n x (B x W x D)
        x0 = (1.0 + sum(s for _, s in active)) * out[0]
        for (_, s), o in zip(active, out[1:]):
            x0 = x0 - s * o
        return x0

    return denoise


def timesteps(schedule: NoiseSchedule, steps: int, spacing: str = "time") -> torch.Tensor:
    """Integer timesteps from ``T-1`` down to 0, strictly decreasing.

    ``"time"``: ``steps`` evenly spaced in ``t``. ``"logsnr"``: evenly spaced in log-SNR
    ``lambda = log(sqrt(a_t / (1 - a_t)))`` (what DPM-Solver wants; repeated integers are merged, so
    it can return fewer than ``steps``).
    """
    if not 1 <= steps <= schedule.steps:
        raise VasaError(f"sampling steps must be in 1..{schedule.steps} (the diffusion's T), got {steps}")
    if spacing == "time":
        return torch.linspace(schedule.steps - 1, 0, steps, dtype=torch.float64).round().long()
    if spacing != "logsnr":
        raise VasaError(f"unknown timestep spacing {spacing!r} (allowed: time, logsnr)")
    a = schedule.alphas_cumprod
    lam = (0.5 * (a / (1 - a)).log()).flip(0).contiguous()  # increasing (t = T-1 .. 0)
    targets = torch.linspace(float(lam[0]), float(lam[-1]), steps, dtype=torch.float64)
    idx = torch.searchsorted(lam, targets).clamp(max=schedule.steps - 1)
    return torch.unique_consecutive(schedule.steps - 1 - idx)


def _coef(schedule: NoiseSchedule, t: int, like: torch.Tensor) -> torch.Tensor:
    return schedule.alpha_bar(torch.tensor([t])).to(like.dtype)[0]


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


@torch.no_grad()
def sample_ddim(denoise: Denoiser, noise: torch.Tensor, schedule: NoiseSchedule, *, steps: int = 50,
                generator: torch.Generator | None = None, eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song et al.) on ``steps`` evenly spaced timesteps; ``eta`` scales the injected noise."""
    x, b = noise, noise.shape[0]
    ts = timesteps(schedule, steps).tolist()
    for i, t in enumerate(ts):
        x0 = denoise(x, torch.full((b,), t, dtype=torch.long, device=x.device))
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        if t_prev < 0:
            return x0
        a, a_prev = _coef(schedule, t, x), _coef(schedule, t_prev, x)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a)).sqrt() * (1 - a / a_prev).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp_min(0).sqrt() * eps
        if eta > 0:
            x = x + sigma * _randn(x, generator)
    return x


@torch.no_grad()
def sample_ddpm(denoise: Denoiser, noise: torch.Tensor, schedule: NoiseSchedule, *, steps: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral DDPM (Ho et al.): ``x_{t-1} ~ q(x_{t-1} | x_t, x0 = H(x_t, t))`` for every ``t``."""
    if steps not in (None, schedule.steps):
        raise VasaError(f"DDPM runs all {schedule.steps} steps (got steps={steps}); use sample_ddim for fewer")
    x, b = noise, noise.shape[0]
    for t in range(schedule.steps - 1, -1, -1):
        x0 = denoise(x, torch.full((b,), t, dtype=torch.long, device=x.device))
        if t == 0:
            return x0
        a, a_prev = _coef(schedule, t, x), _coef(schedule, t - 1, x)
        beta = 1 - a / a_prev
        mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a)
        var = beta * (1 - a_prev) / (1 - a)
        x = mean + var.sqrt() * _randn(x, generator)
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoiser, noise: torch.Tensor, schedule: NoiseSchedule, *, steps: int = 10,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al.), deterministic, steps evenly spaced in log-SNR; good from ~10 steps."""
    x, b = noise, noise.shape[0]
    ts = timesteps(schedule, steps, "logsnr").tolist()
    x0_prev, h_prev = None, None
    for i, t in enumerate(ts):
        x0 = denoise(x, torch.full((b,), t, dtype=torch.long, device=x.device))
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        if t_next < 0:
            return x0
        a, a_next = _coef(schedule, t, x), _coef(schedule, t_next, x)
        lam, lam_next = 0.5 * (a / (1 - a)).log(), 0.5 * (a_next / (1 - a_next)).log()
        h = lam_next - lam
        d = x0 if x0_prev is None else (1 + h / (2 * h_prev)) * x0 - h / (2 * h_prev) * x0_prev
        x = ((1 - a_next) / (1 - a)).sqrt() * x - a_next.sqrt() * torch.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


@torch.no_grad()
def sample_onestep(denoise: Denoiser, noise: torch.Tensor, schedule: NoiseSchedule, *, steps: int = 1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``H(X_T, T-1)``: the regression baseline's prediction (it ignores ``X_t`` and ``t``)."""
    return denoise(noise, torch.full((noise.shape[0],), schedule.steps - 1, dtype=torch.long, device=noise.device))


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": sample_ddpm, "ddim": sample_ddim, "dpmpp_2m": sample_dpmpp_2m, "onestep": sample_onestep,
}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    if name not in SAMPLERS:
        raise VasaError(f"unknown sampler {name!r} (allowed: {', '.join(SAMPLERS)})")
    return SAMPLERS[name]
