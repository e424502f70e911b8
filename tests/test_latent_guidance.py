"""Landmark guidance (vasa.latent.guidance): the loss, the cache, and guided frame pairs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vasa.latent.guidance import (GUIDE_NAMES, RAW_NAMES, Guidance, GuidanceLoss, dyn_targets, estimate_guidance, eye_closure,
                                  guided_frames)


def test_guided_frames_evenly_spaced_and_unique():
    assert guided_frames(5, 16).tolist() == [0, 1, 2, 3, 4]
    f = guided_frames(100, 4)
    assert f.tolist() == [0, 33, 66, 99]
    assert len(np.unique(guided_frames(17, 16))) == 16


def test_guidance_loss_zero_at_target_masked_and_positive_elsewhere():
    loss = GuidanceLoss()
    z_pose, z_dyn = torch.randn(3, 6), torch.randn(3, 8)
    target = torch.cat([z_pose[:, :3], z_dyn[:, :4]], 1).clone()
    assert loss(z_pose, z_dyn, target).item() == pytest.approx(0.0, abs=1e-7)
    bad = target.clone()
    bad[0, 0] += 1.0
    assert loss(z_pose, z_dyn, bad).item() > 0
    bad[0, 0] = float("nan")  # unknown target: ignored, no NaN leaks into the loss
    assert loss(z_pose, z_dyn, bad).item() == pytest.approx(0.0, abs=1e-7)
    # gradients reach only the guided channels
    zp, zd = z_pose.clone().requires_grad_(), z_dyn.clone().requires_grad_()
    loss(zp, zd, target + 0.5).backward()
    assert zp.grad[:, 3:].abs().sum() == 0 and zd.grad[:, 4:].abs().sum() == 0
    assert zp.grad[:, :3].abs().sum() > 0 and zd.grad[:, :4].abs().sum() > 0
    # the two parts are weighted separately (train_latent.guide_pose / guide_dyn)
    off = target.clone()
    off[:, 0] += 0.05  # a yaw error only
    assert GuidanceLoss(pose=3.0)(z_pose, z_dyn, off).item() == pytest.approx(3 * loss(z_pose, z_dyn, off).item())
    assert GuidanceLoss(dyn=0.0)(z_pose, z_dyn, off).item() == pytest.approx(loss(z_pose, z_dyn, off).item())


def test_guidance_standardises_dyn_and_looks_up_targets():
    ids = np.array(["a", "a", "b"])
    raw = np.array([[0.1, 0, 0, 1, 2, 3, 4, 5], [0.2, 0, 0, 3, 2, 3, 4, 5], [np.nan] * 8], np.float32)
    g = Guidance(ids, np.array([0, 7, 3]), raw, targets="pose_free")
    assert g.frames["a"].tolist() == [0, 7] and g.frames["b"].tolist() == [3]
    assert g.target("a", 7).shape == (len(GUIDE_NAMES),)
    assert g.target("a", 7)[0] == pytest.approx(0.2) and g.target("a", 7)[3] == pytest.approx(1.0)  # mouth, standardised
    assert np.isnan(g.target("a", 1)).all() and np.isnan(g.target("b", 3)).all()
    assert g.found_rate() == pytest.approx(2 / 3)
    with pytest.raises(Exception, match="8 columns"):
        Guidance(ids, np.array([0, 7, 3]), raw[:, :7])
    with pytest.raises(Exception, match="guidance targets must be one of"):
        Guidance(ids, np.array([0, 7, 3]), raw, targets="nope")
    r = Guidance(ids, np.array([0, 7, 3]), raw)  # the default: MediaPipe's raw measures, standardised
    assert r.names == RAW_NAMES and r.target("a", 7).shape == (len(RAW_NAMES),)
    assert r.target("a", 7)[3] == pytest.approx(1.0) and r.target("a", 0)[3] == pytest.approx(-1.0)


def test_dyn_targets_are_pose_free_and_eyes_closed_is_per_clip():
    """Per-eye EAR with opposite yaw slopes and an iris offset that drifts with yaw: the targets keep
    the blink and the gaze, and lose the yaw (the leak that wrote head pose into z_dyn)."""
    rng = np.random.default_rng(0)
    n, clips = 2000, 50
    ids = np.repeat(np.arange(clips), n // clips).astype(str)
    yaw, pitch, roll = rng.normal(0, 0.2, n), rng.normal(0, 0.1, n), rng.normal(0, 0.07, n)
    eye_size = np.repeat(rng.uniform(0.25, 0.35, clips), n // clips)  # identity: open-eye EAR
    blink = (rng.random(n) < 0.1) * rng.uniform(0.5, 1.0, n)
    gaze = rng.normal(0, 0.1, n)
    jaw = rng.random(n)
    raw = np.stack([yaw, pitch, roll, jaw + 0.1 * pitch, eye_size * (1 - blink) * (1 + 0.8 * yaw),
                    eye_size * (1 - blink) * (1 - 0.8 * yaw), gaze + 0.5 * yaw, rng.normal(0, 0.1, n)], 1)
    raw[5, :] = np.nan  # no face found
    t = dyn_targets(ids, raw)
    ok = np.isfinite(t).all(1)
    assert not ok[5] and ok.sum() == n - 1
    corr = lambda a, b: abs(np.corrcoef(a[ok], b[ok])[0, 1])  # noqa: E731
    assert corr(raw[:, 4], yaw) > 0.3  # the per-eye measure does carry yaw
    assert corr(t[:, 1], blink) > 0.9 and corr(t[:, 1], yaw) < 0.05  # eyes_closed
    assert corr(t[:, 2], gaze) > 0.9 and corr(t[:, 2], yaw) < 0.05  # gaze_h
    assert corr(t[:, 0], jaw) > 0.95 and corr(t[:, 0], pitch) < 0.05  # mouth


def test_closure_targets_keep_raw_mouth_and_gaze_and_read_the_blink_per_clip():
    """targets="closure": mouth and gaze are the raw measures (standardised, as in "raw"), the eyes the
    per-clip closure of both eyes: it follows the blink, not the identity's eye size nor the yaw, where
    the raw left-eye ratio is mostly eye size."""
    rng = np.random.default_rng(1)
    n, clips = 2000, 50
    ids = np.repeat(np.arange(clips), n // clips).astype(str)
    yaw = rng.normal(0, 0.2, n)
    eye_size = np.repeat(rng.uniform(0.2, 0.4, clips), n // clips)
    blink = (rng.random(n) < 0.05) * rng.uniform(0.5, 1.0, n)
    raw = np.stack([yaw, rng.normal(0, 0.1, n), rng.normal(0, 0.07, n), rng.random(n),
                    eye_size * (1 - blink) * (1 + 0.8 * yaw), eye_size * (1 - blink) * (1 - 0.8 * yaw),
                    rng.normal(0, 0.1, n), rng.normal(0, 0.1, n)], 1).astype(np.float32)
    g = Guidance(ids, np.tile(np.arange(n // clips), clips), raw, targets="closure")
    r = Guidance(ids, np.tile(np.arange(n // clips), clips), raw)
    assert g.names == GUIDE_NAMES and g.targets.shape == (n, len(GUIDE_NAMES))
    np.testing.assert_allclose(g.targets[:, :4], r.targets[:, :4], atol=1e-5)  # pose + raw mouth
    np.testing.assert_allclose(g.targets[:, 5:], r.targets[:, 6:], atol=1e-5)  # raw gaze
    corr = lambda a, b: abs(np.corrcoef(a, b)[0, 1])  # noqa: E731
    assert corr(g.targets[:, 4], blink) > 0.9 and corr(g.targets[:, 4], yaw) < 0.05
    assert corr(g.targets[:, 4], eye_size) < 0.1 < 0.5 < corr(r.targets[:, 4], eye_size)
    assert abs(g.targets[:, 4].mean()) < 1e-5 and g.targets[:, 4].std() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(g.eyes_closed(), eye_closure(ids, raw), equal_nan=True)


def test_estimate_guidance_on_rendered_frames_is_cached(tmp_path):
    """MediaPipe finds the generated faces; its yaw follows the renderer's; the second call loads."""
    from vasa.data.corpus import Corpus
    from vasa.data.frames import FramePairs
    from vasa.synth.corpus import synth_corpus

    root = tmp_path / "corpus"
    synth_corpus(root, clips=4, ood_lang_clips=0, art_clips=0, identities=6, gallery_per_identity=1,
                 resolution=128, clips_per_shard=4, workers=1, progress=False)
    g = estimate_guidance(root, "train", 6, tmp_path / "run", workers=1, progress=False)
    assert g.found_rate() > 0.9 and g.raw.shape[1] == len(RAW_NAMES)
    meta = json.loads((tmp_path / "run" / "guidance-train.json").read_text())
    assert meta["frames"] == 6 and meta["count"] == len(g)
    c = Corpus(root)
    yaw_gt, yaw_est = [], []
    for cid in g.frames:
        params = c.params(cid)
        for t in g.frames[cid]:
            if np.isfinite(g.target(cid, t)[0]):
                yaw_gt.append(params[t, c.param_names.index("yaw")])
                yaw_est.append(math.degrees(g.target(cid, t)[0]))
    err = np.abs(np.array(yaw_gt) - np.array(yaw_est))
    assert np.median(err) < 5.0, err  # degrees
    g2 = estimate_guidance(root, "train", 6, tmp_path / "run", workers=1, progress=False)
    np.testing.assert_array_equal(g2.raw, g.raw)
    ds = FramePairs(root, "train", size=20, seed=0, guide=g)
    for k in range(20):
        item = ds[k]
        assert item["source_guide"].shape == (len(g.names),) and item["driver_guide"].shape == (len(g.names),)
    pf = Guidance.load(tmp_path / "run" / "guidance-train.npz", "pose_free")
    assert FramePairs(root, "train", size=2, seed=0, guide=pf)[0]["driver_guide"].shape == (len(GUIDE_NAMES),)
    from vasa.errors import VasaError
    from vasa.latent.task import LatentTask
    with pytest.raises(VasaError, match="guide_targets must be one of"):
        LatentTask(str(root), "tiny", guide_targets="nope")
    task = LatentTask(str(root), "tiny", guide_pose=3.0, guide_dyn=0.5)
    assert (task.guide_loss.pose, task.guide_loss.dyn) == (3.0, 0.5)
    # items only use guided frames: the guide targets are those of real guided frames
    allowed = {tuple(np.round(g.target(cid, t), 5)) for cid in g.frames for t in g.frames[cid]}
    assert tuple(np.round(ds[3]["driver_guide"].numpy(), 5)) in allowed
    # the same pass keeps the lip + eye contours: lips below the eyes, the two eyes side by side
    from vasa.latent.guidance import REGION_POINTS
    from vasa.latent.mouth import region_mask
    assert g.regions.shape == (len(g), REGION_POINTS, 2) and g2.regions is not None
    ok = np.isfinite(g.regions).all((1, 2))
    assert ok.mean() > 0.9 and np.array_equal(ok, np.isfinite(g.raw[:, 0]))
    lips, eye_a, eye_b = (g.regions[ok][:, a:b].mean(1) for a, b in ((0, 20), (20, 36), (36, 52)))
    assert (lips[:, 1] > eye_a[:, 1] + 0.1).all() and (np.abs(eye_a[:, 0] - eye_b[:, 0]) > 0.1).all()
    rds = FramePairs(root, "train", size=6, seed=0, guide=g, region_fn=region_mask)
    item = rds[0]
    w = item["regions"]
    assert w.shape == (1, 128, 128) and 0 < float(w.mean()) < 0.2 and float(w.max()) <= 1.0
    ys = np.nonzero(w[0].numpy() > 0.5)[0]
    assert ys.min() > 25 and ys.max() < 120  # eyes .. lips, not the forehead or the frame border
    with pytest.raises(VasaError, match="pass guide= too"):
        FramePairs(root, "train", size=2, region_fn=region_mask)
    guide_path = str(tmp_path / "run" / "guidance-train.npz")
    boxes = dict(mouth_box=(0.6, 0.9, 0.3, 0.7), eyes_box=(0.3, 0.5, 0.2, 0.8))
    with pytest.raises(VasaError, match="blend_regions: landmarks needs the landmark guidance"):
        LatentTask(str(root), "tiny", w_blend_regions=1.0, blend_regions="landmarks", **boxes)
    with pytest.raises(VasaError, match="blend_regions must be one of"):
        LatentTask(str(root), "tiny", blend_regions="mesh")
    lt = LatentTask(str(root), "tiny", w_blend_regions=1.0, blend_regions="landmarks", w_guide=1.0,
                    guidance=guide_path, dataset_size=4, model={"src_blend": True}, **boxes)
    assert lt.config()["blend_regions"] == "landmarks"
    batch = torch.utils.data.default_collate([lt.dataset()[i] for i in range(2)])
    assert batch["regions"].shape == (2, 1, 64, 64)  # the tiny model's size (resized frames)
    losses, metrics = lt.loss(lt.build_model(), batch, step=1)
    assert 0 < metrics["blend_regions"].item() < 1 and torch.isfinite(losses["gen"])
    # the lip GAN: each driver's lip centre from the same cache, below the eyes, and the crop there holds the lips
    from vasa.latent.lip_gan import crop_at
    lip = LatentTask(str(root), "tiny", w_guide=1.0, guidance=guide_path, dataset_size=4, w_lip_adv=0.1, w_lip_fm=1.0,
                     adv_start=0, **boxes)
    items = [lip.dataset()[i] for i in range(4)]
    centres = torch.stack([it["driver_lip"] for it in items])
    assert centres.shape == (4, 2) and torch.isfinite(centres).all()
    assert ((centres[:, 1] > 0.55) & (centres[:, 1] < 0.95) & (centres[:, 0] > 0.3) & (centres[:, 0] < 0.7)).all()
    from vasa.latent.lip_gan import lip_centre
    pts = g.regions[ok][0].copy()
    pts[20:] = pts[0]  # the eye parts collapsed onto a lip corner: the mask holds the lips alone
    lips_only = torch.from_numpy(region_mask(pts, 128))[None, None]
    crop = crop_at(lips_only, torch.from_numpy(lip_centre(g.regions[ok][0]))[None], 0.3)
    assert crop.shape == (1, 1, 38, 38)
    assert float(crop.sum()) > 0.9 * float(lips_only.sum()) * (38 / 38.4) ** 2  # the crop holds the lips
    mods = lip.build_model()
    assert "disc_lip" in mods and lip.optim_groups()[0].modules == ["disc", "disc_lip"]
    assert mods["disc_lip"].nets[0][0][0].in_channels == 4  # conditioned on the driver's mouth opening (lip_cond)
    uncond = LatentTask(str(root), "tiny", w_guide=1.0, guidance=guide_path, dataset_size=4, w_lip_adv=0.1,
                        lip_cond=0.0, **boxes)
    assert uncond.build_model()["disc_lip"].nets[0][0][0].in_channels == 3
    batch = torch.utils.data.default_collate(items[:2])
    losses, metrics = lip.loss(mods, batch, step=0)
    assert torch.isfinite(losses["disc"]) and torch.isfinite(losses["gen"]) and metrics["lip_fm"].item() > 0
    # the eye GAN: both eyes' centres from the same cache, above the lips and side by side, its condition
    # the standardised pose-free closure; region_adv_start gates both region GANs
    eye = LatentTask(str(root), "tiny", w_guide=1.0, guidance=guide_path, dataset_size=4, w_eye_adv=0.1, w_eye_fm=1.0,
                     w_lip_adv=0.1, adv_start=50, region_adv_start=5, **boxes)
    items = [eye.dataset()[i] for i in range(4)]
    eyes = torch.stack([it["driver_eyes"] for it in items])  # 4 x 2 x (x, y)
    assert eyes.shape == (4, 2, 2) and torch.isfinite(eyes).all()
    assert ((eyes[:, :, 1] < centres[:, None, 1] - 0.1) & (eyes[:, :, 1] > 0.2)).all()  # above the lips
    assert ((eyes[:, 0, 0] - eyes[:, 1, 0]).abs() > 0.1).all()  # two eyes, apart
    closure = g.eyes_closed()
    z = np.array([g.eye_closure(c_, t_) for c_, t_ in zip(g.clip_ids, g.frame_idx)])
    fin = np.isfinite(z)
    np.testing.assert_allclose(z[fin].mean(), 0, atol=1e-4)
    np.testing.assert_allclose(z[fin].std(), 1, atol=1e-3)
    assert np.corrcoef(z[fin], closure[fin])[0, 1] > 0.999 and np.array_equal(fin, np.isfinite(closure))
    assert float(items[0]["driver_eye_closure"]) in {float(v) for v in z[fin]}
    mods = eye.build_model()
    assert eye.optim_groups()[0].modules == ["disc", "disc_lip", "disc_eye"]
    assert mods["disc_eye"].nets[0][0][0].in_channels == 4  # conditioned on the eye closure (eye_cond)
    batch = torch.utils.data.default_collate(items[:2])
    _, before = eye.loss(mods, batch, step=4)
    losses, after = eye.loss(mods, batch, step=5)
    assert "d_eye" not in before and "d_lip" not in before  # region GANs start at region_adv_start, not adv_start
    assert "d_eye" in after and "d_lip" in after and "g_adv" not in after  # ... the frame GAN still at adv_start
    assert torch.isfinite(losses["disc"]) and after["eye_fm"].item() > 0
    # the eye-closure expert: the same crops and closure, its own optimizer group learning from step 0, scoring
    # the render from region_adv_start but not before EXPERT_WARMUP steps of its own learning
    from vasa.latent.eye_expert import EXPERT_WARMUP
    ex = LatentTask(str(root), "tiny", w_guide=1.0, guidance=guide_path, dataset_size=4, w_eye_expert=0.1,
                    region_adv_start=5, **boxes)
    mods = ex.build_model()
    assert [g.modules for g in ex.optim_groups()] == [["disc"], ["eye_expert"], ["model"]]
    torch.manual_seed(1)  # the loss draws random transforms (equivariance): the same draws for both steps
    learning, early = ex.loss(mods, batch, step=8)
    torch.manual_seed(1)
    scoring, late = ex.loss(mods, batch, step=8 + 4 * (EXPERT_WARMUP // 4))  # the same step modulo consist_every
    assert early["eye_expert"].item() > 0 and torch.isfinite(learning["eye_expert"])
    torch.testing.assert_close(scoring["gen"] - learning["gen"], 0.1 * late["g_eye_expert"], atol=1e-4, rtol=1e-3)
    # guidance_fit: an encoder that returns MediaPipe's own measures follows its guidance with r = 1;
    # a trained-from-nothing one does not (every value a correlation or None)
    from types import SimpleNamespace

    from vasa.latent.guidance import guidance_fit
    from vasa.latent.model import FaceLatentModel
    c = Corpus(root)
    lookup = {}
    for cid in g.frames:
        frames = c.load_clip(cid).frames
        for t in g.frames[cid]:
            lookup[frames[t].tobytes()] = g.raw[g._index[(cid, int(t))]]

    class Oracle(torch.nn.Module):
        cfg = SimpleNamespace(image_size=128)

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def E_mot(self, x):
            u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            raw = torch.tensor(np.stack([lookup[f.tobytes()] for f in u8]))
            return torch.cat([raw[:, :3], torch.zeros(len(raw), 3)], 1), torch.cat([raw[:, 3:], torch.zeros(len(raw), 3)], 1)

    fit = guidance_fit(Oracle(), root, "train", 6, work_dir=tmp_path / "run")
    assert list(fit) == list(RAW_NAMES) + ["eyes_closed"]
    assert all(v is None or v == pytest.approx(1.0, abs=1e-5) for k, v in fit.items() if k != "eyes_closed")
    assert fit["yaw"] is not None
    closure = g.eyes_closed()
    for k, v in lookup.items():  # an encoder whose eyes' channel is the per-clip closure ("closure" layout)
        i = next(i for cid in g.frames for i in [g._index[(cid, int(t))] for t in g.frames[cid]]
                 if np.array_equal(g.raw[i], v, equal_nan=True))
        lookup[k] = np.concatenate([v[:4], [closure[i]], v[5:]]).astype(np.float32)
    fit_c = guidance_fit(Oracle(), root, "train", 6, work_dir=tmp_path / "run")
    assert fit_c["eyes_closed"] is None or fit_c["eyes_closed"] == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(closure).sum() < 3 or fit_c["eyes_closed"] is not None
    fresh = guidance_fit(FaceLatentModel("tiny").eval(), root, "train", 6, work_dir=tmp_path / "run")
    assert all(v is None or -1.0 <= v <= 1.0 for v in fresh.values())


def test_blink_boost_draws_drivers_with_closed_eyes_more_often(smoke_corpus, tmp_path):
    """Guidance.driver_weights flags the frames whose eyes MediaPipe sees closed; FramePairs then draws
    them as drivers in proportion to their weight (and never a zero-weight frame), sources stay others."""
    from vasa.data.corpus import Corpus
    from vasa.data.frames import FramePairs
    from vasa.errors import VasaError
    from vasa.latent.task import LatentTask

    recs = Corpus(smoke_corpus).records(split="train", kind="speech")
    ids, frames, raw = [], [], []
    for r in recs:
        for t in range(0, r["n_frames"], 5):
            ear = 0.05 if t % 25 == 0 else 0.3  # one guided frame in five has closed eyes
            ids.append(r["id"]), frames.append(t), raw.append([0.0, 0.0, 0.0, 0.1, ear, ear, 0.0, 0.0])
    g = Guidance(np.array(ids), np.array(frames), np.array(raw, np.float32))
    closed = g.eyes_closed() >= 0.4
    assert closed.mean() == pytest.approx(0.2, abs=0.05)
    w = g.driver_weights(9.0, 0.4)
    for cid, f in g.frames.items():  # aligned with g.frames: 10 where closed, 1 elsewhere
        assert w[cid].tolist() == [10.0 if t % 25 == 0 else 1.0 for t in f]
    n = 300

    def closed_share(ds):
        return float(np.mean([float(ds[k]["driver_guide"][4]) < 0 for k in range(n)]))  # standardised EAR

    plain = closed_share(FramePairs(smoke_corpus, "train", size=n, seed=0, guide=g))
    boosted_ds = FramePairs(smoke_corpus, "train", size=n, seed=0, guide=g, driver_weights=w)
    boosted = closed_share(boosted_ds)
    k = closed.sum()
    assert plain == pytest.approx(k / len(closed), abs=0.08)
    assert boosted == pytest.approx(10 * k / (10 * k + (~closed).sum()), abs=0.08)
    item = boosted_ds[1]  # the source is another guided frame of the same clip
    assert not torch.equal(item["source"], item["driver"])
    none_closed = {c: np.where(np.asarray(f) % 25 == 0, 0.0, 1.0) for c, f in g.frames.items()}
    assert closed_share(FramePairs(smoke_corpus, "train", size=n, seed=0, guide=g, driver_weights=none_closed)) == 0.0
    with pytest.raises(VasaError, match="blink_boost must be >= 0"):
        g.driver_weights(-1.0)
    with pytest.raises(VasaError, match="pass guide= and size= too"):
        FramePairs(smoke_corpus, "train", guide=g, driver_weights=w)
    with pytest.raises(VasaError, match="one weight >= 0 per guided frame"):
        FramePairs(smoke_corpus, "train", size=4, guide=g, driver_weights={c: v[:-1] for c, v in w.items()})
    with pytest.raises(VasaError, match="all zero"):
        FramePairs(smoke_corpus, "train", size=4, guide=g, driver_weights={c: 0 * v for c, v in w.items()})
    with pytest.raises(VasaError, match="blink_boost > 0 .* needs the landmark guidance"):
        LatentTask(str(smoke_corpus), "tiny", blink_boost=4.0)
    path = tmp_path / "guidance-train.npz"  # the stage's task reads the cache and weighs its drivers
    np.savez(path, clip_ids=np.array(ids), frame_idx=np.array(frames), raw=np.array(raw, np.float32))
    task = LatentTask(str(smoke_corpus), "tiny", w_guide=1.0, guidance=str(path), dataset_size=n, blink_boost=9.0)
    assert task.config()["blink_boost"] == 9.0 and task.config()["blink_threshold"] == 0.4
    assert closed_share(task.dataset()) == pytest.approx(boosted, abs=0.02)
