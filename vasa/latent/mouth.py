"""Face-region reconstruction: the lips (``w_mouth``) and the eyes (``w_eyes``) get their own loss term.

A mouth opening changes a few hundred of a 128 x 128 frame's pixels, so a whole-frame reconstruction
loss barely rewards the decoder for rendering it: the evaluation's ``latent_recon`` row (ground-truth
motion decoded through the latent space) showed the exported ``z_dyn`` tracks the jaw (r ~ 0.9) while
the decoded mouth does not move (mouth-jaw r ~ 0). LivePortrait and most talking-head decoders weight
the lips separately; here the lips get a second :class:`~vasa.latent.losses.ReconstructionLoss` on a
fixed crop around the mouth.

The crop (:func:`estimate_mouth_box`) is found label-free: MediaPipe's face mesh (a real pretrained
model, the same estimator as the landmark guidance) on evenly spaced training frames; the box spans
the lip landmarks of all of them (5th-95th percentile) plus a margin. ``prepare`` frames every clip
the same way (corpus and real videos alike), so one box per corpus serves every frame; head motion
moves the mouth by a few pixels, which the margin covers.

The eyes get the same treatment (``EYE_INDICES``: both eye contours): a blink closes ~40 pixels per
eye of a 128 x 128 frame, in ~4 % of the frames.

>>> box = estimate_mouth_box(frames)                     # (y0, y1, x0, x1), fractions of the frame
>>> boxes = estimate_region_boxes(frames)                # {"mouth": box, "eyes": box}, one MediaPipe pass
>>> loss = RegionLoss(box)(recon, driver)                # B x 3 x S x S in [-1, 1]
>>> loss = BlendRegionLoss([box])(out["blend_mask"])      # src_blend: keep the copy out of the crops
>>> w = region_mask(points, 128)                         # S x S: per-frame lips + eyes, dilated, feathered
>>> loss = BlendRegionLoss([box])(out["blend_mask"], regions)   # per-frame regions (B x 1 x S x S)

The boxes are one per corpus, so they must hold every frame's lips and eyes: the union of a whole
split's positions plus a margin, a block from the eyebrows to the chin. Kept out of the ``src_blend``
mask, that block is rendered (blurry) inside a sharp warped portrait, with a rectangular seam at its
edge (README). ``blend_regions: landmarks`` uses each training pair's own contours instead
(:func:`region_mask`: the lips' and each eye's convex hull, dilated by ``REGION_DILATE`` of the frame and
feathered by a Gaussian of ``REGION_SIGMA``; the source's and the driver's regions united), from the
same MediaPipe pass as the landmark guidance.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from vasa.errors import VasaError
from vasa.latent.losses import ReconstructionLoss

# MediaPipe face-mesh indices of the outer lip contour
LIP_INDICES = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
# both eye contours (upper and lower lids, corners)
EYE_INDICES = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
               362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
REGIONS = {"mouth": LIP_INDICES, "eyes": EYE_INDICES}
MIN_SIDE = 16  # pixels: crops are upsampled to at least this side (the SSIM pyramid needs room)
# the contours of region_mask, in the order the guidance cache stores them (vasa.latent.guidance.REGION_POINTS)
REGION_PARTS = ((0, 20), (20, 36), (36, 52))  # lips, first eye, second eye
REGION_DILATE = 0.04  # of the frame side: how far the region reaches past the contour (jaw and lid travel)
REGION_SIGMA = 0.015  # of the frame side: the feathering of its edge


def region_mask(points: np.ndarray, size: int, dilate: float = REGION_DILATE, sigma: float = REGION_SIGMA) -> np.ndarray:
    """Lip and eye contours (52 x 2 fractions of the frame, ``REGION_PARTS``) -> ``size`` x ``size`` float32
    weights in [0, 1]: each part's convex hull filled, dilated by ``dilate`` and feathered by ``sigma``
    (fractions of the side). All zero when the points hold a NaN (no face found)."""
    import cv2

    pts = np.asarray(points, np.float64)
    if pts.shape != (REGION_PARTS[-1][1], 2):
        raise VasaError(f"region contours must be {REGION_PARTS[-1][1]} x 2 points, got {pts.shape}")
    m = np.zeros((size, size), np.uint8)
    if not np.isfinite(pts).all():
        return m.astype(np.float32)
    for a, b in REGION_PARTS:
        hull = cv2.convexHull(np.round(pts[a:b] * size * 16).astype(np.int32))  # 4 bits of sub-pixel precision
        cv2.fillConvexPoly(m, hull, 255, lineType=cv2.LINE_AA, shift=4)
    r = int(round(dilate * size))
    if r > 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    s = sigma * size
    out = cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), s) if s > 0 else m.astype(np.float32) / 255.0
    return np.clip(out, 0.0, 1.0)


def landmark_box(landmarks: np.ndarray, indices, width: int, height: int) -> tuple[float, float, float, float]:
    """478 x >=2 landmarks in pixels -> the (y0, y1, x0, x1) of ``indices`` as fractions of the frame."""
    pts = np.asarray(landmarks, np.float64)[list(indices), :2]
    return (float(pts[:, 1].min() / height), float(pts[:, 1].max() / height),
            float(pts[:, 0].min() / width), float(pts[:, 0].max() / width))


def lip_box(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """478 x >=2 landmarks in pixels -> the lips' (y0, y1, x0, x1) as fractions of the frame."""
    return landmark_box(landmarks, LIP_INDICES, width, height)


