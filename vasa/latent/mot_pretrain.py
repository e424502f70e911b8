"""E_mot warm start: the motion encoder trained on its landmark guidance alone, before the joint stage.

Why. In the joint stage E_mot learns what to encode from two signals: reconstruction (through a decoder
that is itself learning) and the landmark guidance (:class:`vasa.latent.guidance.GuidanceLoss`), which
covers 16 frames per clip and is one term among ten. Rare, small motions lose that race: a blink is
~2 % of frames and a few pixels, the decoder paints open eyes, and since the decoder never uses the
eyes' channel the reconstruction never asks the encoder for it (blink probe 0.00 in every full run;
the same encoder trained *supervised* on the true blink reads 0.69, ``vasa.latent.ceiling``). A chicken
and egg: the decoder cannot learn to render a blink the code does not carry.

What. :func:`pretrain_motion_encoder` fits E_mot to the guidance targets only (MediaPipe's pose, mouth,
eye and gaze measures of the guided frames; no ground-truth label), with AdamW, warmup + cosine, on
batches of frames drawn with optional weights (``blink_boost``-style: frames MediaPipe sees with closed
eyes drawn more often). A few minutes on 2 cores; the joint stage then starts from an encoder that
already carries what the guidance says, and the decoder can learn to use it. It is the same guidance
and the same loss as in the stage, so nothing here needs labels and it applies to real video as is.

Same seed, same weights on CPU.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vasa.data.corpus import Corpus
from vasa.data.frames import to_tensor
from vasa.errors import VasaError
from vasa.latent.encoders import MotionEncoder
from vasa.latent.guidance import Guidance, GuidanceLoss


def guided_frame_data(corpus: str | Path, guide: Guidance, size: int, progress: bool = True) -> dict[str, np.ndarray]:
    """The guided frames of ``guide`` (every clip, its cached frame indices) as N x size x size x 3 uint8,
    with their targets (N x ``guide.names``, NaN where MediaPipe found no face) and clip index ``group``,
    in the order of ``guide.frames``."""
    import cv2

    c = Corpus(corpus)
    fr, tg, grp = [], [], []
    for k, (cid, idx) in enumerate(tqdm(guide.frames.items(), desc="guided frames", disable=not progress)):
        r = c.record(cid)
        sh = c.shard(r["shard"])
        lo = int(sh.arrays["clip_offsets"][r["index"]])
        f = np.stack([sh.frame(lo + int(t)) for t in idx])  # T x R x R x 3: only the guided frames are decoded
        if f.shape[1] != size:
            f = np.stack([cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA) for a in f])
        fr.append(f)
        tg.append(np.stack([guide.target(cid, int(t)) for t in idx]))
        grp.append(np.full(len(idx), k))
    if not fr:
        raise VasaError("the guidance cache has no frame: estimate it on a split with speech clips")
    return dict(frames=np.concatenate(fr), targets=np.concatenate(tg).astype(np.float32), group=np.concatenate(grp))


def frame_weights(guide: Guidance, boost: float, threshold: float) -> np.ndarray:
    """Sampling weight of every guided frame, in the order of :func:`guided_frame_data`."""
    w = guide.driver_weights(boost, threshold)
    return np.concatenate([w[c] for c in guide.frames])


def pretrain_motion_encoder(enc: MotionEncoder, frames: np.ndarray, targets: np.ndarray, steps: int = 1500,
                            batch: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4, warmup: int = 50,
                            guide_pose: float = 1.0, guide_dyn: float = 1.0, weights: np.ndarray | None = None,
                            seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
                            ) -> dict[str, Any]:
    """Fit ``enc`` (in place) to the guidance ``targets`` of ``frames`` (N x S x S x 3 uint8; targets
    N x (3 + guided z_dyn channels), NaN = unknown) with :class:`GuidanceLoss`. ``weights`` (N, >= 0):
    how often each frame is drawn (None: uniformly). Returns the loss curve (every 25 steps) and the
    time it took."""
    if len(frames) != len(targets):
        raise VasaError(f"pretrain_motion_encoder: {len(frames)} frames but {len(targets)} target rows")
    if steps < 1 or batch < 1:
        raise VasaError(f"mot_pretrain_steps and its batch must be >= 1, got {steps}, {batch}")
    p = None
    if weights is not None:
        w = np.asarray(weights, np.float64)
        if w.shape != (len(frames),) or (w < 0).any() or w.sum() <= 0:
            raise VasaError("pretrain_motion_encoder: weights need one non-negative value per frame, not all zero")
        p = w / w.sum()
    loss_fn = GuidanceLoss(pose=guide_pose, dyn=guide_dyn)
    enc.to(device).train()
    params = [q for q in enc.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(warmup, 1)) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    tgt_all = torch.from_numpy(np.asarray(targets, np.float32))
    curve, t0 = [], time.time()
    for step in tqdm(range(steps), desc="E_mot warm start", disable=not progress):
        ix = rng.choice(len(frames), batch, p=p)
        x = torch.stack([to_tensor(f) for f in frames[ix]]).to(device)  # B x 3 x S x S
        z_pose, z_dyn = enc(x)  # B x pose_dim, B x dyn_dim
        loss = loss_fn(z_pose, z_dyn, tgt_all[ix].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            curve.append((step, float(loss.detach())))
    enc.eval()
    return dict(steps=steps, batch=batch, lr=lr, train_s=round(time.time() - t0, 1), loss=curve)


def save_motion_encoder(enc: MotionEncoder, path: str | Path) -> None:
    """E_mot's weights as safetensors, written atomically."""
    from safetensors.torch import save

    from vasa.io.atomic import write_bytes

    write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}))


