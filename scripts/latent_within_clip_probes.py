"""The stage's probes of a trained face latent model, on absolute codes and on the motion within each clip.

The probe bars of ``train_latent`` are absolute R² on unseen identities. Part of what they miss is a
per-clip offset a single frame cannot resolve (face shape vs a steady tilt, narrow vs half-closed eyes):
``vasa.latent.ceiling.within_clip_probes`` scores the same ridge probes once on the codes and once on
codes and ground truth minus their clip means (what the motion model animates). A diagnostic: the stage's
bars stay absolute.

    python scripts/latent_within_clip_probes.py --model pretrained/vasa-S/latent --out within.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.errors import VasaError  # noqa: E402
from vasa.io.atomic import write_json  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/latent", help="a trained latent model folder (config.json + safetensors)")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--frames", type=int, default=40, help="evenly spaced frames per clip (as the stage's probes)")
    ap.add_argument("--fit-split", default="val")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if not Path(a.model, "config.json").is_file():
        raise VasaError(f"no latent model at {a.model}: train one (`dvc repro train_latent`) or pass --model")
    if not Path(a.corpus, "settings.json").is_file():
        raise VasaError(f"no corpus at {a.corpus}: run `dvc repro prepare` first")
    from vasa.latent.ceiling import within_clip_probes
    from vasa.latent.evaluate import clip_codes
    from vasa.latent.train import load_latent

    net = load_latent(a.model)
    fit = clip_codes(net, a.corpus, a.fit_split, a.frames)
    ev = clip_codes(net, a.corpus, a.split, a.frames)
    report = dict(command="python scripts/latent_within_clip_probes.py " + " ".join(argv or sys.argv[1:]),
                  model=a.model, corpus=a.corpus, fit_frames=len(fit["group"]), eval_frames=len(ev["group"]),
                  **within_clip_probes(fit, ev))
    for kind in ("absolute", "within_clip"):
        print(kind, json.dumps({c: {t: round(v, 3) for t, v in row.items() if v is not None}
                                for c, row in report[kind].items()}))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(a.out, report, indent=1)
    return report


if __name__ == "__main__":
    try:
        main()
    except VasaError as e:
        raise SystemExit(f"error: {e}")
