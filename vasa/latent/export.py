"""The ``export_motion`` stage: encode every speech clip of the corpus into motion files.

Layout of ``data/motion`` (the input of the motion model, stage 2)::

    meta.json            format, fingerprint of the latent model's weights, pose layout, pose_dim,
                         dyn_dim, fps, norm split, clip count
    norm.npz             pose_mean, pose_std (pose_dim,), dyn_mean, dyn_std (dyn_dim,), count ():
                         per-dimension statistics over every frame of the ``norm_split`` clips (train)
    manifest.jsonl       one record per clip: id, split, identity, language, style, n_frames, file
    clips/<id>.npz       z_pose (T x pose_dim) float32, z_dyn (T x dyn_dim) float32 -- frame t of
                         the corpus clip, encoded by E_mot of the exported model (EMA weights)

One uncompressed ``.npz`` per clip (a motion file is ~50 KB: random access by clip id, no shard
bookkeeping for the loaders of stage 2). Every file is written atomically (temporary sibling, then
rename). Resuming: clip files already present with the right frame count are kept; when the model
changed (another fingerprint) the folder is emptied first. ``meta.json``, ``norm.npz`` and the
manifest are written last, so a folder holding ``meta.json`` is complete.

>>> stats = export_motion(corpus="data/corpus", model="models/latent", out="data/motion")
>>> z_pose, z_dyn = load_motion("data/motion", "s000123")
>>> norm = load_norm("data/motion")                     # {"pose_mean": ..., "pose_std": ..., ...}
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from vasa.data.corpus import Corpus
from vasa.data.frames import to_tensor
from vasa.errors import VasaError
from vasa.io.atomic import remove_stale_temporaries, write_bytes, write_json, write_text
from vasa.latent.train import latent_fingerprint, load_latent

FORMAT = 1


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise VasaError("device 'cuda' requested but CUDA is not available: use device=auto or cpu")
    return torch.device(device)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@torch.no_grad()
def encode_frames(model, frames: np.ndarray, batch_size: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """T x H x W x 3 uint8 -> (z_pose T x pose_dim, z_dyn T x dyn_dim) float32, resized to the model's size."""
    s = model.cfg.image_size
    poses, dyns = [], []
    for k in range(0, len(frames), batch_size):
        chunk = frames[k:k + batch_size]
        if chunk.shape[1] != s:
            chunk = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in chunk])
        x = torch.stack([to_tensor(f) for f in chunk]).to(device)
        zp, zd = model.encode_motion(x)
        poses.append(zp.float().cpu().numpy())
        dyns.append(zd.float().cpu().numpy())
    return np.concatenate(poses).astype(np.float32), np.concatenate(dyns).astype(np.float32)


def _clip_ok(path: Path, n_frames: int, pose_dim: int, dyn_dim: int) -> bool:
    try:
        with np.load(path) as z:
            return z["z_pose"].shape == (n_frames, pose_dim) and z["z_dyn"].shape == (n_frames, dyn_dim)
    except (OSError, ValueError, KeyError):
        return False


