"""Frame-aligned log-mel features: 16 kHz audio of any length -> ``T x (stack * n_mels)`` at 25 fps.

A torch STFT (hann window, ``n_fft`` 400, hop 160) with a mel filterbank from ``librosa.filters.mel``
(computed once per setting and cached; no numba JIT on this path), log-magnitude, and 4 consecutive
100 Hz mel frames stacked into one 25 fps frame.

Alignment: mel frame ``j`` is centred at sample ``(j + 0.5) * hop``; video frame ``t`` stacks mel
frames ``4t .. 4t + 3`` (centres 5, 15, 25, 35 ms into the frame), so it reads samples
``[640 t - 120, 640 (t + 1) + 120)`` (zeros outside the clip). A clip of ``S`` samples has
``ceil(S / 640)`` frames, the frame count of a corpus clip.

>>> feats = log_mel_frames(torch.from_numpy(audio), cfg)   # T x 320, or B x T x 320 for B x S input
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from vasa.audio.config import AudioConfig
from vasa.errors import VasaError

LOG_FLOOR = 1e-5  # magnitude floor before the log (about -100 dBFS)


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa.filters

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


def mel_filterbank(cfg: AudioConfig) -> torch.Tensor:
    """``n_mels x (n_fft // 2 + 1)`` Slaney mel filterbank (cached per setting)."""
    if cfg.fmax > cfg.sample_rate / 2:
        raise VasaError(f"audio: fmax {cfg.fmax} is above the Nyquist frequency {cfg.sample_rate / 2}")
    return torch.from_numpy(_mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax))


def num_frames(n_samples: int, cfg: AudioConfig) -> int:
    """25 fps frames of a clip of ``n_samples`` samples: ``ceil(n_samples / 640)``."""
    return math.ceil(n_samples / cfg.samples_per_frame)


def frames_from_padded(x: torch.Tensor, n: int, cfg: AudioConfig) -> torch.Tensor:
    """Stacked log-mel of ``n`` frames from samples that start ``stft_reach`` before the first frame.

    ``x``: ``B x S'`` with ``S' >= (stack * n - 1) * hop + n_fft``. Returns ``B x n x (stack * n_mels)``.
    This is the one computation behind offline and streaming features.
    """
    need = (cfg.stack * n - 1) * cfg.hop + cfg.n_fft
    frames = x[:, :need].unfold(-1, cfg.n_fft, cfg.hop)  # B x (stack n) x n_fft
    window = torch.hann_window(cfg.n_fft, dtype=x.dtype, device=x.device)
    mag = torch.fft.rfft(frames * window, dim=-1).abs()  # B x (stack n) x (n_fft/2 + 1)
    mel = mag @ mel_filterbank(cfg).to(x.device, x.dtype).T  # B x (stack n) x n_mels
    logmel = torch.log(mel.clamp_min(LOG_FLOOR))
    return logmel.reshape(x.shape[0], n, cfg.stack * cfg.n_mels)  # B x n x (stack n_mels)


def log_mel_frames(audio: torch.Tensor | np.ndarray, cfg: AudioConfig) -> torch.Tensor:
    """Offline features of a whole clip: ``(S,)`` -> ``T x F`` or ``B x S`` -> ``B x T x F``.

    ``T = ceil(S / 640)``, ``F = stack * n_mels``; float32 audio in [-1, 1] at ``cfg.sample_rate``.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim not in (1, 2):
        raise VasaError(f"audio must be (samples,) or (batch, samples), got shape {tuple(x.shape)}")
    single = x.ndim == 1
    x = x[None] if single else x  # B x S
    n = num_frames(x.shape[-1], cfg)
    if n == 0:
        out = x.new_zeros(x.shape[0], 0, cfg.feature_dim)
    else:
        right = (cfg.stack * n - 1) * cfg.hop + cfg.n_fft - cfg.stft_reach - x.shape[-1]
        xp = torch.nn.functional.pad(x, (cfg.stft_reach, right))
        out = frames_from_padded(xp, n, cfg)
    return out[0] if single else out
