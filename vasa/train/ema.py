"""Exponential moving average of model weights.

After every optimizer step ``ema = d * ema + (1 - d) * param`` for floating-point parameters and
buffers (integer buffers, e.g. BatchNorm's ``num_batches_tracked``, are copied). With ``warmup`` the
decay ramps up as ``d_n = min(decay, (1 + n) / (10 + n))`` (n = updates so far), so a short run is
not dominated by the random initialisation; without it ``d_n = decay``.

The EMA copies are full modules (``deepcopy``, eval mode, no grad): sampling and export use them like
the originals.
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from vasa.train.checkpoint import load_module_tensors, module_tensors


class EMA:
    """EMA copies of ``{name: module}``.

    Args:
        modules: the live modules to track (only those the task marked).
        decay: the target decay in [0, 1); 0.999 averages roughly the last 1000 steps.
        warmup: ramp the decay from 0.1 up to ``decay`` (see the module docstring).
    """

    def __init__(self, modules: Mapping[str, nn.Module], decay: float, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.modules: dict[str, nn.Module] = {}
        for name, m in modules.items():
            shadow = copy.deepcopy(m).eval()
            shadow.requires_grad_(False)
            self.modules[name] = shadow

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, modules: Mapping[str, nn.Module]) -> None:
        """Move the EMA copies towards ``modules`` (same names as at construction)."""
        d = self.current_decay()
        for name, shadow in self.modules.items():
            live = modules[name]
            ema_f, live_f = [], []
            for e, p in zip(shadow.parameters(), live.parameters()):
                ema_f.append(e)
                live_f.append(p.detach())
            for e, b in zip(shadow.buffers(), live.buffers()):
                if e.is_floating_point():
                    ema_f.append(e)
                    live_f.append(b)
                else:
                    e.copy_(b)
            if ema_f:
                # ema + (1 - d) * (live - ema) == d * ema + (1 - d) * live
                torch._foreach_lerp_(ema_f, [t.to(e.dtype) for t, e in zip(live_f, ema_f)], 1.0 - d)
        self.num_updates += 1

    def tensors(self) -> dict[str, torch.Tensor]:
        """CPU copies of every EMA tensor, keyed ``"<module>.<state key>"``."""
        return module_tensors(self.modules)

    def load_tensors(self, tensors: Mapping[str, torch.Tensor], num_updates: int) -> None:
        """Restore from :meth:`tensors` output and the saved update count."""
        load_module_tensors(self.modules, tensors, strict=True)
        self.num_updates = int(num_updates)
