"""Measurement beside generation: a worker process measures videos while the main process generates.

On 2 cores the generator (torch) and the judges (MediaPipe, dlib, the experts) each keep one busy,
so the evaluation's wall time is about the larger of the two instead of their sum. ``workers=0``
measures inline (tests, debugging). Workers are forked when the pool is created -- before the
evaluation runs any model, so no MediaPipe graph or torch thread pool is copied -- (spawning would
re-run a calling script that lacks an ``if __name__ == "__main__"`` guard), use one torch thread,
and build their own :class:`vasa.eval.measure.VideoMeasurer`; at most ``2 * workers + 1`` jobs wait
at once, so memory stays bounded.

>>> pool = MeasurePool(workers=1, experts="models/experts", syncnet_weights="", csim_frames=4,
...                    drift_seconds=5.0, drift_frames=4)
>>> fut = pool.video(frames, audio, portrait, gt_params=..., gt_frames=..., drift_frames=...)
>>> fut.result()          # the dict of VideoMeasurer.__call__
>>> pool.close()
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

_MEAS = None  # the worker's VideoMeasurer
_INIT_ERROR: BaseException | None = None


def _build(kw: dict):
    from vasa.eval.experts import load_experts
    from vasa.eval.measure import VideoMeasurer

    official = None
    if kw.get("syncnet_weights"):
        from vasa.eval.syncnet_official import OfficialSync

        official = OfficialSync(kw["syncnet_weights"])
    return VideoMeasurer(load_experts(kw["experts"]), official, kw["csim_frames"], kw["drift_seconds"],
                         kw["drift_frames"])


def _init(kw: dict) -> None:
    global _MEAS, _INIT_ERROR
    import torch

    torch.set_num_threads(1)
    try:
        _MEAS = _build(kw)
    except Exception as e:  # noqa: BLE001 - re-raised by _ready in the parent, with its own message
        _INIT_ERROR = e


def _ready() -> bool:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    return _MEAS is not None


def _video(frames, audio, portrait, gt_params, gt_frames, drift_frames) -> dict:
    return _MEAS(frames, audio, portrait, gt_params=gt_params, gt_frames=gt_frames, full_frames=drift_frames)


def _control(frames) -> tuple:
    tr = _MEAS.tracker(frames)
    return tr.main_gaze(), tr.distance(), _MEAS.emotion_only(frames)


class MeasurePool:
    """Runs measurement jobs in ``workers`` forked processes (0: inline); returns futures."""

    def __init__(self, workers: int = 1, **measurer_kw):
        self.workers = workers
        self.pending: deque[Future] = deque()
        if workers > 0:
            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_init,
                                            initargs=(measurer_kw,))
            self.meas = None
            for f in [self.pool.submit(_ready) for _ in range(workers)]:  # fork now, fail early
                f.result()
        else:
            self.pool = None
            self.meas = _build(measurer_kw)

    def _submit(self, fn, *args) -> Future:
        if self.pool is None:
            global _MEAS
            _MEAS = self.meas
            f: Future = Future()
            f.set_result(fn(*args))
            return f
        while len(self.pending) > 2 * self.workers:  # bound the queued frames
            self.pending.popleft().result()
        f = self.pool.submit(fn, *args)
        self.pending.append(f)
        return f

    def video(self, frames: np.ndarray, audio: np.ndarray, portrait: np.ndarray, gt_params=None, gt_frames=None,
              drift_frames=None) -> Future:
        """Measure a video (see :meth:`vasa.eval.measure.VideoMeasurer.__call__`; ``drift_frames``: the
        first and the last ``drift_seconds`` of a long video, concatenated)."""
        return self._submit(_video, frames, audio, portrait, gt_params, gt_frames, drift_frames)

    def control(self, frames: np.ndarray) -> Future:
        """(main gaze or None, distance or None, classified emotion or None) of a control video."""
        return self._submit(_control, frames)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        elif self.meas is not None:
            self.meas.close()
