"""Generation speed and memory (``vasa.talker``): offline fps, decode fps, real-time factor, streaming latency.

For each audio length (``--seconds``, default 10 60 600; speech from ``samples/`` repeated with pauses):

* ``offline_128``: ``Talker.generate(..., out=mp4)`` end to end at the model's resolution (audio
  features, motion DiT, decode, watermark, H.264 + AAC writing), and ``offline_512``: the same at
  the default 512 px output (bicubic upscaling + watermark at 512). fps, real-time factor (wall
  time / audio duration), peak memory;
* ``stream``: :func:`vasa.talker.live.simulate_stream` with audio arriving in real time in
  ``--chunk-ms`` chunks (``--no-realtime-over S``: longer clips are fed as fast as possible, which
  measures throughput and memory but not the live figures): first-frame latency from the first
  chunk, sustained fps, compute fps, peak memory;
* once: ``decode_128`` -- the decoder alone (batches of 8, the generator's batch), ``motion`` -- the
  motion DiT alone (frames of motion per second at ``--steps`` with CFG), and ``upscale_watermark_512``
  -- upscaling + marking one frame at 512.

Every row records the 1-minute load average and the process's CPU time: on a shared machine the
wall-clock figures depend on what else runs (``cpu_ms_per_frame`` much less so). Each case runs in
a fresh subprocess, so its peak memory (``ru_maxrss``: resident set, and
``tracemalloc``: Python/numpy allocations) is its own; the streaming and incremental paths should
be flat in the audio length. ``torch.set_num_threads(--threads)`` (default 2).

The model: ``--checkpoint`` (default the shipped ``pretrained/vasa-S``). When it does not exist the
benchmark uses random weights of the shipped sizes (latent ``S`` 128 px, audio ``S``, motion ``S``;
the speed does not depend on the weight values) and says so in the JSON.

    python benchmarks/generate.py --seconds 10 60 600
    python benchmarks/generate.py --seconds 10 --cases offline_128 stream     # a quick look
    python benchmarks/generate.py --sampler dpmpp_2m --steps 10 --out benchmarks/results/generate_fast.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("offline_128", "offline_512", "stream")


def _speech(seconds: float):
    """``seconds`` of speech: the bundled clips alternately, with 0.4 s pauses, repeated."""
    import numpy as np

    from vasa.talker.inputs import load_audio

    clips = [load_audio(ROOT / "samples" / n) for n in ("speech_en.wav", "speech_es.wav")]
    gap = np.zeros(6400, np.float32)
    n = int(seconds * 16000)
    parts, total, k = [], 0, 0
    while total < n:
        parts += [clips[k % 2], gap]
        total += len(clips[k % 2]) + len(gap)
        k += 1
    return np.concatenate(parts)[:n]


def _bundle(checkpoint: str, work: Path) -> tuple[Path, str]:
    from vasa.talker import random_bundle

    if Path(checkpoint).is_dir():
        return Path(checkpoint), "trained"
    path = work / "random-S"
    if not path.is_dir():
        random_bundle(path, seed=0, latent="S", audio="S", motion="S")
    return path, f"random weights of the shipped sizes (no bundle at {checkpoint})"


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak() -> dict:
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_tracemalloc_mb": round(tracemalloc.get_traced_memory()[1] / 2 ** 20, 1)}


def run_case(case: str, seconds: float, bundle: Path, a) -> dict:
    """One case in this process (called in a subprocess by :func:`main`)."""
    import torch

    torch.set_num_threads(a.threads)
    from vasa.talker import Talker
    from vasa.talker.live import simulate_stream

    talker = Talker.from_pretrained(bundle)
    portrait = talker.portrait(ROOT / "samples" / "astronaut.jpg")
    audio = _speech(seconds)
    controls = dict(steps=a.steps, sampler=a.sampler, seed=0, **({"hop": a.hop} if a.hop else {}))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    cpu0 = _cpu_s()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if case.startswith("offline"):
            res = None if case == "offline_128" else 512
            gen = talker.generate(portrait, audio, out=Path(tmp) / "out.mp4", resolution=res, **controls)
            wall = time.perf_counter() - t0
            row = {"frames": gen.num_frames, "wall_s": round(wall, 2), "fps": round(gen.num_frames / wall, 2),
                   "real_time_factor": round(wall / seconds, 3)}
        else:
            realtime = seconds <= a.realtime_max_s
            s = simulate_stream(talker, portrait, audio, chunk_ms=a.chunk_ms, realtime=realtime, resolution=512,
                                **controls)
            row = {k: s[k] for k in ("frames", "first_frame_latency_s", "algorithmic_latency_s", "sustained_fps",
                                     "compute_fps", "keeps_up", "final_lag_s", "wall_s", "realtime")}
    cpu = _cpu_s() - cpu0
    return {"case": case, "audio_s": seconds, **row, "cpu_s": round(cpu, 2),
            "cpu_ms_per_frame": round(1000 * cpu / max(row["frames"], 1), 1), **_peak(), "rss_after_load_mb": round(rss0, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def components(bundle: Path, a) -> dict:
    """Decoder alone at 128, motion DiT alone, upscale + watermark at 512 (per frame)."""
    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from vasa.motion import MotionGenerator
    from vasa.talker import Talker
    from vasa.talker.talker import DECODE_BATCH, FrameRenderer
    from vasa.watermark import Payload, Watermarker

    talker = Talker.from_pretrained(bundle)
    portrait = talker.portrait(ROOT / "samples" / "astronaut.jpg")
    r = FrameRenderer(talker.bundle.latent, portrait, None, False, talker.device)
    P, D = len(talker.bundle.norm["pose_mean"]), len(talker.bundle.norm["dyn_mean"])
    zp, zd = torch.zeros(DECODE_BATCH, P), torch.zeros(DECODE_BATCH, D)
    r.decode(zp, zd)
    best = min(_timed(lambda: r.decode(zp, zd)) for _ in range(5)) / DECODE_BATCH
    m = talker.bundle.motion
    gen = MotionGenerator(m, sampler=a.sampler, steps=a.steps, seed=0)
    A = torch.zeros(m.cfg.window, m.cfg.audio_dim)
    gen.window(0, A, None, None)
    t_motion = min(_timed(lambda: gen.window(1, A, None, None)) for _ in range(3)) / m.cfg.window
    face = r.decode(zp[:1], zd[:1])[0]
    wm = Watermarker(Payload(1, 1))
    up = lambda: wm.mark_frame(cv2.resize(face, (512, 512), interpolation=cv2.INTER_CUBIC))  # noqa: E731
    up()
    t_up = min(_timed(up) for _ in range(10))
    return {"decode_128_fps": round(1 / best, 1), "decode_128_ms_per_frame": round(1000 * best, 2),
            "motion_fps": round(1 / t_motion, 1), "motion_ms_per_frame": round(1000 * t_motion, 2),
            "upscale_watermark_512_ms_per_frame": round(1000 * t_up, 2), "steps": a.steps, "sampler": a.sampler,
            "image_size": talker.image_size, "window": m.cfg.window, "load_avg_1min": round(os.getloadavg()[0], 2)}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="pretrained/vasa-S")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--steps", type=int, default=50, help="sampling steps (default 50, the paper's)")
    ap.add_argument("--sampler", default="ddim", help="ddim (the paper's) or the fast dpmpp_2m")
    ap.add_argument("--hop", type=int, default=0, help="frames per motion window (0: the model's window; 10: low latency)")
    ap.add_argument("--chunk-ms", type=float, default=80)
    ap.add_argument("--realtime-max-s", type=float, default=60,
                    help="stream clips up to this long in real time; longer ones as fast as possible")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-components", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generate.json"))
    ap.add_argument("--_case", help=argparse.SUPPRESS)
    ap.add_argument("--_bundle", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._case:  # subprocess: one case, JSON on the last stdout line
        row = components(Path(a._bundle), a) if a._case == "components" else \
            run_case(a._case, a.seconds[0], Path(a._bundle), a)
        print(json.dumps(row))
        return row

    from vasa.io.atomic import write_json

    work = Path(tempfile.mkdtemp(prefix="vasa-bench-"))
    bundle, weights = _bundle(a.checkpoint, work)
    common = ["--steps", str(a.steps), "--sampler", a.sampler, "--hop", str(a.hop), "--chunk-ms", str(a.chunk_ms), "--threads", str(a.threads),
              "--realtime-max-s", str(a.realtime_max_s), "--_bundle", str(bundle)]
    env = {**os.environ, "VASA_C2PA_DEV_DIR": os.environ.get("VASA_C2PA_DEV_DIR", str(work / "c2pa-dev"))}

    def sub(case: str, seconds: float) -> dict:
        cmd = [sys.executable, __file__, "--_case", case, "--seconds", str(seconds)] + common
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode:
            raise SystemExit(f"{case} {seconds} s failed:\n{p.stderr[-2000:]}")
        row = json.loads(p.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        return row

    out = {"command": "python benchmarks/generate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "weights": weights, "checkpoint": a.checkpoint, "threads": a.threads, "steps": a.steps, "sampler": a.sampler,
           "hop": a.hop or None,
           "chunk_ms": a.chunk_ms}
    if not a.no_components:
        out["components"] = sub("components", 1)
    out["runs"] = [sub(case, s) for s in a.seconds for case in a.cases]
    import torch

    out.update(torch=torch.__version__, cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
               load_avg_1min=round(os.getloadavg()[0], 2),
               device="cuda" if torch.cuda.is_available() else "cpu")
    write_json(a.out, out)
    return out


if __name__ == "__main__":
    main()
