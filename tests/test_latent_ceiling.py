"""The supervised encoder ceiling (vasa.latent.ceiling): loads the splits, trains, scores, is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.latent.ceiling import TARGETS, encoder_ceiling, load_frames, r2_columns


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


def test_encoder_ceiling_trains_scores_and_is_seeded(smoke_corpus):
    data = {s: load_frames(str(smoke_corpus), s, 6, 64, progress=False) for s in ("train", "val", "test")}
    runs = [encoder_ceiling(data, "tiny", {"dyn_dim": 6}, steps=6, batch=4, warmup=1, seed=0, progress=False)
            for _ in range(2)]
    a, b = runs
    assert set(a["readout_r2_test"]) == set(TARGETS) and set(a["probe_r2_test"]) == set(TARGETS)
    assert a["readout_r2_test"] == b["readout_r2_test"] and a["final_loss"] == b["final_loss"]  # same seed
    assert a["model"] == {"dyn_dim": 6} and a["n_params"] > 0
    c = encoder_ceiling(data, "tiny", {"dyn_dim": 6}, steps=6, batch=4, warmup=1, seed=1, progress=False)
    assert c["final_loss"] != a["final_loss"]
