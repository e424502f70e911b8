"""The edits a marked video must survive, as frame-array functions (shared by tests and the benchmark).

Every attack ends with an H.264 re-encode through libx264 (as any re-upload does): ``crf`` 23 unless
the attack is the re-encode itself. Randomness (crop offsets, dropped frames) comes from a seeded
``numpy`` generator, so a benchmark run is reproducible.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Callable

import av
import cv2
import numpy as np

DEFAULT_CRF = 23


def h264(frames: np.ndarray, crf: int = DEFAULT_CRF, fps: int = 25, preset: str = "veryfast") -> np.ndarray:
    """Encode RGB frames to H.264 (yuv420p) in memory with libx264 and decode them back."""
    frames = np.asarray(frames)
    t, h, w, _ = frames.shape
    h2, w2 = h - h % 2, w - w % 2
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w2, h2, "yuv420p"
        vs.options = {"crf": str(crf), "preset": preset}
        vs.codec_context.time_base = Fraction(1, fps)
        for i in range(t):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i, :h2, :w2]), format="rgb24")
            vf.pts = i
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    buf.seek(0)
    with av.open(buf, mode="r") as cont:
        return np.stack([f.to_ndarray(format="rgb24") for f in cont.decode(video=0)])


def resize(frames: np.ndarray, factor: float) -> np.ndarray:
    """Rescale every frame by ``factor`` (area interpolation when shrinking, as ffmpeg-style scalers do)."""
    h, w = frames.shape[1:3]
    size = (max(2, round(w * factor)), max(2, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])


def crop(frames: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Remove ``fraction`` of the width and of the height, split at random between the two sides."""
    h, w = frames.shape[1:3]
    ch, cw = round(h * fraction), round(w * fraction)
    y0, x0 = int(rng.integers(0, ch + 1)), int(rng.integers(0, cw + 1))
    return frames[:, y0:y0 + h - ch, x0:x0 + w - cw]


def brightness_contrast(frames: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """``clip(gain * x + offset)`` on every channel (saturates at both ends)."""
    return np.clip(frames.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def cut_frames(frames: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Drop ``fraction`` of the frames at random positions (a few frames cut here and there)."""
    t = len(frames)
    keep = np.sort(rng.choice(t, size=max(1, t - round(t * fraction)), replace=False))
    return frames[keep]


Attack = Callable[[np.ndarray, np.random.Generator], np.ndarray]

ATTACKS: dict[str, Attack] = {
    "none": lambda f, r: f,
    "h264_crf23": lambda f, r: h264(f, 23),
    "h264_crf28": lambda f, r: h264(f, 28),
    "h264_crf32": lambda f, r: h264(f, 32),
    "downscale_0.5": lambda f, r: h264(resize(f, 0.5)),
    "crop_10pct": lambda f, r: h264(crop(f, 0.10, r)),
    "crop_10pct_resize_back": lambda f, r: h264(resize(crop(f, 0.10, r), 1 / 0.9)),
    "brighter_contrast_up": lambda f, r: h264(brightness_contrast(f, 1.2, -10.0)),
    "darker_contrast_down": lambda f, r: h264(brightness_contrast(f, 0.8, -15.0)),
    "frames_cut_10pct": lambda f, r: h264(cut_frames(f, 0.10, r)),
    "downscale_0.5_crf28": lambda f, r: h264(resize(f, 0.5), 28),
}
"""Name -> attack. ``none`` is the marked file as written (CRF 18 by :func:`vasa.io.video.write_mp4`)."""


def apply(name: str, frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """Apply the named attack with a generator seeded by ``seed``."""
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    return ATTACKS[name](np.asarray(frames), np.random.default_rng(seed))
