"""3D warping of feature volumes: the one wrapper of 5D ``grid_sample`` and its 2D fallback,
plus the flow fields of the face latent space.

Conventions: volumes are ``B x C x D x H x W``; sampling grids are ``B x D' x H' x W' x 3`` holding
normalised ``(x, y, z)`` in [-1, 1] (x indexes W, y indexes H, z indexes D), ``align_corners=False``
(voxel centres), zero padding outside the volume. A grid says, for every output voxel, where to read
the input (backward warping).

Flows of the model (see :mod:`vasa.latent.pose` for the (R, t, s) frame):

* canonicalisation (E_app, posed source -> canonical ``V_app``): the canonical voxel ``p`` reads the
  source at ``s R (p + d_src(p)) + t`` (non-rigid ``d`` from the source's z_dyn, then its pose).
* driving (decoder, canonical ``V_app`` -> driving frame): the driving voxel ``p`` reads the canonical
  volume at ``q + d_drv(q)`` with ``q = R^T (p - t) / s`` (inverse rigid, then the first-order
  inverse of the dynamics deformation, which is defined on canonical coordinates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKENDS = ("5d", "2d")


def grid_sample_3d(volume: torch.Tensor, grid: torch.Tensor, backend: str = "5d") -> torch.Tensor:
    """Trilinear backward warp with zero padding; **the only call of 5D ``F.grid_sample``**.

    volume: B x C x D x H x W; grid: B x D' x H' x W' x 3 (x, y, z) -> B x C x D' x H' x W'.
    ``backend="2d"`` computes the same values with two 2D ``grid_sample`` calls (for MPS, ONNX,
    TensorRT, which lack the 5D op); it is differentiable w.r.t. both inputs.
    """
    if backend == "5d":
        return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if backend == "2d":
        return _grid_sample_3d_via_2d(volume, grid)
    raise ValueError(f"warp backend must be one of {BACKENDS}, got {backend!r}")


def _grid_sample_3d_via_2d(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear sampling as bilinear sampling of a depth-slice atlas + a lerp along depth.

    The volume is zero-padded by one voxel on every side and its D + 2 slices are stacked vertically
    into one 2D image (``B x C x (D+2)(H+2) x (W+2)``). Each output point reads the two slices around
    its depth with one bilinear sample each (inside the padded slice, so no bleeding between slices;
    the zero ring reproduces zero padding), then the two are blended by the depth fraction.
    """
    B, C, D, H, W = volume.shape
    _, Do, Ho, Wo, _ = grid.shape
    Hp, Wp, Dp = H + 2, W + 2, D + 2
    atlas = F.pad(volume, (1, 1, 1, 1, 1, 1)).reshape(B, C, Dp * Hp, Wp)  # B x C x (Dp Hp) x Wp
    # continuous voxel indices (align_corners=False), clamped into the padded (zero) ring
    ix = ((grid[..., 0] + 1) * W - 1) / 2
    iy = ((grid[..., 1] + 1) * H - 1) / 2
    iz = ((grid[..., 2] + 1) * D - 1) / 2
    ix = ix.clamp(-1.0, float(W)) + 1.0  # padded-slice pixel index in [0, W + 1]
    iy = iy.clamp(-1.0, float(H)) + 1.0
    iz = iz.clamp(-1.0, float(D)) + 1.0  # padded slice index in [0, D + 1]
    z0 = torch.floor(iz).clamp(max=Dp - 2)
    wz = (iz - z0).unsqueeze(1)  # B x 1 x Do x Ho x Wo; gradient w.r.t. z flows through it
    z0 = z0.detach()
    rows = torch.stack([z0 * Hp + iy, (z0 + 1) * Hp + iy], 1)  # B x 2 x Do x Ho x Wo (atlas rows)
    cols = ix.unsqueeze(1).expand_as(rows)
    gx = cols / (Wp - 1) * 2 - 1  # align_corners=True normalisation of the atlas
    gy = rows / (Dp * Hp - 1) * 2 - 1
    g2 = torch.stack([gx, gy], -1).reshape(B, 2 * Do * Ho, Wo, 2)  # B x (2 Do Ho) x Wo x 2
    s = F.grid_sample(atlas, g2, mode="bilinear", padding_mode="zeros", align_corners=True)
    s = s.reshape(B, C, 2, Do, Ho, Wo)
    return s[:, :, 0] * (1 - wz) + s[:, :, 1] * wz  # B x C x Do x Ho x Wo


