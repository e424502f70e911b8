"""The train_audio and train_motion stages end to end on a smoke corpus + smoke export: training on the
exported latents, exports (norm.npz contract, recorded fingerprints and layout), exact resume, the params
ablation, the evaluation, the config sections, and notebooks 02c / 03 under papermill."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vasa.errors import VasaError
from vasa.train import latest_checkpoint

torch.set_num_threads(1)  # tiny models: threads only add contention on a shared CPU

ROOT = Path(__file__).resolve().parents[1]
AUDIO = dict(size="tiny", steps=4, batch_size=4, crop_frames=32, warmup_steps=1, log_every=2, checkpoint_every=2,
             device="cpu", progress=False)
MOTION = dict(size="tiny", window=16, past=4, stride=8, diffusion_steps=50, steps=4, regression_steps=2,
              batch_size=4, warmup_steps=1, log_every=2, checkpoint_every=2, device="cpu", progress=False)
EVAL = dict(clips=2, steps=3, seeds=2, diversity_clips=1, condition_clips=1, condition_frames=16, cost_steps=(3, 2),
            fast_steps=2, cost_clips=1, cost_seconds=0.8, low_latency_hop=4, progress=False)


def _same_checkpoints(a: Path, b: Path) -> None:
    for kind in ("model", "ema"):
        wa = load_file(str(latest_checkpoint(a / "checkpoints") / f"{kind}.safetensors"))
        wb = load_file(str(latest_checkpoint(b / "checkpoints") / f"{kind}.safetensors"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), kind


@pytest.fixture(scope="module")
def audio(smoke_corpus, tmp_path_factory) -> dict:
    """train_audio uninterrupted (a) and stopped after 2 steps then resumed (b)."""
    from vasa.audio.train import train_audio

    root = tmp_path_factory.mktemp("audio_stage")
    paths = lambda n: dict(out=str(root / n / "model"), work_dir=str(root / n / "run"))  # noqa: E731
    a = train_audio(str(smoke_corpus), **paths("a"), **AUDIO)
    stopped = train_audio(str(smoke_corpus), stop_at_step=2, **paths("b"), **AUDIO)
    assert stopped["steps"] == 2 and "evaluation" not in stopped and not (root / "b" / "model").exists()
    b = train_audio(str(smoke_corpus), **paths("b"), **AUDIO)
    return dict(root=root, a=a, b=b, model=root / "a" / "model")


@pytest.fixture(scope="module")
def motion(smoke_corpus, smoke_motion, audio, tmp_path_factory) -> dict:
    """train_motion uninterrupted (a) and stopped after 2 diffusion steps then resumed (b)."""
    from vasa.motion.train import train_motion

    root = tmp_path_factory.mktemp("motion_stage")
    paths = lambda n: dict(out=str(root / n / "motion"), regression_out=str(root / n / "regression"),  # noqa: E731
                           work_dir=str(root / n / "run"))
    a = train_motion(str(smoke_corpus), str(smoke_motion), str(audio["model"]), **paths("a"), **MOTION)
    stopped = train_motion(str(smoke_corpus), str(smoke_motion), str(audio["model"]), stop_at_step=2, **paths("b"),
                           **MOTION)
    assert stopped["diffusion"]["steps"] == 2 and "regression" not in stopped
    b = train_motion(str(smoke_corpus), str(smoke_motion), str(audio["model"]), **paths("b"), **MOTION)
    return dict(root=root, a=a, b=b)


def test_train_audio_exports_evaluates_and_resumes(audio, smoke_corpus):
    from vasa.audio import load_audio_encoder
    from vasa.audio.train import audio_fingerprint

    root, a = audio["root"], audio["a"]
    _same_checkpoints(root / "a" / "run", root / "b" / "run")
    assert a["fingerprint"] == audio["b"]["fingerprint"] == audio_fingerprint(audio["model"])
    enc, vocab = load_audio_encoder(audio["model"])
    assert enc.dim == a["feature_dim"] == 32 and len(vocab) == a["vocab_size"] and not enc.training
    ema = load_file(str(latest_checkpoint(root / "a" / "run" / "checkpoints") / "ema.safetensors"))
    sd = enc.state_dict()
    assert all(torch.equal(sd[k[len("model."):]], v) for k, v in ema.items())  # the export = EMA weights
    ev = a["evaluation"]
    assert set(ev) == {"val", "test", "test_lang"} and 0 <= ev["test"]["viseme_acc"] <= 1
    assert set(ev["test_lang"]["by"]["language"]) == {"es"} and ev["test_lang"]["unk_fraction"] > 0
    logged = {f.stem for f in (root / "a" / "run" / "dvclive" / "plots" / "metrics").glob("*.tsv")}
    assert {"phoneme_ce", "viseme_acc"} <= logged


def test_train_motion_on_exported_latents(motion, smoke_motion, audio):
    from vasa.latent.export import load_norm
    from vasa.motion import load_motion_model
    from vasa.train import load_pretrained

    root, a = motion["root"], motion["a"]
    meta = json.loads((smoke_motion / "meta.json").read_text())
    norm = load_norm(smoke_motion)
    model = load_motion_model(root / "a" / "motion")
    assert model.cfg.motion_dim == meta["pose_dim"] + meta["dyn_dim"] and model.cfg.audio_dim == 32
    assert model.cfg.objective == "diffusion" and not model.training
    np.testing.assert_allclose(model.motion_mean.numpy(), np.concatenate([norm["pose_mean"], norm["dyn_mean"]]))
    np.testing.assert_allclose(model.motion_std.numpy(), np.concatenate([norm["pose_std"], norm["dyn_std"]]), rtol=1e-6)
    # the contract with generation: models/motion/norm.npz is the export's norm.npz
    assert (root / "a" / "motion" / "norm.npz").read_bytes() == (smoke_motion / "norm.npz").read_bytes()
    with np.load(root / "a" / "motion" / "norm.npz") as z:
        assert {"pose_mean", "pose_std", "dyn_mean", "dyn_std"} <= set(z.files)
    cfg, _ = load_pretrained(root / "a" / "motion")
    data = cfg["task"]["data"]
    assert data["source"] == "latent" and data["pose_dim"] == meta["pose_dim"] and data["dyn_dim"] == meta["dyn_dim"]
    assert data["rot_repr"] == "euler" and data["pose_layout"] == meta["pose_layout"]
    assert data["audio_fingerprint"] == audio["a"]["fingerprint"] and data["audio_dim"] == 32
    assert data["latent_fingerprint"] == meta["fingerprint"] and cfg["steps"] == 4
    # the regression baseline: same backbone, its own export with the same norm.npz
    reg = load_motion_model(root / "a" / "regression")
    assert reg.cfg.objective == "regression" and reg.cfg.width == model.cfg.width and reg.cfg.layers == model.cfg.layers
    assert (root / "a" / "regression" / "norm.npz").read_bytes() == (smoke_motion / "norm.npz").read_bytes()
    assert a["diffusion"]["steps"] == 4 and a["regression"]["steps"] == 2
    assert np.isfinite(a["diffusion"]["metrics"]["x0"])
    # audio features: computed once per clip with the trained encoder and cached
    feats = sorted((root / "a" / "run" / "features").glob("*/*.npy"))
    assert len(feats) == a["data"]["train_clips"] and feats[0].parent.name == audio["a"]["fingerprint"]


def test_train_motion_resume_is_exact(motion):
    root = motion["root"]
    _same_checkpoints(root / "a" / "run" / "diffusion", root / "b" / "run" / "diffusion")
    _same_checkpoints(root / "a" / "run" / "regression", root / "b" / "run" / "regression")
    assert ((root / "a" / "motion" / "model.safetensors").read_bytes()
            == (root / "b" / "motion" / "model.safetensors").read_bytes())


def test_ground_truth_params_ablation(smoke_corpus, smoke_motion, audio, motion, tmp_path):
    from vasa.data.corpus import Corpus
    from vasa.motion import load_motion_model
    from vasa.motion.train import train_motion
    from vasa.train import load_pretrained

    kw = dict(MOTION, steps=2, regression_steps=0)
    s = train_motion(str(smoke_corpus), str(smoke_motion), str(audio["model"]), out=str(tmp_path / "m"),
                     regression_out=str(tmp_path / "r"), work_dir=str(tmp_path / "run"), motion_source="params", **kw)
    assert "regression" not in s and not (tmp_path / "r").exists()
    n_params = len(Corpus(smoke_corpus).param_names)
    assert load_motion_model(tmp_path / "m").cfg.motion_dim == n_params
    cfg, _ = load_pretrained(tmp_path / "m")
    data = cfg["task"]["data"]
    assert data["source"] == "params" and data["pose_layout"][:3] == ["yaw", "pitch", "roll"]
    with np.load(tmp_path / "m" / "norm.npz") as z:
        assert z["pose_mean"].shape == (7,) and z["dyn_std"].shape == (n_params - 7,)


def test_missing_inputs_are_one_line_errors(smoke_corpus, smoke_motion, audio, tmp_path):
    from vasa.motion.train import train_motion

    with pytest.raises(VasaError, match="no complete motion export"):
        train_motion(str(smoke_corpus), str(tmp_path / "nope"), str(audio["model"]), work_dir=str(tmp_path), **MOTION)
    with pytest.raises(VasaError, match="no exported audio encoder"):
        train_motion(str(smoke_corpus), str(smoke_motion), str(tmp_path / "nope"), work_dir=str(tmp_path), **MOTION)


def test_evaluate_motion(smoke_corpus, smoke_motion, audio, motion, tmp_path):
    from vasa.motion.evaluate import evaluate_motion

    root = motion["root"] / "a"
    ev = evaluate_motion(str(smoke_corpus), str(smoke_motion), str(audio["model"]), str(root / "motion"),
                         str(root / "regression"), str(root / "run"), figures_dir=str(tmp_path / "fig"), **EVAL)
    m = ev["metrics"]
    json.dumps(m, allow_nan=False)  # JSON-able, NaN mapped to null
    assert {"setup", "readouts", "quality", "seams", "diversity", "conditions", "sampling"} <= set(m)
    assert set(m["quality"]) == {"diffusion", "diffusion, no x_ref", "diffusion, no blend", "diffusion, hop 4",
                                 "regression", "exported (ground truth)"}
    q = m["quality"]["diffusion"]
    assert {"jaw_r_vs_exported", "jaw_r_vs_true", "dP", "pose_range"} <= set(q) and q["dP"]["mean"] >= 0
    assert m["quality"]["exported (ground truth)"]["dP_true_params"]["mean"] > 0
    assert m["quality"]["exported (ground truth)"]["blinks_per_min_true_params"]["n"] >= 1
    assert q["blinks_per_min"]["n"] >= 1 and q["blinks_per_min"]["mean"] >= 0 and "blink_r2" in m["readouts"]
    assert set(m["conditions"]["diffusion"]) >= {"gaze", "distance"}
    assert set(m["sampling"]["settings"]) == {"ddim_3", "ddim_2", "dpmpp_2m_2", "dpmpp_2m_2_hop4", "regression"}
    assert m["seams"]["diffusion, hop 4"]["boundary_n"] > m["seams"]["diffusion"]["boundary_n"]  # 4-frame windows
    assert all(v["ms_per_s"] > 0 for v in m["sampling"]["settings"].values())
    assert m["diversity"]["seeds"] == 2 and m["diversity"]["seed_std_dyn"]["mean"] > 0
    assert m["seams"]["diffusion"]["boundary_n"] >= 1  # the smoke test clip spans several 16-frame windows
    assert {p.stem for p in (tmp_path / "fig").glob("*.png")} >= {"lip_sync", "head_pose", "seams", "conditions",
                                                                    "diversity", "sampling"}


def test_evaluation_statistics():
    from vasa.motion.evaluate import blinks_per_minute, mean_ci, pearson, seams, true_blink

    closure = np.zeros(100)
    closure[[10, 11, 12, 60]] = [0.6, 1.0, 0.7, 0.5]  # two blinks (one 3 frames long) in 4 s at 25 fps
    assert blinks_per_minute(closure) == pytest.approx(30.0)
    assert blinks_per_minute(np.r_[1.0, np.zeros(49)], fps=25) == pytest.approx(30.0)  # closed at the start counts (1 in 2 s)
    assert blinks_per_minute(closure * 0.9) == pytest.approx(15.0)  # 0.45 is below the threshold
    assert np.isnan(blinks_per_minute(np.zeros(1)))
    assert true_blink(np.array([[0.2, 1.0, 0.6]]), ["jaw", "blink_l", "blink_r"]).tolist() == [0.8]

    assert mean_ci([]) == {"mean": None, "ci95": None, "n": 0}
    r = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert r["mean"] == 2.0 and r["n"] == 3 and abs(r["ci95"] - 4.303 * 1 / np.sqrt(3)) < 1e-3
    t = np.arange(50.0)
    assert pearson(t, 2 * t + 1) == pytest.approx(1.0) and np.isnan(pearson(t, np.ones(50)))
    x = np.cumsum(np.ones((40, 2)), 0)
    x[20:] += 5.0  # a jump at the window boundary t = 20
    s = seams([x], window=20, mean=np.zeros(2), std=np.ones(2))
    assert s["boundary_n"] == 1 and s["ratio"] > 4


# ---------------------------------------------------------------- the params sections
def test_params_sections_reach_the_entry_functions():
    from vasa.audio.config import AUDIO_SIZES
    from vasa.audio.train import train_audio
    from vasa.config import (AUDIO_SIZE_NAMES, MOTION_SIZE_NAMES, AudioStageConfig, MotionStageConfig, load_params,
                             read_yaml)
    from vasa.stage_kwargs import audio_kwargs, motion_eval_kwargs, motion_kwargs
    from vasa.motion.config import MOTION_SIZES
    from vasa.motion.evaluate import evaluate_motion
    from vasa.motion.train import train_motion

    assert set(AUDIO_SIZE_NAMES) == set(AUDIO_SIZES) and set(MOTION_SIZE_NAMES) == set(MOTION_SIZES)
    p = load_params(ROOT / "params.yaml")
    raw = read_yaml(ROOT / "params.yaml")
    for section, cls in (("train_audio", AudioStageConfig), ("train_motion", MotionStageConfig)):
        assert set(raw[section]) == {f.name for f in dataclasses.fields(cls)}, section  # params.yaml lists every knob
    for kw, fn in ((audio_kwargs(p.train_audio), train_audio), (motion_kwargs(p.train_motion), train_motion),
                   (motion_eval_kwargs(p.train_motion), evaluate_motion)):
        sig = inspect.signature(fn).parameters
        assert set(kw) <= set(sig), set(kw) - set(sig)
    # and the entry functions take no knob the section lacks (except run control)
    run_control = {"progress", "stop_at_step"}
    assert set(inspect.signature(train_audio).parameters) - set(audio_kwargs(p.train_audio)) == run_control
    assert set(inspect.signature(train_motion).parameters) - set(motion_kwargs(p.train_motion)) == run_control
    smoke = load_params(ROOT / "params.yaml", profile="smoke")
    assert smoke.train_motion.size == "tiny" and smoke.train_audio.out != p.train_audio.out
    assert smoke.train_motion.motion == smoke.export_motion.out
    assert smoke.train_motion.audio_model == smoke.train_audio.out
    assert p.train_motion.motion == p.export_motion.out and p.train_motion.audio_model == p.train_audio.out


@pytest.mark.parametrize("override, message", [
    ({"train_motion": {"motion_source": "video"}}, "'train_motion.motion_source' = 'video' is not allowed"),
    ({"train_motion": {"past": 60}}, "needs past < window"),
    ({"train_motion": {"eval_cost_steps": [50, 2000]}}, "eval_cost_steps"),
    ({"train_motion": {"size": "XL"}}, "'train_motion.size' = 'XL' is not allowed"),
    ({"train_audio": {"eval_splits": ["test", "dev"]}}, "'train_audio.eval_splits' must list splits"),
    ({"train_audio": {"stepz": 3}}, "unknown key 'train_audio.stepz'"),
])
def test_bad_stage_params(override, message):
    from vasa.config import load_params

    with pytest.raises(VasaError) as e:
        load_params(ROOT / "params.yaml", overrides=override)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- notebooks (as dvc repro runs them)
@pytest.mark.slow
def test_notebooks_02c_03_smoke(smoke_corpus, smoke_motion, tmp_path):
    import papermill as pm

    over = {"02c_train_audio": [f"train_audio.corpus={smoke_corpus}", f"train_audio.out={tmp_path / 'audio'}",
                                f"train_audio.work_dir={tmp_path / 'audio_run'}"],
            "03_train_motion": [f"train_motion.corpus={smoke_corpus}", f"train_motion.motion={smoke_motion}",
                                f"train_motion.audio_model={tmp_path / 'audio'}", f"train_motion.out={tmp_path / 'm'}",
                                f"train_motion.regression_out={tmp_path / 'r'}",
                                f"train_motion.work_dir={tmp_path / 'run'}"]}
    for nb, extra in (("02c_train_audio", {}), ("03_train_motion", dict(figures_dir=str(tmp_path / "figures")))):
        pm.execute_notebook(
            str(ROOT / "notebooks" / f"{nb}.ipynb"), str(tmp_path / f"{nb}.ipynb"), cwd=str(tmp_path),
            kernel_name="python3", progress_bar=False,
            parameters=dict(params_file=str(ROOT / "params.yaml"), profile="smoke", overrides=over[nb],
                            metrics_file=str(tmp_path / f"{nb}.json"), **extra))
    a = json.loads((tmp_path / "02c_train_audio.json").read_text())
    assert {"val", "test", "test_lang"} <= set(a["evaluation"]) and a["feature_dim"] == 32
    m = json.loads((tmp_path / "03_train_motion.json").read_text())
    assert {"quality", "seams", "diversity", "conditions", "sampling", "train", "data"} <= set(m)
    assert m["train"]["diffusion"]["steps"] == 4 and m["train"]["regression"]["steps"] == 2
    assert m["setup"]["audio_fingerprint"] == a["fingerprint"]
    assert (tmp_path / "m" / "norm.npz").is_file() and len(list((tmp_path / "figures").glob("*.png"))) >= 5
    out = json.loads((tmp_path / "03_train_motion.ipynb").read_text())
    images = sum("image/png" in o.get("data", {}) for c in out["cells"] for o in c.get("outputs", []))
    assert images >= 6


def test_notebooks_are_clean_and_tagged():
    for name in ("02b_export_motion", "02c_train_audio", "03_train_motion"):
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
        assert all("id" in c for c in nb["cells"])
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
        assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])


def test_changed_settings_start_over(tmp_path):
    from vasa.train.checkpoint import prepare_run_dir

    settings = {"lr": 1e-3, "steps": 4, "progress": True, "data": {"audio_fingerprint": "a"}}
    assert not prepare_run_dir(tmp_path, settings)  # first run
    (tmp_path / "checkpoints" / "step-00000002").mkdir(parents=True)
    assert prepare_run_dir(tmp_path, {**settings, "progress": False})  # run control only: resume
    assert (tmp_path / "checkpoints").exists()
    assert not prepare_run_dir(tmp_path, {**settings, "data": {"audio_fingerprint": "b"}})  # new audio encoder
    assert not (tmp_path / "checkpoints").exists()
