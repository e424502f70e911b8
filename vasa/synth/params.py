"""The face-parameter schema shared by the animator (speech -> parameters) and the renderer.

Every frame of the generated corpus is described by one float32 vector with the columns of
``FRAME_PARAMS`` (the ground truth stored per frame). Per-clip conditions (emotion, main gaze,
distance, identity, style) live in ``ClipConditions``.

Conventions (right-handed camera frame: x right, y up, z towards the camera):
- yaw > 0 turns the face towards the image's right (the subject's left), pitch > 0 looks up,
  roll > 0 tilts the head counter-clockwise in the image. Degrees.
- gaze_yaw / gaze_pitch: eye rotation relative to the head, same sign convention, degrees.
- tx, ty: head-centre offset in head radii (world units), tz: camera distance in head radii
  is ``distance * NOMINAL_DISTANCE`` plus motion; ``scale`` = NOMINAL_DISTANCE / tz (apparent size).
- jaw, lip_round, lip_spread, lip_press, blink_l, blink_r, brow_furrow, eye_wide in [0, 1];
  smile and brow_raise in [-1, 1] (negative: corners down / brows lowered).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

NOMINAL_DISTANCE = 9.0  # camera distance of a distance-1.0 head, in head radii

# name -> (low, high) valid range
FRAME_PARAMS: dict[str, tuple[float, float]] = {
    # head pose (z_pose ground truth)
    "yaw": (-45.0, 45.0),
    "pitch": (-30.0, 30.0),
    "roll": (-25.0, 25.0),
    "tx": (-1.0, 1.0),
    "ty": (-1.0, 1.0),
    "tz": (5.0, 15.0),
    "scale": (0.6, 1.8),
    # mouth (visemes + emotion)
    "jaw": (0.0, 1.0),
    "lip_round": (0.0, 1.0),
    "lip_spread": (0.0, 1.0),
    "lip_press": (0.0, 1.0),
    "smile": (-1.0, 1.0),
    # upper face
    "brow_raise": (-1.0, 1.0),
    "brow_furrow": (0.0, 1.0),
    "eye_wide": (0.0, 1.0),
    "blink_l": (0.0, 1.0),
    "blink_r": (0.0, 1.0),
    # eyes relative to the head
    "gaze_yaw": (-30.0, 30.0),
    "gaze_pitch": (-25.0, 25.0),
}
PARAM_NAMES: tuple[str, ...] = tuple(FRAME_PARAMS)
PARAM_INDEX: dict[str, int] = {n: i for i, n in enumerate(PARAM_NAMES)}
N_PARAMS = len(PARAM_NAMES)

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised")
STYLES: tuple[str, ...] = ("photo", "art")


def neutral_params(distance: float = 1.0) -> np.ndarray:
    """One frame of a neutral, frontal, eyes-open face at the given normalised distance."""
    p = np.zeros(N_PARAMS, np.float32)
    p[PARAM_INDEX["tz"]] = distance * NOMINAL_DISTANCE
    p[PARAM_INDEX["scale"]] = 1.0 / distance
    return p


def clip_params(p: np.ndarray) -> np.ndarray:
    """Clamp every column into its valid range (works on (P,) and (T, P) arrays)."""
    lo = np.array([r[0] for r in FRAME_PARAMS.values()], np.float32)
    hi = np.array([r[1] for r in FRAME_PARAMS.values()], np.float32)
    return np.clip(p, lo, hi).astype(np.float32)


def as_dict(p: np.ndarray) -> dict[str, float]:
    """A (P,) vector as {name: value}."""
    return {n: float(p[i]) for i, n in enumerate(PARAM_NAMES)}


@dataclass
class ClipConditions:
    """Per-clip ground truth / conditions: what the paper's motion model is conditioned on."""

    emotion: str = "neutral"
    emotion_intensity: float = 0.0  # 0..1
    gaze_yaw: float = 0.0  # main gaze direction (theta), degrees
    gaze_pitch: float = 0.0  # main gaze direction (phi), degrees
    distance: float = 1.0  # normalised head-to-camera distance (1.0 = nominal)

    def to_dict(self) -> dict:
        return asdict(self)