def identity_grid(D: int, H: int, W: int, device=None, dtype=None) -> torch.Tensor:
    """Voxel-centre coordinates: 1 x D x H x W x 3 (x, y, z) in (-1, 1); warping with it is the identity."""
    def axis(n):
        return (torch.arange(n, device=device, dtype=dtype or torch.float32) * 2 + 1) / n - 1
    z, y, x = torch.meshgrid(axis(D), axis(H), axis(W), indexing="ij")
    return torch.stack([x, y, z], -1).unsqueeze(0)


def rigid_forward(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``s R p + t`` for points B x ... x 3 (R: B x 3 x 3, t: B x 3, s: B)."""
    B = points.shape[0]
    p = points.reshape(B, -1, 3) @ R.transpose(1, 2)  # B x N x 3
    p = p * s.view(B, 1, 1) + t.view(B, 1, 3)
    return p.view(points.shape)


def rigid_inverse(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``R^T (p - t) / s``, the inverse of :func:`rigid_forward`."""
    B = points.shape[0]
    p = (points.reshape(B, -1, 3) - t.view(B, 1, 3)) / s.view(B, 1, 1)
    return (p @ R).view(points.shape)  # row vectors: p @ R == (R^T p^T)^T


def flow_to_points(flow: torch.Tensor) -> torch.Tensor:
    """Displacement volume B x 3 x d x h x w -> B x d x h x w x 3 (for adding to grids)."""
    return flow.permute(0, 2, 3, 4, 1)


def canonical_grid(size: tuple[int, int, int], R, t, s, flow: torch.Tensor | None) -> torch.Tensor:
    """Grid that warps a posed source volume into the canonical frame (E_app -> V_app).

    size: (D, H, W) of the canonical volume; flow: coarse non-rigid displacement B x 3 x d x h x w
    (normalised units, defined on canonical coordinates) or None. -> B x D x H x W x 3.
    """
    B = R.shape[0]
    p = identity_grid(*size, device=R.device, dtype=R.dtype).expand(B, -1, -1, -1, -1)
    if flow is not None:
        p = p + flow_to_points(F.interpolate(flow, size=size, mode="trilinear", align_corners=False))
    return rigid_forward(p, R, t, s)


def driving_grid(size: tuple[int, int, int], R, t, s, flow: torch.Tensor | None,
                 backend: str = "5d") -> torch.Tensor:
    """Grid that warps canonical ``V_app`` into the driving frame (decoder side).

    ``q = R^T (p - t) / s``; with a flow, the canonical volume is read at ``q + d(q)`` (``d``
    trilinearly sampled at q on a grid of at most twice the flow's resolution, then upsampled: a
    cheap 3-channel warp). -> B x D x H x W x 3.
    """
    B = R.shape[0]
    p = identity_grid(*size, device=R.device, dtype=R.dtype).expand(B, -1, -1, -1, -1)
    q = rigid_inverse(p, R, t, s)  # B x D x H x W x 3
    if flow is None:
        return q
    # d(q) is smooth (a coarse field): sample it on a grid of at most the flow's resolution x 2 and
    # upsample, instead of one trilinear lookup per voxel
    low = tuple(min(n, 2 * f) for n, f in zip(size, flow.shape[-3:]))
    q_low = q if low == tuple(size) else rigid_inverse(
        identity_grid(*low, device=R.device, dtype=R.dtype).expand(B, -1, -1, -1, -1), R, t, s)
    d = grid_sample_3d(flow, q_low, backend)  # B x 3 x d' x h' x w'
    if low != tuple(size):
        d = F.interpolate(d, size=size, mode="trilinear", align_corners=False)
    return q + flow_to_points(d)


class DynFlow(torch.nn.Module):
    """Non-rigid flow from ``z_dyn``: an MLP -> coarse displacement volume B x 3 x d x h x w.

    The last layer is zero-initialised (the warp starts rigid). Displacements are in normalised
    volume units, ``(x, y, z)`` channel order, scaled by ``scale``. One instance canonicalises the
    source (W_{s->c}, in E_app), another drives the decoder (W_{c->d}).
    """

    def __init__(self, dyn_dim: int, size: tuple[int, int, int], hidden: int, scale: float = 0.1):
        super().__init__()
        self.size, self.scale = tuple(size), scale
        n = 3 * self.size[0] * self.size[1] * self.size[2]
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dyn_dim, hidden), torch.nn.LeakyReLU(0.2), torch.nn.Linear(hidden, n))
        torch.nn.init.zeros_(self.mlp[-1].weight)
        torch.nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, z_dyn: torch.Tensor) -> torch.Tensor:
        return self.scale * self.mlp(z_dyn).view(z_dyn.shape[0], 3, *self.size)


