"""The eyes' own adversarial loss (``w_eye_adv``, ``w_eye_fm``): a patch discriminator on a crop around each
of the driver's eyes, conditioned on how closed MediaPipe found them. The lips' GAN
(:mod:`vasa.latent.lip_gan`) applied to blinks.

Why: ``z_dyn`` -> blink reads R^2 0.00 in every label-free variant so far, also with the eye crop's own
reconstruction term (``w_eyes``) and closed-eye drivers drawn 9x as often (``blink_boost``): decoded
from its own motion, a blink frame comes out with blurred, half-open eyes, so the reconstruction never
rewards the encoder for carrying a blink. At 128 px a closing lid moves a handful of pixels over two
or three frames in a hundred; the L1 / SSIM optimum over that is an open eye. A discriminator that is
told how closed the real eye is (``eye_cond``: the guidance cache's pose-free eye closure,
``1 - EAR / the clip's open-eye EAR``, r 0.73 with the renderer's blink, standardised over the guided
frames) penalises an open eye where the driver's is closed, and the only way for the decoder to know
is ``z_dyn``: the encoder is rewarded for encoding the blink.

The crops: one square of ``EYE_CROP`` of the frame side per eye, centred on that eye's MediaPipe
contour (``FramePairs`` item ``driver_eyes``: 2 x (x, y); :func:`eye_centres`), resampled to ``EYE_PX``
pixels, both eyes judged by one discriminator (2 crops per item); items where MediaPipe found no face
use the halves of the corpus eye box (``fallback``).

>>> eyes = EyeAdversarialLoss(fallback=eye_fallback((0.35, 0.5, 0.25, 0.75)))  # corpus eye box (y0, y1, x0, x1)
>>> d_loss, g_adv, g_fm = eyes(disc_eye, recon, driver, centres, closure)       # centres: B x 2 x 2, closure: B
"""

from __future__ import annotations

import numpy as np

from vasa.errors import VasaError
from vasa.latent.lip_gan import RegionAdversarialLoss

EYE_CROP = 0.18  # of the frame side: one eye with its lids, brow edge and corners (23 px at 128)
EYE_PX = 32  # crops resampled to this side for the discriminator (3 stride-2 layers: 4 x 4 logits)
EYE_PARTS = ((20, 36), (36, 52))  # the two eye contours in the guidance cache's region points (mouth.REGION_PARTS)


def eye_centres(points: np.ndarray) -> np.ndarray:
    """Region contours (``REGION_POINTS`` x 2 fractions: lips, first eye, second eye) -> 2 x (x, y) eye
    centres, float32; NaN rows where the face (or that eye's contour) was not found."""
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[0] < EYE_PARTS[-1][1] or pts.shape[1] != 2:
        raise VasaError(f"eye_centres needs {EYE_PARTS[-1][1]} x 2 contour points, got {pts.shape}")
    out = np.full((2, 2), np.nan, np.float32)
    for k, (a, b) in enumerate(EYE_PARTS):
        eye = pts[a:b]
        if np.isfinite(eye).all():
            out[k] = (eye.min(0) + eye.max(0)) / 2
    return out


EYE_FALLBACK = ((0.42, 0.36), (0.42, 0.64))  # (y, x) of each eye of a frontal face filling the frame


def eye_fallback(eyes_box) -> tuple[tuple[float, float], tuple[float, float]]:
    """The corpus eye box (y0, y1, x0, x1; both eyes) -> the centres (y, x) of its left and right quarter
    columns: where each eye sits on average (the crop centres for faces MediaPipe did not find)."""
    y0, y1, x0, x1 = (float(v) for v in eyes_box)
    y, w = (y0 + y1) / 2, x1 - x0
    return (y, x0 + w / 4), (y, x1 - w / 4)


class EyeAdversarialLoss(RegionAdversarialLoss):
    """The eyes' GAN: two crops of ``EYE_CROP`` per item, resampled to ``EYE_PX``; ``fallback`` = two
    (y, x) centres (default: a frontal face filling the frame)."""

    def __init__(self, side: float = EYE_CROP, fallback=EYE_FALLBACK, px: int = EYE_PX, blur: bool = False):
        super().__init__(side, fallback, px, blur)
        if self.fallback.shape[0] != 2:
            raise VasaError(f"the eye GAN needs two fallback centres (one per eye), got {self.fallback.shape[0]}")
