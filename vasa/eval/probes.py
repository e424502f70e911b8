"""Probes: how much of a ground-truth factor a latent code carries, linearly (and, with
:class:`KNNProbe`, nonlinearly).

A ridge regression is fit on one set of frames (e.g. held-out *val* clips) and scored with R² on
another (*test* clips, other identities), so a probe measures what generalises, not what a big
enough regression can memorise. Inputs are standardised with the fit set's statistics; the ridge
strength is chosen from ``alphas`` by K-fold cross-validation grouped by clip (frames of one clip
never sit on both sides), or fixed.

>>> probe = RidgeProbe().fit(z_fit, y_fit, groups=clip_ids_fit)
>>> r2 = probe.score(z_test, y_test)            # (targets,) R² per target column
>>> table = probe_table({"z_pose": (zp_fit, zp_test), "z_dyn": (zd_fit, zd_test)},
...                     {"yaw": (yaw_fit, yaw_test), "jaw": (jaw_fit, jaw_test)})

R² is ``1 - SS_res / SS_tot`` on the evaluation set (it can be negative: worse than predicting the
evaluation mean); :func:`r2_score` clips nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def r2_score(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column (N x T or N -> T or scalar array); NaN where the
    target is constant on the evaluation set (R² is undefined there)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 1e-12 * len(y), 1.0 - ss_res / ss_tot, np.nan)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Closed-form ridge on standardised, centred x (N x D) and centred y (N x T) -> D x T weights."""
    d = x.shape[1]
    return np.linalg.solve(x.T @ x + alpha * len(x) * np.eye(d), x.T @ y)


