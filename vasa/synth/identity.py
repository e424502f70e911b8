"""Procedural identities: the per-person shape, colour, hair, lighting and background numbers.

An :class:`Identity` is a flat dataclass of plain floats, ints, strings and tuples, so it round-trips
through JSON (``to_dict`` / ``from_dict``) and fully determines the rendered person (together with the
per-frame parameters of :mod:`vasa.synth.params`). ``sample_identity(rng)`` draws one from realistic
ranges; every continuous field is independent, so thousands of draws are visually distinct.

Units: lengths are in head radii (the head is ~0.8 wide, ~1.1 high, half-extents), head-rest space
is x right, y up, z out of the face. Colours are sRGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from vasa.errors import VasaError

HAIR_STYLES: tuple[str, ...] = ("bald", "buzz", "short", "medium", "long", "bangs", "curly", "bun")
BACKGROUNDS: tuple[str, ...] = ("solid", "gradient", "noise", "shapes")

Color = tuple[float, float, float]

# Skin-tone anchors from very light to very dark (sRGB), interpolated by ``skin_tone`` in [0, 1].
_SKIN_ANCHORS = np.array([
    [0.97, 0.83, 0.74], [0.92, 0.74, 0.62], [0.84, 0.63, 0.49], [0.72, 0.52, 0.38],
    [0.58, 0.40, 0.28], [0.44, 0.29, 0.20], [0.31, 0.20, 0.14],
], np.float64)
_HAIR_COLORS = np.array([
    [0.05, 0.04, 0.04], [0.13, 0.09, 0.06], [0.26, 0.16, 0.09], [0.42, 0.28, 0.16],
    [0.72, 0.57, 0.35], [0.86, 0.74, 0.50], [0.50, 0.20, 0.09], [0.62, 0.62, 0.62],
    [0.88, 0.88, 0.86], [0.20, 0.25, 0.60], [0.75, 0.30, 0.55],
], np.float64)
_HAIR_P = np.array([0.22, 0.2, 0.16, 0.1, 0.07, 0.06, 0.06, 0.05, 0.03, 0.02, 0.03])
_EYE_COLORS = np.array([
    [0.22, 0.12, 0.06], [0.35, 0.20, 0.09], [0.42, 0.36, 0.16], [0.30, 0.45, 0.25],
    [0.28, 0.45, 0.65], [0.45, 0.52, 0.58],
], np.float64)
_EYE_P = np.array([0.35, 0.25, 0.12, 0.09, 0.12, 0.07])


@dataclass
class Identity:
    """One synthetic person. All fields are plain JSON-friendly values."""

    seed: int = 0  # seeds the procedural textures (skin noise, freckles, background shapes)
    # head shape (head radii)
    head_width: float = 0.80  # half-width of the skull
    head_height: float = 1.10  # half-height, crown to chin
    head_depth: float = 0.95  # half-depth
    jaw_width: float = 0.85  # lower-face width relative to the skull (narrow 0.7 .. wide 0.95)
    chin: float = 0.0  # chin protrusion/length offset (-1 .. 1)
    cheek: float = 0.5  # cheekbone fullness (0 .. 1)
    # nose
    nose_length: float = 1.0  # scale of the nose length
    nose_width: float = 1.0  # scale of the alae width
    nose_height: float = 1.0  # scale of how far the tip protrudes
    nose_tip: float = 0.0  # tip up (+) / hooked down (-)
    # eyes
    eye_spacing: float = 0.31  # half the distance between the eye centres
    eye_size: float = 1.0  # scale of eyeball and aperture
    eye_y: float = 0.10  # eye height
    eye_open: float = 1.0  # resting aperture scale
    # mouth
    mouth_width: float = 0.22  # half-width of the mouth
    mouth_y: float = -0.58  # height of the mouth line
    lip_upper: float = 0.06  # upper lip thickness
    lip_lower: float = 0.075  # lower lip thickness
    # ears and brows
    ear_size: float = 1.0
    ear_out: float = 0.3  # how much the ears stick out (0 .. 1)
    brow_thickness: float = 0.035
    brow_y: float = 0.30
    brow_arch: float = 0.5
    # skin
    skin_tone: float = 0.3  # 0 light .. 1 dark (anchor interpolation)
    skin_color: Color = (0.84, 0.63, 0.49)
    skin_noise: float = 0.5  # texture noise amplitude (0 .. 1)
    freckles: float = 0.0  # 0 .. 1
    blush: float = 0.3  # 0 .. 1
    stubble: float = 0.0  # 0 .. 1 (beard shadow)
    lip_color: Color = (0.70, 0.35, 0.33)
    # hair, eyes, clothing
    hair_style: str = "short"
    hair_color: Color = (0.13, 0.09, 0.06)
    hair_volume: float = 1.0  # scale of the hair thickness
    hairline: float = 0.62  # forehead hairline height
    eye_color: Color = (0.30, 0.18, 0.08)
    cloth_color: Color = (0.2, 0.3, 0.5)
    # lighting (fixed per identity)
    light_azimuth: float = 20.0  # degrees, + from the image right
    light_elevation: float = 25.0  # degrees
    light_intensity: float = 0.8
    ambient: float = 0.4
    light_tint: Color = (1.0, 1.0, 1.0)
    # background
    background: str = "gradient"
    bg_color1: Color = (0.5, 0.55, 0.6)
    bg_color2: Color = (0.3, 0.32, 0.38)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Identity":
        """Inverse of :meth:`to_dict`; unknown keys raise VasaError."""
        names = {f.name for f in fields(cls)}
        bad = set(d) - names
        if bad:
            raise VasaError(f"unknown identity fields {sorted(bad)}: pass a dict made by Identity.to_dict()")
        return cls(**{k: (tuple(float(x) for x in v) if isinstance(v, list) else v) for k, v in d.items()})


def _col(c: np.ndarray) -> Color:
    return tuple(float(x) for x in np.clip(c, 0.0, 1.0))  # type: ignore[return-value]


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one random identity (shape, skin, hair, eyes, lighting, background)."""
    u = rng.uniform
    tone = float(u(0.0, 1.0))
    k = tone * (len(_SKIN_ANCHORS) - 1)
    i0 = min(int(k), len(_SKIN_ANCHORS) - 2)
    skin = _SKIN_ANCHORS[i0] * (1 - (k - i0)) + _SKIN_ANCHORS[i0 + 1] * (k - i0)
    skin = skin * u(0.94, 1.06) + rng.normal(0, 0.015, 3) + np.array([u(-0.02, 0.03), 0, u(-0.03, 0.02)])
    lip = skin * np.array([0.85, 0.55, 0.58]) + np.array([0.06, 0.0, 0.02]) * u(0.5, 1.5)
    lip = lip * u(0.8, 1.0)
    style = str(rng.choice(HAIR_STYLES, p=[0.07, 0.12, 0.22, 0.17, 0.17, 0.1, 0.08, 0.07]))
    hc = _HAIR_COLORS[rng.choice(len(_HAIR_COLORS), p=_HAIR_P / _HAIR_P.sum())]
    hair = hc * u(0.85, 1.15) + rng.normal(0, 0.02, 3)
    eye = _EYE_COLORS[rng.choice(len(_EYE_COLORS), p=_EYE_P / _EYE_P.sum())] * u(0.8, 1.2)
    bg_kind = str(rng.choice(BACKGROUNDS, p=[0.2, 0.3, 0.25, 0.25]))
    bg1 = rng.uniform(0.05, 0.95, 3)
    bg2 = np.clip(bg1 * u(0.4, 1.3) + rng.normal(0, 0.15, 3), 0, 1)
    cloth = rng.uniform(0.05, 0.9, 3) * u(0.5, 1.0)
    tint = np.array([1.0, 1.0 - u(-0.04, 0.06), 1.0 - u(-0.08, 0.12)])
    return Identity(
        seed=int(rng.integers(0, 2**31 - 1)),
        head_width=u(0.74, 0.86), head_height=u(1.04, 1.16), head_depth=u(0.9, 1.0),
        jaw_width=u(0.72, 0.95), chin=u(-1.0, 1.0), cheek=u(0.0, 1.0),
        nose_length=u(0.85, 1.15), nose_width=u(0.8, 1.3), nose_height=u(0.8, 1.25),
        nose_tip=u(-1.0, 1.0),
        eye_spacing=u(0.28, 0.34), eye_size=u(0.88, 1.12), eye_y=u(0.06, 0.14), eye_open=u(0.85, 1.15),
        mouth_width=u(0.18, 0.26), mouth_y=u(-0.63, -0.53), lip_upper=u(0.035, 0.075),
        lip_lower=u(0.05, 0.095),
        ear_size=u(0.85, 1.2), ear_out=u(0.0, 1.0),
        brow_thickness=u(0.03, 0.06), brow_y=u(0.26, 0.33), brow_arch=u(0.0, 1.0),
        skin_tone=tone, skin_color=_col(skin), skin_noise=u(0.2, 1.0),
        freckles=float(u(0, 1) ** 3 if tone < 0.5 else 0.0), blush=u(0.0, 1.0),
        stubble=float(u(0, 1) if rng.random() < 0.25 else 0.0), lip_color=_col(lip),
        hair_style=style, hair_color=_col(hair), hair_volume=u(0.7, 1.3), hairline=u(0.52, 0.72),
        eye_color=_col(eye), cloth_color=_col(cloth),
        light_azimuth=u(-45, 45), light_elevation=u(5, 45), light_intensity=u(0.65, 0.9),
        ambient=u(0.32, 0.45), light_tint=_col(tint),
        background=bg_kind, bg_color1=_col(bg1), bg_color2=_col(bg2),
    )
