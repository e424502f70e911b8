"""Audio samples -> motion latents, one motion window at a time (offline and streaming share it).

Generation runs in the motion model's windows of ``W`` frames (``W / 25`` s). For window ``n``
(frames ``nW .. nW + W - 1``), :class:`AudioWindows` computes the frame-aligned audio features
``A`` from the samples alone, always with the same tensor shapes:

* log-mel of feature frames ``a0 .. b - 1`` with ``a0 = max(0, nW - R)`` (``R`` = the encoder's
  receptive past) and ``b = nW + W + L`` (``L`` = its look-ahead), cut from samples
  ``640 a0 - 120 .. 640 b + 120`` (zeros before the clip's start and after its end, exactly as
  :func:`vasa.audio.log_mel_frames` pads);
* the encoder on those frames (it has no absolute positions and a bounded receptive field, so
  rows ``nW ..`` equal the offline encoder's up to float rounding); a motion model trained on raw
  log-mel takes the log-mel rows directly (``R = L = 0``).

A window is computed as soon as the samples up to ``640 b + 120`` exist; windows the end of the
audio reaches are computed when the end is known (zero padding). The decision depends only on the
total number of samples, never on how they were chunked, so streaming output equals offline
output **bitwise**, whatever the chunk sizes. Memory is constant: only ``R + W + L`` frames of
samples are kept. Motion for each window comes from :class:`vasa.motion.MotionStream` (per-window
seeds, past context; the portrait's own normalised motion as ``x_ref`` when the model uses it), and
is de-normalised with the bundle's ``norm.npz`` into ``z_pose``, ``z_dyn``.

Latency of the stream: ``W + L`` frames of audio (plus 7.5 ms of STFT reach) before the first
window can be generated. With ``Controls.hop = H < W`` the windows here are ``H`` frames long (the
motion model fills the rest of its ``W`` positions with padding, masked, as it was trained with
truncated windows), so the first window needs ``H + L`` frames: lower latency, ``W / H`` times the
motion cost per frame.
"""

from __future__ import annotations

import inspect
import math
from typing import Iterator

import numpy as np
import torch

from vasa.audio.features import frames_from_padded
from vasa.motion import MotionGenerator
from vasa.talker.inputs import Controls


class AudioWindows:
    """16 kHz samples in (any chunking), ``(index, A)`` per motion window out (see module docstring)."""

    def __init__(self, encoder: torch.nn.Module, mode: str, window: int):
        self.encoder, self.mode, self.W = encoder, mode, window
        cfg = encoder.cfg
        self.cfg = cfg
        self.spf, self.reach = cfg.samples_per_frame, cfg.stft_reach
        self.L = cfg.lookahead if mode == "encoder" else 0
        self.R = cfg.receptive_past if mode == "encoder" else 0
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute sample index of _buf[0]
        self.total = 0  # samples pushed
        self.next = 0  # next window index

    def _need(self, n: int) -> int:
        """Samples window ``n`` needs before it can be computed without knowing the end."""
        return self.spf * ((n + 1) * self.W + self.L) + self.reach

    def _segment(self, start: int, length: int) -> np.ndarray:
        """Absolute samples ``start .. start + length - 1`` (zeros outside ``0 .. total - 1``)."""
        out = np.zeros(length, np.float32)
        lo, hi = max(start, self._buf_start), min(start + length, self._buf_start + len(self._buf), self.total)
        if hi > lo:
            out[lo - start:hi - start] = self._buf[lo - self._buf_start:hi - self._buf_start]
        return out

    @torch.no_grad()
    def _window(self, n: int, frames_total: int | None) -> torch.Tensor:
        """``A`` of window ``n`` (``m x F``, CPU float32); ``frames_total`` when the end is known."""
        W = self.W
        first = n * W
        last = first + W if frames_total is None else min(first + W, frames_total)
        a0 = max(0, first - self.R)
        b = last + self.L if frames_total is None else min(first + W + self.L, frames_total)
        seg = self._segment(self.spf * a0 - self.reach, self.spf * (b - a0) + 2 * self.reach)
        feats = frames_from_padded(torch.from_numpy(seg)[None], b - a0, self.cfg)  # 1 x (b - a0) x F
        if self.mode == "encoder":
            p = next(self.encoder.parameters())
            feats = self.encoder.encode(feats.to(p.device, p.dtype)).float().cpu()
        return feats[0, first - a0:last - a0]

    def _trim(self) -> None:
        keep = max(0, self.spf * (self.next * self.W - self.R) - self.reach)
        if keep > self._buf_start:
            self._buf = self._buf[keep - self._buf_start:]
            self._buf_start = keep

    def push(self, samples: np.ndarray) -> list[tuple[int, torch.Tensor]]:
        """Append samples; returns the windows that became computable."""
        s = np.asarray(samples, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, s])
        self.total += len(s)
        out = []
        while self.total >= self._need(self.next):
            out.append((self.next, self._window(self.next, None)))
            self.next += 1
            self._trim()
        return out

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """The audio ended: the remaining windows (the last one partial). The object is then reset."""
        frames = math.ceil(self.total / self.spf)
        out = []
        while self.next * self.W < frames:
            out.append((self.next, self._window(self.next, frames)))
            self.next += 1
        self.reset()
        return out


