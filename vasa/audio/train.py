"""Pretraining ``A_enc`` as a content encoder: frame phoneme + viseme classification on the corpus.

The corpus records carry ``frame_phonemes`` (the phoneme at every frame centre, ``"sil"`` in silence)
and the shards a per-frame ``viseme`` class; the audio and both label tracks share the 25 fps grid of
:mod:`vasa.audio.features`. Phonemes are normalised with :func:`vasa.synth.visemes.normalize_ipa`; the
vocabulary is ``["sil", "<unk>", sorted symbols of train_splits]`` (unseen symbols -> ``<unk>``).

>>> task = AudioEncoderTask("data/corpus", AudioTrainConfig(size="S"))
>>> train(task, out_dir="models/audio", steps=3000, batch_size=16, lr=1e-3)
>>> encoder, vocab = load_audio_encoder("models/audio/model")
>>> evaluate_encoder(encoder, Corpus("data/corpus"), vocab)   # {split: {phoneme_acc, viseme_acc, ...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vasa.audio.config import AudioConfig, AudioTrainConfig, audio_config
from vasa.audio.encoder import AudioEncoder
from vasa.audio.features import LOG_FLOOR, log_mel_frames
from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.synth.visemes import SILENCE_LABEL, VISEMES, normalize_ipa
from vasa.train import TrainTask, load_pretrained

UNK = "<unk>"
IGNORE = -100  # label of padded frames / phonemes outside the vocabulary (cross-entropy ignore_index)


def normalize_phoneme(ipa: str) -> str:
    """The vocabulary key of a frame label (``"sil"`` stays, an empty symbol becomes ``<unk>``)."""
    if ipa == SILENCE_LABEL:
        return ipa
    return normalize_ipa(ipa) or UNK


def build_phoneme_vocab(corpus: Corpus, splits: tuple | list = ("train",)) -> list[str]:
    """``["sil", "<unk>", ...sorted normalised symbols]`` over the speech clips of ``splits``."""
    symbols: set[str] = set()
    for split in splits:
        for r in corpus.records(split=split, kind="speech"):
            symbols.update(normalize_phoneme(p) for p in r.get("frame_phonemes", []))
    if not symbols:
        raise VasaError(f"no frame phoneme labels in splits {list(splits)} of {corpus.root}: "
                        "regenerate the corpus with `vasa synth` (records need 'frame_phonemes')")
    return [SILENCE_LABEL, UNK] + sorted(symbols - {SILENCE_LABEL, UNK})


@dataclass
class LabelledClip:
    """One clip's frame-aligned inputs and labels."""

    clip_id: str
    feats: torch.Tensor  # T x F stacked log-mel
    phonemes: torch.Tensor  # T int64 (vocabulary index)
    visemes: torch.Tensor  # T int64 (viseme class, IGNORE where unknown)


