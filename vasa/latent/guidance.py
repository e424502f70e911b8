"""Landmark guidance for the motion encoder: MediaPipe estimates as weak targets (LivePortrait-style).

Unsupervised warping models discover head pose slowly: with the CPU budget of the default profile
(about 2,000 steps) the label-free losses alone left ``z_pose`` nearly collapsed (yaw probe R^2 0.11)
and the decoder ignored the driver's motion. LivePortrait (Guo et al. 2024) guides its implicit
keypoints with landmarks from a pretrained detector; we do the same with the estimator that labels
real videos in ``prepare`` (:mod:`vasa.ingest.labels`: MediaPipe face mesh, a real model that no part
of vasa trained; it needs nothing but pixels, so the same guidance works on real data).

Targets per guided frame (``GUIDE_NAMES``), from the raw MediaPipe measures (``RAW_NAMES``)::

    pose: yaw, pitch, roll                      radians, -> z_pose[:, :3]      (euler layout)
    dyn:  mouth, eyes_closed, gaze_h, gaze_v    pose-free, standardised       -> z_dyn[:, :4]

so the first four ``z_dyn`` channels are *anchored* (not constrained: the decoder gives them their
meaning, the guidance only their direction); the other ``z_dyn`` channels are free. The corpus's
ground-truth labels are never read.

The dynamics targets are made **pose-free** before they anchor ``z_dyn``: a landmark measure of the
eyes or the iris changes with the head's angle (foreshortening), so guiding ``z_dyn`` with it writes
the head pose into the dynamics code. Measured on the default corpus: the per-eye aspect ratios
correlate with yaw at +0.46 / -0.39 and the iris offset at 0.28, and a model guided by them encoded
yaw in ``z_dyn`` (probe R^2 0.90). So (:func:`dyn_targets`):

* ``eyes_closed`` = 1 - (mean EAR of both eyes) / (the clip's open-eye EAR, its 90th percentile):
  the two eyes' opposite yaw slopes cancel, the per-clip reference removes the identity's eye shape
  (correlation with the renderer's blink 0.73, with yaw 0.00; per-eye EAR: -0.44 / -0.48);
* every dynamics target is then regressed on a quadratic in MediaPipe's own (yaw, pitch, roll) over
  the split and replaced by its residual (least squares, label-free), and standardised.

``guide_targets: closure`` keeps the raw mouth and gaze but guides the eyes' channel with that per-clip
``eyes_closed`` (:func:`eye_closure`): across clips the raw aspect ratios mostly measure the identity's
eye shape, not the blink.

Estimation runs once per (corpus, split, frames per clip) on ``frames`` evenly spaced frames of every
speech clip (MediaPipe: ~11 ms/frame/core) and is cached as ``<work_dir>/guidance-<split>.npz``
(uncompressed, no pickles) + a JSON sidecar with the settings; pairs for training are then drawn among
the guided frames (:class:`vasa.data.frames.FramePairs` ``frames=``). The same MediaPipe pass keeps the
lip and eye contours of every guided frame (``regions``: N x ``REGION_POINTS`` x 2, fractions of the
frame, NaN without a face): ``blend_regions: landmarks`` draws the per-frame regions the ``src_blend``
mask must stay out of from them (:func:`vasa.latent.mouth.region_mask`).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.io.atomic import write_bytes, write_json

POSE_NAMES = ("yaw", "pitch", "roll")
RAW_NAMES = POSE_NAMES + ("mouth", "ear_l", "ear_r", "gaze_h", "gaze_v")  # columns of the cached estimates
DYN_NAMES = ("mouth", "eyes_closed", "gaze_h", "gaze_v")  # the pose-free dynamics targets
GUIDE_NAMES = POSE_NAMES + DYN_NAMES
RAW_DYN_NAMES = RAW_NAMES[len(POSE_NAMES):]  # targets="raw": MediaPipe's measures, standardised only
TARGETS = ("raw", "pose_free", "closure")
FORMAT = 2  # of the cache (raw estimates + region contours); the targets are derived from it on load
REGION_POINTS = 52  # lips (20) + both eyes (16 + 16): vasa.latent.mouth.LIP_INDICES + EYE_INDICES


def guided_frames(n_frames: int, frames: int) -> np.ndarray:
    """``frames`` evenly spaced frame indices of a clip of ``n_frames`` (all when it is shorter)."""
    if n_frames <= frames:
        return np.arange(n_frames)
    return np.unique(np.round(np.linspace(0, n_frames - 1, frames)).astype(np.int64))


def _estimate_clips(args: tuple[str, list[tuple[str, str, int, int]], int]) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """Worker: (corpus root, [(clip id, shard, index in shard, n_frames)], frames) -> per-frame raw rows
    and region contours (``REGION_POINTS`` x 2, fractions of the frame)."""
    root, clips, frames = args
    from vasa.data.frames import _ShardView
    from vasa.eval.landmarks import FaceMesh
    from vasa.ingest.labels import PoseSolver, measure
    from vasa.latent.mouth import EYE_INDICES, LIP_INDICES

    contour = list(LIP_INDICES) + list(EYE_INDICES)

    mesh, out, shards = FaceMesh(static=True), [], {}
    try:
        for cid, shard, index, n in clips:
            if shard not in shards:
                shards[shard] = _ShardView(Path(root) / "shards" / f"{shard}.npz")
            sh = shards[shard]
            for t in guided_frames(n, frames):
                img = sh.frame(int(sh.clip_offsets[index]) + int(t))
                res = mesh.process(img)
                row = np.full(len(RAW_NAMES), np.nan, np.float32)
                pts = np.full((REGION_POINTS, 2), np.nan, np.float32)
                if res is not None:
                    solver = PoseSolver(img.shape[1], img.shape[0])
                    m = measure(res.landmarks, solver)
                    row[:] = [math.radians(m.yaw), math.radians(m.pitch), math.radians(m.roll), m.mouth,
                              m.ear_l, m.ear_r, m.gaze_h, m.gaze_v]
                    pts[:] = np.asarray(res.landmarks, np.float64)[contour, :2] / [img.shape[1], img.shape[0]]
                out.append((cid, int(t), row, pts))
    finally:
        mesh.close()
    return out


def _pose_design(pose: np.ndarray) -> np.ndarray:
    """N x 3 (yaw, pitch, roll) -> N x 10: 1, the angles, their squares and pairwise products."""
    y, p, r = pose.T
    return np.stack([np.ones_like(y), y, p, r, y * y, p * p, r * r, y * p, y * r, p * r], 1)


def eye_closure(clip_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Raw estimates (N x ``RAW_NAMES``) -> pose-free eye closure (N; NaN without a face): 1 - the mean
    aspect ratio of both eyes / the clip's open-eye ratio (its 90th percentile). Both eyes: their opposite
    yaw slopes cancel; per clip: the identity's eye shape drops out."""
    raw = np.asarray(raw, np.float64)
    ear, clip_ids = raw[:, 4:6].mean(1), np.asarray(clip_ids)
    closed = np.full(len(raw), np.nan)
    for c in np.unique(clip_ids):
        m = (clip_ids == c) & np.isfinite(ear)
        if m.any():
            closed[m] = 1.0 - ear[m] / max(float(np.percentile(ear[m], 90)), 1e-6)
    return closed


