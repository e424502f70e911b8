"""Does the latent space render the mouth? Mouth-vs-jaw correlation of self-reenacted test clips.

For each of the first ``--clips`` test clips: the first ``--frames`` frames are re-rendered from their
own encoded motion on the clip's first frame (appearance), MediaPipe measures the mouth opening of
every re-rendered and every ground-truth frame, and each is correlated (Pearson r) with the clip's
ground-truth jaw parameter. A decoder that renders the mouth approaches the ground truth's r (~0.95).

    python scripts/latent_mouth_jaw.py models/latent [more model folders ...] [--clips 40 --out results.json]

The eyes the same way (``eye_*``): MediaPipe's pose-free eye closure (1 - mean eye aspect ratio / the
clip's 90th percentile, the guidance cache's ``eyes_closed``) of the re-rendered and the ground-truth
frames against the true blink (mean of both lids), pooled over all clips (blinks are ~2 % of frames:
most clips have none), with the pooled spread ratio of the closure.

The lips' texture (``mouth_*``), in the ground-truth mouth box of every frame (evaluation only: it reads
the corpus's identity parameters), split by the true jaw into closed (< 0.05, ~14 % of frames) and open
(>= 0.3, ~25 %) frames: PSNR of the rendered crop against the real one, and its high-frequency ratio (mean
absolute Laplacian of the grey crop, rendered over real: < 1 is blur, > 1 is invented detail, e.g.
teeth-like stripes drawn on a closed mouth).

Each clip gives one r and the spread ratio (the rendered opening's standard deviation over the ground
truth's: 1 = the mouth moves as far as the real one); the summary is the mean and the median over clips with a 95 % bootstrap interval of
the mean (the evaluation's ``latent_recon`` row scores only 6 clips, too few to compare two models).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.data.corpus import Corpus  # noqa: E402
from vasa.data.frames import to_tensor  # noqa: E402
from vasa.eval.landmarks import FaceMesh  # noqa: E402
from vasa.ingest.labels import PoseSolver, measure  # noqa: E402
from vasa.latent.evaluate import mouth_boxes, psnr  # noqa: E402
from vasa.latent.model import expand_source  # noqa: E402
from vasa.latent.train import load_latent  # noqa: E402
from vasa.synth.params import PARAM_INDEX  # noqa: E402


def load_any(model_dir: str):
    """A stage export (``load_latent``) or a ``latent_finetune_ablation.py`` export (the task's config)."""
    from vasa.latent.config import LatentModelConfig
    from vasa.latent.model import FaceLatentModel
    from vasa.train import load_pretrained

    cfg, _ = load_pretrained(model_dir)
    if "latent" in cfg:
        return load_latent(model_dir)
    net = FaceLatentModel(LatentModelConfig.from_dict(cfg.get("config", cfg)["task"]["model"]))
    load_pretrained(model_dir, {"model": net})
    return net.eval().requires_grad_(False)


def mouth_and_closure(mesh: FaceMesh, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T x H x W x 3 -> (mouth opening, pose-free eye closure) per frame, NaN where no face was found."""
    mouth, ear = np.full(len(frames), np.nan), np.full(len(frames), np.nan)
    for i, f in enumerate(frames):
        r = mesh.process(f)
        if r is not None:
            m = measure(r.landmarks, PoseSolver(f.shape[1], f.shape[0]))
            mouth[i], ear[i] = r.mouth_opening, (m.ear_l + m.ear_r) / 2
    ok = np.isfinite(ear)
    closure = 1 - ear / np.percentile(ear[ok], 90) if ok.any() else ear
    return mouth, closure


CLOSED_JAW, OPEN_JAW = 0.05, 0.3  # true jaw below / at least: a closed / an open mouth


def _hf(grey: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of an H x W float image (interior pixels)."""
    g = grey.astype(np.float64)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


def mouth_texture(rendered: np.ndarray, real: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """T x H x W x 3 uint8 pairs and T x 4 boxes -> T x 2 (PSNR of the crop, high-frequency ratio)."""
    out = np.full((len(real), 2), np.nan)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        a, b = rendered[i, y0:y1, x0:x1], real[i, y0:y1, x0:x1]
        out[i] = psnr(a, b), _hf(a.mean(-1)) / max(_hf(b.mean(-1)), 1e-9)
    return out


def mouth_jaw_r(model_dir: str, corpus: str = "data/corpus", clips: int = 8, frames: int = 100) -> dict:
    c, m, mesh = Corpus(corpus), load_any(model_dir), FaceMesh(static=True)
    r_model, r_truth, spread = [], [], []
    eyes, lips = [], []  # per frame: (rendered closure, true closure, blink), (lip PSNR, HF ratio, jaw)
    try:
        for rec in c.records(split="test", kind="speech")[:clips]:
            fr = c.load_clip(rec["id"]).frames[:frames]
            jaw = c.params(rec["id"])[:len(fr), PARAM_INDEX["jaw"]]
            x = torch.stack([to_tensor(f) for f in fr])
            with torch.no_grad():
                V, z_id = m.encode_appearance(x[:1])
                z_pose, z_dyn = m.encode_motion(x)
                view = m.encode_source(x[:1])
                out = torch.cat([m.decode(V.expand(len(b), -1, -1, -1, -1), z_id.expand(len(b), -1), z_pose[b], z_dyn[b],
                                          source=expand_source(view, len(b)))
                                 for b in torch.arange(len(x)).split(25)])
            ims = ((out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            (mo, eo), (mg, eg) = mouth_and_closure(mesh, ims), mouth_and_closure(mesh, fr)
            boxes = mouth_boxes([rec] * len(fr), c.params(rec["id"])[:len(fr)], fr.shape[1])
            lips.append(np.concatenate([mouth_texture(ims, fr, boxes), jaw[:, None]], 1))
            blink = c.params(rec["id"])[:len(fr)][:, [PARAM_INDEX["blink_l"], PARAM_INDEX["blink_r"]]].mean(1)
            eyes.append(np.stack([eo, eg, blink], 1))
            ok = np.isfinite(mo) & np.isfinite(mg)
            r_model.append(float(np.corrcoef(mo[ok], jaw[ok])[0, 1]))
            r_truth.append(float(np.corrcoef(mg[ok], jaw[ok])[0, 1]))
            spread.append(float(mo[ok].std() / max(mg[ok].std(), 1e-9)))  # how far the rendered mouth moves
    finally:
        mesh.close()
    rm = np.asarray(r_model, float)
    rm = rm[np.isfinite(rm)]
    boot = np.random.default_rng(0).choice(rm, (2000, len(rm))).mean(1) if len(rm) else np.array([np.nan])
    e = np.concatenate(eyes)
    e = e[np.isfinite(e).all(1)]
    eye = dict(eye_r_pooled=float(np.corrcoef(e[:, 0], e[:, 2])[0, 1]),
               eye_r_pooled_ground_truth=float(np.corrcoef(e[:, 1], e[:, 2])[0, 1]),
               eye_spread_ratio=float(e[:, 0].std() / max(e[:, 1].std(), 1e-9)),
               eye_frames=len(e), eye_blink_frames=int((e[:, 2] >= 0.5).sum()))
    lp = np.concatenate(lips)
    lip = {}
    for name, sel in (("closed", lp[:, 2] < CLOSED_JAW), ("open", lp[:, 2] >= OPEN_JAW)):
        v = lp[sel & np.isfinite(lp[:, :2]).all(1)]
        lip.update({f"mouth_psnr_{name}": float(v[:, 0].mean()), f"mouth_hf_ratio_{name}": float(np.median(v[:, 1])),
                    f"mouth_frames_{name}": len(v)})
    return dict(model=model_dir, clips=len(rm), r=float(rm.mean()), r_median=float(np.median(rm)),
                r_ci95=[float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                r_ground_truth=float(np.nanmean(r_truth)), spread_ratio_median=float(np.median(spread)),
                **eye, **lip, r_per_clip=[round(v, 3) for v in r_model])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--out", default="", help="also write the results (a JSON list) here")
    a = ap.parse_args(argv)
    results = []
    for d in a.models:
        results.append(mouth_jaw_r(d, a.corpus, a.clips, a.frames))
        print(json.dumps(results[-1]), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
