"""What E_mot's architecture can read from a frame at all: the supervised ceiling of the probes.

The face latent space is trained without labels, so when a probe misses its bar (``z_pose`` -> pitch /
roll >= 0.95, ``z_dyn`` -> jaw / blink >= 0.9) there are two suspects: the training signal (landmark
guidance, reconstruction, the equivariances) or the motion encoder itself (its width, the input
resolution, the training budget). :func:`encoder_ceiling` removes the first: it trains the encoder's own
architecture (:class:`vasa.latent.encoders.MotionEncoder` of a named size, with overrides) *supervised*
on the corpus's ground truth -- yaw, pitch, roll, jaw opening and blink, standardised, mean-squared error
of a linear read-out of ``[z_pose, z_dyn]`` -- on frames of the training identities, and scores R² on
the held-out test identities two ways: the read-out trained with it (``readout_r2_test``; also on the
motion within each clip, clip means removed from prediction and truth: ``readout_r2_within_clip``), and the
stage's own protocol (ridge probe fit on the val clips, scored on the test clips,
:func:`vasa.latent.evaluate.probes`, on the concatenated code: ``probe_r2_test``).

Labels are used here only, as a diagnostic: never in the model the stage ships. Same seed, same
result on CPU. ``scripts/latent_encoder_ceiling.py`` runs it over named variants.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vasa.data.corpus import Corpus
from vasa.data.frames import to_tensor
from vasa.errors import VasaError
from vasa.latent.config import latent_config
from vasa.latent.encoders import MotionEncoder
from vasa.latent.evaluate import probes, targets_of

TARGETS = ("yaw", "pitch", "roll", "jaw", "blink")


def area_downsample(frames: np.ndarray, size: int) -> np.ndarray:
    """N x R x R x 3 uint8 -> N x size x size x 3 by averaging k x k blocks (R = k * size): the renderer's
    own anti-aliasing (``prepare.supersample``), so a corpus rendered at 2x gives the 1x frames exactly
    as a 1x corpus with supersampling would, up to rounding."""
    k = frames.shape[1] // size
    if k * size != frames.shape[1] or frames.shape[1] != frames.shape[2]:
        raise VasaError(f"the corpus frames are {frames.shape[1]} px, not a multiple of {size} px: "
                        "pick an image size that divides the corpus resolution")
    if k == 1:
        return frames
    f = frames.reshape(len(frames), size, k, size, k, frames.shape[-1]).astype(np.float32).mean((2, 4))
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def load_frames(corpus: str, split: str, per_clip: int, size: int, progress: bool = True,
                downsample: bool = False) -> dict[str, np.ndarray]:
    """``per_clip`` evenly spaced frames of every speech clip of ``split``: frames N x S x S x 3 uint8,
    targets ``y`` N x 5 (:data:`TARGETS`), params, clip index ``group``, param ``names``. With
    ``downsample`` a corpus rendered at an integer multiple of ``size`` is area-downsampled to it
    (:func:`area_downsample`: the same frames at two resolutions, for a resolution ablation)."""
    c = Corpus(corpus)
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    if not recs:
        raise VasaError(f"split {split!r} of {corpus} has no speech clip: generate a corpus with that split")
    fr, prm, grp = [], [], []
    for k, r in enumerate(tqdm(recs, desc=f"frames {split}", disable=not progress)):
        idx = np.unique(np.linspace(0, r["n_frames"] - 1, min(per_clip, r["n_frames"])).round().astype(int))
        f = c.shard(r["shard"]).frames(r["index"])[idx]  # T x S x S x 3
        if downsample and f.shape[1] > size:
            f = area_downsample(f, size)
        if f.shape[1] != size:
            raise VasaError(f"the corpus frames are {f.shape[1]} px but this encoder size takes {size} px: "
                            "pick the size that matches the corpus resolution")
        fr.append(f)
        prm.append(c.params(r["id"])[idx])
        grp.append(np.full(len(idx), k))
    params = np.concatenate(prm)
    t = targets_of(params, c.param_names)
    return dict(frames=np.concatenate(fr), y=np.stack([t[n] for n in TARGETS], 1).astype(np.float32),
                params=params, group=np.concatenate(grp), names=np.array(c.param_names))


def _batch(frames: np.ndarray) -> torch.Tensor:
    return torch.stack([to_tensor(f) for f in frames])  # B x 3 x S x S in [-1, 1]


@torch.no_grad()
def _encode(enc: MotionEncoder, frames: np.ndarray, bs: int = 256) -> tuple[np.ndarray, np.ndarray]:
    enc.eval()
    zp, zd = zip(*(enc(_batch(frames[k:k + bs])) for k in range(0, len(frames), bs)))
    return torch.cat(zp).numpy(), torch.cat(zd).numpy()  # N x pose_dim, N x dyn_dim


def r2_columns(pred: np.ndarray, y: np.ndarray) -> list[float]:
    """R² of each column of ``pred`` (N x K) against ``y`` (N x K)."""
    return [float(1 - ((pred[:, j] - y[:, j]) ** 2).sum() / max(((y[:, j] - y[:, j].mean()) ** 2).sum(), 1e-12))
            for j in range(y.shape[1])]


def demean_groups(a: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``a`` (N x K) minus the mean of its group (clip) per column: the motion within each clip."""
    out = a.astype(np.float64).copy()
    for g in np.unique(group):
        m = group == g
        out[m] -= out[m].mean(0)
    return out


