"""The head surface as a function of chart coordinates, and the facial layout of an identity.

``surface(s, t)`` maps chart coordinates (s = azimuth, 0 ahead; t = cos polar angle) to head-rest
space: an ellipsoid with a tapered jaw, a flattened face and a forward chin, plus Gaussian relief
(eye sockets, brow ridge, nose bridge/tip/alae, cheekbones, muzzle, lips, chin), eyelids draped
over the eyeballs (the skin never dips behind an eyeball) and the hair volume. ``fx, fy`` are the
face-plane coordinates (x, y of the undisplaced surface) in which features and textures are laid out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasa.synth.identity import Identity


@dataclass
class Layout:
    """Feature positions of one identity in head-rest space (head radii)."""

    a: float  # half width
    b: float  # half height
    c: float  # half depth
    ex: float  # eye centre |x|
    ey: float  # eye centre y
    re: float  # eyeball radius
    ze: float  # eyeball centre z
    hw: float  # eye aperture half width
    h_up: float  # upper lid travel when open
    h_lo: float  # lower lid travel when open
    h_wide: float  # extra upper lid travel when wide
    mw: float  # mouth half width
    my: float  # mouth line y
    lu: float  # upper lip thickness
    ll: float  # lower lip thickness
    brow_y: float
    n_top: float  # nose bridge top y
    n_tip: float  # nose tip y
    n_h: float  # nose tip protrusion
    n_w: float  # alae half-spread
    chin_y: float
    pivot: tuple[float, float, float]  # jaw hinge


def smooth(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Smoothstep from e0 (0) to e1 (1); e0 > e1 is allowed (reversed ramp)."""
    u = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _g(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)


