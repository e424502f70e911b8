"""Speed of motion generation on this machine: parameters and ms of compute per second of motion.

    python -m vasa.motion.bench --size S --steps 50 25 10 --seconds 8 [--threads 1] [--conditioning adaln]

Random weights (speed does not depend on them); DDIM with the paper's default CFG (audio 0.5, gaze 1.0:
three variants of ``H`` batched per step); windows of ``W`` frames with ``K`` frames of context.
A result below 1000 ms per second of motion is faster than real time.
"""

from __future__ import annotations

import argparse
import time

import torch

from vasa.motion.config import motion_config
from vasa.motion.generate import MotionGenerator
from vasa.motion.model import MotionDiT, count_parameters
from vasa.motion.sampling import DEFAULT_GUIDANCE


def benchmark(size: str = "S", steps: tuple[int, ...] = (50, 25, 10), seconds: float = 8.0,
              motion_dim: int = 70, audio_dim: int = 192, conditioning: str = "tokens",
              guidance: dict[str, float] | None = None) -> dict:
    """Params and ms of compute per second of motion (25 fps) for DDIM at each step count (CFG included)."""
    torch.manual_seed(0)
    model = MotionDiT(motion_config(size, motion_dim=motion_dim, audio_dim=audio_dim, conditioning=conditioning))
    audio = torch.randn(int(round(seconds * 25)), audio_dim)
    out = {"size": size, "conditioning": conditioning, "params": count_parameters(model),
           "threads": torch.get_num_threads(), "guidance": dict(DEFAULT_GUIDANCE if guidance is None else guidance)}
    for n in steps:
        gen = MotionGenerator(model, steps=n, guidance=guidance)
        gen.generate(audio[:model.cfg.window])  # warm-up
        t0 = time.perf_counter()
        gen.generate(audio)
        out[f"ddim{n}_ms_per_s"] = round(1000 * (time.perf_counter() - t0) / seconds, 1)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Speed of motion generation (DDIM + CFG) on this machine")
    ap.add_argument("--size", default="S")
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 25, 10])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--conditioning", default="tokens")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(benchmark(a.size, tuple(a.steps), a.seconds, conditioning=a.conditioning))