@dataclass
class RidgeProbe:
    """Standardise -> ridge regression -> R²; ``alpha=None`` picks it by grouped K-fold CV."""

    alpha: float | None = None
    alphas: tuple = DEFAULT_ALPHAS
    folds: int = 5
    x_mean: np.ndarray = field(default=None, repr=False)
    x_std: np.ndarray = field(default=None, repr=False)
    y_mean: np.ndarray = field(default=None, repr=False)
    w: np.ndarray = field(default=None, repr=False)

    def _cv_alpha(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> float:
        n = len(x)
        if groups is None:
            groups = np.arange(n)
        uniq = np.unique(groups)
        k = min(self.folds, len(uniq))
        if k < 2:
            return float(self.alphas[len(self.alphas) // 2])
        fold_of = {g: i % k for i, g in enumerate(np.random.default_rng(0).permutation(uniq))}
        fold = np.array([fold_of[g] for g in groups])
        scores = []
        for a in self.alphas:
            res = 0.0
            for f in range(k):
                tr, te = fold != f, fold == f
                mu, ym = x[tr].mean(0), y[tr].mean(0)
                w = _ridge(x[tr] - mu, y[tr] - ym, a)
                res += float((((x[te] - mu) @ w + ym - y[te]) ** 2).sum())
            scores.append(res)
        return float(self.alphas[int(np.argmin(scores))])

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "RidgeProbe":
        """x: N x D codes, y: N or N x T targets, groups: N labels (e.g. clip ids) for the CV folds."""
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        y = np.asarray(y, np.float64).reshape(len(y), -1)
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-8
        xs = (x - self.x_mean) / self.x_std
        alpha = self.alpha if self.alpha is not None else self._cv_alpha(xs, y, groups)
        self.alpha_used = alpha
        self.y_mean = y.mean(0)
        self.w = _ridge(xs, y - self.y_mean, alpha)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """N x D -> N x T predictions."""
        xs = (np.asarray(x, np.float64).reshape(len(x), -1) - self.x_mean) / self.x_std
        return xs @ self.w + self.y_mean

    def score(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """R² per target column on (x, y)."""
        return r2_score(np.asarray(y, np.float64).reshape(len(y), -1), self.predict(x))


def probe_r2(x_fit, y_fit, x_eval, y_eval, groups_fit=None, alpha: float | None = None) -> float:
    """R² of one target (vector y) predicted linearly from codes x: fit on (x_fit, y_fit), scored on eval."""
    return float(RidgeProbe(alpha=alpha).fit(x_fit, y_fit, groups_fit).score(x_eval, y_eval)[0])


@dataclass
class KNNProbe:
    """A nonlinear probe: k-nearest-neighbour regression in the top ``components`` principal axes of the
    standardised codes (fit set's statistics). A linear probe misses a factor that a code carries
    nonlinearly (e.g. ``z_dyn`` after a linear pose trend was removed); this one does not need the
    relation to be linear, only smooth. Same ``fit`` / ``predict`` / ``score`` as :class:`RidgeProbe`."""

    k: int = 15
    components: int = 16
    chunk: int = 2048

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "KNNProbe":
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        self.y = np.asarray(y, np.float64).reshape(len(y), -1)
        if len(x) < self.k:
            raise ValueError(f"a k-NN probe with k={self.k} needs at least {self.k} fit frames, got {len(x)}")
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-8
        xs = (x - self.x_mean) / self.x_std
        _, _, vt = np.linalg.svd(xs, full_matrices=False)
        self.axes = vt[:min(self.components, vt.shape[0])].T  # D x c
        self.xf = xs @ self.axes
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        xe = ((np.asarray(x, np.float64).reshape(len(x), -1) - self.x_mean) / self.x_std) @ self.axes
        out = []
        for k0 in range(0, len(xe), self.chunk):
            q = xe[k0:k0 + self.chunk]
            d = (q ** 2).sum(1)[:, None] - 2 * q @ self.xf.T + (self.xf ** 2).sum(1)[None]
            nn_idx = np.argpartition(d, self.k - 1, axis=1)[:, :self.k]
            out.append(self.y[nn_idx].mean(1))
        return np.concatenate(out) if out else np.zeros((0, self.y.shape[1]))

    def score(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return r2_score(np.asarray(y, np.float64).reshape(len(y), -1), self.predict(x))


def probe_table(codes: dict[str, tuple[np.ndarray, np.ndarray]], targets: dict[str, tuple[np.ndarray, np.ndarray]],
                groups_fit: np.ndarray | None = None, kind: str = "linear") -> dict[str, dict[str, float]]:
    """R² of every target from every code: ``{code: {target: R²}}``; ``kind`` "linear"
    (:class:`RidgeProbe`) or "knn" (:class:`KNNProbe`).

    codes: ``{name: (fit N_f x D, eval N_e x D)}``; targets: ``{name: (fit N_f, eval N_e)}``.
    A k-NN row is NaN (undefined) when the fit set has fewer than ``KNNProbe.k`` frames (smoke runs).
    """
    if kind not in ("linear", "knn"):
        raise ValueError(f"probe kind must be 'linear' or 'knn', got {kind!r}")
    out: dict[str, dict[str, float]] = {}
    for cname, (cf, ce) in codes.items():
        if kind == "knn" and len(cf) < KNNProbe.k:  # too few fit frames for k neighbours: undefined
            out[cname] = {tname: float("nan") for tname in targets}
        elif kind == "knn":
            probe = KNNProbe().fit(cf, np.stack([tf for tf, _ in targets.values()], 1))
            r2 = probe.score(ce, np.stack([te for _, te in targets.values()], 1))
            out[cname] = {tname: float(v) for tname, v in zip(targets, r2)}
        else:
            out[cname] = {tname: probe_r2(cf, tf, ce, te, groups_fit) for tname, (tf, te) in targets.items()}
    return out


@dataclass(frozen=True)
class ProbeBar:
    """A pass/fail bar on a probe R²: ``op`` is ">=" (the code must carry the factor) or "<=" (must not)."""

    code: str
    target: str
    op: str
    bar: float

    def passed(self, r2: float | None) -> bool:
        """False when R² is undefined (None / NaN)."""
        if r2 is None or not np.isfinite(r2):
            return False
        return r2 >= self.bar if self.op == ">=" else r2 <= self.bar


# The disentanglement bars for the face latent space.
LATENT_BARS: tuple[ProbeBar, ...] = (
    ProbeBar("z_pose", "yaw", ">=", 0.95), ProbeBar("z_pose", "pitch", ">=", 0.95),
    ProbeBar("z_pose", "roll", ">=", 0.95), ProbeBar("z_dyn", "jaw", ">=", 0.9),
    ProbeBar("z_dyn", "blink", ">=", 0.9), ProbeBar("z_pose", "jaw", "<=", 0.1),
    ProbeBar("z_dyn", "yaw", "<=", 0.1),
)
