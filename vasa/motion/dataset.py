"""Training windows for the motion DiT from generic per-clip arrays.

A clip is a :class:`MotionClip`: motion ``X`` (``T x D``: exported ``[z_pose, z_dyn]`` latents, or the
corpus's ground-truth face parameters as a stand-in motion space), frame-aligned audio features ``A``
(``T x F``) and per-clip labels ``g``, ``d``, ``e`` (``None`` = missing: the condition is dropped).

:class:`MotionWindows` yields *pairs of consecutive windows*: a window of ``W`` frames starting at
``s`` plus the ground truth of the ``K`` frames before it (``X_pre``, ``A_pre``: the end of the
previous window), so the model learns to continue its own past. Windows start every ``stride``
frames; the last one may run past the clip's end (``mask`` False there, zero padding). Windows with
``s < K`` have no past (``has_past`` False). Motion is normalised with the dataset statistics.
Random condition dropout and audio-tail truncation happen in the task (:mod:`vasa.motion.task`),
from the training loop's RNG, so items depend only on their index.

>>> clips = corpus_motion_clips(Corpus("data/corpus"), "train", audio_fn=lambda a: log_mel_frames(a, cfg).numpy())
>>> data = MotionWindows(clips, window=50, past=10, stride=25)
>>> item = data[0]    # motion W x D, audio W x F, mask W, x_pre K x D, a_pre K x F, has_past, gaze, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.motion.conditions import EMOTION_DIM, encode_distance, encode_emotion, encode_gaze


@dataclass
class MotionClip:
    """Per-frame motion and audio of one clip, with its per-clip labels (``None`` = missing)."""

    motion: np.ndarray  # X: T x D
    audio: np.ndarray  # A: T x F
    gaze: np.ndarray | None = None  # g: (2,) radians
    distance: np.ndarray | None = None  # d: (1,) log distance
    emotion: np.ndarray | None = None  # e: (E,)
    clip_id: str = ""

    def __post_init__(self) -> None:
        if self.motion.ndim != 2 or self.audio.ndim != 2:
            raise VasaError(f"clip {self.clip_id!r}: motion and audio must be T x D and T x F arrays")
        t = min(len(self.motion), len(self.audio))
        if abs(len(self.motion) - len(self.audio)) > 2:
            raise VasaError(f"clip {self.clip_id!r}: {len(self.motion)} motion frames but {len(self.audio)} "
                            "audio frames: features must be frame-aligned (25 fps)")
        self.motion = np.asarray(self.motion[:t], np.float32)
        self.audio = np.asarray(self.audio[:t], np.float32)


def conditions_from_record(record: dict) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(g, d, e)`` from a corpus record's ``conditions`` (missing keys give ``None``)."""
    c = record.get("conditions") or {}
    g = encode_gaze(c["gaze_yaw"], c["gaze_pitch"]) if "gaze_yaw" in c and "gaze_pitch" in c else None
    d = encode_distance(c["distance"]) if "distance" in c else None
    e = encode_emotion(c["emotion"], c.get("emotion_intensity", 1.0)) if "emotion" in c else None
    return g, d, e


def corpus_motion_clips(corpus: Corpus, split: str, audio_fn: Callable[[np.ndarray], np.ndarray],
                        columns: list[str] | None = None) -> list[MotionClip]:
    """The corpus's ground-truth face parameters (``columns``, default all) as motion, per speech clip.

    ``audio_fn`` maps a clip's 16 kHz audio to ``T x F`` frame features (log-mel or ``A_enc``).
    """
    from vasa.audio.train import clip_audio_visemes

    names = corpus.param_names
    cols = [names.index(c) for c in (columns or names)]
    clips = []
    for r in corpus.records(split=split, kind="speech"):
        audio, _ = clip_audio_visemes(corpus, r)
        g, d, e = conditions_from_record(r)
        clips.append(MotionClip(corpus.params(r["id"])[:, cols], np.asarray(audio_fn(audio)), g, d, e, r["id"]))
    if not clips:
        raise VasaError(f"no speech clips in split {split!r} of {corpus.root}")
    return clips


def motion_stats(clips: list[MotionClip]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the motion over every frame (``D`` each; std floored at 1e-4)."""
    x = np.concatenate([c.motion for c in clips]).astype(np.float64)
    return x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-4).astype(np.float32)


class MotionWindows(Dataset):
    """Consecutive-window training items over :class:`MotionClip` s (see the module docstring)."""

    def __init__(self, clips: list[MotionClip], window: int, past: int, stride: int,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None, emotion_dim: int = EMOTION_DIM):
        if not clips:
            raise VasaError("no motion clips to train on")
        dims = {(c.motion.shape[1], c.audio.shape[1]) for c in clips}
        if len(dims) != 1:
            raise VasaError(f"clips disagree on motion/audio dims {sorted(dims)}: "
                            "use one motion space and one audio feature for all clips")
        (self.motion_dim, self.audio_dim), = dims
        self.clips, self.window, self.past, self.emotion_dim = clips, window, past, emotion_dim
        if mean is None or std is None:
            mean, std = motion_stats(clips)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.items = [(ci, s) for ci, c in enumerate(clips)
                      for s in range(0, max(1, len(c.motion) - window + stride), stride)]

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def _slice(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """``a[lo:hi]`` zero-padded to ``hi - lo`` rows (``lo`` may be negative)."""
        out = np.zeros((hi - lo, a.shape[1]), np.float32)
        src = a[max(lo, 0):max(min(hi, len(a)), 0)]
        start = max(0, -lo)
        out[start:start + len(src)] = src
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ci, s = self.items[i]
        c = self.clips[ci]
        w, k = self.window, self.past
        x = (c.motion - self.mean) / self.std  # T x D
        n_valid = min(w, len(x) - s)
        mask = np.zeros(w, bool)
        mask[:n_valid] = True
        motion = self._slice(x, s, s + w) * mask[:, None]

        def label(v: np.ndarray | None, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
            if v is None:
                return torch.zeros(dim), torch.tensor(False)
            return torch.as_tensor(v, dtype=torch.float32), torch.tensor(True)

        gaze, has_gaze = label(c.gaze, 2)
        dist, has_dist = label(c.distance, 1)
        emo, has_emo = label(c.emotion, self.emotion_dim)
        return {
            "motion": torch.from_numpy(motion),  # W x D (normalised)
            "audio": torch.from_numpy(self._slice(c.audio, s, s + w)),  # W x F
            "mask": torch.from_numpy(mask),  # W
            "x_pre": torch.from_numpy(self._slice(x, s - k, s)),  # K x D (normalised)
            "a_pre": torch.from_numpy(self._slice(c.audio, s - k, s)),  # K x F
            "has_past": torch.tensor(s >= k and k > 0),
            "gaze": gaze, "has_gaze": has_gaze, "distance": dist, "has_distance": has_dist,
            "emotion": emo, "has_emotion": has_emo,
        }
