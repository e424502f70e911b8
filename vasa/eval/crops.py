"""Face crops for the evaluation experts: one square per frame around MediaPipe's face box.

Every video the harness scores -- ground truth, baselines, vasa -- is cropped the same way before
an expert (SyncNet expert, emotion classifier, FD features) sees it, and the experts are trained on
crops made by the same code from the corpus, so the framing of the input video does not matter.

* :func:`detect_boxes`: BlazeFace (``vasa.eval.landmarks.FaceDetector``) on every ``stride``-th
  frame -> boxes in pixels and a per-frame "face found" flag (the face-detection rate);
* :func:`fill_boxes`: boxes for every frame (linear interpolation over misses, nearest at the
  ends, the whole frame when no face was found at all), lightly smoothed in time;
* :func:`crop_faces`: the squares of side ``scale * box width`` centred ``dy`` box widths below the
  box centre (the chin is inside), resampled to ``size`` x ``size`` at sub-pixel precision
  (:func:`vasa.ingest.crop.crop`, border replicated);
* :func:`lower_half`: the mouth half of the crops (the sync expert's visual input, as in Wav2Lip).

>>> spec = CropSpec(size=48)
>>> boxes, found = detect_boxes(frames, FaceDetector())
>>> crops = crop_faces(frames, fill_boxes(boxes, found, frames.shape[1:3]), spec)   # T x 48 x 48 x 3
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vasa.errors import VasaError
from vasa.ingest.crop import crop


@dataclass(frozen=True)
class CropSpec:
    """How an expert sees a face (stored with each expert, so training and scoring crop alike)."""

    size: int = 48  # output side in pixels
    scale: float = 1.2  # crop side over the detector's box width
    dy: float = 0.05  # crop centre below the box centre, in box widths
    smooth: float = 1.0  # Gaussian sigma (frames) on box centres and sizes; 0 = off

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CropSpec":
        return cls(**{k: d[k] for k in ("size", "scale", "dy", "smooth") if k in d})


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VasaError(f"expected T x H x W x 3 uint8 frames, got {frames.dtype} {frames.shape}")
    return frames


def detect_boxes(frames: np.ndarray, detector, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """T x H x W x 3 -> (T x 4 boxes x0 y0 x1 y1 in pixels, NaN where not run or not found; T bool found).

    Only every ``stride``-th frame is run (the others are NaN and ``found`` False for them).
    """
    frames = _check_frames(frames)
    t, h, w = frames.shape[:3]
    boxes = np.full((t, 4), np.nan, np.float64)
    found = np.zeros(t, bool)
    for i in range(0, t, max(1, stride)):
        dets = detector.detect(frames[i])
        if dets:
            boxes[i] = dets[0][1] * np.array([w, h, w, h])
            found[i] = True
    return boxes, found


def fill_boxes(boxes: np.ndarray, found: np.ndarray, frame_hw: tuple[int, int], smooth: float = 1.0) -> np.ndarray:
    """Boxes for every frame: interpolate over the frames without a detection, smooth (sigma frames).

    With no detection in the whole clip, every box is the full frame (the input is then taken to be
    a face crop already).
    """
    boxes = np.asarray(boxes, np.float64)
    ok = np.asarray(found, bool) & np.isfinite(boxes).all(1)
    h, w = frame_hw
    if not ok.any():
        return np.tile(np.array([0.0, 0.0, w, h]), (len(boxes), 1))
    idx = np.arange(len(boxes))
    # centre + size representation: interpolation and smoothing keep boxes square-ish and positive
    c = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                  boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    out = np.stack([np.interp(idx, idx[ok], c[ok, k]) for k in range(4)], 1)
    if smooth > 0 and len(out) > 1:
        out = gaussian_filter1d(out, smooth, axis=0, mode="nearest")
    return np.stack([out[:, 0] - out[:, 2] / 2, out[:, 1] - out[:, 3] / 2,
                     out[:, 0] + out[:, 2] / 2, out[:, 1] + out[:, 3] / 2], 1)


def crop_square(box: np.ndarray, spec: CropSpec) -> tuple[float, float, float]:
    """(cx, cy, side) of the crop of one detector box."""
    bw = float(box[2] - box[0])
    return (float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2 + spec.dy * bw, spec.scale * bw)


def crop_faces(frames: np.ndarray, boxes: np.ndarray, spec: CropSpec) -> np.ndarray:
    """T x H x W x 3 frames + T x 4 filled boxes -> T x size x size x 3 uint8 face crops."""
    frames = _check_frames(frames)
    if len(boxes) != len(frames):
        raise VasaError(f"crop_faces: {len(frames)} frames but {len(boxes)} boxes")
    out = np.empty((len(frames), spec.size, spec.size, 3), np.uint8)
    for i, (f, b) in enumerate(zip(frames, boxes)):
        cx, cy, side = crop_square(b, spec)
        out[i] = crop(f, cx, cy, max(side, 2.0), spec.size)
    return out


def face_crops(frames: np.ndarray, detector, spec: CropSpec, stride: int = 1
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detect, fill and crop in one call: (T x S x S x 3 crops, T x 4 boxes, T bool found)."""
    frames = _check_frames(frames)
    boxes, found = detect_boxes(frames, detector, stride)
    filled = fill_boxes(boxes, found, frames.shape[1:3], spec.smooth)
    return crop_faces(frames, filled, spec), filled, found


def lower_half(crops: np.ndarray) -> np.ndarray:
    """... x S x S x 3 face crops -> ... x S/2 x S x 3 (the mouth half)."""
    s = crops.shape[-3]
    return crops[..., s // 2:, :, :]