def base(s: np.ndarray, t: np.ndarray, ident: Identity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The undisplaced head (ellipsoid + jaw taper + flat face + chin): x, y, z arrays."""
    a, b, c = ident.head_width, ident.head_height, ident.head_depth
    t = np.clip(t, -1.0, 1.0)
    r = np.sqrt(1.0 - t * t)
    rx = np.where(t < 0, (1.0 - np.abs(t) ** 2.6) ** (1 / 2.6), r)  # boxier lower face (jaw)
    sn, cs = np.sin(s), np.cos(s)
    taper = 1.0 - (1.0 - ident.jaw_width) * 0.9 * smooth(-0.2, -0.95, t)
    taper = taper * (1.0 + 0.05 * ident.cheek * np.exp(-((t + 0.15) / 0.3) ** 2))
    x = a * rx * sn * taper
    y = b * t
    front = np.clip(cs, 0.0, 1.0)
    z = c * r * np.where(cs > 0, front ** 0.7, cs)
    chin = smooth(-0.25, -0.85, t) * (1.0 - smooth(-0.9, -1.0, t))
    z = z + (0.24 + 0.05 * ident.chin) * c * chin * front ** 2
    return x, y, z


def layout(ident: Identity) -> Layout:
    """Derive feature positions (eyeball depth from the surface, jaw hinge, nose) from an identity."""
    a, b, c = ident.head_width, ident.head_height, ident.head_depth
    ex, ey, re = ident.eye_spacing, ident.eye_y, 0.138 * ident.eye_size
    te = ey / b
    r = np.sqrt(1 - te * te)
    se = np.arcsin(np.clip(ex / (a * r), -1, 1))
    _, _, z_e = base(np.array([se]), np.array([te]), ident)
    n_tip = ey - 0.37 * ident.nose_length
    return Layout(
        a=a, b=b, c=c, ex=ex, ey=ey, re=re, ze=float(z_e[0]) - re * 0.92, hw=0.93 * re,
        h_up=0.058 * ident.eye_size * ident.eye_open, h_lo=0.03 * ident.eye_size * ident.eye_open,
        h_wide=0.035 * ident.eye_size, mw=ident.mouth_width, my=ident.mouth_y, lu=ident.lip_upper,
        ll=ident.lip_lower, brow_y=ident.brow_y, n_top=ey + 0.05, n_tip=n_tip, n_h=0.21 * ident.nose_height,
        n_w=0.085 * ident.nose_width, chin_y=-0.9 * b, pivot=(0.0, ident.mouth_y + 0.12, -0.35 * c),
    )


def relief(fx: np.ndarray, fy: np.ndarray, L: Layout, ident: Identity) -> np.ndarray:
    """Depth offsets (along +z) of the facial features at face-plane coords (fx, fy)."""
    dz = np.zeros_like(fx)
    for sx in (1.0, -1.0):
        dz -= 0.075 * _g(fx, fy, sx * L.ex, L.ey + 0.01, 0.13, 0.095)  # eye socket
        dz += 0.04 * _g(fx, fy, sx * L.ex * 1.05, L.brow_y - 0.03, 0.17, 0.05)  # brow ridge
        dz += (0.03 + 0.04 * ident.cheek) * _g(fx, fy, sx * 0.42, L.ey - 0.2, 0.14, 0.1)  # cheekbone
        dz += 0.05 * _g(fx, fy, sx * L.n_w, L.n_tip - 0.03, 0.045, 0.04)  # ala (nose wing)
        dz -= 0.02 * _g(fx, fy, sx * (L.mw + 0.04), L.my, 0.04, 0.06)  # mouth corner dimple
    # nose: a ridge rising from the bridge to the tip, then a sharp underside
    span = max(L.n_top - L.n_tip, 1e-3)
    q = np.clip((L.n_top - fy) / span, 0.0, 1.0)
    h = np.where(fy >= L.n_tip, 0.03 + (L.n_h - 0.03) * q ** 1.4,
                 L.n_h * np.exp(-((L.n_tip - fy) / 0.055) ** 2))
    width = 0.055 + 0.045 * q * ident.nose_width
    dz += h * np.exp(-(fx / width) ** 2) * (fy < L.n_top + 0.08)
    tip_y = L.n_tip + 0.012 * ident.nose_tip
    dz += 0.03 * _g(fx, fy, 0.0, tip_y, 0.05, 0.045)  # tip ball
    dz += 0.06 * _g(fx, fy, 0.0, L.my + 0.02, 0.3, 0.2)  # muzzle
    dz += 0.03 * _g(fx, fy, 0.0, L.my + L.lu * 0.45, L.mw * 0.9, L.lu * 0.7)  # upper lip
    dz += 0.04 * _g(fx, fy, 0.0, L.my - L.ll * 0.5, L.mw * 0.8, L.ll * 0.65)  # lower lip
    dz -= 0.015 * _g(fx, fy, 0.0, L.my - L.ll - 0.045, 0.12, 0.03)  # groove under the lower lip
    dz -= 0.008 * _g(fx, fy, 0.0, L.my + L.lu + 0.05, 0.025, 0.06)  # philtrum
    dz += 0.035 * (1 + 0.5 * ident.chin) * _g(fx, fy, 0.0, L.chin_y + 0.06, 0.15, 0.09)  # chin
    return dz


def hair_coverage(fx: np.ndarray, fy: np.ndarray, s: np.ndarray, ident: Identity, L: Layout,
                  edge: float = 0.025) -> np.ndarray:
    """Hair coverage in [0, 1] on the skin chart (1 = scalp under hair): a ramp of half-width
    ``edge`` centred on the hairline, or, for edge < 0, rising from the hairline over -2 * edge."""
    style = ident.hair_style
    if style == "bald":
        return np.zeros_like(fx)
    a = np.abs(s)
    hl = ident.hairline + 0.12 * (fx / 0.5) ** 2  # receding at the temples
    if style == "bangs":
        hl = L.brow_y + 0.07 + 0.03 * (fx / 0.4) ** 2
    long = style in ("medium", "long", "bangs", "curly")
    side = L.ey + (-0.2 if long else 0.13)
    nape = -0.8 * L.b if long else -0.45 * L.b
    w1 = smooth(0.85, 1.35, a)
    w2 = smooth(1.7, 2.5, a)
    line = (hl * (1 - w1) + side * w1) * (1 - w2) + nape * w2
    return smooth(line - edge, line + edge, fy) if edge > 0 else smooth(line - 0.02, line - 2 * edge, fy)


def hair_volume(ident: Identity) -> float:
    """Thickness of the hair shell over the scalp (head radii)."""
    v = {"bald": 0.0, "buzz": 0.012, "short": 0.05, "medium": 0.09, "long": 0.08, "bangs": 0.08,
         "curly": 0.2, "bun": 0.05}[ident.hair_style]
    return v * ident.hair_volume


def surface(s: np.ndarray, t: np.ndarray, L: Layout, ident: Identity, with_coords: bool = False):
    """Head-rest-space points (n, 3) of chart coords; optionally also the face-plane fx, fy."""
    x, y, z = base(s, t, ident)
    front = np.clip(np.cos(s) * 1.5 - 0.2, 0.0, 1.0)
    f = front > 0
    z = z.copy()
    z[f] += relief(x[f], y[f], L, ident) * front[f]
    # eyelids drape over the eyeballs (+ lid thickness) near each eye
    for sx in (1.0, -1.0):
        d2 = (x - sx * L.ex) ** 2 + (y - L.ey) ** 2
        cap = L.ze + np.sqrt(np.maximum(L.re * L.re - d2, 0.0)) + 0.012
        z = np.where((d2 < L.re * L.re) & (front > 0.5), np.maximum(z, cap), z)
    P = np.stack([x, y, z], 1)
    vol = hair_volume(ident)
    if vol > 0:
        cov = hair_coverage(x, y, s, ident, L, edge=-0.06)  # ramp up from the hairline
        if ident.hair_style == "curly":
            rng = np.random.default_rng(ident.seed)
            ph = rng.uniform(0, 6.28, 3)
            vol = vol * (1 + 0.25 * np.sin(9 * s + ph[0]) * np.sin(11 * t + ph[1]) + 0.1 * np.sin(23 * s + ph[2]))
        n = P / np.linalg.norm(P, axis=1, keepdims=True).clip(1e-6)
        P = P + n * (vol * cov)[:, None]
    P = P.astype(np.float32)
    return (P, x, y) if with_coords else P
