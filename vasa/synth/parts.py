"""Rigid head parts around the skin grid: eyeballs, mouth interior, ears, neck, torso, long hair, bun.

Each part is a small grid mesh (rows x columns) wound counter-clockwise seen from outside, with
texture coordinates in [0, 1] inside its material's texture rect (see ``vasa.synth.texture``).
The mouth cavity is wound inwards (we see its back wall through the lips); the lower teeth and the
tongue are flagged to follow the jaw; the torso follows a damped head rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasa.synth.identity import Identity
from vasa.synth.shape import Layout, base, hair_volume, smooth, surface

# material ids (rows of the texture atlas rects)
HEAD, EYE, EAR, NECK, CLOTH, HAIR, TEETH, CAVITY, TONGUE = range(9)


@dataclass
class Parts:
    verts: np.ndarray  # (n, 3) head-rest space
    uv: np.ndarray  # (n, 2)
    ao: np.ndarray  # (n,)
    tris: np.ndarray  # (m, 3) indices into verts
    mat: np.ndarray  # (m,) material id
    two_sided: np.ndarray  # (m,) bool
    jaw_mask: np.ndarray  # (n,) bool: vertex follows the jaw
    eyes: tuple  # ((start, stop, centre), (start, stop, centre)): left (+x) then right eyeball
    body: tuple[int, int]  # vertex range of the neck and torso (blend between head and body motion)
    body_w: np.ndarray  # (body[1] - body[0],) 1 = moves with the head, 0 = moves with the torso


def grid_tris(nr: int, nc: int, periodic: bool, inward: bool = False) -> np.ndarray:
    """Triangles of a row-major (nr, nc) grid whose rows run top->bottom and columns left->right
    (seen from outside); ``periodic`` closes the columns, ``inward`` flips the winding."""
    cols = nc if periodic else nc - 1
    i, j = np.meshgrid(np.arange(nr - 1), np.arange(cols), indexing="ij")
    tl, tr = i * nc + j, i * nc + (j + 1) % nc
    bl, br = tl + nc, tr + nc
    t = np.concatenate([np.stack([tl, bl, tr], -1), np.stack([tr, bl, br], -1)]).reshape(-1, 3)
    return (t[:, [0, 2, 1]] if inward else t).astype(np.int32)


def sphere(nr: int, nc: int, theta_pow: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere grid with its pole on +y: points (nr*nc, 3) and (theta, phi) per point."""
    th = np.pi * np.linspace(0.0, 1.0, nr) ** theta_pow
    ph = np.linspace(-np.pi, np.pi, nc, endpoint=False)
    T, PH = np.meshgrid(th, ph, indexing="ij")
    p = np.stack([np.sin(T) * np.sin(PH), np.cos(T), np.sin(T) * np.cos(PH)], -1).reshape(-1, 3)
    return p, np.stack([T.ravel(), PH.ravel()], 1)


class _Builder:
    """Accumulates parts into flat arrays."""

    def __init__(self) -> None:
        self.v, self.uv, self.ao, self.t, self.m, self.two, self.jaw = [], [], [], [], [], [], []
        self.n = 0

    def add(self, v, uv, tris, mat, ao=1.0, two=False, jaw=False) -> tuple[int, int]:
        start = self.n
        self.v.append(np.asarray(v, np.float32))
        self.uv.append(np.clip(np.asarray(uv, np.float32), 0, 1))
        self.ao.append(np.broadcast_to(np.asarray(ao, np.float32), (len(v),)))
        self.t.append(tris + start)
        self.m.append(np.full(len(tris), mat, np.int32))
        self.two.append(np.full(len(tris), two, bool))
        self.jaw.append(np.full(len(v), jaw, bool))
        self.n += len(v)
        return start, self.n


