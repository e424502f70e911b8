"""Motion DiT H: shapes, conditions and null tokens, CFG, samplers, windows/streaming, training."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vasa.errors import VasaError
from vasa.motion import (CONDITIONS, MOTION_SIZES, MotionClip, MotionConditions, MotionDiT, MotionGenerator,
                         MotionTask, MotionTrainConfig, MotionWindows, NoiseSchedule, corpus_motion_clips,
                         guided_denoiser, load_motion_model, motion_config, sample_ddim, sample_ddpm,
                         sample_dpmpp_2m)
from vasa.motion.generate import generate_batch, window_seed
from vasa.motion.model import count_parameters
from vasa.motion.task import batch_conditions
from vasa.train import latest_checkpoint, train

sys.path.insert(0, str(Path(__file__).parent))
from test_audio import write_tone_corpus  # noqa: E402

torch.set_num_threads(1)  # tiny ops: threads only add contention on a shared CPU

D, F, W, K = 5, 8, 12, 4


def _model(conditioning: str = "tokens", objective: str = "diffusion", seed: int = 0, **kw) -> MotionDiT:
    """A tiny model with every weight perturbed (so adaLN-Zero / zero-init layers pass signal)."""
    torch.manual_seed(seed)
    m = MotionDiT(motion_config("tiny", motion_dim=D, audio_dim=F, window=W, past=K, conditioning=conditioning,
                                objective=objective, diffusion_steps=20, **kw))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _cond(b: int = 2, seed: int = 0, w: int = W, k: int = K, f: int = F, d: int = D) -> MotionConditions:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return MotionConditions(audio=r(b, w, f), gaze=r(b, 2), distance=r(b, 1), emotion=r(b, 6),
                            x_pre=r(b, k, d), a_pre=r(b, k, f), ref=r(b, d))


def _xt(b: int = 2, w: int = W, d: int = D) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, w, d, generator=torch.Generator().manual_seed(9)), torch.tensor([3, 17])[:b]


# ---------------------------------------------------------------- model
@pytest.mark.parametrize("conditioning", ["tokens", "adaln"])
@pytest.mark.parametrize("size", list(MOTION_SIZES))
def test_shapes_every_size(size, conditioning):
    torch.manual_seed(0)
    cfg = motion_config(size, motion_dim=70, audio_dim=192, conditioning=conditioning)
    m = MotionDiT(cfg).eval()
    c = _cond(2, w=cfg.window, k=cfg.past, f=192, d=70)
    with torch.no_grad():
        out = m(*_xt(2, cfg.window, 70), c)
    assert out.shape == (2, cfg.window, 70) and torch.isfinite(out).all()
    if size == "paper":
        assert cfg.layers == 8 and cfg.width == 512 and cfg.heads == 8
        assert 20e6 < count_parameters(m) < 40e6


SUBSETS = [(), ("audio",), ("gaze", "distance"), ("emotion", "past"), ("ref",), tuple(CONDITIONS)]


@pytest.mark.parametrize("conditioning", ["tokens", "adaln"])
@pytest.mark.parametrize("size", [s for s in MOTION_SIZES if s != "paper"])
def test_shapes_every_size_and_condition_subset(size, conditioning):
    """Every size takes any subset of conditions: dropped (null tokens) or missing (None), same shapes."""
    torch.manual_seed(0)
    cfg = motion_config(size, motion_dim=9, audio_dim=16, conditioning=conditioning)
    m = MotionDiT(cfg).eval()
    c = _cond(3, w=cfg.window, k=cfg.past, f=16, d=9)
    x, t = torch.randn(3, cfg.window, 9), torch.tensor([0, 5, cfg.diffusion_steps - 1])
    with torch.no_grad():
        for dropped in SUBSETS:
            missing = MotionConditions(audio=c.audio, gaze=None if "gaze" in dropped else c.gaze,
                                       distance=None if "distance" in dropped else c.distance,
                                       emotion=None if "emotion" in dropped else c.emotion,
                                       x_pre=None if "past" in dropped else c.x_pre,
                                       a_pre=None if "past" in dropped else c.a_pre,
                                       ref=None if "ref" in dropped else c.ref)
            for cond in (c.dropped(*dropped), missing):
                out = m(x, t, cond)
                assert out.shape == (3, cfg.window, 9) and torch.isfinite(out).all()


@pytest.mark.parametrize("conditioning", ["tokens", "adaln"])
@pytest.mark.parametrize("dropped", SUBSETS)
def test_dropped_equals_missing(conditioning, dropped):
    """A dropped condition uses its null token: same output as the condition being absent, and a change."""
    m = _model(conditioning)
    x, t = _xt()
    c = _cond()
    missing = MotionConditions(
        audio=c.audio if "audio" not in dropped else torch.zeros_like(c.audio),
        audio_mask=None if "audio" not in dropped else torch.zeros(2, W, dtype=torch.bool),
        gaze=None if "gaze" in dropped else c.gaze, distance=None if "distance" in dropped else c.distance,
        emotion=None if "emotion" in dropped else c.emotion,
        x_pre=None if "past" in dropped else c.x_pre, a_pre=None if "past" in dropped else c.a_pre,
        ref=None if "ref" in dropped else c.ref)
    with torch.no_grad():
        full, drop, miss = m(x, t, c), m(x, t, c.dropped(*dropped)), m(x, t, missing)
    torch.testing.assert_close(drop, miss, rtol=0, atol=1e-6)
    assert (full - drop).abs().max() > 1e-4 or not dropped


def test_per_sample_drop_and_audio_mask():
    m = _model()
    x, t = _xt()
    c = _cond()
    with torch.no_grad():
        mixed = m(x, t, c.with_drop({"gaze": torch.tensor([True, False])}))
        torch.testing.assert_close(mixed[0], m(x, t, c.dropped("gaze"))[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(mixed[1], m(x, t, c)[1], rtol=0, atol=1e-6)
        # audio frames outside audio_mask are not read
        mask = torch.arange(W)[None].repeat(2, 1) < 7
        c1 = MotionConditions(**{**c.__dict__, "audio_mask": mask})
        c2 = MotionConditions(**{**c.__dict__, "audio_mask": mask, "audio": torch.where(mask[..., None], c.audio, 5.0)})
        torch.testing.assert_close(m(x, t, c1), m(x, t, c2), rtol=0, atol=1e-6)


def test_regression_ignores_noise_and_timestep():
    m = _model(objective="regression")
    c = _cond()
    with torch.no_grad():
        a = m(torch.randn(2, W, D), torch.tensor([1, 2]), c)
        b = m(torch.randn(2, W, D), torch.tensor([7, 19]), c)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_user_errors():
    m = _model()
    with pytest.raises(VasaError):
        m(torch.randn(1, W + 1, D), torch.tensor([0]), _cond(1, w=W + 1))
    with pytest.raises(VasaError):
        guided_denoiser(m, _cond(), {"pitch": 1.0})
    with pytest.raises(VasaError):
        motion_config("XL")
    with pytest.raises(VasaError):
        motion_config("tiny", conditioning="cross")
    with pytest.raises(VasaError):
        MotionTrainConfig(drop_prob=1.5)
    with pytest.raises(VasaError):
        MotionGenerator(m, emotion="bored")
    with pytest.raises(VasaError):
        MotionGenerator(m).generate(torch.zeros(10, F + 1))


# ---------------------------------------------------------------- guidance and samplers
@pytest.mark.parametrize("conditioning", ["tokens", "adaln"])
def test_cfg(conditioning):
    m = _model(conditioning)
    x, t = _xt()
    c = _cond()
    with torch.no_grad():
        cond_pred = m(x, t, c)
        assert torch.equal(guided_denoiser(m, c, {"audio": 0.0, "gaze": 0.0})(x, t), cond_pred)
        scales = {"audio": 0.5, "gaze": 1.0, "emotion": 0.3}
        manual = (1 + 1.8) * cond_pred - sum(s * m(x, t, c.dropped(n)) for n, s in scales.items())
        torch.testing.assert_close(guided_denoiser(m, c, scales)(x, t), manual, rtol=1e-5, atol=1e-5)


def _gaussian_oracle(schedule: NoiseSchedule, mu: float = 1.5, s: float = 0.3):
    """The exact x0 = E[x0 | x_t] for data ~ N(mu, s^2)."""
    def denoise(x, t):
        a = schedule.alpha_bar(t).float().view(-1, 1, 1)
        return mu + a.sqrt() * s * s / (a * s * s + 1 - a) * (x - a.sqrt() * mu)
    return denoise


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_ddim_eta1_full_steps_is_ddpm(kind):
    sch = NoiseSchedule(30, kind)
    den = _gaussian_oracle(sch)
    noise = torch.randn(64, 3, 2, generator=torch.Generator().manual_seed(0))
    a = sample_ddpm(den, noise, sch, generator=torch.Generator().manual_seed(1))
    b = sample_ddim(den, noise, sch, steps=30, eta=1.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    c = sample_ddim(den, noise, sch, steps=30, eta=0.0)
    assert (a - c).abs().max() > 1e-2  # eta = 0 is a different (deterministic) path


@pytest.mark.parametrize("sampler,steps,tol", [(sample_ddpm, None, 0.03), (sample_ddim, 50, 0.03),
                                               (sample_dpmpp_2m, 10, 0.03)])
def test_samplers_recover_the_data_distribution(sampler, steps, tol):
    sch = NoiseSchedule(1000, "cosine")
    noise = torch.randn(4000, 1, 1, generator=torch.Generator().manual_seed(0))
    kw = {} if steps is None else {"steps": steps}
    out = sampler(_gaussian_oracle(sch), noise, sch, generator=torch.Generator().manual_seed(1), **kw)
    assert abs(out.mean() - 1.5) < tol and abs(out.std() - 0.3) < tol, (out.mean(), out.std())


# ---------------------------------------------------------------- generation over windows
@pytest.mark.parametrize("conditioning", ["tokens", "adaln"])
@pytest.mark.parametrize("frames", [5, W, 3 * W + 7])
def test_stream_equals_offline(conditioning, frames):
    gen = MotionGenerator(_model(conditioning), steps=4, seed=11, emotion="happy")
    audio = torch.randn(frames, F, generator=torch.Generator().manual_seed(2))
    offline = gen.generate(audio)
    assert offline.shape == (frames, D)
    rng = np.random.default_rng(0)
    stream, outs, i = gen.stream(), [], 0
    while i < frames:
        n = int(rng.integers(1, 6))  # 40-200 ms of 25 fps features
        outs.append(stream.push(audio[i:i + n]))
        assert sum(len(o) for o in outs) % W == 0  # whole windows until the flush
        i += n
    outs.append(stream.flush())
    assert torch.equal(torch.cat(outs), offline)


@pytest.mark.parametrize("hop", [1, 7, W])
def test_hop_windows_stream_equals_offline(hop):
    """Low-latency mode: windows of ``hop`` frames (the rest of W padded + masked), past context as usual."""
    m = _model()
    audio = torch.randn(2 * W + 3, F, generator=torch.Generator().manual_seed(2))
    gen = MotionGenerator(m, steps=3, seed=5, hop=hop)
    offline = gen.generate(audio)
    assert offline.shape == (len(audio), D)
    stream, outs = gen.stream(), []
    for i in range(0, len(audio), 3):
        outs.append(stream.push(audio[i:i + 3]))
        assert sum(len(o) for o in outs) % hop == 0  # whole hops until the flush
    outs.append(stream.flush())
    assert torch.equal(torch.cat(outs), offline)
    if hop == W:
        assert torch.equal(offline, MotionGenerator(m, steps=3, seed=5).generate(audio))  # the default
    else:  # window 1 is the model's output on the first hop frames alone
        g = MotionGenerator(m, steps=3, seed=5)
        torch.testing.assert_close(offline[:hop], m.denormalize(g.window(0, audio[:hop], None, None)))
        batch = generate_batch(m, [audio, audio[:W]], steps=3, seed=5, hop=hop)
        torch.testing.assert_close(batch[0], offline, rtol=1e-4, atol=1e-4)  # batched matmuls round differently
    for bad in (0, W + 1):
        with pytest.raises(VasaError, match=r"hop must be in \[1, "):
            MotionGenerator(m, hop=bad)


def test_audio_to_motion_stream_matches_offline():
    """Microphone-style chunks -> A_enc stream -> motion stream == offline encode + generate (up to float)."""
    from vasa.audio import AudioEncoder, AudioEncoderStream, audio_config
    torch.manual_seed(0)
    enc = AudioEncoder(audio_config("tiny", width=F, heads=2)).eval()
    gen = MotionGenerator(_model(), steps=3, seed=1)
    audio = (0.1 * np.random.default_rng(0).standard_normal(640 * (2 * W + 5) + 99)).astype(np.float32)
    offline = gen.generate(enc.encode_audio(audio))
    a_stream, m_stream, outs = AudioEncoderStream(enc), gen.stream(), []
    for i in range(0, len(audio), 1600):  # 100 ms chunks
        outs.append(m_stream.push(a_stream.push(audio[i:i + 1600])))
    outs += [m_stream.push(a_stream.flush()), m_stream.flush()]
    torch.testing.assert_close(torch.cat(outs), offline, rtol=0, atol=1e-3)


@pytest.mark.parametrize("sampler,steps", [("ddim", 4), ("dpmpp_2m", 3)])
def test_generate_batch_equals_per_clip_generation(sampler, steps):
    """Evaluation batches the windows of several clips: same result as one clip at a time."""
    from vasa.motion.generate import generate_batch
    m = _model()
    g = torch.Generator().manual_seed(3)
    audios = [torch.randn(n, F, generator=g) for n in (W - 3, 2 * W + 5, 3 * W)]
    controls = [dict(gaze=(5.0, -2.0), emotion="happy"), dict(gaze=None, distance=None),
                dict(distance=1.2, ref=np.linspace(-1, 1, D))]
    batched = generate_batch(m, audios, controls, sampler=sampler, steps=steps, seed=4)
    for a, c, b in zip(audios, controls, batched):
        single = MotionGenerator(m, sampler=sampler, steps=steps, seed=4, **c).generate(a)
        assert b.shape == single.shape == (len(a), D)
        torch.testing.assert_close(b, single, rtol=1e-4, atol=1e-4)
    assert generate_batch(m, []) == []
    with pytest.raises(VasaError):
        generate_batch(m, audios, controls[:1])


def test_blend_boundary_spreads_the_step():
    from vasa.motion.generate import blend_boundary
    past = torch.tensor([[0.0, 1.0], [0.1, 1.0]])  # moving +0.1 per frame in dim 0
    x = torch.tensor([[1.2, 2.0], [1.3, 2.0], [1.4, 2.0], [1.5, 2.0], [1.6, 2.0]])  # a step of +1.0 / +1.0
    out = blend_boundary(x, past, 3)
    torch.testing.assert_close(out[0], torch.tensor([0.2, 1.0]))  # the past's linear continuation
    torch.testing.assert_close(out[3:], x[3:])  # frames after the blend are untouched
    steps = out.diff(dim=0).norm(dim=1)
    assert (steps[:2] < 0.6).all()  # the unit step is spread over the blend frames
    assert torch.equal(blend_boundary(x, past, 0), x) and torch.equal(blend_boundary(x, None, 3), x)
    m = _model()
    audio = torch.randn(2 * W + 3, F, generator=torch.Generator().manual_seed(2))
    raw, blended = (MotionGenerator(m, steps=3, seed=1, blend=b).generate(audio) for b in (0, 3))
    torch.testing.assert_close(raw[:W], blended[:W])  # the first window has no boundary
    assert not torch.equal(raw[W:W + 3], blended[W:W + 3])
    with pytest.raises(VasaError):
        MotionGenerator(m, blend=-1)


def test_determinism_per_seed():
    m = _model()
    audio = torch.randn(2 * W + 3, F, generator=torch.Generator().manual_seed(2))
    a = MotionGenerator(m, steps=4, seed=5).generate(audio)
    b = MotionGenerator(m, steps=4, seed=5).generate(audio)
    c = MotionGenerator(m, steps=4, seed=6).generate(audio)
    assert torch.equal(a, b) and (a - c).abs().max() > 1e-3
    assert window_seed(5, 0) != window_seed(5, 1)


def test_past_context_is_the_previous_windows_tail():
    """By construction: window n + 1 sees exactly the last K frames window n produced, and their audio."""
    m = _model()
    seen: list[MotionConditions] = []
    forward = m.forward
    m.forward = lambda x, t, c: (seen.append(c), forward(x, t, c))[1]  # type: ignore[method-assign]
    gen = MotionGenerator(m, sampler="ddim", steps=1, guidance={}, seed=0)
    audio = torch.randn(2 * W + 2, F)
    x = m.normalize(gen.generate(audio))
    assert len(seen) == 3 and seen[0].x_pre is None and not seen[0].kept("past").any()
    for n in (1, 2):
        s = n * W
        torch.testing.assert_close(seen[n].x_pre[0], x[s - K:s], rtol=1e-5, atol=1e-5)
        assert torch.equal(seen[n].a_pre[0], audio[s - K:s]) and seen[n].kept("past").all()
    assert seen[2].audio_mask[0].sum() == 2  # the last window: 2 real audio frames, the rest null


def _ramp_clips(n: int, frames: int = 120, seed: int = 0) -> list[MotionClip]:
    """Motion = per-clip offset + constant velocity (the past determines the continuation); audio = noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c, v = rng.normal(0, 1, 2), rng.uniform(0.02, 0.05, 2) * rng.choice([-1, 1], 2)
        motion = (c + v * np.arange(frames)[:, None]).astype(np.float32)
        out.append(MotionClip(motion, rng.standard_normal((frames, F)).astype(np.float32), clip_id=str(i)))
    return out