class FlowRefine(torch.nn.Module):
    """Appearance-aware refinement of the driving flow (``cfg.flow_refine``): a few 3D convolutions read the
    canonical volume V_app and the dynamics code (projected, broadcast) and add a displacement at V_app's own
    resolution (4 px a cell on S) to the coarse ``DynFlow`` field, trilinearly upsampled.

    ``DynFlow`` maps ``z_dyn`` alone to a coarse field (8 px a cell on S): it cannot know where *this*
    face's lids and lips are, and a lid is about one cell high. LivePortrait's dense motion network reads
    the source's features for the same reason. The last convolution is zero-initialised: built, the field
    is the coarse one. V_app: B x C x D x H x W; d: B x din; coarse: B x 3 x d x h x w -> B x 3 x D x H x W.
    """

    def __init__(self, channels: int, din: int, hidden: int, scale: float = 0.1):
        super().__init__()
        self.scale = scale
        self.code = torch.nn.Linear(din, hidden)  # z_dyn (+ z_pose) -> hidden, broadcast over the volume
        self.net = torch.nn.Sequential(
            torch.nn.Conv3d(channels + hidden, hidden, 3, 1, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv3d(hidden, hidden, 3, 1, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv3d(hidden, 3, 3, 1, 1))
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)

    def forward(self, V_app: torch.Tensor, d: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        size = tuple(V_app.shape[-3:])
        c = self.code(d)[:, :, None, None, None].expand(-1, -1, *size)  # B x hidden x D x H x W
        r = self.net(torch.cat([V_app, c], 1))  # B x 3 x D x H x W
        up = coarse if tuple(coarse.shape[-3:]) == size else F.interpolate(coarse, size=size, mode="trilinear",
                                                                            align_corners=False)
        return up + self.scale * r


def resample_grid_head(v: torch.Tensor, old_size, new_size) -> torch.Tensor:
    """The last linear layer (weight ``(ch d h w) x hidden`` or bias) of a head that outputs a coarse
    ``ch x d x h x w`` grid (``DynFlow``: 3 channels; ``DynVolume``: C), with its output grid trilinearly
    resampled from ``old_size`` to ``new_size``. The head's output is linear in these weights and its users
    upsample it trilinearly, so the finer head computes the coarse field on the finer grid and a fine-tune
    starts from nearly the same function: the canonicalisation flow is the same on the volume's grid when the
    new size is the volume's, and the driving warp reads the field at rotated points, where the finer grid
    interpolates a little differently (``flow_size`` (4, 16, 16) -> (4, 32, 32) on S: LivePortrait's 4 px a
    cell at 128 px; ``scripts/latent_finetune_ablation.py``, README "Why the decoder does not draw the blink")."""
    old_size, new_size = tuple(old_size), tuple(new_size)
    ch = v.shape[0] // (old_size[0] * old_size[1] * old_size[2])
    g = v.float().reshape(ch, *old_size, -1).permute(4, 0, 1, 2, 3)  # hidden (1 for a bias) x ch x d x h x w
    g = F.interpolate(g, size=new_size, mode="trilinear", align_corners=False)
    return g.permute(1, 2, 3, 4, 0).reshape(-1, *v.shape[1:]).to(v.dtype)
