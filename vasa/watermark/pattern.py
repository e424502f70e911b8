"""Keyed watermark patterns: one periodic tile, a sync part and a payload part, drawn from a secret key.

The watermark is a tile of ``GRID x GRID`` cells repeated over the frame from its top-left corner.
Each cell carries ``sqrt(SYNC_SHARE) * sync + sqrt(1 - SYNC_SHARE) * carrier * (+-1 of its coded
bit)``, where ``sync`` and ``carrier`` are keyed +-1 patterns and each of the 210 coded payload bits
owns a keyed, scattered set of about 5 cells. At embedding a cell is ``c`` pixels wide (``c`` grows
with the frame: 2 px at 128, 4 px at 512, see :func:`cell_px`), so a tile spans a half (128 px) to a
quarter (256 px and up) of the short side, and the tile is smoothed by a circular Gaussian (sigma = c/2) that keeps the
energy in the mid-low band that survives H.264 and downscaling.

The detector works on a grid of ``SAMPLES`` samples per cell (``M = GRID * SAMPLES`` per tile) and
uses :meth:`KeyedPattern.sync_template` / :meth:`KeyedPattern.carrier_template`, the same patterns
rendered at that grid. Because the tile is periodic, cropping only shifts it (found by circular
correlation) and rescaling only changes its period (found by a scale search).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vasa.watermark.codec import CODED_BITS

GRID = 32            # cells per tile side
SAMPLES = 2          # detector samples per cell
M = GRID * SAMPLES   # detector samples per tile side
SYNC_SHARE = 0.35    # fraction of the watermark energy in the sync pattern
DEFAULT_KEY = "vasa-public-watermark-v1"


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB uint8 frames (..., H, W, 3) as float32."""
    f = np.asarray(frames, np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def cell_px(height: int, width: int) -> int:
    """Cell size in pixels for a frame: ceil(short side / 128), at least 2 (2 px at 128 and 256, 4 px at 512).

    Tiles of 32 cells then span half the short side at 128 px and 1/3 to 1/4 of it from 256 px up
    (2 to 4 tiles across for any size >= 128): more tiles fold together at the detector (host
    interference averages out), while cells stay coarse enough (>= 2 px after a 0.5x downscale at
    512) to survive H.264.
    """
    return max(2, -(-min(height, width) // 128))


def circular_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with wrap-around borders (the tile is periodic), by FFT."""
    if sigma <= 0:
        return x.astype(np.float32)
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.fftfreq(x.shape[1])[None, :]
    h = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
    return np.real(np.fft.ifft2(np.fft.fft2(x) * h)).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    return (x / np.sqrt(np.mean(x * x))).astype(np.float32)


def key_id(key: str) -> str:
    """A short public fingerprint of a key (the first 8 hex digits of its SHA-256), for reports."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class KeyedPattern:
    """The patterns that one key defines (see the module docstring)."""

    key_id: str
    sync: np.ndarray      # GRID x GRID, +-1, balanced
    carrier: np.ndarray   # GRID x GRID, +-1
    assign: np.ndarray    # GRID x GRID, coded-bit index of each cell
    sync_t: np.ndarray    # the sync at the detector grid (M x M, zero mean, unit RMS)
    carrier_t: np.ndarray  # the carrier at the detector grid (M x M)
    labels: np.ndarray    # coded-bit index of each detector sample (M x M)

    @classmethod
    def from_key(cls, key: str = DEFAULT_KEY) -> "KeyedPattern":
        """Draw the patterns from ``key`` (deterministic: SHA-256 of the key seeds PCG64)."""
        return _pattern_for_key(key)

    def cells(self, coded: np.ndarray, gains: np.ndarray | None = None, sync_gain: float = 1.0) -> np.ndarray:
        """Cell-level watermark (GRID x GRID float32) for the 210 coded bits.

        ``gains`` (one per coded bit) and ``sync_gain`` scale the parts; the informed embedder
        uses them to spend less where the host already helps and more where it hurts.
        """
        coded = np.asarray(coded, np.uint8)
        if coded.shape != (CODED_BITS,):
            raise ValueError(f"need {CODED_BITS} coded bits, got {coded.shape}")
        signs = 2.0 * coded - 1.0
        if gains is not None:
            signs = signs * np.asarray(gains, np.float64)
        data = self.carrier * signs[self.assign]
        return (np.sqrt(SYNC_SHARE) * sync_gain * self.sync + np.sqrt(1.0 - SYNC_SHARE) * data).astype(np.float32)

    def tile(self, coded: np.ndarray, cell: int, gains: np.ndarray | None = None, sync_gain: float = 1.0) -> np.ndarray:
        """Pixel tile (GRID*cell square, float32, zero mean, unit RMS) for embedding."""
        up = np.kron(self.cells(coded, gains, sync_gain), np.ones((cell, cell), np.float32))
        return _unit(circular_blur(up, cell / 2.0))

    def sync_template(self) -> np.ndarray:
        """The sync pattern at the detector grid (M x M, zero mean, unit RMS)."""
        return self.sync_t

    def carrier_template(self) -> np.ndarray:
        """The carrier at the detector grid (M x M), to be multiplied by the bit signs."""
        return self.carrier_t

    def sample_labels(self) -> np.ndarray:
        """Coded-bit index of every detector sample (M x M int)."""
        return self.labels


def _template(cells: np.ndarray) -> np.ndarray:
    up = np.kron(cells.astype(np.float32), np.ones((SAMPLES, SAMPLES), np.float32))
    return circular_blur(up, SAMPLES / 2.0)


@lru_cache(maxsize=8)
def _pattern_for_key(key: str) -> KeyedPattern:
    seed = int.from_bytes(hashlib.sha256(("vasa-watermark-pattern:" + key).encode("utf-8")).digest()[:16], "big")
    rng = np.random.Generator(np.random.PCG64(seed))
    n = GRID * GRID
    sync = np.where(rng.permutation(n) < n // 2, 1.0, -1.0).reshape(GRID, GRID).astype(np.float32)
    carrier = np.where(rng.random(n) < 0.5, 1.0, -1.0).reshape(GRID, GRID).astype(np.float32)
    assign = rng.permutation(np.arange(n) % CODED_BITS).reshape(GRID, GRID).astype(np.int64)
    arrays = (sync, carrier, assign, _unit(_template(sync)), _template(carrier),
              np.kron(assign, np.ones((SAMPLES, SAMPLES), np.int64)))
    for a in arrays:
        a.setflags(write=False)
    return KeyedPattern(key_id(key), *arrays)


def frame_pattern(pattern: KeyedPattern, coded: np.ndarray, height: int, width: int,
                  gains: np.ndarray | None = None, sync_gain: float = 1.0) -> np.ndarray:
    """The unit-RMS watermark for a ``height x width`` frame: the tile repeated from the top-left."""
    cell = cell_px(height, width)
    t = pattern.tile(coded, cell, gains, sync_gain)
    reps = (-(-height // t.shape[0]), -(-width // t.shape[1]))
    return np.ascontiguousarray(np.tile(t, reps)[:height, :width])
