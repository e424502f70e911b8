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
from vasa.train.checkpoint import prepare_run_dir

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
                     splits: tuple | list = ("test", "test_lang"), by: tuple | list = ()) -> dict[str, dict]:
    """Frame accuracies per split on whole clips (offline, as the motion model sees them).

    ``phoneme_acc`` counts every labelled frame (``<unk>`` frames can only be hit by predicting
    ``<unk>``); ``phoneme_acc_known`` only frames whose phoneme is in the vocabulary; ``viseme_acc``
    every frame with a viseme label; ``speech_phoneme_acc`` known, non-silent frames only.
    ``by`` names record keys (e.g. ``"language"``, ``"voice"``) to break each split down by:
    ``report[split]["by"][key][value]`` holds the same accuracies for those clips.
    """
    was = encoder.training
    encoder.eval()
    report: dict[str, dict] = {}
    unk, sil = vocab.index(UNK), vocab.index(SILENCE_LABEL)

    class _Acc:
        def __init__(self) -> None:
            self.hits: dict[str, float] = {}
            self.counts: dict[str, float] = {}
            self.clips = 0

        def add(self, key: str, hit: torch.Tensor, valid: torch.Tensor) -> None:
            self.hits[key] = self.hits.get(key, 0.0) + float((hit & valid).sum())
            self.counts[key] = self.counts.get(key, 0.0) + float(valid.sum())

        def result(self) -> dict[str, float]:
            rep = {k: self.hits[k] / self.counts[k] if self.counts[k] else float("nan") for k in self.hits}
            rep["unk_fraction"] = 1.0 - self.counts["phoneme_acc_known"] / max(self.counts["phoneme_acc"], 1.0)
            rep["frames"], rep["clips"] = self.counts["phoneme_acc"], float(self.clips)
            return rep

    try:
        for split in splits:
            recs = corpus.records(split=split, kind="speech")
            clips = load_labelled_clips(corpus, (split,), vocab, encoder.cfg)
            if not clips:
                continue
            total = _Acc()
            groups: dict[str, dict[str, _Acc]] = {k: {} for k in by}
            for r, c in zip(recs, clips):
                accs = [total] + [groups[k].setdefault(str(r.get(k)), _Acc()) for k in by]
                out = encoder(c.feats[None])
                ph_hit = out["phoneme_logits"][0].argmax(-1) == c.phonemes  # T
                vs_hit = out["viseme_logits"][0].argmax(-1) == c.visemes  # T
                labelled = c.phonemes != IGNORE
                known = labelled & (c.phonemes != unk)
                for acc in accs:
                    acc.add("phoneme_acc", ph_hit, labelled)
                    acc.add("phoneme_acc_known", ph_hit, known)
                    acc.add("speech_phoneme_acc", ph_hit, known & (c.phonemes != sil))
                    acc.add("viseme_acc", vs_hit, c.visemes != IGNORE)
                    acc.clips += 1
            report[split] = total.result()
            if by:
                report[split]["by"] = {k: {v: a.result() for v, a in sorted(g.items())} for k, g in groups.items()}
    finally:
        encoder.train(was)
    return report