def clip_audio_visemes(corpus: Corpus, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz float32 audio and the per-frame viseme track of a clip, without decoding its frames."""
    sh = corpus.shard(record["shard"])
    c = record["index"]
    a_lo, a_hi = sh.arrays["audio_offsets"][c], sh.arrays["audio_offsets"][c + 1]
    f_lo, f_hi = sh.arrays["clip_offsets"][c], sh.arrays["clip_offsets"][c + 1]
    return sh.arrays["audio"][a_lo:a_hi].astype(np.float32) / 32767.0, sh.arrays["viseme"][f_lo:f_hi].astype(np.int64)


def load_labelled_clips(corpus: Corpus, splits: tuple | list, vocab: list[str], cfg: AudioConfig) -> list[LabelledClip]:
    """Features and labels of every speech clip of ``splits`` (labels cut/padded to the feature length)."""
    index = {p: i for i, p in enumerate(vocab)}
    clips = []
    for split in splits:
        for r in corpus.records(split=split, kind="speech"):
            audio, vis = clip_audio_visemes(corpus, r)
            feats = log_mel_frames(audio, cfg)  # T x F
            t = feats.shape[0]
            ph = np.full(t, IGNORE, np.int64)
            labels = [index.get(normalize_phoneme(p), index[UNK]) for p in r["frame_phonemes"][:t]]
            ph[:len(labels)] = labels
            vs = np.full(t, IGNORE, np.int64)
            vs[:min(t, len(vis))] = np.where(vis[:t] >= 0, vis[:t], IGNORE)
            clips.append(LabelledClip(r["id"], feats, torch.from_numpy(ph), torch.from_numpy(vs)))
    return clips


class FrameCrops(Dataset):
    """Crops of ``crop`` frames (stride ``crop // 2``) over labelled clips; short clips padded.

    An item: ``feats`` crop x F (padding = the log-mel of silence), ``phonemes`` / ``visemes`` crop
    (``IGNORE`` on padding). Items depend only on the index.
    """

    def __init__(self, clips: list[LabelledClip], crop: int):
        self.clips, self.crop = clips, crop
        stride = max(1, crop // 2)
        self.items = [(ci, s) for ci, c in enumerate(clips)
                      for s in range(0, max(1, len(c.feats) - crop + stride), stride)]
        if not self.items:
            raise VasaError("no audio clips to train on: check the corpus splits")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ci, s = self.items[i]
        c = self.clips[ci]
        sl = slice(s, s + self.crop)
        feats, ph, vs = c.feats[sl], c.phonemes[sl], c.visemes[sl]
        pad = self.crop - len(feats)
        if pad:
            feats = torch.cat([feats, feats.new_full((pad, feats.shape[1]), float(np.log(LOG_FLOOR)))])
            ph = torch.cat([ph, ph.new_full((pad,), IGNORE)])
            vs = torch.cat([vs, vs.new_full((pad,), IGNORE)])
        return {"feats": feats, "phonemes": ph, "visemes": vs}


class AudioEncoderTask(TrainTask):
    """:class:`~vasa.train.TrainTask` pretraining :class:`AudioEncoder` on phoneme + viseme labels."""

    def __init__(self, corpus: str | Path | Corpus, train_cfg: AudioTrainConfig = AudioTrainConfig(),
                 vocab: list[str] | None = None):
        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
        self.train_cfg = train_cfg
        self.vocab = vocab or build_phoneme_vocab(self.corpus, train_cfg.train_splits)
        self.model_cfg = audio_config(train_cfg.size, lookahead=train_cfg.lookahead,
                                      n_phonemes=len(self.vocab), n_visemes=len(VISEMES))
        self._data: FrameCrops | None = None

    def build_model(self) -> AudioEncoder:
        return AudioEncoder(self.model_cfg)

    def dataset(self) -> Dataset:
        if self._data is None:
            clips = load_labelled_clips(self.corpus, self.train_cfg.train_splits, self.vocab, self.model_cfg)
            self._data = FrameCrops(clips, self.train_cfg.crop_frames)
        return self._data

    def loss(self, model: AudioEncoder, batch: dict, step: int, **kw: Any):
        out = model(batch["feats"])  # B x T x {P, V}
        ls = self.train_cfg.label_smoothing
        lp = F.cross_entropy(out["phoneme_logits"].flatten(0, 1), batch["phonemes"].flatten(),
                             ignore_index=IGNORE, label_smoothing=ls)
        lv = F.cross_entropy(out["viseme_logits"].flatten(0, 1), batch["visemes"].flatten(),
                             ignore_index=IGNORE, label_smoothing=ls)
        m = {"phoneme_ce": lp.detach(), "viseme_ce": lv.detach(),
             "phoneme_acc": _accuracy(out["phoneme_logits"], batch["phonemes"]),
             "viseme_acc": _accuracy(out["viseme_logits"], batch["visemes"])}
        return lp + self.train_cfg.viseme_weight * lv, m

    def config(self) -> dict[str, Any]:
        return {"model": self.model_cfg.to_dict(), "train": self.train_cfg.to_dict(), "vocab": self.vocab}

    def evaluate(self, model: AudioEncoder) -> dict[str, dict[str, float]]:
        """:func:`evaluate_encoder` on the configured ``eval_splits``."""
        return evaluate_encoder(model, self.corpus, self.vocab, self.train_cfg.eval_splits)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    ok = labels != IGNORE
    hit = (logits.argmax(-1) == labels) & ok
    return hit.sum().float() / ok.sum().clamp_min(1)


def load_audio_encoder(directory: str | Path) -> tuple[AudioEncoder, list[str]]:
    """An exported encoder (``out_dir/model`` of :func:`vasa.train.train`) and its phoneme vocabulary."""
    config, _ = load_pretrained(directory)
    task_cfg = config.get("task", {})
    if "model" not in task_cfg or "vocab" not in task_cfg:
        raise VasaError(f"{directory} is not an exported audio encoder (config has no model/vocab)")
    enc = AudioEncoder(AudioConfig.from_dict(task_cfg["model"]))
    load_pretrained(directory, enc)
    return enc.eval(), list(task_cfg["vocab"])


@torch.no_grad()
def evaluate_encoder(encoder: AudioEncoder, corpus: Corpus, vocab: list[str],
                     splits: tuple | list = ("test", "test_lang")) -> dict[str, dict[str, float]]:
    """Frame accuracies per split on whole clips (offline, as the motion model sees them).

    ``phoneme_acc`` counts every labelled frame (``<unk>`` frames can only be hit by predicting
    ``<unk>``); ``phoneme_acc_known`` only frames whose phoneme is in the vocabulary; ``viseme_acc``
    every frame with a viseme label; ``speech_phoneme_acc`` known, non-silent frames only.
    """
    was = encoder.training
    encoder.eval()
    report: dict[str, dict[str, float]] = {}
    unk, sil = vocab.index(UNK), vocab.index(SILENCE_LABEL)
    try:
        for split in splits:
            clips = load_labelled_clips(corpus, (split,), vocab, encoder.cfg)
            if not clips:
                continue
            hits: dict[str, float] = {}
            counts: dict[str, float] = {}

            def add(key: str, hit: torch.Tensor, valid: torch.Tensor) -> None:
                hits[key] = hits.get(key, 0.0) + float((hit & valid).sum())
                counts[key] = counts.get(key, 0.0) + float(valid.sum())

            for c in clips:
                out = encoder(c.feats[None])
                ph_hit = out["phoneme_logits"][0].argmax(-1) == c.phonemes  # T
                vs_hit = out["viseme_logits"][0].argmax(-1) == c.visemes  # T
                labelled = c.phonemes != IGNORE
                known = labelled & (c.phonemes != unk)
                add("phoneme_acc", ph_hit, labelled)
                add("phoneme_acc_known", ph_hit, known)
                add("speech_phoneme_acc", ph_hit, known & (c.phonemes != sil))
                add("viseme_acc", vs_hit, c.visemes != IGNORE)
            rep = {k: hits[k] / counts[k] if counts[k] else float("nan") for k in hits}
            rep["unk_fraction"] = 1.0 - counts["phoneme_acc_known"] / max(counts["phoneme_acc"], 1.0)
            rep["frames"], rep["clips"] = counts["phoneme_acc"], float(len(clips))
            report[split] = rep
    finally:
        encoder.train(was)
    return report
