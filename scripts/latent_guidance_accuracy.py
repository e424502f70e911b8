"""How good are the landmark guidance's targets? MediaPipe's estimates of the guided training frames
against the generated corpus's ground truth (read here only, never by training).

The landmark guidance (``vasa/latent/guidance.py``) anchors ``z_pose`` to MediaPipe's yaw / pitch /
roll (PnP of the rigid mesh landmarks) and the first ``z_dyn`` channels to its mouth opening and eye
aspect ratios. A probe bar on ``z_pose`` -> pitch cannot be reached through the guidance if the
guidance itself explains little of the true pitch; this script says how much it explains:

* per angle, the R² of the best affine map from MediaPipe's angle to the true one, over all guided
  frames, within clips (both centred per clip: the motion inside a clip) and between clips (clip means:
  per-identity offsets, e.g. a face shape the canonical mesh does not fit);
* Pearson r of the mouth opening with the true jaw and of the mean eye aspect ratio with the true blink;
* the blink flag of ``blink_boost`` (pose-free eye closure >= ``--blink-threshold``): the share of guided
  frames it flags, and its precision and recall against true closed eyes (mean lid closure >= 0.5).

    python scripts/latent_guidance_accuracy.py --guidance runs/latent/guidance-train.npz \\
        --out metrics/ablations/guidance_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.data.corpus import Corpus  # noqa: E402
from vasa.io.atomic import write_json  # noqa: E402
from vasa.latent.guidance import Guidance  # noqa: E402


def affine_r2(x: np.ndarray, y: np.ndarray) -> float:
    """R² of the least-squares affine fit y ~ a x + b."""
    A = np.stack([x, np.ones_like(x)], 1)
    w = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(1 - ((A @ w - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def guidance_accuracy(guidance: str, corpus: str, blink_threshold: float = 0.4) -> dict:
    g, c = Guidance.load(guidance), Corpus(corpus)
    ix = {n: i for i, n in enumerate(c.param_names)}
    closed = g.eyes_closed()
    true, est, grp, flag = [], [], [], []
    for k, cid in enumerate(sorted(g.frames)):
        p = c.params(cid)
        for t in g.frames[cid]:
            row = g.raw[g._index[(cid, int(t))]]
            true.append([p[t, ix["yaw"]], p[t, ix["pitch"]], p[t, ix["roll"]], p[t, ix["jaw"]],
                         (p[t, ix["blink_l"]] + p[t, ix["blink_r"]]) / 2])
            est.append([*np.degrees(row[:3]), row[3], row[4:6].mean()])
            grp.append(k)
            flag.append(closed[g._index[(cid, int(t))]] >= blink_threshold)
    true, est, grp, flag = np.array(true, np.float64), np.array(est, np.float64), np.array(grp), np.array(flag)
    ok = np.isfinite(est).all(1)
    true, est, grp, flag = true[ok], est[ok], grp[ok], flag[ok]
    clips = np.unique(grp)
    out: dict = dict(frames=int(ok.sum()), found=float(ok.mean()), clips=len(clips), angles={})
    for k, name in enumerate(("yaw", "pitch", "roll")):
        y, x = true[:, k], est[:, k]
        my = np.array([y[grp == u].mean() for u in clips])
        mx = np.array([x[grp == u].mean() for u in clips])
        pos = np.searchsorted(clips, grp)
        out["angles"][name] = dict(r2=affine_r2(x, y), r2_within_clip=affine_r2(x - mx[pos], y - my[pos]),
                                   r2_between_clips=affine_r2(mx, my), true_std_deg=float(y.std()),
                                   true_within_std_deg=float((y - my[pos]).std()), true_clip_mean_std_deg=float(my.std()))
    out["mouth_vs_jaw_r"] = float(np.corrcoef(est[:, 3], true[:, 3])[0, 1])
    out["ear_vs_blink_r"] = float(np.corrcoef(est[:, 4], true[:, 4])[0, 1])
    shut = true[:, 4] >= 0.5
    out["blink_flag"] = dict(threshold=blink_threshold, flagged=float(flag.mean()), closed=float(shut.mean()),
                             precision=float(shut[flag].mean()) if flag.any() else None,
                             recall=float(flag[shut].mean()) if shut.any() else None,
                             flagged_mean_closure=float(true[flag, 4].mean()) if flag.any() else None)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guidance", default="runs/latent/guidance-train.npz")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--blink-threshold", type=float, default=0.4)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    res = dict(command="python scripts/latent_guidance_accuracy.py " + " ".join(argv or sys.argv[1:]),
               **guidance_accuracy(a.guidance, a.corpus, a.blink_threshold))
    print(json.dumps(res, indent=1))
    if a.out:
        write_json(a.out, res, indent=1)  # atomic, makes the folder
    return res


if __name__ == "__main__":
    main()