def dyn_targets(clip_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Raw estimates (N x ``RAW_NAMES``) -> pose-free dynamics targets (N x ``DYN_NAMES``), NaN where
    MediaPipe found no face. See the module docstring for why and how."""
    raw = np.asarray(raw, np.float64)
    pose, mouth, gaze = raw[:, :3], raw[:, 3], raw[:, 6:8]
    dyn = np.stack([mouth, eye_closure(clip_ids, raw), gaze[:, 0], gaze[:, 1]], 1)
    ok = np.isfinite(dyn).all(1) & np.isfinite(pose).all(1)
    if ok.sum() > 20:  # enough frames to fit the pose trend (10 coefficients)
        X = _pose_design(np.where(np.isfinite(pose), pose, 0.0))
        coef = np.linalg.lstsq(X[ok], dyn[ok], rcond=None)[0]
        dyn = dyn - X @ coef + coef[0]  # the residual, around the split's mean
    return dyn


class Guidance:
    """Per-frame guidance targets of one split (see the module docstring).

    ``raw`` holds MediaPipe's estimates (N x ``RAW_NAMES``); ``frames[clip_id]`` -> sorted frame
    indices; ``target(clip_id, t)`` -> float32: the pose in radians and the standardised dynamics
    (NaN where MediaPipe found no face): with ``targets="pose_free"`` ``GUIDE_NAMES`` (the pose-free
    targets of :func:`dyn_targets`), with ``targets="raw"`` (the default profile's, see README) the
    raw measures ``RAW_NAMES``, with ``targets="closure"`` ``GUIDE_NAMES`` too: the raw mouth and gaze,
    and for the eyes the per-clip closure of :func:`eye_closure` (the blink, without the identity's eye
    shape that dominates the raw aspect ratios across clips).
    """

    def __init__(self, clip_ids: np.ndarray, frame_idx: np.ndarray, raw: np.ndarray, targets: str = "raw",
                 regions: np.ndarray | None = None):
        self.clip_ids, self.frame_idx, self.raw = clip_ids, frame_idx.astype(np.int64), raw.astype(np.float32)
        self.regions = None if regions is None else np.asarray(regions, np.float32)  # N x REGION_POINTS x 2
        if self.regions is not None and self.regions.shape != (len(self.raw), REGION_POINTS, 2):
            raise VasaError(f"guidance regions need shape (N, {REGION_POINTS}, 2), got {self.regions.shape}")
        if self.raw.ndim != 2 or self.raw.shape[1] != len(RAW_NAMES):
            raise VasaError(f"guidance estimates need {len(RAW_NAMES)} columns {RAW_NAMES}, got shape {self.raw.shape}")
        if targets not in TARGETS:
            raise VasaError(f"guidance targets must be one of {TARGETS}, got {targets!r}")
        self.kind = targets
        self.names = RAW_NAMES if targets == "raw" else GUIDE_NAMES
        if targets == "pose_free":
            dyn = dyn_targets(np.asarray(clip_ids), self.raw)
        elif targets == "closure":  # the raw mouth and gaze, the eyes as the pose-free closure (blinks)
            r = self.raw.astype(np.float64)
            dyn = np.stack([r[:, 3], eye_closure(clip_ids, r), r[:, 6], r[:, 7]], 1)
        else:
            dyn = self.raw[:, len(POSE_NAMES):]
        n_dyn = dyn.shape[1]
        self.dyn_mean = np.nanmean(dyn, 0).astype(np.float32) if len(dyn) else np.zeros(n_dyn, np.float32)
        self.dyn_std = np.maximum(np.nanstd(dyn, 0), 1e-6).astype(np.float32) if len(dyn) else np.ones(n_dyn, np.float32)
        self.targets = np.concatenate([self.raw[:, :len(POSE_NAMES)], (dyn - self.dyn_mean) / self.dyn_std], 1).astype(np.float32)
        self._index: dict[tuple[str, int], int] = {(str(c), int(t)): i for i, (c, t) in enumerate(zip(clip_ids, frame_idx))}
        self._closure: np.ndarray | None = None  # eye_closure's standardised eyes_closed, computed on first use
        self.frames: dict[str, np.ndarray] = {}
        for c in np.unique(clip_ids):
            self.frames[str(c)] = np.sort(self.frame_idx[clip_ids == c])

    def __len__(self) -> int:
        return len(self.frame_idx)

    def found_rate(self) -> float:
        return float(np.isfinite(self.raw[:, 0]).mean()) if len(self) else 0.0

    def target(self, clip_id: str, t: int) -> np.ndarray:
        i = self._index.get((str(clip_id), int(t)))
        return self.targets[i] if i is not None else np.full(len(self.names), np.nan, np.float32)

    def region_points(self, clip_id: str, t: int) -> np.ndarray:
        """``REGION_POINTS`` x 2 lip + eye contour of a guided frame (fractions; NaN: no face or no regions)."""
        i = self._index.get((str(clip_id), int(t)))
        if i is None or self.regions is None:
            return np.full((REGION_POINTS, 2), np.nan, np.float32)
        return self.regions[i]

    def lip_centre(self, clip_id: str, t: int) -> np.ndarray:
        """The lips' centre (x, y fractions) of a guided frame, for the lip GAN's crop (NaN: no face or no regions)."""
        from vasa.latent.lip_gan import lip_centre

        return lip_centre(self.region_points(clip_id, t))

    def eye_centres(self, clip_id: str, t: int) -> np.ndarray:
        """Both eyes' centres (2 x (x, y) fractions) of a guided frame, for the eye GAN's crops (NaN: no face)."""
        from vasa.latent.eye_gan import eye_centres

        return eye_centres(self.region_points(clip_id, t))

    def eye_closure(self, clip_id: str, t: int) -> np.float32:
        """The standardised pose-free eye closure of a guided frame (:meth:`eyes_closed` over all guided
        frames to zero mean and unit spread; NaN: no face), the eye GAN's condition."""
        if self._closure is None:
            c = self.eyes_closed()
            ok = np.isfinite(c)
            mu, sd = (float(c[ok].mean()), float(c[ok].std())) if ok.any() else (0.0, 1.0)
            self._closure = ((c - mu) / max(sd, 1e-6)).astype(np.float32)
        i = self._index.get((str(clip_id), int(t)))
        return np.float32(np.nan) if i is None else self._closure[i]

    def eyes_closed(self) -> np.ndarray:
        """Pose-free eye closure of every guided frame (N; NaN without a face): 1 - mean EAR / the clip's
        open-eye EAR (:func:`eye_closure`, before standardisation), whichever targets guide ``z_dyn``."""
        return eye_closure(self.clip_ids, self.raw)

    def driver_weights(self, boost: float, threshold: float = 0.4) -> dict[str, np.ndarray]:
        """Sampling weight of each guided frame as a driver, per clip (aligned with ``frames[clip_id]``):
        ``1 + boost`` where MediaPipe sees the eyes closed (:meth:`eyes_closed` >= ``threshold``), else 1.

        Blinks are rare (about 2 % of frames of the default corpus) and small, so a decoder trained on
        uniformly drawn frames learns to paint open eyes and the encoder is never rewarded for encoding
        a blink. Drawing the frames whose landmarks say "closed" more often is label-free (MediaPipe on
        pixels) and leaves the sources and every other term as they are."""
        if boost < 0:
            raise VasaError(f"blink_boost must be >= 0, got {boost}")
        closed = self.eyes_closed()
        w = 1.0 + boost * (np.nan_to_num(closed, nan=-np.inf) >= threshold)
        row = {k: i for i, k in enumerate(zip(map(str, self.clip_ids), self.frame_idx.tolist()))}
        return {c: np.array([w[row[(c, int(t))]] for t in f], np.float64) for c, f in self.frames.items()}

    @classmethod
    def load(cls, path: str | Path, targets: str = "raw") -> "Guidance":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["clip_ids"], z["frame_idx"], z["raw"], targets, z["regions"] if "regions" in z else None)


def _settings_key(corpus: Corpus, split: str, frames: int) -> str:
    manifest = (corpus.root / "manifest.jsonl").read_bytes()
    h = hashlib.sha256(manifest + f"|{split}|{frames}|{FORMAT}".encode()).hexdigest()
    return h[:16]


def estimate_guidance(corpus: str | Path, split: str = "train", frames: int = 16, work_dir: str | Path = "runs/latent",
                      workers: int = 0, progress: bool = True) -> Guidance:
    """Estimate (or load the cached) guidance of every speech clip of ``split``; see the module docstring."""
    c = Corpus(corpus)
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    if not recs:
        raise VasaError(f"no speech clips in split {split!r} of {corpus}: nothing to guide")
    path = Path(work_dir) / f"guidance-{split}.npz"
    key = _settings_key(c, split, frames)
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("key") == key:
        return Guidance.load(path)
    jobs = [(r["id"], r["shard"], int(r["index"]), int(r["n_frames"])) for r in recs]
    n_workers = workers or max(1, min(mp.cpu_count(), 8))
    chunks = [jobs[i::n_workers * 8] for i in range(n_workers * 8)]
    chunks = [ch for ch in chunks if ch]
    rows: list[tuple[str, int, np.ndarray]] = []
    bar = tqdm(total=len(jobs), desc=f"guidance {split} (MediaPipe)", disable=not progress)
    if n_workers == 1:
        for ch in chunks:
            rows += _estimate_clips((str(c.root), ch, frames))
            bar.update(len(ch))
    else:
        with mp.get_context("spawn").Pool(n_workers) as pool:
            for ch, res in zip(chunks, pool.imap(_estimate_clips, [(str(c.root), ch, frames) for ch in chunks])):
                rows += res
                bar.update(len(ch))
    bar.close()
    rows.sort(key=lambda r: (r[0], r[1]))
    clip_ids = np.array([r[0] for r in rows])
    frame_idx = np.array([r[1] for r in rows], np.int64)
    raw = np.stack([r[2] for r in rows]) if rows else np.zeros((0, len(RAW_NAMES)), np.float32)
    regions = np.stack([r[3] for r in rows]) if rows else np.zeros((0, REGION_POINTS, 2), np.float32)
    import io

    buf = io.BytesIO()
    np.savez(buf, clip_ids=clip_ids, frame_idx=frame_idx, raw=raw, regions=regions)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.getvalue())
    g = Guidance(clip_ids, frame_idx, raw, regions=regions)
    write_json(meta_path, dict(key=key, split=split, frames=frames, names=list(RAW_NAMES), count=len(g),
                               found=g.found_rate()))
    return g


