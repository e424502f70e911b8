"""Lip sync scores S_C / S_D (LSE-C / LSE-D) with the SyncNet protocol, for any sync model.

The protocol (Chung & Zisserman 2016, ``syncnet_python``'s ``SyncNetInstance.evaluate``; VASA-1's
S_C / S_D), done exactly:

1. 25 fps video, 16 kHz audio (anything else is refused: resample first), faces cropped first;
2. a lip embedding ``v_i`` for every window of 5 consecutive frames ``i .. i+4`` and an audio
   embedding ``a_j`` for the matching 0.2 s of audio (the same 5 frame slots, ``j`` = window start);
3. for every video window and every audio offset ``s`` in ``-vshift .. +vshift`` (15), the
   Euclidean distance ``d_i(s) = |v_i - a_{i+s}|``; the mean over windows gives ``mdist[s]``;
4. ``S_D = min(mdist)``, ``S_C = median(mdist) - min(mdist)``, ``offset = vshift - argmin`` (the
   official sign: ``offset > 0`` means the audio *leads* the video by that many frames, so audio
   delayed by ``k`` frames scores ``offset = -k``).

Edges: the official code zero-pads the audio *embeddings* beyond the clip (``edge="zeros"``: every
offset averages over all windows, an out-of-range window contributing ``|v_i|``); our own expert
uses ``edge="valid"`` (each offset averages over the windows whose shifted audio exists), which
avoids that bias on short clips. A model declares its ``edge``. Scores of different experts are on
different scales: only the official weights give numbers comparable with published LSE-C / LSE-D.

A sync model implements ``lip_embeddings(frames, boxes) -> N x D`` (``N = T - 4`` windows, frames
cropped by the model from the per-frame face ``boxes``) and ``audio_embeddings(audio, n_frames) ->
N x D``; see :class:`vasa.eval.sync_expert.ExpertSync` (ours) and
:class:`vasa.eval.syncnet_official.OfficialSync` (the published weights, when a user has them).

>>> score = sync_score(model, frames, audio, fps=25, boxes=boxes)
>>> score.confidence, score.distance, score.offset      # S_C, S_D, AV offset (frames)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vasa.errors import VasaError

FPS = 25
SAMPLE_RATE = 16000
WINDOW = 5  # frames per lip window (0.2 s)
VSHIFT = 15  # offsets -15 .. +15 frames
EPS = 1e-6  # torch.nn.functional.pairwise_distance's eps, as in the official code


class SyncModel(Protocol):
    """What :func:`sync_score` needs from a sync model (see the module docstring)."""

    edge: str  # "valid" | "zeros"

    def lip_embeddings(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...

    def audio_embeddings(self, audio: np.ndarray, n_frames: int) -> np.ndarray: ...


@dataclass
class SyncScore:
    offset: int  # vshift - argmin(mdist): > 0 = the audio leads the video
    confidence: float  # S_C = median(mdist) - min(mdist)
    distance: float  # S_D = min(mdist)
    mdist: np.ndarray  # (2 vshift + 1,) mean distance per audio offset s = -vshift .. +vshift

    def to_dict(self) -> dict:
        return dict(offset=int(self.offset), confidence=float(self.confidence), distance=float(self.distance),
                    mdist=[float(x) for x in self.mdist])


def check_rates(fps: float, sr: int) -> None:
    """Refuse anything but 25 fps video and 16 kHz audio (the protocol's rates)."""
    if abs(float(fps) - FPS) > 1e-3:
        raise VasaError(f"sync scoring needs {FPS} fps video, got {fps:g} fps: resample the video to {FPS} fps first")
    if int(sr) != SAMPLE_RATE:
        raise VasaError(f"sync scoring needs {SAMPLE_RATE} Hz audio, got {sr} Hz: resample the audio first")


def fit_audio(audio: np.ndarray, n_frames: int, fps: float = FPS, sr: int = SAMPLE_RATE,
              tolerance_frames: int = 2) -> np.ndarray:
    """Mono float32 audio trimmed / zero-padded to exactly ``n_frames`` video frames; refuses a
    length mismatch of more than ``tolerance_frames`` frames (the wrong audio for this video)."""
    a = np.asarray(audio, np.float32).reshape(-1)
    spf = sr / fps
    n = int(round(n_frames * spf))
    diff = abs(len(a) - n) / spf
    if diff > tolerance_frames + 1:
        raise VasaError(f"audio ({len(a) / sr:.2f} s) and video ({n_frames / fps:.2f} s) lengths differ by "
                        f"{diff:.0f} frames: pass the audio of this video")
    return np.pad(a, (0, max(0, n - len(a))))[:n]


def offset_distances(v: np.ndarray, a: np.ndarray, vshift: int = VSHIFT, edge: str = "valid") -> np.ndarray:
    """Mean distance per audio offset: ``v``, ``a``: N x D window embeddings -> (2 vshift + 1,).

    Entry ``k`` is the offset ``s = k - vshift``: video window ``i`` against audio window ``i + s``.
    """
    v, a = np.asarray(v, np.float64), np.asarray(a, np.float64)
    if v.shape != a.shape or v.ndim != 2:
        raise VasaError(f"lip and audio embeddings must both be N x D, got {v.shape} and {a.shape}")
    if edge not in ("valid", "zeros"):
        raise VasaError(f"edge must be 'valid' or 'zeros', got {edge!r}")
    n = len(v)
    out = np.full(2 * vshift + 1, np.nan)
    for k in range(2 * vshift + 1):
        s = k - vshift
        lo, hi = max(0, -s), min(n, n - s)  # windows i whose audio i + s exists
        d = np.linalg.norm(v[lo:hi] - a[lo + s:hi + s] + EPS, axis=1) if hi > lo else np.zeros(0)
        if edge == "zeros":  # out-of-range audio embeddings are zero vectors
            pad = np.linalg.norm(np.concatenate([v[:lo], v[hi:]]) + EPS, axis=1)
            out[k] = np.concatenate([d, pad]).mean() if n else np.nan
        elif len(d):
            out[k] = d.mean()
    return out


def score_from_distances(mdist: np.ndarray, vshift: int = VSHIFT) -> SyncScore:
    """S_C, S_D and the offset from ``mdist`` (NaN entries -- no overlapping windows -- are ignored)."""
    m = np.asarray(mdist, np.float64)
    ok = np.isfinite(m)
    if not ok.any():
        return SyncScore(0, float("nan"), float("nan"), m)
    k = int(np.nanargmin(m))
    return SyncScore(vshift - k, float(np.nanmedian(m) - m[k]), float(m[k]), m)


def sync_score(model: SyncModel, frames: np.ndarray, audio: np.ndarray, fps: float = FPS,
               sr: int = SAMPLE_RATE, boxes: np.ndarray | None = None, vshift: int = VSHIFT) -> SyncScore:
    """The SyncNet protocol on one video: T x H x W x 3 uint8 frames + mono audio -> :class:`SyncScore`.

    ``boxes`` (T x 4 face boxes in pixels, e.g. from :func:`vasa.eval.crops.fill_boxes`); None: the
    frames are taken as face crops already.
    """
    check_rates(fps, sr)
    frames = np.asarray(frames)
    t = len(frames)
    if t < WINDOW + 1:
        raise VasaError(f"sync scoring needs at least {WINDOW + 1} frames, got {t}")
    a = fit_audio(audio, t, fps, sr)
    if boxes is None:
        h, w = frames.shape[1:3]
        boxes = np.tile(np.array([0.0, 0.0, w, h]), (t, 1))
    v_emb = model.lip_embeddings(frames, boxes)
    a_emb = model.audio_embeddings(a, t)
    return score_from_distances(offset_distances(v_emb, a_emb, vshift, model.edge), vshift)


def shift_audio(audio: np.ndarray, frames: int, fps: float = FPS, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Audio delayed by ``frames`` video frames (negative: advanced), same length, zero-filled."""
    n = int(round(frames * sr / fps))
    a = np.asarray(audio, np.float32)
    if n >= 0:
        return np.concatenate([np.zeros(min(n, len(a)), np.float32), a[:max(0, len(a) - n)]])
    return np.concatenate([a[-n:], np.zeros(min(-n, len(a)), np.float32)])
