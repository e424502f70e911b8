"""An eye-closure expert as a loss (``w_eye_expert``): a small CNN learns, on the drivers' real eye crops, how
closed MediaPipe found those eyes; the generator is asked that its rendered eyes read as closed as the driver's.

Why: ``z_dyn`` carries the blink since E_mot's warm start (probe R^2 0.61), yet the decoded eyes do not close
(rendered eye closure vs the true blink r 0.01; README, "Why the decoder does not draw the blink"). A closing lid
changes a few dozen of 16,384 pixels on 2 % of frames: the reconstruction's gradient toward a closed lid is
about a thousandth of its total, the eye crop's own L1 (``w_eyes``) raises it a little and the conditioned eye
GAN (``w_eye_adv``) has to learn what "closed" looks like before it can say so. An expert that already reads
the closure gives the generator one number per item, "how closed does this render look", and its gradient
lands on the lids. It is Wav2Lip's frozen lip-sync expert applied to the eyes, except that this expert trains
alongside (on real crops only, from step 0, with an optimizer of its own: the generator's gradient never reaches it)
and is label-free: its targets are the guidance cache's pose-free eye closure (``1 - EAR / the clip's
open-eye EAR``), not the renderer's blink.

The crops are the eye GAN's (:mod:`vasa.latent.eye_gan`): a square of ``EYE_CROP`` of the frame at each of the
driver's eyes, resampled to ``EYE_PX``, at the same place in the driver and the reconstruction; the item's
closure is the mean of the two crops' readings. The generator term starts with the region GANs
(``region_adv_start``), at the earliest after ``EXPERT_WARMUP`` steps of the expert's own learning (before
that it reads noise).

>>> expert_loss = EyeExpertLoss(fallback=eye_fallback(eyes_box))
>>> e_loss, g_loss = expert_loss(expert, recon, driver, centres, closure)   # centres: B x 2 x 2, closure: B
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vasa.errors import VasaError
from vasa.latent.eye_gan import EYE_CROP, EYE_FALLBACK, EYE_PX
from vasa.latent.lip_gan import RegionAdversarialLoss

EXPERT_WARMUP = 200  # steps the expert learns alone, at the least, before the generator is scored by it
EXPERT_LR = 1e-3  # its Adam learning rate (times the stage's schedule)


class EyeClosureExpert(nn.Module):
    """Eye crop ``N x 3 x px x px`` in [-1, 1] -> closure ``N`` (standardised units of the guidance's
    closure): three stride-2 convolutions, global average pooling, a linear read-out."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1), nn.LeakyReLU(0.2),          # px / 2
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.LeakyReLU(0.2),      # px / 4
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.LeakyReLU(0.2),  # px / 8
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net(crops)[:, 0]


class EyeExpertLoss:
    """The expert's regression loss on the drivers' real eye crops and the generator's on its renders (both
    mean squared error against the driver's closure, over the items whose closure MediaPipe measured)."""

    def __init__(self, side: float = EYE_CROP, fallback=EYE_FALLBACK, px: int = EYE_PX, blur: bool = False):
        self.region = RegionAdversarialLoss(side, fallback, px, blur)  # its crops, centres and fallbacks
        if self.region.fallback.shape[0] != 2:
            raise VasaError(f"the eye expert needs two fallback centres (one per eye), got {self.region.fallback.shape[0]}")

    def crops(self, images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """B x 3 x S x S, B x 2 x 2 (x, y; NaN = fallback) -> (B 2) x 3 x px x px, item-major."""
        return self.region.crops(images, centres)

    def read(self, expert: nn.Module, images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """The expert's closure of each item: the mean over its two eyes. -> B."""
        return expert(self.crops(images, centres)).view(len(images), 2).mean(1)

    def __call__(self, expert: nn.Module, recon: torch.Tensor, driver: torch.Tensor, centres: torch.Tensor,
                 closure: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = closure.to(recon.device, recon.dtype)
        ok = torch.isfinite(c)
        if not ok.any():  # no measured closure in this batch: nothing to learn or ask
            zero = recon.sum() * 0
            return zero, zero
        c = torch.nan_to_num(c, nan=0.0)
        e_loss = ((self.read(expert, driver, centres) - c) ** 2)[ok].mean()
        g_loss = ((self.read(expert, recon, centres) - c) ** 2)[ok].mean()
        return e_loss, g_loss