# ----------------------------------------------------------------------------- the train_audio stage
def file_fingerprint(path: str | Path) -> str:
    """A short hash (16 hex digits) of a file's bytes (which exported weights produced a derived file)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def audio_fingerprint(directory: str | Path) -> str:
    """Fingerprint of an exported audio encoder (its ``model.safetensors``)."""
    path = Path(directory) / "model.safetensors"
    if not path.is_file():
        raise VasaError(f"no exported audio encoder in {directory}: run `dvc repro train_audio` first")
    return file_fingerprint(path)


def train_audio(
    corpus: str = "data/corpus",           # prepared corpus: speech clips with frame_phonemes + visemes
    out: str = "models/audio",             # export: model.safetensors (EMA weights) + config.json (+ vocab)
    work_dir: str = "runs/audio",          # checkpoints + dvclive (resumable)
    size: str = "S",                       # AUDIO_SIZES name (tiny: tests, S: the CPU default)
    lookahead: int = 2,                    # L: frames of future audio the encoder may use (40 ms each)
    train_splits: list | tuple = ("train",),  # vocabulary + training clips
    eval_splits: list | tuple = ("val", "test", "test_lang"),  # reported by evaluate_encoder
    crop_frames: int = 100,                # frames per training item (4 s)
    viseme_weight: float = 0.5,            # loss = CE(phoneme) + viseme_weight * CE(viseme)
    label_smoothing: float = 0.0,
    steps: int = 1200,                     # optimizer steps
    batch_size: int = 16,                  # crops per step
    lr: float = 1e-3,                      # AdamW
    weight_decay: float = 0.01,
    warmup_steps: int = 100,
    lr_schedule: str = "cosine",
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,              # the export holds the EMA weights
    log_every: int = 25,
    checkpoint_every: int = 200,
    num_workers: int = 0,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    stop_at_step: int | None = None,       # end this call early (checkpointed); the next call resumes
) -> dict[str, Any]:
    """Pretrain ``A_enc`` on frame phoneme + viseme labels (or resume), export the EMA encoder to ``out``,
    evaluate it on ``eval_splits``. Returns ``{"train": final loop metrics, "seconds", "steps_per_s",
    "evaluation": {split: accuracies, with "by" language and voice}, "fingerprint", "feature_dim", "vocab_size"}``
    (evaluation only once training is complete)."""
    settings = {k: v for k, v in locals().items() if k not in ("corpus", "eval_splits")}
    import time

    from vasa.train import Checkpoint, latest_checkpoint, save_pretrained, train
    from vasa.train.checkpoint import load_module_tensors

    if not Path(corpus, "manifest.jsonl").is_file():
        raise VasaError(f"no corpus at {corpus}: run `dvc repro prepare` (or `vasa synth --out {corpus}`) first")
    settings["corpus"] = str(Path(corpus).resolve())
    prepare_run_dir(work_dir, settings)
    tcfg = AudioTrainConfig(size=size, lookahead=lookahead, train_splits=tuple(train_splits),
                            eval_splits=tuple(eval_splits), crop_frames=crop_frames, viseme_weight=viseme_weight,
                            label_smoothing=label_smoothing)
    task = AudioEncoderTask(corpus, tcfg)
    start = _current_step(work_dir)
    t0 = time.perf_counter()
    metrics = train(task, out_dir=work_dir, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    warmup_steps=warmup_steps, lr_schedule=lr_schedule, grad_clip=grad_clip, ema_decay=ema_decay,
                    log_every=log_every, checkpoint_every=checkpoint_every, seed=seed, device=device,
                    num_workers=num_workers, progress=progress, stop_at_step=stop_at_step, export=False)
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = dict(train=metrics, seconds=seconds, steps=metrics["step"],
                                   steps_per_s=(metrics["step"] - start) / seconds if seconds > 0 else 0.0,
                                   train_clips=len(task.dataset().clips), train_items=len(task.dataset()))
    if metrics["step"] != steps:
        return summary
    c = Checkpoint(latest_checkpoint(Path(work_dir) / "checkpoints"))
    enc = AudioEncoder(task.model_cfg)
    load_module_tensors({"model": enc}, c.ema or c.weights)
    save_pretrained(out, enc, {**c.state["config"], "steps": c.step})
    enc.eval()
    t1 = time.perf_counter()
    summary["evaluation"] = evaluate_encoder(enc, task.corpus, task.vocab, eval_splits, by=("language", "voice"))
    summary.update(eval_seconds=time.perf_counter() - t1, fingerprint=audio_fingerprint(out),
                   feature_dim=enc.dim, vocab_size=len(task.vocab), lookahead_ms=1000 * lookahead / enc.cfg.fps)
    return summary


def _current_step(work_dir: str | Path) -> int:
    from vasa.train import latest_checkpoint

    path = latest_checkpoint(Path(work_dir) / "checkpoints")
    return 0 if path is None else int(path.name.split("-")[-1])
