"""How much PSNR a decoder could gain by copying source pixels (the diagnosis behind ``src_blend``),
and whether a model that copies still moves the mouth.

For a latent model and held-out test pairs (the stage's self-reenactment pairs), every pixel of the
reenactment is compared with the source frame copied as it is:

* ``oracle_per_pixel``: each pixel takes whichever of (reenactment, source) is closer to the driver --
  an upper bound for any blend of the two;
* ``blend_static_lt_T``: source pixels where ``|source - driver| < T`` (mean over RGB, 0-255), the
  reenactment elsewhere -- what a mask that knows the static pixels would reach;
* ``static_fraction`` (``|source - driver| < 4``) and the reenactment's PSNR on those pixels alone.

A decoder that re-renders everything through a coarse volume loses detail even where nothing moved;
this measures how much. PSNR as in :mod:`vasa.latent.evaluate` (uint8, peak 255, at 128 x 128).

``mouth``: on test pairs whose jaw differs by >= 0.3 (the evaluation's transfer pairs), MediaPipe's
mouth opening of the full reenactment (driver's pose and dynamics), dynamics-only and pose-only
transfer, as mean absolute error vs the source's and the driver's opening: a full reenactment closer
to the source than to the driver has a frozen mouth. For ``src_blend`` models also the mask's mean
over frames and over the lower-centre face (rows 80-110, cols 44-84 of 128: the mouth).

    python scripts/latent_blend_oracle.py --model models/latent --pairs 256 --out /tmp/oracle.json
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
from vasa.latent.evaluate import _to_eval_res, frame_pairs  # noqa: E402
from vasa.latent.task import to_uint8  # noqa: E402
from vasa.latent.train import load_latent  # noqa: E402

THRESHOLDS = (2, 4, 8, 16)


def _psnr(mse: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(float(mse.mean()), 1e-10)))


@torch.no_grad()
def blend_oracle(model_dir: str, corpus: str, pairs: int = 256, seed: int = 0, batch: int = 32) -> dict:
    """The figures of the module docstring, averaged over ``pairs`` test pairs."""
    torch.manual_seed(seed)
    model = load_latent(model_dir)
    src, drv, _, _ = frame_pairs(Corpus(corpus), "test", pairs, np.random.default_rng((seed, 3)), model.cfg.image_size)
    rows: dict[str, list[float]] = {k: [] for k in ["recon", "copy", "oracle_per_pixel", "static_fraction",
                                                    "recon_on_static"] + [f"blend_static_lt_{t}" for t in THRESHOLDS]}
    for s in range(0, len(src), batch):
        xs = torch.stack([to_tensor(f) for f in src[s:s + batch]])
        xd = torch.stack([to_tensor(f) for f in drv[s:s + batch]])
        recon = model(xs, xd)["recon"]
        for k in range(len(xs)):
            d, r, c = (_to_eval_res(to_uint8(x[k])).astype(np.float64) for x in (xd, recon, xs))
            e_r, e_c = ((r - d) ** 2).mean(-1), ((c - d) ** 2).mean(-1)  # per-pixel MSE
            diff = np.abs(c - d).mean(-1)
            rows["recon"].append(_psnr(e_r))
            rows["copy"].append(_psnr(e_c))
            rows["oracle_per_pixel"].append(_psnr(np.minimum(e_r, e_c)))
            for t in THRESHOLDS:
                rows[f"blend_static_lt_{t}"].append(_psnr(np.where(diff < t, e_c, e_r)))
            static = diff < 4
            rows["static_fraction"].append(float(static.mean()))
            rows["recon_on_static"].append(_psnr(e_r[static]) if static.any() else np.nan)
    return {k: float(np.nanmean(v)) for k, v in rows.items()} | dict(pairs=len(src))


@torch.no_grad()
def mouth_follow(model_dir: str, corpus: str, pairs: int = 64, seed: int = 0) -> dict:
    """Mouth-opening errors of full / dynamics-only / pose-only transfer (see the module docstring)."""
    from vasa.eval.landmarks import FaceMesh

    torch.manual_seed(seed)
    m = load_latent(model_dir)
    src, drv, _, _ = frame_pairs(Corpus(corpus), "test", pairs, np.random.default_rng((seed, 13)),
                                 m.cfg.image_size, 0.3)
    xs, xd = torch.stack([to_tensor(f) for f in src]), torch.stack([to_tensor(f) for f in drv])
    V, z_id = m.encode_appearance(xs)
    view = m.encode_source(xs)
    (zp_s, zd_s), (zp_d, zd_d) = m.encode_motion(xs), m.encode_motion(xd)
    mesh = FaceMesh(static=True)
    res: dict = {}
    try:
        m_src, m_drv = mesh.mouth_openings(np.stack(src)), mesh.mouth_openings(np.stack(drv))
        for name, (zp, zd) in dict(full=(zp_d, zd_d), dyn_only=(zp_s, zd_d), pose_only=(zp_d, zd_s)).items():
            r = m.G.render(V, z_id, zp, m.raw_dyn(zp, zd), source=view)  # public z_dyn -> the raw code
            mo = mesh.mouth_openings(np.stack([to_uint8(x) for x in r["image"]]))
            ok = np.isfinite(mo) & np.isfinite(m_src) & np.isfinite(m_drv)
            res[name] = dict(err_vs_source=float(np.abs(mo - m_src)[ok].mean()),
                             err_vs_driver=float(np.abs(mo - m_drv)[ok].mean()), found=float(ok.mean()))
            if "mask" in r:
                res[name].update(mask=float(r["mask"].mean()), mask_mouth=float(r["mask"][:, :, 80:110, 44:84].mean()))
    finally:
        mesh.close()
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/latent")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mouth", action="store_true", help="also the mouth-opening check (MediaPipe, 64 pairs)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    a = ap.parse_args(argv)
    res = dict(command="python scripts/latent_blend_oracle.py " + " ".join(argv or sys.argv[1:]),
               **blend_oracle(a.model, a.corpus, a.pairs, a.seed))
    if a.mouth:
        res["mouth"] = mouth_follow(a.model, a.corpus, seed=a.seed)
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
