"""The lips' own GAN (vasa.latent.lip_gan): crops land where asked, NaN centres fall back, the
discriminator's loss does not reach the generator, and the option needs the guidance."""

import numpy as np
import pytest
import torch

from vasa.errors import VasaError
from vasa.latent.lip_gan import LIP_POINTS, LipAdversarialLoss, binomial_blur, box_centre, crop_at, lip_centre
from vasa.latent.losses import PatchDiscriminator


def test_crop_of_the_whole_frame_is_the_frame():
    x = torch.rand(2, 3, 32, 32)
    out = crop_at(x, torch.full((2, 2), 0.5), side=1.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cx,cy", [(0.25, 0.75), (0.6, 0.3)])
def test_crop_is_centred_on_the_requested_point(cx, cy):
    S = 64
    x = torch.zeros(1, 1, S, S)
    x[0, 0, int(cy * S) - 2:int(cy * S) + 2, int(cx * S) - 2:int(cx * S) + 2] = 1.0  # a 4 x 4 dot at (cx, cy)
    crop = crop_at(x, torch.tensor([[cx, cy]]), side=0.25)  # 16 x 16 pixels, 1:1
    assert crop.shape == (1, 1, 16, 16)
    ys, xs = np.nonzero(crop[0, 0].numpy() > 0.5)
    assert abs(ys.mean() - 7.5) < 1.0 and abs(xs.mean() - 7.5) < 1.0
    assert float(crop.sum()) == pytest.approx(16.0, abs=0.5)  # the whole dot, nothing else


def test_crop_rejects_bad_shapes_and_sides():
    with pytest.raises(VasaError, match="B x 2 centres"):
        crop_at(torch.zeros(2, 3, 8, 8), torch.zeros(3, 2))
    with pytest.raises(VasaError, match="fraction of the frame"):
        crop_at(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2), side=1.5)


def test_lip_centre_is_the_lip_box_centre_and_nan_without_a_face():
    pts = np.zeros((52, 2), np.float32)
    pts[:LIP_POINTS] = np.stack([np.linspace(0.4, 0.6, LIP_POINTS), np.linspace(0.7, 0.8, LIP_POINTS)], 1)
    pts[LIP_POINTS:] = 0.3  # the eyes do not move the lips' centre
    np.testing.assert_allclose(lip_centre(pts), [0.5, 0.75], atol=1e-6)
    pts[3] = np.nan
    assert np.isnan(lip_centre(pts)).all()
    with pytest.raises(VasaError, match="contour points"):
        lip_centre(np.zeros((5, 2)))
    assert box_centre((0.6, 0.9, 0.3, 0.7)) == pytest.approx((0.75, 0.5))


def test_nan_centres_fall_back_to_the_mouth_box_centre():
    lip = LipAdversarialLoss(fallback=(0.8, 0.4))
    c = lip.centres(torch.tensor([[0.5, 0.7], [float("nan"), float("nan")]]))
    torch.testing.assert_close(c, torch.tensor([[0.5, 0.7], [0.4, 0.8]]))


def test_discriminator_loss_does_not_reach_the_generator_and_terms_are_finite():
    torch.manual_seed(0)
    disc, lip = PatchDiscriminator(), LipAdversarialLoss()
    recon = torch.rand(2, 3, 64, 64, requires_grad=True) * 2 - 1
    recon.retain_grad()
    driver = torch.rand(2, 3, 64, 64) * 2 - 1
    d_loss, g_adv, g_fm = lip(disc, recon, driver, torch.tensor([[0.5, 0.7], [float("nan"), 0.2]]))
    assert all(torch.isfinite(t) and t.ndim == 0 for t in (d_loss, g_adv, g_fm))
    d_loss.backward(retain_graph=True)
    assert recon.grad is None  # the fake crop is detached for the discriminator
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
    (g_adv + g_fm).backward()
    assert recon.grad is not None and recon.grad.abs().sum() > 0
    # only the crop receives gradient: the top rows of the frame are outside every crop
    assert recon.grad[:, :, :8].abs().sum() == 0


