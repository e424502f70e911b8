"""The three independent encoders of the face latent space, and the blocks shared with the decoder.

* :class:`AppearanceEncoder` (E_app): image -> posed 3D feature volume -> canonical ``V_app``
  (C x D x H x W), warped by the inverse of the frame's pose and its dynamics-driven flow.
* :class:`IdentityEncoder` (E_id): image -> ``z_id`` (vector, pose-invariant by global pooling).
* :class:`MotionEncoder` (E_mot): image -> ``z_pose`` (layout in :mod:`vasa.latent.pose`) and
  ``z_dyn`` (holistic facial dynamics), one backbone with two heads.

Images are ``B x 3 x H x W`` in [-1, 1]. Encoders use GroupNorm (per-sample: results never depend on
the rest of the batch), the decoder AdaIN (InstanceNorm + per-sample scale/shift from a style).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vasa.latent.config import LatentModelConfig
from vasa.latent.warp import DynFlow, canonical_grid, grid_sample_3d, identity_grid
from vasa.latent import pose as P


def _groups(ch: int, max_groups: int = 8) -> int:
    return next(g for g in range(min(max_groups, ch), 0, -1) if ch % g == 0)


def act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> GroupNorm -> LeakyReLU (2D)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(_groups(cout), cout), act())


class AdaIN(nn.Module):
    """AdaIN: InstanceNorm whose scale and shift come from a style vector (zero-initialised: plain IN at start)."""

    def __init__(self, ch: int, style_dim: int, dims: int = 2):
        super().__init__()
        self.affine = nn.Linear(style_dim, 2 * ch)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)
        self.dims = dims

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        g, b = self.affine(style).view(x.shape[0], 2, -1, *([1] * self.dims)).unbind(1)  # B x C x 1..
        return F.group_norm(x, x.shape[1]) * (1 + g) + b  # == InstanceNorm, faster on CPU


class ResBlock(nn.Module):
    """Pre-activation residual block, 2D or 3D; AdaIN-modulated when ``style_dim`` is given."""

    def __init__(self, ch: int, dims: int = 2, style_dim: int | None = None):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.styled = style_dim is not None
        if self.styled:
            self.n1, self.n2 = AdaIN(ch, style_dim, dims), AdaIN(ch, style_dim, dims)
        else:
            self.n1, self.n2 = nn.GroupNorm(_groups(ch), ch), nn.GroupNorm(_groups(ch), ch)
        self.c1 = conv(ch, ch, 3, 1, 1)
        self.c2 = conv(ch, ch, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        h = self.n1(x, style) if self.styled else self.n1(x)
        h = self.c1(self.act(h))
        h = self.n2(h, style) if self.styled else self.n2(h)
        return x + self.c2(self.act(h))


def dyn_input_dim(cfg: LatentModelConfig) -> int:
    """Width of what the z_dyn-reading networks see: z_dyn, plus z_pose when ``cfg.pose_cond``."""
    return cfg.dyn_dim + (cfg.pose_dim if cfg.pose_cond else 0)


def dyn_input(cfg: LatentModelConfig, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> torch.Tensor:
    """B x dyn_dim (+ pose_dim): the input of the flows / residual volume (see ``cfg.pose_cond``)."""
    return torch.cat([z_dyn, z_pose], 1) if cfg.pose_cond else z_dyn


def _backbone(cin: int, channels: tuple) -> nn.Sequential:
    """Stride-2 conv then stride-1 conv per stage: image -> B x channels[-1] x H/2^n x W/2^n."""
    layers, c = [], cin
    for co in channels:
        layers += [conv_block(c, co, 2), conv_block(co, co, 1)]
        c = co
    return nn.Sequential(*layers)


class AppearanceEncoder(nn.Module):
    """E_app: image -> posed volume -> canonical appearance volume ``V_app`` (B x C x D x H x W).

    The canonicalisation uses the frame's own motion (from E_mot): rigid by the inverse of z_pose,
    non-rigid by a flow predicted from z_dyn (its own head, W_{s->c}).
    """

    def __init__(self, cfg: LatentModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = cfg.app_channels
        layers, c = [], cfg.in_channels
        for co in chans:  # one stride-2 conv per stage
            layers.append(conv_block(c, co, 2))
            c = co
        self.net2d = nn.Sequential(*layers, ResBlock(c, 2))  # B x c x h x w (h = trunk_size)
        CD = cfg.vol_channels * cfg.vol_depth
        self.to_vol = nn.Conv2d(c, CD, 1)  # -> B x (C D) x h x w
        self.net3d = nn.ModuleList(ResBlock(cfg.vol_channels, 3) for _ in range(cfg.app_res3d))
        # vol_up: level k (x 2**k) adds a 1x1 projection of the 2D features of that resolution
        self.to_vol_up = nn.ModuleList(nn.Conv2d(chans[-1 - k], CD, 1) for k in range(1, cfg.vol_up + 1))
        self.flow = DynFlow(dyn_input_dim(cfg), cfg.flow_size, cfg.flow_hidden, cfg.flow_scale)  # W_{s->c}

    def _volume(self, f: torch.Tensor) -> torch.Tensor:
        """B x (C D) x h x w -> B x C x D x h x w."""
        return f.view(f.shape[0], self.cfg.vol_channels, self.cfg.vol_depth, *f.shape[-2:])

    def posed_volume(self, img: torch.Tensor) -> torch.Tensor:
        """B x 3 x S x S -> B x C x D x H x W (in the frame's pose; H = cfg.vol_size)."""
        feats, x = [], img
        for layer in self.net2d:
            x = layer(x)
            feats.append(x)  # the stride-2 stages' outputs: S/2, S/4, ... (then the ResBlock's)
        v = self._volume(self.to_vol(x))  # B x C x D x h x w
        for blk in self.net3d:
            v = blk(v)
        n = len(self.cfg.app_channels)
        for k, proj in enumerate(self.to_vol_up, 1):  # coarse-to-fine: x2 in H, W, plus finer 2D features
            v = F.interpolate(v, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)
            v = v + self._volume(proj(feats[n - 1 - k]))  # B x C x D x 2h x 2w
        return v

    def forward(self, img: torch.Tensor, z_pose: torch.Tensor, z_dyn: torch.Tensor):
        """-> (V_app B x C x D x H x W, coarse canonicalisation flow B x 3 x d x h x w)."""
        V_app, flow, _ = self.canonicalise(img, z_pose, z_dyn)
        return V_app, flow

    def canonicalise(self, img: torch.Tensor, z_pose: torch.Tensor, z_dyn: torch.Tensor):
        """-> (V_app, flow, ``src_disp`` B x 3 x D x H x W): where each canonical voxel was read in the
        source, as a displacement from its own coordinates (zero for the screen-space slices)."""
        v = self.posed_volume(img)
        k = self.cfg.static_depth  # screen-space slices: not canonicalised
        v, v_static = (v[:, :, :-k], v[:, :, -k:]) if k else (v, None)  # B x C x (D - k) x H x W, B x C x k x H x W
        R, t, s = P.pose_to_rts(z_pose, self.cfg.rot_repr)
        flow = self.flow(dyn_input(self.cfg, z_pose, z_dyn))
        grid = canonical_grid(tuple(v.shape[-3:]), R, t, s, flow)  # B x (D - k) x H x W x 3
        V_app = grid_sample_3d(v, grid, self.cfg.warp_backend)
        disp = (grid - identity_grid(*v.shape[-3:], device=grid.device, dtype=grid.dtype)).permute(0, 4, 1, 2, 3)
        if k:  # B x 3 x D x H x W
            disp = torch.cat([disp, disp.new_zeros(*disp.shape[:2], k, *disp.shape[-2:])], 2)
            V_app = torch.cat([V_app, v_static], 2)
        return V_app, flow, disp


class IdentityEncoder(nn.Module):
    """E_id: image -> ``z_id`` (B x id_dim), global average pooled (no position information)."""

    def __init__(self, cfg: LatentModelConfig):
        super().__init__()
        self.net = _backbone(cfg.in_channels, cfg.id_channels)
        self.head = nn.Linear(cfg.id_channels[-1], cfg.id_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(img).mean((2, 3)))


class MotionEncoder(nn.Module):
    """E_mot: image -> (``z_pose`` B x pose_dim, ``z_dyn`` B x dyn_dim).

    The pose head is zero-initialised around the identity pose; Euler angles are bounded to
    +-90 degrees by ``(pi/2) tanh``. Spatial layout is kept (4 x 4 pooling, not global) so that
    translation and scale are observable. With ``cfg.mot_split`` ``z_dyn`` has a backbone of its own:
    a loss that pushes head pose out of ``z_dyn`` (``PoseLeakLoss``) then cannot wear the pose out of
    the features ``z_pose`` reads (through a shared trunk it did: yaw probe R^2 of z_pose 0.94 -> 0.82,
    in a 250-step fine-tune).
    """

    def __init__(self, cfg: LatentModelConfig):
        super().__init__()
        self.cfg = cfg
        self.net = _backbone(cfg.in_channels, cfg.mot_channels)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(16 * cfg.mot_channels[-1], cfg.mot_hidden), act())
        self.pose_head = nn.Linear(cfg.mot_hidden, cfg.pose_dim)  # z_pose
        if cfg.mot_split:  # z_dyn from a backbone of its own (see the class docstring)
            self.dyn_net = _backbone(cfg.in_channels, cfg.mot_channels)
            self.dyn_fc = nn.Sequential(nn.Flatten(), nn.Linear(16 * cfg.mot_channels[-1], cfg.mot_hidden), act())
        self.dyn_head = nn.Linear(cfg.mot_hidden, cfg.dyn_dim)  # z_dyn
        nn.init.zeros_(self.pose_head.weight)
        nn.init.zeros_(self.pose_head.bias)

    def forward(self, img: torch.Tensor):
        h = self.fc(self.pool(self.net(img)))  # B x mot_hidden
        raw = self.pose_head(h)  # B x pose_dim
        if self.cfg.rot_repr == "euler":
            z_pose = torch.cat([(math.pi / 2) * torch.tanh(raw[:, :3]), raw[:, 3:]], 1)
        else:
            z_pose = raw + P.identity_pose(raw.shape[0], "6d", raw.device, raw.dtype)
        h_dyn = self.dyn_fc(self.pool(self.dyn_net(img))) if self.cfg.mot_split else h  # B x mot_hidden
        return z_pose, self.dyn_head(h_dyn)