def test_window_continues_its_past(tmp_path):
    """Learned continuity: a window's first frame continues X_pre (unlike the same window without it).

    With ``test_past_context_is_the_previous_windows_tail`` this bounds the jump at every window
    boundary of a generation: the next window starts where its X_pre (the previous window's tail) ends.
    """
    cfg = MotionTrainConfig(size="tiny", window=W, past=K, stride=4, objective="regression", drop_past_prob=0.2,
                            truncate_prob=0.0)
    task = MotionTask(_ramp_clips(24), cfg)
    train(task, out_dir=tmp_path, steps=200, batch_size=32, lr=1e-2, log_every=50, checkpoint_every=0,
          device="cpu", progress=False)
    gen = MotionGenerator(load_motion_model(tmp_path / "model"), guidance={}, seed=0)
    warm, cold = [], []
    for clip in _ramp_clips(16, seed=1):  # held-out clips: their own offset and velocity
        x = torch.from_numpy((clip.motion - task.data.mean) / task.data.std)
        a = torch.from_numpy(clip.audio)
        s = 40
        for out, err in ((gen.window(0, a[s:s + W], x[s - K:s], a[s - K:s]), warm),
                         (gen.window(0, a[s:s + W], None, None), cold)):
            err.append(float((out[0] - x[s]).norm()))
    assert np.mean(warm) < 0.25 * np.mean(cold), (warm, cold)


