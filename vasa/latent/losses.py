"""Losses of the face latent space, one small named class each (images in [-1, 1]).

Default recipe (weights are the trainer's; VASA-1 states none, face-vid2vid's are in DESIGN.md):
``ReconstructionLoss`` on ``out["recon"]`` vs the driver, ``AdversarialLoss`` + ``FeatureMatchingLoss``
with a ``PatchDiscriminator``, ``ConsistencyLoss`` (VASA-1's l_consist), ``CrossIdentityLoss``
(l_cross_id, with a frozen :class:`IdentityEmbedder` trained on the corpus gallery), and the
regularisers ``PoseEquivarianceLoss``, ``FlipEquivarianceLoss``, ``PoseDynDecorrelationLoss``,
``PoseLeakLoss`` (against the learned ``PoseLeakProbe``), ``WarpSmoothnessLoss``.
``GuidanceLoss`` (landmark guidance from MediaPipe estimates, :mod:`vasa.latent.guidance`) is
re-exported here. ``SupervisedPoseLoss`` uses ground-truth labels: an optional probe/ablation, never in the default.
No loss needs downloaded weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vasa.latent import pose as P
from vasa.latent.guidance import GuidanceLoss  # noqa: F401  (one place to find every loss)


def _laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    out = []
    for _ in range(levels - 1):
        down = F.avg_pool2d(x, 2)
        out.append(x - F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = down
    return out + [x]


def _ssim(a: torch.Tensor, b: torch.Tensor, win: int = 7) -> torch.Tensor:
    """Mean SSIM with a box window, images in [-1, 1] (dynamic range 2)."""
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    mu_a, mu_b = F.avg_pool2d(a, win, 1), F.avg_pool2d(b, win, 1)
    va = F.avg_pool2d(a * a, win, 1) - mu_a ** 2
    vb = F.avg_pool2d(b * b, win, 1) - mu_b ** 2
    cov = F.avg_pool2d(a * b, win, 1) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return s.mean()


class ReconstructionLoss:
    """``l1 * L1 + lap * Laplacian-pyramid L1 + ssim * (1 - multi-scale SSIM)``.

    The Laplacian pyramid L1 (band-pass errors weighted x2 per coarser level) and SSIM at several
    scales stand in for a VGG perceptual loss (no downloadable weights here). 0 iff pred == target.
    """

    def __init__(self, l1: float = 1.0, lap: float = 1.0, ssim: float = 0.5, levels: int = 4):
        self.l1, self.lap, self.ssim, self.levels = l1, lap, ssim, levels

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.l1 * (pred - target).abs().mean()
        if self.lap:
            pa, pb = _laplacian_pyramid(pred, self.levels), _laplacian_pyramid(target, self.levels)
            lap = sum((2 ** i) * (a - b).abs().mean() for i, (a, b) in enumerate(zip(pa, pb)))
            loss = loss + self.lap * lap / self.levels
        if self.ssim:
            a, b, s = pred, target, []
            for _ in range(self.levels - 1):
                if min(a.shape[-2:]) < 14:
                    break
                s.append(_ssim(a, b))
                a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            if s:
                loss = loss + self.ssim * (1 - torch.stack(s).mean())
        return loss


class PatchDiscriminator(nn.Module):
    """Multi-scale PatchGAN: ``forward(img)`` -> per scale, the list of features (last = logits map)."""

    def __init__(self, in_channels: int = 3, channels: tuple = (32, 64, 128), scales: int = 2):
        super().__init__()
        self.nets = nn.ModuleList()
        for _ in range(scales):
            layers, c = nn.ModuleList(), in_channels
            for i, co in enumerate(channels):
                layers.append(nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(c, co, 4, 2, 1)), nn.LeakyReLU(0.2)))
                c = co
            layers.append(nn.Conv2d(c, 1, 3, 1, 1))  # B x 1 x h x w logits
            self.nets.append(layers)

    def forward(self, img: torch.Tensor) -> list[list[torch.Tensor]]:
        outs = []
        for k, net in enumerate(self.nets):
            x = img if k == 0 else F.avg_pool2d(img, 2 ** k)
            feats = []
            for layer in net:
                x = layer(x)
                feats.append(x)
            outs.append(feats)
        return outs


class AdversarialLoss:
    """Hinge (default) or non-saturating GAN loss on :class:`PatchDiscriminator` outputs."""

    def __init__(self, kind: str = "hinge"):
        if kind not in ("hinge", "nonsat"):
            raise ValueError("kind is 'hinge' or 'nonsat'")
        self.kind = kind

    def generator(self, fake: list[list[torch.Tensor]]) -> torch.Tensor:
        logits = [f[-1] for f in fake]
        if self.kind == "hinge":
            return sum(-l.mean() for l in logits) / len(logits)
        return sum(F.softplus(-l).mean() for l in logits) / len(logits)

    def discriminator(self, real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
        """``fake`` must come from detached generator outputs."""
        tot = 0.0
        for r, f in zip(real, fake):
            if self.kind == "hinge":
                tot = tot + F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean()
            else:
                tot = tot + F.softplus(-r[-1]).mean() + F.softplus(f[-1]).mean()
        return tot / len(real)


class FeatureMatchingLoss:
    """L1 between discriminator features of real and fake images (real side detached), all scales."""

    def __call__(self, real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
        terms = [(fr.detach() - ff).abs().mean() for r, f in zip(real, fake) for fr, ff in zip(r[:-1], f[:-1])]
        return sum(terms) / max(1, len(terms))


class ConsistencyLoss:
    """VASA-1's l_consist: the renders (V_app^j, z_id^j, z_pose^i, z_dyn^j) and
    (V_app^i, z_id^i, z_pose^i, z_dyn^j) show the same pose and dynamics, so they must match
    (``out["consist_a"]``, ``out["consist_b"]`` of ``FaceLatentModel(src, drv, consistency=True)``).
    Both sides get gradients. Default distance: L1 + Laplacian-pyramid L1."""

    def __init__(self, distance: ReconstructionLoss | None = None):
        self.distance = distance or ReconstructionLoss(ssim=0.0)

    def __call__(self, render_a: torch.Tensor, render_b: torch.Tensor) -> torch.Tensor:
        return self.distance(render_a, render_b)


class IdentityEmbedder(nn.Module):
    """Small CNN face-identity embedder (unit vectors, ``B x dim``), trained on the corpus gallery
    with :meth:`loss` (supervised contrastive over identity labels), then frozen for l_cross_id
    and usable as a CSIM fallback. Images in [-1, 1], any size >= 32."""

    def __init__(self, in_channels: int = 3, channels: tuple = (32, 64, 128, 256), dim: int = 128):
        super().__init__()
        layers, c = [], in_channels
        for co in channels:
            layers += [nn.Conv2d(c, co, 3, 2, 1), nn.GroupNorm(8, co), nn.LeakyReLU(0.2),
                       nn.Conv2d(co, co, 3, 1, 1), nn.GroupNorm(8, co), nn.LeakyReLU(0.2)]
            c = co
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(c, dim)
        self.log_temp = nn.Parameter(torch.tensor(math.log(0.1)))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.net(img).mean((2, 3))), dim=-1)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Supervised contrastive loss (Khosla et al. 2020) of unit embeddings B x dim, labels (B,)."""
        sim = emb @ emb.t() / self.log_temp.exp()
        eye = torch.eye(len(emb), dtype=torch.bool, device=emb.device)
        pos = (labels[:, None] == labels[None, :]) & ~eye
        logp = sim.masked_fill(eye, -1e9).log_softmax(1)
        has = pos.any(1)
        if not has.any():
            return sim.sum() * 0
        return -((logp * pos).sum(1)[has] / pos.sum(1)[has]).mean()


