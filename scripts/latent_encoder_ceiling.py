"""How much of the probe targets can E_mot's architecture read from a frame at all? (a diagnostic)

Trains the motion encoder of a named size (with ``LatentModelConfig`` overrides per variant)
*supervised* on the corpus's ground truth and reports the R² it reaches on the held-out test identities
(``vasa.latent.ceiling``: why, and how it is scored). Labels are used here only, never in the model the
stage ships.

    python scripts/latent_encoder_ceiling.py --steps 1500 --set S: \\
        --set 'wide:{"mot_channels": [32, 64, 128, 256], "mot_hidden": 512}' --out ceiling.json

Resolution: the same frames at 128 and 256 px, from a corpus rendered at 256 (``--image-size`` area-
downsamples it; the encoder is resolution-agnostic, its 4 x 4 pooling adapts)::

    python scripts/latent_encoder_ceiling.py --corpus runs/res/corpus256 --image-size 128 --set S128: --out a.json
    python scripts/latent_encoder_ceiling.py --corpus runs/res/corpus256 --image-size 256 --set S256: --out b.json

The report is rewritten (atomically) after every variant. Same seed, same result on CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.errors import VasaError  # noqa: E402
from vasa.io.atomic import write_json  # noqa: E402
from vasa.latent.ceiling import encoder_ceiling, load_frames  # noqa: E402
from vasa.latent.config import latent_config  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME:JSON",
                    help="a variant: LatentModelConfig overrides over --size, e.g. S: or "
                         "'wide:{\"mot_channels\": [32, 64, 128, 256]}'")
    ap.add_argument("--size", default="S")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-frames", type=int, default=24, help="frames per training clip")
    ap.add_argument("--eval-frames", type=int, default=40, help="frames per val / test clip (as the stage's probes)")
    ap.add_argument("--image-size", type=int, default=0,
                    help="encoder input in px (default: the size's); a corpus rendered at a multiple of it is "
                         "area-downsampled, so one corpus gives the same frames at two resolutions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    variants = {}
    for spec in a.set or [f"{a.size}:"]:  # checked before minutes of frame loading
        name, _, js = spec.partition(":")
        try:
            variants[name] = json.loads(js) if js else {}
            if a.image_size:
                variants[name]["image_size"] = a.image_size
            latent_config(a.size, **{k: tuple(v) if isinstance(v, list) else v for k, v in variants[name].items()})
        except json.JSONDecodeError as e:
            raise VasaError(f"--set {spec!r}: the part after NAME: is not JSON ({e.msg}); "
                            "write e.g. 'wide:{\"mot_channels\": [32, 64, 128, 256]}'") from None
        except (TypeError, ValueError, KeyError) as e:  # an unknown size, an unknown or invalid config field
            raise VasaError(f"--set {spec!r} over size {a.size!r}: {e}") from None
    if not Path(a.corpus, "settings.json").is_file():
        raise VasaError(f"no corpus at {a.corpus}: run `dvc repro prepare` first")
    size = a.image_size or latent_config(a.size).image_size
    data = {s: load_frames(a.corpus, s, a.train_frames if s == "train" else a.eval_frames, size,
                           downsample=bool(a.image_size)) for s in ("train", "val", "test")}
    report = dict(command="python scripts/latent_encoder_ceiling.py " + " ".join(argv or sys.argv[1:]),
                  corpus=a.corpus, image_size=size, size=a.size, steps=a.steps, batch=a.batch, lr=a.lr, train_frames=len(data["train"]["frames"]),
                  test_frames=len(data["test"]["frames"]), variants={})
    for name, over in variants.items():
        v = encoder_ceiling(data, a.size, over, a.steps, a.batch, a.lr, seed=a.seed)
        report["variants"][name] = v
        print(name, json.dumps({k: v[k] for k in ("readout_r2_test", "readout_r2_within_clip", "probe_r2_test", "train_s")}))
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(a.out, report, indent=1)
    return report


if __name__ == "__main__":
    try:
        main()
    except VasaError as e:
        raise SystemExit(f"error: {e}")
