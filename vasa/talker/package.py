"""The ``package`` stage: the trained parts -> the shipped model bundle (``pretrained/vasa-S``).

``python -m vasa.talker.package --latent models/latent --audio models/audio --motion models/motion
--out pretrained/vasa-S`` copies the exported latent model, audio encoder and motion model (with the
motion normalisation ``models/motion/norm.npz``) into one folder with :func:`vasa.talker.bundle.save_bundle`
(checked to fit together, written atomically). ``dvc repro`` runs it after ``train_motion``; the result is
committed to git (``cache: false`` in dvc.yaml) so that ``vasa generate`` works right after setup.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vasa.errors import VasaError

MAX_BUNDLE_MB = 40.0  # the shipped model's size limit (safetensors + configs)
# the latent and motion weights ship as float16 (6.5 + 9.8 MB instead of 13 + 20.6 MB; every file stays
# under 10 MB and the bundle under 40): generated frames differ from the float32 parts' by 0.007 / 255 on
# average, at most 1 / 255 (128 px, samples/speech_en.wav, seed 0, watermark off); tests/test_talker.py
HALF_PARTS = ("latent", "motion")


def package(latent: str = "models/latent", audio: str = "models/audio", motion: str = "models/motion",
            out: str = "pretrained/vasa-S", name: str = "vasa-S", max_mb: float = MAX_BUNDLE_MB,
            half: tuple[str, ...] = HALF_PARTS) -> dict:
    """Build the bundle ``out`` from the exported parts (``half``: parts stored as float16); returns its
    size and ``bundle.json`` summary."""
    from vasa.talker.bundle import save_bundle

    norm = Path(motion) / "norm.npz"
    if not norm.is_file():
        raise VasaError(f"{norm} is missing: the motion model must be exported by `dvc repro train_motion`")
    path = save_bundle(out, latent, audio, motion, norm, name=name, version="1", half=tuple(half),
                       extra={"trained_by": "dvc repro (prepare -> train_latent -> export_motion -> train_audio "
                                            "-> train_motion -> package)"})
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20
    if size > max_mb:
        raise VasaError(f"the bundle {path} is {size:.1f} MB, over the {max_mb:.0f} MB limit for the shipped model")
    return {"out": str(path), "size_mb": round(size, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vasa.talker.package", description=__doc__.splitlines()[0])
    ap.add_argument("--latent", default="models/latent")
    ap.add_argument("--audio", default="models/audio")
    ap.add_argument("--motion", default="models/motion")
    ap.add_argument("--out", default="pretrained/vasa-S")
    ap.add_argument("--name", default="vasa-S")
    ap.add_argument("--half", nargs="*", default=list(HALF_PARTS), help="parts stored as float16")
    a = ap.parse_args(argv)
    try:
        info = package(a.latent, a.audio, a.motion, a.out, a.name, half=tuple(a.half))
    except VasaError as e:
        print(f"vasa package: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['out']} ({info['size_mb']} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