# ---------------------------------------------------------------- data and training
def test_windows_dataset():
    clips = _ramp_clips(2, frames=30)
    clips[1].gaze = np.array([0.1, -0.2], np.float32)
    data = MotionWindows(clips, window=W, past=K, stride=8)
    assert len(data) == 2 * 4  # starts 0, 8, 16, 24 (the last one runs past the end: padded)
    first, last = data[0], data[3]
    assert first["motion"].shape == (W, 2) and first["audio"].shape == (W, F) and first["x_pre"].shape == (K, 2)
    assert not first["has_past"] and last["has_past"] and last["mask"].sum() == 30 - 24
    assert (last["motion"][6:] == 0).all() and (last["audio"][6:] == 0).all()
    x = (clips[0].motion - data.mean) / data.std
    torch.testing.assert_close(last["x_pre"], torch.from_numpy(x[24 - K:24]))
    torch.testing.assert_close(data[2]["motion"], torch.from_numpy(x[16:28]))
    assert not data[0]["has_gaze"] and data[4]["has_gaze"]
    cond = batch_conditions(torch.utils.data.default_collate([data[0], data[4]]))
    assert cond.kept("gaze").tolist() == [False, True] and cond.kept("past").tolist() == [False, False]


def test_augment_truncates_audio_tail():
    torch.manual_seed(0)
    cfg = MotionTrainConfig(size="tiny", window=W, past=K, stride=4, truncate_prob=1.0, min_frames=3, drop_prob=0.0)
    task = MotionTask(_ramp_clips(3, frames=40), cfg)
    batch = torch.utils.data.default_collate([task.data[i] for i in range(8)])
    cond, loss_mask = task.augment(batch)
    n = loss_mask.sum(1)
    assert (n >= 3).all() and (n <= batch["mask"].sum(1)).all() and (n < W).any()
    assert torch.equal(cond.frame_mask(), loss_mask)  # truncated frames: null audio and no loss
    assert (loss_mask[:, :-1].int() - loss_mask[:, 1:].int() >= 0).all()  # a prefix


