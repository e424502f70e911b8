"""Stage 1 end to end on a tiny generated corpus: LatentTask training + exact resume, export_motion
(shapes, normalisation, resume), the probes, the dlib identity wrapper, and notebooks 02/03 under papermill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vasa.train import latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(size="tiny", batch_size=2, warmup_steps=1, consist_every=2, cross_every=2, adv_start=2, w_adv=0.05,
            w_fm=1.0, w_cross_id=0.2, log_every=1, sample_every=0, checkpoint_every=2, num_workers=0,
            device="cpu", progress=False, identity_steps=2, identity_batch=4, identity_size=32,
            guide_frames=4, w_leak=0.5, leak_start=1, leak_ramp=2,  # the ramp spans the resume at step 2
            mot_pretrain_steps=3, mot_pretrain_batch=4,  # E_mot's warm start, reused by the resumed run
            model={"dyn_residual": True})  # fitted at export


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The smoke profile's corpus sizes at 64 px (train / val / test identities, gallery stills)."""
    from vasa.synth.corpus import synth_corpus

    out = tmp_path_factory.mktemp("latent_corpus") / "corpus"
    synth_corpus(out, clips=6, ood_lang_clips=1, art_clips=1, identities=12, gallery_per_identity=2,
                 resolution=64, clips_per_shard=3, workers=1, progress=False)
    return out


def _paths(root: Path, name: str) -> dict:
    return dict(out=str(root / name / "model"), work_dir=str(root / name / "run"),
                identity_out=str(root / "identity"), identity_work_dir=str(root / "identity_run"))


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> dict:
    """One uninterrupted 4-step run and one stopped at step 2 then resumed (sharing the identity embedder)."""
    from vasa.latent.train import train_latent

    root = tmp_path_factory.mktemp("latent_runs")
    a = train_latent(str(corpus), steps=4, **_paths(root, "a"), **TINY)
    train_latent(str(corpus), steps=4, stop_at_step=2, **_paths(root, "b"), **TINY)
    assert latest_checkpoint(root / "b" / "run" / "checkpoints").name == "step-00000002"
    b = train_latent(str(corpus), steps=4, **_paths(root, "b"), **TINY)
    return dict(root=root, a=a, b=b)


def test_latent_task_trains_and_resumes_bit_identically(trained):
    root = trained["root"]
    m = trained["a"]["latent"]
    assert m["step"] == 4 and np.isfinite(m["loss_gen"]) and np.isfinite(m["loss_disc"])
    logged = {f.stem for f in (root / "a" / "run" / "dvclive" / "plots" / "metrics").glob("*.tsv")}
    assert {"rec", "consist", "cross_id", "equiv", "decorr", "fm", "g_adv", "psnr", "loss_disc", "guide", "leak"} <= logged
    for kind in ("model", "ema"):
        wa = load_file(str(latest_checkpoint(root / "a" / "run" / "checkpoints") / f"{kind}.safetensors"))
        wb = load_file(str(latest_checkpoint(root / "b" / "run" / "checkpoints") / f"{kind}.safetensors"))
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), kind
    # the export holds the EMA weights of the generator only, loadable by load_latent
    from vasa.latent.train import load_latent
    model = load_latent(root / "a" / "model")
    ema = load_file(str(latest_checkpoint(root / "a" / "run" / "checkpoints") / "ema.safetensors"))
    sd = model.state_dict()
    fitted = {k for k in ema if k.startswith("model.dyn_res.")}  # dyn_residual: zero in training, fitted at export
    assert fitted == {"model.dyn_res.mean", "model.dyn_res.coef"} and all(not ema[k].any() for k in fitted)
    assert all(torch.equal(sd[k[len("model."):]], v) for k, v in ema.items() if k not in fitted)
    assert sd["dyn_res.coef"].abs().sum() > 0
    fit = json.loads((root / "a" / "model" / "config.json").read_text())["config"]["dyn_residual"]
    assert fit == trained["a"]["dyn_residual"] and fit["split"] == "train" and 0 <= fit["explained"] <= 1
    assert model.cfg.image_size == 64 and (root / "identity" / "model.safetensors").is_file()


