"""Streaming audio front-end + encoder: audio chunks (e.g. 40-200 ms) in, ``A`` frames out.

Two stages, each exact w.r.t. the offline computation (up to float rounding of differently shaped
matmuls, ~1e-6):

* :class:`LogMelStream` keeps the unconsumed samples and emits feature frame ``t`` as soon as the
  stream holds ``640 (t + 1) + 120`` samples (the frame's last STFT window); :meth:`flush` zero-pads
  the tail exactly like :func:`vasa.audio.features.log_mel_frames`.
* :class:`AudioEncoderStream` emits encoder frame ``t`` once feature frame ``t + L`` exists. Each step
  recomputes the encoder on the last ``receptive_past`` frames plus the new ones: the encoder has no
  absolute positions and a bounded receptive field, so that window yields the offline values.

Latency: ``L`` frames (40 ms each) plus 7.5 ms of STFT reach plus the chunk size.

>>> stream = AudioEncoderStream(encoder)
>>> for chunk in mic_chunks:               # float32 16 kHz, any length
...     A = stream.push(chunk)             # n x width (n may be 0)
>>> A_tail = stream.flush()                # the last frames; the concatenation equals encoder(offline)
"""

from __future__ import annotations

import numpy as np
import torch

from vasa.audio.config import AudioConfig
from vasa.audio.encoder import AudioEncoder
from vasa.audio.features import frames_from_padded


class LogMelStream:
    """Incremental :func:`~vasa.audio.features.log_mel_frames`: ``push`` samples, get ``n x F`` frames."""

    def __init__(self, cfg: AudioConfig):
        self.cfg = cfg
        self._buf = np.zeros(cfg.stft_reach, np.float32)  # starts stft_reach before the next frame
        self._samples = 0  # samples pushed so far
        self._frames = 0  # frames emitted so far

    def _emit(self, k: int) -> torch.Tensor:
        c = self.cfg
        if k <= 0:
            return torch.zeros(0, c.feature_dim)
        x = torch.from_numpy(self._buf[None])  # 1 x S'
        out = frames_from_padded(x, k, c)[0]  # k x F
        self._buf = self._buf[k * c.samples_per_frame:]
        self._frames += k
        return out

    def push(self, chunk: np.ndarray) -> torch.Tensor:
        """Append ``chunk`` (float32 samples); returns the feature frames that became complete."""
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, chunk])
        self._samples += len(chunk)
        c = self.cfg
        k = (len(self._buf) - 2 * c.stft_reach) // c.samples_per_frame
        return self._emit(max(0, k))

    def flush(self) -> torch.Tensor:
        """The remaining frames (zero-padded tail); the stream is then reset."""
        c = self.cfg
        total = -(-self._samples // c.samples_per_frame)  # ceil
        k = total - self._frames
        need = k * c.samples_per_frame + 2 * c.stft_reach
        self._buf = np.concatenate([self._buf, np.zeros(max(0, need - len(self._buf)), np.float32)])
        out = self._emit(k)
        self.__init__(c)
        return out


class AudioEncoderStream:
    """Audio samples in, encoder features ``A`` (``n x width``) out, with ``L`` frames of look-ahead."""

    def __init__(self, encoder: AudioEncoder):
        self.encoder = encoder
        self.cfg = encoder.cfg
        self.mel = LogMelStream(self.cfg)
        self._feats = torch.zeros(0, self.cfg.feature_dim)  # kept feature frames (T' x F)
        self._first = 0  # absolute index of self._feats[0]
        self._emitted = 0  # encoder frames emitted

    @torch.no_grad()
    def _run(self, upto: int) -> torch.Tensor:
        """Encoder frames ``emitted .. upto - 1`` from the kept features (which end where the data ends)."""
        if upto <= self._emitted:
            return torch.zeros(0, self.cfg.width)
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            a = self.encoder.encode(self._feats[None])[0]  # T' x C
        finally:
            self.encoder.train(was_training)
        out = a[self._emitted - self._first: upto - self._first]
        self._emitted = upto
        keep_from = max(self._first, self._emitted - self.cfg.receptive_past)  # history the next step needs
        self._feats = self._feats[keep_from - self._first:]
        self._first = keep_from
        return out

    def push(self, chunk: np.ndarray) -> torch.Tensor:
        """Append audio samples; returns the ``A`` frames that became final (``n x width``)."""
        self._feats = torch.cat([self._feats, self.mel.push(chunk)])
        have = self._first + len(self._feats)  # feature frames known so far
        return self._run(have - self.cfg.lookahead)

    def flush(self) -> torch.Tensor:
        """The remaining ``A`` frames (the clip's end is zero-padded as offline); resets the stream."""
        self._feats = torch.cat([self._feats, self.mel.flush()])
        out = self._run(self._first + len(self._feats))
        self.__init__(self.encoder)
        return out
