"""Configuration of the audio front-end (log-mel) and the audio encoder ``A_enc``, with named sizes.

>>> from vasa.audio.config import audio_config
>>> cfg = audio_config("S")                  # CPU default
>>> cfg = audio_config("tiny", lookahead=0)  # any field can be overridden

Sizes (``AUDIO_SIZES``; parameter counts without the heads, which depend on the phoneme vocabulary):

* ``tiny``  width 32, 1 conv + 1 transformer layer (29K): tests (milliseconds).
* ``S``     width 192, 2 convs + 4 layers, 4 heads (2.1M; receptive field 136 frames of past): the
  CPU default.

Timing: 16 kHz audio, STFT hop 10 ms (100 Hz), 4 hops stacked into one 25 fps frame, so frame ``t``
covers samples ``[640 t, 640 (t + 1))`` like frame ``t`` of a corpus clip (centre ``(t + 0.5) / 25`` s).
The encoder sees at most ``lookahead`` frames ahead: output ``t`` depends on audio up to the end of
frame ``t + lookahead`` plus ``(n_fft - hop) / 2`` samples (the last STFT window's half-width).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vasa.errors import VasaError


@dataclass(frozen=True)
class AudioConfig:
    """Every knob of :mod:`vasa.audio.features` and :class:`vasa.audio.encoder.AudioEncoder`."""

    # --- front-end (features.py)
    sample_rate: int = 16000
    n_fft: int = 400  # 25 ms analysis window
    hop: int = 160  # 10 ms -> 100 Hz mel frames
    n_mels: int = 80
    fmin: float = 20.0
    fmax: float = 7600.0
    stack: int = 4  # mel frames per video frame: 100 Hz / 4 = 25 fps
    # --- encoder (encoder.py)
    width: int = 192
    conv_layers: int = 2  # causal temporal convs after the input projection
    conv_kernel: int = 5
    layers: int = 4  # causal transformer layers
    heads: int = 4
    mlp_ratio: float = 4.0
    attn_context: int = 32  # frames of past each attention layer sees (bounded: streaming memory)
    lookahead: int = 2  # L: frames of future audio the encoder may use (2 = 80 ms)
    dropout: float = 0.1
    # --- heads
    n_phonemes: int = 0  # phoneme classes; 0 = no phoneme head (set from the corpus vocabulary)
    n_visemes: int = 15  # viseme classes (vasa.synth.visemes.VISEMES)

    def __post_init__(self) -> None:
        if self.n_fft < self.hop or (self.n_fft - self.hop) % 2:
            raise VasaError(f"audio: n_fft ({self.n_fft}) must be >= hop ({self.hop}) with an even difference")
        if self.width % self.heads:
            raise VasaError(f"audio: width {self.width} is not divisible by heads {self.heads}")
        for name in ("lookahead", "conv_layers", "layers", "n_phonemes", "n_visemes"):
            if getattr(self, name) < 0:
                raise VasaError(f"audio: {name} must be >= 0, got {getattr(self, name)}")
        if self.conv_kernel < 1 or self.attn_context < 1 or self.stack < 1:
            raise VasaError("audio: conv_kernel, attn_context and stack must be >= 1")

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per 25 fps frame (640 at 16 kHz)."""
        return self.hop * self.stack

    @property
    def fps(self) -> float:
        return self.sample_rate / self.samples_per_frame

    @property
    def feature_dim(self) -> int:
        """Width of one stacked log-mel frame (``stack * n_mels``)."""
        return self.stack * self.n_mels

    @property
    def stft_reach(self) -> int:
        """Samples past the end of a frame that its last STFT window reads (120 by default)."""
        return (self.n_fft - self.hop) // 2

    @property
    def receptive_past(self) -> int:
        """Frames of past the encoder output depends on (conv kernels + attention contexts)."""
        return self.conv_layers * (self.conv_kernel - 1) + self.layers * self.attn_context

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AudioConfig":
        return cls(**d)


AUDIO_SIZES: dict[str, AudioConfig] = {
    "tiny": AudioConfig(width=32, conv_layers=1, conv_kernel=3, layers=1, heads=2, attn_context=8),
    "S": AudioConfig(),
}


def audio_config(size: str = "S", **overrides) -> AudioConfig:
    """The named size ``size`` with fields replaced by ``overrides``."""
    if size not in AUDIO_SIZES:
        raise VasaError(f"unknown audio encoder size {size!r}; choose one of {', '.join(AUDIO_SIZES)}")
    return dataclasses.replace(AUDIO_SIZES[size], **overrides)


@dataclass(frozen=True)
class AudioTrainConfig:
    """Pretraining of ``A_enc`` on the corpus's frame phoneme + viseme labels (a ``train_audio`` section).

    Only ``train_splits`` feed the vocabulary and the training set (the generated corpus has non-English
    speech only in ``test_lang``, which stays held out); ``eval_splits`` are reported.
    """

    size: str = "S"  # AUDIO_SIZES name
    lookahead: int = 2  # overrides the size's L (frames)
    train_splits: tuple = ("train",)
    eval_splits: tuple = ("test", "test_lang")
    crop_frames: int = 100  # frames per training item (4 s)
    viseme_weight: float = 0.5  # loss = CE(phoneme) + viseme_weight * CE(viseme)
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.size not in AUDIO_SIZES:
            raise VasaError(f"train_audio.size {self.size!r} is unknown; choose one of {', '.join(AUDIO_SIZES)}")
        if self.crop_frames < 1 or self.viseme_weight < 0 or not 0 <= self.label_smoothing < 1:
            raise VasaError("train_audio: need crop_frames >= 1, viseme_weight >= 0, 0 <= label_smoothing < 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