def test_the_lip_gan_needs_the_guidance(smoke_corpus):
    from vasa.latent.task import LatentTask

    with pytest.raises(VasaError, match="need the landmark guidance"):
        LatentTask(str(smoke_corpus), "tiny", w_lip_adv=0.1)
    task = LatentTask(str(smoke_corpus), "tiny")
    assert "disc_lip" not in task.build_model() and task.optim_groups()[0].modules == ["disc"]


def test_the_condition_reaches_the_discriminator_and_nan_reads_as_zero():
    torch.manual_seed(0)
    disc, lip = PatchDiscriminator(in_channels=4).eval(), LipAdversarialLoss()  # eval: spectral norm holds still
    recon, driver = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    centres = torch.full((2, 2), 0.5)
    a = lip(disc, recon, driver, centres, torch.tensor([0.0, 0.0]))
    b = lip(disc, recon, driver, centres, torch.tensor([3.0, -3.0]))
    c = lip(disc, recon, driver, centres, torch.tensor([float("nan"), 0.0]))
    assert not torch.allclose(a[0], b[0])  # the mouth opening is an input of the judgement
    torch.testing.assert_close(a[0], c[0])  # no face found: the mean opening (0, standardised)
    with pytest.raises(RuntimeError):  # a 3-channel discriminator cannot take the condition
        lip(PatchDiscriminator(), recon, driver, centres, torch.zeros(2))


def _checker(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy + xx) % 2 * 2 - 1).float()  # +-1, 2-pixel period in both directions


def test_binomial_blur_keeps_a_constant_and_removes_the_2_pixel_pattern_edges_included():
    x = torch.rand(2, 3, 9, 12)
    torch.testing.assert_close(binomial_blur(torch.full((1, 2, 5, 6), 0.7)), torch.full((1, 2, 5, 6), 0.7))
    torch.testing.assert_close(binomial_blur(x + 0.3 * _checker(9, 12)), binomial_blur(x))
    assert (binomial_blur(x) - x).abs().max() > 0.05  # it does filter
    assert binomial_blur(x).shape == x.shape


@pytest.mark.parametrize("blur", [False, True])
def test_with_region_blur_the_discriminator_is_blind_to_a_2_pixel_pattern(blur):
    """A checkerboard added to the reconstruction changes the lip GAN's terms without the blur and leaves
    them (and the discriminator's loss) unchanged with it; the gradient the generator gets then holds no
    2-pixel pattern. Pixel-aligned crop: 32 px frame, side 0.5 -> 16 px crop on the pixel grid."""
    torch.manual_seed(0)
    disc = PatchDiscriminator().eval()
    lip = LipAdversarialLoss(side=0.5, blur=blur)
    recon, driver = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    centres = torch.tensor([[0.5, 0.5]])
    a = lip(disc, recon, driver, centres)
    b = lip(disc, recon + 0.2 * _checker(32, 32), driver, centres)
    same = all(torch.allclose(u, v, rtol=1e-4, atol=1e-4) for u, v in zip(a, b))  # float noise of the resampling
    assert same == blur
    x = recon.clone().requires_grad_()
    sum(lip(disc, x, driver, centres)[1:]).backward()
    g = x.grad[0, :, 8:24, 8:24]  # the crop
    nyquist = (g * _checker(32, 32)[8:24, 8:24]).sum().abs() / g.abs().sum()
    assert (nyquist < 1e-5) == blur


def test_region_blur_reaches_both_region_gans(smoke_corpus, tmp_path):
    from vasa.latent.guidance import estimate_guidance
    from vasa.latent.task import LatentTask

    estimate_guidance(smoke_corpus, "train", 4, tmp_path, workers=1, progress=False)
    kw = dict(guidance=str(tmp_path / "guidance-train.npz"), w_guide=1.0, w_lip_adv=0.1, w_eye_adv=0.1)
    on, off = LatentTask(str(smoke_corpus), "tiny", region_blur=1.0, **kw), LatentTask(str(smoke_corpus), "tiny", **kw)
    assert on.lip_gan.blur and on.eye_gan.blur and not off.lip_gan.blur and not off.eye_gan.blur
