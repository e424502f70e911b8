"""``dyn_residual``: the facial-dynamics code with the head pose regressed out, in closed form.

Trained from pixels, the motion encoder's ``z_dyn`` also carries the head pose: a linear probe reads
the true yaw from it with R² 0.95 in the default model, while ``z_pose`` reads it with 0.96 (README,
"Keeping head pose out of ``z_dyn``"). Losses that fight this during training (decorrelation, a
closed-form linear adversary, pose-free guidance targets) either left the leak or emptied ``z_dyn``.

This module removes it after training, without touching the networks. On the training split's
frames (pixels only: no label), the raw code ``z_dyn_raw`` is regressed on a quadratic in
``z_pose`` (:func:`pose_features`: the six pose numbers, the squares and pairwise products of the
three angles), and the public code is the residual::

    z_dyn = z_dyn_raw - (phi(z_pose) - phi_mean) @ W      encode_motion (after E_mot)
    z_dyn_raw = z_dyn + (phi(z_pose) - phi_mean) @ W      decode (before the decoder)

so ``decode(encode(x))`` is unchanged (the two maps are exact inverses for a given ``z_pose``), the
mean of ``z_dyn`` is kept, and on the fit frames ``z_dyn`` is uncorrelated with every feature of the
pose. What it changes is what a *swap* means: the part of the raw code that follows the head's angle
is re-derived from whichever ``z_pose`` is decoded (measured on the default model, the transfers'
head angle moves only slightly: README), and the motion model generates dynamics that need not mirror the pose.
It is linear in the features, so a nonlinear function of the pose can survive in ``z_dyn``; the
evaluation reports a nonlinear (k-nearest-neighbour) probe next to the linear ones for that reason.

``W`` and ``phi_mean`` are buffers (``coef``, ``mean``): zero until :meth:`PoseResidual.fit`, so
training runs the identity map, and they travel in ``model.safetensors``. The ``train_latent``
stage fits them on the EMA model before export (:func:`vasa.latent.train.export_latent`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_ANGLES = 3  # z_pose[:, :3] are the angles in the euler layout (yaw, pitch, roll)


def pose_features(z_pose: torch.Tensor) -> torch.Tensor:
    """B x P pose codes -> B x (P + 6): the codes, then the squares and pairwise products of the angles."""
    a = z_pose[:, :N_ANGLES]  # B x 3
    i, j = torch.triu_indices(N_ANGLES, N_ANGLES)
    return torch.cat([z_pose, a[:, i] * a[:, j]], 1)


def n_features(pose_dim: int) -> int:
    return pose_dim + N_ANGLES * (N_ANGLES + 1) // 2


class PoseResidual(nn.Module):
    """``z_dyn <-> z_dyn_raw`` given ``z_pose`` (see the module docstring); identity until fitted."""

    def __init__(self, pose_dim: int, dyn_dim: int):
        super().__init__()
        f = n_features(pose_dim)
        self.register_buffer("mean", torch.zeros(f))  # F: phi_mean
        self.register_buffer("coef", torch.zeros(f, dyn_dim))  # F x Dd: W

    def trend(self, z_pose: torch.Tensor) -> torch.Tensor:
        """B x P -> B x Dd: the pose-explained part of the raw code."""
        phi = pose_features(z_pose.to(self.coef.dtype))
        return ((phi - self.mean) @ self.coef).to(z_pose.dtype)

    def remove(self, z_pose: torch.Tensor, z_dyn_raw: torch.Tensor) -> torch.Tensor:
        """Raw code -> public ``z_dyn`` (B x Dd)."""
        return z_dyn_raw - self.trend(z_pose)

    def restore(self, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> torch.Tensor:
        """Public ``z_dyn`` -> the raw code the decoder reads (B x Dd)."""
        return z_dyn + self.trend(z_pose)

    @torch.no_grad()
    def fit(self, z_pose: torch.Tensor | np.ndarray, z_dyn_raw: torch.Tensor | np.ndarray,
            ridge: float = 1e-3) -> dict[str, float]:
        """Least squares of the raw codes (N x Dd) on the pose features (N x F), ridge-regularised
        relative to the features' variance. Returns the share of ``z_dyn_raw``'s variance the pose
        explained (``explained``) and the frames used."""
        zp = torch.as_tensor(np.asarray(z_pose), dtype=torch.float64)
        zd = torch.as_tensor(np.asarray(z_dyn_raw), dtype=torch.float64)
        if zp.ndim != 2 or zd.ndim != 2 or len(zp) != len(zd):
            raise ValueError(f"fit needs N x P pose and N x Dd codes, got {tuple(zp.shape)} and {tuple(zd.shape)}")
        phi = pose_features(zp)
        f = phi.shape[1]
        if len(phi) <= 2 * f:
            raise ValueError(f"fitting the pose residual needs more than {2 * f} frames, got {len(phi)}")
        mu = phi.mean(0)
        x, y = phi - mu, zd - zd.mean(0)
        xtx = x.T @ x
        reg = ridge * torch.diag(xtx).mean() * torch.eye(f, dtype=xtx.dtype)
        w = torch.linalg.solve(xtx + reg, x.T @ y)  # F x Dd
        explained = 1.0 - float(((y - x @ w) ** 2).sum() / (y ** 2).sum().clamp_min(1e-12))
        self.mean.copy_(mu.to(self.mean.dtype))
        self.coef.copy_(w.to(self.coef.dtype))
        return dict(explained=explained, frames=len(phi))


@torch.no_grad()
def fit_on_corpus(model, corpus: str, split: str = "train", frames_per_clip: int = 8, batch_size: int = 128,
                  ridge: float = 1e-3, progress: bool = True) -> dict[str, float]:
    """Fit ``model.dyn_res`` (a :class:`~vasa.latent.model.FaceLatentModel` with ``cfg.dyn_residual``) on
    ``frames_per_clip`` evenly spaced frames of every speech clip of ``split`` (pixels only). Returns
    :meth:`PoseResidual.fit`'s summary plus the clips used."""
    import cv2
    from tqdm.auto import tqdm

    from vasa.data.corpus import Corpus
    from vasa.errors import VasaError
    from vasa.data.frames import to_tensor

    if getattr(model, "dyn_res", None) is None:
        raise VasaError("this latent model has no dyn_residual to fit (LatentModelConfig.dyn_residual is off)")
    c = Corpus(corpus)
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    if not recs:
        raise VasaError(f"no speech clips in split {split!r} of {corpus}: cannot fit dyn_residual")
    s, dev = model.cfg.image_size, next(model.parameters()).device
    was_training = model.training
    model.eval()
    poses, dyns, pending = [], [], []

    def flush():
        x = torch.stack([to_tensor(f) for f in pending]).to(dev)
        zp, zd = model.E_mot(x)  # the raw code
        poses.append(zp.double().cpu())
        dyns.append(zd.double().cpu())
        pending.clear()

    for r in tqdm(recs, desc=f"dyn_residual fit ({split})", disable=not progress):
        n = int(r["n_frames"])
        idx = np.unique(np.linspace(0, n - 1, min(frames_per_clip, n)).round().astype(int))
        for f in c.shard(r["shard"]).frames(r["index"])[idx]:
            pending.append(f if f.shape[0] == s else cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA))
            if len(pending) == batch_size:
                flush()
    if pending:
        flush()
    model.train(was_training)
    out = model.dyn_res.fit(torch.cat(poses), torch.cat(dyns), ridge)
    return dict(out, clips=len(recs), split=split)
