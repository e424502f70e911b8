"""dyn_residual (vasa/latent/residual.py): the pose trend regressed out of the public z_dyn, and the k-NN probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vasa.latent.config import LatentModelConfig, latent_config
from vasa.latent.model import FaceLatentModel
from vasa.latent.residual import PoseResidual, n_features, pose_features


def _pose_and_codes(n=600, dyn=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    zp = torch.randn(n, 6, generator=g) * torch.tensor([0.3, 0.1, 0.1, 0.05, 0.05, 0.02])
    expr = torch.randn(n, dyn, generator=g)  # what z_dyn should carry
    mix = 4 * torch.randn(n_features(6), dyn, generator=g)
    return zp, expr, expr + pose_features(zp) @ mix  # the raw code: expression + a quadratic pose trend


def test_pose_features_layout():
    zp = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    assert pose_features(zp).tolist() == [[1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 6, 9]] and n_features(6) == 12


def test_identity_before_fit_and_exact_inverse_after():
    zp, _, raw = _pose_and_codes()
    res = PoseResidual(6, raw.shape[1])
    assert torch.equal(res.remove(zp, raw), raw) and torch.equal(res.restore(zp, raw), raw)  # training: identity
    info = res.fit(zp, raw)
    assert 0.3 < info["explained"] < 1.0 and info["frames"] == len(zp)
    pub = res.remove(zp, raw)
    torch.testing.assert_close(res.restore(zp, pub), raw, atol=1e-5, rtol=0)
    # any pose: restore and remove are inverses (a swap decodes what it encodes)
    other = zp.flip(0)
    torch.testing.assert_close(res.remove(other, res.restore(other, pub)), pub, atol=1e-5, rtol=0)


def test_fit_removes_the_pose_and_keeps_the_expression():
    zp, expr, raw = _pose_and_codes(n=2000)
    res = PoseResidual(6, raw.shape[1])
    res.fit(zp, raw, ridge=0.0)
    pub = res.remove(zp, raw).double()
    phi = pose_features(zp).double()
    c = ((phi - phi.mean(0)).T @ (pub - pub.mean(0))) / len(pub)
    corr = c / (phi.std(0)[:, None] * pub.std(0)[None])
    assert corr.abs().max() < 1e-6  # uncorrelated with every pose feature on the fit frames
    err = (pub - pub.mean(0)) - (expr - expr.mean(0)).double()
    assert float(err.pow(2).mean().sqrt()) < 0.15  # the expression stays (up to the fit's sampling error)
    torch.testing.assert_close(pub.mean(0), raw.double().mean(0))  # the mean is kept
    with pytest.raises(ValueError, match="needs more than 24 frames"):
        PoseResidual(6, 5).fit(zp[:10], raw[:10])


def test_model_decode_of_encode_is_unchanged_and_swaps_follow_the_pose():
    torch.manual_seed(0)
    cfg = latent_config("tiny", dyn_residual=True)
    m = FaceLatentModel(cfg).eval()
    plain = FaceLatentModel(latent_config("tiny")).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("dyn_res.")})
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        zp, raw = m.E_mot(x)
        m.dyn_res.coef.normal_(0, 0.5)
        m.dyn_res.mean.normal_(0, 0.1)
        z_pose, z_dyn = m.encode_motion(x)
        assert torch.equal(z_pose, zp) and not torch.allclose(z_dyn, raw)
        V, z_id = m.encode_appearance(x)
        torch.testing.assert_close(V, plain.encode_appearance(x)[0])  # canonicalised with the raw code
        torch.testing.assert_close(m.decode(V, z_id, z_pose, z_dyn), plain.decode(V, z_id, zp, raw), atol=1e-5, rtol=0)
        # dynamics-only swap: the pose-explained part of z_dyn comes from the decoded pose
        other = zp.flip(0)
        torch.testing.assert_close(m.decode(V, z_id, other, z_dyn),
                                   plain.decode(V, z_id, other, z_dyn + m.dyn_res.trend(other)), atol=1e-5, rtol=0)
        e = m.encode(x)
        torch.testing.assert_close(e["z_dyn"], z_dyn) and torch.testing.assert_close(e["z_dyn_raw"], raw)


def test_buffers_in_state_dict_and_old_configs_load_without_it():
    m = FaceLatentModel(latent_config("tiny", dyn_residual=True))
    assert {"dyn_res.mean", "dyn_res.coef"} <= set(m.state_dict())
    d = latent_config("tiny").to_dict()
    d.pop("dyn_residual")  # a config written before the option existed
    assert LatentModelConfig.from_dict(d).dyn_residual is False
    assert latent_config("S").dyn_residual is True


def test_knn_probe_reads_what_a_linear_probe_cannot():
    from vasa.eval.probes import KNNProbe, probe_r2, probe_table
    rng = np.random.default_rng(0)
    x_fit, x_ev = rng.uniform(-1, 1, (1500, 4)), rng.uniform(-1, 1, (500, 4))
    y_fit, y_ev = x_fit[:, 0] ** 2, x_ev[:, 0] ** 2  # even in x: no linear read-out
    assert probe_r2(x_fit, y_fit, x_ev, y_ev) < 0.05
    assert KNNProbe().fit(x_fit, y_fit).score(x_ev, y_ev)[0] > 0.8
    assert abs(KNNProbe().fit(x_fit, rng.normal(size=1500)).score(x_ev, rng.normal(size=500))[0]) < 0.15
    t = probe_table({"z": (x_fit, x_ev)}, {"a": (y_fit, y_ev), "b": (x_fit[:, 1], x_ev[:, 1])}, kind="knn")
    assert t["z"]["a"] > 0.8 and t["z"]["b"] > 0.8
    with pytest.raises(ValueError, match="probe kind"):
        probe_table({"z": (x_fit, x_ev)}, {"a": (y_fit, y_ev)}, kind="mlp")
    with pytest.raises(ValueError, match="needs at least 15 fit frames"):
        KNNProbe().fit(x_fit[:5], y_fit[:5])
    small = probe_table({"z": (x_fit[:8], x_ev)}, {"a": (y_fit[:8], y_ev)}, kind="knn")  # smoke-sized fit set
    assert np.isnan(small["z"]["a"])
