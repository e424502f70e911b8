"""One video -> clips: probe, detect + track, cut, crop, label, write (see :mod:`vasa.ingest.pipeline`).

:func:`process_video` is what each worker runs. Its result is the video's status, written last to
``status/<key>.json`` (the completion mark a resumed run trusts); the clips go to one shard per
video, ``shards/v<key>.npz`` + ``.json``, and one mp4 per clip under ``clips/<split>/``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vasa.errors import VasaError
from vasa.ingest.crop import crop, crop_track, sharpness
from vasa.ingest.decode import DecodeError, MediaInfo, iter_frames, probe, read_audio
from vasa.ingest.discover import VideoItem
from vasa.ingest.labels import PoseSolver, clip_distance, emotion_condition, label_matrix, main_gaze, measure
from vasa.ingest.track import IouTracker, Segment, cut_segments, hs_histogram, scene_cuts
from vasa.io.atomic import write_json, write_text
from vasa.io.shards import ClipData, write_shard
from vasa.io.video import write_mp4
from vasa.synth.params import PARAM_INDEX

FPS, SAMPLE_RATE = 25, 16000
SPLITS = ("train", "val", "test")
MESH_SIZE = 256  # the face mesh sees crops of at least this size
MEASURED = ("yaw", "pitch", "roll", "tz", "scale", "jaw", "blink_l", "blink_r", "gaze_yaw", "gaze_pitch")


@dataclass(frozen=True)
class IngestSettings:
    """Everything that changes the output (kept in ``settings.json``; a resumed run must match)."""

    resolution: int = 128  # output frame size (square)
    min_frames: int = 50  # shortest clip kept (2 s at 25 fps)
    min_face: float = 40.0  # narrowest median face box kept, in decoded-frame pixels
    min_sharpness: float = 20.0  # median variance of the Laplacian of the crops
    multi_face_ratio: float = 0.7  # a second face at least this wide (relative) makes a frame ambiguous
    scene_cut: float = 0.5  # Bhattacharyya distance of consecutive HS histograms that marks a cut
    fov_deg: float = 18.0  # assumed vertical field of view of the source camera (PnP)
    max_side: int = 1920  # decode larger frames scaled down to this longest side
    detect_side: int = 640  # detect faces on a copy scaled down to this longest side
    split_fractions: tuple = (0.8, 0.1, 0.1)  # identity fractions for train / val / test
    align: bool = True  # phone alignment (pocketsphinx) where a transcript exists
    keep_frames_mb: int = 256  # decoded frames kept between the passes (else decode twice)

    def validate(self) -> None:
        if not 64 <= self.resolution <= 512 or self.resolution % 2:
            raise VasaError(f"resolution {self.resolution} is out of range (an even number from 64 to 512)")
        if self.min_frames < 1:
            raise VasaError(f"min_frames must be >= 1, got {self.min_frames}")
        fr = self.split_fractions
        if len(fr) != 3 or any(x < 0 for x in fr) or abs(sum(fr) - 1) > 1e-6:
            raise VasaError(f"split_fractions must be three non-negative numbers summing to 1, got {list(fr)}")


def split_of(identity: str, fractions: tuple = (0.8, 0.1, 0.1)) -> str:
    """Identity-disjoint split: a hash of the identity, mapped through the cumulative fractions."""
    u = int(hashlib.sha1(f"vasa-split:{identity}".encode()).hexdigest()[:12], 16) / float(16 ** 12)
    acc = 0.0
    for name, f in zip(SPLITS, fractions):
        acc += f
        if u < acc:
            return name
    return SPLITS[-1]


_DETECTOR = None


def _detector() -> "FaceDetector":  # noqa: F821 - imported lazily (mediapipe)
    global _DETECTOR
    if _DETECTOR is None:
        from vasa.ingest.detect import FaceDetector

        _DETECTOR = FaceDetector()
    return _DETECTOR


def _analyse(item: VideoItem, info: MediaInfo, st: IngestSettings) -> tuple[int, list[Segment], Counter, list | None]:
    """Pass 1: detections, tracks, scene cuts -> (n_frames, segments, dropped, kept frames or None)."""
    import cv2

    det = _detector()
    scale = min(1.0, st.detect_side / max(info.width, info.height))
    tracker, hists = IouTracker(), []
    kept: list[np.ndarray] | None = []
    budget = st.keep_frames_mb * 2 ** 20
    n = 0
    for k, frame in iter_frames(item.path, info, FPS):
        small = frame if scale >= 1.0 else cv2.resize(
            frame, (max(2, round(info.width * scale)), max(2, round(info.height * scale))), interpolation=cv2.INTER_AREA)
        dets = det.detect(small)
        for d in dets:
            d.box = d.box / scale
        tracker.update(k, dets)
        hists.append(hs_histogram(small))
        if kept is not None:
            kept.append(frame)
            if len(kept) * frame.nbytes > budget:
                kept = None
        n = k + 1
    segments, dropped = cut_segments(tracker.finish(), n, scene_cuts(hists, st.scene_cut), st.min_frames,
                                     st.min_face, st.multi_face_ratio)
    return n, segments, dropped, kept


def _label_segments(item: VideoItem, info: MediaInfo, segments: list[Segment], kept: list | None,
                    st: IngestSettings) -> tuple[dict, dict]:
    """Pass 2: crops (resolution), raw labels and sharpness of every segment."""
    import cv2

    from vasa.eval.landmarks import FaceMesh

    tracks = {id(s): crop_track(s.boxes) for s in segments}
    out = {id(s): dict(frames=[], raw=[], sharp=[]) for s in segments}
    by_frame = {k: s for s in segments for k in range(s.start, s.stop)}
    solver = PoseSolver(info.width, info.height, st.fov_deg)
    mesh, current = None, None
    msize = max(MESH_SIZE, st.resolution)
    source = enumerate(kept) if kept is not None else iter_frames(item.path, info, FPS)
    last = max(s.stop for s in segments)
    try:
        for k, frame in source:
            if k >= last:
                break
            seg = by_frame.get(k)
            if seg is None:
                continue
            if seg is not current:  # a new clip: fresh tracking state
                if mesh is not None:
                    mesh.close()
                mesh, current = FaceMesh(static=False, min_size=msize), seg
                solver.reset()
            ct, o = tracks[id(seg)], out[id(seg)]
            i = k - seg.start
            big = crop(frame, ct.cx[i], ct.cy[i], ct.side[i], msize)
            small = big if msize == st.resolution else cv2.resize(big, (st.resolution, st.resolution),
                                                                 interpolation=cv2.INTER_AREA)
            res = mesh.process(big)
            o["raw"].append(None if res is None else measure(ct.to_source(i, res.landmarks, msize), solver))
            o["frames"].append(small)
            o["sharp"].append(sharpness(small))
    finally:
        if mesh is not None:
            mesh.close()
    return tracks, out


def _align(item: VideoItem, audio: np.ndarray) -> tuple[list | None, str | None]:
    """Phones of the whole video's transcript, or (None, why not)."""
    if not item.text:
        return None, None
    if len(audio) > 120 * SAMPLE_RATE:
        return None, "audio longer than 120 s: not aligned"
    try:
        from vasa.synth.align import align_phones

        return [(p, float(a), float(b)) for p, a, b in align_phones(audio, item.text, SAMPLE_RATE)], None
    except Exception as e:  # noqa: BLE001 - alignment is optional; the clip stays without phones
        return None, f"alignment failed: {type(e).__name__}: {str(e)[:120]}"