@torch.no_grad()
def guidance_fit(model, corpus: str | Path, split: str = "test", frames: int = 16,
                 work_dir: str | Path | None = None) -> dict[str, float | None]:
    """How closely a trained motion encoder follows its guidance: the Pearson r of each guided channel
    of E_mot's raw codes (``z_pose[:, :3]``, ``z_dyn[:, :5]`` in the ``raw`` layout) with MediaPipe's
    measure on ``frames`` guided frames per clip of ``split``; ``eyes_closed``: ``z_dyn[:, 1]`` (the eyes'
    channel of the ``pose_free`` and ``closure`` layouts) with the per-clip eye closure (:func:`eye_closure`).
    None where undefined (no face found, or a constant). Read next to the probes: a pose probe below what MediaPipe explains of the truth
    with a high r here is the guide's limit, with a low r the encoder's. ``work_dir``: the guidance
    cache (None: a temporary one)."""
    import tempfile

    from vasa.data.frames import to_tensor

    c = Corpus(corpus)
    with tempfile.TemporaryDirectory() as tmp:
        g = estimate_guidance(corpus, split, frames, work_dir or tmp, workers=1, progress=False)
    zp, zd = [], []
    dev = next(model.parameters()).device
    for cid, idx in g.frames.items():
        f = c.load_clip(cid).frames[idx]
        s = model.cfg.image_size
        if f.shape[1] != s:
            import cv2
            f = np.stack([cv2.resize(a, (s, s), interpolation=cv2.INTER_AREA) for a in f])
        p, d = model.E_mot(torch.stack([to_tensor(a) for a in f]).to(dev))
        zp.append(p[:, :len(POSE_NAMES)].float().cpu().numpy())
        zd.append(d[:, :len(RAW_DYN_NAMES)].float().cpu().numpy())
    codes = np.concatenate([np.concatenate(zp), np.concatenate(zd)], 1) if zp else np.zeros((0, len(RAW_NAMES)))
    out: dict[str, float | None] = {}

    def r(a: np.ndarray, b: np.ndarray) -> float | None:
        return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else None

    for k, name in enumerate(RAW_NAMES):
        ok = np.isfinite(g.raw[:, k]) if len(g) else np.zeros(0, bool)
        out[name] = r(codes[ok, k], g.raw[ok, k]) if k < codes.shape[1] else None
    # the second z_dyn channel against the per-clip eye closure (the "closure" / "pose_free" layouts' eyes)
    k = len(POSE_NAMES) + 1
    closed = g.eyes_closed() if len(g) else np.zeros(0)
    ok = np.isfinite(closed)
    out["eyes_closed"] = r(codes[ok, k], closed[ok]) if k < codes.shape[1] else None
    return out


