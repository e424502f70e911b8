"""Statistics of an ingested real-video corpus (``stats.json``, DVC metrics of ``prepare``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from vasa.synth.params import PARAM_INDEX
from vasa.synth.stats import _load_params, _pct


def ingest_stats(out: str | Path, records: list[dict], statuses: list[dict]) -> dict:
    """Sizes per split, inputs used / skipped (with reasons), label ranges and coverage, cost."""
    out = Path(out)
    params, _ = _load_params(out, records) if records else ({}, {})
    fps = records[0]["fps"] if records else 25
    splits = {}
    for split in sorted({r["split"] for r in records}):
        rs = [r for r in records if r["split"] == split]
        splits[split] = dict(clips=len(rs), frames=int(sum(r["n_frames"] for r in rs)),
                             minutes=round(sum(r["n_frames"] for r in rs) / fps / 60, 2),
                             identities=len({r["identity"] for r in rs}))
    allp = np.concatenate(list(params.values())) if params else np.zeros((0, len(PARAM_INDEX)))

    def col(name: str) -> np.ndarray:
        x = allp[:, PARAM_INDEX[name]] if allp.size else np.zeros(0)
        return x[np.isfinite(x)]

    cond = lambda key: np.asarray([r["conditions"][key] for r in records if key in r["conditions"]], float)  # noqa: E731
    secs = [s["seconds"] for s in statuses if "seconds" in s]
    frames_in = sum(s.get("frames_25fps", 0) for s in statuses)
    skipped = [s for s in statuses if s.get("skipped")]
    return dict(
        clips=len(records),
        frames=int(sum(r["n_frames"] for r in records)),
        hours=round(sum(r["n_frames"] for r in records) / fps / 3600, 3),
        identities=len({r["identity"] for r in records}),
        splits=splits,
        inputs=dict(videos=len(statuses), used=len(statuses) - len(skipped), skipped=len(skipped),
                    reasons=dict(Counter(s["skipped"] for s in skipped))),
        datasets=dict(Counter(r.get("dataset", "?") for r in records)),
        emotions=dict(Counter(r["conditions"].get("emotion", "missing") for r in records)),
        yaw_deg=_pct(col("yaw")), pitch_deg=_pct(col("pitch")), roll_deg=_pct(col("roll")),
        gaze_yaw_deg=_pct(col("gaze_yaw")), gaze_pitch_deg=_pct(col("gaze_pitch")),
        distance=_pct(cond("distance")),
        label_coverage=round(float(np.mean([r["quality"]["label_coverage"] for r in records])), 4) if records else None,
        cost=dict(video_seconds=round(float(sum(secs)), 1),
                  seconds_per_video=round(float(np.median(secs)), 2) if secs else None,
                  input_frames_per_second=round(frames_in / sum(secs), 1) if secs and sum(secs) > 0 else None),
    )
