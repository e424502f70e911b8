"""Training windows for the motion DiT from generic per-clip arrays.

A clip is a :class:`MotionClip`: motion ``X`` (``T x D``: exported ``[z_pose, z_dyn]`` latents, or the
corpus's ground-truth face parameters as a stand-in motion space), frame-aligned audio features ``A``
(``T x F``) and per-clip labels ``g``, ``d``, ``e`` (``None`` = missing: the condition is dropped).

:class:`MotionWindows` yields *pairs of consecutive windows*: a window of ``W`` frames starting at
``s`` plus the ground truth of the ``K`` frames before it (``X_pre``, ``A_pre``: the end of the
previous window), so the model learns to continue its own past, and a reference frame ``x_ref`` (the
motion of one frame of the same clip, chosen from the item index: the stand-in for the portrait's
motion at inference). Windows start every ``stride``
frames; the last one may run past the clip's end (``mask`` False there, zero padding). Windows with
``s < K`` have no past (``has_past`` False). Motion is normalised with the dataset statistics.
Random condition dropout and audio-tail truncation happen in the task (:mod:`vasa.motion.task`),
from the training loop's RNG, so items depend only on their index.

>>> clips = corpus_motion_clips(Corpus("data/corpus"), "train", audio_fn=lambda a: log_mel_frames(a, cfg).numpy())
>>> data = MotionWindows(clips, window=50, past=10, stride=25)

The stage's motion comes from the export (``data/motion``): :func:`load_motion_space` describes it
(layout, normalisation from ``norm.npz``) and :func:`latent_motion_clips` reads ``X = [z_pose, z_dyn]``
per clip; :func:`audio_features` computes the trained audio encoder's ``A`` once per clip and caches it.

>>> space = load_motion_space("latent", motion="data/motion", corpus=corpus)
>>> feats = audio_features(corpus, corpus.records(split="train", kind="speech"), "models/audio", "runs/motion/features")
>>> clips = latent_motion_clips(corpus, space, "train", feats)
>>> item = data[0]    # motion W x D, audio W x F, mask W, x_pre K x D, a_pre K x F, has_past, gaze, ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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

    def ref_frame(self, i: int) -> int:
        """The frame of item ``i``'s clip used as its reference motion (a function of ``i`` only)."""
        ci, s = self.items[i]
        return int(np.random.default_rng([ci, s, 7]).integers(len(self.clips[ci].motion)))

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
            "ref": torch.from_numpy(x[self.ref_frame(i)].astype(np.float32)),  # D (normalised)
            "gaze": gaze, "has_gaze": has_gaze, "distance": dist, "has_distance": has_dist,
            "emotion": emo, "has_emotion": has_emo,
        }


# ----------------------------------------------------------------------------- the stage's motion space
PARAM_POSE = ("yaw", "pitch", "roll", "tx", "ty", "tz", "scale")  # corpus parameters treated as head pose


