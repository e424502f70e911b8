"""Face latent model decoder throughput on this CPU: frames/s at batch 1 and 16, GFLOPs per frame.

For each named size (``vasa.latent.config.LATENT_SIZES``) it times ``decode`` (the per-frame cost of
inference: appearance is encoded once per source image) with :func:`vasa.latent.model.benchmark`
(best of ``--reps`` after a warm-up, so other jobs on a shared machine bias it least), counts the
decoder FLOPs with :func:`vasa.latent.model.decoder_flops`, and records the thread count and the
1-minute load average. ``paper`` (512 px, ~200M parameters) is slow on a CPU: pass it explicitly.
Writes JSON to ``benchmarks/results/latent.json`` (or ``--out``).

    python benchmarks/latent.py --sizes tiny S B --batches 1 16 --threads 2
    python benchmarks/latent.py --sizes tiny S B paper --device cuda --dtypes float32 bfloat16 \
        --out benchmarks/results/latent_gpu.json        # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "S", "B"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--dtypes", nargs="+", default=["float32"], help="float32 and/or bfloat16 (autocast)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "latent.json"))
    a = ap.parse_args(argv)
    import torch

    from vasa.io.atomic import write_json
    from vasa.latent.model import benchmark

    if a.threads:
        torch.set_num_threads(a.threads)
    results = []
    for size in a.sizes:
        for b, dt in ((b, dt) for b in a.batches for dt in a.dtypes):
            r = benchmark(size, batch=b, reps=a.reps, device=a.device, dtype=dt)
            row = dict(size=size, resolution=r["res"], batch=b, device=a.device, dtype=dt, params_M=round(r["params_M"], 3),
                       decoder_params_M=round(r["decoder_params_M"], 3), volume=list(r["vol"]),
                       decode_ms_per_frame=round(r["decode_ms"], 3), decode_fps=round(1000 / r["decode_ms"], 1),
                       encode_ms_per_frame=round(r["encode_ms"], 3),
                       decode_gflops_per_frame=round(r["decode_gflops"], 4))
            results.append(row)
            print(f"{size:>5} {row['resolution']}px batch {b:>2} {a.device} {dt}: decode {row['decode_fps']:8.1f} frames/s "
                  f"({row['decode_ms_per_frame']:.2f} ms/frame), {row['decode_gflops_per_frame']:.3f} GFLOPs/frame, "
                  f"params {row['params_M']:.2f}M", flush=True)
    gpu = torch.cuda.get_device_name() if a.device == "cuda" else None
    out = dict(command="python " + " ".join([Path(__file__).name] + (argv if argv is not None else sys.argv[1:])),
               results=results, gpu=gpu, threads=torch.get_num_threads(), torch=torch.__version__,
               cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
               load_avg_1min=os.getloadavg()[0])
    write_json(a.out, out)
    return out


if __name__ == "__main__":
    main()
