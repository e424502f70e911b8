"""Head renderer throughput on one core: frames/s and ms/frame per output resolution and style.

Renders ``--frames`` frames of smoothly varying random parameters for each of ``--identities``
identities (the per-identity setup is timed separately), single-threaded (numba kernels are serial;
OpenCV is pinned to one thread); wall and CPU time are both reported (CPU time is the fairer
number on a machine shared with other jobs; the 1-minute load average is recorded). The corpus budget is 6 ms per 128x128 frame (supersample 2).
Writes JSON to ``benchmarks/results/render.json`` (or ``--out``).

    python benchmarks/render.py --frames 200 --identities 3 --resolutions 128 256 --styles photo art
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def frames(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, N_PARAMS) smoothly varying frames covering pose, mouth, blinks and gaze."""
    from vasa.synth.params import FRAME_PARAMS, NOMINAL_DISTANCE, PARAM_INDEX as I, clip_params, neutral_params

    t = np.arange(n)[:, None] / 25.0
    lo = np.array([r[0] for r in FRAME_PARAMS.values()])
    hi = np.array([r[1] for r in FRAME_PARAMS.values()])
    ph, fr = rng.uniform(0, 6.3, len(lo)), rng.uniform(0.1, 1.5, len(lo))
    p = np.tile(neutral_params(), (n, 1)) + 0.35 * (hi - lo) * np.sin(2 * np.pi * fr * t + ph)
    p[:, I["tz"]] = NOMINAL_DISTANCE * (1 + 0.1 * np.sin(t[:, 0]))
    p[:, I["scale"]] = NOMINAL_DISTANCE / p[:, I["tz"]]
    for k in ("jaw", "blink_l", "blink_r", "lip_press", "brow_furrow", "eye_wide"):
        p[:, I[k]] = np.abs(p[:, I[k]])
    return clip_params(p)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="frames per identity and setting")
    ap.add_argument("--identities", type=int, default=3)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--styles", nargs="+", default=["photo", "art"])
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "render.json"))
    a = ap.parse_args(argv)
    import cv2

    from vasa.synth.identity import sample_identity
    from vasa.synth.render import HeadRenderer

    cv2.setNumThreads(1)
    rng = np.random.default_rng(a.seed)
    ids = [sample_identity(np.random.default_rng([a.seed, k])) for k in range(a.identities)]
    t0 = time.perf_counter()
    HeadRenderer(ids[0]).render(frames(1, rng)[0])  # load / compile the numba kernels
    warmup = time.perf_counter() - t0
    rows = []
    for res in a.resolutions:
        for style in a.styles:
            setup, render, cpu, n = 0.0, 0.0, 0.0, 0
            for ident in ids:
                seq = frames(a.frames, rng)
                t0 = time.perf_counter()
                r = HeadRenderer(ident, res, a.supersample, style)
                t1, c1 = time.perf_counter(), time.process_time()
                for p in seq:
                    r.render(p)
                t2, c2 = time.perf_counter(), time.process_time()
                setup, render, cpu, n = setup + t1 - t0, render + t2 - t1, cpu + c2 - c1, n + len(seq)
            rows.append({"resolution": res, "style": style, "supersample": a.supersample, "frames": n,
                         "ms_per_frame": round(1000 * render / n, 3), "cpu_ms_per_frame": round(1000 * cpu / n, 3),
                         "fps": round(n / render, 1), "setup_ms_per_identity": round(1000 * setup / len(ids), 1)})
            print(f"{res:4d}px {style:5s}: {rows[-1]['ms_per_frame']:6.2f} ms/frame (cpu {rows[-1]['cpu_ms_per_frame']:.2f})"
                  f"  {rows[-1]['fps']:7.1f} fps  setup {rows[-1]['setup_ms_per_identity']:.0f} ms/identity")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {"results": rows, "load_average_1min": load, "warmup_s": round(warmup, 2), "machine": platform.processor() or platform.machine(),
           "python": platform.python_version()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
