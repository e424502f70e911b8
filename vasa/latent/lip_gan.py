"""The lips' own adversarial loss (``w_lip_adv``, ``w_lip_fm``): a patch discriminator on a crop around each
driver's lips, as LivePortrait cascades its GAN over the whole frame, the face and the lips.

Why: decoded from a clip's own motion, the rendered mouth follows the true jaw with r 0.26 while the
ground-truth frames give 0.95 (``scripts/latent_mouth_jaw.py``, 40 test clips), and the opening MediaPipe
measures on it moves about an eighth as far as the real one (spread ratio 0.12): an open mouth comes out as a soft red blob with no dark
interior and no teeth. That is what an L1 / SSIM reconstruction does with a small, rare, uncertain
region (it regresses to the mean). The frame-level discriminator barely sees the lips (a few hundred of
16,384 pixels at 128 px); a discriminator on the lip crop sees little else, and its feature matching
is a learned perceptual loss on exactly that crop.

The crop (:func:`crop_at`) is a square of ``LIP_CROP`` of the frame side centred on the driver's lips,
found label-free: the lip contour of MediaPipe's face mesh from the guidance cache
(``FramePairs`` item ``driver_lip``, :func:`lip_centre`); items where MediaPipe found no face use the
corpus mouth box's centre (``fallback``). Real (the driver) and fake (the reconstruction) are cropped at
the same place, so the discriminator judges the rendering, not the placement.

Conditioned (``lip_cond``, on by default): the discriminator also reads how far MediaPipe found the
driver's mouth open (its guidance target, standardised; one constant extra input channel), for the real
and the fake crop alike. Without it the discriminator learns what lips look like, and the commonest
lips are closed: an unconditioned lip GAN drew crisp closed lips over open-jaw drivers (README).

Low-passed (``region_blur``): both crops can go through a 3 x 3 binomial filter before the discriminator
(:func:`binomial_blur`). Its response at the Nyquist frequency is zero, so the discriminator cannot see a
pattern of 2-pixel period and its gradient (the filter is its own transpose) brings the generator none.
Without it the full stage's lip GAN left such a pattern, colour fringes of 2-pixel period, on the rendered
lips (README, "The lip GAN's 2-pixel artifact"), the typical high-frequency artifact of a GAN on a
sub-pixel-convolution output; StyleGAN2's discriminator low-passes before it downsamples for this reason.

The machinery (:class:`RegionAdversarialLoss`: K crops per item at landmark-placed centres, one
discriminator, an optional per-item condition channel) is shared with the eyes' GAN
(:mod:`vasa.latent.eye_gan`: two crops per item, conditioned on the eye closure).

>>> lip = LipAdversarialLoss(fallback=(0.72, 0.5))               # (y, x) fractions
>>> d_loss, g_adv, g_fm = lip(disc_lip, recon, driver, centres)   # centres: B x 2 (x, y), NaN = fallback
>>> d_loss, g_adv, g_fm = lip(disc_lip4, recon, driver, centres, cond)  # cond: B mouth openings (NaN = 0)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vasa.errors import VasaError
from vasa.latent.losses import AdversarialLoss, FeatureMatchingLoss

LIP_CROP = 0.3  # of the frame side: lips, the chin's travel and a little cheek (38 px at 128)
LIP_POINTS = 20  # the first 20 region points of the guidance cache are the outer lip contour (mouth.LIP_INDICES)


def lip_centre(points: np.ndarray) -> np.ndarray:
    """Region contours (``REGION_POINTS`` x 2 fractions, lips first) -> the lips' centre (x, y), float32;
    NaN when the face was not found."""
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[0] < LIP_POINTS or pts.shape[1] != 2:
        raise VasaError(f"lip_centre needs at least {LIP_POINTS} x 2 contour points, got {pts.shape}")
    lips = pts[:LIP_POINTS]
    if not np.isfinite(lips).all():
        return np.full(2, np.nan, np.float32)
    return ((lips.min(0) + lips.max(0)) / 2).astype(np.float32)


def crop_at(images: torch.Tensor, centres: torch.Tensor, side: float = LIP_CROP, px: int | None = None) -> torch.Tensor:
    """Square crops of ``side`` (fraction of the frame) centred at ``centres`` (B x 2, x and y fractions)
    of ``images`` (B x C x S x S), bilinear, resampled to ``px`` pixels (default: the crop's own size).
    -> B x C x px x px. Crops reaching past the border repeat the edge."""
    if images.ndim != 4 or centres.shape != (images.shape[0], 2):
        raise VasaError(f"crop_at needs B x C x H x W images and B x 2 centres, got {tuple(images.shape)} "
                        f"and {tuple(centres.shape)}")
    if not 0 < side <= 1:
        raise VasaError(f"the crop side is a fraction of the frame in (0, 1], got {side}")
    B, S = images.shape[0], images.shape[-1]
    px = px or max(8, int(round(side * S)))
    c = centres.to(images.dtype) * 2 - 1  # B x 2 in [-1, 1] (align_corners=False)
    theta = images.new_zeros(B, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = c
    grid = F.affine_grid(theta, [B, images.shape[1], px, px], align_corners=False)  # B x px x px x 2
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> the same, low-passed by the 3 x 3 binomial filter [1, 2, 1]^T [1, 2, 1] / 16 per channel
    (edges reflected): a constant is kept, a pattern of 2-pixel period (the Nyquist frequency) is removed, edges included."""
    k = x.new_tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, groups=x.shape[1])