def build_parts(ident: Identity, L: Layout, skin: np.ndarray) -> Parts:
    """All rigid parts of one identity; ``skin`` (n, 3) is the rest skin grid (for placement)."""
    B = _Builder()
    rng = np.random.default_rng([ident.seed, 7])
    # eyeballs: pole on +z, rows dense near the pupil; planar uv of the front hemisphere
    eyes = []
    for sx in (1.0, -1.0):
        p, _ = sphere(16, 20, 1.5)
        p = np.stack([p[:, 0], -p[:, 2], p[:, 1]], 1)  # rotate the pole from +y to +z
        rim = np.where(p[:, 2:] < 0, 1.0 / np.maximum(np.linalg.norm(p[:, :2], axis=1, keepdims=True), 1e-6), 1.0)
        uv = 0.5 + 0.5 * np.stack([p[:, 0], -p[:, 1]], 1) * rim
        c = np.array([sx * L.ex, L.ey, L.ze])
        a, b = B.add(c + L.re * p, uv, grid_tris(16, 20, True), EYE)
        eyes.append((a, b, c.astype(np.float32)))
    # mouth interior: the lip-front depth sets where it sits
    zm = float(surface(np.array([0.0]), np.array([L.my / L.b]), L, ident)[0, 2])
    p, tp = sphere(9, 16)
    cav = np.array([0.0, L.my - 0.07, zm - 0.3]) + p * [L.mw + 0.05, 0.22, 0.3]
    depth = np.clip((cav[:, 2] - (zm - 0.6)) / 0.6, 0, 1)
    B.add(cav, np.stack([tp[:, 1] / (2 * np.pi) + 0.5, tp[:, 0] / np.pi], 1), grid_tris(9, 16, True, True),
          CAVITY, ao=0.25 + 0.5 * depth)
    for upper in (True, False):
        R = L.mw * (1.05 if upper else 0.98)
        zc = zm - (0.045 if upper else 0.06) - R
        y0, y1 = (L.my + 0.035, L.my - 0.035) if upper else (L.my - 0.015, L.my - 0.085)
        phi = np.linspace(-1.15, 1.15, 15)
        Y, PH = np.meshgrid(np.linspace(y0, y1, 3), phi, indexing="ij")
        v = np.stack([R * np.sin(PH), Y, zc + R * np.cos(PH)], -1).reshape(-1, 3)
        uv = np.stack([(PH.ravel() + 1.15) / 2.3, np.linspace(0, 1, 3).repeat(15) * 0.5 + (0 if upper else 0.5)], 1)
        B.add(v, uv, grid_tris(3, 15, False), TEETH, ao=0.35 + 0.6 * np.cos(PH.ravel()) ** 2, jaw=not upper)
    p, tp = sphere(7, 12)
    tongue = np.array([0.0, L.my - 0.11, zm - 0.3]) + p * [L.mw * 0.8, 0.06, 0.15]
    B.add(tongue, np.stack([tp[:, 1] / (2 * np.pi) + 0.5, tp[:, 0] / np.pi], 1), grid_tris(7, 12, True), TONGUE,
          ao=0.3 + 0.5 * np.clip((tongue[:, 2] - zm + 0.35) / 0.3, 0, 1), jaw=True)
    # ears: flattened ellipsoids on the sides, flaring backwards
    ty = (L.ey - 0.09) / L.b
    for sx in (1.0, -1.0):
        x, _, z = base(np.array([sx * (np.pi / 2 + 0.1)]), np.array([ty]), ident)
        p, tp = sphere(9, 12)
        es = ident.ear_size
        loc = p * [0.045, 0.15 * es, 0.085 * es]
        ang = -sx * (0.15 + 0.4 * ident.ear_out)
        rot = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
        v = loc @ rot.T + [x[0] + sx * 0.03, L.ey - 0.09, z[0] - 0.02]
        uv = np.stack([0.5 + 0.5 * p[:, 2] * sx, 0.5 - 0.5 * p[:, 1]], 1)
        B.add(v, uv, grid_tris(9, 12, True), EAR)
    # neck: a cylinder with a flaring base, rigid with the head
    ys = np.linspace(L.ey - 0.35, -L.b - 1.4, 8)
    ph = np.linspace(-np.pi, np.pi, 18, endpoint=False)
    Y, PH = np.meshgrid(ys, ph, indexing="ij")
    fl = 1 + 0.6 * smooth(-L.b - 0.3, -L.b - 0.9, Y)
    v = np.stack([0.4 * L.a / 0.8 * fl * np.sin(PH), Y, -0.12 + 0.37 * fl * np.cos(PH)], -1).reshape(-1, 3)
    neck = B.add(v, np.stack([PH.ravel() / (2 * np.pi) + 0.5, np.linspace(0, 1, 8).repeat(18)], 1),
                 grid_tris(8, 18, True), NECK)
    neck_w = smooth(-L.b - 0.6, -L.b * 0.8, v[:, 1])
    # torso: a wide ellipsoid (shoulders and chest), clothed
    p, tp = sphere(10, 22)
    torso = np.array([0.0, -L.b - 1.15, -0.25]) + p * [1.6 * L.a / 0.8, 0.75, 0.6]
    body = B.add(torso, np.stack([tp[:, 1] / (2 * np.pi) + 0.5, tp[:, 0] / np.pi], 1), grid_tris(10, 22, True), CLOTH)
    # long hair: a curtain around the sides and back; bun: a sphere at the back of the crown
    vol = hair_volume(ident)
    if ident.hair_style in ("long", "bangs"):
        s0, nc, nr = 1.15, 19, 9
        ss = np.linspace(s0, 2 * np.pi - s0, nc)
        y_top = L.ey + 0.15
        end = (-0.85 * L.b if ident.hair_style == "bangs" else -L.b - 0.2 - 0.7 * rng.random())
        ends = end + rng.normal(0, 0.04, nc)
        q = np.linspace(0, 1, nr)[:, None]
        Y = y_top + (ends[None, :] - y_top) * q
        rx, rz = (L.a + vol + 0.03) * (1 + 0.15 * q), (L.c + vol + 0.02) * (1 + 0.08 * q)
        v = np.stack([rx * np.sin(ss) + 0 * Y, Y, rz * np.cos(ss) - 0.05 + 0 * Y], -1).reshape(-1, 3)
        uv = np.stack([np.tile((ss - s0) / (2 * np.pi - 2 * s0), nr), q.repeat(nc, 1).ravel()], 1)
        B.add(v, uv, grid_tris(nr, nc, False), HAIR, two=True)
    if ident.hair_style == "bun":
        p, tp = sphere(8, 12)
        v = np.array([0.0, 0.55 * L.b, -0.85 * L.c]) + p * 0.28
        B.add(v, np.stack([tp[:, 1] / (2 * np.pi) + 0.5, tp[:, 0] / np.pi], 1), grid_tris(8, 12, True), HAIR)
    return Parts(
        verts=np.concatenate(B.v), uv=np.concatenate(B.uv), ao=np.concatenate(B.ao),
        tris=np.concatenate(B.t).astype(np.int32), mat=np.concatenate(B.m), two_sided=np.concatenate(B.two),
        jaw_mask=np.concatenate(B.jaw), eyes=tuple(eyes), body=(neck[0], body[1]),
        body_w=np.concatenate([neck_w, np.zeros(body[1] - body[0])]).astype(np.float32),
    )
