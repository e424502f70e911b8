"""The decoder of the face latent space: (V_app, z_id, z_pose, z_dyn) -> image.

Pipeline (shapes for size S, 128 x 128)::

    z_pose --(R, t, s)--\
    z_dyn  --DynFlow----> driving grid  B x 8 x 32 x 32 x 3      (warping generator W_{c->d})
    z_dyn  --DynVolume--> canonical residual B x 8 x 8 x 32 x 32  (optional, ``cfg.dyn_volume``)
    V_app (+ residual) B x 8 x 8 x 32 x 32 --grid_sample_3d--> posed volume B x 8 x 8 x 32 x 32
           --3D ResBlocks (AdaIN)--> fold depth into channels B x 64 x 32 x 32
           --1x1 conv--> B x 48 x 32 x 32 --2D ResBlocks (AdaIN)--
           --nearest x2, 3x3 conv, AdaIN, act--> B x 24 x 64 x 64
           --3x3 conv to 12 channels, pixel shuffle x2, tanh--> image B x 3 x 128 x 128

Two options (off in ``S``; README "Sharper reconstructions"):
``cfg.vol_up`` makes V_app 2**vol_up times finer than the trunk above (64 x 64 for S): the fine warped
volume is average-pooled for the 3D/2D trunk and enters each upsampling block as a skip (depth folded
into channels, a 1x1 conv), so detail the trunk cannot carry reaches the image at its own resolution.
``cfg.static_depth`` keeps the last depth slices of V_app in screen space: the decoder takes them as
they are (no warp, no residual), a place for the static background and camera-fixed content.
``cfg.src_blend`` (FOMM / LivePortrait warp the source's features; here the source *image*): every
driving voxel knows where it came from in the source (the driving grid composed with the source's
canonicalisation), a per-pixel softmax over the depth slices and a screen-space choice (no motion:
static background) collapses that to 2D coordinates at the trunk resolution, the source image is
sampled there at full resolution and blended into the output by a predicted mask. The generated
image never sees the warped source, so what the mask leaves to it (the lips and eyes, pushed there
by ``train_latent.w_blend_regions``) must be rendered from the latents: a mask free to copy
everywhere froze the mouth (README). With ``cfg.gen_sees_source`` the generator does see it (space to
depth at S/2, a 1x1 conv added before the last conv): the rendered lips and eyes can take the source's
texture and draw only the change the latents carry (``cfg.gen_source_pool`` > 1 low-passes what it sees:
the source's colours without the shape of its lips and lids, which the generator could otherwise copy
instead of rendering the driver's; ``cfg.gen_source_gate`` lets the generator shut it per pixel, from its
own features: a 3x3 conv + sigmoid, open at 0.98 when built). The decoder needs ``source``
(``FaceLatentModel.encode_source``).

``cfg.flow_refine`` (off) refines the driving flow at V_app's resolution from V_app itself and the code
(``warp.FlowRefine``, 3D convs): the coarse flow is a function of ``z_dyn`` alone and cannot know where this
face's lids are (README, "Why the decoder does not draw the blink").

With ``cfg.pose_cond`` every network that reads ``z_dyn`` (flows, residual volume, style) also reads
``z_pose``: what the rigid warp of a coarse volume gets wrong about a turned head (occlusion, shading)
can then be corrected from the pose itself, instead of from a copy of the pose inside ``z_dyn``.
The style vector (AdaIN) is an MLP of ``z_id`` (and ``z_dyn`` when ``cfg.dyn_modulates``), as
MegaPortraits conditions its decoder on the identity. A warp only moves what the source shows: an
open mouth rendered from a closed-mouth source needs new content (dark interior, teeth) at a place
that follows the head. ``cfg.dyn_volume`` adds it where it belongs: z_dyn predicts a coarse residual
of the *canonical* volume, which the driving warp then moves with the head (the AdaIN style, global
per channel, cannot place anything). The output image is in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vasa.latent import pose as P
from vasa.latent.config import LatentModelConfig
from vasa.latent.encoders import AdaIN, ResBlock, dyn_input, dyn_input_dim
from vasa.latent.warp import DynFlow, FlowRefine, driving_grid, grid_sample_3d, identity_grid


SOURCE_GATE_OPEN = 4.0  # gen_source_gate's initial logit: sigmoid(4) = 0.98, nearly the ungated function


def source_view(warped_src: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """What ``gen_sees_source`` shows the generator: the warped source (B x 3 x S x S), average-pooled by
    ``pool`` and upsampled back (bilinear) when ``pool`` > 1 -- colour and shading without the shape of
    the source's lips and lids, which the generator could copy instead of rendering the driver's."""
    if pool <= 1:
        return warped_src
    return F.interpolate(F.avg_pool2d(warped_src, pool), scale_factor=pool, mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """Nearest x2 upsampling -> 3x3 conv -> AdaIN -> LeakyReLU."""

    def __init__(self, cin: int, cout: int, style_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm = AdaIN(cout, style_dim, 2)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if skip is not None:  # the warped fine volume at this resolution (cfg.vol_up)
            x = x + skip
        return self.act(self.norm(x, style))


class DynVolume(nn.Module):
    """z_dyn -> canonical appearance residual ``B x C x D x H x W`` (an MLP to a coarse ``C x d x h x w``
    volume, trilinearly upsampled; the last layer zero-initialised: training starts from the plain warp)."""

    def __init__(self, dyn_dim: int, channels: int, size: tuple[int, int, int], hidden: int):
        super().__init__()
        self.channels, self.size = channels, tuple(size)
        self.mlp = nn.Sequential(nn.Linear(dyn_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, channels * self.size[0] * self.size[1] * self.size[2]))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, z_dyn: torch.Tensor, out_size: tuple[int, int, int]) -> torch.Tensor:
        r = self.mlp(z_dyn).view(z_dyn.shape[0], self.channels, *self.size)  # B x C x d x h x w
        if tuple(out_size) == self.size:
            return r
        return F.interpolate(r, size=tuple(out_size), mode="trilinear", align_corners=False)


class FaceDecoder(nn.Module):
    """Warping generator + 3D convs + projection to 2D + 2D upsampling decoder (V_app -> image)."""

    def __init__(self, cfg: LatentModelConfig):
        super().__init__()
        self.cfg = cfg
        C, D = cfg.vol_channels, cfg.vol_depth
        sdim = cfg.style_dim
        din = dyn_input_dim(cfg)  # z_dyn (+ z_pose with cfg.pose_cond)
        cond = cfg.id_dim + (din if cfg.dyn_modulates else 0)
        # (z_id, z_dyn) -> style vector of every AdaIN
        self.style = nn.Sequential(nn.Linear(cond, sdim), nn.LeakyReLU(0.2), nn.Linear(sdim, sdim))
        self.flow = DynFlow(din, cfg.flow_size, cfg.flow_hidden, cfg.flow_scale)  # W_{c->d}
        self.dyn_volume = DynVolume(din, C, cfg.dyn_volume, cfg.flow_hidden) if cfg.dyn_volume else None
        # appearance-aware driving flow at V_app's resolution (zero-initialised: built, the coarse flow)
        self.flow_refine = FlowRefine(C, din, cfg.flow_refine, cfg.flow_scale) if cfg.flow_refine else None
        self.net3d = nn.ModuleList(ResBlock(C, 3, sdim) for _ in range(cfg.gen_res3d))
        ch = cfg.dec_channels
        self.proj = nn.Conv2d(C * D, ch[0], 1)  # depth folded into channels -> 2D
        self.res2d = nn.ModuleList(ResBlock(ch[0], 2, sdim) for _ in range(cfg.dec_res_blocks))
        self.ups = nn.ModuleList(UpBlock(ch[i], ch[i + 1], sdim) for i in range(len(ch) - 1))
        # vol_up: the warped fine volume (depth folded) enters up block k - 1 (resolution x 2**k)
        self.skips = nn.ModuleList(nn.Conv2d(C * D, ch[k], 1) for k in range(1, cfg.vol_up + 1))
        # last x2 by sub-pixel conv: no convolution runs at full resolution (the costliest place)
        blend = cfg.src_blend  # + a blending mask as output
        self.out = nn.Sequential(nn.Conv2d(ch[-1], 4 * (cfg.in_channels + (1 if blend else 0)), 3, 1, 1),
                                 nn.PixelShuffle(2))
        if blend:  # visibility logits: each depth slice of the posed volume, and screen space (no motion)
            self.depth_logit = nn.Conv3d(C, 1, 1)
            self.screen_logit = nn.Conv2d(ch[0], 1, 1)
        if cfg.gen_sees_source:  # warped source, space-to-depth (4 * 3 channels at S/2) -> the last features
            self.src_in = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * cfg.in_channels, ch[-1], 1))
        if cfg.gen_source_gate:  # per-pixel gate on that input, from the generator's features; built open
            self.src_gate = nn.Conv2d(ch[-1], 1, 3, 1, 1)
            nn.init.zeros_(self.src_gate.weight)
            nn.init.constant_(self.src_gate.bias, SOURCE_GATE_OPEN)

    def style_vector(self, z_id: torch.Tensor, z_dyn: torch.Tensor, z_pose: torch.Tensor | None = None) -> torch.Tensor:
        if not self.cfg.dyn_modulates:
            return self.style(z_id)  # B x style_dim
        return self.style(torch.cat([z_id, dyn_input(self.cfg, z_pose, z_dyn)], 1))

    def warp(self, V_app: torch.Tensor, z_pose: torch.Tensor, z_dyn: torch.Tensor):
        """Canonical V_app -> driving-frame volume (B x C x D x H x W), and the coarse flow."""
        v, flow, _ = self._warp(V_app, z_pose, z_dyn)
        return v, flow

    def _warp(self, V_app, z_pose, z_dyn):
        """:meth:`warp`, plus the driving grid of the warped slices (B x (D - k) x H x W x 3)."""
        R, t, s = P.pose_to_rts(z_pose, self.cfg.rot_repr)
        d = dyn_input(self.cfg, z_pose, z_dyn)  # B x dyn_dim (+ pose_dim)
        flow = self.flow(d)  # B x 3 x d x h x w
        k = self.cfg.static_depth  # screen-space slices (static background): neither warped nor edited
        V_app, V_static = (V_app[:, :, :-k], V_app[:, :, -k:]) if k else (V_app, None)
        if self.dyn_volume is not None:  # expression content in canonical space, moved by the warp below
            V_app = V_app + self.dyn_volume(d, tuple(V_app.shape[-3:]))  # B x C x (D - k) x H x W
        if self.flow_refine is not None:  # B x 3 x (D - k) x H x W: the coarse field, refined where this face is
            flow = self.flow_refine(V_app, d, flow)
        grid = driving_grid(tuple(V_app.shape[-3:]), R, t, s, flow, self.cfg.warp_backend)
        v = grid_sample_3d(V_app, grid, self.cfg.warp_backend)  # B x C x (D - k) x H x W
        return (torch.cat([v, V_static], 2) if k else v), flow, grid

    def source_coords(self, grid: torch.Tensor, src_disp: torch.Tensor) -> torch.Tensor:
        """Where each driving voxel reads the source image: the driving grid's canonical point ``q``
        plus the source's canonicalisation displacement at ``q`` (outside the volume: none).

        grid: B x (D - k) x H x W x 3; src_disp: B x 3 x D x H x W -> B x 3 x D x H x W (x, y, z);
        the k screen-space slices read the source where they are."""
        k = self.cfg.static_depth
        d_src = src_disp[:, :, :-k] if k else src_disp
        xs = grid.permute(0, 4, 1, 2, 3) + grid_sample_3d(d_src, grid, self.cfg.warp_backend)
        if k:
            ident = identity_grid(k, *grid.shape[2:4], device=grid.device, dtype=grid.dtype)  # 1 x k x H x W x 3
            xs = torch.cat([xs, ident.permute(0, 4, 1, 2, 3).expand(len(xs), -1, -1, -1, -1)], 2)
        return xs

    def forward(self, V_app, z_id, z_pose, z_dyn, return_flow: bool = False, source: dict | None = None):
        """-> image B x 3 x S x S in [-1, 1] (and the driving flow if ``return_flow``)."""
        r = self.render(V_app, z_id, z_pose, z_dyn, source)
        return (r["image"], r["flow"]) if return_flow else r["image"]

    def render(self, V_app, z_id, z_pose, z_dyn, source: dict | None = None) -> dict[str, torch.Tensor]:
        """-> ``image`` B x 3 x S x S, ``flow`` (the driving flow: coarse, or at V_app's resolution with
        ``cfg.flow_refine``); with ``cfg.src_blend`` also
        ``warped_src`` (the source image read at the composed 2D coordinates), ``generated`` and ``mask``
        (B x 1 x S x S): ``image = mask * warped_src + (1 - mask) * generated``. ``source``: ``{"image", "disp"}`` of
        :meth:`~vasa.latent.model.FaceLatentModel.encode_source` (needed with ``cfg.src_blend``)."""
        blend = self.cfg.src_blend
        if blend and source is None:
            raise ValueError("this latent model blends the warped source image into its output (src_blend): "
                             "pass source=model.encode_source(source_image) to decode")
        style = self.style_vector(z_id, z_dyn, z_pose)
        v_fine, flow, grid = self._warp(V_app, z_pose, z_dyn)  # B x C x D x H x W (H = vol_size)
        up = self.cfg.vol_up
        pool = (lambda a: F.avg_pool3d(a, (1, 2 ** up, 2 ** up))) if up else (lambda a: a)
        v = pool(v_fine)  # B x C x D x h x w (trunk)
        for blk in self.net3d:
            v = blk(v, style)
        x = self.proj(v.flatten(1, 2))  # B x (C D) x h x w -> B x ch0 x h x w
        out: dict[str, torch.Tensor] = {"flow": flow}
        if blend:
            xs = pool(self.source_coords(grid, source["disp"]))[:, :2]  # B x 2 x D x h x w (x, y)
            ident = identity_grid(1, *x.shape[-2:], device=x.device, dtype=x.dtype)[0, 0].permute(2, 0, 1)[:2]
            cand = torch.cat([xs, ident[None, :, None].expand(len(xs), -1, 1, -1, -1)], 2)  # B x 2 x (D+1) x h x w
            logits = torch.cat([self.depth_logit(v)[:, 0], self.screen_logit(x)], 1)  # B x (D+1) x h x w
            xy = (cand * logits.softmax(1)[:, None]).sum(2)  # B x 2 x h x w
            S = source["image"].shape[-1]  # upsample the displacement, not the coordinates (exact at the border)
            fine = identity_grid(1, S, S, device=x.device, dtype=x.dtype)[0, 0].permute(2, 0, 1)[:2]  # 2 x S x S
            xy = fine + F.interpolate(xy - ident, size=(S, S), mode="bilinear", align_corners=False)  # B x 2 x S x S
            warped = F.grid_sample(source["image"], xy.permute(0, 2, 3, 1), mode="bilinear",
                                   padding_mode="border", align_corners=False)  # B x 3 x S x S
            out["warped_src"] = warped
        for blk in self.res2d:
            x = blk(x, style)
        for i, upb in enumerate(self.ups):
            skip = None
            if i < up:  # level i + 1: the fine volume pooled to this block's output resolution
                f = 2 ** (up - 1 - i)
                vs = F.avg_pool3d(v_fine, (1, f, f)) if f > 1 else v_fine
                skip = self.skips[i](vs.flatten(1, 2))  # B x ch[i+1] x (h 2**(i+1))^2
            x = upb(x, style, skip)
        if not blend:
            out["image"] = torch.tanh(self.out(x))  # B x 3 x S x S
            return out
        if self.cfg.gen_sees_source:  # B x ch[-1] x S/2 x S/2: the source's texture, where the motion puts it
            src = self.src_in(source_view(out["warped_src"], self.cfg.gen_source_pool))
            if self.cfg.gen_source_gate:  # B x 1 x S/2 x S/2: where the source's texture is let through
                out["source_gate"] = torch.sigmoid(self.src_gate(x))
                src = out["source_gate"] * src
            x = x + src
        o = self.out(x)  # B x 4 x S x S (without gen_sees_source the generator cannot copy the warped source)
        out["mask"] = torch.sigmoid(o[:, 3:])  # B x 1 x S x S
        out["generated"] = torch.tanh(o[:, :3])  # B x 3 x S x S, what the mask does not take from the source
        out["image"] = out["mask"] * out["warped_src"] + (1 - out["mask"]) * out["generated"]
        return out