def estimate_region_boxes(frames: Iterable[np.ndarray], margin: float = 0.15, mesh=None,
                          regions: dict | None = None) -> dict[str, tuple[float, float, float, float]]:
    """The crop of each region (``REGIONS``: mouth, eyes) of a framing: union (5th-95th percentile) of
    the boxes MediaPipe finds on ``frames`` (H x W x 3 uint8 each), widened by ``margin`` of its size on
    every side, clipped to the frame. Raises when no face is found on any frame."""
    from vasa.eval.landmarks import FaceMesh

    regions = regions or REGIONS
    own = mesh is None
    mesh = FaceMesh(static=True) if own else mesh
    boxes: dict[str, list] = {k: [] for k in regions}
    try:
        for f in frames:
            r = mesh.process(f)
            if r is not None:
                for k, idx in regions.items():
                    boxes[k].append(landmark_box(r.landmarks, idx, f.shape[1], f.shape[0]))
    finally:
        if own:
            mesh.close()
    if not any(boxes.values()):
        raise VasaError("no face found on any frame: cannot place the mouth / eye crops (w_mouth, w_eyes need faces)")
    out = {}
    for k, bx in boxes.items():
        b = np.array(bx)
        y0, x0 = np.percentile(b[:, 0], 5), np.percentile(b[:, 2], 5)
        y1, x1 = np.percentile(b[:, 1], 95), np.percentile(b[:, 3], 95)
        dy, dx = margin * (y1 - y0), margin * (x1 - x0)
        out[k] = (float(max(0.0, y0 - dy)), float(min(1.0, y1 + dy)), float(max(0.0, x0 - dx)), float(min(1.0, x1 + dx)))
    return out


def estimate_mouth_box(frames: Iterable[np.ndarray], margin: float = 0.15,
                       mesh=None) -> tuple[float, float, float, float]:
    """The mouth crop of :func:`estimate_region_boxes`."""
    return estimate_region_boxes(frames, margin, mesh, {"mouth": LIP_INDICES})["mouth"]


def check_box(box) -> tuple[float, float, float, float]:
    if box is None or len(box) != 4:
        raise VasaError(f"region box must be (y0, y1, x0, x1) fractions of the frame, got {box}")
    y0, y1, x0, x1 = (float(v) for v in box)
    if not (0.0 <= y0 < y1 <= 1.0 and 0.0 <= x0 < x1 <= 1.0):
        raise VasaError(f"region box must satisfy 0 <= y0 < y1 <= 1 and 0 <= x0 < x1 <= 1, got {box}")
    return y0, y1, x0, x1


