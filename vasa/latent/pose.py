"""Head-pose utilities for ``z_pose``: Euler angles <-> rotation matrices, the 6D representation,
and the packing of ``z_pose`` into (R, t, s) in the coordinates of the feature volume.

Two coordinate frames are used:

* **camera frame** (the corpus convention, :mod:`vasa.synth.params`): x right, y up, z towards the
  camera. yaw > 0 turns the face towards the image's right, pitch > 0 looks up, roll > 0 tilts the
  head counter-clockwise in the image. ``R_cam = R_z(roll) @ R_y(yaw) @ R_x(-pitch)``.
* **grid frame** (``F.grid_sample`` normalised coordinates of a volume ``B x C x D x H x W``):
  x = W axis (right), y = H axis (down), z = D axis. ``R_grid = F R_cam F`` with F = diag(1, -1, 1)
  (only y flips; z's sign is arbitrary for a learned volume and kept).

``z_pose`` layouts (``POSE_LAYOUTS``), angles in radians, translation in normalised image units
(half the image width; tx > 0 right, ty > 0 up), ``log_scale`` = log of the apparent head size:

* ``"euler"``: ``[yaw, pitch, roll, tx, ty, log_scale]`` (6 numbers, the default)
* ``"6d"``:    ``[r1..r6, tx, ty, log_scale]`` (9 numbers): the first two columns of ``R_cam``
  (Zhou et al. 2019, continuous, no gimbal lock), re-orthonormalised by Gram-Schmidt.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

POSE_LAYOUTS: dict[str, tuple[str, ...]] = {
    "euler": ("yaw", "pitch", "roll", "tx", "ty", "log_scale"),
    "6d": ("r1", "r2", "r3", "r4", "r5", "r6", "tx", "ty", "log_scale"),
}
_FLIP_Y = torch.tensor([1.0, -1.0, 1.0])


def pose_dim(rot_repr: str) -> int:
    """Length of ``z_pose`` for a rotation representation ("euler" or "6d")."""
    if rot_repr not in POSE_LAYOUTS:
        raise ValueError(f"rot_repr must be one of {tuple(POSE_LAYOUTS)}, got {rot_repr!r}")
    return len(POSE_LAYOUTS[rot_repr])


def _rx(a: torch.Tensor) -> torch.Tensor:  # B -> B x 3 x 3
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).view(*a.shape, 3, 3)


def _ry(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(*a.shape, 3, 3)


def _rz(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).view(*a.shape, 3, 3)


def euler_to_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Camera-frame rotation ``R_z(roll) R_y(yaw) R_x(-pitch)``; angles (B,) radians -> B x 3 x 3."""
    return _rz(roll) @ _ry(yaw) @ _rx(-pitch)


def matrix_to_euler(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_to_matrix`: B x 3 x 3 -> B x 3 ``[yaw, pitch, roll]`` radians."""
    yaw = -torch.asin(R[..., 2, 0].clamp(-1.0, 1.0))
    roll = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    pitch = -torch.atan2(R[..., 2, 1], R[..., 2, 2])
    return torch.stack([yaw, pitch, roll], -1)


def sixd_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D representation (B x 6, two columns) -> rotation B x 3 x 3 by Gram-Schmidt."""
    a, b = x[..., 0:3], x[..., 3:6]
    c1 = F.normalize(a, dim=-1)
    c2 = F.normalize(b - (c1 * b).sum(-1, keepdim=True) * c1, dim=-1)
    c3 = torch.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], -1)  # columns


def matrix_to_sixd(R: torch.Tensor) -> torch.Tensor:
    """Rotation B x 3 x 3 -> B x 6 (its first two columns)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], -1)


def camera_to_grid(R: torch.Tensor) -> torch.Tensor:
    """Change of frame camera (y up) <-> grid (y down); the map is its own inverse."""
    f = _FLIP_Y.to(R)
    return R * f[:, None] * f[None, :]


def pose_to_rts(z_pose: torch.Tensor, rot_repr: str = "euler"):
    """``z_pose`` (B x P) -> (R_grid B x 3 x 3, t_grid B x 3, scale B) in volume coordinates."""
    if z_pose.shape[-1] != pose_dim(rot_repr):
        raise ValueError(f"z_pose has {z_pose.shape[-1]} numbers, layout {rot_repr!r} needs {pose_dim(rot_repr)}")
    if rot_repr == "euler":
        R = euler_to_matrix(z_pose[:, 0], z_pose[:, 1], z_pose[:, 2])
    else:
        R = sixd_to_matrix(z_pose[:, :6])
    tx, ty, log_s = z_pose[:, -3], z_pose[:, -2], z_pose[:, -1]
    t = torch.stack([tx, -ty, torch.zeros_like(tx)], -1)  # image y up -> grid y down
    return camera_to_grid(R), t, torch.exp(log_s)


def rts_to_pose(R_grid: torch.Tensor, t_grid: torch.Tensor, scale: torch.Tensor,
                rot_repr: str = "euler") -> torch.Tensor:
    """Inverse of :func:`pose_to_rts` (t_grid's z is dropped): -> z_pose B x P."""
    R = camera_to_grid(R_grid)
    rot = matrix_to_euler(R) if rot_repr == "euler" else matrix_to_sixd(R)
    return torch.cat([rot, t_grid[:, :1], -t_grid[:, 1:2], torch.log(scale)[:, None]], -1)


def pose_rotation(z_pose: torch.Tensor, rot_repr: str = "euler") -> torch.Tensor:
    """Camera-frame rotation matrix of ``z_pose`` (B x 3 x 3)."""
    return camera_to_grid(pose_to_rts(z_pose, rot_repr)[0])


def pose_to_degrees(z_pose: torch.Tensor, rot_repr: str = "euler") -> torch.Tensor:
    """``[yaw, pitch, roll]`` in degrees (B x 3), whatever the layout (for metrics such as dP)."""
    return matrix_to_euler(pose_rotation(z_pose, rot_repr)) * (180.0 / math.pi)


def identity_pose(batch: int, rot_repr: str = "euler", device=None, dtype=None) -> torch.Tensor:
    """Frontal pose, no translation, unit scale: B x P."""
    p = torch.zeros(batch, pose_dim(rot_repr), device=device, dtype=dtype)
    if rot_repr == "6d":
        p[:, 0] = 1.0
        p[:, 4] = 1.0
    return p
