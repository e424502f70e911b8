"""Configuration of the holistic motion generator (stage 2): the DiT ``H``, its diffusion and training.

>>> from vasa.motion.config import motion_config
>>> cfg = motion_config("S", motion_dim=70, audio_dim=192)         # dims come from the data
>>> cfg = motion_config("tiny", motion_dim=19, audio_dim=320, conditioning="adaln")

Sizes (``MOTION_SIZES``; counts for motion_dim 70, audio_dim 192, tokens conditioning):

* ``tiny``   width 32, 2 layers, 2 heads (42K; W = 16, K = 4, T = 50): tests.
* ``XS``     width 128, 4 layers, 4 heads (0.9M; adaln 1.3M): a short CPU budget.
* ``S``      width 256, 4 layers, 4 heads (3.4M; adaln 5.1M): the CPU default.
* ``paper``  width 512, 8 layers, 8 heads (26.0M; adaln 39.1M). The paper reports ~29M; with a
  768-d Wav2Vec2 input it is 26.3M here (the rest is unstated: FFN width, embeddings).

Window: ``W = 50`` frames (2 s at 25 fps) generated per window, ``K = 10`` frames (0.4 s) of past
motion and audio as context. K = 10 spans more than a syllable and gives the model the motion's
position, velocity and acceleration at the boundary (what makes windows join without a seam);
W = 50 keeps the token sequence short (2W + 2K + 4 = 124 tokens) for CPU attention while the
context overhead stays at 20 % of the generated frames. JoyVASA uses 100 + 25, Ditto 80 + 10.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vasa.errors import VasaError

# A, g, d, e, (X_pre, A_pre), and the reference motion x_ref (the portrait's [z_pose, z_dyn])
CONDITIONS: tuple[str, ...] = ("audio", "gaze", "distance", "emotion", "past", "ref")
CONDITIONINGS = ("tokens", "adaln")
OBJECTIVES = ("diffusion", "regression")
SCHEDULES = ("cosine", "linear")


@dataclass(frozen=True)
class MotionConfig:
    """Every knob of :class:`vasa.motion.model.MotionDiT` and its diffusion process."""

    motion_dim: int = 70  # D of X (z_pose + z_dyn; e.g. 6 + 64)
    audio_dim: int = 192  # F of A (the audio encoder width)
    emotion_dim: int = 6  # e: one-hot over vasa.synth.params.EMOTIONS + intensity
    window: int = 50  # W frames generated per window
    past: int = 10  # K frames of X_pre / A_pre
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    # "tokens": every condition is a token next to the noisy motion along time (the paper);
    # "adaln": frame-wise adaptive LayerNorm from per-frame conditions (FLOAT-style), motion tokens only
    conditioning: str = "tokens"
    objective: str = "diffusion"  # "diffusion" (x0-predicting DDPM) | "regression" (same backbone, MSE)
    diffusion_steps: int = 1000  # T of the DDPM
    schedule: str = "cosine"  # beta schedule: "cosine" | "linear"

    def __post_init__(self) -> None:
        for name in ("motion_dim", "audio_dim", "emotion_dim", "window", "width", "layers", "heads",
                     "diffusion_steps"):
            if getattr(self, name) < 1:
                raise VasaError(f"motion: {name} must be >= 1, got {getattr(self, name)}")
        if self.past < 0:
            raise VasaError(f"motion: past (K) must be >= 0, got {self.past}")
        if self.width % self.heads:
            raise VasaError(f"motion: width {self.width} is not divisible by heads {self.heads}")
        for name, allowed in (("conditioning", CONDITIONINGS), ("objective", OBJECTIVES), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise VasaError(f"motion: {name} = {getattr(self, name)!r} is not allowed ({', '.join(allowed)})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        return cls(**d)


MOTION_SIZES: dict[str, MotionConfig] = {
    "tiny": MotionConfig(width=32, layers=2, heads=2, window=16, past=4, diffusion_steps=50),
    "XS": MotionConfig(width=128),
    "S": MotionConfig(),
    "paper": MotionConfig(width=512, layers=8, heads=8),
}


def motion_config(size: str = "S", **overrides) -> MotionConfig:
    """The named size with fields replaced by ``overrides`` (``motion_dim`` / ``audio_dim`` from data)."""
    if size not in MOTION_SIZES:
        raise VasaError(f"unknown motion model size {size!r}; choose one of {', '.join(MOTION_SIZES)}")
    return dataclasses.replace(MOTION_SIZES[size], **overrides)


@dataclass(frozen=True)
class MotionTrainConfig:
    """Training of ``H`` (a ``train_motion`` section; optimizer knobs go to :func:`vasa.train.train`)."""

    size: str = "S"
    conditioning: str = "tokens"
    objective: str = "diffusion"
    window: int = 50
    past: int = 10
    stride: int = 25  # frames between consecutive training windows of a clip
    drop_prob: float = 0.1  # per-condition dropout (audio, gaze, distance, emotion) for CFG
    drop_past_prob: float = 0.5  # X_pre / A_pre dropout (the first window is then in distribution)
    ref_drop_prob: float | None = None  # x_ref dropout (None: drop_prob; 1.0: never use x_ref, the paper)
    truncate_prob: float = 0.3  # probability of cutting the window's audio tail (padding mask)
    min_frames: int = 5  # a truncated window keeps at least this many frames
    velocity_weight: float = 1.0  # L2 on first differences (including X_pre[-1] -> X[0] when known)
    smooth_weight: float = 0.0  # L2 on second differences of the prediction (acceleration)
    diffusion_steps: int = 0  # T of the DDPM; 0 = the size's (1000)
    schedule: str = "cosine"  # "cosine" | "linear"

    def __post_init__(self) -> None:
        if self.size not in MOTION_SIZES:
            raise VasaError(f"train_motion.size {self.size!r} is unknown; choose one of {', '.join(MOTION_SIZES)}")
        probs = (self.drop_prob, self.drop_past_prob, self.truncate_prob,
                 self.drop_prob if self.ref_drop_prob is None else self.ref_drop_prob)
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise VasaError(f"train_motion: drop/truncate probabilities must be in [0, 1], got {probs}")
        if self.stride < 1 or not 1 <= self.min_frames <= self.window:
            raise VasaError("train_motion: need stride >= 1 and 1 <= min_frames <= window")
        for name, allowed in (("conditioning", CONDITIONINGS), ("objective", OBJECTIVES), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise VasaError(f"train_motion.{name} = {getattr(self, name)!r} is not allowed ({', '.join(allowed)})")
        if self.velocity_weight < 0 or self.smooth_weight < 0 or self.diffusion_steps < 0:
            raise VasaError("train_motion: loss weights and diffusion_steps must be >= 0")

    def model_config(self, motion_dim: int, audio_dim: int, emotion_dim: int) -> MotionConfig:
        """The :class:`MotionConfig` these settings train for data of the given dimensions."""
        return motion_config(self.size, motion_dim=motion_dim, audio_dim=audio_dim, emotion_dim=emotion_dim,
                             conditioning=self.conditioning, objective=self.objective, window=self.window,
                             past=self.past, schedule=self.schedule,
                             **({"diffusion_steps": self.diffusion_steps} if self.diffusion_steps else {}))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
