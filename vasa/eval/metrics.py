"""The evaluation's measures as pure functions of arrays (no models): each has a known answer on a
constructed case (see tests/test_eval_metrics.py).

* :func:`pose_change` (dP): mean absolute frame-to-frame change of the head angles, degrees/frame;
* :func:`jitter`: high-frequency energy of landmark tracks (RMS above ``cutoff_hz``, % of face height);
* :func:`pearson`, :func:`audio_rms` (mouth opening against the jaw track and the audio energy);
* :func:`identity_drift`: cosine of the mean identity embeddings of the first and the last seconds;
* :func:`frechet_distance` (with :func:`feature_stats`), :func:`psnr`, :func:`ssim`;
* :func:`mean_ci`: mean, 95 % confidence half-width (Student t) and median of per-clip values;
  :func:`robust_outliers`: the values far from the median in MAD units (an item that dominates a mean);
* control accuracy: :func:`angle_error`, :func:`monotonic_fit` (Spearman rho + linear R²),
  :func:`accuracy`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from vasa.errors import VasaError


def pose_change(angles: np.ndarray) -> float:
    """dP: T x 3 head angles (yaw, pitch, roll; degrees, NaN where not measured) -> mean over
    consecutive measured frame pairs of the mean absolute change of the three angles (deg/frame)."""
    a = np.asarray(angles, np.float64)
    if a.ndim != 2 or len(a) < 2:
        return float("nan")
    d = np.abs(np.diff(a, axis=0))
    ok = np.isfinite(d).all(1)
    return float(d[ok].mean()) if ok.any() else float("nan")


def jitter(landmarks: np.ndarray, fps: float = 25.0, cutoff_hz: float = 8.0) -> float:
    """High-frequency energy of landmark tracks: T x N x 2 positions in units of the face height
    (NaN frames are interpolated over; None when fewer than 8 frames) -> RMS of the components above
    ``cutoff_hz`` (after removing each track's linear trend), averaged over landmarks and axes, in %
    of the face height. A still face scores 0; speech articulation lies mostly below 8 Hz."""
    x = np.asarray(landmarks, np.float64)
    if x.ndim != 3 or len(x) < 8:
        return float("nan")
    t = len(x)
    ok = np.isfinite(x).all((1, 2))
    if ok.sum() < 8:
        return float("nan")
    idx = np.arange(t)
    x = x.reshape(t, -1)
    x = np.stack([np.interp(idx, idx[ok], x[ok, k]) for k in range(x.shape[1])], 1)
    x = x - np.polyval(np.polyfit(idx, x, 1), idx[:, None]) if t > 2 else x - x.mean(0)
    spec = np.fft.rfft(x, axis=0)
    f = np.fft.rfftfreq(t, 1.0 / fps)
    hi = f >= cutoff_hz
    # Parseval: sum over time of x^2 = (|X0|^2 + 2 sum |Xk|^2 (+ Nyquist)) / T
    w = np.where((f == 0) | ((t % 2 == 0) & (np.arange(len(f)) == len(f) - 1)), 1.0, 2.0)
    energy = (w[hi, None] * np.abs(spec[hi]) ** 2).sum(0) / t  # per track
    return float(100.0 * np.sqrt(energy / t).mean())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the entries where both are finite (NaN if fewer than 3 or one is constant)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() < 1e-12 or b[ok].std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def audio_rms(audio: np.ndarray, n_frames: int, sr: int = 16000, fps: float = 25.0) -> np.ndarray:
    """RMS energy of the audio in each video frame's slot: (n_frames,) float."""
    a = np.asarray(audio, np.float64).reshape(-1)
    spf = int(round(sr / fps))
    a = np.pad(a, (0, max(0, n_frames * spf - len(a))))[:n_frames * spf]
    return np.sqrt((a.reshape(n_frames, spf) ** 2).mean(1))


def identity_drift(first: np.ndarray, last: np.ndarray) -> float:
    """Cosine similarity of the mean (unit) identity embeddings of two sets of frames (K x D each):
    1 = no drift between the first and the last seconds of a video."""
    a, b = np.asarray(first, np.float64).mean(0), np.asarray(last, np.float64).mean(0)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of N x D features."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise VasaError(f"a Fréchet distance needs at least 2 feature vectors (N x D), got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


class FrechetReference:
    """A reference feature set for repeated Fréchet distances (:func:`frechet_distance`).

    ``tr((S_r S)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric ``R S R`` with ``R = S_r^(1/2)`` (the same spectrum as ``S_r S``), so each distance costs
    one symmetric eigen-decomposition instead of a general matrix square root.
    """

    def __init__(self, ref: np.ndarray):
        self.mu, self.cov = feature_stats(ref)
        w, v = np.linalg.eigh(self.cov)
        self.root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T

    def distance(self, x: np.ndarray) -> float:
        mu, cov = feature_stats(x)
        if mu.shape != self.mu.shape:
            raise VasaError(f"feature sizes differ: {mu.shape[0]} vs the reference's {self.mu.shape[0]}")
        ev = np.linalg.eigvalsh(self.root @ cov @ self.root)
        tr_sqrt = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
        return float(max(0.0, ((mu - self.mu) ** 2).sum() + np.trace(cov) + np.trace(self.cov) - 2.0 * tr_sqrt))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fit to two feature sets (N x D, M x D):
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (0 for identical sets). It is biased
    upwards for small N: compare values computed with equal sample sizes only."""
    return FrechetReference(b).distance(a)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images or videos (peak 255; inf when equal)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB images (Gaussian window sigma 1.5, channel mean; Wang et al. 2004)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def mean_ci(values, level: float = 0.95) -> dict:
    """``{"mean", "ci", "n", "median"}``: the mean of the finite values, the half-width of its ``level``
    confidence interval (Student t; 0 for one value, NaN for none) and their median (with a handful of
    items one broken clip can move the mean far outside where most items lie; the median shows it)."""
    v = np.asarray([x for x in np.asarray(values, np.float64).ravel() if np.isfinite(x)])
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "ci": float("nan"), "n": 0, "median": float("nan")}
    if n == 1:
        return {"mean": float(v[0]), "ci": 0.0, "n": 1, "median": float(v[0])}
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return {"mean": float(v.mean()), "ci": float(half), "n": n, "median": float(np.median(v))}


def robust_outliers(values, z: float = 5.0, rel_floor: float = 0.05, abs_floor: float = 1e-3) -> np.ndarray:
    """Indices of the values whose distance from the median exceeds ``z`` robust standard deviations
    (1.4826 x the median absolute deviation, floored at ``rel_floor`` x |median| and at ``abs_floor`` so
    that near-identical values, e.g. the float noise of a static video's gaze spread, do not flag noise).
    NaN values are never flagged; fewer than 3 finite values: none."""
    v = np.asarray(values, np.float64).ravel()
    ok = np.isfinite(v)
    if ok.sum() < 3:
        return np.zeros(0, np.int64)
    med = float(np.median(v[ok]))
    scale = max(1.4826 * float(np.median(np.abs(v[ok] - med))), rel_floor * abs(med), abs_floor)
    return np.flatnonzero(ok & (np.abs(v - med) > z * scale))


def angle_error(requested: np.ndarray, measured: np.ndarray) -> float:
    """Mean Euclidean error in degrees between requested and measured (yaw, pitch) pairs (N x 2)."""
    r, m = np.asarray(requested, np.float64).reshape(-1, 2), np.asarray(measured, np.float64).reshape(-1, 2)
    d = np.linalg.norm(r - m, axis=1)
    d = d[np.isfinite(d)]
    return float(d.mean()) if len(d) else float("nan")


def monotonic_fit(requested, measured) -> dict:
    """How a measured quantity follows a requested one: Spearman rho (monotonic), R² of the
    least-squares line measured ~ requested, and its slope."""
    r, m = np.asarray(requested, np.float64), np.asarray(measured, np.float64)
    ok = np.isfinite(r) & np.isfinite(m)
    r, m = r[ok], m[ok]
    if len(r) < 3 or r.std() < 1e-12:
        return {"spearman": float("nan"), "r2": float("nan"), "slope": float("nan")}
    slope, icept = np.polyfit(r, m, 1)
    ss_tot = ((m - m.mean()) ** 2).sum()
    r2 = 1.0 - ((m - (slope * r + icept)) ** 2).sum() / ss_tot if ss_tot > 1e-12 else float("nan")
    rho = stats.spearmanr(r, m).statistic if m.std() > 1e-12 else float("nan")
    return {"spearman": float(rho), "r2": float(r2), "slope": float(slope)}


def accuracy(requested, predicted) -> float:
    """Share of equal pairs."""
    r, p = list(requested), list(predicted)
    return float(np.mean([a == b for a, b in zip(r, p)])) if r else float("nan")
