"""The ``vasa`` command line. User mistakes print one line (``vasa: error: ...``) and exit 2."""

from __future__ import annotations

import argparse
import sys
import warnings

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
    from vasa.config import PrepareConfig, build_section
    from vasa.stage_kwargs import synth_kwargs
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


def _watermark(a: argparse.Namespace) -> bool:
    """``--no-watermark`` is the research flag: honoured only with VASA_DISABLE_WATERMARK=I_UNDERSTAND."""
    import os

    from vasa.watermark.embed import DISABLE_ENV, DISABLE_VALUE

    if not a.no_watermark:
        return True
    if os.environ.get(DISABLE_ENV) != DISABLE_VALUE:
        raise VasaError(f"--no-watermark is a research flag: it works only with {DISABLE_ENV}={DISABLE_VALUE} set "
                        "in the environment (the output is then not detectable as AI-generated)")
    return False


def _controls(a: argparse.Namespace) -> dict:
    """The generation controls given on the command line (absent ones keep the defaults)."""
    names = ("gaze", "distance", "emotion", "cfg_audio", "cfg_gaze", "steps", "seed", "sampler", "hop")
    return {n: getattr(a, n) for n in names if getattr(a, n, None) is not None}


def _prepare(a: argparse.Namespace, controls: dict) -> tuple[dict, dict]:
    """Checks that need no weights (bundle layout, controls, resolution, input files), then the options."""
    from vasa.talker.bundle import DEFAULT_BUNDLE, describe
    from vasa.talker.inputs import Controls, check_resolution, load_image

    info = describe(a.checkpoint or DEFAULT_BUNDLE)
    Controls.build(max_steps=info["diffusion_steps"], max_hop=info["window"], **controls)
    opts = dict(resolution=check_resolution(a.resolution), crop=not a.no_crop, paste=a.paste, watermark=_watermark(a))
    if getattr(a, "image", None):
        load_image(a.image)
    return info, opts


def _talker(a: argparse.Namespace):
    from vasa.talker import Talker
    from vasa.talker.bundle import DEFAULT_BUNDLE

    return Talker.from_pretrained(a.checkpoint or DEFAULT_BUNDLE, device=a.device)


def _speech(a: argparse.Namespace):
    """``--audio FILE`` as a 16 kHz array, or ``--text`` synthesised with ``--voice`` / ``--language``."""
    from vasa.talker.inputs import load_audio

    if a.text is not None:
        from vasa.synth.speech import synthesize

        utt = synthesize(a.text, a.language, a.voice)
        return utt.audio
    return load_audio(a.audio)


def _cmd_generate(a: argparse.Namespace) -> int:
    controls = _controls(a)
    if a.batch:
        if a.out_dir is None:
            raise VasaError("--batch needs --out-dir DIR for the videos")
        _, opts = _prepare(a, controls)
        from vasa.talker.batch import read_batch, run_batch

        items = read_batch(a.batch)
        talker = _talker(a)
        res = run_batch(talker, items, a.out_dir, motion=a.motion_out is not None, log=print, **opts, **controls)
        bad = sum(not r["ok"] for r in res)
        print(f"batch: {len(res) - bad} of {len(res)} videos written to {a.out_dir}" + (f", {bad} failed" if bad else ""))
        return 2 if bad else 0
    if not a.image or not a.out or (a.audio is None) == (a.text is None):
        raise VasaError("generate needs --image, --out and exactly one of --audio FILE or --text \"...\" "
                        "(or --batch CSV_OR_DIR --out-dir DIR)")
    _, opts = _prepare(a, controls)
    audio = _speech(a)
    talker = _talker(a)
    portrait = talker.portrait(a.image, crop=opts["crop"])
    gen = talker.generate(portrait, audio, out=a.out, motion_out=a.motion_out, progress=not a.quiet, **opts, **controls)
    secs = gen.info["seconds"]
    mark = (f"watermark model_id={gen.payload.model_id} generation_id={gen.payload.generation_id}"
            if gen.payload else "NO watermark (research flag)")
    h, w = gen.info["resolution"]
    print(f"wrote {a.out}: {gen.num_frames} frames ({gen.num_frames / 25:.2f} s) at {w}x{h}, {mark}; "
          f"{secs:.1f} s ({gen.num_frames / max(secs, 1e-9):.1f} fps)" + (f"; motion in {a.motion_out}" if a.motion_out else ""))
    return 0