def within_clip_probes(fit: dict[str, np.ndarray], ev: dict[str, np.ndarray]) -> dict[str, dict]:
    """The stage's probes (:func:`vasa.latent.evaluate.probes`: ridge fit on ``fit``, R² on ``ev``) on the
    codes as they are (``absolute``) and on the motion within each clip (``within_clip``: codes and
    ground truth minus their clip means), for codes of :func:`vasa.latent.evaluate.clip_codes`.

    The gap between the two is what a single frame of an unseen face does not tell: its constant offset
    (a steady tilt or a half-closed eye looks like a face shape), as opposed to how it moves."""
    def demeaned(d):
        return dict(d, z_pose=demean_groups(d["z_pose"], d["group"]), z_dyn=demean_groups(d["z_dyn"], d["group"]),
                    params=demean_groups(d["params"], d["group"]))
    return dict(absolute=probes(fit, ev)["table"], within_clip=probes(demeaned(fit), demeaned(ev))["table"])


def encoder_ceiling(data: dict[str, dict[str, np.ndarray]], size: str = "S", overrides: dict | None = None,
                    steps: int = 1500, batch: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4,
                    warmup: int = 50, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train ``MotionEncoder(latent_config(size, **overrides))`` supervised on ``data["train"]`` (from
    :func:`load_frames`), AdamW + warmup + cosine; score it on ``data["val"]`` / ``data["test"]``."""
    over = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items()}
    torch.manual_seed(seed)
    cfg = latent_config(size, **over)
    enc = MotionEncoder(cfg)
    head = torch.nn.Linear(cfg.pose_dim + cfg.dyn_dim, len(TARGETS))  # the read-out trained with it
    tr = data["train"]
    mu, sd = tr["y"].mean(0), tr["y"].std(0) + 1e-6
    y_std = torch.from_numpy((tr["y"] - mu) / sd)  # N x 5
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(warmup, 1)) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    t0 = time.time()
    enc.train()
    loss = torch.zeros(())
    for _ in tqdm(range(steps), desc="supervised E_mot", disable=not progress):
        ix = rng.integers(0, len(tr["frames"]), batch)
        zp, zd = enc(_batch(tr["frames"][ix]))
        loss = F.mse_loss(head(torch.cat([zp, zd], 1)), y_std[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    out: dict[str, Any] = dict(model=overrides or {}, n_params=sum(p.numel() for p in enc.parameters()),
                               train_s=round(time.time() - t0, 1), final_loss=float(loss.detach()))
    codes = {}
    for split in ("val", "test"):
        zp, zd = _encode(enc, data[split]["frames"])
        codes[split] = dict(z_pose=zp, z_dyn=zd, params=data[split]["params"], group=data[split]["group"],
                            names=data[split]["names"])
    with torch.no_grad():
        z = np.concatenate([codes["test"]["z_pose"], codes["test"]["z_dyn"]], 1)
        pred = head(torch.from_numpy(z)).numpy() * sd + mu
    out["readout_r2_test"] = dict(zip(TARGETS, r2_columns(pred, data["test"]["y"])))
    # the same read-out on the motion within each test clip (prediction and truth minus their clip means):
    # what an unseen face's frames tell apart, without its constant offset (face shape vs a steady tilt)
    g = data["test"]["group"]
    out["readout_r2_within_clip"] = dict(zip(TARGETS, r2_columns(demean_groups(pred, g), demean_groups(data["test"]["y"], g))))
    # the stage's protocol on the whole code (this encoder was not asked to split pose from dynamics)
    both = {s: dict(codes[s], z_pose=np.concatenate([codes[s]["z_pose"], codes[s]["z_dyn"]], 1)) for s in codes}
    out["probe_r2_test"] = probes(both["val"], both["test"])["table"]["z_pose"]
    return out
