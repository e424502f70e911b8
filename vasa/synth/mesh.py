"""The parametric head: geometry of one identity and its per-frame deformation by face parameters.

The skin is one grid over chart coordinates (s, t): s = azimuth in radians (0 = straight ahead, +
towards the subject's left, i.e. +x), t = cos(polar angle) (+1 crown, -1 under the chin). A point
of the chart maps to head-rest space (x right, y up, z out of the face; head radii) through
``surface``: a deformed ellipsoid (jaw taper, flat face, chin) plus Gaussian features (eye sockets,
brow ridge, nose, cheekbones, muzzle, lips, chin), eyelids draped over the eyeballs, and hair volume.
Rows are dense around the eyes and mouth; the eye line and the mouth line are *cut* (each holds two
coincident rows, upper and lower). Between them lie zero-area band triangles; those inside each eye
and the mouth are left out, so when the lids or lips move apart the opening shows the eyeballs or
the mouth interior (cavity, teeth, tongue) behind, with real occlusion.

Expressions are linear blend shapes (K, N, 3) built once per identity; eyes rotate with gaze; the
lower teeth and tongue follow the jaw. Landmarks are extra vertices carried through every transform.
Surface formulas live in ``vasa.synth.shape``, the rigid parts in ``vasa.synth.parts``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasa.synth.identity import Identity
from vasa.synth.parts import Parts, build_parts
from vasa.synth.shape import Layout, hair_coverage, layout, surface

# blend-shape order; weights come from the frame parameters (see HeadMesh.weights)
SHAPES = ("upper_l", "upper_r", "lower_l", "lower_r", "wide_l", "wide_r", "jaw", "lip_round", "lip_spread", "lip_press",
          "smile", "frown", "brow_up", "brow_down", "brow_furrow")
LANDMARKS = ("head_center", "nose_tip", "mouth_center", "eye_l", "eye_r", "pupil_l", "pupil_r", "chin")


def _rows(L: Layout) -> tuple[np.ndarray, int, int]:
    """Chart rows t (descending), with the eye and mouth lines doubled. Returns (t, i_eye, i_mouth)."""
    b = L.b
    top = np.cos(np.linspace(0.0, np.arccos(0.82), 9))[:-1] * b  # crown, as y values
    fore = np.arange(0.82 * b, L.ey + 0.2, -0.05)
    face = np.arange(L.ey + 0.2, L.my - 0.22, -0.026)
    chin = np.arange(L.my - 0.22, -0.97 * b, -0.045)
    under = np.cos(np.linspace(np.arccos(-0.97), np.pi, 5)) * b
    ys = np.concatenate([top, fore, face, chin, under])
    ys = ys[(np.abs(ys - L.ey) > 0.006) & (np.abs(ys - L.my) > 0.006)]
    ys = np.sort(np.concatenate([ys, [L.ey, L.ey, L.my, L.my]]))[::-1]
    t = np.clip(ys / b, -1.0, 1.0)
    i_eye = int(np.nonzero(ys == L.ey)[0][0])  # upper copy; lower copy is i_eye + 1
    i_mouth = int(np.nonzero(ys == L.my)[0][0])
    return t, i_eye, i_mouth


def _cols() -> np.ndarray:
    """Chart columns s in [-pi, pi): dense on the face, coarse at the back."""
    mid = np.arange(-0.74, 0.7401, 0.027)
    side = np.arange(0.80, 1.40, 0.06)
    back = np.linspace(1.48, np.pi, 13)
    s = np.concatenate([-back[::-1], -side[::-1], mid, side, back[:-1]])
    return s


def _prof(u: np.ndarray, p: float = 0.7) -> np.ndarray:
    """Aperture profile: 1 at the centre of an eye/mouth, 0 at and beyond its corners (|u| >= 1)."""
    return np.clip(1.0 - u * u, 0.0, 1.0) ** p


def _g(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)


@dataclass
class HeadMesh:
    """Everything geometric about one identity (all arrays float32 / int32)."""

    rest: np.ndarray  # (N, 3) rest positions, head-rest space; the last len(LANDMARKS) are landmarks
    uv: np.ndarray  # (N, 2) texture coordinates inside each triangle's material rect, in [0, 1]
    ao: np.ndarray  # (N,) ambient occlusion (1 = open skin, small = deep in the mouth)
    tris: np.ndarray  # (T, 3) i32, counter-clockwise seen from the front
    mat: np.ndarray  # (T,) i32 material id (see vasa.synth.texture.MATERIALS)
    two_sided: np.ndarray  # (T,) bool
    basis: np.ndarray  # (K, M, 3) blend-shape deltas for the vertices in `active`
    active: np.ndarray  # (M,) i32 vertices that some blend shape moves
    eyes: tuple  # ((start, stop, centre (3,)), ...) vertex ranges of the left/right eyeball
    body: tuple[int, int]  # vertex range of the neck + torso (follows a damped head rotation)
    body_w: np.ndarray  # (body[1] - body[0],) f32: 1 = rigid with the head, 0 = rigid with the torso
    landmark0: int  # index of the first landmark vertex
    pivot: np.ndarray  # (3,) jaw hinge

    def deform(self, params: np.ndarray, ip: dict[str, int]) -> np.ndarray:
        """Head-rest-space vertices (N, 3) for one frame: blend shapes + gaze, no head pose yet."""
        p = {k: float(params[i]) for k, i in ip.items()}
        gp = float(np.clip(p["gaze_pitch"] / 25.0, -1.0, 1.0))
        ol, orr = 1.0 - p["blink_l"], 1.0 - p["blink_r"]
        up, lo = min(1.0 + 0.55 * gp, 1.3), 1.0 - 0.25 * gp  # upper lid follows the gaze
        w = np.array([ol * up, orr * up, ol * lo, orr * lo, p["eye_wide"] * ol, p["eye_wide"] * orr,
                      p["jaw"], p["lip_round"], p["lip_spread"], p["lip_press"] * (1 - p["jaw"]),
                      max(p["smile"], 0.0), max(-p["smile"], 0.0), max(p["brow_raise"], 0.0),
                      max(-p["brow_raise"], 0.0), p["brow_furrow"]], np.float32)
        v = self.rest.copy()
        v[self.active] += np.tensordot(w, self.basis, axes=1)
        gr = rotation(p["gaze_yaw"], p["gaze_pitch"], 0.0)
        for a, b, c in self.eyes:
            v[a:b] = (v[a:b] - c) @ gr.T + c
        return v


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Ry(yaw) @ Rx(-pitch) @ Rz(roll), degrees: yaw>0 turns +z towards +x, pitch>0 towards +y,
    roll>0 rotates counter-clockwise in the image. Applied as v' = R @ v."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return (ry @ rx @ rz).astype(np.float32)


def _grid_tris(nr: int, nc: int, skip: np.ndarray) -> np.ndarray:
    """Triangles of a row-major (nr, nc) grid, periodic in columns; skip[i, j] drops quad (i, j)."""
    i, j = np.meshgrid(np.arange(nr - 1), np.arange(nc), indexing="ij")
    keep = ~skip
    i, j = i[keep], j[keep]
    tl, tr = i * nc + j, i * nc + (j + 1) % nc
    bl, br = tl + nc, tr + nc
    return np.concatenate([np.stack([tl, bl, tr], 1), np.stack([tr, bl, br], 1)]).astype(np.int32)


def _skin_shapes(L: Layout, s: np.ndarray, t: np.ndarray, side_e: np.ndarray, side_m: np.ndarray,
                 ident: Identity) -> np.ndarray:
    """Blend-shape deltas (K, n, 3) of the skin grid vertices (chart coords s, t, flattened)."""
    P0, fx, fy = surface(s, t, L, ident, with_coords=True)
    front = np.clip(np.cos(s) * 1.6 - 0.3, 0.0, 1.0)
    D = np.zeros((len(SHAPES), len(s), 3), np.float32)
    # eyelids: slide the rows over the draped surface (the lid edge rides on the eyeball)
    for k, sign_x in ((0, 1.0), (1, -1.0)):
        near = np.nonzero((np.abs(fx - sign_x * L.ex) < L.hw) & (np.abs(fy - L.ey) < 0.2) & (front > 0))[0]
        fxn, fyn, sen = fx[near], fy[near], side_e[near]
        pr = _prof((fxn - sign_x * L.ex) / L.hw)
        up = np.clip(1 - (fyn - L.ey) / 0.17, 0, 1) ** 1.5 * (sen > 0)
        lo = np.clip(1 - (L.ey - fyn) / 0.13, 0, 1) ** 1.5 * (sen < 0)
        for kk, dy in ((k, L.h_up * up), (k + 2, -L.h_lo * lo), (k + 4, L.h_wide * up)):
            D[kk, near] = surface(s[near], t[near] + pr * dy / L.b, L, ident) - P0[near]
    # jaw: rotate the lower face about the hinge; the lower lip opens with a lens profile
    pm = _prof(fx / L.mw, 0.55)
    blend = np.clip((L.my - fy) / 0.24, 0, 1)
    wj = np.where(side_m < 0, pm * (1 - blend) + blend, 0.0) * front * (fy < L.my + 0.01)
    D[6] = jaw_delta(P0, L) * wj[:, None]
    D[6, :, 1] += 0.02 * pm * np.exp(-((fy - L.my) / 0.05) ** 2) * (side_m > 0)  # upper lip lifts
    gm = np.exp(-(fx / (L.mw + 0.1)) ** 4 - ((fy - L.my) / 0.13) ** 2) * front
    gl = np.exp(-(fx / (L.mw * 1.15)) ** 4 - ((fy - L.my) / 0.09) ** 2) * front
    D[7, :, 0] = -0.33 * fx * gm  # round: narrower, protruding, lips pushed out
    D[7, :, 2] = 0.08 * gm
    D[7, :, 1] = 0.25 * (fy - L.my) * gl
    D[8, :, 0] = 0.2 * fx * gm  # spread: wider, thinner lips, corners back
    D[8, :, 1] = -0.2 * (fy - L.my) * gl
    D[8, :, 2] = -0.02 * gm * (np.abs(fx) / L.mw)
    D[9, :, 1] = -0.45 * (fy - L.my) * gl  # press: lips squeezed together and in
    D[9, :, 2] = -0.015 * gl
    for sx in (1.0, -1.0):
        gc = _g(fx, fy, sx * L.mw, L.my, 0.1, 0.09) * front
        gch = _g(fx, fy, sx * 0.33, L.my + 0.22, 0.13, 0.1) * front
        D[10] += np.stack([sx * 0.035 * gc, 0.06 * gc + 0.035 * gch, -0.015 * gc + 0.025 * gch], 1)
        D[11] += np.stack([-sx * 0.005 * gc, -0.055 * gc, 0.0 * gc], 1)
        # brows: the band between the eye and forehead follows the brow
        gb = np.exp(-((fx - sx * L.ex * 1.05) / 0.22) ** 4) * front
        yb = np.clip((fy - L.ey - 0.07) / (L.brow_y - L.ey - 0.07), 0, 1) * np.clip(
            1 - (fy - L.brow_y) / 0.22, 0, 1) ** 1.2
        D[12, :, 1] += 0.075 * gb * yb
        D[13, :, 1] -= 0.045 * gb * yb
        gi = _g(fx, fy, sx * (L.ex - 0.1), L.brow_y, 0.1, 0.09) * front
        D[14] += np.stack([-sx * 0.03 * gi, -0.035 * gi, 0.012 * gi], 1)
    return D


def jaw_delta(p: np.ndarray, L: Layout, angle: float = 0.2) -> np.ndarray:
    """Displacement (n, 3) of points p rigidly attached to a fully open jaw (rotation about x)."""
    c, s = np.cos(angle), np.sin(angle)
    q = p - L.pivot
    out = np.zeros_like(p)
    out[:, 1] = q[:, 1] * c - q[:, 2] * s - q[:, 1]
    out[:, 2] = q[:, 1] * s + q[:, 2] * c - q[:, 2]
    return out


def build_mesh(ident: Identity) -> HeadMesh:
    """Build the skin grid, eyeballs, mouth interior, ears, neck, torso and hair for one identity."""
    L = layout(ident)
    t_rows, i_eye, i_mouth = _rows(L)
    s_cols = _cols()
    nr, nc = len(t_rows), len(s_cols)
    T, S = np.meshgrid(t_rows, s_cols, indexing="ij")
    rows = np.arange(nr)[:, None].repeat(nc, 1)
    side_e = np.where(rows <= i_eye, 1.0, -1.0).ravel()
    side_m = np.where(rows <= i_mouth, 1.0, -1.0).ravel()
    s, t = S.ravel(), T.ravel()
    P, fx, fy = surface(s, t, L, ident, with_coords=True)
    # holes: band quads (between the doubled rows) inside the eyes and the mouth
    skip = np.zeros((nr - 1, nc), bool)
    fxg = fx.reshape(nr, nc)
    for r, centres, half in ((i_eye, (L.ex, -L.ex), L.hw), (i_mouth, (0.0,), L.mw)):
        inside = np.zeros(nc, bool)
        for cx in centres:
            inside |= np.abs(fxg[r] - cx) < half
        skip[r] = (inside | np.roll(inside, -1)) & (np.abs(s_cols) < 1.2)
    tris = _grid_tris(nr, nc, skip)
    uv = np.stack([(s + np.pi) / (2 * np.pi), (1.0 - t) / 2.0], 1)
    D = _skin_shapes(L, s, t, side_e, side_m, ident)
    parts: Parts = build_parts(ident, L, P)
    n_skin = len(P)
    rest = np.concatenate([P, parts.verts + 0.0])
    uv_all = np.concatenate([uv, parts.uv])
    ao = np.concatenate([np.ones(n_skin), parts.ao])
    tris_all = np.concatenate([tris, parts.tris + n_skin])
    mat = np.concatenate([np.zeros(len(tris), np.int32), parts.mat])
    two = np.concatenate([np.zeros(len(tris), bool), parts.two_sided])
    # jaw-attached parts (lower teeth, tongue) get the rigid jaw motion as their blend shape
    Dp = np.zeros((len(SHAPES), len(parts.verts), 3), np.float32)
    jm = parts.jaw_mask
    Dp[SHAPES.index("jaw"), jm] = jaw_delta(parts.verts[jm], L)
    basis = np.concatenate([D, Dp], 1)
    # landmarks: head centre, nose tip, mouth centre (mid of the two centre-column lip vertices), ...
    c0 = int(np.argmin(np.abs(s_cols)))
    nose = int(np.argmax(np.where(np.abs(fx) < 0.05, P[:, 2], -9)))
    mouth = 0.5 * (P[i_mouth * nc + c0] + P[(i_mouth + 1) * nc + c0])
    chin = int(np.argmin(np.where((np.abs(fx) < 0.04) & (P[:, 2] > 0.2), P[:, 1], 9)))
    el, er = parts.eyes[0][2], parts.eyes[1][2]
    lm = np.array([[0, 0, 0], P[nose], mouth, el, er, el + [0, 0, L.re], er + [0, 0, L.re], P[chin]],
                  np.float32)
    lm_basis = np.zeros((len(SHAPES), len(lm), 3), np.float32)
    lm_basis[:, 2] = 0.5 * (D[:, i_mouth * nc + c0] + D[:, (i_mouth + 1) * nc + c0])
    lm_basis[:, 7] = D[:, chin]
    rest = np.concatenate([rest, lm]).astype(np.float32)
    uv_all = np.concatenate([uv_all, np.zeros((len(lm), 2))]).astype(np.float32)
    ao = np.concatenate([ao, np.ones(len(lm))]).astype(np.float32)
    basis = np.concatenate([basis, lm_basis], 1)
    active = np.nonzero(np.abs(basis).max(axis=(0, 2)) > 1e-6)[0].astype(np.int32)
    base = len(rest) - len(lm)
    eyes = tuple((a + n_skin, b + n_skin, c) for a, b, c in parts.eyes)
    eyes = (eyes[0][0], eyes[0][1], eyes[0][2]), (eyes[1][0], eyes[1][1], eyes[1][2])
    # pupils rotate with their eyeball: give them their own one-vertex ranges
    eyes = eyes + ((base + 5, base + 6, el), (base + 6, base + 7, er))
    return HeadMesh(rest=rest, uv=uv_all, ao=ao, tris=tris_all.astype(np.int32), mat=mat.astype(np.int32),
                    two_sided=two, basis=np.ascontiguousarray(basis[:, active], np.float32),
                    active=active, eyes=tuple((int(a), int(b), np.asarray(c, np.float32)) for a, b, c in eyes),
                    body=(parts.body[0] + n_skin, parts.body[1] + n_skin), body_w=parts.body_w, landmark0=base,
                    pivot=np.asarray(L.pivot, np.float32))


__all__ = ["HeadMesh", "build_mesh", "rotation", "SHAPES", "LANDMARKS", "hair_coverage"]
