"""The trained judges work on cases with known answers, and the stage notebooks run under papermill.

* the lip-sync expert, trained for seconds on a tiny generated corpus, finds a clip's own audio at
  offset 0 (a train clip and a held-out identity), scores it above another clip's audio, and finds
  audio delayed or advanced by k frames at offset -k (the official sign);
* CAPP, trained on constructed pose/audio pairs (the head nods with the loudness), ranks the true
  pairing first on held-out pairs;
* ``train_experts`` skips experts already trained with the same settings;
* ``notebooks/04a_train_experts.ipynb`` and ``notebooks/04_evaluate.ipynb`` run with smoke parameters
  (a random tiny generator bundle and a regression motion model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vasa.config import load_params

ROOT = Path(__file__).resolve().parents[1]
EXPERTS = dict(sync_steps=150, sync_lr=3e-3, capp_steps=30, capp_batch=16, emotion_steps=30, emotion_batch=32,
               val_clips=2, detect_stride=4, log_every=10, checkpoint_every=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from vasa.synth.corpus import synth_corpus

    out = tmp_path_factory.mktemp("eval_corpus") / "corpus"
    synth_corpus(out, clips=8, ood_lang_clips=2, art_clips=1, identities=12, gallery_per_identity=0, resolution=64,
                 clips_per_shard=4, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def experts(corpus, tmp_path_factory) -> dict:
    import torch

    from vasa.eval.experts import train_experts

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval_experts")
    kw = dict(out=str(root / "models"), work_dir=str(root / "runs"), **EXPERTS)
    summary = train_experts(str(corpus), **kw)
    return dict(root=root, kw=kw, summary=summary)


def test_sync_expert_finds_the_offset(corpus, experts):
    from vasa.data.corpus import Corpus
    from vasa.eval.crops import face_crops
    from vasa.eval.experts import load_experts
    from vasa.eval.landmarks import FaceDetector
    from vasa.eval.sync import shift_audio, sync_score

    ex = load_experts(experts["kw"]["out"])
    c = Corpus(corpus)
    train = max(c.records(split="train", kind="speech"), key=lambda r: r["n_frames"])
    held_out = c.records(split="test", kind="speech")[0]  # an identity the expert never saw
    det = FaceDetector()
    for rec in (train, held_out):
        clip = c.load_clip(rec["id"])
        _, boxes, found = face_crops(clip.frames, det, ex.spec)
        assert found.mean() > 0.9
        own = sync_score(ex.sync, clip.frames, clip.audio, boxes=boxes)
        assert own.offset == 0, rec["id"]
        other = c.load_clip(next(r["id"] for r in c.records(kind="speech") if r["id"] != rec["id"])).audio
        wrong = sync_score(ex.sync, clip.frames, np.resize(other, len(clip.audio)), boxes=boxes)
        assert own.confidence > 2 * wrong.confidence and own.distance < wrong.distance
        for k in (-6, 4):  # audio delayed by k frames: the official sign gives offset -k
            shifted = sync_score(ex.sync, clip.frames, shift_audio(clip.audio, k), boxes=boxes)
            assert shifted.offset == -k, (rec["id"], k)
    v = experts["summary"]["validation"]["sync"]
    assert v["offset0_rate"] == 1.0 and v["shift_found_rate"] == 1.0


def _pose_audio_pairs(rng: np.random.Generator, k: int, n: int = 75):
    """Constructed pairs: noise bursts as speech; the head pitches down with the loudness (3 frames later),
    yaw and roll sway independently of the audio."""
    from scipy.ndimage import gaussian_filter1d

    from vasa.eval.expert_data import ClipArrays, clip_mel

    out = []
    for i in range(k):
        env, t = np.zeros(n), int(rng.integers(0, 6))
        while t < n:
            length = int(rng.integers(3, 8))
            env[t:t + length] = rng.uniform(0.3, 1.0)
            t += length + int(rng.integers(2, 10))
        audio = (np.repeat(env, 640) * rng.standard_normal(n * 640) * 0.3).astype(np.float32)
        pitch = -4.0 * gaussian_filter1d(np.concatenate([np.zeros(3), env[:-3]]), 1.5)
        yaw = 9.0 * gaussian_filter1d(rng.standard_normal(n), 8)
        roll = 0.5 * gaussian_filter1d(rng.standard_normal(n), 8)
        pose = np.stack([yaw, pitch, roll], 1).astype(np.float32)
        out.append(ClipArrays(f"pair{i}", np.zeros((n, 1, 1, 3), np.uint8), np.zeros((1, 1, 1, 3), np.uint8),
                              clip_mel(audio, n).astype(np.float16), pose, -1, 0.0))
    return out


def test_capp_ranks_the_true_pairing_first(tmp_path):
    import torch

    from vasa.eval.capp import CAPP, CAPPConfig, CAPPTask, capp_score, retrieval_accuracy
    from vasa.eval.expert_data import mel_stats
    from vasa.train import load_pretrained, train

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    train_pairs, held_out = _pose_audio_pairs(rng, 128), _pose_audio_pairs(rng, 12)
    mean, std = mel_stats(train_pairs)
    cfg = CAPPConfig(width=32, layers=1, audio_layers=1, dim=32, mel_mean=mean, mel_std=std)
    steps = 150
    train(CAPPTask(train_pairs, cfg, steps * 32), out_dir=tmp_path, steps=steps, batch_size=32, lr=2e-3,
          warmup_steps=10, lr_schedule="cosine", checkpoint_every=0, log_every=20, progress=False)
    model = CAPP(cfg)
    load_pretrained(tmp_path / "model", model)
    poses, mels = [d.pose for d in held_out], [d.mel.astype(np.float32) for d in held_out]
    assert retrieval_accuracy(model, poses, mels) >= 0.9  # chance: 1 / 12
    assert np.isfinite(capp_score(model, held_out[0].pose, np.zeros(40 * 640, np.float32)))  # short: padded


def test_train_experts_skips_finished_experts(corpus, experts):
    from vasa.eval.experts import NAMES, train_experts

    again = train_experts(str(corpus), **experts["kw"])
    assert sorted(again["skipped"]) == sorted(NAMES) and not again["experts"]
    assert again["validation"]["sync"] == experts["summary"]["validation"]["sync"]
    for name in NAMES:
        assert (Path(experts["kw"]["out"]) / name / "model.safetensors").is_file()
        assert (Path(experts["kw"]["work_dir"]) / name / "dvclive" / "plots" / "metrics" / "loss.tsv").is_file()


@pytest.mark.slow
def test_stage_notebooks_smoke(corpus, experts, tmp_path):
    import papermill as pm

    from vasa.talker.bundle import random_bundle

    bundle = random_bundle(tmp_path / "bundle", seed=0)
    regression = random_bundle(tmp_path / "reg_bundle", seed=1, objective="regression") / "motion"
    shutil.copy2(bundle / "motion" / "norm.npz", regression / "norm.npz")
    from vasa.data.corpus import Corpus

    export = tmp_path / "motion"  # a motion export in the bundle's latent dimensions (the latent_recon row)
    (export / "clips").mkdir(parents=True)
    with np.load(bundle / "motion" / "norm.npz") as nz:
        dims = len(nz["pose_mean"]), len(nz["dyn_mean"])
    rng = np.random.default_rng(0)
    for r in Corpus(corpus).records():
        np.savez(export / "clips" / f"{r['id']}.npz", z_pose=0.1 * rng.standard_normal((200, dims[0]), np.float32),
                 z_dyn=0.1 * rng.standard_normal((200, dims[1]), np.float32))
    paths = [f"train_experts.corpus={corpus}", f"train_experts.out={experts['kw']['out']}",
             f"train_experts.work_dir={experts['kw']['work_dir']}"]
    paths += [f"train_experts.{k}={v}" for k, v in EXPERTS.items() if k not in ("device", "progress")]
    m1 = tmp_path / "experts.json"
    pm.execute_notebook(str(ROOT / "notebooks" / "04a_train_experts.ipynb"), str(tmp_path / "04a.ipynb"),
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
                        parameters=dict(params_file=str(ROOT / "params.yaml"), profile="smoke", overrides=paths,
                                        metrics_file=str(m1)))
    assert json.loads(m1.read_text())["validation"]["sync"]["offset0_rate"] == 1.0
    out, m2 = tmp_path / "report", tmp_path / "evaluate.json"
    pm.execute_notebook(str(ROOT / "notebooks" / "04_evaluate.ipynb"), str(tmp_path / "04.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(params_file=str(ROOT / "params.yaml"), profile="smoke", metrics_file=str(m2),
                                        bundle=str(bundle), sets=["test_en", "astronaut"], clips=1,
                                        overrides=[f"evaluate.corpus={corpus}",
                                                   f"evaluate.experts={experts['kw']['out']}",
                                                   f"evaluate.regression={regression}", f"evaluate.out={out}",
                                                   f"evaluate.motion={export}"]))
    m = json.loads(m2.read_text())
    assert set(m["test_en"]) == {"gt", "latent_recon", "static", "mouth_flap", "regression", "vasa_50", "vasa_fast"}
    assert "latent_recon" not in m["astronaut"]  # no corpus clip behind the astronaut
    assert m["test_en"]["gt"]["s_c"] > m["test_en"]["static"]["s_c"]
    assert m["test_en"]["static"]["dp"] == 0.0 and "csim" in m["astronaut"]["vasa_50"]
    control_row = load_params(ROOT / "params.yaml", profile="smoke").evaluate.control_row
    assert set(m["controls"]) >= {"gt", "static", control_row}
    html = (out / "index.html").read_text()
    assert "FD-vasa-expert" in html and "<video" in html and "sync_offsets.png" in html
    assert (out / "testsets.json").is_file() and list((out / "videos").glob("*.mp4"))