def load_motion_encoder(enc: MotionEncoder, path: str | Path) -> MotionEncoder:
    """Load :func:`save_motion_encoder`'s file into ``enc`` (strict: the architecture must match)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    try:
        enc.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise VasaError(f"{path} does not fit this E_mot ({str(e).splitlines()[0]}): delete it and re-run "
                        "the warm start with this model size") from None
    return enc


def warm_start_file(corpus: str | Path, guidance: str | Path, work_dir: str | Path, model_config: dict,
                    targets: str, guide_pose: float, guide_dyn: float, steps: int, batch: int, lr: float,
                    boost: float, threshold: float, seed: int, device: str = "auto", progress: bool = True,
                    ) -> tuple[str, dict[str, Any]]:
    """The stage's warm start: E_mot of ``model_config`` fitted to the guidance cache ``guidance`` (its
    ``targets`` layout, the stage's weights and ``blink_boost``) and saved as ``<work_dir>/mot_pretrain.
    safetensors`` + a JSON sidecar holding its settings and fit. Reused when the sidecar's settings match
    (a resumed or re-run stage does not refit it). Returns (path, fit summary)."""
    import json

    from vasa.io.atomic import write_json
    from vasa.latent.config import LatentModelConfig
    from vasa.train.dist import resolve_device

    path, side = Path(work_dir) / "mot_pretrain.safetensors", Path(work_dir) / "mot_pretrain.json"
    gside = Path(guidance).with_suffix(".json")
    key = dict(model_config=model_config, targets=targets, guide_pose=guide_pose, guide_dyn=guide_dyn, steps=steps,
               batch=batch, lr=lr, boost=boost, threshold=threshold, seed=seed,
               guidance=json.loads(gside.read_text()) if gside.is_file() else str(guidance))
    key = json.loads(json.dumps(key))
    if path.is_file() and side.is_file():
        old = json.loads(side.read_text())
        if old.get("settings") == key:
            return str(path), old["fit"]
    cfg = LatentModelConfig.from_dict(model_config)
    g = Guidance.load(guidance, targets)
    data = guided_frame_data(corpus, g, cfg.image_size, progress)
    torch.manual_seed(seed)
    enc = MotionEncoder(cfg)
    w = frame_weights(g, boost, threshold) if boost > 0 else None
    fit = pretrain_motion_encoder(enc, data["frames"], data["targets"], steps, batch, lr, guide_pose=guide_pose,
                                  guide_dyn=guide_dyn, weights=w, seed=seed, device=resolve_device(device),
                                  progress=progress)
    fit["frames"] = len(data["frames"])
    save_motion_encoder(enc.cpu(), path)
    write_json(side, dict(settings=key, fit=fit))
    return str(path), fit
