"""``dyn_residual`` on and off on the *same* trained latent model: probes and partial transfer.

``dyn_residual`` changes no network weight: it regresses a quadratic trend in ``z_pose`` out of the public
``z_dyn`` (buffers fitted at export, ``vasa/latent/residual.py``). Zeroing the buffers gives back E_mot's
raw code, so the two can be compared on one model, one set of frames and one set of pairs:

* the stage's probes (ridge, fit on val clips, R² on test clips) and the k-NN probe, ``z_dyn`` raw vs public;
* pose-only / dynamics-only transfer (``vasa.latent.evaluate.partial_transfer``: MediaPipe's mouth opening,
  the yaw read from the re-encoded output), raw vs public.

    python scripts/latent_residual_ablation.py --model models/latent --out metrics/ablations/latent_residual.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.eval.probes import RidgeProbe, probe_table  # noqa: E402
from vasa.io.atomic import write_json  # noqa: E402
from vasa.latent.evaluate import clip_codes, partial_transfer, probes, targets_of  # noqa: E402
from vasa.latent.train import load_latent  # noqa: E402


def ablation(model_dir: str, corpus: str, frames: int = 40, pairs: int = 64) -> dict:
    net = load_latent(model_dir)
    if net.dyn_res is None:
        raise SystemExit(f"{model_dir}: this model has no dyn_residual (LatentModelConfig.dyn_residual is off)")
    fitted = (net.dyn_res.mean.clone(), net.dyn_res.coef.clone())
    out: dict = {}
    for name in ("public", "raw"):
        if name == "raw":
            net.dyn_res.mean.zero_()
            net.dyn_res.coef.zero_()
        fit, ev = (clip_codes(net, corpus, s, frames, progress=False) for s in ("val", "test"))
        pr = probes(fit, ev)
        yaw_probe = RidgeProbe().fit(fit["z_pose"], targets_of(fit["params"], fit["names"])["yaw"], fit["group"])
        tr = partial_transfer(net, corpus, yaw_probe, pairs, 0)["metrics"]
        tf, te = targets_of(fit["params"], fit["names"]), targets_of(ev["params"], ev["names"])
        knn = probe_table({"z_dyn": (fit["z_dyn"], ev["z_dyn"])}, {k: (tf[k], te[k]) for k in tf}, kind="knn")
        out[name] = dict(z_dyn_linear=pr["table"]["z_dyn"], z_dyn_knn=knn["z_dyn"], transfer=tr)
    net.dyn_res.mean.copy_(fitted[0])
    net.dyn_res.coef.copy_(fitted[1])
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/latent")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--frames", type=int, default=40, help="probe frames per clip (the stage's eval_probe_frames)")
    ap.add_argument("--pairs", type=int, default=64, help="transfer pairs (the stage's eval_transfer_pairs)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    res = dict(command="python scripts/latent_residual_ablation.py " + " ".join(argv or sys.argv[1:]),
               **ablation(a.model, a.corpus, a.frames, a.pairs))
    print(json.dumps(res, indent=1, default=lambda v: None if isinstance(v, float) and not np.isfinite(v) else v))
    if a.out:
        write_json(a.out, res, indent=1)  # atomic, makes the folder
    return res


if __name__ == "__main__":
    main()
