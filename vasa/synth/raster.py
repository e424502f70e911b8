"""A small numba triangle rasterizer producing a visibility buffer (triangle id + barycentrics).

Camera convention: a pinhole at the origin looking down -z (x right, y up), focal length ``f`` in
pixels, principal point ``(cx, cy)`` in pixels with the image y axis pointing down. A camera-space
point (x, y, z), z < 0, lands at ``(cx + f * x / -z, cy - f * y / -z)``; pixel (i, j) has its centre at
``(j + 0.5, i + 0.5)``.

Triangles are wound counter-clockwise seen from their front (outward normal = (v1-v0) x (v2-v0)).
Back faces are culled unless the triangle's ``two_sided`` flag is set. Depth is resolved with a
z-buffer on ``1 / -z`` (linear in screen space, so exact under perspective). Shading happens later,
per pixel, from the visibility buffer (deferred), so overdraw only costs a few writes.

All kernels are ``@njit(cache=True)``: the first process compiles once, later ones load the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEAR = 0.05  # camera-space near plane distance (triangles closer than this are skipped)


@njit(cache=True)
def vertex_normals(v: np.ndarray, tris: np.ndarray, out: np.ndarray) -> None:
    """Area-weighted vertex normals. v: (N, 3) f32, tris: (T, 3) i32, out: (N, 3) f32 (written)."""
    out[:] = 0.0
    for t in range(tris.shape[0]):
        a, b, c = tris[t, 0], tris[t, 1], tris[t, 2]
        e1x, e1y, e1z = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
        e2x, e2y, e2z = v[c, 0] - v[a, 0], v[c, 1] - v[a, 1], v[c, 2] - v[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        for k in (a, b, c):
            out[k, 0] += nx
            out[k, 1] += ny
            out[k, 2] += nz
    for i in range(v.shape[0]):
        n = np.sqrt(out[i, 0] ** 2 + out[i, 1] ** 2 + out[i, 2] ** 2) + 1e-12
        out[i, 0] /= n
        out[i, 1] /= n
        out[i, 2] /= n


@njit(cache=True)
def project(v: np.ndarray, f: float, cx: float, cy: float, out: np.ndarray) -> None:
    """Camera-space points (N, 3) -> out (N, 3): pixel x, pixel y, inverse depth 1/-z."""
    for i in range(v.shape[0]):
        iz = 1.0 / max(-v[i, 2], NEAR)
        out[i, 0] = cx + f * v[i, 0] * iz
        out[i, 1] = cy - f * v[i, 1] * iz
        out[i, 2] = iz


@njit(cache=True, fastmath=True)
def rasterize(
    p: np.ndarray,  # (N, 3) f32 projected vertices (px, py, 1/-z) from `project`
    tris: np.ndarray,  # (T, 3) i32
    two_sided: np.ndarray,  # (T,) bool
    tri_buf: np.ndarray,  # (H, W) i32 out: visible triangle id or -1
    b_buf: np.ndarray,  # (H, W, 2) f32 out: screen-space barycentrics of v1, v2
    z_buf: np.ndarray,  # (H, W) f32 out: inverse depth of the visible surface (0 = empty)
) -> None:
    """Z-buffered rasterization of all triangles into the visibility buffer (buffers are reset)."""
    h, w = tri_buf.shape
    tri_buf[:] = -1
    z_buf[:] = 0.0
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        x0, y0, z0 = p[i0, 0], p[i0, 1], p[i0, 2]
        x1, y1, z1 = p[i1, 0], p[i1, 1], p[i1, 2]
        x2, y2, z2 = p[i2, 0], p[i2, 1], p[i2, 2]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or (area > 0.0 and not two_sided[t]):
            continue  # degenerate or back-facing (CCW in y-up = negative area in y-down)
        xmin = max(int(np.floor(min(x0, min(x1, x2)))), 0)
        xmax = min(int(np.ceil(max(x0, max(x1, x2)))), w - 1)
        ymin = max(int(np.floor(min(y0, min(y1, y2)))), 0)
        ymax = min(int(np.ceil(max(y0, max(y1, y2)))), h - 1)
        if xmin > xmax or ymin > ymax:
            continue
        inv = 1.0 / area
        # barycentrics of v1, v2 are linear in x along a row: b = A * x + C(row)
        a1 = (y2 - y0) * inv
        a2 = -(y1 - y0) * inv
        a0 = -(a1 + a2)
        for py in range(ymin, ymax + 1):
            fy = py + 0.5
            c1 = (-x0 * (y2 - y0) - (x2 - x0) * (fy - y0)) * inv
            c2 = ((x1 - x0) * (fy - y0) + x0 * (y1 - y0)) * inv
            c0 = 1.0 - c1 - c2
            lo, hi = -1e30, 1e30
            ok = True
            for aa, cc in ((a0, c0), (a1, c1), (a2, c2)):
                if aa > 0.0:
                    lo = max(lo, -cc / aa)
                elif aa < 0.0:
                    hi = min(hi, -cc / aa)
                elif cc < 0.0:
                    ok = False
            if not ok or lo > hi:
                continue
            pa = max(int(np.ceil(lo - 0.5)), xmin)
            pb = min(int(np.floor(hi - 0.5)), xmax)
            for px in range(pa, pb + 1):
                fx = px + 0.5
                b1 = min(max(a1 * fx + c1, 0.0), 1.0)
                b2 = min(max(a2 * fx + c2, 0.0), 1.0 - b1)
                iz = z0 + b1 * (z1 - z0) + b2 * (z2 - z0)
                if iz > z_buf[py, px]:
                    z_buf[py, px] = iz
                    tri_buf[py, px] = t
                    b_buf[py, px, 0] = b1
                    b_buf[py, px, 1] = b2


@njit(cache=True)
def perspective_weights(p: np.ndarray, tris: np.ndarray, t: int, b1: float, b2: float) -> tuple:
    """Perspective-correct barycentric weights (w0, w1, w2) of a pixel in triangle t."""
    z0, z1, z2 = p[tris[t, 0], 2], p[tris[t, 1], 2], p[tris[t, 2], 2]
    a0 = (1.0 - b1 - b2) * z0
    a1 = b1 * z1
    a2 = b2 * z2
    s = a0 + a1 + a2
    return a0 / s, a1 / s, a2 / s


def new_buffers(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allocate (tri_buf (H, W) i32, b_buf (H, W, 2) f32, z_buf (H, W) f32) for `rasterize`."""
    return (np.full((h, w), -1, np.int32), np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32))
