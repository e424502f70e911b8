"""Render a procedural identity's 3D head for one frame of face parameters.

Pipeline per frame: blend shapes + gaze (``mesh.HeadMesh.deform``) -> head pose (rotation about the
head centre, ``mesh.rotation``; the torso follows 30% of the yaw and 20% of the roll, the neck blends
between both) -> camera space (head centre at ``(tx, ty, -tz)``) -> vertex normals -> projection ->
numba z-buffer rasterization into a visibility buffer -> per-pixel deferred shading -> INTER_AREA
downsampling by ``supersample``. Everything that depends only on the identity (mesh, blend shapes,
texture atlas, background, buffers) is built once in ``HeadRenderer.__init__``.

Camera: fixed pinhole at the origin looking down -z, vertical (= horizontal) field of view
``FOV_Y_DEG`` = 18 degrees. At ``tz = NOMINAL_DISTANCE`` (9 head radii) the frame spans ~2.85 head
radii: the face (hairline to chin) fills ~55% of the image height, hair top and neck are visible.
The ``scale`` column of the parameters is not read: apparent size follows ``tz``. Landmark and head
centre pixel coordinates use the convention that pixel i spans [i, i + 1) (its centre is i + 0.5).

Shading ("photo"): bilinear albedo, per-pixel normals, wrapped Lambert key light (identity's
direction, intensity, tint) + hemispheric ambient + Blinn specular (strength from the texture alpha),
ambient occlusion inside the mouth. Style "art" is a cel/poster look for an out-of-distribution split:
blurred albedo whose luminance is posterised to 5 levels (hue kept, saturation boosted), lighting
quantised to 3 bands, no specular, dark 2-pixel outlines (at the supersampled resolution) at
silhouettes, material boundaries and depth jumps, background posterised to 4 levels per channel.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from numba import njit

from vasa.errors import VasaError
from vasa.synth.identity import Identity
from vasa.synth.mesh import LANDMARKS, build_mesh, rotation
from vasa.synth.params import N_PARAMS, NOMINAL_DISTANCE, PARAM_INDEX, STYLES
from vasa.synth.raster import new_buffers, perspective_weights, project, rasterize, vertex_normals
from vasa.synth.shape import layout
from vasa.synth.texture import RECTS, atlas, noise

FOV_Y_DEG = 18.0
# per material: wrap (soft skin light), shininess, direct-light scale
_WRAP = np.array([0.35, 0.1, 0.35, 0.35, 0.2, 0.2, 0.1, 0.0, 0.2], np.float32)
_SHINE = np.array([24, 60, 16, 16, 8, 20, 30, 8, 20], np.float32)


def camera(resolution: int = 128) -> dict:
    """Camera intrinsics at the output resolution (square image; pixel i's centre at i + 0.5)."""
    f = 0.5 * resolution / np.tan(np.radians(FOV_Y_DEG) / 2)
    return {"fov_y_deg": FOV_Y_DEG, "focal_px": float(f), "cx": resolution / 2, "cy": resolution / 2,
            "resolution": resolution, "nominal_distance": NOMINAL_DISTANCE}


def project_head_center(params: np.ndarray, resolution: int = 128) -> tuple[float, float]:
    """Pixel position of the head centre (needs only tx, ty, tz)."""
    c = camera(resolution)
    tx, ty, tz = (float(params[PARAM_INDEX[k]]) for k in ("tx", "ty", "tz"))
    return c["cx"] + c["focal_px"] * tx / tz, c["cy"] - c["focal_px"] * ty / tz


def background(ident: Identity, size: int, style: str) -> np.ndarray:
    """Background image (size, size, 3) float32 in [0, 1]: solid, gradient, noise or shapes."""
    rng = np.random.default_rng([ident.seed, 11])
    c1, c2 = np.asarray(ident.bg_color1, np.float32), np.asarray(ident.bg_color2, np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    if ident.background == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        m = np.clip(0.5 + (xx * np.cos(a) + yy * np.sin(a)) * 1.2, 0, 1)
    elif ident.background == "noise":
        m = np.clip(0.5 + 0.5 * noise(rng, size, size, 4, 4) + 0.2 * noise(rng, size, size, 16, 16), 0, 1)
    else:
        m = np.zeros((size, size), np.float32)
    img = c1 + (c2 - c1) * m[..., None]
    if ident.background == "shapes":
        for _ in range(int(rng.integers(5, 13))):
            col = tuple(float(x) for x in np.clip(rng.choice([c2, rng.uniform(0, 1, 3)]) * rng.uniform(0.7, 1.2), 0, 1))
            cx, cy, r = (int(v) for v in rng.uniform(0, size, 2).tolist() + [rng.uniform(0.05, 0.3) * size])
            if rng.random() < 0.5:
                cv2.circle(img, (cx, cy), r, col, -1, cv2.LINE_AA)
            else:
                box = ((cx, cy), (r * 2.0, r * rng.uniform(0.3, 1.5)), float(rng.uniform(0, 180)))
                cv2.fillPoly(img, [cv2.boxPoints(box).astype(np.int32)], col, cv2.LINE_AA)
        img = cv2.GaussianBlur(img, (0, 0), size / 150)
    img = img * (1 - 0.25 * (xx ** 2 + yy ** 2))[..., None]  # vignette
    if style == "art":
        img = np.floor(img * 4) / 4 + 0.12
    return np.ascontiguousarray(np.clip(img, 0, 1), np.float32)


@njit(cache=True, fastmath=True)
def _shade(tri_buf, b_buf, z_buf, proj, tris, mat, two, uv, nrm, ao, tex, rects, light, lcol, amb,
           art, bg, out):
    """Deferred shading of the visibility buffer into out (H, W, 3) uint8 (bg: (H, W, 3) uint8)."""
    h, w = tri_buf.shape
    hx = light[0]
    hy = light[1]
    hz = light[2] + 1.0
    hn = np.sqrt(hx * hx + hy * hy + hz * hz)
    hx, hy, hz = hx / hn, hy / hn, hz / hn
    for i in range(h):
        for j in range(w):
            t = tri_buf[i, j]
            if t < 0:
                out[i, j, 0] = bg[i, j, 0]
                out[i, j, 1] = bg[i, j, 1]
                out[i, j, 2] = bg[i, j, 2]
                continue
            w0, w1, w2 = perspective_weights(proj, tris, t, b_buf[i, j, 0], b_buf[i, j, 1])
            a, b, c = tris[t, 0], tris[t, 1], tris[t, 2]
            u = w0 * uv[a, 0] + w1 * uv[b, 0] + w2 * uv[c, 0]
            v = w0 * uv[a, 1] + w1 * uv[b, 1] + w2 * uv[c, 1]
            nx = w0 * nrm[a, 0] + w1 * nrm[b, 0] + w2 * nrm[c, 0]
            ny = w0 * nrm[a, 1] + w1 * nrm[b, 1] + w2 * nrm[c, 1]
            nz = w0 * nrm[a, 2] + w1 * nrm[b, 2] + w2 * nrm[c, 2]
            occ = w0 * ao[a] + w1 * ao[b] + w2 * ao[c]
            nn = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-9
            nx, ny, nz = nx / nn, ny / nn, nz / nn
            m = mat[t]
            if two[t] and nz < 0.0:
                nx, ny, nz = -nx, -ny, -nz
                occ *= 0.55
            # bilinear texel fetch inside the material rect
            fy = rects[m, 0] + v * (rects[m, 2] - 1.0)
            fx = rects[m, 1] + u * (rects[m, 3] - 1.0)
            y0 = min(int(fy), tex.shape[0] - 2)
            x0 = min(int(fx), tex.shape[1] - 2)
            dy, dx = fy - y0, fx - x0
            wa, wb, wc, wd = (1 - dx) * (1 - dy), dx * (1 - dy), (1 - dx) * dy, dx * dy
            al0 = tex[y0, x0, 0] * wa + tex[y0, x0 + 1, 0] * wb + tex[y0 + 1, x0, 0] * wc + tex[y0 + 1, x0 + 1, 0] * wd
            al1 = tex[y0, x0, 1] * wa + tex[y0, x0 + 1, 1] * wb + tex[y0 + 1, x0, 1] * wc + tex[y0 + 1, x0 + 1, 1] * wd
            al2 = tex[y0, x0, 2] * wa + tex[y0, x0 + 1, 2] * wb + tex[y0 + 1, x0, 2] * wc + tex[y0 + 1, x0 + 1, 2] * wd
            al3 = tex[y0, x0, 3] * wa + tex[y0, x0 + 1, 3] * wb + tex[y0 + 1, x0, 3] * wc + tex[y0 + 1, x0 + 1, 3] * wd
            ndl = nx * light[0] + ny * light[1] + nz * light[2]
            wr = _WRAP[m]
            dif = max(0.0, (ndl + wr) / (1.0 + wr))
            hemi = amb * (0.8 + 0.25 * ny)
            if art:
                dif = 0.25 if dif < 0.25 else (0.7 if dif < 0.7 else 1.0)
                lum = 0.3 * al0 + 0.59 * al1 + 0.11 * al2  # posterise luminance, keep and boost hue
                ql = (np.floor(lum * 5.0) + 0.6) / 5.0
                sc = ql / max(lum, 1e-3)
                al0 = ql + 1.35 * (al0 * sc - ql)
                al1 = ql + 1.35 * (al1 * sc - ql)
                al2 = ql + 1.35 * (al2 * sc - ql)
                spec = 0.0
            else:
                ndh = max(0.0, nx * hx + ny * hy + nz * hz)
                sh = _SHINE[m]
                spec = al3 * occ * ndh / (sh - sh * ndh + ndh)  # Schlick's cheap power
            lit = hemi * occ
            dd = dif * occ * occ
            out[i, j, 0] = np.uint8(min(max(al0 * (lit + dd * lcol[0]) + spec * lcol[0], 0.0), 1.0) * 255.0 + 0.5)
            out[i, j, 1] = np.uint8(min(max(al1 * (lit + dd * lcol[1]) + spec * lcol[1], 0.0), 1.0) * 255.0 + 0.5)
            out[i, j, 2] = np.uint8(min(max(al2 * (lit + dd * lcol[2]) + spec * lcol[2], 0.0), 1.0) * 255.0 + 0.5)


@njit(cache=True)
def _outline(tri_buf, z_buf, mat, out):
    """Art style: darken both pixels of every horizontal/vertical neighbour pair that straddles a
    silhouette, a material change or a depth jump (> 0.06 head radii): 2-pixel lines."""
    h, w = tri_buf.shape
    edge = np.zeros((h, w), np.bool_)
    for i in range(h):
        for j in range(w):
            ta = tri_buf[i, j]
            for ii, jj in ((i, j + 1), (i + 1, j)):
                if ii >= h or jj >= w:
                    continue
                tb = tri_buf[ii, jj]
                if ta < 0 and tb < 0:
                    continue
                e = ta < 0 or tb < 0 or mat[ta] != mat[tb]
                if not e:
                    e = abs(1.0 / z_buf[i, j] - 1.0 / z_buf[ii, jj]) > 0.06
                if e:
                    edge[i, j] = True
                    edge[ii, jj] = True
    for i in range(h):
        for j in range(w):
            if edge[i, j]:
                for k in range(3):
                    out[i, j, k] = np.uint8(out[i, j, k] * 0.15)


class HeadRenderer:
    """Renders one identity; ``render(params)`` -> (resolution, resolution, 3) uint8 RGB."""

    def __init__(self, identity: Identity, resolution: int = 128, supersample: int = 2, style: str = "photo"):
        if not isinstance(identity, Identity):
            raise VasaError(f"identity must be a vasa.synth.identity.Identity, got {type(identity).__name__}: "
                            "use sample_identity(rng) or Identity.from_dict(d)")
        if not isinstance(resolution, (int, np.integer)) or not 64 <= resolution <= 512:
            raise VasaError(f"resolution {resolution!r} out of range: use an integer in 64..512")
        if not isinstance(supersample, (int, np.integer)) or not 1 <= supersample <= 4:
            raise VasaError(f"supersample {supersample!r} out of range: use an integer in 1..4")
        if style not in STYLES:
            raise VasaError(f"unknown style {style!r}: use one of {', '.join(STYLES)}")
        self.identity, self.resolution, self.supersample, self.style = identity, int(resolution), int(supersample), style
        self.size = self.resolution * self.supersample
        self.mesh = build_mesh(identity)
        if style == "art":  # flat paint: no skin noise / freckles to posterise into blotches
            self.atlas = cv2.GaussianBlur(atlas(replace(identity, skin_noise=0.0, freckles=0.0), layout(identity)),
                                          (0, 0), 1.5)
        else:
            self.atlas = atlas(identity, layout(identity))
        self.bg = (background(identity, self.size, style) * 255 + 0.5).astype(np.uint8)
        self.f = 0.5 * self.size / np.tan(np.radians(FOV_Y_DEG) / 2)
        self.bufs = new_buffers(self.size, self.size)
        n = len(self.mesh.rest)
        self.nrm, self.proj = np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32)
        self.img = np.zeros((self.size, self.size, 3), np.uint8)
        az, el = np.radians([identity.light_azimuth, identity.light_elevation])
        self.light = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], np.float32)
        self.lcol = np.asarray(identity.light_tint, np.float32) * identity.light_intensity

    def _check(self, params: np.ndarray) -> np.ndarray:
        p = np.asarray(params, np.float32)
        if p.shape != (N_PARAMS,):
            raise VasaError(f"params must have shape ({N_PARAMS},), got {p.shape}: pass one frame of FRAME_PARAMS")
        if not np.all(np.isfinite(p)) or p[PARAM_INDEX["tz"]] <= 1.5:
            raise VasaError("params hold non-finite values or tz <= 1.5: clip them with clip_params()")
        return p

    def posed(self, params: np.ndarray) -> np.ndarray:
        """Camera-space vertices (N, 3) for one frame (deformation + pose + translation)."""
        p = self._check(params)
        g = {k: float(p[PARAM_INDEX[k]]) for k in ("yaw", "pitch", "roll", "tx", "ty", "tz")}
        v = self.mesh.deform(p, PARAM_INDEX)
        trans = np.array([g["tx"], g["ty"], -g["tz"]], np.float32)
        out = v @ rotation(g["yaw"], g["pitch"], g["roll"]).T + trans
        a, b = self.mesh.body
        vb = v[a:b] @ rotation(0.3 * g["yaw"], 0.0, 0.2 * g["roll"]).T + trans
        w = self.mesh.body_w[:, None]
        out[a:b] = w * out[a:b] + (1 - w) * vb
        return out

    def render(self, params: np.ndarray) -> np.ndarray:
        """One frame: params (N_PARAMS,) float -> (resolution, resolution, 3) uint8 RGB."""
        cam = self.posed(params)
        m = self.mesh
        vertex_normals(cam, m.tris, self.nrm)
        c = self.size / 2
        project(cam, self.f, c, c, self.proj)
        tri_buf, b_buf, z_buf = self.bufs
        rasterize(self.proj, m.tris, m.two_sided, tri_buf, b_buf, z_buf)
        _shade(tri_buf, b_buf, z_buf, self.proj, m.tris, m.mat, m.two_sided, m.uv, self.nrm, m.ao, self.atlas,
               RECTS, self.light, self.lcol, np.float32(self.identity.ambient), self.style == "art", self.bg, self.img)
        if self.style == "art":
            _outline(tri_buf, z_buf, m.mat, self.img)
        if self.supersample == 1:
            return self.img.copy()
        return cv2.resize(self.img, (self.resolution, self.resolution), interpolation=cv2.INTER_AREA)

    def landmarks(self, params: np.ndarray) -> dict[str, tuple[float, float]]:
        """Pixel coordinates (x, y) at the output resolution of every name in mesh.LANDMARKS."""
        cam = self.posed(params)[self.mesh.landmark0:]
        f = self.f / self.supersample
        c = self.resolution / 2
        return {n: (float(c + f * q[0] / -q[2]), float(c - f * q[1] / -q[2])) for n, q in zip(LANDMARKS, cam)}

    def project(self, params: np.ndarray, name: str) -> tuple[float, float]:
        """Pixel coordinates of one landmark (see mesh.LANDMARKS)."""
        if name not in LANDMARKS:
            raise VasaError(f"unknown landmark {name!r}: use one of {', '.join(LANDMARKS)}")
        return self.landmarks(params)[name]

    def camera(self) -> dict:
        """Camera intrinsics at this renderer's output resolution."""
        return camera(self.resolution)


def render_frame(identity: Identity, params: np.ndarray, resolution: int = 128, style: str = "photo",
                 supersample: int = 2) -> np.ndarray:
    """Convenience: build a renderer and render one frame (use HeadRenderer for sequences)."""
    return HeadRenderer(identity, resolution, supersample, style).render(params)
