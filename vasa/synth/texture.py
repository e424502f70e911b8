"""Procedural textures of one identity, packed into one RGBA atlas (alpha = specular strength).

Rows 0..255 hold the skin chart (u = azimuth s from -pi..pi, v = t from +1 crown .. -1 under chin):
skin tone with noise, blush, freckles, stubble, eyelid lash lines, brows, lips, nostrils and hair.
Row 256..319 holds eight 64x64 swatches: eye (iris/pupil/sclera on the planar front hemisphere),
ear, neck, cloth, hair strands, teeth, mouth cavity, tongue. ``RECTS`` maps a material id to its
rect (row0, col0, height, width); mesh uv in [0, 1] are scaled into that rect.
"""

from __future__ import annotations

import cv2
import numpy as np

from vasa.synth.identity import Identity
from vasa.synth.parts import CAVITY, CLOTH, EAR, EYE, HAIR, HEAD, NECK, TEETH, TONGUE
from vasa.synth.shape import Layout, base, hair_coverage, smooth

TH, TW, SW = 256, 512, 64  # head texture rows/cols, swatch size
RECTS = np.zeros((9, 4), np.float32)  # (material, [row0, col0, h, w])
RECTS[HEAD] = (0, 0, TH, TW)
for _k, _m in enumerate((EYE, EAR, NECK, CLOTH, HAIR, TEETH, CAVITY, TONGUE)):
    RECTS[_m] = (TH, _k * SW, SW, SW)


def noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Smooth value noise (h, w) in about [-1, 1] from a (cells_y, cells_x) random lattice."""
    g = rng.uniform(-1, 1, (cells_y + 1, cells_x + 1)).astype(np.float32)
    return np.clip(cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC), -1.2, 1.2)


def _mix(a: np.ndarray, b, m: np.ndarray) -> np.ndarray:
    """Per-pixel lerp of colour images a -> b by mask m (h, w), float32."""
    return a + (np.asarray(b, np.float32) - a) * m.astype(np.float32)[..., None]


def _mix_(a: np.ndarray, b, m: np.ndarray) -> None:
    """In-place ``_mix`` (a is modified)."""
    a += (np.asarray(b, np.float32) - a) * m.astype(np.float32)[..., None]


def _box(fx: np.ndarray, fy: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """Rows/cols of a chart window whose face-plane coords cover [x0, x1] x [y0, y1]."""
    rows = np.nonzero((fy[:, 0] >= y0) & (fy[:, 0] <= y1))[0]
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    cols = np.nonzero(np.any((fx[rows] >= x0) & (fx[rows] <= x1), axis=0))[0]
    if len(cols) == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _brow_color(ident: Identity) -> np.ndarray:
    return np.asarray(ident.hair_color) * 0.45 + np.asarray(ident.skin_color) * 0.12


def _face_features(col: np.ndarray, spec: np.ndarray, fx: np.ndarray, fy: np.ndarray, front: np.ndarray,
                   ident: Identity, L: Layout, rng: np.random.Generator) -> None:
    """Paint blush, lids, lash lines, brows, nostrils, freckles, stubble and lips in place (a window)."""
    h, w = fx.shape
    skin = np.asarray(ident.skin_color, np.float32)
    warm = skin * np.array([1.04, 0.86, 0.86], np.float32)
    spec += 0.12 * np.exp(-(fx / 0.12) ** 2) * (fy > L.n_tip - 0.05) * (fy < L.brow_y + 0.3) * front
    for sx in (1.0, -1.0):
        _mix_(col, warm, (0.15 + 0.45 * ident.blush) * np.exp(-((fx - sx * 0.37) / 0.13) ** 2
                                                              - ((fy - L.ey + 0.26) / 0.1) ** 2) * front)
        # around the eye: darker under-eye, warmer lid, lash lines, brow, in one window
        b = _box(fx, fy, sx * L.ex - 0.25, sx * L.ex + 0.25, L.ey - 0.15, L.brow_y + 0.1)
        c, e, fyb, fr = col[b], fx[b] - sx * L.ex, fy[b], front[b]
        _mix_(c, skin * 0.78, 0.35 * np.exp(-(e / 0.1) ** 2 - ((fyb - L.ey + 0.07) / 0.04) ** 2) * fr)
        _mix_(c, warm * 0.85, 0.35 * np.exp(-(e / 0.11) ** 2 - ((fyb - L.ey - 0.05) / 0.04) ** 2) * fr)
        u = e / L.hw
        span = np.clip(smooth(1.15, 0.95, np.abs(u)) + np.clip(0.25 - np.abs(u - 1.05 * sx), 0, 1) * 2, 0, 1)
        upper = span * smooth(L.ey + 0.028, L.ey + 0.014, fyb) * (fyb >= L.ey - 0.002)
        lower = smooth(1.0, 0.8, np.abs(u)) * smooth(L.ey - 0.012, L.ey - 0.003, fyb) * (fyb <= L.ey + 0.002)
        _mix_(c, (0.04, 0.03, 0.03), 0.95 * upper * fr)
        _mix_(c, skin * 0.45, 0.6 * lower * fr)
        ub = (sx * fx[b] - (L.ex - 0.14)) / 0.3
        yc = L.brow_y + ident.brow_arch * 0.04 * np.sin(np.pi * np.clip(ub, 0, 1) * 0.9) - 0.015 * ub
        th = ident.brow_thickness * (1.25 - 0.75 * np.clip(ub, 0, 1))
        brow = smooth(th * 0.5 + 0.008, th * 0.5 - 0.004, np.abs(fyb - yc)) * smooth(-0.08, 0.02, ub)
        brow *= smooth(1.08, 0.95, ub) * fr * (0.75 + 0.25 * noise(rng, *fyb.shape, 4, 45))
        _mix_(c, _brow_color(ident), np.clip(brow, 0, 1))
        b = _box(fx, fy, -0.12, 0.12, L.n_tip - 0.1, L.n_tip)
        nos = np.exp(-((fx[b] - sx * 0.035 * ident.nose_width) / 0.022) ** 2 - ((fy[b] - L.n_tip + 0.05) / 0.014) ** 2)
        _mix_(col[b], skin * 0.2, 0.9 * nos * front[b])
    n2 = noise(rng, h, w, 40, 40)
    if ident.freckles > 0.02:
        fr = np.clip((n2 + 0.2 * noise(rng, h, w, 60, 60) - 1.0 + 0.5 * ident.freckles) * 4, 0, 1)
        fmask = np.exp(-(fx / 0.45) ** 2 - ((fy - L.n_tip - 0.05) / 0.2) ** 2) * front
        _mix_(col, skin * np.array([0.78, 0.62, 0.5]), fr * fmask * min(1.0, ident.freckles * 2))
    if ident.stubble > 0:
        beard = smooth(L.n_tip - 0.07, L.n_tip - 0.12, fy) * smooth(0.75, 0.55, np.abs(fx)) * (fy > -L.b * 1.02) * front
        grain = np.clip(0.6 + 0.6 * noise(rng, h, w, 80, 80), 0, 1)
        _mix_(col, np.asarray(ident.hair_color) * 0.6 + skin * 0.25, 0.45 * ident.stubble * beard * grain)
    # lips: cupid's bow upper lip and fuller lower lip, darker towards the mouth line
    b = _box(fx, fy, -L.mw - 0.06, L.mw + 0.06, L.my - L.ll - 0.03, L.my + L.lu + 0.03)
    c, fxb, fyb = col[b], fx[b], fy[b]
    ax = np.abs(fxb)
    lipc = np.asarray(ident.lip_color, np.float32)
    wu = np.sqrt(np.clip(1 - (fxb / (L.mw * 1.02)) ** 2, 0, 1))
    top = L.my + L.lu * wu * (1 - 0.22 * np.exp(-(fxb / 0.03) ** 2)) * (1 + 0.15 * np.exp(-((ax - 0.06) / 0.04) ** 2))
    bot = L.my - L.ll * np.clip(1 - (fxb / (L.mw * 0.97)) ** 2, 0, 1) ** 0.6
    lips = smooth(top + 0.006, top - 0.004, fyb) * smooth(bot - 0.006, bot + 0.004, fyb) * (ax < L.mw * 1.05)
    inner = np.clip(np.abs(fyb - L.my) / 0.012, 0, 1)
    _mix_(c, lipc * (0.8 + 0.2 * inner)[..., None], lips * front[b])
    _mix_(c, skin * 0.35, 0.7 * np.exp(-((ax - L.mw) / 0.02) ** 2 - ((fyb - L.my) / 0.01) ** 2) * front[b])
    spec[b] += 0.3 * lips


def head_texture(ident: Identity, L: Layout, rng: np.random.Generator) -> np.ndarray:
    """The skin chart texture (TH, TW, 4)."""
    t = (1.0 - 2.0 * (np.arange(TH) + 0.5) / TH).astype(np.float32)
    s = (-np.pi + 2 * np.pi * (np.arange(TW) + 0.5) / TW).astype(np.float32)
    S, T = np.meshgrid(s, t)
    fx, fy, _ = base(S, T, ident)
    skin = np.asarray(ident.skin_color, np.float32)
    col = np.empty((TH, TW, 3), np.float32)
    col[:] = skin
    col *= (1 + ident.skin_noise * (0.06 * noise(rng, TH, TW, 12, 24) + 0.035 * noise(rng, TH, TW, 64, 128)))[..., None]
    spec = np.full((TH, TW), 0.12, np.float32)
    # facial features only inside the face window of the chart (s in +-1.1, t from brows to chin)
    r0, r1 = int((1 - (L.brow_y + 0.15) / L.b) / 2 * TH), TH
    c0, c1 = int((np.pi - 1.1) / (2 * np.pi) * TW), int((np.pi + 1.1) / (2 * np.pi) * TW) + 1
    win = (slice(r0, r1), slice(c0, c1))
    front = np.clip(np.cos(S[win]), 0, 1)
    _face_features(col[win], spec[win], fx[win].astype(np.float32), fy[win].astype(np.float32), front, ident, L, rng)
    # hair: strands run along the meridians (vertical streaks in the chart)
    if ident.hair_style != "bald":
        jag = noise(rng, TH, TW, 8, 60) * 0.015
        cov = hair_coverage(fx, fy + jag, S, ident, L, edge=0.01).astype(np.float32)
        strands = 0.72 + 0.28 * noise(rng, TH, TW, 10, 260) + 0.12 * noise(rng, TH, TW, 30, 60)
        hair = np.asarray(ident.hair_color, np.float32) * strands[..., None]
        if ident.hair_style == "buzz":
            hair = hair * 0.6 + skin * 0.4
        _mix_(col, hair, cov)
        spec = spec * (1 - cov) + 0.3 * cov
    return np.dstack([np.clip(col, 0, 1), spec]).astype(np.float32)


def swatches(ident: Identity, rng: np.random.Generator) -> np.ndarray:
    """The eight 64x64 material swatches side by side: (SW, 8 * SW, 4)."""
    n = SW
    v, u = np.mgrid[0:n, 0:n].astype(np.float32) / (n - 1)
    skin = np.asarray(ident.skin_color, np.float32)
    out = np.zeros((n, 8 * n, 4), np.float32)

    def put(k: int, rgb: np.ndarray, spec: float) -> None:
        out[:, k * n:(k + 1) * n, :3] = np.clip(rgb, 0, 1)
        out[:, k * n:(k + 1) * n, 3] = spec

    # eye: sclera, iris with radial streaks and a dark limbal ring, pupil
    r = np.hypot(u - 0.5, v - 0.5)
    ang = np.arctan2(v - 0.5, u - 0.5)
    streak = 0.75 + 0.25 * np.sin(ang * 23 + 3 * np.sin(ang * 7)) * np.sin(ang * 11 + 1.3)
    iris = np.asarray(ident.eye_color, np.float32) * (streak * (0.8 + 0.5 * smooth(0.2, 0.1, r)))[..., None]
    sclera = _mix(np.full((n, n, 3), (0.93, 0.91, 0.88), np.float32), (0.82, 0.66, 0.64), smooth(0.33, 0.5, r))
    eye = _mix(sclera, iris, smooth(0.24, 0.225, r))
    eye = _mix(eye, (0.05, 0.04, 0.04), 0.8 * smooth(0.19, 0.23, r) * smooth(0.24, 0.23, r))
    put(0, _mix(eye, (0.02, 0.02, 0.02), smooth(0.1, 0.09, r)), 0.9)
    # ear: concha darker in the middle, rim lighter
    e = np.hypot((u - 0.55) / 0.3, (v - 0.5) / 0.36)
    put(1, skin * (0.62 + 0.38 * smooth(0.3, 1.0, e) * (1.1 - 0.1 * smooth(0.9, 1.2, e)))[..., None], 0.1)
    # neck: shadow under the jaw
    put(2, skin * (0.62 + 0.38 * smooth(0.25, 0.5, v))[..., None] * 0.97, 0.08)
    weave = 0.85 + 0.15 * noise(rng, n, n, 8, 8)
    put(3, np.asarray(ident.cloth_color, np.float32) * weave[..., None], 0.05)
    strands = 0.72 + 0.3 * noise(rng, n, n, 3, 40)
    put(4, np.asarray(ident.hair_color, np.float32) * strands[..., None], 0.3)
    gaps = np.abs(np.sin(np.pi * 10 * u)) ** 0.25
    gum = np.maximum(smooth(0.1, 0.02, v), smooth(0.9, 0.98, v))
    teeth = np.full((n, n, 3), (0.93, 0.9, 0.82), np.float32) * (0.55 + 0.45 * gaps)[..., None]
    put(5, _mix(teeth, (0.75, 0.42, 0.42), gum), 0.5)
    put(6, np.full((n, n, 3), (0.42, 0.11, 0.11), np.float32) * (0.8 + 0.2 * weave)[..., None], 0.1)
    put(7, np.full((n, n, 3), (0.78, 0.38, 0.38), np.float32) * (0.85 + 0.15 * weave)[..., None], 0.3)
    return out


def atlas(ident: Identity, L: Layout) -> np.ndarray:
    """The full texture atlas (TH + SW, TW, 4) float32 of one identity."""
    rng = np.random.default_rng([ident.seed, 3])
    return np.ascontiguousarray(np.concatenate([head_texture(ident, L, rng), swatches(ident, rng)], 0))
