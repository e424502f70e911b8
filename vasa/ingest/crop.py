"""The crop: a temporally smoothed square box around the face, framed like the generated corpus.

Framing. On frames of the generated corpus MediaPipe's face box is, per unit of the head's apparent
``scale``, 0.579 of the frame wide (std 0.019), and its centre lies 0.022 box widths right of and
0.186 box widths below the projected head centre (medians over 112 frames of 6 train clips, all
poses; ``benchmarks/ingest_validation.py`` re-measures it: ``framing``). A crop of side
``box_width / 0.579`` centred at ``box_centre - (0.022, 0.186) * box_width`` therefore shows a
real face the way a generated head at the nominal distance (1.0) and centred is shown: real
clips look like generated ones, whatever the source framing. (The clip's true distance is a label,
``conditions.distance``; within a clip, the head's motion stays visible because the box is smoothed.)

Smoothing. Box centres are smoothed with a Gaussian of ``sigma_center`` frames and the size with
``sigma_size`` frames (edges: nearest), which removes detector jitter and keeps head motion.
Crops are cut at sub-pixel precision (:func:`crop`); boxes that leave the frame are filled by
replicating the border pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

FRAMING = dict(face_width=0.579, dx=0.022, dy=0.186)


@dataclass
class CropTrack:
    """Per-frame crop squares in source pixels."""

    cx: np.ndarray  # (T,) centre x
    cy: np.ndarray  # (T,) centre y
    side: np.ndarray  # (T,) side length

    def __len__(self) -> int:
        return len(self.cx)

    def to_source(self, k: int, pts: np.ndarray, size: int) -> np.ndarray:
        """Points (N x 2+) in pixels of a ``size`` x ``size`` crop of frame k -> source pixels."""
        x0, y0 = self.cx[k] - self.side[k] / 2, self.cy[k] - self.side[k] / 2
        s = self.side[k] / size
        out = np.array(pts, np.float64, copy=True)
        out[:, 0] = x0 + out[:, 0] * s
        out[:, 1] = y0 + out[:, 1] * s
        if out.shape[1] > 2:
            out[:, 2] *= s
        return out


def crop_track(boxes: np.ndarray, sigma_center: float = 2.0, sigma_size: float = 6.0,
               framing: dict | None = None) -> CropTrack:
    """Face boxes (T x 4, x0 y0 x1 y1) -> smoothed crop squares (see module docstring)."""
    fr = framing or FRAMING
    b = np.asarray(boxes, np.float64)
    w = b[:, 2] - b[:, 0]
    cx = (b[:, 0] + b[:, 2]) / 2 - fr["dx"] * w
    cy = (b[:, 1] + b[:, 3]) / 2 - fr["dy"] * w
    side = w / fr["face_width"]
    if len(b) > 1:
        cx = gaussian_filter1d(cx, sigma_center, mode="nearest") if sigma_center > 0 else cx
        cy = gaussian_filter1d(cy, sigma_center, mode="nearest") if sigma_center > 0 else cy
        side = gaussian_filter1d(side, sigma_size, mode="nearest") if sigma_size > 0 else side
    return CropTrack(cx, cy, side)


def crop(frame: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The square (cx, cy, side) of ``frame`` resampled to ``size`` x ``size``, at sub-pixel precision.

    Continuous coordinates (0 = the frame's left/top edge). Output pixel u covers source
    ``[x0 + u * side / size, x0 + (u + 1) * side / size]`` with ``x0 = cx - side / 2``. Squares more
    than twice the output size are first area-averaged (no aliasing), then warped bilinearly (no
    rounding of the position, so a slowly moving box does not jump by whole pixels). The border is
    replicated where the square leaves the frame.
    """
    x0, y0 = cx - side / 2, cy - side / 2
    sx = sy = side
    if side > 2 * size:
        h, w = frame.shape[:2]
        ix0, iy0 = int(np.floor(x0)) - 2, int(np.floor(y0)) - 2
        ix1, iy1 = int(np.ceil(x0 + side)) + 2, int(np.ceil(y0 + side)) + 2
        pad = max(0, -ix0, -iy0, ix1 - w, iy1 - h)
        if pad:
            frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        region = frame[iy0 + pad:iy1 + pad, ix0 + pad:ix1 + pad]
        f = 2 * size / side
        nw, nh = max(2, round((ix1 - ix0) * f)), max(2, round((iy1 - iy0) * f))
        frame = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / (ix1 - ix0), nh / (iy1 - iy0)
        x0, y0, sx, sy = (x0 - ix0) * fx, (y0 - iy0) * fy, side * fx, side * fy
    kx, ky = sx / size, sy / size
    # inverse map (output pixel index -> source pixel index; indices sit at pixel centres)
    m = np.array([[kx, 0.0, x0 - 0.5 + 0.5 * kx], [0.0, ky, y0 - 0.5 + 0.5 * ky]], np.float64)
    interp = cv2.INTER_CUBIC if kx < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(frame, m, (size, size), flags=interp | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher = sharper)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
