"""What E_mot reads when trained on its landmark guidance alone (``vasa.latent.mot_pretrain``), scored
with the stage's probes on the held-out identities: the label-free counterpart of
``scripts/latent_encoder_ceiling.py`` (which trains the same encoder on the true labels).

    python scripts/latent_mot_pretrain.py --set raw: --set closure:targets=closure \\
        --set closure_boost:targets=closure,boost=8 --out metrics/ablations/latent_mot_pretrain.json

A variant is NAME:key=value,... with keys ``targets`` (raw | pose_free | closure), ``boost`` /
``threshold`` (closed-eye frames drawn 1 + boost times as often), ``steps``, ``batch``, ``lr``,
``guide_pose``, ``guide_dyn``. The guidance cache is the stage's (``--work``, estimated there if
missing). The report is rewritten (atomically) after every variant. Same seed, same result on CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vasa.errors import VasaError  # noqa: E402
from vasa.io.atomic import write_json  # noqa: E402
from vasa.latent.ceiling import _encode, load_frames, within_clip_probes  # noqa: E402
from vasa.latent.config import latent_config  # noqa: E402
from vasa.latent.encoders import MotionEncoder  # noqa: E402
from vasa.latent.guidance import TARGETS, Guidance, estimate_guidance  # noqa: E402
from vasa.latent.mot_pretrain import frame_weights, guided_frame_data, pretrain_motion_encoder  # noqa: E402

KEYS = dict(targets=str, boost=float, threshold=float, steps=int, batch=int, lr=float, guide_pose=float, guide_dyn=float)


def parse_variant(spec: str) -> tuple[str, dict]:
    name, _, body = spec.partition(":")
    out: dict = {}
    for kv in filter(None, body.split(",")):
        k, _, v = kv.partition("=")
        if k not in KEYS:
            raise VasaError(f"--set {spec!r}: unknown key {k!r} (known: {', '.join(KEYS)})")
        try:
            out[k] = KEYS[k](v)
        except ValueError:
            raise VasaError(f"--set {spec!r}: {k}={v!r} is not a {KEYS[k].__name__}") from None
    if out.get("targets", "raw") not in TARGETS:
        raise VasaError(f"--set {spec!r}: targets must be one of {TARGETS}")
    return name, out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME:k=v,...")
    ap.add_argument("--size", default="S")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--work", default="runs/latent", help="where the stage's guidance cache lives")
    ap.add_argument("--guide-frames", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-frames", type=int, default=40, help="frames per val / test clip (as the stage's probes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    variants = dict(parse_variant(s) for s in (a.set or ["raw:"]))
    if not Path(a.corpus, "settings.json").is_file():
        raise VasaError(f"no corpus at {a.corpus}: run `dvc repro prepare` first")
    cfg = latent_config(a.size)
    g_raw = estimate_guidance(a.corpus, "train", a.guide_frames, a.work)
    train = guided_frame_data(a.corpus, g_raw, cfg.image_size)
    ev = {s: load_frames(a.corpus, s, a.eval_frames, cfg.image_size) for s in ("val", "test")}
    report = dict(command="python scripts/latent_mot_pretrain.py " + " ".join(argv or sys.argv[1:]),
                  corpus=a.corpus, size=a.size, train_frames=len(train["frames"]),
                  test_frames=len(ev["test"]["frames"]), variants={})
    for name, v in variants.items():
        g = Guidance(g_raw.clip_ids, g_raw.frame_idx, g_raw.raw, v.get("targets", "raw"), g_raw.regions)
        tg = np.concatenate([np.stack([g.target(c, int(t)) for t in idx]) for c, idx in g.frames.items()])
        w = frame_weights(g, v["boost"], v.get("threshold", 0.4)) if v.get("boost") else None
        torch.manual_seed(a.seed)
        enc = MotionEncoder(cfg)
        fit = pretrain_motion_encoder(enc, train["frames"], tg, v.get("steps", a.steps), v.get("batch", a.batch),
                                      v.get("lr", a.lr), guide_pose=v.get("guide_pose", 1.0),
                                      guide_dyn=v.get("guide_dyn", 1.0), weights=w, seed=a.seed)
        codes = {}
        for s in ("val", "test"):
            zp, zd = _encode(enc, ev[s]["frames"])
            codes[s] = dict(z_pose=zp, z_dyn=zd, params=ev[s]["params"], group=ev[s]["group"], names=ev[s]["names"])
        pr = within_clip_probes(codes["val"], codes["test"])
        report["variants"][name] = dict(settings=v, train_s=fit["train_s"], final_loss=fit["loss"][-1][1],
                                        probes=pr["absolute"], probes_within_clip=pr["within_clip"])
        print(name, json.dumps(dict(train_s=fit["train_s"], probes=pr["absolute"], within=pr["within_clip"])), flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(a.out, report, indent=1)
    return report


if __name__ == "__main__":
    try:
        main()
    except VasaError as e:
        sys.exit(f"error: {e}")