def _skip(item: VideoItem, reason: str, detail: str = "", **extra) -> dict:
    return dict(key=item.key, path=item.rel, identity=item.identity, clips=[], skipped=reason, detail=detail, **extra)


def _dominant(dropped: Counter) -> str:
    return max(dropped.items(), key=lambda kv: kv[1])[0] if dropped else "no usable segment"


def process_video(item: VideoItem, out: Path, st: IngestSettings) -> dict:
    """Turn one video into clips (see module docstring); returns and writes its status."""
    t0 = time.perf_counter()
    out = Path(out)
    status_path = out / "status" / f"{item.key}.json"
    started = out / "status" / f"{item.key}.started"
    try:
        attempts = int(started.read_text().strip() or 0) if started.is_file() else 0
    except (OSError, ValueError):
        attempts = 1
    if attempts >= 2:
        status = _skip(item, "crashed", "a decoder or detector crashed twice on this file")
        write_json(status_path, status)
        started.unlink(missing_ok=True)
        return status
    write_text(started, str(attempts + 1))
    try:
        status = _process(item, out, st)
    except DecodeError as e:
        status = _skip(item, e.reason, e.detail)
    except VasaError:
        raise
    except KeyboardInterrupt:  # an interrupted attempt is not a crash
        if attempts:
            write_text(started, str(attempts))
        else:
            started.unlink(missing_ok=True)
        raise
    except Exception as e:  # noqa: BLE001 - one bad video must not stop a dataset
        status = _skip(item, "error", f"{type(e).__name__}: {str(e)[:200]}")
    status["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(status_path, status)
    started.unlink(missing_ok=True)
    return status


def _process(item: VideoItem, out: Path, st: IngestSettings) -> dict:
    info = probe(item.path, st.max_side)
    if not info.has_audio:
        return _skip(item, "no audio stream")
    n, segments, dropped, kept = _analyse(item, info, st)
    src = dict(src_width=info.src_width, src_height=info.src_height, src_fps=round(info.src_fps, 3),
               codec=info.codec, frames_25fps=n)
    if n < st.min_frames:
        return _skip(item, "too short", f"{n} frames at 25 fps (< {st.min_frames})", **src)
    if not segments:
        return _skip(item, _dominant(dropped), _summary(dropped, n), dropped=dict(+dropped), **src)
    audio = read_audio(item.path, SAMPLE_RATE)
    spf = SAMPLE_RATE // FPS
    n_av = min(n, len(audio) // spf)
    kept_segments = []
    for s in segments:
        if s.stop > n_av:
            dropped["audio ended"] += s.stop - max(s.start, n_av)
            s = Segment(s.start, n_av, s.track, s.boxes[:max(0, n_av - s.start)], s.sources[:max(0, n_av - s.start)])
        if len(s) >= st.min_frames:
            kept_segments.append(s)
        elif len(s) > 0:
            dropped["too short"] += len(s)
    if not kept_segments:
        return _skip(item, _dominant(dropped), _summary(dropped, n), dropped=dict(+dropped), **src)
    tracks, measured = _label_segments(item, info, kept_segments, kept, st)
    phones, align_note = _align(item, audio[:n_av * spf]) if st.align else (None, None)
    split = split_of(item.identity, st.split_fractions)
    emo = emotion_condition(item.emotion, item.emotion_intensity)
    clips = []
    for s in kept_segments:
        m = measured[id(s)]
        if len(m["frames"]) != len(s):
            dropped["decode ended"] += len(s) - len(m["frames"])
            continue
        if float(np.median(m["sharp"])) < st.min_sharpness:
            dropped["blurry"] += len(s)
            continue
        params = label_matrix(m["raw"])
        ct = tracks[id(s)]
        cid = f"{item.key[:12]}_{len(clips):02d}"
        cond: dict = {}
        g = main_gaze(params[:, PARAM_INDEX["gaze_yaw"]], params[:, PARAM_INDEX["gaze_pitch"]])
        if g is not None:
            cond["gaze_yaw"], cond["gaze_pitch"] = g
        d = clip_distance(params)
        if d is not None:
            cond["distance"] = d
        if emo is not None:
            cond["emotion"], cond["emotion_intensity"] = emo
        t_a, t_b = s.start / FPS, s.stop / FPS
        rec = dict(
            id=cid, kind="speech", split=split, identity=item.identity, dataset=item.dataset, style="real",
            language=None, voice=None, fps=FPS, duration=round(len(s) / FPS, 4),
            text=item.text if (item.text and len(s) >= 0.9 * n_av) else None,
            conditions=cond, dataset_emotion=item.emotion,
            source=dict(path=item.rel, start_frame=s.start, stop_frame=s.stop, start_s=round(t_a, 4), **src,
                        detectors=dict(Counter(s.sources))),
            crop=dict(median_side_px=round(float(np.median(ct.side)), 1),
                      median_face_px=round(float(np.median(s.boxes[:, 2] - s.boxes[:, 0])), 1)),
            quality=dict(sharpness=round(float(np.median(m["sharp"])), 1),
                         label_coverage=round(float(np.mean([r is not None for r in m["raw"]])), 4),
                         reprojection_px=_median([r.reproj_px for r in m["raw"] if r is not None])),
            measured=list(MEASURED), video=f"clips/{split}/{cid}.mp4",
        )
        if phones is not None:
            rec["phonemes"] = [[round(a - t_a, 3), round(b - t_a, 3), p] for p, a, b in phones if a >= t_a and b <= t_b]
            rec["phone_set"] = "arpabet"
        if align_note:
            rec["alignment"] = align_note
        clip_audio = audio[s.start * spf:s.stop * spf].astype(np.float32)
        clips.append(ClipData(record=rec, frames=np.stack(m["frames"]), params=params, audio=clip_audio))
    if not clips:
        return _skip(item, _dominant(dropped), _summary(dropped, n), dropped=dict(+dropped), **src)
    for c in clips:
        write_mp4(out / c.record["video"], c.frames, fps=FPS, audio=c.audio, sr=SAMPLE_RATE,
                  metadata={"comment": f"vasa ingest of {item.rel}"})
    records = write_shard(out / "shards" / f"v{item.key}.npz", clips)
    return dict(key=item.key, path=item.rel, identity=item.identity, clips=[r["id"] for r in records],
                shard=f"v{item.key}", skipped=None, frames_out=int(sum(len(c.frames) for c in clips)),
                dropped=dict(+dropped), **src)


def _median(x: list[float]) -> float | None:
    return round(float(np.median(x)), 3) if x else None


def _summary(dropped: Counter, n: int) -> str:
    return f"of {n} frames dropped: " + ", ".join(f"{k} {v}" for k, v in (+dropped).most_common())
