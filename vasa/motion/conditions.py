"""The conditions ``C = [X_pre, A_pre; A, g, d, e]`` of the motion DiT, with per-sample drop masks.

Every condition can be *dropped* per sample (classifier-free guidance, condition dropout in training)
or be *missing* (``None``: a clip without that label); the model then uses the condition's learned
null token. Names (``CONDITIONS``): ``audio`` (A), ``gaze`` (g), ``distance`` (d), ``emotion`` (e),
``past`` (X_pre and A_pre together), ``ref`` (x_ref: the motion code of the portrait being animated).

``ref`` is our addition to the paper's conditions: when the motion latents are not fully
identity-free (a per-person offset in ``z_dyn``, a per-shot head pose), ``x_ref`` tells the model the
person's own offset, so it generates the dynamics around it instead of a random offset per seed or
per window. In training it is the motion of a frame of the same clip; at inference the portrait's
encoded ``[z_pose, z_dyn]``; dropped like any condition (the paper's setting).

Encodings (:func:`encode_gaze`, :func:`encode_distance`, :func:`encode_emotion`):

* g = (theta, phi): the clip's main gaze yaw and pitch, in radians.
* d = log(distance): 0 at the nominal head distance (``vasa.synth.params.NOMINAL_DISTANCE``).
* e = one-hot over ``vasa.synth.params.EMOTIONS`` times the intensity, plus the intensity
  (6 numbers; "neutral" at intensity 0 is ``[0, 0, 0, 0, 0, 0]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vasa.errors import VasaError
from vasa.motion.config import CONDITIONS
from vasa.synth.params import EMOTIONS

EMOTION_DIM = len(EMOTIONS) + 1


def encode_gaze(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """g: main gaze (theta, phi) in degrees -> radians, ``(2,)`` float32."""
    return np.array([math.radians(yaw_deg), math.radians(pitch_deg)], np.float32)


def encode_distance(distance: float) -> np.ndarray:
    """d: normalised head distance (1.0 = nominal) -> ``log(d)``, ``(1,)`` float32."""
    if distance <= 0:
        raise VasaError(f"head distance must be > 0 (1.0 = nominal), got {distance}")
    return np.array([math.log(distance)], np.float32)


def encode_emotion(emotion: str, intensity: float = 1.0) -> np.ndarray:
    """e: one-hot(emotion) * intensity + [intensity], ``(6,)`` float32."""
    if emotion not in EMOTIONS:
        raise VasaError(f"unknown emotion {emotion!r} (allowed: {', '.join(EMOTIONS)})")
    e = np.zeros(EMOTION_DIM, np.float32)
    e[EMOTIONS.index(emotion)] = intensity
    e[-1] = intensity
    return e


@dataclass
class MotionConditions:
    """A batch of conditions for one window (tensors on the model's device).

    ``keep[name]`` (``B`` bool) says per sample whether the condition is used; a missing tensor
    (``None``) is dropped for every sample. ``audio_mask`` marks real audio frames (a truncated tail,
    or the padding after the end of a clip, is ``False`` and gets the null audio token).
    """

    audio: torch.Tensor  # A: B x W x F
    audio_mask: torch.Tensor | None = None  # B x W bool (True = real audio)
    gaze: torch.Tensor | None = None  # g: B x 2
    distance: torch.Tensor | None = None  # d: B x 1
    emotion: torch.Tensor | None = None  # e: B x E
    x_pre: torch.Tensor | None = None  # X_pre: B x K x D (normalised motion)
    a_pre: torch.Tensor | None = None  # A_pre: B x K x F
    ref: torch.Tensor | None = None  # x_ref: B x D (normalised motion of the portrait / a frame of the clip)
    keep: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> B bool

    @property
    def batch(self) -> int:
        return self.audio.shape[0]

    def tensor(self, name: str) -> torch.Tensor | None:
        """The condition's data (``past``: X_pre)."""
        return self.x_pre if name == "past" else getattr(self, name)

    def kept(self, name: str) -> torch.Tensor:
        """``B`` bool: where condition ``name`` is present and not dropped."""
        if name not in CONDITIONS:
            raise VasaError(f"unknown condition {name!r} (allowed: {', '.join(CONDITIONS)})")
        dev = self.audio.device
        if self.tensor(name) is None or (name == "past" and self.a_pre is None):
            return torch.zeros(self.batch, dtype=torch.bool, device=dev)
        k = self.keep.get(name)
        return torch.ones(self.batch, dtype=torch.bool, device=dev) if k is None else k.to(dev)

    def frame_mask(self) -> torch.Tensor:
        """``B x W`` bool: frames with real, kept audio."""
        m = self.audio_mask if self.audio_mask is not None else torch.ones(
            self.audio.shape[:2], dtype=torch.bool, device=self.audio.device)
        return m & self.kept("audio")[:, None]

    def dropped(self, *names: str) -> "MotionConditions":
        """A copy with ``names`` dropped for every sample (the ``C | c = null`` of CFG)."""
        keep = dict(self.keep)
        for n in names:
            keep[n] = torch.zeros_like(self.kept(n))
        return replace(self, keep=keep)

    def with_drop(self, masks: dict[str, torch.Tensor]) -> "MotionConditions":
        """A copy where ``masks[name]`` (``B`` bool, True = drop) is also dropped."""
        keep = dict(self.keep)
        for n, m in masks.items():
            keep[n] = self.kept(n) & ~m.to(self.audio.device)
        return replace(self, keep=keep)

    def resolved(self) -> "MotionConditions":
        """Every condition with an explicit keep mask and zero tensors where missing (so batches concat)."""
        keep = {n: self.kept(n) for n in CONDITIONS}
        mask = self.audio_mask if self.audio_mask is not None else torch.ones(
            self.audio.shape[:2], dtype=torch.bool, device=self.audio.device)
        return MotionConditions(
            audio=self.audio, audio_mask=mask,
            gaze=self.gaze, distance=self.distance, emotion=self.emotion,
            x_pre=self.x_pre, a_pre=self.a_pre, ref=self.ref, keep=keep)

    @staticmethod
    def cat(items: list["MotionConditions"]) -> "MotionConditions":
        """Concatenate along the batch (CFG runs every guided variant in one forward pass).

        Conditions missing in some items are filled with zeros there (their keep mask is False).
        """
        items = [c.resolved() for c in items]
        first = items[0]

        def join(name: str) -> torch.Tensor | None:
            ts = [getattr(c, name) for c in items]
            ref = next((t for t in ts if t is not None), None)
            if ref is None:
                return None
            return torch.cat([t if t is not None else ref.new_zeros((c.batch, *ref.shape[1:]))
                              for t, c in zip(ts, items)])

        return MotionConditions(
            audio=torch.cat([c.audio for c in items]), audio_mask=torch.cat([c.audio_mask for c in items]),
            gaze=join("gaze"), distance=join("distance"), emotion=join("emotion"),
            x_pre=join("x_pre"), a_pre=join("a_pre"), ref=join("ref"),
            keep={n: torch.cat([c.keep[n] for c in items]) for n in first.keep})