def _cmd_reenact(a: argparse.Namespace) -> int:
    _, opts = _prepare(a, {})
    talker = _talker(a)
    parts = [p for p in a.parts.split(",") if p.strip()]
    gen = talker.reenact(a.image, a.driver, parts=parts, out=a.out, driver_crop=not a.no_driver_crop,
                         progress=not a.quiet, **opts)
    print(f"wrote {a.out}: {gen.num_frames} frames, {'+'.join(parts) or 'nothing'} from {a.driver}")
    return 0


def _cmd_stream(a: argparse.Namespace) -> int:
    import json

    from vasa.talker.live import microphone_chunks, run_stream, simulate_stream

    controls = _controls(a)
    if (a.audio is None) == (not a.mic):
        raise VasaError("stream needs exactly one source: --audio FILE (simulated live) or --mic")
    _, opts = _prepare(a, controls)
    if a.mic:
        chunks = microphone_chunks(a.chunk_ms, a.seconds, a.input_device)
        talker = _talker(a)
        stats = run_stream(talker, a.image, chunks, out=a.out, **opts, **controls)
    else:
        from vasa.talker.inputs import load_audio

        audio = load_audio(a.audio)
        talker = _talker(a)
        portrait = talker.portrait(a.image, crop=opts["crop"])
        stats = simulate_stream(talker, portrait, audio, chunk_ms=a.chunk_ms, realtime=not a.no_realtime,
                                out=a.out, **opts, **controls)
    if a.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"streamed {stats['frames']} frames ({stats['audio_s']:.1f} s of audio in {a.chunk_ms:g} ms chunks): "
              f"first frame {stats['first_frame_latency_s']:.3f} s after the first chunk (algorithmic "
              f"{stats['algorithmic_latency_s']:.3f} s), sustained {stats['sustained_fps']} fps, compute "
              f"{stats['compute_fps']} fps ({'keeps up with' if stats['keeps_up'] else 'slower than'} real time)"
              + (f"; wrote {a.out}" if a.out else ""))
    return 0


