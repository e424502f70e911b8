"""Blind extraction: average the luma over the clip, find the tile's scale and shift, read the payload.

Nothing about the original video is needed. The detector

1. averages the luma of all frames (the watermark is static, so it adds up while moving content
   blurs out; frames may be missing or cut: any subset works);
2. for each candidate tile period (tiles across the short side ``n`` from :data:`N_MIN` to
   :data:`N_MAX`, 1 % steps), resamples the mean image so one tile is ``M`` samples, whitens it
   (local high-pass, then division by the local RMS), and folds it modulo ``M`` (sums all tiles:
   cropping only shifts the phase);
3. circularly correlates the folded tile with the sync template after spectral whitening and keeps
   the peak's z-score (peak minus mean, over the standard deviation of the 4,096 shifts);
4. refines the best scales in 0.2 % steps and, at the best (scale, shift), correlates with the
   carrier cell by cell to get the 210 soft payload bits, which go to the Viterbi decoder and CRC.

Under the null (no watermark) each correlation value is close to standard normal, so the peak
z-score of one clip is the maximum over ``n_tests`` (scales x shifts) near-Gaussian values;
:func:`null_p_value` turns it into a Bonferroni p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np

from vasa.watermark import codec
from vasa.watermark.codec import Payload
from vasa.watermark.pattern import DEFAULT_KEY, M, SAMPLES, KeyedPattern, luma

N_MIN, N_MAX = 0.8, 4.4        # tiles across the short side searched
COARSE_STEP = 1.01
FINE_STEPS = np.linspace(-0.006, 0.006, 7)
TOP_SCALES = 6
MAX_SIDE = 256                 # the mean image is downsampled to this short side first


@dataclass
class Extraction:
    """What the blind search found in one clip."""

    sync_z: float                 # peak z-score of the sync correlation
    p_value: float                # Bonferroni p-value of sync_z under the null
    tiles_across: float           # estimated tiles across the short side
    shift: tuple[int, int]        # tile phase (samples)
    payload: Payload | None       # decoded payload (None if no candidate passed the CRC)
    crc_ok: bool
    agreement: float              # soft-decision agreement of the best decode
    frames: int
    n_tests: int
    candidates: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"sync_z": round(self.sync_z, 3), "p_value": self.p_value, "tiles_across": round(self.tiles_across, 4),
                "shift": list(self.shift), "payload": self.payload.as_dict() if self.payload else None,
                "crc_ok": self.crc_ok, "agreement": round(self.agreement, 3), "frames": self.frames,
                "n_tests": self.n_tests}


class LumaAccumulator:
    """Running sum of frames of one size; ``mean()`` is the mean luma that :func:`extract_mean` takes.

    Frames are RGB (H x W x 3, luma taken at the end: it is linear) or already luma/Y (H x W).
    """

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if self.total is None:
            self.total = np.zeros(frame.shape, np.float64)
        elif frame.shape != self.total.shape:
            raise ValueError(f"frame size changed mid-clip: {frame.shape} vs {self.total.shape}")
        self.total += frame
        self.count += 1

    def mean(self) -> np.ndarray:
        if self.total is None or self.count == 0:
            raise ValueError("no frames added")
        m = self.total / self.count
        return (luma(m) if m.ndim == 3 else m).astype(np.float32)


def null_p_value(z: float, n_tests: int) -> float:
    """Bonferroni p-value: the chance that the maximum of ``n_tests`` standard normals reaches ``z``."""
    return float(min(1.0, n_tests * 0.5 * math.erfc(z / math.sqrt(2.0))))


def _whiten(img: np.ndarray) -> np.ndarray:
    hp = img - cv2.GaussianBlur(img, (0, 0), 3.0)
    rms = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 6.0)) + 1e-3
    return hp / rms


def _fold(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    ph, pw = -h % M, -w % M
    x = np.pad(img, ((0, ph), (0, pw)))
    return x.reshape(x.shape[0] // M, M, x.shape[1] // M, M).sum(axis=(0, 2))


class _Searcher:
    """Correlation machinery for one mean image and one key."""

    def __init__(self, mean_luma: np.ndarray, pattern: KeyedPattern) -> None:
        img = np.asarray(mean_luma, np.float32)
        short = min(img.shape)
        if short > MAX_SIDE:
            f = MAX_SIDE / short
            img = cv2.resize(img, (0, 0), fx=f, fy=f, interpolation=cv2.INTER_AREA)
        self.img, self.short = img, min(img.shape)
        self.pattern = pattern
        self.sync_f = np.conj(np.fft.fft2(pattern.sync_template()))
        self.carrier = pattern.carrier_template()
        self.sync_t = pattern.sync_template()
        self.labels = pattern.sample_labels().ravel()

    def folded(self, n: float) -> np.ndarray:
        """Whitened folded tile at ``n`` tiles across (M x M)."""
        f = M * n / self.short
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        r = cv2.resize(self.img, (0, 0), fx=f, fy=f, interpolation=interp)
        return _fold(_whiten(r))

    def sync(self, n: float) -> tuple[float, tuple[int, int], np.ndarray]:
        """Sync peak z-score, its shift and the folded tile, at ``n`` tiles across.

        The correlation is computed after spectral (phase-only) whitening of the folded tile,
        which sharpens the peak; the payload is read from the unwhitened tile (see ``soft_bits``).
        """
        acc = self.folded(n)
        spec = np.fft.fft2(acc)
        c = np.real(np.fft.ifft2(spec / (np.abs(spec) + 1e-6) * self.sync_f))
        k = int(np.argmax(c))
        z = float((c.flat[k] - c.mean()) / (c.std() + 1e-12))
        return z, (k // M, k % M), acc

    def soft_bits(self, acc: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
        """The 210 soft payload values of a folded tile aligned at ``shift``."""
        return _soft(np.roll(acc, (-shift[0], -shift[1]), axis=(0, 1)), self.pattern)


def _soft(acc: np.ndarray, pattern: KeyedPattern) -> np.ndarray:
    """Per-coded-bit correlation of an aligned folded tile with the carrier (sync part removed)."""
    sync_t = pattern.sync_t
    alpha = float(np.sum(acc * sync_t) / np.sum(sync_t * sync_t))
    w = ((acc - alpha * sync_t) * pattern.carrier_t).ravel()
    return np.bincount(pattern.labels.ravel(), weights=w, minlength=codec.CODED_BITS)


def extract_mean(mean_luma: np.ndarray, key: str = DEFAULT_KEY, frames: int = 0) -> Extraction:
    """Search a clip's mean luma image for the watermark of ``key`` (see the module docstring)."""
    s = _Searcher(mean_luma, KeyedPattern.from_key(key))
    grid = N_MIN * COARSE_STEP ** np.arange(int(math.log(N_MAX / N_MIN) / math.log(COARSE_STEP)) + 1)
    zs = np.array([s.sync(n)[0] for n in grid])
    n_tests = len(grid) * M * M
    order = np.argsort(-zs)
    picked: list[int] = []
    for i in order:
        if all(abs(int(i) - j) > 2 for j in picked):
            picked.append(int(i))
        if len(picked) == TOP_SCALES:
            break
    cands = []
    for i in picked:
        best = max(((s.sync(grid[i] * (1 + d)), grid[i] * (1 + d)) for d in FINE_STEPS), key=lambda t: t[0][0])
        (z, shift, spec), n = best
        cands.append({"z": z, "n": float(n), "shift": shift, "acc": spec})
    cands.sort(key=lambda c: -c["z"])
    top = cands[0]
    payload, ok, agree = None, False, 0.0
    for c in cands:
        p, good, ag = codec.decode(s.soft_bits(c["acc"], c["shift"]))
        c["crc_ok"] = good
        if good:
            payload, ok, agree, top = p, True, ag, c
            break
        if c is cands[0]:
            agree = ag
    return Extraction(sync_z=float(top["z"]), p_value=null_p_value(float(top["z"]), n_tests),
                      tiles_across=top["n"], shift=tuple(int(v) for v in top["shift"]), payload=payload,
                      crc_ok=ok, agreement=agree, frames=frames, n_tests=n_tests,
                      candidates=[{"z": round(c["z"], 3), "tiles_across": round(c["n"], 4),
                                   "crc_ok": c.get("crc_ok", False)} for c in cands])


def extract_frames(frames: Iterable[np.ndarray], key: str = DEFAULT_KEY) -> Extraction:
    """Extraction from an iterable of H x W x 3 uint8 RGB frames."""
    acc = LumaAccumulator()
    for f in frames:
        acc.add(f)
    return extract_mean(acc.mean(), key=key, frames=acc.count)


def native_response(y: np.ndarray, pattern: KeyedPattern, cell: int) -> np.ndarray:
    """The 210 soft payload values the detector reads from one luma frame at its native geometry.

    No search (scale and shift are those of embedding); used by the informed embedder. It is the
    same computation as the detector's, so it is linear in an added watermark up to the local-RMS
    normalisation.
    """
    f = SAMPLES / cell
    r = y if f == 1 else cv2.resize(y, (0, 0), fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return _soft(_fold(_whiten(np.asarray(r, np.float32))), pattern)
