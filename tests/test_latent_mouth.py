"""The mouth / eye region reconstruction terms (vasa.latent.mouth): crop, loss, the label-free boxes, the task knobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vasa.errors import VasaError
from vasa.latent.mouth import LIP_INDICES, MIN_SIDE, RegionLoss, check_box, crop_box, lip_box

BOX = (0.5, 0.75, 0.25, 0.75)  # rows 16..24, cols 8..24 of a 32 x 32 frame


def test_crop_box_takes_the_box_and_upsamples_small_crops():
    img = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    crop = crop_box(img, (0.5, 1.0, 0.0, 1.0))
    assert torch.equal(crop, img[..., 16:, :])  # 16 x 32: large enough, not resized
    small = crop_box(img, BOX)  # 8 x 16 -> upsampled to a side of MIN_SIDE
    assert min(small.shape[-2:]) == MIN_SIDE and small.shape[-1] == 2 * small.shape[-2]
    tiny = crop_box(img, (0.5, 0.5001, 0.5, 0.5001))  # at least one pixel
    assert tiny.shape[-2:] == (MIN_SIDE, MIN_SIDE)


def test_mouth_loss_sees_only_the_box():
    loss = RegionLoss(BOX)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    outside = x.clone()
    outside[..., :10, :] = -x[..., :10, :]  # rows above the box
    assert loss(outside, x).item() == pytest.approx(0.0, abs=1e-6)
    inside = x.clone()
    inside[..., 18:22, 12:20] += 0.5  # the lips move
    assert loss(inside, x).item() > 0.01
    y = inside.clone().requires_grad_(True)
    loss(y, x).backward()
    assert y.grad[..., :10, :].abs().sum() == 0 and y.grad[..., 16:24, 8:24].abs().sum() > 0


@pytest.mark.parametrize("bad", [None, (0.5, 0.4, 0.1, 0.9), (0.1, 0.9, 0.5, 0.5), (-0.1, 0.5, 0.1, 0.9), (0, 1, 0)])
def test_bad_boxes_are_refused(bad):
    with pytest.raises(VasaError, match="region box"):
        check_box(bad)


def test_lip_box_from_landmarks():
    lm = np.full((478, 3), 50.0, np.float32)  # every landmark at (50, 50) ...
    for k, i in enumerate(LIP_INDICES):  # ... except the lips, spread over x 40..60, y 80..90
        lm[i, :2] = (40 + 20 * k / (len(LIP_INDICES) - 1), 80 + 10 * (k % 2))
    assert lip_box(lm, 100, 200) == pytest.approx((0.40, 0.45, 0.40, 0.60))


def test_estimate_mouth_box_on_a_rendered_face():
    """MediaPipe finds the rendered lips: the box is in the lower middle of the frame and holds them."""
    from vasa.latent.mouth import estimate_mouth_box, estimate_region_boxes
    from vasa.synth.identity import sample_identity
    from vasa.synth.params import PARAM_INDEX, neutral_params
    from vasa.synth.render import HeadRenderer

    r = HeadRenderer(sample_identity(np.random.default_rng(3)), resolution=128, supersample=2, style="photo")
    frames = []
    for jaw in (0.0, 0.4, 0.8):
        p = neutral_params()
        p[PARAM_INDEX["jaw"]] = jaw
        frames.append(r.render(p))
    y0, y1, x0, x1 = estimate_mouth_box(frames)
    assert 0.45 < y0 < y1 < 1.0 and 0.1 < x0 < 0.5 < x1 < 0.9 and (y1 - y0) < 0.5
    boxes = estimate_region_boxes(frames)
    assert boxes["mouth"] == pytest.approx((y0, y1, x0, x1))
    e0, e1, ex0, ex1 = boxes["eyes"]  # both eyes: above the mouth, across the middle, a thin band
    assert 0.2 < e0 < e1 < y0 and ex0 < 0.4 and ex1 > 0.6 and (e1 - e0) < 0.25
    with pytest.raises(VasaError, match="no face found"):
        estimate_mouth_box([np.zeros((64, 64, 3), np.uint8)])


def test_latent_task_mouth_term(smoke_corpus):
    from vasa.latent.task import LatentTask

    with pytest.raises(VasaError, match="w_mouth > 0 needs the mouth crop"):
        LatentTask(str(smoke_corpus), "tiny", w_mouth=1.0)
    task = LatentTask(str(smoke_corpus), "tiny", w_mouth=1.0, mouth_box=BOX, dataset_size=4)
    assert task.config()["mouth_box"] == list(BOX) and task.config()["w_mouth"] == 1.0
    models = task.build_model()
    batch = torch.utils.data.default_collate([task.dataset()[i] for i in range(2)])
    losses, metrics = task.loss(models, batch, step=1)
    assert "mouth" in metrics and metrics["mouth"].item() > 0 and torch.isfinite(losses["gen"])
    _, plain = LatentTask(str(smoke_corpus), "tiny", dataset_size=4).loss(models, batch, step=1)
    assert "mouth" not in plain and "eyes" not in plain
    with pytest.raises(VasaError, match="w_eyes > 0 needs the eye crop"):
        LatentTask(str(smoke_corpus), "tiny", w_eyes=1.0)
    eyes = LatentTask(str(smoke_corpus), "tiny", w_eyes=2.0, eyes_box=(0.3, 0.45, 0.2, 0.8), dataset_size=4)
    assert eyes.config()["eyes_box"] == [0.3, 0.45, 0.2, 0.8] and eyes.config()["w_eyes"] == 2.0
    _, m_eyes = eyes.loss(models, batch, step=1)
    assert m_eyes["eyes"].item() > 0 and "mouth" not in m_eyes


def test_blend_region_loss_is_the_mask_inside_the_crops():
    from vasa.latent.mouth import BlendRegionLoss

    loss = BlendRegionLoss([BOX, (0.1, 0.3, 0.1, 0.9)])
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 26:, :] = 1.0  # below both crops: not penalised
    assert loss(mask).item() == 0.0
    mask[..., 16:24, 8:24] = 1.0  # the whole first crop copied
    assert loss(mask).item() == pytest.approx(0.5)
    m = mask.clone().requires_grad_(True)
    loss(m).backward()
    assert m.grad[..., 26:, :].abs().sum() == 0 and m.grad[..., 16:24, 8:24].abs().sum() > 0


def test_region_mask_fills_dilates_and_feathers():
    from vasa.latent.mouth import REGION_PARTS, BlendRegionLoss, region_mask

    def ring(cx, cy, rx, ry, n):
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)

    pts = np.concatenate([ring(0.5, 0.75, 0.12, 0.05, 20), ring(0.35, 0.4, 0.06, 0.02, 16), ring(0.65, 0.4, 0.06, 0.02, 16)])
    assert len(pts) == REGION_PARTS[-1][1]
    w = region_mask(pts, 64)
    assert w.shape == (64, 64) and w.dtype == np.float32 and 0.0 <= w.min() and w.max() <= 1.0
    assert w[48, 32] > 0.99 and w[26, 22] > 0.99 and w[26, 42] > 0.99  # inside the lips and both eyes
    assert w[5, 5] == 0.0 and w[60, 5] == 0.0 and w[33, 32] < 0.05  # corners, and between eyes and lips
    tight = region_mask(pts, 64, dilate=0.0, sigma=0.0)
    assert set(np.unique(tight > 0.5)) == {False, True} and (w >= tight - 1e-2).all() and w.sum() > tight.sum()
    assert not region_mask(np.where(np.arange(52)[:, None] == 3, np.nan, pts), 64).any()  # no face: no region
    with pytest.raises(VasaError, match="region contours must be 52 x 2"):
        region_mask(pts[:20], 64)
    # the loss: the mask's mean weighted by each item's region; an empty region falls back to the boxes
    loss = BlendRegionLoss([BOX])
    regions = torch.from_numpy(np.stack([tight, np.zeros_like(tight)]))[:, None]  # item 1: no face
    mask = torch.zeros(2, 1, 64, 64)
    assert loss(mask, regions).item() == 0.0
    mask[0] = torch.from_numpy((tight > 0).astype(np.float32))  # item 0 copies all of its region: 1 there
    assert loss(mask, regions).item() == pytest.approx(0.5, abs=1e-5)
    mask[1, :, 32:48, 16:48] = 1.0  # item 1 copies its box (BOX of a 64 x 64 frame)
    assert loss(mask, regions).item() == pytest.approx(1.0, abs=1e-5)
    assert loss(mask, regions[:, :, ::2, ::2]).item() == pytest.approx(loss(mask, regions).item(), abs=0.05)  # resized


def test_latent_task_blend_regions_term(smoke_corpus):
    """w_blend_regions: the src_blend mask is penalised inside the mouth + eye crops (both needed)."""
    from vasa.latent.task import LatentTask

    with pytest.raises(VasaError, match="w_blend_regions > 0 needs the mouth and eye crops"):
        LatentTask(str(smoke_corpus), "tiny", w_blend_regions=1.0, mouth_box=BOX)
    eyes = (0.3, 0.45, 0.2, 0.8)
    task = LatentTask(str(smoke_corpus), "tiny", w_blend_regions=1.0, mouth_box=BOX, eyes_box=eyes, dataset_size=4,
                      model={"src_blend": True})
    assert task.config()["mouth_box"] == list(BOX) and task.config()["eyes_box"] == list(eyes)
    models = task.build_model()
    batch = torch.utils.data.default_collate([task.dataset()[i] for i in range(2)])
    losses, metrics = task.loss(models, batch, step=1)
    assert 0 < metrics["blend_regions"].item() < 1 and torch.isfinite(losses["gen"])
    assert "mouth" not in metrics and "eyes" not in metrics  # the crops' reconstruction terms stay off
