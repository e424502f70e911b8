"""E_mot's warm start on the landmark guidance alone (vasa.latent.mot_pretrain)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vasa.errors import VasaError
from vasa.latent.config import latent_config
from vasa.latent.encoders import MotionEncoder
from vasa.latent.guidance import GUIDE_NAMES
from vasa.latent.mot_pretrain import load_motion_encoder, pretrain_motion_encoder, save_motion_encoder


def _frames(n: int = 96, size: int = 32, seed: int = 0):
    """Frames whose 'mouth' target is their brightness (a quantity the encoder can read), NaN elsewhere
    except a yaw that follows the left/right brightness difference."""
    rng = np.random.default_rng(seed)
    lvl = rng.uniform(-1, 1, n)
    tilt = rng.uniform(-1, 1, n)
    x = np.linspace(-1, 1, size)[None, None, :]
    img = 127.5 + 60 * lvl[:, None, None] + 40 * tilt[:, None, None] * x + rng.normal(0, 3, (n, size, size))
    frames = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, -1)  # N x S x S x 3
    tgt = np.full((n, len(GUIDE_NAMES)), np.nan, np.float32)
    tgt[:, 0] = 0.3 * tilt  # yaw (radians)
    tgt[:, 3] = lvl  # mouth (standardised)
    return frames, tgt


def _enc(size: int = 32) -> MotionEncoder:
    torch.manual_seed(0)
    return MotionEncoder(latent_config("tiny", image_size=size))


def test_warm_start_fits_the_guided_channels_and_is_seeded():
    frames, tgt = _frames()
    enc = _enc()
    fit = pretrain_motion_encoder(enc, frames, tgt, steps=150, batch=16, lr=3e-3, warmup=5, progress=False)
    assert fit["loss"][-1][1] < 0.3 * fit["loss"][0][1]
    f2, t2 = _frames(48, seed=1)  # held-out frames
    with torch.no_grad():
        zp, zd = enc(torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 127.5 - 1 for f in f2]))
    assert np.corrcoef(zd[:, 0].numpy(), t2[:, 3])[0, 1] > 0.8  # mouth -> z_dyn[:, 0]
    assert np.corrcoef(zp[:, 0].numpy(), t2[:, 0])[0, 1] > 0.8  # yaw -> z_pose[:, 0]
    enc2 = _enc()
    pretrain_motion_encoder(enc2, frames, tgt, steps=150, batch=16, lr=3e-3, warmup=5, progress=False)
    for a, b in zip(enc.state_dict().values(), enc2.state_dict().values()):
        assert torch.equal(a, b)


def test_warm_start_draws_frames_by_weight():
    frames, tgt = _frames(32)
    tgt2 = tgt.copy()
    tgt2[16:, 3] = 100.0  # frames that would dominate the loss if they were ever drawn
    a, b = _enc(), _enc()
    w = np.r_[np.ones(16), np.zeros(16)]
    pretrain_motion_encoder(a, frames, tgt, steps=5, batch=8, weights=w, progress=False)
    pretrain_motion_encoder(b, frames, tgt2, steps=5, batch=8, weights=w, progress=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


@pytest.mark.parametrize("kw, msg", [(dict(weights=np.ones(3)), "one non-negative value per frame"),
                                     (dict(steps=0), "must be >= 1")])
def test_warm_start_rejects_bad_settings(kw, msg):
    frames, tgt = _frames(8)
    with pytest.raises(VasaError, match=msg):
        pretrain_motion_encoder(_enc(), frames, tgt, **dict(dict(steps=1), **kw), progress=False)
    with pytest.raises(VasaError, match="8 frames but 7 target rows"):
        pretrain_motion_encoder(_enc(), frames, tgt[:7], steps=1, progress=False)


def test_save_load_round_trip_and_mismatch(tmp_path):
    enc = _enc()
    save_motion_encoder(enc, tmp_path / "m.safetensors")
    other = MotionEncoder(latent_config("tiny", image_size=32))
    load_motion_encoder(other, tmp_path / "m.safetensors")
    for a, b in zip(enc.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(VasaError, match="does not fit this E_mot"):
        load_motion_encoder(MotionEncoder(latent_config("tiny", mot_hidden=8)), tmp_path / "m.safetensors")


def test_stage_starts_from_the_warm_start_and_reuses_it(smoke_corpus, tmp_path):
    from vasa.latent.mot_pretrain import warm_start_file
    from vasa.latent.task import LatentTask
    from vasa.latent.guidance import estimate_guidance

    estimate_guidance(smoke_corpus, "train", 3, tmp_path, workers=1, progress=False)
    guide = str(tmp_path / "guidance-train.npz")
    cfg = latent_config("tiny").to_dict()
    args = (smoke_corpus, guide, tmp_path, cfg, "raw", 1.0, 1.0, 2, 4, 1e-3, 0.0, 0.4, 0, "cpu", False)
    path, fit = warm_start_file(*args)
    assert fit["steps"] == 2 and fit["frames"] > 0
    mtime = Path(path).stat().st_mtime_ns
    assert warm_start_file(*args)[0] == path and Path(path).stat().st_mtime_ns == mtime  # same settings: reused
    warm_start_file(*args[:7], 3, *args[8:])  # other settings: fitted again
    assert json.loads((tmp_path / "mot_pretrain.json").read_text())["settings"]["steps"] == 3
    task = LatentTask(str(smoke_corpus), "tiny", guidance=guide, w_guide=1.0, init_mot=path)
    enc = MotionEncoder(latent_config("tiny"))
    load_motion_encoder(enc, path)
    built = task.build_model()["model"].E_mot
    for a, b in zip(enc.state_dict().values(), built.state_dict().values()):
        assert torch.equal(a, b)
    assert task.config()["init_mot"] == path
    with pytest.raises(VasaError, match="no file"):
        LatentTask(str(smoke_corpus), "tiny", init_mot=str(tmp_path / "missing.safetensors"))


def test_stage_names_the_fix_without_guidance(smoke_corpus, tmp_path):
    from vasa.latent.train import train_latent

    with pytest.raises(VasaError, match="mot_pretrain_steps > 0 .* needs w_guide > 0"):
        train_latent(str(smoke_corpus), out=str(tmp_path / "m"), work_dir=str(tmp_path / "r"), size="tiny",
                     steps=1, w_guide=0.0, w_cross_id=0.0, mot_pretrain_steps=2, progress=False)


def test_guided_frame_data_decodes_exactly_the_guided_frames(smoke_corpus, tmp_path):
    from vasa.data.corpus import Corpus
    from vasa.latent.guidance import estimate_guidance
    from vasa.latent.mot_pretrain import guided_frame_data

    g = estimate_guidance(smoke_corpus, "train", 3, tmp_path, workers=1, progress=False)
    c = Corpus(smoke_corpus)
    size = c.load_clip(next(iter(g.frames))).frames.shape[1]
    d = guided_frame_data(smoke_corpus, g, size, progress=False)
    want = np.concatenate([c.load_clip(cid).frames[idx] for cid, idx in g.frames.items()])
    assert np.array_equal(d["frames"], want) and len(d["targets"]) == len(want) == len(d["group"])
    assert d["targets"].shape[1] == len(g.names)
    small = guided_frame_data(smoke_corpus, g, size // 2, progress=False)["frames"]
    assert small.shape[1:] == (size // 2, size // 2, 3)