def _add_generation_args(p: argparse.ArgumentParser, controls: bool = True) -> None:
    from vasa.talker.inputs import CFG_RANGE, DISTANCE_RANGE, GAZE_PITCH_RANGE, GAZE_YAW_RANGE
    from vasa.synth.params import EMOTIONS

    p.add_argument("--checkpoint", help="model bundle folder (latent/, audio/, motion/; default pretrained/vasa-S)")
    p.add_argument("--resolution", type=int, default=512,
                   help="output size in pixels, even, 64..2048 (default 512: decoded at the model's size, upscaled "
                        "bicubic; the watermark needs >= 256 to survive re-encoding)")
    p.add_argument("--no-crop", action="store_true", help="use the portrait as is (no face detection / crop)")
    p.add_argument("--paste", action="store_true",
                   help="paste the animated face back into the full portrait (output: the photo's size; "
                        "--resolution is then ignored)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--no-watermark", action="store_true",
                   help="research only: no invisible watermark; needs VASA_DISABLE_WATERMARK=I_UNDERSTAND")
    if controls:
        p.add_argument("--gaze", help=f"main gaze YAW,PITCH in degrees (yaw {GAZE_YAW_RANGE[0]:g}..{GAZE_YAW_RANGE[1]:g}, "
                                      f"pitch {GAZE_PITCH_RANGE[0]:g}..{GAZE_PITCH_RANGE[1]:g}; default 0,0; none = free)")
        p.add_argument("--distance", type=float, help=f"head distance, {DISTANCE_RANGE[0]:g}..{DISTANCE_RANGE[1]:g} "
                                                      "(1.0 nominal, default)")
        p.add_argument("--emotion", help=f"{' | '.join(EMOTIONS)}, or weights like happy=0.6,surprised=0.2 (default: none)")
        p.add_argument("--cfg-audio", type=float, help=f"audio guidance scale, {CFG_RANGE[0]:g}..{CFG_RANGE[1]:g} (default 0.5)")
        p.add_argument("--cfg-gaze", type=float, help=f"gaze guidance scale, {CFG_RANGE[0]:g}..{CFG_RANGE[1]:g} (default 1.0)")
        p.add_argument("--steps", type=int, help="sampling steps, 1..the model's diffusion steps (default 50)")
        p.add_argument("--sampler", help="ddim (default), dpmpp_2m, ddpm")
        p.add_argument("--seed", type=int, help="random seed (default 0): the same seed gives the same video")
        p.add_argument("--hop", type=int, help="frames generated per motion window, 1..the model's window (default: "
                                               "the window, 50 = 2 s); e.g. 10 cuts a live stream's latency to 0.4 s "
                                               "of audio at 5x the motion cost")


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

    gen = sub.add_parser("generate", help="portrait + speech -> talking-face mp4 (watermarked, with provenance)",
                         description="Animate a portrait with speech: H.264 + AAC mp4 at 25 fps, 512 px by default, "
                                     "carrying the invisible watermark, a provenance tag and a signed C2PA manifest.")
    gen.add_argument("--image", help="portrait (any image format/size; the largest face is detected and cropped)")
    gen.add_argument("--audio", help="speech (wav, flac, mp3, m4a, a video's audio, ...; any rate, any channels)")
    gen.add_argument("--text", help="text to speak with the built-in speech synthesis instead of --audio")
    gen.add_argument("--voice", default="m1", help="voice for --text: m1..m4, f1..f4 (default m1)")
    gen.add_argument("--language", default="en", help="language for --text: en, es, de, fr, cmn (default en)")
    gen.add_argument("--out", help="output mp4")
    gen.add_argument("--motion-out", help="also write the motion trajectory (z_pose, z_dyn per frame) as JSON "
                                          "(with --batch: one .json next to each video)")
    gen.add_argument("--batch", help="CSV (image,audio|text[,out,gaze,distance,emotion,seed,...]) or folder of "
                                     "image + audio pairs (same name): many videos, model loaded once")
    gen.add_argument("--out-dir", help="output folder for --batch")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_generation_args(gen)
    gen.set_defaults(func=_cmd_generate)

    r = sub.add_parser("reenact", help="transfer head pose and/or facial dynamics of a driving video to a portrait")
    r.add_argument("--image", required=True, help="portrait")
    r.add_argument("--driver", required=True, help="driving video (its face is detected and cropped per frame)")
    r.add_argument("--parts", default="pose,dyn", help="what to take from the driver: pose, dyn or pose,dyn (default)")
    r.add_argument("--out", required=True, help="output mp4 (the driver's audio is kept)")
    r.add_argument("--no-driver-crop", action="store_true", help="the driver's frames are already face crops")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_generation_args(r, controls=False)
    r.set_defaults(func=_cmd_reenact)

    st = sub.add_parser("stream", help="live generation: a speech file fed in real time (or --mic); reports latency and fps")
    st.add_argument("--image", required=True, help="portrait")
    st.add_argument("--audio", help="speech file fed as a live source, in real time")
    st.add_argument("--mic", action="store_true", help="live microphone input (needs sounddevice + PortAudio)")
    st.add_argument("--seconds", type=float, help="with --mic: stop after this many seconds (default: Ctrl-C)")
    st.add_argument("--input-device", help="with --mic: sounddevice input device (name or index)")
    st.add_argument("--chunk-ms", type=float, default=80, help="audio chunk size in ms (default 80; 40-200 typical)")
    st.add_argument("--no-realtime", action="store_true", help="feed the file as fast as possible (throughput)")
    st.add_argument("--out", help="also write the streamed frames + audio to this mp4")
    st.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_generation_args(st)
    st.set_defaults(func=_cmd_stream)
    return p


def _one_line_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: each warning is one ``vasa: warning: ...`` line on stderr;
    library deprecation chatter is hidden."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        print(f"vasa: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module="google.protobuf")


def _mute_stderr_at_exit() -> None:
    import os

    try:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # a real command line: MediaPipe's C++ logger prints a stray line at exit; mute it then
        import atexit

        atexit.register(_mute_stderr_at_exit)
    try:
        with warnings.catch_warnings():
            _one_line_warnings()
            return args.func(args)
    except VasaError as e:
        print(f"vasa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vasa: interrupted (finished work is kept; run the same command again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
