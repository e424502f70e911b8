"""Corpus statistics: sizes per split, languages, voices, emotions, pose/gaze ranges, blink rate.

Written to ``stats.json`` (a DVC metrics file) by the ``prepare`` stage and shown in its notebook.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from vasa.synth.params import PARAM_INDEX


def blink_events(blink: np.ndarray, threshold: float = 0.5) -> int:
    """Number of blinks in a per-frame eyelid-closure track (upward threshold crossings)."""
    closed = blink >= threshold
    return int(np.count_nonzero(closed[1:] & ~closed[:-1]) + (1 if len(closed) and closed[0] else 0))


def _load_params(out: Path, records: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-clip ground-truth params and visemes, read from the shards' arrays without decoding frames."""
    by_shard: dict[str, list[dict]] = {}
    for r in records:
        by_shard.setdefault(r["shard"], []).append(r)
    params, visemes = {}, {}
    for name, recs in by_shard.items():
        with np.load(out / "shards" / f"{name}.npz") as z:
            off, p, v = z["clip_offsets"], z["params"], z["viseme"]
        for r in recs:
            params[r["id"]] = p[off[r["index"]]:off[r["index"] + 1]]
            visemes[r["id"]] = v[off[r["index"]]:off[r["index"] + 1]]
    return params, visemes


def _pct(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    q = np.percentile(x, [1, 50, 99])
    return {"p1": round(float(q[0]), 2), "median": round(float(q[1]), 2), "p99": round(float(q[2]), 2),
            "min": round(float(x.min()), 2), "max": round(float(x.max()), 2)}


def corpus_stats(out: str | Path, records: list[dict]) -> dict:
    """Statistics of a finished corpus (see module docstring)."""
    out = Path(out)
    speech = [r for r in records if r["kind"] == "speech"]
    gallery = [r for r in records if r["kind"] == "gallery"]
    params, visemes = _load_params(out, speech)
    fps = speech[0]["fps"] if speech else 25
    splits = {}
    for split in sorted({r["split"] for r in records}):
        rs = [r for r in speech if r["split"] == split]
        splits[split] = dict(
            clips=len(rs),
            frames=int(sum(r["n_frames"] for r in rs)),
            minutes=round(sum(r["n_frames"] for r in rs) / fps / 60, 2),
            identities=len({r["identity"] for r in rs}),
            gallery_identities=len({r["identity"] for r in gallery if r["split"] == split}),
        )
    allp = np.concatenate(list(params.values())) if params else np.zeros((0, len(PARAM_INDEX)))
    col = lambda n: allp[:, PARAM_INDEX[n]] if allp.size else np.zeros(0)  # noqa: E731
    total_min = sum(r["n_frames"] for r in speech) / fps / 60
    blinks = sum(blink_events(p[:, PARAM_INDEX["blink_l"]]) for p in params.values())
    dur = [r["duration"] for r in speech]
    # mouth closed in silence (viseme 0 = "sil"); surprise keeps the jaw slightly open by design
    sil_jaw = [params[r["id"]][visemes[r["id"]] == 0, PARAM_INDEX["jaw"]] for r in speech
               if r["conditions"]["emotion"] != "surprised"]
    sil_jaw = np.concatenate(sil_jaw) if sil_jaw else np.zeros(0)
    return dict(
        clips=len(speech),
        gallery_stills=int(sum(r["n_frames"] for r in gallery)),
        identities=len({r["identity"] for r in records}),
        hours=round(total_min / 60, 3),
        frames=int(sum(r["n_frames"] for r in speech)),
        splits=splits,
        languages=dict(Counter(r["language"] for r in speech)),
        voices=dict(Counter(r["voice"] for r in speech)),
        emotions=dict(Counter(r["conditions"]["emotion"] for r in speech)),
        styles=dict(Counter(r["style"] for r in speech)),
        duration_s=_pct(np.asarray(dur, float)),
        yaw_deg=_pct(col("yaw")),
        pitch_deg=_pct(col("pitch")),
        roll_deg=_pct(col("roll")),
        gaze_yaw_deg=_pct(col("gaze_yaw")),
        gaze_pitch_deg=_pct(col("gaze_pitch")),
        distance=_pct(np.asarray([r["conditions"]["distance"] for r in speech], float)),
        jaw=_pct(col("jaw")),
        blinks_per_minute=round(blinks / total_min, 2) if total_min else 0.0,
        silence_mouth_closed=round(float((sil_jaw < 0.1).mean()), 4) if sil_jaw.size else None,
    )