class MotionWindows:
    """Audio-feature windows -> ``(z_pose, z_dyn)`` (de-normalised latents) per window."""

    def __init__(self, model: torch.nn.Module, norm: dict[str, np.ndarray], controls: Controls,
                 ref: tuple[torch.Tensor, torch.Tensor] | None = None):
        c = controls
        guidance = {"audio": c.cfg_audio, "gaze": c.cfg_gaze if c.gaze is not None else 0.0}
        self._mean = torch.from_numpy(np.concatenate([norm["pose_mean"], norm["dyn_mean"]]))
        self._std = torch.from_numpy(np.concatenate([norm["pose_std"], norm["dyn_std"]]))
        extra = {}
        if ref is not None and "ref" in inspect.signature(MotionGenerator).parameters:
            z = torch.cat([ref[0].reshape(-1), ref[1].reshape(-1)]).float().cpu()
            extra["ref"] = z  # x_ref as latents: MotionGenerator normalises it with the model's statistics
        self.gen = MotionGenerator(model, sampler=c.sampler, steps=c.steps, guidance=guidance, seed=c.seed,
                                   gaze=c.gaze, distance=c.distance, emotion=None, hop=c.hop, **extra)
        if c.emotion_vector is not None:
            from vasa.errors import VasaError

            if len(c.emotion_vector) != model.cfg.emotion_dim:
                raise VasaError(f"the model's emotion condition has {model.cfg.emotion_dim} dims, "
                                f"not {len(c.emotion_vector)}")
            p = next(model.parameters())
            self.gen.emotion = torch.as_tensor(c.emotion_vector, device=p.device, dtype=p.dtype)[None]
        self.stream = self.gen.stream()
        self.pose_dim = len(norm["pose_mean"])

    def __call__(self, audio: torch.Tensor, last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stream.push(audio)
        if last or len(x) < len(audio):
            x = torch.cat([x, self.stream.flush()])
        z = x.float() * self._std + self._mean
        return z[:, :self.pose_dim], z[:, self.pose_dim:]


def iter_motion(audio_windows: AudioWindows, motion: MotionWindows, samples: np.ndarray | None,
                finish: bool) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(window index, z_pose, z_dyn)`` for the windows ``samples`` (and, with ``finish``, the end) complete."""
    ready = audio_windows.push(samples) if samples is not None and len(samples) else []
    if finish:
        ready = ready + audio_windows.finish()
    for k, (index, a) in enumerate(ready):
        zp, zd = motion(a, last=finish and k == len(ready) - 1)
        yield index, zp, zd
