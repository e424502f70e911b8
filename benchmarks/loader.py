"""Corpus loader throughput: decoded frames per second, 1 process and N processes.

    python benchmarks/loader.py --corpus data/corpus --workers 2

Writes benchmarks/results/loader.json. The bar (issue: foundation) is >= 2,000 frames/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

from vasa.data.corpus import Corpus
from vasa.io.atomic import write_json


def _count(args: tuple[str, list[str]]) -> int:
    root, shards = args
    corpus = Corpus(root, cache_shards=1)
    n = 0
    for name in shards:
        sh = corpus.shard(name)
        for i in range(len(sh.arrays["jpeg_offsets"]) - 1):
            sh.frame(i)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--shards", type=int, default=8, help="shards to read (speech shards)")
    ap.add_argument("--out", default="benchmarks/results/loader.json")
    a = ap.parse_args()
    corpus = Corpus(a.corpus)
    names = sorted({r["shard"] for r in corpus.records(kind="speech")})[: a.shards]
    results = {}
    for workers in sorted({1, a.workers}):
        t0 = time.perf_counter()
        if workers == 1:
            n = _count((a.corpus, names))
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                n = sum(pool.map(_count, [(a.corpus, names[k::workers]) for k in range(workers)]))
        dt = time.perf_counter() - t0
        results[f"workers_{workers}"] = {"frames": n, "seconds": round(dt, 3), "frames_per_second": round(n / dt, 1)}
        print(f"{workers} process(es): {n} frames in {dt:.2f} s = {n / dt:.0f} frames/s")
    write_json(a.out, {"command": "python benchmarks/loader.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items()),
                       "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
                       "resolution": corpus.schema["resolution"], **results})


if __name__ == "__main__":
    main()
