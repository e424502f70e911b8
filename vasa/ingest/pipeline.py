"""Real talking-head videos -> the corpus format of the generated corpus (shards, manifest, labels).

``ingest(src, out, ...)`` is the entry point (``vasa ingest`` and the ``prepare`` stage with a real
source). Per input video (:func:`vasa.ingest.process.process_video`, one worker each):

1. probe the container; no video or audio stream, or an unreadable file, is skipped with its reason;
2. pass 1: decode at 25 fps (:mod:`~vasa.ingest.decode`), detect faces on a copy at most
   ``detect_side`` pixels wide (:mod:`~vasa.ingest.detect`), track them, find scene cuts, and cut the
   main speaker's segments (:mod:`~vasa.ingest.track`);
3. read the audio (16 kHz mono, on the video's clock) and drop frames past its end;
4. pass 2: crop every segment with a smoothed box (:mod:`~vasa.ingest.crop`), run the face mesh on
   the crop, measure pose, gaze, distance, mouth and blinks (:mod:`~vasa.ingest.labels`), drop
   blurry segments (median variance of the Laplacian below ``min_sharpness``);
5. write the video's clips as one shard ``shards/v<key>.npz`` (+ ``.json``) and one mp4 per clip,
   then ``status/<key>.json`` (the completion mark: a finished video is never redone).

Short videos keep their decoded frames between the passes (up to ``keep_frames_mb``); longer ones
are decoded twice, so memory stays bounded whatever the length or resolution. ``finalize`` then
writes ``manifest.jsonl``, ``schema.json``, ``stats.json`` and ``skipped.json`` from every finished
video in ``out`` (whichever ``--shard`` run produced it). Splits are identity-disjoint: a hash of the
identity picks train / val / test.

A video that makes a native library crash is retried once in a fresh worker, then skipped
(``crashed``); any other failure while processing a video skips it with the error as detail.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

from vasa.errors import VasaError
from vasa.ingest.crop import FRAMING
from vasa.ingest.discover import discover, parse_shard, shard_items
from vasa.ingest.labels import CALIBRATION
from vasa.ingest.process import FPS, MEASURED, SAMPLE_RATE, SPLITS, IngestSettings, process_video, split_of
from vasa.io.atomic import disk_error, write_json, write_text
from vasa.synth.params import FRAME_PARAMS, NOMINAL_DISTANCE, PARAM_NAMES

FORMAT_VERSION = 1


def _job(args: tuple) -> dict:
    item, out, st = args
    return process_video(item, Path(out), st)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core
    os.environ.setdefault("GLOG_minloglevel", "2")


def _remove_old_temporaries(out: Path, age_s: float = 24 * 3600) -> None:
    """Delete temporaries of interrupted runs, sparing recent ones: ``--shard`` runs on other
    machines may be writing into the same (shared) folder right now."""
    now = time.time()
    for p in out.rglob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > age_s:
                p.unlink()
        except OSError:
            continue


def _check_settings(out: Path, st: IngestSettings) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".vasa-write-probe").write_bytes(b"ok")
        (out / ".vasa-write-probe").unlink()
    except OSError as e:
        raise disk_error(out, e) from None
    path = out / "settings.json"
    mine = json.loads(json.dumps(asdict(st)))
    if path.is_file():
        theirs = json.loads(path.read_text())
        if "clips" in theirs and "resolution" in theirs and "min_frames" not in theirs:
            raise VasaError(f"{out} holds a generated corpus (vasa synth): ingest real videos into another --out folder")
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise VasaError(f"{out} holds an ingest with other settings ({', '.join(diff)}): "
                            "use another --out folder or the same settings")
    else:
        write_json(path, mine)


def ingest(src: str | Path, out: str | Path = "data/ingested", resolution: int = 128, shard: str | None = None,
           workers: int = 0, progress: bool = True, **settings) -> dict:
    """Ingest the videos of ``src`` (folder or CSV) into ``out``; returns the corpus statistics.

    ``shard="i/n"`` processes only the i-th of n deterministic parts of the input list (run the n
    parts anywhere, into one shared ``out`` or copy their ``out`` folders together, then any run
    finalises the union). ``settings``: fields of :class:`IngestSettings`.
    """
    from tqdm.auto import tqdm

    unknown = sorted(set(settings) - set(IngestSettings.__dataclass_fields__))
    if unknown:
        raise VasaError(f"unknown ingest setting {unknown[0]!r} (allowed: {', '.join(IngestSettings.__dataclass_fields__)})")
    if "split_fractions" in settings:
        settings["split_fractions"] = tuple(settings["split_fractions"])
    st = IngestSettings(resolution=resolution, **settings)
    st.validate()
    index, count = parse_shard(shard)
    out = Path(out)
    inside = out.resolve()
    items = [it for it in shard_items(discover(src), index, count)
             if inside not in Path(it.path).parents]  # never ingest our own output clips
    _check_settings(out, st)
    _remove_old_temporaries(out)
    todo = [it for it in items if not (out / "status" / f"{it.key}.json").is_file()]
    n_todo = len(todo)
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="ingest videos", unit="video",
               disable=not progress)
    t0 = time.perf_counter()
    try:
        if workers == 1 or len(todo) <= 1:
            _init_worker()
            for it in todo:
                process_video(it, out, st)
                bar.update(1)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            for _ in range(len(todo) + 1):  # a crashed worker breaks the pool: restart on what is left
                if not todo:
                    break
                started = [it for it in todo if (out / "status" / f"{it.key}.started").is_file()]
                try:
                    # videos that were in flight when a worker died run alone, so a crash blames one file
                    for it in started:
                        with ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker) as ex:
                            ex.submit(_job, (it, str(out), st)).result()
                            bar.update(1)
                    rest = [it for it in todo if it not in started]
                    with ProcessPoolExecutor(min(workers, max(1, len(rest))), mp_context=ctx,
                                             initializer=_init_worker) as ex:
                        futs = [ex.submit(_job, (it, str(out), st)) for it in rest]
                        for f in as_completed(futs):
                            f.result()
                            bar.update(1)
                    todo = []
                except BrokenProcessPool:
                    todo = [it for it in todo if not (out / "status" / f"{it.key}.json").is_file()]
            if todo:
                raise VasaError(f"{len(todo)} videos left unprocessed: worker processes keep dying before they "
                                "start (run with --workers 1 to see why); finished videos are kept")
    finally:
        bar.close()
    stats = finalize(out, st)
    stats["run"] = dict(seconds=round(time.perf_counter() - t0, 1), videos=len(items), processed=n_todo,
                        shard=f"{index}/{count}", workers=workers)
    return stats


def finalize(out: str | Path, st: IngestSettings | None = None) -> dict:
    """Write manifest, schema, stats and skipped report from every finished video in ``out``."""
    from vasa.ingest.stats import ingest_stats
    from vasa.synth.render import camera

    out = Path(out)
    if st is None:
        sp = out / "settings.json"
        if not sp.is_file():
            raise VasaError(f"no ingest in {out} (settings.json missing): run `vasa ingest SRC --out {out}` first")
        raw = json.loads(sp.read_text())
        raw["split_fractions"] = tuple(raw["split_fractions"])
        st = IngestSettings(**raw)
    statuses = []
    for p in sorted((out / "status").glob("*.json")):
        try:
            statuses.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # an unreadable mark: that video counts as unfinished
    statuses.sort(key=lambda s: s["path"])
    records = []
    for s in statuses:
        if s.get("clips"):
            records.extend(json.loads((out / "shards" / f"{s['shard']}.json").read_text()))
    write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_json(out / "schema.json", dict(
        format_version=FORMAT_VERSION, fps=FPS, sample_rate=SAMPLE_RATE, resolution=st.resolution,
        params=list(PARAM_NAMES), param_ranges={k: list(v) for k, v in FRAME_PARAMS.items()},
        camera=camera(st.resolution), nominal_distance=NOMINAL_DISTANCE, splits=list(SPLITS), kinds=["speech"],
        source="real", measured_params=list(MEASURED), calibration={k: list(v) for k, v in CALIBRATION.items()},
        framing=FRAMING, fov_deg=st.fov_deg,
    ))
    skipped = [dict(path=s["path"], reason=s["skipped"], detail=s.get("detail", ""), dropped=s.get("dropped", {}))
               for s in statuses if s.get("skipped")]
    dropped_total: Counter = Counter()
    for s in statuses:
        dropped_total.update(s.get("dropped", {}))
    write_json(out / "skipped.json", dict(inputs=len(statuses), skipped=skipped,
                                          reasons=dict(Counter(s["reason"] for s in skipped)),
                                          dropped_frames=dict(dropped_total)))
    stats = ingest_stats(out, records, statuses)
    write_json(out / "stats.json", stats)
    return stats


__all__ = ["IngestSettings", "ingest", "finalize", "process_video", "split_of"]
