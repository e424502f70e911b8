"""Face tracks over time, scene cuts, and the segments that become clips.

* :class:`IouTracker`: greedy IoU matching of each frame's detections to the live tracks; a track
  survives up to ``max_gap`` frames without a detection (the gap is filled by linear
  interpolation) and ends after that, so a face that leaves the frame and comes back starts a new
  track.
* :func:`scene_cuts`: a cut between frames k-1 and k when the Bhattacharyya distance of their
  hue-saturation histograms exceeds a threshold (a flash or a small moving patch stays far below it).
* :func:`cut_segments`: per frame, the main speaker is the largest stable face (the present track
  with the largest median width, discounted while the track is shorter than a clip); frames whose
  main face has a competitor of comparable size (``multi_face_ratio``) are ambiguous and dropped, as are frames
  without a face. The main track's remaining frames are split at scene cuts and track breaks into
  segments; segments shorter than ``min_frames`` or with a face narrower than ``min_face`` pixels
  are dropped. Every dropped frame is counted under its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from vasa.ingest.detect import Detection


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    """One face over consecutive frames (gaps filled)."""

    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # detector per frame ("interp" for filled gaps)

    @property
    def last(self) -> int:
        return self.frames[-1]

    def box_at(self) -> dict[int, np.ndarray]:
        return dict(zip(self.frames, self.boxes))


class IouTracker:
    """Greedy IoU tracker (see module docstring)."""

    def __init__(self, min_iou: float = 0.3, max_gap: int = 5):
        self.min_iou, self.max_gap = min_iou, max_gap
        self.live: list[Track] = []
        self.done: list[Track] = []
        self._next = 0

    def update(self, k: int, dets: list[Detection]) -> None:
        """Feed the detections of frame ``k`` (frames must come in increasing order)."""
        for t in [t for t in self.live if k - t.last > self.max_gap + 1]:
            self.live.remove(t)
            self.done.append(t)
        pairs = sorted(((iou(t.boxes[-1], d.box), ti, di) for ti, t in enumerate(self.live)
                        for di, d in enumerate(dets)), reverse=True)
        used_t, used_d = set(), set()
        for score, ti, di in pairs:
            if score < self.min_iou or ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t, d = self.live[ti], dets[di]
            k0, b0 = t.last, t.boxes[-1]
            for f in range(k0 + 1, k):  # fill missed detections by linear interpolation
                a = (f - k0) / (k - k0)
                t.frames.append(f)
                t.boxes.append((1 - a) * b0 + a * np.asarray(d.box, np.float64))
                t.sources.append("interp")
            t.frames.append(k)
            t.boxes.append(np.asarray(d.box, np.float64))
            t.sources.append(d.source)
        for di, d in enumerate(dets):
            if di not in used_d:
                self.live.append(Track(self._next, [k], [np.asarray(d.box, np.float64)], [d.source]))
                self._next += 1

    def finish(self) -> list[Track]:
        """All tracks, ordered by id."""
        tracks = self.done + self.live
        self.done, self.live = [], []
        return sorted(tracks, key=lambda t: t.id)


def hs_histogram(frame: np.ndarray, size: int = 64) -> np.ndarray:
    """Normalised 16 x 16 hue-saturation histogram of a small copy of an RGB frame."""
    h, w = frame.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 16], [0, 180, 0, 256]).astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def scene_cuts(hists: list[np.ndarray], threshold: float = 0.5) -> list[int]:
    """Frames k that start a new shot (Bhattacharyya distance to frame k-1 above ``threshold``)."""
    cuts = []
    for k in range(1, len(hists)):
        if cv2.compareHist(hists[k - 1], hists[k], cv2.HISTCMP_BHATTACHARYYA) > threshold:
            cuts.append(k)
    return cuts


@dataclass
class Segment:
    """A run of frames of one track: the raw material of one clip."""

    start: int
    stop: int  # exclusive
    track: int
    boxes: np.ndarray  # (stop - start) x 4 face boxes
    sources: list[str]

    def __len__(self) -> int:
        return self.stop - self.start


def cut_segments(tracks: list[Track], n_frames: int, cuts: list[int], min_frames: int = 50,
                 min_face: float = 40.0, multi_face_ratio: float = 0.7) -> tuple[list[Segment], Counter]:
    """Segments of the main speaker's face and a count of dropped frames per reason.

    Reasons: ``no face``, ``multiple faces``, ``too short``, ``face too small``.
    """
    width = np.zeros((len(tracks), n_frames))
    for i, t in enumerate(tracks):
        for k, b in zip(t.frames, t.boxes):
            if k < n_frames:
                width[i, k] = b[2] - b[0]
    # a track's rank: its median width, discounted while it is shorter than a clip (a spurious
    # detection that flickers for a few frames never displaces the speaker)
    rank = np.array([np.median([b[2] - b[0] for b in t.boxes]) * min(1.0, len(t.frames) / max(1, min_frames))
                     for t in tracks])
    dropped: Counter = Counter()
    main = np.full(n_frames, -1)
    if tracks:
        present = width > 0
        score = np.where(present, rank[:, None], -1.0)
        best = np.argmax(score, axis=0)
        has = present.any(axis=0)
        w1 = width[best, np.arange(n_frames)]
        others = np.where(np.arange(len(tracks))[:, None] == best[None, :], 0.0, width)
        multi = has & (others.max(axis=0) >= multi_face_ratio * w1)
        main = np.where(has & ~multi, best, -1)
        dropped["no face"] += int((~has).sum())
        dropped["multiple faces"] += int(multi.sum())
    else:
        dropped["no face"] += n_frames
    cut_set = set(cuts)
    segments = []
    k = 0
    while k < n_frames:
        if main[k] < 0:
            k += 1
            continue
        tid = main[k]
        stop = k + 1
        while stop < n_frames and main[stop] == tid and stop not in cut_set:
            stop += 1
        t = tracks[tid]
        at = {f: (b, s) for f, b, s in zip(t.frames, t.boxes, t.sources)}
        boxes = np.stack([at[f][0] for f in range(k, stop)])
        med_w = float(np.median(boxes[:, 2] - boxes[:, 0]))
        if stop - k < min_frames:
            dropped["too short"] += stop - k
        elif med_w < min_face:
            dropped["face too small"] += stop - k
        else:
            segments.append(Segment(k, stop, t.id, boxes, [at[f][1] for f in range(k, stop)]))
        k = stop
    return segments, dropped