class RegionAdversarialLoss:
    """Hinge GAN + feature matching on crops at landmark-placed centres (module docstring): ``K`` crops
    per item (lips: 1, eyes: 2), each a square of ``side`` of the frame resampled to ``px`` pixels and,
    with ``blur``, low-passed (:func:`binomial_blur`) before the discriminator.
    ``__call__`` returns the discriminator's loss (on detached fakes) and the generator's adversarial and
    feature-matching terms."""

    def __init__(self, side: float, fallback, px: int | None = None, blur: bool = False):
        self.side, self.px, self.blur = float(side), px, bool(blur)
        self.fallback = np.asarray(fallback, np.float32).reshape(-1, 2)  # K x (y, x), where MediaPipe found no face
        self.adv, self.fm = AdversarialLoss("hinge"), FeatureMatchingLoss()

    def centres(self, centres: torch.Tensor) -> torch.Tensor:
        """B x 2 or B x K x 2 (x, y) with the non-finite crops (no face found) at the fallback centres."""
        c = centres if centres.ndim == 3 else centres[:, None]
        if c.shape[1] != self.fallback.shape[0] and self.fallback.shape[0] != 1:
            raise VasaError(f"{c.shape[1]} crop centres per item but {self.fallback.shape[0]} fallback centres")
        fb = c.new_tensor(np.ascontiguousarray(self.fallback[:, ::-1]))  # K x (x, y)
        out = torch.where(torch.isfinite(c).all(-1, keepdim=True), c, fb)
        return out if centres.ndim == 3 else out[:, 0]

    def crops(self, images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """B x C x S x S images, B x 2 or B x K x 2 centres (x, y; non-finite = fallback) -> (B K) x C x px x px
        crops, item-major, low-passed with ``blur``."""
        c = self.centres(centres.to(images.device))
        c = c if c.ndim == 3 else c[:, None]  # B x K x 2
        K = c.shape[1]
        crop = crop_at(images.repeat_interleave(K, 0) if K > 1 else images, c.reshape(-1, 2), self.side, self.px)
        return binomial_blur(crop) if self.blur else crop  # no 2-pixel pattern reaches the discriminator

    def __call__(self, disc: torch.nn.Module, recon: torch.Tensor, driver: torch.Tensor,
                 centres: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        real_crop, fake_crop = self.crops(driver, centres), self.crops(recon, centres)
        K = len(real_crop) // len(recon)
        rep = (lambda x: x.repeat_interleave(K, 0)) if K > 1 else (lambda x: x)
        if cond is not None:  # B: the driver's measure as a constant 4th channel of both crops (NaN = 0)
            k = rep(torch.nan_to_num(cond.to(recon.device, recon.dtype), nan=0.0))[:, None, None, None]
            k = k.expand(-1, 1, *real_crop.shape[-2:])
            real_crop, fake_crop = torch.cat([real_crop, k], 1), torch.cat([fake_crop, k], 1)
        real = disc(real_crop)
        d_loss = self.adv.discriminator(real, disc(fake_crop.detach()))
        fake = disc(fake_crop)
        return d_loss, self.adv.generator(fake), self.fm(real, fake)


class LipAdversarialLoss(RegionAdversarialLoss):
    """The lips' GAN: one crop of ``LIP_CROP`` per item at the lips' centre; ``fallback`` = the corpus
    mouth box's centre (y, x)."""

    def __init__(self, side: float = LIP_CROP, fallback: tuple[float, float] = (0.72, 0.5), blur: bool = False):
        super().__init__(side, fallback, blur=blur)


def box_centre(box) -> tuple[float, float]:
    """(y0, y1, x0, x1) fractions -> the box's centre (y, x)."""
    y0, y1, x0, x1 = (float(v) for v in box)
    return ((y0 + y1) / 2, (x0 + x1) / 2)
