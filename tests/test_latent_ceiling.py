"""The supervised encoder ceiling (vasa.latent.ceiling): loads the splits, trains, scores, is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.latent.ceiling import TARGETS, area_downsample, demean_groups, encoder_ceiling, load_frames, r2_columns


def test_r2_columns_perfect_mean_and_worse():
    y = np.stack([np.arange(10.0), np.arange(10.0) ** 2], 1)
    assert r2_columns(y, y) == pytest.approx([1.0, 1.0])
    mean = np.broadcast_to(y.mean(0), y.shape)
    assert r2_columns(mean, y) == pytest.approx([0.0, 0.0])
    assert all(v < 0 for v in r2_columns(-y, y))


def test_load_frames_checks_the_resolution(smoke_corpus):
    d = load_frames(str(smoke_corpus), "train", 4, 64, progress=False)
    assert d["frames"].shape[1:] == (64, 64, 3) and d["frames"].dtype == np.uint8
    assert d["y"].shape == (len(d["frames"]), len(TARGETS)) and len(d["group"]) == len(d["frames"])
    with pytest.raises(VasaError, match="corpus frames are 64 px .* takes 128 px"):
        load_frames(str(smoke_corpus), "train", 4, 128, progress=False)


def test_demean_groups_removes_each_clips_mean():
    a = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 0.0], [7.0, 2.0]])
    d = demean_groups(a, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(d, [[-1, -5], [1, 5], [-1, -1], [1, 1]])
    # a prediction off by a constant per clip is perfect within the clips
    y = np.random.default_rng(0).normal(size=(6, 1))
    g = np.array([0, 0, 0, 1, 1, 1])
    off = y + np.where(g == 0, 3.0, -2.0)[:, None]
    assert r2_columns(off, y)[0] < 0 and r2_columns(demean_groups(off, g), demean_groups(y, g))[0] == pytest.approx(1.0)


def test_area_downsample_averages_blocks_and_checks_the_factor():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    assert area_downsample(f, 8) is f  # factor 1: untouched
    d = area_downsample(f, 4)
    assert d.shape == (3, 4, 4, 3) and d.dtype == np.uint8
    assert d[1, 2, 3, 0] == np.round(f[1, 4:6, 6:8, 0].astype(float).mean())
    flat = np.full((1, 8, 8, 3), 77, np.uint8)
    assert (area_downsample(flat, 2) == 77).all()  # a flat image stays flat
    with pytest.raises(VasaError, match="not a multiple of 3 px"):
        area_downsample(f, 3)


def test_load_frames_downsamples_on_request(smoke_corpus):
    full = load_frames(str(smoke_corpus), "train", 3, 64, progress=False)
    half = load_frames(str(smoke_corpus), "train", 3, 32, progress=False, downsample=True)
    assert half["frames"].shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(half["frames"], area_downsample(full["frames"], 32))
    np.testing.assert_array_equal(half["y"], full["y"])  # same frames, same labels
    with pytest.raises(VasaError, match="takes 128 px"):  # up-sampling is never done
        load_frames(str(smoke_corpus), "train", 3, 128, progress=False, downsample=True)


def test_encoder_ceiling_trains_scores_and_is_seeded(smoke_corpus):
    data = {s: load_frames(str(smoke_corpus), s, 6, 64, progress=False) for s in ("train", "val", "test")}
    runs = [encoder_ceiling(data, "tiny", {"dyn_dim": 6}, steps=6, batch=4, warmup=1, seed=0, progress=False)
            for _ in range(2)]
    a, b = runs
    assert set(a["readout_r2_test"]) == set(TARGETS) and set(a["probe_r2_test"]) == set(TARGETS)
    assert set(a["readout_r2_within_clip"]) == set(TARGETS)
    assert a["readout_r2_test"] == b["readout_r2_test"] and a["final_loss"] == b["final_loss"]  # same seed
    assert a["model"] == {"dyn_dim": 6} and a["n_params"] > 0
    c = encoder_ceiling(data, "tiny", {"dyn_dim": 6}, steps=6, batch=4, warmup=1, seed=1, progress=False)
    assert c["final_loss"] != a["final_loss"]


def _codes(rng, n_clips=12, per=20, offset=3.0):
    """Fake clip codes: z_pose = yaw + a per-clip offset the truth does not have, z_dyn = noise."""
    names = np.array(["yaw", "pitch", "roll", "jaw", "blink_l", "blink_r"])
    params = rng.normal(size=(n_clips * per, len(names)))
    group = np.repeat(np.arange(n_clips), per)
    z_pose = params[:, :1] + offset * rng.normal(size=n_clips)[group][:, None]
    return dict(z_pose=z_pose, z_dyn=rng.normal(size=(len(group), 2)), params=params, group=group, names=names)


def test_within_clip_probes_separate_the_clip_offset_from_the_motion():
    from vasa.latent.ceiling import within_clip_probes

    rng = np.random.default_rng(0)
    r = within_clip_probes(_codes(rng), _codes(rng))
    assert r["within_clip"]["z_pose"]["yaw"] == pytest.approx(1.0, abs=1e-3)  # the motion is exact
    assert r["absolute"]["z_pose"]["yaw"] < 0.5  # the offset hides it across clips
    assert abs(r["within_clip"]["z_dyn"]["yaw"]) < 0.2  # noise reads nothing either way
    same = within_clip_probes(_codes(np.random.default_rng(1), offset=0.0), _codes(np.random.default_rng(2), offset=0.0))
    assert same["absolute"]["z_pose"]["yaw"] == pytest.approx(1.0, abs=1e-3)  # no offset: both agree


def test_within_clip_script_runs_and_checks_its_inputs(smoke_corpus, smoke_motion, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "latent_within_clip_probes.py"
    spec = importlib.util.spec_from_file_location("within_clip_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "w.json"
    rep = mod.main(["--model", str(smoke_motion.parent / "latent"), "--corpus", str(smoke_corpus), "--frames", "6",
                    "--out", str(out)])
    assert out.is_file() and set(rep["absolute"]) == {"z_pose", "z_dyn"} and set(rep["within_clip"]["z_dyn"]) == set(TARGETS)
    with pytest.raises(VasaError, match="no latent model at .*nowhere"):
        mod.main(["--model", str(tmp_path / "nowhere"), "--corpus", str(smoke_corpus), "--out", str(out)])
