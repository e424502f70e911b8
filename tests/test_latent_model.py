"""The face latent model (stage 1): shapes per size, warps, the latent interface, losses, FramePairs."""

import json
import time

import numpy as np
import pytest
import torch

from vasa.latent import LATENT_SIZES, FaceLatentModel, LatentSpace, latent_config
from vasa.latent import losses as L
from vasa.latent import pose as P
from vasa.latent.warp import driving_grid, grid_sample_3d, identity_grid

torch.set_num_threads(1)


def _img(b, size, seed=0):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _dezero(model, seed=0):
    """Give the zero-initialised layers small random weights (zero-init blocks gradients at step 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return _dezero(FaceLatentModel("tiny")).eval()


@pytest.mark.parametrize("size", ["tiny", "S"])
def test_shapes(size):
    torch.manual_seed(0)
    m = FaceLatentModel(size).eval()
    cfg, b = m.cfg, (2 if size == "tiny" else 1)
    x = _img(b, cfg.image_size)
    with torch.no_grad():
        V, z_id = m.encode_appearance(x)
        z_pose, z_dyn = m.encode_motion(x)
        out = m(x, x, other=x, consistency=True)
    assert V.shape == (b, *cfg.vol_shape) and z_id.shape == (b, cfg.id_dim)
    assert z_pose.shape == (b, len(m.pose_layout)) and z_dyn.shape == (b, cfg.dyn_dim)
    for k in ("recon", "consist_a", "consist_b", "cross"):
        assert out[k].shape == x.shape and out[k].abs().max() <= 1
    assert isinstance(m, LatentSpace)


def test_paper_size_param_count_on_meta():
    with torch.device("meta"):
        m = FaceLatentModel("paper")
    n = m.num_params()
    assert 150e6 < n < 260e6, n  # ~200M as in the paper
    assert set(LATENT_SIZES) == {"tiny", "S", "B", "paper"}


def test_decode_encode_is_differentiable_to_every_encoder(tiny):
    x, y = _img(2, 64, 1), _img(2, 64, 2)
    tiny.zero_grad()
    out = tiny(x, y)
    ((out["recon"] - y) ** 2).mean().backward()
    for part in ("E_app", "E_id", "E_mot", "G"):
        grads = [p.grad for p in getattr(tiny, part).parameters()]
        assert all(g is not None for g in grads), part
        assert sum(float(g.abs().sum()) for g in grads) > 0, part
        assert all(torch.isfinite(g).all() for g in grads)
    assert any(float(p.grad.abs().sum()) > 0 for p in tiny.E_mot.dyn_head.parameters())


@pytest.mark.parametrize("backend", ["5d", "2d"])
def test_identity_warp_is_identity(backend):
    v = torch.randn(2, 3, 4, 5, 6)
    g = identity_grid(4, 5, 6).expand(2, -1, -1, -1, -1)
    torch.testing.assert_close(grid_sample_3d(v, g, backend), v, atol=1e-5, rtol=0)


def test_2d_fallback_matches_5d_values_and_gradients():
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(2, 3, 5, 6, 7, generator=gen, requires_grad=True)
    g = (torch.rand(2, 4, 5, 3, 3, generator=gen) * 2.6 - 1.3).requires_grad_(True)  # some outside
    a = grid_sample_3d(v, g, "5d")
    b = grid_sample_3d(v, g, "2d")
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    w = torch.randn_like(a)
    ga = torch.autograd.grad((a * w).sum(), (v, g))
    gb = torch.autograd.grad((b * w).sum(), (v, g))
    torch.testing.assert_close(gb[0], ga[0], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(gb[1], ga[1], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("options", [{}, {"vol_up": 1, "static_depth": 1},
                                     {"src_blend": True, "vol_up": 1, "static_depth": 1},
                                     {"src_blend": True, "gen_sees_source": True},
                                     {"src_blend": True, "gen_sees_source": True, "gen_source_gate": True},
                                     {"src_blend": True, "gen_sees_source": True, "flow_refine": 4}])
def test_model_2d_backend_matches_5d(options):
    torch.manual_seed(0)
    m5 = _dezero(FaceLatentModel(latent_config("tiny", **options))).eval()
    m2 = FaceLatentModel(latent_config("tiny", warp_backend="2d", **options)).eval()
    m2.load_state_dict(m5.state_dict())
    x, y = _img(2, 64, 3), _img(2, 64, 4)
    with torch.no_grad():
        torch.testing.assert_close(m2(x, y)["recon"], m5(x, y)["recon"], atol=1e-4, rtol=1e-4)


def test_rigid_warp_rotates_and_pose_utilities_roundtrip():
    ang = torch.tensor([[0.3, -0.2, 0.1], [-0.5, 0.4, -0.7]])
    R = P.euler_to_matrix(*ang.t())
    torch.testing.assert_close(P.matrix_to_euler(R), ang)
    torch.testing.assert_close(P.sixd_to_matrix(P.matrix_to_sixd(R)), R)
    z = torch.tensor([[0.3, -0.2, 0.1, 0.05, -0.1, 0.2]])
    for rep in ("euler", "6d"):
        zp = z if rep == "euler" else torch.cat([P.matrix_to_sixd(P.euler_to_matrix(*z[:, :3].t())), z[:, 3:]], 1)
        torch.testing.assert_close(P.rts_to_pose(*P.pose_to_rts(zp, rep), rep), zp)
    # yaw > 0 turns the nose (+z, towards the camera) to the image's right (+x)
    assert P.euler_to_matrix(torch.tensor([0.5]), torch.zeros(1), torch.zeros(1))[0, 0, 2] > 0
    # the identity pose gives the identity driving grid
    Ri, ti, si = P.pose_to_rts(P.identity_pose(1), "euler")
    torch.testing.assert_close(driving_grid((2, 3, 4), Ri, ti, si, None), identity_grid(2, 3, 4))


def test_reenact_parts(tiny):
    src, drv = _img(2, 64, 5), _img(2, 64, 6)
    with torch.no_grad():
        own = tiny.decode(*tiny.encode_appearance(src), *tiny.encode_motion(src))
        torch.testing.assert_close(tiny.reenact(src, drv, parts=()), own)
        full = tiny.decode(*tiny.encode_appearance(src), *tiny.encode_motion(drv))
        torch.testing.assert_close(tiny.reenact(src, drv, parts=("pose", "dyn")), full)
        pose_only = tiny.reenact(src, drv, parts=("pose",))
        assert not torch.allclose(pose_only, full) and not torch.allclose(pose_only, own)
    with pytest.raises(ValueError):
        tiny.reenact(src, drv, parts=("gaze",))


def test_losses_finite_and_invariant(tiny):
    x, y, o = _img(4, 64, 7), _img(4, 64, 8), _img(4, 64, 9)
    rec = L.ReconstructionLoss()
    assert float(rec(x, x)) == pytest.approx(0.0, abs=1e-6) and float(rec(x, y)) > 0
    assert float(L.ConsistencyLoss()(x, x)) == pytest.approx(0.0, abs=1e-6)
    D, adv, fm = L.PatchDiscriminator(channels=(8, 16), scales=2), L.AdversarialLoss(), L.FeatureMatchingLoss()
    real, fake = D(x), D(y)
    assert float(fm(real, real).detach()) == 0.0
    for kind in ("hinge", "nonsat"):
        a = L.AdversarialLoss(kind)
        for v in (a.generator(fake), a.discriminator(real, fake)):
            assert v.ndim == 0 and torch.isfinite(v)
    emb = L.IdentityEmbedder(channels=(8, 16), dim=16)
    cross = L.CrossIdentityLoss(emb)
    assert float(cross(x, x)) == pytest.approx(0.0, abs=1e-5) and float(cross(x, y)) > 0
    assert torch.isfinite(emb.loss(emb(torch.cat([x, y])), torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])))
    out = tiny(x, y, other=o, consistency=True)
    terms = [rec(out["recon"], y), fm(real, fake), adv.generator(D(out["recon"])), adv.discriminator(real, fake),
             L.ConsistencyLoss()(out["consist_a"], out["consist_b"]), cross(x, out["cross"]),
             L.PoseEquivarianceLoss()(tiny, x, torch.Generator().manual_seed(0)),
             L.PoseDynDecorrelationLoss()(out["z_pose_drv"], out["z_dyn_drv"]),
             L.PoseLeakLoss()(L.PoseLeakProbe(tiny.cfg.dyn_dim, tiny.cfg.pose_dim), out["z_dyn_drv"], out["z_pose_drv"]),
             L.WarpSmoothnessLoss()(out["flow_canon"], out["flow_drive"]),
             L.SupervisedPoseLoss(["yaw", "pitch", "roll", "scale"])(out["z_pose_drv"],
                                                                     torch.tensor([[5.0, 0, 0, 1.0]] * 4))]
    for t in terms:
        assert t.ndim == 0 and torch.isfinite(t), t
    sum(terms).backward()  # all differentiable together
    zero_flow = torch.zeros(2, 3, 2, 4, 4)
    assert float(L.WarpSmoothnessLoss()(zero_flow)) == 0.0


def _fresh_r2(z: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """R^2 per pose column of a least-squares read-out of ``pose`` from ``z`` (all samples)."""
    zc = torch.cat([z, torch.ones(len(z), 1)], 1)
    w = torch.linalg.lstsq(zc, pose).solution
    return 1 - (zc @ w - pose).pow(2).sum(0) / (pose - pose.mean(0)).pow(2).sum(0)


def test_pose_leak_loss_sees_a_spread_read_out_and_training_removes_it():
    """The pose hidden in random directions of a noisy z_dyn: the leak loss sees it (near 1), sees
    nothing in a pose-free code, and an encoder trained against it drops the pose from z_dyn and
    keeps the dynamics (fresh least-squares probe R^2 0.99 -> < 0.25)."""
    g = torch.Generator().manual_seed(0)
    n, dd = 512, 16
    pose, dyn = torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g)
    x = torch.cat([pose, dyn], 1)
    noise = lambda m: 0.3 * torch.randn(m, dd, generator=g)  # noqa: E731
    mix = torch.randn(7, dd, generator=g)
    leak = L.PoseLeakLoss()
    probe = L.PoseLeakProbe(dd, 3, memory=256)
    for _ in range(4):
        idx = torch.randint(0, n, (64,), generator=g)
        high = float(leak(probe, x[idx] @ mix + noise(64), pose[idx]))
    assert high > 0.9 and int(probe.filled) == 256
    clean = L.PoseLeakProbe(dd, 3, memory=256)
    for _ in range(4):
        idx = torch.randint(0, n, (64,), generator=g)
        low = float(leak(clean, dyn[idx] @ mix[3:] + noise(64), pose[idx]))
    assert low < 0.15
    assert _fresh_r2(x @ mix + noise(n), pose).min() > 0.95  # the untrained code carries the pose
    enc, dec = torch.nn.Linear(7, dd), torch.nn.Linear(dd, 4)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 1e-2)
    for _ in range(800):
        idx = torch.randint(0, n, (64,), generator=g)
        z = enc(x[idx]) + noise(64)
        opt.zero_grad()
        ((dec(z) - dyn[idx]).pow(2).mean() + leak(probe, z, pose[idx])).backward()
        opt.step()
    with torch.no_grad():
        z = enc(x) + noise(n)
        assert _fresh_r2(z, pose).max() < 0.25, _fresh_r2(z, pose)
        assert (dec(z) - dyn).pow(2).mean() < 0.1


def test_pose_leak_probe_memory_is_a_ring_buffer_in_the_state_dict():
    probe = L.PoseLeakProbe(4, 2, memory=5)
    probe.push(torch.arange(12.0).view(3, 4), torch.zeros(3, 2))
    probe.push(torch.arange(12.0, 28.0).view(4, 4), torch.ones(4, 2))
    assert int(probe.filled) == 5 and int(probe.ptr) == 2
    assert probe.mem_dyn[:, 0].tolist() == [20.0, 24.0, 8.0, 12.0, 16.0]
    sd = probe.state_dict()
    assert {"mem_dyn", "mem_pose", "filled", "ptr"} <= set(sd)
    other = L.PoseLeakProbe(4, 2, memory=5)
    other.load_state_dict(sd)
    assert torch.equal(other.mem_dyn, probe.mem_dyn) and int(other.ptr) == 2


class _DotPoseOracle:
    """A 'motion encoder' that reads roll, translation and scale off two coloured dots (red at
    -d, green at +d from the head centre): exactly equivariant, so its equivariance loss is ~0."""

    cfg = latent_config("tiny")
    d0 = 0.3

    @staticmethod
    def image(n=64):
        y, x = torch.meshgrid(*(((torch.arange(n) + 0.5) * 2 / n - 1),) * 2, indexing="ij")
        dot = lambda cx: torch.exp(-((x - cx) ** 2 + y ** 2) / (2 * 0.05 ** 2))  # noqa: E731
        return torch.stack([dot(-_DotPoseOracle.d0), dot(_DotPoseOracle.d0), torch.zeros(n, n)])[None] * 2 - 1

    def encode_motion(self, img):
        n = img.shape[-1]
        y, x = torch.meshgrid(*(((torch.arange(n) + 0.5) * 2 / n - 1),) * 2, indexing="ij")
        w = (img[:, :2] + 1).clamp_min(0) ** 4  # B x 2 x n x n, sharpened
        w = w / w.sum((2, 3), keepdim=True)
        pts = torch.stack([(w * x).sum((2, 3)), (w * y).sum((2, 3))], -1)  # B x 2 dots x (x, y) grid
        mid, vec = pts.mean(1), (pts[:, 1] - pts[:, 0]) / 2
        phi = torch.atan2(vec[:, 1], vec[:, 0])  # grid frame (y down) = -roll in the camera frame
        z = torch.zeros(len(img), 6)
        z[:, 2], z[:, 3], z[:, 4], z[:, 5] = -phi, mid[:, 0], -mid[:, 1], torch.log(vec.norm(dim=1) / self.d0)
        return z, None


def test_pose_equivariance_loss_is_zero_for_an_equivariant_encoder():
    oracle, img = _DotPoseOracle(), _DotPoseOracle.image().expand(4, -1, -1, -1)
    z = oracle.encode_motion(img)[0]
    assert z.abs().max() < 0.02  # the reference image has the identity pose
    loss = L.PoseEquivarianceLoss(max_roll_deg=20, max_shift=0.1, max_log_scale=0.1)
    good = float(loss(oracle, img, torch.Generator().manual_seed(1)))

    class Constant(_DotPoseOracle):  # ignores the image: not equivariant
        def encode_motion(self, img):
            return torch.zeros(len(img), 6), None
    bad = float(loss(Constant(), img, torch.Generator().manual_seed(1)))
    assert good < 0.02 * bad, (good, bad)


def test_safetensors_roundtrip(tiny, tmp_path):
    from safetensors.torch import load_file, save_file
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(path))
    m2 = FaceLatentModel(tiny.cfg).eval()
    m2.load_state_dict(load_file(str(path)))
    x, y = _img(2, 64, 10), _img(2, 64, 11)
    with torch.no_grad():
        assert torch.equal(m2(x, y)["recon"], tiny(x, y)["recon"])
    assert type(tiny.cfg).from_dict(json.loads(json.dumps(tiny.cfg.to_dict()))) == tiny.cfg


# ---- FramePairs on a tiny synthetic corpus (no renderer) ----

@pytest.fixture(scope="module")
def synthetic_corpus(tmp_path_factory):
    from vasa.io.shards import ClipData, write_shard
    root = tmp_path_factory.mktemp("frames_corpus")
    (root / "shards").mkdir()
    rng = np.random.default_rng(0)
    records, names = [], ["yaw", "pitch", "roll", "scale"]
    specs = [("c0", "speech", "train", "id0", 5), ("c1", "speech", "train", "id0", 4),
             ("c2", "speech", "train", "id1", 6),
             ("c3", "speech", "val", "id2", 3), ("g0", "gallery", "train", "id1", 2)]
    for s, group in enumerate([specs[:2], specs[2:]]):
        clips = []
        for cid, kind, split, ident, n in group:
            frames = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
            base = 100 * int(cid[1:]) + (1000 if kind == "gallery" else 0)  # params[:, 0] names the frame
            params = np.tile(base + np.arange(n, dtype=np.float32)[:, None], (1, len(names)))
            rec = dict(id=cid, kind=kind, split=split, identity=ident)
            clips.append(ClipData(record=rec, frames=frames, params=params))
        records += write_shard(root / "shards" / f"s{s}.npz", clips)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "schema.json").write_text(json.dumps({"params": names}))
    return root


def test_frame_pairs(synthetic_corpus):
    from vasa.data.frames import FramePairs
    from vasa.io.shards import Shard
    ds = FramePairs(synthetic_corpus, with_params=True)
    assert len(ds) == 5 + 4 + 6 and ds.identities == ["id0", "id1"]
    seen = set()
    for k in range(len(ds)):
        it = ds[k]
        assert it["source"].shape == (3, 32, 32) and it["source"].dtype == torch.float32
        assert it["source"].min() >= -1 and it["source"].max() <= 1
        assert it["identity"] != it["other_identity"]
        assert it["source_params"][0] != it["driver_params"][0]  # different frames of the clip
        seen.add(int(it["source_params"][0]))
    assert len(seen) == len(ds)  # every frame is a source once
    # pixels are the corpus's frames (JPEG-decoded the same way as Shard.frame)
    ref = Shard(synthetic_corpus / "shards" / "s0.npz").frame(0)
    torch.testing.assert_close(ds[0]["source"], torch.from_numpy(ref.transpose(2, 0, 1).copy()).float() / 127.5 - 1)
    a, b = FramePairs(synthetic_corpus, size=50, seed=3), FramePairs(synthetic_corpus, size=50, seed=3)
    assert len(a) == 50 and all(torch.equal(a[k]["driver"], b[k]["driver"]) for k in (0, 17, 49))
    g = FramePairs(synthetic_corpus, kind=("speech", "gallery"))
    assert len(g) == 17
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["source"].shape == (4, 3, 32, 32)
    with pytest.raises(Exception):
        FramePairs(synthetic_corpus, split="val")  # one identity: no cross-identity pairs
    t0 = time.perf_counter()
    for k in range(200):
        a[k % 50]
    assert (time.perf_counter() - t0) < 2.0  # >= 100 items/s even on a loaded CI machine


def test_dyn_volume_places_expression_content_that_moves_with_the_head():
    torch.manual_seed(0)
    cfg = latent_config("tiny", dyn_volume=[2, 8, 8])
    assert cfg.dyn_volume == (2, 8, 8)  # YAML lists become tuples
    m = FaceLatentModel(cfg).eval()
    x = _img(2, 64)
    V, z_id = m.encode_appearance(x)
    z_pose, z_dyn = m.encode_motion(x)
    with torch.no_grad():
        base = m.decode(V, z_id, z_pose, z_dyn)
        _dezero(m.G.dyn_volume)  # zero-initialised: the plain warp until trained
        assert torch.equal(FaceLatentModel(cfg).G.dyn_volume(z_dyn, (4, 16, 16)), torch.zeros(2, 4, 4, 16, 16))
        moved = m.decode(V, z_id, z_pose, z_dyn)
        other = m.decode(V, z_id, z_pose, z_dyn + 1.0)
    assert not torch.allclose(base, moved) and not torch.allclose(moved, other)
    r = m.G.dyn_volume(z_dyn, tuple(V.shape[-3:]))
    assert r.shape == V.shape  # B x C x D x H x W, a residual of V_app
    # the residual is added in canonical space, before the driving warp: the decoder sees it warped
    with torch.no_grad():
        v_with, _ = m.G.warp(V, z_pose, z_dyn)
        m.G.dyn_volume, keep = None, m.G.dyn_volume
        try:
            v_plain, _ = m.G.warp(V + r, z_pose, z_dyn)
        finally:
            m.G.dyn_volume = keep
    assert torch.allclose(v_with, v_plain, atol=1e-6)


def test_model_overrides_are_checked():
    with pytest.raises(ValueError, match="unknown latent model field"):
        latent_config("S", no_such_field=1)
    with pytest.raises(ValueError, match="dyn_volume is"):
        latent_config("S", dyn_volume=(4, 4))
    from vasa.config import build_section, LatentConfig
    from vasa.errors import VasaError

    with pytest.raises(VasaError, match="train_latent.model"):
        build_section(LatentConfig, {"model": {"dyn_volume": [1]}}, "train_latent")
    with pytest.raises(VasaError, match="must be of type"):
        build_section(LatentConfig, {"model": [1]}, "train_latent")
    assert build_section(LatentConfig, {"model": {"dyn_volume": [4, 16, 16]}}, "train_latent").model


def test_pose_cond_feeds_the_pose_to_every_dynamics_network():
    """With pose_cond the flows, the residual volume and the style read [z_dyn, z_pose]: with the rigid
    warp held fixed, changing z_pose still changes them (and without pose_cond it does not)."""
    torch.manual_seed(0)
    x = _img(2, 64)
    for pose_cond in (False, True):
        cfg = latent_config("tiny", dyn_volume=[2, 4, 4], pose_cond=pose_cond)
        m = _dezero(FaceLatentModel(cfg)).eval()
        assert m.G.flow.mlp[0].in_features == cfg.dyn_dim + (cfg.pose_dim if pose_cond else 0)
        assert m.E_app.flow.mlp[0].in_features == m.G.dyn_volume.mlp[0].in_features == m.G.flow.mlp[0].in_features
        z_pose, z_dyn = m.encode_motion(x)
        other_pose = z_pose + 0.3
        with torch.no_grad():
            parts = [(m.G.flow(dyn_in), m.G.dyn_volume(dyn_in, (4, 16, 16)))
                     for dyn_in in (torch.cat([z_dyn, p], 1) if pose_cond else z_dyn for p in (z_pose, other_pose))]
            styles = [m.G.style_vector(torch.zeros(2, cfg.id_dim), z_dyn, p) for p in (z_pose, other_pose)]
        changed = not torch.allclose(parts[0][0], parts[1][0]) and not torch.allclose(parts[0][1], parts[1][1])
        assert changed == pose_cond and (not torch.allclose(*styles)) == pose_cond
        out = m(x, _img(2, 64, 3))
        assert out["recon"].shape == x.shape


def test_mot_split_gives_z_dyn_a_backbone_of_its_own():
    """With mot_split a loss on z_dyn sends no gradient to the features z_pose is read from."""
    torch.manual_seed(0)
    x = _img(2, 64)
    for split in (False, True):
        m = FaceLatentModel(latent_config("tiny", mot_split=split))
        z_pose, z_dyn = m.encode_motion(x)
        assert z_pose.shape == (2, m.pose_dim) and z_dyn.shape == (2, m.dyn_dim)
        z_dyn.pow(2).sum().backward()
        shared = sum(float(p.grad.abs().sum()) for p in m.E_mot.net.parameters() if p.grad is not None)
        assert (shared == 0) == split
        if split:
            assert all(p.grad is not None for p in m.E_mot.dyn_net.parameters())


def test_pose_leak_loss_is_finite_for_constant_codes():
    """A freshly initialised pose head gives the same z_pose to every frame: zero loss, finite gradient."""
    z_dyn = torch.randn(4, 8, requires_grad=True)
    for z_pose in (torch.zeros(4, 6), torch.randn(4, 6)):
        loss = L.PoseLeakLoss()(L.PoseLeakProbe(8, 6), z_dyn, z_pose)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z_dyn.grad).all()
        z_dyn.grad = None


def test_vol_up_fine_volume_shapes_and_skips():
    """vol_up=1: V_app is twice as fine as the decoder's trunk; with the fine paths zeroed the fine
    volume is the upsampled coarse one and the skips add nothing; every new path gets gradients."""
    torch.manual_seed(0)
    cfg = latent_config("tiny", vol_up=1)
    assert cfg.vol_size == 2 * cfg.trunk_size == 32 and cfg.vol_shape == (4, 4, 32, 32)
    m = _dezero(FaceLatentModel(cfg))
    x, y = _img(2, 64, 1), _img(2, 64, 2)
    out = m(x, y)
    assert out["V_app"].shape == (2, *cfg.vol_shape) and out["recon"].shape == x.shape
    ((out["recon"] - y) ** 2).mean().backward()
    for mod in (m.E_app.to_vol_up, m.G.skips):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())
    with torch.no_grad():
        for mod in (m.E_app.to_vol_up, m.G.skips):
            for p in mod.parameters():
                p.zero_()
        feats = m.E_app.net2d(x)
        coarse = m.E_app._volume(m.E_app.to_vol(feats))
        for blk in m.E_app.net3d:
            coarse = blk(coarse)
        up = torch.nn.functional.interpolate(coarse, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)
        torch.testing.assert_close(m.E_app.posed_volume(x), up)
    with pytest.raises(ValueError, match="vol_up must be in"):
        latent_config("tiny", vol_up=2)


def test_static_depth_slices_are_screen_space():
    """static_depth=1: V_app's last depth slice is the source's posed slice, and the decoder's warped
    volume keeps it whatever the pose and dynamics; the other slices still move."""
    torch.manual_seed(0)
    cfg = latent_config("tiny", static_depth=1, dyn_volume=[2, 4, 4])
    m = _dezero(FaceLatentModel(cfg)).eval()
    x = _img(2, 64, 1)
    with torch.no_grad():
        e = m.encode(x)
        torch.testing.assert_close(e["V_app"][:, :, -1], m.E_app.posed_volume(x)[:, :, -1])
        z_pose, z_dyn = e["z_pose"], e["z_dyn"]
        a, _ = m.G.warp(e["V_app"], z_pose, z_dyn)
        b, _ = m.G.warp(e["V_app"], z_pose + 0.3, z_dyn + 1.0)
    assert a.shape == e["V_app"].shape
    torch.testing.assert_close(a[:, :, -1], b[:, :, -1])
    assert not torch.allclose(a[:, :, :-1], b[:, :, :-1])
    with pytest.raises(ValueError, match="static_depth must be in"):
        latent_config("tiny", static_depth=4)


def test_leak_ramp_starts_late_and_rises_linearly():
    from vasa.latent.task import leak_ramp

    assert [leak_ramp(s, 0, 0) for s in (0, 5)] == [1.0, 1.0]  # default: on from the start
    assert [leak_ramp(s, 10, 4) for s in (0, 9, 10, 11, 13, 100)] == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert [leak_ramp(s, 10, 0) for s in (9, 10)] == [0.0, 1.0]


def test_src_blend_reads_the_source_where_the_motion_says():
    """src_blend: the warped source follows the composed warps (identity motion: the source itself; a
    translated driving pose: the shifted source), the screen-space choice reads it unmoved, the mask
    blends it into the output, and decoding without the source view is a one-line error."""
    torch.manual_seed(0)
    cfg = latent_config("tiny", src_blend=True)
    m = FaceLatentModel(cfg).eval()  # fresh: identity pose, zero flows
    x = _img(2, 64, 1)
    with torch.no_grad():
        e = m.encode(x)
        assert e["source"]["disp"].shape == (2, 3, *cfg.vol_shape[1:]) and not e["source"]["disp"].any()
        r = m.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=e["source"])
        torch.testing.assert_close(r["warped_src"], x, atol=1e-4, rtol=0)
        shift = torch.tensor([[0.0, 0.0, 0.0, 0.25, 0.0, 0.0]]).expand(2, -1)  # tx: a quarter image right
        expect = torch.nn.functional.grid_sample(
            x, identity_grid(1, 64, 64)[:, 0, :, :, :2].expand(2, -1, -1, -1) - torch.tensor([0.25, 0.0]),
            padding_mode="border", align_corners=False)
        m.G.screen_logit.bias.fill_(-1e4)  # every pixel reads through the volume
        moved = m.G.render(e["V_app"], e["z_id"], shift, e["z_dyn"], source=e["source"])["warped_src"]
        torch.testing.assert_close(moved, expect, atol=1e-4, rtol=0)
        m.G.screen_logit.bias.fill_(1e4)  # every pixel reads screen space: the source unmoved
        still = m.G.render(e["V_app"], e["z_id"], shift, e["z_dyn"], source=e["source"])
        torch.testing.assert_close(still["warped_src"], x, atol=1e-4, rtol=0)
        m.G.out[0].bias[12:].fill_(1e4)  # the mask channel (pixel shuffle: its 4 sub-pixels) saturated
        r = m.G.render(e["V_app"], e["z_id"], shift, e["z_dyn"], source=e["source"])
        torch.testing.assert_close(r["image"], r["warped_src"])
        assert r["mask"].shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="encode_source"):
        m.decode(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"])
    assert FaceLatentModel("tiny").encode_source(x) is None


def test_src_blend_trains_every_new_path_and_reenacts():
    torch.manual_seed(0)
    m = _dezero(FaceLatentModel(latent_config("tiny", src_blend=True, dyn_volume=[2, 4, 4])))
    x, y = _img(2, 64, 1), _img(2, 64, 2)
    out = m(x, y, other=y, consistency=True)
    assert {"blend_mask", "warped_src", "consist_a", "consist_b", "cross"} <= set(out)
    (out["recon"] - y).abs().mean().backward()
    for mod in (m.G.depth_logit, m.G.screen_logit, m.E_mot, m.E_app):
        assert all(p.grad is not None for p in mod.parameters())
    assert m.G.depth_logit.weight.grad.abs().sum() > 0 and m.G.screen_logit.weight.grad.abs().sum() > 0
    with torch.no_grad():
        full = m.decode(*m.encode_appearance(x), *m.encode_motion(y), source=m.encode_source(x))
        torch.testing.assert_close(m.reenact(x, y), full)


def test_gen_sees_source_feeds_the_warped_source_to_the_generated_image():
    """gen_sees_source: the generated image changes with the source *image* at fixed latents (without the
    option it cannot: it renders from the latents alone), gradients reach the new layer, and it needs
    src_blend (a one-line error)."""
    torch.manual_seed(0)
    x, y = _img(2, 64, 1), _img(2, 64, 2)
    for sees in (False, True):
        m = _dezero(FaceLatentModel(latent_config("tiny", src_blend=True, gen_sees_source=sees))).eval()
        with torch.no_grad():
            e = m.encode(x)
            a = m.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=e["source"])["generated"]
            other = dict(e["source"], image=y)  # same latents, another source image
            b = m.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=other)["generated"]
        assert (a - b).abs().max() > 1e-3 if sees else torch.equal(a, b)
    m.train()
    (m(x, y)["recon"] - y).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.G.src_in.parameters())
    with pytest.raises(ValueError, match="gen_sees_source .* src_blend=True"):
        latent_config("tiny", gen_sees_source=True)


def test_gen_source_gate_opens_shuts_and_learns():
    """gen_source_gate: the generator's source input times a per-pixel gate from its own features. Fully
    open (logit -> +inf) it is the ungated model with the same weights; shut (-inf) the generated image no
    longer depends on the source image; as built the gate is 0.98 everywhere; gradients reach it; it needs
    gen_sees_source (one-line error)."""
    from vasa.latent.generator import SOURCE_GATE_OPEN

    torch.manual_seed(0)
    x, y = _img(2, 64, 1), _img(2, 64, 2)
    opts = dict(src_blend=True, gen_sees_source=True)
    plain = _dezero(FaceLatentModel(latent_config("tiny", **opts))).eval()
    gated = FaceLatentModel(latent_config("tiny", gen_source_gate=True, **opts)).eval()
    assert set(gated.state_dict()) - set(plain.state_dict()) == {"G.src_gate.weight", "G.src_gate.bias"}
    gated.load_state_dict(plain.state_dict(), strict=False)  # the gate keeps its own (open) initialisation

    def gen(m, source_img, e):
        return m.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=dict(e["source"], image=source_img))

    with torch.no_grad():
        e = plain.encode(x)
        r = gen(gated, x, e)
        torch.testing.assert_close(r["source_gate"], torch.full_like(r["source_gate"], torch.sigmoid(torch.tensor(SOURCE_GATE_OPEN)).item()))
        gated.G.src_gate.bias.fill_(60.0)  # open: the ungated function
        torch.testing.assert_close(gen(gated, x, e)["image"], gen(plain, x, e)["image"], atol=1e-5, rtol=0)
        gated.G.src_gate.bias.fill_(-60.0)  # shut: the source image no longer reaches the generated layer
        torch.testing.assert_close(gen(gated, x, e)["generated"], gen(gated, y, e)["generated"], atol=1e-6, rtol=0)
        gated.G.src_gate.bias.fill_(SOURCE_GATE_OPEN)
    gated.train()
    (gated(x, y)["recon"] - y).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gated.G.src_gate.parameters())
    with pytest.raises(ValueError, match="gen_source_gate .* gen_sees_source=True"):
        latent_config("tiny", src_blend=True, gen_source_gate=True)


def test_gen_source_pool_hides_detail_finer_than_the_pool_from_the_generator():
    """gen_source_pool k: the generator's source path reads ``source_view(warped_src, k)``, which ignores
    a pattern of zero mean inside every k x k block (k = 1 passes it through); bad k: one-line error."""
    from vasa.latent.generator import source_view

    torch.manual_seed(0)
    img = _img(2, 64, 1)
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32) * 0.2  # zero mean per 2 x 2 block
    torch.testing.assert_close(source_view(img + checker, 2), source_view(img, 2), atol=1e-6, rtol=0)
    assert torch.equal(source_view(img, 1), img) and source_view(img, 4).shape == img.shape
    for k in (1, 2):
        m = _dezero(FaceLatentModel(latent_config("tiny", src_blend=True, gen_sees_source=True, gen_source_pool=k)))
        seen = []
        m.G.src_in.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
        with torch.no_grad():
            e = m.eval().encode(img)
            r = m.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=e["source"])
        torch.testing.assert_close(seen[-1], source_view(r["warped_src"], k))
    for bad in (0, 3):
        with pytest.raises(ValueError, match="gen_source_pool must be"):
            latent_config("tiny", src_blend=True, gen_sees_source=True, gen_source_pool=bad)


@pytest.mark.parametrize("src_blend", [False, True])
def test_finer_flow_from_a_coarse_one_keeps_the_function(src_blend):
    """resample_grid_head: a model with a finer non-rigid flow (flow_size 8 x 8 -> 16 x 16, the volume's own
    grid) built from a coarse one's weights computes the same canonical volume (the canonicalisation flow is
    the same field on the volume's grid) and nearly the same image (the driving warp reads it at rotated
    points); a head resampled to its own size is unchanged."""
    from vasa.latent.warp import resample_grid_head

    torch.manual_seed(0)
    extra = dict(src_blend=True, gen_sees_source=True) if src_blend else {}
    coarse = FaceLatentModel(latent_config("tiny", flow_size=(2, 8, 8), **extra)).eval()
    for head in (coarse.E_app.flow, coarse.G.flow):  # built rigid (zeros): give the coarse flows some shape
        torch.nn.init.normal_(head.mlp[2].weight, std=0.05)
        torch.nn.init.normal_(head.mlp[2].bias, std=0.05)
    fine = FaceLatentModel(latent_config("tiny", flow_size=(2, 16, 16), **extra)).eval()
    state = coarse.state_dict()
    for k in [k for k in state if k.endswith(("flow.mlp.2.weight", "flow.mlp.2.bias"))]:
        assert torch.equal(resample_grid_head(state[k], (2, 8, 8), (2, 8, 8)), state[k])
        state[k] = resample_grid_head(state[k], (2, 8, 8), (2, 16, 16))
        assert state[k].shape[0] == 3 * 2 * 16 * 16
    fine.load_state_dict(state)
    x, y = torch.rand(2, 2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(coarse.encode_appearance(x)[0], fine.encode_appearance(x)[0], atol=1e-5)
        a, b = coarse.reenact(x, y), fine.reenact(x, y)
        assert (a - b).abs().mean() < 0.02 * a.std()
        assert not torch.allclose(a, coarse.reenact(x, x))  # the driver matters: the comparison is not vacuous


def test_flow_refine_starts_as_the_coarse_flow_reads_the_face_and_learns():
    """flow_refine: as built, the driving flow is the coarse DynFlow field on V_app's grid (the image nearly
    the unrefined model's with the same weights); trained a little, the refinement depends on the
    appearance (two faces, one code: two fields), gradients reach it; a negative width is a one-line error."""
    torch.manual_seed(0)
    x, y = _img(2, 64, 1), _img(2, 64, 2)
    opts = dict(src_blend=True, gen_sees_source=True)
    plain = _dezero(FaceLatentModel(latent_config("tiny", **opts))).eval()
    refined = FaceLatentModel(latent_config("tiny", flow_refine=4, **opts)).eval()
    assert {k.split(".")[1] for k in set(refined.state_dict()) - set(plain.state_dict())} == {"flow_refine"}
    refined.load_state_dict(plain.state_dict(), strict=False)  # the refinement keeps its own (zero) last layer
    with torch.no_grad():
        e = plain.encode(x)
        r = refined.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=e["source"])
        r0 = plain.G.render(e["V_app"], e["z_id"], e["z_pose"], e["z_dyn"], source=e["source"])
        assert r["flow"].shape == (2, 3, *refined.cfg.vol_shape[1:])  # B x 3 x D x H x W, V_app's grid
        assert r0["flow"].shape == (2, 3, *refined.cfg.flow_size)
        up = torch.nn.functional.interpolate(r0["flow"], size=r["flow"].shape[-3:], mode="trilinear", align_corners=False)
        torch.testing.assert_close(r["flow"], up)
        assert (r["image"] - r0["image"]).abs().mean() < 0.05 * r0["image"].std()  # sampled on a finer grid
    refined.train()
    (refined(x, y)["recon"] - y).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in refined.G.flow_refine.net[-1].parameters())
    _dezero(refined, seed=1).eval()
    with torch.no_grad():
        V = refined.encode(torch.cat([x[:1], y[:1]]))["V_app"]
        d = torch.zeros(2, refined.cfg.dyn_dim)
        coarse = refined.G.flow(d)
        f = refined.G.flow_refine(V, d, coarse)
        assert not torch.allclose(f[0], f[1])  # same code, two faces: the field follows the appearance
    with pytest.raises(ValueError, match="flow_refine is a width"):
        latent_config("tiny", flow_refine=-1)
