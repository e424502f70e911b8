"""The ``vasa`` command line. User mistakes print one line (``vasa: error: ...``) and exit 2."""

from __future__ import annotations

import argparse
import sys

from vasa.errors import VasaError


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{s!r} must be >= 0")
    return v


def _cmd_synth(a: argparse.Namespace) -> int:
    from vasa.config import PrepareConfig, build_section, synth_kwargs
    from vasa.synth.corpus import synth_corpus

    base = PrepareConfig()
    over = {k: v for k, v in dict(
        out=a.out, clips=a.clips, seed=a.seed, resolution=a.resolution, languages=a.languages,
        identities=a.identities, voices=a.voices, ood_lang_clips=a.ood_lang_clips, art_clips=a.art_clips,
        workers=a.workers, gallery_per_identity=a.gallery_per_identity,
    ).items() if v is not None}
    cfg = build_section(PrepareConfig, {**{k: getattr(base, k) for k in over}, **over}, "synth")
    stats = synth_corpus(**synth_kwargs(cfg), progress=not a.quiet)
    print(f"corpus in {cfg.out}: {stats['clips']} clips, {stats['hours']:.2f} h, "
          f"{stats['identities']} identities, {stats['frames']} frames")
    return 0


def _cmd_ingest(a: argparse.Namespace) -> int:
    from vasa.ingest import ingest

    extra = {k: v for k, v in dict(min_frames=a.min_frames, min_face=a.min_face).items() if v is not None}
    if a.no_align:
        extra["align"] = False
    stats = ingest(a.src, a.out, resolution=128 if a.resolution is None else a.resolution, shard=a.shard,
                   workers=a.workers or 0, progress=not a.quiet, **extra)
    inp = stats["inputs"]
    print(f"ingested into {a.out}: {stats['clips']} clips, {stats['hours']:.2f} h, {stats['identities']} identities "
          f"from {inp['used']} of {inp['videos']} videos ({inp['skipped']} skipped: see {a.out}/skipped.json)")
    return 0


def _cmd_detect(a: argparse.Namespace) -> int:
    import json

    from vasa.watermark.detect import detect_file

    results, unmarked, bad = [], 0, 0
    for path in a.videos:
        try:
            d = detect_file(path, key=a.key)
        except VasaError as e:
            bad += 1
            print(f"vasa: error: {e}", file=sys.stderr)
            continue
        unmarked += not d.found
        results.append(d.as_dict())
        if not a.json:
            print(d.summary())
    if a.json:
        print(json.dumps(results, indent=2))
    return 2 if bad else (1 if unmarked else 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vasa", description="vasa: audio-driven talking faces (VASA-1, open).")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate the talking-head corpus (speech synthesis + rendered 3D head)")
    s.add_argument("--out", required=True, help="output folder (created; an unfinished run there resumes)")
    s.add_argument("--clips", type=_positive_int, help="English clips for train/val/test (default 1000)")
    s.add_argument("--seed", type=int, help="random seed (default 0); the same seed gives the same corpus")
    s.add_argument("--resolution", type=_positive_int, help="frame size, 64..512 (default 128)")
    s.add_argument("--languages", nargs="+", help="languages: en plus held-out es de fr cmn (default all)")
    s.add_argument("--voices", nargs="+", help="voice variants: m1..m4 f1..f4 (default all)")
    s.add_argument("--identities", type=_positive_int, help="identity pool size (default 2000)")
    s.add_argument("--ood-lang-clips", type=_positive_int, help="held-out-language clips (default 100)")
    s.add_argument("--art-clips", type=_positive_int, help="artistic-style clips (default 50)")
    s.add_argument("--gallery-per-identity", type=_positive_int, help="stills per identity (default 4)")
    s.add_argument("--workers", type=_positive_int, help="processes (default: all cores)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)

    g = sub.add_parser("ingest", help="real talking-head videos -> clips in the corpus format (detect, track, crop, label)")
    g.add_argument("src", help="folder of videos (VoxCeleb2, HDTF, MEAD, RAVDESS layouts recognised) or a CSV with a 'path' column")
    g.add_argument("--out", required=True, help="output folder (created; an unfinished run there resumes)")
    g.add_argument("--resolution", type=_positive_int, help="output frame size, 64..512 (default 128)")
    g.add_argument("--shard", help="i/n: process only part i of n of the inputs (deterministic; for job arrays)")
    g.add_argument("--workers", type=_positive_int, help="processes (default: all cores)")
    g.add_argument("--min-frames", type=_positive_int, help="shortest clip kept, frames at 25 fps (default 50)")
    g.add_argument("--min-face", type=float, help="narrowest face kept, pixels (default 40)")
    g.add_argument("--no-align", action="store_true", help="skip phone alignment of transcripts (<video>.txt)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_ingest)

    d = sub.add_parser("detect", help="is this video vasa-generated? watermark, payload, confidence, provenance",
                       description="Search each video (>= 2 s) for the vasa watermark and read its provenance "
                                   "(mp4 tag, C2PA). Exit 0: every file marked; 1: some file unmarked; 2: bad input.")
    d.add_argument("videos", nargs="+", help="video files (mp4, mov, webm, ...; partial clips of 2 s or more work)")
    d.add_argument("--key", help="watermark key (default: $VASA_WATERMARK_KEY or the public vasa key)")
    d.add_argument("--json", action="store_true", help="print one JSON list with every detail instead of one line per file")
    d.set_defaults(func=_cmd_detect)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except VasaError as e:
        print(f"vasa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vasa: interrupted (finished work is kept; run the same command again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