class CrossIdentityLoss:
    """VASA-1's l_cross_id: ``1 - cos(embed(source), embed(result))`` where ``result`` is the source
    driven by another subject's motion (``out["cross"]``). The embedder is frozen here."""

    def __init__(self, embedder: nn.Module):
        self.embedder = embedder.eval().requires_grad_(False)

    def __call__(self, source: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            e_src = self.embedder(source)
        return (1 - F.cosine_similarity(e_src, self.embedder(result), dim=-1)).mean()


class PoseEquivarianceLoss:
    """z_pose must follow a random similarity transform of the image (in-plane rotation = roll,
    shift = translation, zoom = scale: exact under orthographic projection). Anchors z_pose's
    geometry without labels. ``__call__(model, img)`` draws the transform (optionally from ``gen``)."""

    def __init__(self, max_roll_deg: float = 15.0, max_shift: float = 0.1, max_log_scale: float = 0.1):
        self.max_roll, self.max_shift, self.max_log_scale = math.radians(max_roll_deg), max_shift, max_log_scale

    def __call__(self, model, img: torch.Tensor, gen: torch.Generator | None = None,
                 z_pose: torch.Tensor | None = None) -> torch.Tensor:
        """img: B x 3 x S x S; ``z_pose``: the pose of ``img`` when already computed (else encoded)."""
        B, dev = img.shape[0], img.device
        u = torch.rand(B, 4, generator=gen).to(dev) * 2 - 1
        phi, shift, ls = u[:, 0] * self.max_roll, u[:, 1:3] * self.max_shift, u[:, 3] * self.max_log_scale
        c, s, k = torch.cos(phi), torch.sin(phi), ls.exp()
        A = torch.stack([c, -s, s, c], 1).view(B, 2, 2) * k.view(B, 1, 1)  # forward map, grid coords
        Ainv = torch.linalg.inv(A)
        theta = torch.cat([Ainv, -(Ainv @ shift.unsqueeze(-1))], 2)  # output -> input
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        warped = F.grid_sample(img, grid, padding_mode="border", align_corners=False)
        if z_pose is None:
            z_pose = model.encode_motion(img)[0]
        z_new = model.encode_motion(warped)[0]
        rot = model.cfg.rot_repr
        R, t, sc = P.pose_to_rts(z_pose, rot)
        Rz = torch.zeros(B, 3, 3, device=dev)
        Rz[:, :2, :2], Rz[:, 2, 2] = A / k.view(B, 1, 1), 1.0
        R_exp = Rz @ R
        t_exp = torch.cat([(A @ t[:, :2].unsqueeze(-1)).squeeze(-1) + shift, t[:, 2:]], 1)
        R_new, t_new, sc_new = P.pose_to_rts(z_new, rot)
        return ((R_new - R_exp).pow(2).sum((1, 2)).mean() + (t_new - t_exp).abs().sum(1).mean()
                + (sc_new.log() - (sc.log() + ls)).abs().mean())


class FlipEquivarianceLoss:
    """Mirror symmetry, label-free: flipping the image left-right maps the head rotation ``R`` to
    ``M R M`` (``M = diag(-1, 1, 1)``: yaw and roll change sign, pitch stays), negates ``tx`` and keeps
    ``ty`` and the scale; ``z_dyn`` (lips, blinks, expression: mostly symmetric) should change little.
    This anchors yaw -- which the in-plane :class:`PoseEquivarianceLoss` cannot -- and, with ``dyn > 0``,
    keeps head yaw out of ``z_dyn`` (a flip-invariant code cannot carry a flip-odd quantity linearly).
    ``dyn`` trades that against horizontal gaze, which does flip; 0 disables the ``z_dyn`` term."""

    def __init__(self, dyn: float = 0.25):
        self.dyn = dyn

    def __call__(self, model, img: torch.Tensor, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> torch.Tensor:
        """img: B x 3 x S x S; (z_pose, z_dyn): its motion, already encoded."""
        rot = model.cfg.rot_repr
        zp_f, zd_f = model.encode_motion(img.flip(-1))
        m = torch.tensor([-1.0, 1.0, 1.0], device=img.device, dtype=z_pose.dtype)
        R, R_f = P.pose_rotation(z_pose, rot), P.pose_rotation(zp_f, rot)
        R_exp = R * m[:, None] * m[None, :]  # M R M
        loss = (R_f - R_exp).pow(2).sum((1, 2)).mean() + (zp_f[:, -3:] - z_pose[:, -3:] * m).abs().sum(1).mean()
        if self.dyn > 0:
            # relative to the code's spread, which is NOT detached: a detached denominator makes shrinking
            # every code towards a constant the easiest way down (observed: z_dyn collapsed in training)
            spread = torch.cat([z_dyn, zd_f]).var(0).mean() + 1e-6
            loss = loss + self.dyn * (zd_f - z_dyn).pow(2).mean() / spread
        return loss


class PoseDynDecorrelationLoss:
    """Mean squared cross-correlation between batch-standardised z_pose and z_dyn (keeps head pose
    out of the dynamics code). Needs batch > 1; 0 when they are uncorrelated."""

    def __call__(self, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> torch.Tensor:
        a = (z_pose - z_pose.mean(0)) / (z_pose.std(0) + 1e-4)
        b = (z_dyn - z_dyn.mean(0)) / (z_dyn.std(0) + 1e-4)
        return ((a.t() @ b) / (len(a) - 1)).pow(2).mean()


class PoseLeakProbe(nn.Module):
    """The adversary of :class:`PoseLeakLoss`: the best linear read-out of ``z_pose`` from ``z_dyn``
    (ridge least squares, closed form) over a memory of the last ``memory`` codes plus the current
    batch -- the kind of probe the evaluation scores disentanglement with, re-solved every step.

    A *learned* read-out (a linear head trained by SGD against a gradient-reversed encoder) loses this
    game: the encoder moves the pose to directions the lagging head does not read yet, and the pose
    in ``z_dyn`` grows instead of shrinking (tests/test_latent_model.py has the toy). The memory is
    made of buffers, so checkpoints hold it and a resumed run continues exactly; under DDP every rank
    keeps its own."""

    def __init__(self, dyn_dim: int, pose_dim: int, memory: int = 256, ridge: float = 1e-3):
        super().__init__()
        self.ridge = ridge
        self.register_buffer("mem_dyn", torch.zeros(memory, dyn_dim))  # M x Dd
        self.register_buffer("mem_pose", torch.zeros(memory, pose_dim))  # M x P
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def solve(self, z_dyn: torch.Tensor, z_pose: torch.Tensor) -> torch.Tensor:
        """The read-out weights W (Dd x P) on centred (memory + batch); batch B x Dd, B x P."""
        n = int(self.filled)
        Z = torch.cat([self.mem_dyn[:n], z_dyn.detach().to(self.mem_dyn)]).double()
        Pz = torch.cat([self.mem_pose[:n], z_pose.detach().to(self.mem_pose)]).double()
        Z, Pz = Z - Z.mean(0), Pz - Pz.mean(0)
        A = Z.t() @ Z
        A = A + (self.ridge * A.trace() / len(A) + 1e-9) * torch.eye(len(A), dtype=A.dtype, device=A.device)
        return torch.linalg.solve(A, Z.t() @ Pz).to(z_dyn.dtype)

    @torch.no_grad()
    def push(self, z_dyn: torch.Tensor, z_pose: torch.Tensor) -> None:
        """Add a batch of codes to the memory (a ring buffer)."""
        m = len(self.mem_dyn)
        for zd, zp in zip(z_dyn.detach()[-m:], z_pose.detach()[-m:]):
            i = int(self.ptr)
            self.mem_dyn[i], self.mem_pose[i] = zd.to(self.mem_dyn), zp.to(self.mem_pose)
            self.ptr.fill_((i + 1) % m)
        self.filled.fill_(min(m, int(self.filled) + len(z_dyn)))


class PoseLeakLoss:
    """Keeps head pose out of the dynamics code: the squared correlation, per ``z_pose`` column and
    within the batch, between the pose and its best linear read-out from ``z_dyn``
    (:class:`PoseLeakProbe`, weights fixed for the step), averaged; 0 when the read-out says nothing.

    ``PoseDynDecorrelationLoss`` (per-channel correlations in a batch) is blind to a read-out spread
    over many channels: it left the z_dyn -> yaw probe R^2 at 0.91. Squared, so an anti-correlated
    code costs as much as a correlated one. Calling it also pushes the batch into the probe's
    memory. Needs batch > 2."""

    def __call__(self, probe: PoseLeakProbe, z_dyn: torch.Tensor, z_pose: torch.Tensor) -> torch.Tensor:
        """z_dyn B x Dd (gradients flow), z_pose B x P (a target, detached) -> scalar in [0, 1]."""
        z_pose = z_pose.detach()
        W = probe.solve(z_dyn, z_pose)  # Dd x P
        a = z_dyn @ W
        a = a - a.mean(0)  # B x P
        b = z_pose - z_pose.mean(0)
        corr = (a * b).sum(0) / (a.pow(2).sum(0) * b.pow(2).sum(0) + 1e-12).sqrt()  # finite gradient at 0
        probe.push(z_dyn, z_pose)
        return corr.pow(2).mean()


class WarpSmoothnessLoss:
    """Total variation + magnitude of the coarse non-rigid flows (B x 3 x d x h x w each)."""

    def __init__(self, tv: float = 1.0, magnitude: float = 0.1):
        self.tv, self.magnitude = tv, magnitude

    def __call__(self, *flows: torch.Tensor) -> torch.Tensor:
        tot = 0.0
        for f in flows:
            tv = sum((f.diff(dim=d)).abs().mean() for d in (2, 3, 4) if f.shape[d] > 1)
            tot = tot + self.tv * tv + self.magnitude * f.pow(2).mean()
        return tot / max(1, len(flows))


class SupervisedPoseLoss:
    """OFF BY DEFAULT (uses ground-truth labels; probes / ablations only). L1 between predicted
    yaw/pitch/roll (degrees) and log scale and the corpus labels (``vasa.synth.params`` columns)."""

    def __init__(self, param_names: list[str] | tuple[str, ...], weight_scale: float = 1.0):
        self.idx = [list(param_names).index(n) for n in ("yaw", "pitch", "roll", "scale")]
        self.weight_scale = weight_scale

    def __call__(self, z_pose: torch.Tensor, params: torch.Tensor, rot_repr: str = "euler") -> torch.Tensor:
        deg = P.pose_to_degrees(z_pose, rot_repr)
        gt = params[:, self.idx]
        ang = (deg - gt[:, :3]).abs().mean() / 10.0  # 10 degrees ~ 1
        return ang + self.weight_scale * (z_pose[:, -1] - gt[:, 3].clamp_min(1e-3).log()).abs().mean()
