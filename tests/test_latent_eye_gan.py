"""The eyes' own GAN (vasa.latent.eye_gan): each eye's crop lands on that eye, a missing face falls back
per crop to the corpus eye box's halves, the condition reaches the discriminator for both crops of an
item, gradient reaches the generator only inside the crops, and the option needs the guidance."""

import numpy as np
import pytest
import torch

from vasa.errors import VasaError
from vasa.latent.eye_gan import EYE_CROP, EYE_PX, EyeAdversarialLoss, eye_centres, eye_fallback
from vasa.latent.lip_gan import RegionAdversarialLoss
from vasa.latent.losses import PatchDiscriminator


def _points(left=(0.3, 0.4), right=(0.7, 0.42), half=0.05):
    pts = np.full((52, 2), 0.75, np.float32)  # lips low in the frame
    for (a, b), (x, y) in zip(((20, 36), (36, 52)), (left, right)):
        t = np.linspace(0, 2 * np.pi, b - a, endpoint=False)
        pts[a:b] = np.stack([x + half * np.cos(t), y + 0.4 * half * np.sin(t)], 1)
    return pts


def test_eye_centres_are_each_contours_centre_and_nan_per_missing_eye():
    pts = _points()
    np.testing.assert_allclose(eye_centres(pts), [[0.3, 0.4], [0.7, 0.42]], atol=2e-3)
    pts[40] = np.nan  # the second eye's contour lost: that row only
    c = eye_centres(pts)
    assert np.isfinite(c[0]).all() and np.isnan(c[1]).all()
    with pytest.raises(VasaError, match="contour points"):
        eye_centres(np.zeros((20, 2)))


def test_fallback_is_the_eye_box_quarters_and_replaces_missing_crops_one_by_one():
    fb = eye_fallback((0.3, 0.5, 0.2, 0.8))
    assert fb == (pytest.approx((0.4, 0.35)), pytest.approx((0.4, 0.65)))
    eyes = EyeAdversarialLoss(fallback=fb)
    nan = float("nan")
    c = eyes.centres(torch.tensor([[[0.3, 0.4], [nan, nan]], [[nan, 0.1], [0.7, 0.42]]]))
    torch.testing.assert_close(c, torch.tensor([[[0.3, 0.4], [0.65, 0.4]], [[0.35, 0.4], [0.7, 0.42]]]))
    with pytest.raises(VasaError, match="two fallback centres"):
        EyeAdversarialLoss(fallback=(0.4, 0.5))
    with pytest.raises(VasaError, match="fallback centres"):
        RegionAdversarialLoss(0.2, ((0.4, 0.3), (0.4, 0.7))).centres(torch.zeros(2, 3, 2))


class _Probe(torch.nn.Module):
    """A 'discriminator' that records what it was shown."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach())
        return [[x.mean((1, 2, 3), keepdim=True)]]


def test_each_crop_holds_its_eye_and_the_condition_is_shared_by_both():
    S = 128
    img = torch.zeros(2, 3, S, S)
    for b, (lx, rx) in enumerate(((0.3, 0.7), (0.35, 0.6))):
        for x, v in ((lx, 1.0), (rx, -1.0)):  # left eye bright, right eye dark: a 6 x 6 dot each
            img[b, :, int(0.4 * S) - 3:int(0.4 * S) + 3, int(x * S) - 3:int(x * S) + 3] = v
    centres = torch.tensor([[[0.3, 0.4], [0.7, 0.4]], [[0.35, 0.4], [0.6, 0.4]]])
    probe = _Probe()
    EyeAdversarialLoss()(probe, img, img, centres, torch.tensor([1.5, -2.0]))
    real = probe.seen[0]
    assert real.shape == (4, 4, EYE_PX, EYE_PX)  # 2 items x 2 eyes, RGB + condition
    assert (real[0::2, :3].amax((1, 2, 3)) > 0.9).all() and (real[0::2, :3].amin((1, 2, 3)) > -0.1).all()  # left eyes
    assert (real[1::2, :3].amin((1, 2, 3)) < -0.9).all() and (real[1::2, :3].amax((1, 2, 3)) < 0.1).all()  # right eyes
    torch.testing.assert_close(real[:, 3, 0, 0], torch.tensor([1.5, 1.5, -2.0, -2.0]))  # item-major, shared


def test_generator_gradient_stays_inside_both_eye_crops():
    torch.manual_seed(0)
    disc, eyes = PatchDiscriminator(in_channels=4), EyeAdversarialLoss()
    recon = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_()
    driver = torch.rand(2, 3, 64, 64) * 2 - 1
    centres = torch.tensor([[[0.3, 0.4], [0.7, 0.4]]]).repeat(2, 1, 1)
    d_loss, g_adv, g_fm = eyes(disc, recon, driver, centres, torch.tensor([0.0, float("nan")]))
    assert all(torch.isfinite(t) and t.ndim == 0 for t in (d_loss, g_adv, g_fm))
    d_loss.backward(retain_graph=True)
    assert recon.grad is None  # the discriminator's loss sees detached fakes
    (g_adv + g_fm).backward()
    g = recon.grad.abs().sum((0, 1))  # 64 x 64
    half = EYE_CROP / 2 * 64 + 1
    inside = torch.zeros(64, 64, dtype=torch.bool)
    for cx in (0.3, 0.7):
        inside[int(0.4 * 64 - half):int(0.4 * 64 + half) + 1, int(cx * 64 - half):int(cx * 64 + half) + 1] = True
    assert g[inside].sum() > 0 and g[~inside].sum() == 0
    assert g[:, :32].sum() > 0 and g[:, 32:].sum() > 0  # both eyes are judged


def test_the_eye_gan_needs_the_guidance(smoke_corpus):
    from vasa.latent.task import LatentTask

    with pytest.raises(VasaError, match="w_eye_adv / w_eye_fm .* need the landmark guidance"):
        LatentTask(str(smoke_corpus), "tiny", w_eye_fm=1.0)
    task = LatentTask(str(smoke_corpus), "tiny")
    assert "disc_eye" not in task.build_model()