def test_changed_settings_start_over(trained, corpus):
    from vasa.train.checkpoint import prepare_run_dir
    run = trained["root"] / "a" / "run"
    settings = json.loads((run / "run.json").read_text())
    assert prepare_run_dir(run, settings)  # same settings: resume
    from vasa.latent.config import latent_config  # the resolved architecture is a setting: a changed named size starts over
    assert settings["model_config"] == json.loads(json.dumps(latent_config(TINY["size"], **TINY["model"]).to_dict()))
    assert not prepare_run_dir(run, {**settings, "lr": 1.0})  # changed: checkpoints removed
    assert latest_checkpoint(run / "checkpoints") is None


def test_export_motion_shapes_normalisation_resume(trained, corpus, tmp_path):
    from vasa.data.corpus import Corpus
    from vasa.latent.export import export_motion, load_motion, load_norm

    model = trained["root"] / "b" / "model"
    s = export_motion(str(corpus), str(model), str(tmp_path / "motion"), batch_size=64, progress=False)
    c = Corpus(corpus)
    speech = c.records(kind="speech")
    assert s["clips"] == len(speech) and s["encoded_now"] == len(speech)
    meta = json.loads((tmp_path / "motion" / "meta.json").read_text())
    assert meta["pose_dim"] == 6 and meta["dyn_dim"] == 8 and meta["pose_layout"][0] == "yaw"
    zs = []
    for r in speech:
        zp, zd = load_motion(tmp_path / "motion", r["id"])
        assert zp.shape == (r["n_frames"], 6) and zd.shape == (r["n_frames"], 8) and zp.dtype == np.float32
        if r["split"] == "train":
            zs.append(np.concatenate([zp, zd], 1))
    z = np.concatenate(zs)
    norm = load_norm(tmp_path / "motion")
    np.testing.assert_allclose(np.concatenate([norm["pose_mean"], norm["dyn_mean"]]), z.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([norm["pose_std"], norm["dyn_std"]]), z.std(0), rtol=1e-3, atol=1e-5)
    lines = (tmp_path / "motion" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(speech)
    # resume: nothing to do; a missing clip file is redone
    (tmp_path / "motion" / "clips" / f"{speech[0]['id']}.npz").unlink()
    s2 = export_motion(str(corpus), str(model), str(tmp_path / "motion"), batch_size=64, progress=False)
    assert s2["encoded_now"] == 1
    assert export_motion(str(corpus), str(model), str(tmp_path / "motion"), progress=False)["encoded_now"] == 0


def test_probes_linear_vs_noise():
    from vasa.eval.probes import LATENT_BARS, RidgeProbe, probe_r2
    rng = np.random.default_rng(0)
    w = rng.normal(size=5)
    x_fit, x_ev = rng.normal(size=(400, 5)), rng.normal(size=(300, 5))
    assert probe_r2(x_fit, x_fit @ w, x_ev, x_ev @ w, groups_fit=np.arange(400) // 20) > 0.999
    assert abs(probe_r2(x_fit, rng.normal(size=400), x_ev, rng.normal(size=300))) < 0.05
    assert np.isnan(RidgeProbe().fit(x_fit, x_fit @ w).score(x_ev, np.zeros(300))[0])  # constant target
    assert [b.passed(0.97) for b in LATENT_BARS[:1]] == [True] and not LATENT_BARS[-1].passed(0.5)


def test_dlib_identity_wrapper():
    import skimage.data
    from vasa.eval.identity import DlibFaceEmbedder
    emb = DlibFaceEmbedder()
    a = skimage.data.astronaut()
    e = emb.embed(a)
    assert e.shape == (128,) and abs(np.linalg.norm(e) - 1) < 1e-5 and emb.last_detected
    same = float(emb.similarity(a, [a])[0])
    others = emb.similarity(a, [skimage.data.chelsea(), skimage.data.coffee()])
    assert same > 0.999 and (others < same - 0.05).all(), (same, others)


@pytest.mark.slow
def test_notebooks_02_03_smoke(corpus, tmp_path):
    import papermill as pm

    over = [f"train_latent.corpus={corpus}", f"train_latent.out={tmp_path / 'latent'}",
            f"train_latent.work_dir={tmp_path / 'run'}", f"train_latent.identity_out={tmp_path / 'identity'}",
            f"train_latent.identity_work_dir={tmp_path / 'identity_run'}",
            f"export_motion.corpus={corpus}", f"export_motion.model={tmp_path / 'latent'}",
            f"export_motion.out={tmp_path / 'motion'}"]
    for nb, extra in (("02_train_latent", dict(figures_dir=str(tmp_path / "figures"))), ("02b_export_motion", {})):
        pm.execute_notebook(
            str(ROOT / "notebooks" / f"{nb}.ipynb"), str(tmp_path / f"{nb}.ipynb"), cwd=str(tmp_path),
            kernel_name="python3", progress_bar=False,
            parameters=dict(params_file=str(ROOT / "params.yaml"), profile="smoke", overrides=over,
                            metrics_file=str(tmp_path / f"{nb}.json"), **extra))
    m = json.loads((tmp_path / "02_train_latent.json").read_text())
    assert {"self_reenactment", "cross_identity", "probes", "probe_bars", "transfer", "identity"} <= set(m)
    assert m["self_reenactment"]["pairs"] == 8 and "psnr_copy" in m["self_reenactment"]
    assert {p.name for p in (tmp_path / "figures").glob("*.png")} == {  # blend: the smoke profile's src_blend
        "self_reenactment.png", "cross_identity.png", "transfer.png", "blend.png"}
    assert 0 <= m["self_reenactment"]["blend_mask"] <= 1
    e = json.loads((tmp_path / "02b_export_motion.json").read_text())
    assert e["pose_dim"] == 6 and e["clips"] > 0
    out = json.loads((tmp_path / "02_train_latent.ipynb").read_text())
    images = sum("image/png" in o.get("data", {}) for c in out["cells"] for o in c.get("outputs", []))
    assert images >= 5  # curves, samples, PSNR plots, reenactment grid, cross-identity grid, transfer


def test_mouth_measure_boxes_follow_the_mouth_and_score_copy(corpus, tmp_path):
    """The mouth measure: boxes sit on the rendered lips (darker-edged region around the projected mouth
    centre, inside the image), and a "model" that returns the driver scores infinitely better than the copy."""
    from vasa.data.corpus import Corpus
    from vasa.latent.evaluate import frame_pairs, mouth_boxes, mouth_reenactment
    from vasa.latent.model import FaceLatentModel

    c = Corpus(corpus)
    src, drv, ps, pd, recs = frame_pairs(c, "test", 6, np.random.default_rng(0), 64, 0.0, with_records=True)
    assert len(recs) == len(src) == 6 and all("identity_params" in r for r in recs)
    boxes = mouth_boxes(recs, pd, 128)
    assert boxes.shape == (6, 4) and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert ((boxes >= 0) & (boxes <= 128)).all()
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    assert ((cy > 64) & (cy < 115)).all()  # the mouth: below the image centre, above the chin's edge

    class Oracle(FaceLatentModel):
        def forward(self, source, driver, **kw):
            return {"recon": driver}

    class Copy(FaceLatentModel):
        def forward(self, source, driver, **kw):
            return {"recon": source}

    o = mouth_reenactment(Oracle("tiny"), str(corpus), pairs=4, min_jaw_gap=0.0)["metrics"]
    cp = mouth_reenactment(Copy("tiny"), str(corpus), pairs=4, min_jaw_gap=0.0)["metrics"]
    assert o["mouth_psnr"] > 60 and o["mouth_gain"] > 10
    assert cp["mouth_gain"] == pytest.approx(0.0) and cp["mouth_psnr"] == pytest.approx(cp["mouth_psnr_copy"])


def test_mouth_boxes_share_a_renderer_per_clip_without_changing_a_box(corpus):
    """mouth_boxes builds one renderer per clip: a mixed list of frames from two clips gives, box for box,
    what each frame gives alone."""
    from vasa.data.corpus import Corpus
    from vasa.latent.evaluate import mouth_boxes

    c = Corpus(corpus)
    a, b = c.records(kind="speech")[:2]
    pa, pb = c.params(a["id"])[:3], c.params(b["id"])[:3]
    recs, prm = [a, b, a, b, a, b], np.stack([pa[0], pb[0], pa[1], pb[1], pa[2], pb[2]])
    together = mouth_boxes(recs, prm, 128)
    alone = np.concatenate([mouth_boxes([r], p[None], 128) for r, p in zip(recs, prm)])
    np.testing.assert_array_equal(together, alone)


def test_mouth_texture_tells_blur_from_invented_detail():
    """scripts/latent_mouth_jaw.py's lip texture: the real crop scores a high-frequency ratio of 1, a blurred
    one below 1, horizontal stripes (teeth drawn on a closed mouth) above 1; the PSNR falls with both."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "latent_mouth_jaw.py"
    spec = importlib.util.spec_from_file_location("mouth_jaw_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    real = (120 + 40 * np.sin(xx / 5.0) * np.cos(yy / 7.0))[None, ..., None].repeat(3, -1)
    real = np.clip(real + rng.normal(0, 2, real.shape), 0, 255).astype(np.uint8)
    blur = real.astype(float)
    for _ in range(3):  # 3 box-blur passes
        blur = (blur + np.roll(blur, 1, 1) + np.roll(blur, -1, 1) + np.roll(blur, 1, 2) + np.roll(blur, -1, 2)) / 5
    stripes = real.astype(float) + np.where(yy % 2 == 0, 30.0, -30.0)[None, ..., None]
    ims = np.concatenate([real, blur.astype(np.uint8), np.clip(stripes, 0, 255).astype(np.uint8)])
    boxes = np.array([[4, 4, 28, 28]] * 3)
    tex = mod.mouth_texture(ims, np.concatenate([real] * 3), boxes)
    assert tex[0, 1] == pytest.approx(1.0) and tex[1, 1] < 0.8 and tex[2, 1] > 1.5
    assert tex[0, 0] > 100 and tex[1, 0] < tex[0, 0] and tex[2, 0] < tex[0, 0]
    degenerate = mod.mouth_texture(ims[:1], real, np.array([[4, 4, 6, 28]]))  # too thin a box: no score
    assert np.isnan(degenerate).all()


def test_identity_embedder_names_the_fix_for_a_one_still_gallery(tmp_path):
    from vasa.errors import VasaError
    from vasa.latent.identity import IdentityViews
    from vasa.synth.corpus import synth_corpus

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, clips=4, ood_lang_clips=0, art_clips=0, identities=8, gallery_per_identity=1,
                 languages=["en"], resolution=64, workers=1, progress=False)
    with pytest.raises(VasaError, match=r"two gallery stills.*gallery_per_identity >= 2.*w_cross_id: 0"):
        IdentityViews(corpus, "train", size=4)


def test_channel_response_sweeps_one_channel(trained, corpus, tmp_path):
    """scripts/latent_channel_response.py: each guided channel is swept over its own quantiles (ordered),
    the render at the median is the reference (zero change), changes are finite grey levels, and the grid
    holds one row per clip and channel, one column per value plus the driver."""
    import importlib.util

    from PIL import Image

    path = Path(__file__).resolve().parents[1] / "scripts" / "latent_channel_response.py"
    spec = importlib.util.spec_from_file_location("channel_response_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    grid = tmp_path / "grid.png"
    q = (0.5, 0.0, 0.9, 1.0)
    r = mod.channel_response(str(trained["root"] / "a" / "model"), str(corpus), clips=1, driver_frame=3,
                             quantiles=q, grid=str(grid))
    assert set(r["channels"]) == {"mouth", "eyes_closed"}
    for ch in r["channels"].values():
        v = ch["values"]
        assert v[1] <= v[0] <= v[2] <= v[3]
        assert ch["region_change"][0] == 0 and ch["elsewhere_change"][0] == 0
        assert all(np.isfinite(ch["region_change"])) and min(ch["region_change"]) >= 0
    w, h = Image.open(grid).size
    assert (w, h) == (64 * (len(q) + 1), 64 * 2)
    d = mod.blink_decomposition(str(trained["root"] / "a" / "model"), str(corpus), rows=2, grid=str(tmp_path / "b.jpg"))
    assert d["src_blend"] is False and d["blink_frames"] == 0 and d["blink_eye_mask"] is None  # TINY: no src_blend
    from vasa.latent.config import latent_config
    from vasa.latent.model import FaceLatentModel

    torch.manual_seed(0)
    net = FaceLatentModel(latent_config("tiny", src_blend=True, gen_sees_source=True, gen_source_gate=True)).eval()
    mod.BLINK_PEAK = -1.0  # the tiny corpus may have no closed eye: every clip qualifies
    d = mod.blink_decomposition(net, str(corpus), rows=1, grid=str(tmp_path / "b.jpg"))
    assert d["src_blend"] and d["blink_frames"] == 1 and 0 <= d["blink_eye_mask"] <= 1
    assert d["blink_eye_gate"] == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item(), abs=1e-5)  # as built
    assert Image.open(tmp_path / "b.jpg").size == (64 * 5, 64)  # driver, output, warped source, generated, mask


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("train", ["G", "G_nosrc", "all"])
def test_blink_overfit_trains_what_it_is_told(train):
    """scripts/latent_blink_overfit.py: ``G`` / ``G_nosrc`` leave the encoders as they were (``G_nosrc``
    also the zeroed view of the warped source), ``all`` moves them too; the loss on the fixed pairs falls,
    the renders before training are those of the weights training started from, and a bad choice is a
    one-line error."""
    from vasa.latent.config import latent_config
    from vasa.latent.model import FaceLatentModel

    mod = _script("latent_blink_overfit")
    torch.manual_seed(0)
    m = FaceLatentModel(latent_config("tiny", src_blend=True, gen_sees_source=True))
    src, drv = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    eye = (slice(None), slice(None), slice(20, 36), slice(8, 56))
    start = {k: v.clone() for k, v in m.state_dict().items()}
    first = mod.render(m, src, drv)["recon"]
    fit = mod.overfit(m, src, drv, eye, train, steps=25, lr=2e-3)
    assert torch.equal(mod.render(m, src, drv, fit["before_model"])["recon"], fit["before"]["recon"])  # weights come back
    assert (train == "G_nosrc") != torch.equal(fit["before"]["recon"], first)  # G_nosrc starts from the zeroed view
    assert not torch.equal(mod.render(m, src, drv)["recon"], first)
    assert min(fit["losses"][-5:]) < fit["losses"][0]
    now = m.state_dict()
    enc = [k for k in now if k.startswith(("E_app.", "E_id.", "E_mot."))]
    assert enc and (train == "all") == any(not torch.equal(now[k], start[k]) for k in enc)
    if train == "G_nosrc":
        assert all((v == 0).all() for k, v in now.items() if k.startswith("G.src_in."))
    with pytest.raises(SystemExit, match="must be all, G or G_nosrc"):
        mod.overfit(m, src, drv, eye, "E_mot", steps=1)
    with pytest.raises(SystemExit, match="needs a model with gen_sees_source"):
        mod.overfit(FaceLatentModel(latent_config("tiny", src_blend=True)), src, drv, eye, "G_nosrc", steps=1)


def test_finetune_freeze_keeps_the_named_modules(trained, corpus):
    """scripts/latent_finetune_ablation.py ``task.freeze=E_app+E_id+E_mot``: those modules start from the
    export and do not train (no gradient wanted), the decoder does; an unknown module is a one-line error."""
    from vasa.train import load_pretrained

    mod = _script("latent_finetune_ablation")
    model_dir = str(trained["root"] / "a" / "model")
    cfg, tensors = load_pretrained(model_dir)
    kw = dict(dataset_size=8, seed=0, model={k: v for k, v in cfg["latent"].items() if k != "warp_backend"})
    mods = mod.FineTuneTask(model_dir, str(corpus), cfg["task"]["size"], "5d", ["speech"], freeze="E_app+E_id+E_mot",
                            **kw).build_model()
    net = mods["model"]
    for name in ("E_app", "E_id", "E_mot"):
        assert not any(p.requires_grad for p in getattr(net, name).parameters())
    assert all(p.requires_grad for p in net.G.parameters())
    assert all(torch.equal(v.float(), tensors["model"][k].float()) for k, v in net.state_dict().items() if k.startswith("E_mot."))
    with pytest.raises(SystemExit, match="no module 'E_nope'"):
        mod.FineTuneTask(model_dir, str(corpus), cfg["task"]["size"], "5d", ["speech"], freeze="E_nope", **kw).build_model()
