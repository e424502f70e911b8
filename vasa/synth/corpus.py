"""Generate the talking-head corpus: plan -> shards of rendered clips -> manifest, schema, stats.

``synth_corpus`` is the one entry point (used by ``vasa synth`` and the ``prepare`` stage). Work is
split into shards that both cores render in parallel; each shard is written atomically, so an
interrupted run resumes where it stopped (complete shards are kept, partial ones redone) and the
same seed gives identical frames and labels whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vasa.errors import VasaError
from vasa.io.atomic import disk_error, remove_stale_temporaries, write_json, write_text
from vasa.io.shards import ClipData, shard_complete, write_shard
from vasa.synth.params import FRAME_PARAMS, NOMINAL_DISTANCE, PARAM_INDEX, PARAM_NAMES, clip_params, neutral_params
from vasa.synth.plan import ClipSpec, plan_corpus, shard_plan
from vasa.synth.stats import corpus_stats

FORMAT_VERSION = 1
SAMPLE_RATE = 16000
TIMING_FILE = "synth_timing.json"  # wall-clock seconds of each generation run (in .dvcignore: not content)


def _identity(index: int, seed: int):
    from vasa.synth.identity import sample_identity

    return sample_identity(np.random.default_rng([seed, 1, index]))


def gallery_params(rng: np.random.Generator) -> np.ndarray:
    """A random still: pose, expression, gaze and distance drawn from the corpus ranges."""
    p = neutral_params(float(rng.uniform(0.8, 1.25)))
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    p[PARAM_INDEX["yaw"]], p[PARAM_INDEX["pitch"]], p[PARAM_INDEX["roll"]] = u(-35, 35), u(-20, 20), u(-15, 15)
    p[PARAM_INDEX["tx"]], p[PARAM_INDEX["ty"]] = u(-0.2, 0.2), u(-0.2, 0.2)
    for name in ("jaw", "lip_round", "lip_spread", "lip_press", "brow_furrow", "eye_wide"):
        p[PARAM_INDEX[name]] = u(0, 1) ** 2
    for name in ("smile", "brow_raise"):
        p[PARAM_INDEX[name]] = u(-1, 1) * u(0, 1)
    blink = 0.0 if rng.random() < 0.85 else u(0, 1)
    p[PARAM_INDEX["blink_l"]] = p[PARAM_INDEX["blink_r"]] = blink
    p[PARAM_INDEX["gaze_yaw"]], p[PARAM_INDEX["gaze_pitch"]] = u(-20, 20), u(-12, 12)
    p[PARAM_INDEX["scale"]] = NOMINAL_DISTANCE / p[PARAM_INDEX["tz"]]
    return clip_params(p)


def make_clip(spec: ClipSpec, seed: int, resolution: int, supersample: int, fps: int,
              gallery_frames: int, voices: tuple[str, ...] | None = None) -> ClipData:
    """Generate one clip (speech-driven video, or an identity's gallery stills)."""
    from vasa.synth.render import HeadRenderer

    rng = np.random.default_rng([seed, 2, spec.index])
    identity = _identity(spec.identity, seed)
    renderer = HeadRenderer(identity, resolution=resolution, supersample=supersample, style=spec.style)
    record = spec.to_dict()
    record["id"] = record.pop("clip_id")
    record["identity_params"] = identity.to_dict()
    if spec.kind == "gallery":
        params = np.stack([gallery_params(rng) for _ in range(gallery_frames)])
        frames = np.stack([renderer.render(p) for p in params])
        return ClipData(record=record, frames=frames, params=params)

    from vasa.synth.animation import animate, sample_conditions
    from vasa.synth.sentences import sample_sentence
    from vasa.synth.speech import VOICES, synthesize

    voice = str(rng.choice(sorted(voices or VOICES)))
    sentence_split = "test" if spec.split.startswith("test") else "train"
    text = sample_sentence(rng, spec.language, split=sentence_split)
    utt = synthesize(text, spec.language, voice, rng=rng)
    cond = sample_conditions(rng)
    anim = animate(utt, cond, rng, fps=fps)
    frames = np.stack([renderer.render(p) for p in anim.params])
    record.update(
        text=utt.text, voice=voice, duration=len(utt.audio) / utt.sr, fps=fps,
        conditions=cond.to_dict(),
        phonemes=[[round(a, 4), round(b, 4), ph] for a, b, ph in utt.phonemes],
        words=[[round(a, 4), round(b, 4), w] for a, b, w in utt.words],
        frame_phonemes=list(anim.phoneme),  # phoneme at each frame centre ("sil" = silence)
        video=f"clips/{spec.split}/{record['id']}.mp4",
    )
    return ClipData(record=record, frames=frames, params=anim.params, viseme=anim.viseme, audio=utt.audio)


def _work(args: tuple) -> tuple[str, int, float]:
    """Worker: generate one shard (its mp4s first, then the shard file). Returns (name, frames, s)."""
    name, specs, out, seed, resolution, supersample, fps, gallery_frames, voices = args
    import cv2

    from vasa.io.video import write_mp4  # here: importing the corpus module needs no PyAV

    cv2.setNumThreads(1)  # one process per core: no thread oversubscription
    t0 = time.perf_counter()
    out = Path(out)
    clips = []
    for spec in specs:
        clip = make_clip(spec, seed, resolution, supersample, fps, gallery_frames, voices)
        if spec.kind == "speech":
            write_mp4(out / clip.record["video"], clip.frames, fps=fps, audio=clip.audio, sr=SAMPLE_RATE,
                      metadata={"comment": "vasa generated corpus (synthetic speech and rendered face)"})
        clips.append(clip)
    write_shard(out / "shards" / f"{name}.npz", clips)
    return name, sum(len(c.frames) for c in clips), time.perf_counter() - t0


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".vasa-write-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise disk_error(out, e) from None


def synth_corpus(
    out: str | Path = "data/corpus",  # output folder
    clips: int = 1000,  # English clips (train / val / test)
    ood_lang_clips: int = 100,  # held-out language clips (test identities)
    art_clips: int = 50,  # artistic-style clips (test identities)
    identities: int = 2000,  # identity pool, split identity-disjointly
    gallery_per_identity: int = 4,  # stills per identity in the gallery
    split_fractions: list[float] = (0.8, 0.1, 0.1),  # identity fractions for train / val / test
    languages: list[str] = ("en", "es", "de", "fr", "cmn"),  # "en" + held-out languages
    voices: list[str] = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4"),  # espeak voice variants
    seed: int = 0,  # everything derives from it
    resolution: int = 128,  # output frame size (square)
    supersample: int = 2,  # render at resolution * supersample, then downsample
    fps: int = 25,
    clips_per_shard: int = 25,
    workers: int = 0,  # processes; 0 = all cores
    progress: bool = True,
) -> dict:
    """Generate (or finish) the corpus in ``out``; returns its statistics."""
    from vasa.synth.speech import LANGUAGES, VOICES

    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        raise VasaError(f"unknown language {bad[0]!r} (allowed: {', '.join(sorted(LANGUAGES))})")
    badv = [v for v in voices if v not in VOICES]
    if badv or not voices:
        raise VasaError(f"unknown voice {badv[0] if badv else None!r} (allowed: {', '.join(sorted(VOICES))})")
    if not 64 <= resolution <= 512 or resolution % 2:
        raise VasaError(f"resolution {resolution} is out of range (an even number from 64 to 512)")
    out = Path(out)
    _check_writable(out)
    settings = dict(clips=clips, ood_lang_clips=ood_lang_clips, art_clips=art_clips, identities=identities,
                    gallery_per_identity=gallery_per_identity, split_fractions=list(split_fractions),
                    languages=list(languages), voices=list(voices), seed=seed, resolution=resolution, supersample=supersample,
                    fps=fps, clips_per_shard=clips_per_shard)
    settings_path = out / "settings.json"
    if settings_path.is_file() and json.loads(settings_path.read_text()) != settings:
        # Different settings: old shards would mix two corpora. Start over in place.
        for p in list((out / "shards").glob("*")) + [out / "manifest.jsonl", out / TIMING_FILE]:
            p.unlink(missing_ok=True)
    write_json(settings_path, settings)
    remove_stale_temporaries(out)

    specs = plan_corpus(clips, ood_lang_clips, art_clips, identities, gallery_per_identity,
                        list(split_fractions), list(languages), seed)
    shards = shard_plan(specs, clips_per_shard)
    todo = [(n, s) for n, s in shards if not shard_complete(out / "shards" / f"{n}.npz")]
    workers = workers or os.cpu_count() or 1
    jobs = [(n, s, str(out), seed, resolution, supersample, fps, gallery_per_identity, tuple(voices))
            for n, s in todo]
    bar = tqdm(total=len(shards), initial=len(shards) - len(todo), desc="synth shards", unit="shard",
               disable=not progress)
    n_frames, t0 = 0, time.perf_counter()
    try:
        if workers == 1 or len(jobs) <= 1:
            results = map(_work, jobs)
            for _, nf, _ in results:
                n_frames += nf
                bar.update(1)
                bar.set_postfix(fps=f"{n_frames / (time.perf_counter() - t0):.0f}")
        else:
            with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
                for _, nf, _ in pool.imap_unordered(_work, jobs):
                    n_frames += nf
                    bar.update(1)
                    bar.set_postfix(fps=f"{n_frames / (time.perf_counter() - t0):.0f}")
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0

    records = []
    for name, _ in shards:
        records.extend(json.loads((out / "shards" / f"{name}.json").read_text()))
    write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    from vasa.synth.render import camera

    write_json(out / "schema.json", dict(
        format_version=FORMAT_VERSION, fps=fps, sample_rate=SAMPLE_RATE, resolution=resolution,
        params=list(PARAM_NAMES), param_ranges={k: list(v) for k, v in FRAME_PARAMS.items()},
        camera=camera(resolution), nominal_distance=NOMINAL_DISTANCE,
        splits=["train", "val", "test", "test_lang", "test_art"], kinds=["speech", "gallery"],
    ))
    # Generation speed over every run that produced this corpus (a resumed run adds its share). Wall-clock
    # times are not content: they live in TIMING_FILE, which .dvcignore keeps out of the corpus's DVC hash,
    # and stats.json holds only what the seed determines (a regenerated corpus hashes the same).
    log_path = out / TIMING_FILE
    runs = json.loads(log_path.read_text()) if log_path.is_file() else []
    if n_frames:
        runs.append(dict(seconds=round(elapsed, 1), frames=n_frames, workers=workers))
        write_json(log_path, runs)
    stats = corpus_stats(out, records)
    write_json(out / "stats.json", stats)
    secs, frames = sum(r["seconds"] for r in runs), sum(r["frames"] for r in runs)
    return {**stats, "generation": dict(seconds=round(secs, 1), frames=frames, runs=len(runs),
                                        workers=runs[-1]["workers"] if runs else workers,
                                        frames_per_second=round(frames / secs, 1) if secs > 0 else None)}
