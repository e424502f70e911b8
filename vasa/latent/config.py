"""Configuration of the face latent model (stage 1) and its named sizes.

>>> from vasa.latent.config import latent_config
>>> cfg = latent_config("S")                      # 128 x 128, CPU default
>>> cfg = latent_config("S", warp_backend="2d")   # any field can be overridden

Sizes (``LATENT_SIZES``; measure with ``python -m vasa.latent.model --sizes tiny S B``):

* ``tiny``  64 x 64, tests (milliseconds).
* ``S``     128 x 128, the CPU default: V_app 8 x 8 x 32 x 32, z_id 128, z_dyn 64, a z_dyn residual volume
  (``dyn_volume``), a 4 x 16 x 16 dynamics flow and the warped source image blended into the output
  (``src_blend``) and seen by the generator (``gen_sees_source``), the pose regressed out of the public
  ``z_dyn`` (``dyn_residual``), ~0.26 GFLOPs/frame. ``mot_split`` and ``pose_cond``
  (z_dyn's own backbone, z_pose read by the z_dyn networks) are options, off (README: the pose leak);
  so are ``vol_up`` (a 2x finer V_app feeding the decoder's upsampling blocks) and ``static_depth``
  (screen-space slices of V_app), README: sharper reconstructions.
* ``B``     256 x 256, a GPU size: V_app 32 x 16 x 64 x 64 (LivePortrait's volume).
* ``paper`` 512 x 512, ~200M parameters: V_app 96 x 16 x 64 x 64 (MegaPortraits' volume).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vasa.latent.pose import pose_dim
from vasa.latent.warp import BACKENDS


@dataclass(frozen=True)
class LatentModelConfig:
    """Every knob of :class:`vasa.latent.model.FaceLatentModel` (images are in [-1, 1])."""

    image_size: int = 128  # input and output resolution (square)
    in_channels: int = 3
    # E_app: 2D encoder, one stride-2 stage per entry -> the volume is image_size / 2**len(app_channels)
    app_channels: tuple = (32, 64)
    vol_channels: int = 8  # C of V_app
    vol_depth: int = 8  # D of V_app
    # the last static_depth depth slices of V_app are a screen-space layer: copied from the posed source
    # volume, moved by neither pose (static background, camera-fixed content); the rest is warped
    static_depth: int = 0
    # V_app is 2**vol_up times finer (H, W) than the 2D trunk of the decoder: E_app adds its own
    # higher-resolution features to the upsampled volume, the decoder warps the fine volume and feeds
    # it (pooled, depth folded into channels) into its upsampling blocks as skips. 0 = one resolution.
    vol_up: int = 0
    # the decoder also warps the source image itself into the driving frame (2D coordinates read from the
    # composed canonical/driving 3D warps, a per-pixel choice among the depth slices or screen space) and
    # blends it into its output with a predicted mask: sharp static background and texture (README)
    src_blend: bool = False
    # with src_blend: the generated image also sees the warped source (space-to-depth at image res / 2,
    # added before the last conv), so what it renders (lips, eyes) keeps the source's texture and only
    # the change the latents ask for is drawn; False: the generator renders from the latents alone
    gen_sees_source: bool = False
    # gen_sees_source: average-pool what the generator sees by this (1 = full detail). 4 and 8 were screened
    # against the generator copying the source's mouth: the copy bias went, but -0.3 / -0.4 dB and larger mouth
    # errors at 500 steps, so off (README, "What E_mot can read at all")
    gen_source_pool: int = 1
    # gen_sees_source: the warped source enters through a per-pixel gate read from the generator's own
    # features (sigmoid, starting open at 0.98) instead of being added as is, so the generator can shut it
    # where the latents change what the source shows (a closed lid over the source's open eye; README,
    # "Why the decoder does not draw the blink")
    gen_source_gate: bool = False
    app_res3d: int = 1  # 3D residual blocks on the posed volume before canonicalisation
    # E_id: CNN -> global average pool -> z_id
    id_channels: tuple = (16, 32, 64, 128)
    id_dim: int = 128
    # E_mot: one backbone, two heads (z_pose, z_dyn); with mot_split z_dyn has a backbone of its own
    mot_channels: tuple = (16, 32, 64, 128)
    mot_hidden: int = 256
    dyn_dim: int = 64
    mot_split: bool = False  # z_dyn from a backbone of its own (not shared with z_pose)
    rot_repr: str = "euler"  # "euler": z_pose = [yaw, pitch, roll, tx, ty, log_scale]; "6d": 9 numbers
    # non-rigid flows: z_dyn -> coarse displacement volume (d, h, w), trilinearly upsampled/sampled
    flow_size: tuple = (4, 8, 8)
    flow_hidden: int = 128
    flow_scale: float = 0.1  # output scale of the flow heads (normalised units)
    # > 0: the driving flow is refined at V_app's resolution by 3D convs of this width that read V_app and
    # z_dyn (warp.FlowRefine): a lid or lip moved where *this* face has it (README: blinks); 0 = off
    flow_refine: int = 0
    # z_dyn -> canonical appearance residual (C x d x h x w, trilinearly upsampled, added to V_app before
    # the driving warp): what a warp cannot create (mouth interior, teeth, closed eyelids); () = off
    dyn_volume: tuple = ()
    # generator: warp -> 3D residual blocks -> fold depth into channels -> 2D decoder
    gen_res3d: int = 1
    dec_channels: tuple = (48, 24)  # 2D widths from volume res up to image res / 2 (then pixel shuffle)
    dec_res_blocks: int = 1  # 2D residual blocks at volume resolution
    style_dim: int = 128  # width of the modulation vector (AdaIN) computed from z_id (+ z_dyn)
    dyn_modulates: bool = True  # z_dyn also modulates the decoder (mouth interior, eyes)
    # the networks that read z_dyn (flows, residual volume, style) also read z_pose: view-dependent
    # effects of the head's angle then need not pass through z_dyn (which made z_dyn encode yaw)
    pose_cond: bool = False
    # the public z_dyn is E_mot's code with a quadratic in z_pose regressed out (closed form, fitted on the
    # training frames at export; decode adds it back): swaps no longer carry the head angle in z_dyn
    # (vasa/latent/residual.py)
    dyn_residual: bool = False
    warp_backend: str = "5d"  # "5d" (F.grid_sample on volumes) or "2d" (MPS / ONNX / TensorRT)

    def __post_init__(self):
        n = len(self.app_channels)
        if self.image_size % (2 ** n):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**{n}")
        if len(self.dec_channels) != n:
            raise ValueError(f"dec_channels needs {n} entries (volume res .. image res / 2), "
                             f"got {len(self.dec_channels)}")
        if self.warp_backend not in BACKENDS:
            raise ValueError(f"warp_backend must be one of {BACKENDS}, got {self.warp_backend!r}")
        if not 0 <= self.vol_up < n:
            raise ValueError(f"vol_up must be in [0, {n - 1}] (one finer level per decoder upsampling block), "
                             f"got {self.vol_up}")
        if not 0 <= self.static_depth < self.vol_depth:
            raise ValueError(f"static_depth must be in [0, vol_depth - 1 = {self.vol_depth - 1}], got {self.static_depth}")
        if len(self.flow_size) != 3:
            raise ValueError("flow_size is (d, h, w)")
        if self.flow_refine < 0:
            raise ValueError(f"flow_refine is a width (0 = off), got {self.flow_refine}")
        if len(self.dyn_volume) not in (0, 3):
            raise ValueError(f"dyn_volume is (d, h, w) or () for none, got {self.dyn_volume!r}")
        if self.gen_source_pool < 1 or self.image_size % (2 * self.gen_source_pool):
            raise ValueError(f"gen_source_pool must be >= 1 and divide image_size / 2, got {self.gen_source_pool}")
        if self.gen_source_gate and not self.gen_sees_source:
            raise ValueError("gen_source_gate gates the warped source the generator sees: it needs gen_sees_source=True")
        if self.gen_sees_source and not self.src_blend:
            raise ValueError("gen_sees_source feeds the warped source image to the generator: it needs src_blend=True")
        pose_dim(self.rot_repr)  # validates

    @property
    def trunk_size(self) -> int:
        """H = W of the decoder's 2D trunk (and of E_app's deepest features)."""
        return self.image_size // (2 ** len(self.app_channels))

    @property
    def vol_size(self) -> int:
        """H = W of V_app (``trunk_size * 2**vol_up``)."""
        return self.trunk_size * 2 ** self.vol_up

    @property
    def vol_shape(self) -> tuple[int, int, int, int]:
        """C x D x H x W of V_app."""
        return (self.vol_channels, self.vol_depth, self.vol_size, self.vol_size)

    @property
    def pose_dim(self) -> int:
        return pose_dim(self.rot_repr)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LatentModelConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


LATENT_SIZES: dict[str, LatentModelConfig] = {
    "tiny": LatentModelConfig(
        image_size=64, app_channels=(8, 16), vol_channels=4, vol_depth=4, id_channels=(8, 16),
        id_dim=16, mot_channels=(8, 16), mot_hidden=32, dyn_dim=8, flow_size=(2, 4, 4), flow_hidden=16,
        dec_channels=(16, 8), style_dim=16),
    # dyn_volume + a 16 x 16 flow: +0.4 dB PSNR and mouth-vs-jaw r 0.17 -> 0.35 at equal steps (README);
    # src_blend: 20.6 -> 26.0 dB self-reenactment PSNR in a 500-step from-scratch screen (README)
    # dyn_residual: z_dyn -> yaw probe R² 0.95 -> see README (the pose regressed out of z_dyn)
    # gen_sees_source: 24.74 -> 25.40 dB, jaw probe 0.14 -> 0.24 in a 500-step from-scratch screen (README)
    "S": LatentModelConfig(dyn_volume=(4, 16, 16), flow_size=(4, 16, 16), src_blend=True, dyn_residual=True,
                           gen_sees_source=True),
    "B": LatentModelConfig(
        image_size=256, app_channels=(64, 128), vol_channels=32, vol_depth=16, app_res3d=2,
        id_channels=(32, 64, 128, 256, 256), id_dim=256, mot_channels=(32, 64, 128, 256, 256),
        mot_hidden=512, dyn_dim=128, flow_size=(8, 16, 16), flow_hidden=256, gen_res3d=3,
        dec_channels=(256, 128), dec_res_blocks=3, style_dim=256),
    "paper": LatentModelConfig(
        image_size=512, app_channels=(128, 256, 512), vol_channels=96, vol_depth=16, app_res3d=4,
        id_channels=(64, 128, 256, 512, 1024, 1024), id_dim=512, mot_channels=(64, 128, 256, 512, 1024, 1024),
        mot_hidden=1024, dyn_dim=256, flow_size=(8, 16, 16), flow_hidden=1024, gen_res3d=6,
        dec_channels=(512, 512, 256), dec_res_blocks=12, style_dim=512),
}


def latent_config(size: str = "S", **overrides) -> LatentModelConfig:
    """The named size ``size`` with fields replaced by ``overrides``."""
    if size not in LATENT_SIZES:
        raise ValueError(f"unknown latent model size {size!r}; choose one of {tuple(LATENT_SIZES)}")
    fields = {f.name for f in dataclasses.fields(LatentModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown latent model field(s) {unknown}; known: {sorted(fields)}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}  # YAML lists
    return dataclasses.replace(LATENT_SIZES[size], **overrides)