@pytest.mark.parametrize("conditioning,objective", [("tokens", "diffusion"), ("adaln", "regression")])
def test_training_learns_and_resumes(tmp_path, conditioning, objective):
    cfg = MotionTrainConfig(size="tiny", window=W, past=K, stride=4, conditioning=conditioning, objective=objective,
                            smooth_weight=0.1, diffusion_steps=50)
    clips = _ramp_clips(8, frames=60)
    kw = dict(batch_size=16, lr=3e-3, log_every=1, device="cpu", progress=False, checkpoint_every=0)
    train(MotionTask(clips, cfg), out_dir=tmp_path / "a", steps=40, **kw)
    rows = (tmp_path / "a" / "dvclive" / "plots" / "metrics" / "x0.tsv").read_text().splitlines()[1:]
    x0 = [float(r.split("\t")[1]) for r in rows]
    assert np.mean(x0[-8:]) < 0.7 * np.mean(x0[:8]), x0
    # resume: 6 steps in one go == 3 + 3 steps
    short = dict(kw, steps=6, checkpoint_every=3)
    train(MotionTask(clips, cfg), out_dir=tmp_path / "b", **short)
    train(MotionTask(clips, cfg), out_dir=tmp_path / "c", stop_at_step=3, **short)
    train(MotionTask(clips, cfg), out_dir=tmp_path / "c", **short)
    from safetensors.torch import load_file
    wb, wc = (load_file(str(latest_checkpoint(tmp_path / d / "checkpoints") / "model.safetensors")) for d in "bc")
    assert wb.keys() == wc.keys() and all(torch.equal(wb[k], wc[k]) for k in wb)
    model = load_motion_model(tmp_path / "a" / "model")
    assert model.cfg.conditioning == conditioning and model.cfg.objective == objective
    torch.testing.assert_close(model.motion_mean, torch.from_numpy(MotionWindows(clips, W, K, 4).mean))


def test_corpus_ground_truth_as_motion(tmp_path):
    from vasa.audio import audio_config, log_mel_frames
    from vasa.data.corpus import Corpus
    root = write_tone_corpus(tmp_path / "c")
    acfg = audio_config("tiny")
    clips = corpus_motion_clips(Corpus(root), "train", lambda a: log_mel_frames(a, acfg).numpy())
    assert len(clips) == 6 and clips[0].motion.shape[1] == 3 and clips[0].audio.shape[1] == 320
    assert len(clips[0].motion) == len(clips[0].audio)
    assert clips[0].gaze.shape == (2,) and clips[0].distance.shape == (1,) and clips[0].emotion.shape == (6,)
    task = MotionTask(clips, MotionTrainConfig(size="tiny", window=W, past=K, stride=8))
    assert task.model_cfg.motion_dim == 3 and task.model_cfg.audio_dim == 320