@dataclass
class MotionSpace:
    """What ``X`` is: ``[pose (pose_dim), dyn (dyn_dim)]`` per frame, from ``source``.

    * ``"latent"``: ``[z_pose, z_dyn]`` exported by ``export_motion`` (``pose_layout`` e.g. yaw, pitch,
      roll in radians, tx, ty, log_scale; ``rot_repr`` "euler" or "6d").
    * ``"params"``: the corpus's ground-truth face parameters (an ablation): pose = ``PARAM_POSE``
      (angles in degrees), dyn = the other parameters (mouth, brows, eyes, blinks, gaze).

    ``mean`` / ``std`` (``D`` each) normalise ``X`` (``norm.npz`` of the export, or the train split's
    statistics for ``params``); :meth:`norm_arrays` gives them with the keys of ``norm.npz``.
    """

    source: str
    names: tuple[str, ...]
    pose_dim: int
    dyn_dim: int
    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)
    rot_repr: str | None = None
    fingerprint: str = ""  # the latent model that encoded the export ("" for params)
    root: str = ""  # data/motion (latent) or the corpus (params)

    @property
    def dim(self) -> int:
        return self.pose_dim + self.dyn_dim

    @property
    def pose_layout(self) -> tuple[str, ...]:
        return self.names[:self.pose_dim]

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``... x D`` -> (pose ``... x pose_dim``, dyn ``... x dyn_dim``)."""
        return x[..., :self.pose_dim], x[..., self.pose_dim:]

    def pose_degrees(self, x: np.ndarray) -> np.ndarray:
        """Head yaw, pitch, roll in degrees (``T x 3``) from motion ``T x D`` (un-normalised)."""
        pose = np.asarray(x[..., :self.pose_dim], np.float32)
        if self.source == "params":
            return pose[..., :3].astype(np.float64)
        import torch

        from vasa.latent.pose import pose_to_degrees

        flat = torch.from_numpy(pose.reshape(-1, self.pose_dim))
        return pose_to_degrees(flat, self.rot_repr).numpy().reshape(*pose.shape[:-1], 3).astype(np.float64)

    def norm_arrays(self) -> dict[str, np.ndarray]:
        """``pose_mean``, ``pose_std``, ``dyn_mean``, ``dyn_std`` (the keys of ``data/motion/norm.npz``)."""
        p = self.pose_dim
        return dict(pose_mean=self.mean[:p], pose_std=self.std[:p], dyn_mean=self.mean[p:], dyn_std=self.std[p:])

    def to_dict(self) -> dict[str, Any]:
        """JSON description (recorded in the motion model's config)."""
        return dict(source=self.source, pose_dim=self.pose_dim, dyn_dim=self.dyn_dim, rot_repr=self.rot_repr,
                    pose_layout=list(self.pose_layout), latent_fingerprint=self.fingerprint)

    def clip_motion(self, corpus: Corpus, clip_id: str) -> np.ndarray:
        """``X`` of one clip (``T x D`` float32, un-normalised)."""
        if self.source == "params":
            names = corpus.param_names
            return corpus.params(clip_id)[:, [names.index(n) for n in self.names]].astype(np.float32)
        from vasa.latent.export import load_motion

        zp, zd = load_motion(self.root, clip_id)
        return np.concatenate([zp, zd], 1).astype(np.float32)


def load_motion_space(source: str, motion: str | Path = "data/motion", corpus: Corpus | None = None,
                      norm_split: str = "train") -> MotionSpace:
    """The motion space of the stage: ``"latent"`` reads ``motion/meta.json`` + ``norm.npz``;
    ``"params"`` uses the corpus parameters with statistics over ``norm_split``'s speech clips."""
    if source == "latent":
        from vasa.latent.export import load_norm
        from vasa.latent.pose import POSE_LAYOUTS

        norm = load_norm(motion)  # raises when the export is incomplete
        meta = json.loads((Path(motion) / "meta.json").read_text())
        layout = tuple(meta["pose_layout"])
        rot = next((k for k, v in POSE_LAYOUTS.items() if tuple(v) == layout), None)
        if rot is None:
            raise VasaError(f"{motion}/meta.json has an unknown pose layout {list(layout)}")
        names = layout + tuple(f"dyn{i}" for i in range(meta["dyn_dim"]))
        mean = np.concatenate([norm["pose_mean"], norm["dyn_mean"]]).astype(np.float32)
        std = np.concatenate([norm["pose_std"], norm["dyn_std"]]).astype(np.float32)
        return MotionSpace("latent", names, meta["pose_dim"], meta["dyn_dim"], mean, np.maximum(std, 1e-6), rot,
                           meta.get("fingerprint", ""), str(motion))
    if source != "params":
        raise VasaError(f"unknown motion source {source!r} (allowed: latent, params)")
    if corpus is None:
        raise VasaError("motion source 'params' needs the corpus")
    names = tuple(PARAM_POSE) + tuple(n for n in corpus.param_names if n not in PARAM_POSE)
    missing = [n for n in PARAM_POSE if n not in corpus.param_names]
    if missing:
        raise VasaError(f"corpus {corpus.root} has no parameters {missing}: use motion_source=latent")
    recs = corpus.records(split=norm_split, kind="speech")
    if not recs:
        raise VasaError(f"no speech clips in split {norm_split!r} of {corpus.root} for the normalisation")
    cols = [corpus.param_names.index(n) for n in names]
    x = np.concatenate([corpus.params(r["id"])[:, cols] for r in recs]).astype(np.float64)
    return MotionSpace("params", names, len(PARAM_POSE), len(names) - len(PARAM_POSE), x.mean(0).astype(np.float32),
                       np.maximum(x.std(0), 1e-4).astype(np.float32), None, "", str(corpus.root))


def audio_features(corpus: Corpus, records: list[dict], audio_model: str | Path, cache_dir: str | Path,
                   progress: bool = False) -> dict[str, np.ndarray]:
    """The trained audio encoder's ``A`` (``T x F`` float32, offline) of every clip in ``records``.

    Computed once per clip and cached as ``cache_dir/<encoder fingerprint>/<clip id>.npy`` (another
    encoder gets another folder; older folders are removed).
    """
    import shutil

    import torch
    from tqdm.auto import tqdm

    from vasa.audio.train import audio_fingerprint, clip_audio_visemes, load_audio_encoder
    from vasa.io.atomic import atomic_path

    fp = audio_fingerprint(audio_model)
    root = Path(cache_dir)
    folder = root / fp
    if root.is_dir():
        for old in root.iterdir():
            if old.is_dir() and old.name != fp:
                shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    enc = None
    out: dict[str, np.ndarray] = {}
    for r in tqdm(records, desc="audio features", disable=not progress, dynamic_ncols=True):
        path = folder / f"{r['id']}.npy"
        if path.is_file():
            try:
                out[r["id"]] = np.load(path)
                continue
            except (OSError, ValueError):
                pass
        if enc is None:
            enc, _ = load_audio_encoder(audio_model)
        audio, _ = clip_audio_visemes(corpus, r)
        with torch.no_grad():
            a = enc.encode_audio(audio).numpy().astype(np.float32)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, a)
        out[r["id"]] = a
    return out


def latent_motion_clips(corpus: Corpus, space: MotionSpace, split: str, features: dict[str, np.ndarray],
                        records: list[dict] | None = None) -> list[MotionClip]:
    """:class:`MotionClip` s of ``split``'s speech clips: ``X`` from ``space`` (the export, or the
    parameters), ``A`` from ``features`` (clip id -> ``T x F``), ``g, d, e`` from the record's
    ``conditions`` (a missing label is a dropped condition)."""
    recs = corpus.records(split=split, kind="speech") if records is None else records
    clips = []
    for r in recs:
        g, d, e = conditions_from_record(r)
        clips.append(MotionClip(space.clip_motion(corpus, r["id"]), features[r["id"]], g, d, e, r["id"]))
    if not clips:
        raise VasaError(f"no speech clips in split {split!r} of {corpus.root}")
    return clips
