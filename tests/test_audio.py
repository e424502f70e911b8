"""Audio front-end and encoder A_enc: frame alignment, look-ahead bound, streaming == offline, pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vasa.audio import (AUDIO_SIZES, AudioEncoder, AudioEncoderStream, AudioEncoderTask, AudioTrainConfig,
                        LogMelStream, audio_config, evaluate_encoder, load_audio_encoder, log_mel_frames, num_frames)
from vasa.audio.train import IGNORE, UNK
from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.synth.visemes import VISEME_INDEX
from vasa.train import latest_checkpoint, train

torch.set_num_threads(1)  # tiny ops: threads only add contention on a shared CPU

SR, SPF = 16000, 640
# a toy phoneme inventory: each "phoneme" is a tone (frequency Hz, viseme)
TONES = {"sil": (0, "sil"), "a": (300, "open"), "iː": (700, "spread"), "u": (1100, "round_close"),
         "m": (1600, "bilabial"), "s": (2500, "sibilant"), "x": (3500, "velar")}


def _tone_clip(rng: np.random.Generator, n: int, inventory: list[str]):
    """``n`` frames of 40 ms tone segments: (audio, frame labels, visemes)."""
    labels, t = [], 0
    while t < n:
        ph, k = str(rng.choice(inventory)), int(rng.integers(2, 6))
        labels += [ph] * k
        t += k
    labels = labels[:n]
    tt = np.arange(SPF) / SR
    audio = np.concatenate([0.3 * np.sin(2 * np.pi * TONES[p][0] * tt + rng.uniform(0, 6)) for p in labels])
    audio = (audio + 0.003 * rng.standard_normal(len(audio))).astype(np.float32)
    vis = np.array([VISEME_INDEX[TONES[p][1]] for p in labels])
    return audio, labels, vis


def write_tone_corpus(root: Path, seed: int = 0) -> Path:
    """A corpus folder (shards + manifest, no rendering) whose speech is tones with exact frame labels.

    Clips carry ``frame_phonemes``, visemes, ``conditions`` and 3 smooth motion parameters; split
    ``test_lang`` uses an extra phoneme ``x`` that ``train`` never has (-> ``<unk>``).
    """
    from vasa.io.shards import ClipData, write_shard
    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True)
    train_inv = [p for p in TONES if p != "x"]
    specs = [("train", train_inv)] * 6 + [("test", train_inv)] * 2 + [("test_lang", list(TONES))]
    clips = []
    for i, (split, inv) in enumerate(specs):
        n = int(rng.integers(40, 70))
        audio, labels, vis = _tone_clip(rng, n, inv)
        params = np.cumsum(rng.normal(0, 0.1, (n, 3)), 0).astype(np.float32)
        rec = dict(id=f"c{i}", kind="speech", split=split, identity=f"id{i}", language="en",
                   frame_phonemes=labels, conditions=dict(emotion=str(rng.choice(["neutral", "happy"])),
                                                          emotion_intensity=0.7, gaze_yaw=float(rng.normal(0, 8)),
                                                          gaze_pitch=float(rng.normal(0, 8)),
                                                          distance=float(rng.uniform(0.8, 1.25))))
        clips.append(ClipData(record=rec, frames=np.zeros((n, 8, 8, 3), np.uint8), params=params, viseme=vis,
                              audio=audio))
    records = write_shard(root / "shards" / "s0.npz", clips)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "schema.json").write_text(json.dumps({"params": ["p0", "p1", "p2"], "fps": 25, "sample_rate": SR}))
    return root


@pytest.fixture(scope="module")
def tone_corpus(tmp_path_factory) -> Path:
    return write_tone_corpus(tmp_path_factory.mktemp("tones") / "c")


def _audio(n: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------- front-end
@pytest.mark.parametrize("n", [1, 639, 640, 641, 16000, 16123])
def test_log_mel_frames_alignment(n):
    cfg = audio_config("tiny")
    f = log_mel_frames(_audio(n), cfg)
    assert f.shape == (num_frames(n, cfg), 4 * 80) == (-(-n // SPF), 320)
    assert torch.isfinite(f).all()
    batch = log_mel_frames(np.stack([_audio(n), _audio(n, 1)]), cfg)
    torch.testing.assert_close(batch[0], f)


def test_log_mel_is_frame_local():
    # frame t reads samples [640 t - 120, 640 (t + 1) + 120): a tone burst in frame 5 shows up in frames 4..6 at most
    cfg = audio_config("tiny")
    a = np.zeros(SPF * 12, np.float32)
    a[SPF * 5 + 200: SPF * 5 + 400] = 0.5
    f = log_mel_frames(a, cfg)
    loud = (f > np.log(1e-5) + 1e-3).any(-1).nonzero().flatten().tolist()
    assert loud == [5]


def test_log_mel_stream_equals_offline():
    cfg = audio_config("tiny")
    a = _audio(SR * 2 + 321)
    rng = np.random.default_rng(1)
    s, outs, i = LogMelStream(cfg), [], 0
    while i < len(a):
        n = int(rng.integers(SPF, 5 * SPF))  # 40-200 ms chunks
        outs.append(s.push(a[i:i + n]))
        i += n
    outs.append(s.flush())
    torch.testing.assert_close(torch.cat(outs), log_mel_frames(a, cfg), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- encoder
@pytest.mark.parametrize("size", list(AUDIO_SIZES))
def test_encoder_shapes(size):
    torch.manual_seed(0)
    enc = AudioEncoder(audio_config(size, n_phonemes=11)).eval()
    out = enc(torch.randn(2, 30, 320))
    assert out["features"].shape == (2, 30, enc.dim)
    assert out["phoneme_logits"].shape == (2, 30, 11) and out["viseme_logits"].shape == (2, 30, 15)
    assert enc.encode(torch.randn(1, 1, 320)).shape == (1, 1, enc.dim)  # a single frame works
    a = _audio(SPF * 7 + 5)
    torch.testing.assert_close(enc.encode_audio(a), enc.encode(log_mel_frames(a, enc.cfg)[None])[0])


@pytest.mark.parametrize("lookahead", [0, 1, 3])
def test_encoder_lookahead_bound(lookahead):
    """Output frame t depends on audio up to 640 (t + L + 1) + 120 samples, and on the samples just before."""
    cfg = audio_config("tiny", lookahead=lookahead, dropout=0.0)
    torch.manual_seed(0)
    enc = AudioEncoder(cfg).eval()
    a = _audio(SPF * 30)
    t = 12
    limit = SPF * (t + lookahead + 1) + cfg.stft_reach  # first sample frame t may NOT see
    b = a.copy()
    b[limit:] = _audio(len(a) - limit, seed=5)
    ya, yb = (enc.encode(log_mel_frames(x, cfg)[None])[0] for x in (a, b))
    torch.testing.assert_close(ya[:t + 1], yb[:t + 1], rtol=0, atol=1e-6)
    assert (ya[t + 1] - yb[t + 1]).abs().max() > 1e-4  # ...while frame t + 1 does see it
    c = a.copy()
    c[limit - 40:limit] += 0.5  # the last samples frame t may see (hann-weighted, so not just one)
    yc = enc.encode(log_mel_frames(c, cfg)[None])[0]
    assert (ya[t] - yc[t]).abs().max() > 1e-5


@pytest.mark.parametrize("lookahead", [0, 2])
def test_encoder_stream_equals_offline(lookahead):
    cfg = audio_config("tiny", lookahead=lookahead, attn_context=4)
    torch.manual_seed(0)
    enc = AudioEncoder(cfg).eval()
    a = _audio(SPF * 41 + 77)
    offline = enc.encode(log_mel_frames(a, cfg)[None])[0]
    rng = np.random.default_rng(0)
    stream, outs, i = AudioEncoderStream(enc), [], 0
    while i < len(a):
        n = int(rng.integers(SPF, 5 * SPF))
        outs.append(stream.push(a[i:i + n]))
        i += n
    outs.append(stream.flush())
    assert len(stream._feats) == 0  # the stream resets after flush
    torch.testing.assert_close(torch.cat(outs), offline, rtol=0, atol=1e-5)


def test_bad_audio_config():
    with pytest.raises(VasaError):
        audio_config("huge")
    with pytest.raises(VasaError):
        audio_config("tiny", width=30, heads=4)
    with pytest.raises(VasaError):
        log_mel_frames(np.zeros((2, 3, 4)), audio_config("tiny"))


# ---------------------------------------------------------------- pretraining on frame phoneme labels
def test_vocab_and_dataset(tone_corpus):
    task = AudioEncoderTask(tone_corpus, AudioTrainConfig(size="tiny", crop_frames=32))
    assert task.vocab[:2] == ["sil", UNK] and "i" in task.vocab and "iː" not in task.vocab  # normalised IPA
    assert "x" not in task.vocab  # only train_splits build the vocabulary
    item = task.dataset()[len(task.dataset()) - 1]
    assert item["feats"].shape == (32, 320) and item["phonemes"].shape == (32,)
    assert (item["phonemes"] != IGNORE).any()


def test_pretraining_learns_and_resumes(tone_corpus, tmp_path):
    cfg = AudioTrainConfig(size="tiny", crop_frames=32, lookahead=1)
    kw = dict(steps=40, batch_size=8, lr=3e-3, log_every=1, device="cpu", progress=False, checkpoint_every=0)
    m = train(AudioEncoderTask(tone_corpus, cfg), out_dir=tmp_path / "a", **kw)
    rows = (tmp_path / "a" / "dvclive" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()[1:]
    losses = [float(r.split("\t")[1]) for r in rows]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    enc, vocab = load_audio_encoder(tmp_path / "a" / "model")
    assert enc.cfg.lookahead == 1 and vocab == AudioEncoderTask(tone_corpus, cfg).vocab
    rep = evaluate_encoder(enc, Corpus(tone_corpus), vocab)
    assert set(rep) == {"test", "test_lang"}
    assert rep["test"]["viseme_acc"] > 0.5 and rep["test"]["phoneme_acc"] > 0.5, rep
    assert rep["test_lang"]["unk_fraction"] > 0 and rep["test"]["unk_fraction"] == 0
    # resume: 40 steps in one go == 20 + 20 (via vasa.train)
    short = dict(kw, steps=6, checkpoint_every=3)
    train(AudioEncoderTask(tone_corpus, cfg), out_dir=tmp_path / "b", **short)
    train(AudioEncoderTask(tone_corpus, cfg), out_dir=tmp_path / "c", stop_at_step=3, **short)
    train(AudioEncoderTask(tone_corpus, cfg), out_dir=tmp_path / "c", **short)
    from safetensors.torch import load_file
    wb, wc = (load_file(str(latest_checkpoint(tmp_path / d / "checkpoints") / "model.safetensors")) for d in "bc")
    assert all(torch.equal(wb[k], wc[k]) for k in wb)