def crop_box(img: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
    """B x C x H x W -> the box's pixels (at least one pixel each way), upsampled to >= ``MIN_SIDE``."""
    h, w = img.shape[-2:]
    y0, y1, x0, x1 = box
    r0, c0 = min(int(np.floor(y0 * h)), h - 1), min(int(np.floor(x0 * w)), w - 1)
    r1, c1 = max(int(np.ceil(y1 * h)), r0 + 1), max(int(np.ceil(x1 * w)), c0 + 1)
    crop = img[..., r0:r1, c0:c1]  # B x C x h' x w'
    side = min(crop.shape[-2:])
    if side < MIN_SIDE:
        s = MIN_SIDE / side
        crop = F.interpolate(crop, scale_factor=s, mode="bilinear", align_corners=False)
    return crop


class RegionLoss:
    """:class:`ReconstructionLoss` on the crop ``box`` (mouth, eyes) of prediction and target (0 iff equal there)."""

    def __init__(self, box, ssim: float = 0.5):
        self.box = check_box(box)
        self.rec = ReconstructionLoss(ssim=ssim, levels=2)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.rec(crop_box(pred, self.box), crop_box(target, self.box))


class BlendRegionLoss:
    """Mean of a ``src_blend`` mask (B x 1 x S x S, 1 = the warped source) inside the crops ``boxes``: pushes
    the copy out of the lips and eyes, whose dynamics the decoder must render (0 iff the mask is 0 there).

    With ``regions`` (B x 1 x S' x S' weights, :func:`region_mask`) the mean is weighted by each item's
    own region instead; items whose region is all zero (no face found) fall back to the boxes."""

    def __init__(self, boxes):
        self.boxes = [check_box(b) for b in boxes]

    def __call__(self, mask: torch.Tensor, regions: torch.Tensor | None = None) -> torch.Tensor:
        if regions is None:
            return torch.stack([crop_box(mask, b).mean() for b in self.boxes]).mean()
        w = regions.to(mask.dtype)
        if w.shape[-2:] != mask.shape[-2:]:
            w = F.interpolate(w, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        box = torch.stack([crop_box(mask, b).flatten(1).mean(1) for b in self.boxes]).mean(0)  # B
        total = w.flatten(1).sum(1)  # B
        own = (mask * w).flatten(1).sum(1) / total.clamp_min(1e-6)
        return torch.where(total > 1e-6, own, box).mean()


def corpus_region_boxes(corpus: str, split: str = "train", frames: int = 64, seed: int = 0,
                        margin: float = 0.15) -> dict[str, tuple[float, float, float, float]]:
    """:func:`estimate_region_boxes` on ``frames`` frames of ``split``'s speech clips (one random frame
    of as many clips, seeded)."""
    from pathlib import Path

    from vasa.data.corpus import Corpus
    from vasa.data.frames import _ShardView

    c = Corpus(corpus)
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    if not recs:
        raise VasaError(f"no speech clips in split {split!r} of {corpus}: cannot place the mouth / eye crops")
    rng = np.random.default_rng([seed, 4711])
    pick = rng.choice(len(recs), size=min(frames, len(recs)), replace=False)
    shards: dict = {}
    imgs = []
    for i in sorted(pick):
        r = recs[int(i)]
        if r["shard"] not in shards:
            shards[r["shard"]] = _ShardView(Path(c.root) / "shards" / f"{r['shard']}.npz")
        sh = shards[r["shard"]]
        imgs.append(sh.frame(int(sh.clip_offsets[int(r["index"])]) + int(rng.integers(int(r["n_frames"])))))
    return estimate_region_boxes(imgs, margin)


def corpus_mouth_box(corpus: str, split: str = "train", frames: int = 64, seed: int = 0,
                     margin: float = 0.15) -> tuple[float, float, float, float]:
    """The mouth crop of :func:`corpus_region_boxes`."""
    return corpus_region_boxes(corpus, split, frames, seed, margin)["mouth"]