def export_motion(corpus: str = "data/corpus", model: str = "models/latent", out: str = "data/motion",
                  batch_size: int = 128, norm_split: str = "train", device: str = "auto",
                  progress: bool = True) -> dict[str, Any]:
    """Encode every speech clip of ``corpus`` with the latent model in ``model`` into ``out`` (see the
    module docstring); returns statistics (clips, frames, encoded now, seconds, frames_per_s)."""
    import time

    c = Corpus(corpus)
    dev = _pick_device(device)
    net = load_latent(model, dev)
    fp = latent_fingerprint(model)
    root = Path(out)
    clips_dir = root / "clips"
    meta_path = root / "meta.json"
    progress_path = root / "progress.json"  # fingerprint of an unfinished run
    prev = None
    for p in (meta_path, progress_path):
        if p.is_file():
            prev = json.loads(p.read_text()).get("fingerprint")
            break
    if prev is not None and prev != fp:
        shutil.rmtree(clips_dir, ignore_errors=True)
        for p in (meta_path, root / "norm.npz", root / "manifest.jsonl"):
            p.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)  # present only when complete
    write_json(progress_path, {"fingerprint": fp})
    remove_stale_temporaries(root)

    recs = sorted(c.records(kind="speech"), key=lambda r: (r["shard"], r["index"]))
    if not recs:
        raise VasaError(f"no speech clip in {corpus}: nothing to export")
    if not any(r["split"] == norm_split for r in recs):
        raise VasaError(f"no speech clip in split {norm_split!r} of {corpus}: choose another norm_split")
    P, Dd = net.pose_dim, net.dyn_dim
    t0, encoded, frames_now = time.perf_counter(), 0, 0
    bar = tqdm(recs, desc="export_motion", disable=not progress, dynamic_ncols=True)
    for r in bar:
        path = clips_dir / f"{r['id']}.npz"
        if _clip_ok(path, r["n_frames"], P, Dd):
            continue
        frames = c.shard(r["shard"]).frames(r["index"])
        zp, zd = encode_frames(net, frames, batch_size, dev)
        write_bytes(path, _npz_bytes(z_pose=zp, z_dyn=zd))
        encoded += 1
        frames_now += len(frames)
    seconds = time.perf_counter() - t0

    # normalisation statistics (float64 accumulation) over the norm split, then the manifest and meta
    s = np.zeros(P + Dd)
    ss = np.zeros(P + Dd)
    n = 0
    lines = []
    for r in recs:
        zp, zd = load_motion(root, r["id"])
        if r["split"] == norm_split:
            z = np.concatenate([zp, zd], 1).astype(np.float64)
            s += z.sum(0)
            ss += (z * z).sum(0)
            n += len(z)
        lines.append(json.dumps(dict(id=r["id"], split=r["split"], identity=r["identity"],
                                     language=r.get("language"), style=r.get("style"),
                                     n_frames=r["n_frames"], file=f"clips/{r['id']}.npz")))
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean ** 2, 0.0)) + 1e-6
    write_bytes(root / "norm.npz", _npz_bytes(
        pose_mean=mean[:P].astype(np.float32), pose_std=std[:P].astype(np.float32),
        dyn_mean=mean[P:].astype(np.float32), dyn_std=std[P:].astype(np.float32), count=np.array(n)))
    write_text(root / "manifest.jsonl", "\n".join(lines) + "\n")
    total = int(sum(r["n_frames"] for r in recs))
    meta = dict(format=FORMAT, fingerprint=fp, model=str(model), pose_layout=list(net.pose_layout),
                pose_dim=P, dyn_dim=Dd, fps=c.schema.get("fps", 25), norm_split=norm_split, clips=len(recs),
                frames=total, dtype="float32")
    write_json(meta_path, meta)
    progress_path.unlink(missing_ok=True)
    return dict(clips=len(recs), frames=total, encoded_now=encoded, seconds=seconds,
                frames_per_s=frames_now / seconds if seconds > 0 and frames_now else 0.0, norm_frames=n)


def load_motion(root: str | Path, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
    """``(z_pose T x pose_dim, z_dyn T x dyn_dim)`` float32 of one clip."""
    path = Path(root) / "clips" / f"{clip_id}.npz"
    if not path.is_file():
        raise VasaError(f"no motion file for clip {clip_id!r} in {root}: run `dvc repro export_motion`")
    with np.load(path) as z:
        return z["z_pose"], z["z_dyn"]


def load_norm(root: str | Path) -> dict[str, np.ndarray]:
    """The dataset-level normalisation: pose_mean, pose_std, dyn_mean, dyn_std, count."""
    path = Path(root) / "norm.npz"
    if not (Path(root) / "meta.json").is_file() or not path.is_file():
        raise VasaError(f"no complete motion export in {root}: run `dvc repro export_motion`")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
