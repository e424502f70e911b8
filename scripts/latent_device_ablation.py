"""Train several face-latent variants side by side on one GPU within a time budget, then evaluate them.

Made for a rented GPU machine that receives only the repository and a corpus recipe (see
:mod:`vasa.synth.recipe`): it renders the corpus, trains the identity embedder once, measures each
variant's speed in a short probe run (all variants at once, as they will run), gives every variant
the same number of steps that fits the budget, trains them concurrently through the stage's own
``train_latent`` (one process each), and scores each exported model with the latent evaluation's
label-based measures: self-reenactment PSNR / SSIM vs copying the source, the mouth-box PSNR of
pairs whose jaw differs (:func:`vasa.latent.evaluate.mouth_reenactment`), and the linear probes.
MediaPipe and dlib measures are left to the machine that has them (pass the exported models back).

    python scripts/latent_device_ablation.py --recipe .device/recipe.npz --guidance .device \\
        --budget 330 --out $OUT --variants base dynvol

Writes ``<out>/ablation.json`` (settings, speeds, steps, metrics per variant, the command) and one
``<out>/<variant>.tar`` per exported model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

VARIANTS: dict[str, dict] = {
    "base": {},
    "base_bf16": {"amp": "bf16"},
    "dynvol": {"model": {"dyn_volume": [4, 16, 16], "flow_size": [4, 16, 16]}},
    "dynvol_wide": {"model": {"dyn_volume": [4, 16, 16], "flow_size": [4, 16, 16], "vol_channels": 16,
                              "dec_channels": [96, 48]}},
    "flow16": {"model": {"flow_size": [4, 16, 16]}},
}


def _train_cmd(corpus: str, work: Path, kw: dict) -> list[str]:
    code = ("import json, sys; from vasa.latent.train import train_latent; "
            "print(json.dumps(train_latent(**json.loads(sys.argv[1])), default=str))")
    return [sys.executable, "-c", code, json.dumps(dict(corpus=corpus, **kw))]


def _speed(work: Path) -> float:
    """Seconds per step of a probe run: between its oldest and newest kept checkpoint (written every 25
    steps; works whichever metric logger the machine has)."""
    ck = sorted((work / "checkpoints").glob("step-*"))
    if len(ck) < 2:
        raise SystemExit(f"probe run in {work} left {len(ck)} checkpoints; cannot time it")
    steps = int(ck[-1].name.split("-")[1]) - int(ck[0].name.split("-")[1])
    return (ck[-1].stat().st_mtime - ck[0].stat().st_mtime) / steps


def _trace(work: Path, keys=("psnr", "rec", "loss_gen", "loss_disc", "guide", "z_dyn_std")) -> list[dict]:
    """About 20 rows of the run's training metrics (JSON-lines logger only; [] under dvclive)."""
    path = work / "dvclive" / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    every = max(1, len(rows) // 20)
    return [{k: round(r[k], 4) if isinstance(r.get(k), float) else r.get(k) for k in ("step", *keys) if k in r}
            for r in rows[::every] + rows[-1:]]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--guidance", required=True, help="folder holding guidance-train.npz/.json")
    ap.add_argument("--variants", nargs="+", default=["base", "dynvol"], choices=sorted(VARIANTS))
    ap.add_argument("--budget", type=float, default=330.0, help="seconds of concurrent training")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--workers", type=int, default=3, help="data-loader processes per variant")
    ap.add_argument("--max-steps", type=int, default=100_000)
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--runs", default="runs/device")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="train_latent knobs over params.yaml (YAML values), e.g. size=tiny identity_steps=2")
    ap.add_argument("--eval-pairs", type=int, default=512)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t_start = time.time()
    out, runs = Path(a.out), Path(a.runs)
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    report: dict = dict(command="python scripts/latent_device_ablation.py " + " ".join(argv or sys.argv[1:]))
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    from vasa.synth.recipe import unpack_recipe

    if not Path(a.corpus, "manifest.jsonl").is_file():
        report["render"] = unpack_recipe(a.recipe, a.corpus, workers=os.cpu_count() or 1, progress=False)
        print("rendered", report["render"], flush=True)

    import torch

    from vasa.config import load_params
    from vasa.stage_kwargs import latent_kwargs
    from vasa.latent.identity import train_identity

    import yaml

    base = latent_kwargs(load_params("params.yaml").train_latent)
    base.update({k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in a.set)})
    report["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    t0 = time.time()
    ident_out, ident_run = runs / "identity", runs / "identity_run"
    train_identity(a.corpus, str(ident_out), str(ident_run), base["identity_steps"], base["identity_batch"],
                   base["identity_lr"], base["identity_size"], base["identity_speech_frames"], base["seed"],
                   "auto", a.workers, False)
    report["identity_seconds"] = round(time.time() - t0, 1)

    def kwargs(name: str, work: Path, steps: int, **extra) -> dict:
        kw = dict(base, batch_size=a.batch, lr=a.lr, steps=steps, adv_start=int(0.75 * steps),
                  warmup_steps=min(500, steps // 10), ema_decay=0.999, num_workers=a.workers,
                  work_dir=str(work), out=str(work / "export"), log_every=25, sample_every=0,
                  checkpoint_every=max(250, steps // 4), progress=False, corpus=a.corpus,
                  identity_out=str(work / "identity"), identity_work_dir=str(work / "identity_run"))
        kw.pop("corpus")
        kw.update(VARIANTS[name])
        kw.update(extra)
        work.mkdir(parents=True, exist_ok=True)
        for src, dst in ((ident_out, work / "identity"), (ident_run, work / "identity_run")):
            if not dst.exists():  # the embedder trained once above (same settings: reused as is)
                shutil.copytree(src, dst)
        for f in ("guidance-train.npz", "guidance-train.json"):
            shutil.copy(Path(a.guidance) / f, work / f)
        return kw

    def run_all(tag: str, steps: int, **extra) -> dict[str, subprocess.Popen]:
        procs = {}
        for name in a.variants:
            work = runs / f"{tag}-{name}"
            log = open(runs / f"{tag}-{name}.log", "w")
            procs[name] = subprocess.Popen(_train_cmd(a.corpus, work, kwargs(name, work, steps, **extra)),
                                           stdout=log, stderr=subprocess.STDOUT, env=env)
        for name, p in procs.items():
            if p.wait() != 0:
                tail = (runs / f"{tag}-{name}.log").read_text().splitlines()[-30:]
                raise SystemExit("\n".join(tail) + f"\n{tag} run of {name} failed (exit {p.returncode})")
        return procs

    # 1. speed probe: all variants at once, 100 steps (the GAN on, the costliest phase)
    t0 = time.time()
    run_all("probe", 10_000, stop_at_step=100, adv_start=0, checkpoint_every=25)
    speed = {n: _speed(runs / f"probe-{n}") for n in a.variants}
    report["probe_seconds"] = round(time.time() - t0, 1)
    report["seconds_per_step"] = speed
    steps = int(min(a.max_steps, a.budget / max(speed.values())) // 250 * 250)
    steps = max(steps, 250)
    report["steps"] = steps
    print(f"speed {speed}, {steps} steps each", flush=True)

    # 2. main runs
    t0 = time.time()
    run_all("main", steps)
    report["train_seconds"] = round(time.time() - t0, 1)

    # 3. evaluation (label-based measures) + model archives
    from vasa.latent.evaluate import clip_codes, mouth_reenactment, probes, self_reenactment
    from vasa.latent.train import load_latent

    torch.set_num_threads(os.cpu_count() or 1)
    report["variants"] = {}
    for name in a.variants:
        exp = runs / f"main-{name}" / "export"
        net = load_latent(exp)
        sr = self_reenactment(net, a.corpus, a.eval_pairs, 0, progress=False)["metrics"]
        mr = mouth_reenactment(net, a.corpus, a.eval_pairs // 4, 0)["metrics"]
        pr = probes(clip_codes(net, a.corpus, "val", 40, progress=False),
                    clip_codes(net, a.corpus, "test", 40, progress=False))
        report["variants"][name] = dict(settings=VARIANTS[name], self_reenactment=sr, mouth=mr,
                                        probes=pr["table"], probes_passed=pr["all_passed"],
                                        params_M=net.num_params() / 1e6, trace=_trace(runs / f"main-{name}"))
        if (exp / "model.safetensors").stat().st_size < 15 * 2**20:  # what a device call can send back
            with tarfile.open(out / f"{name}.tar", "w") as tf:
                tf.add(exp, arcname=name)
        print(f"{name}: PSNR {sr['psnr']:.2f} (copy {sr['psnr_copy']:.2f}) SSIM {sr['ssim']:.3f} "
              f"mouth {mr['mouth_psnr']:.2f} (copy {mr['mouth_psnr_copy']:.2f}) "
              f"probes {json.dumps(pr['table'])}", flush=True)
        print("  trace", json.dumps(report["variants"][name]["trace"][::3]), flush=True)
    report["total_seconds"] = round(time.time() - t_start, 1)
    (out / "ablation.json").write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