class GuidanceLoss:
    """Smooth-L1 between the guided channels and their targets, masked where no face was found.

    ``z_pose[:, :3]`` (yaw, pitch, roll, radians; euler layout) against the pose targets (errors in
    units of 0.1 rad ~ 6 degrees); ``z_dyn[:, :4]`` against the pose-free, standardised mouth / eyes /
    gaze targets. ``pose`` and ``dyn`` weight the two parts."""

    def __init__(self, pose: float = 1.0, dyn: float = 1.0):
        self.pose, self.dyn = pose, dyn

    def __call__(self, z_pose: torch.Tensor, z_dyn: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """z_pose B x P, z_dyn B x Dd, target B x (3 + guided z_dyn channels) (NaN = unknown) -> scalar."""
        ok = torch.isfinite(target)
        tgt = torch.where(ok, target, torch.zeros_like(target))
        n_p = len(POSE_NAMES)
        n_d = target.shape[1] - n_p  # 4 pose-free targets, or the 5 raw measures
        pred = torch.cat([z_pose[:, :n_p] / 0.1, z_dyn[:, :n_d]], 1)
        tgt = torch.cat([tgt[:, :n_p] / 0.1, tgt[:, n_p:]], 1)
        err = F.smooth_l1_loss(pred, tgt, reduction="none") * ok
        w = torch.tensor([self.pose] * n_p + [self.dyn] * n_d, device=err.device, dtype=err.dtype)
        return (err * w).sum() / ok.sum().clamp_min(1)
