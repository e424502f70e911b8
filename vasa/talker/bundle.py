"""The model bundle: one folder with everything generation needs (``Talker.from_pretrained(path)``).

Layout (each part written by :func:`vasa.train.save_pretrained`: ``model.safetensors`` + ``config.json``)::

    <bundle>/
      latent/            face latent model (stage 1)      -> vasa.latent.train.load_latent
      audio/             audio encoder A_enc              -> vasa.audio.load_audio_encoder
      motion/            motion DiT H (stage 2)           -> vasa.motion.load_motion_model
      motion/norm.npz    pose_mean, pose_std, dyn_mean, dyn_std: the motion model works in normalised
                         units X = [(z_pose - pose_mean) / pose_std, (z_dyn - dyn_mean) / dyn_std]
      bundle.json        optional: name, version, model_id (the watermark's 16-bit model id), what
                         trained each part (fingerprints, configs)

The portrait's own motion (``E_mot`` of the crop, normalised) is given to the motion model as its
reference condition ``x_ref`` unless it was trained without one (``ref_drop_prob = 1``). The motion
model's audio features are the encoder's output (``audio_dim == encoder width``) or,
for a motion model trained on raw log-mel, the stacked log-mel itself (``audio_dim ==
stack * n_mels``); anything else is an error.

>>> save_bundle("pretrained/vasa-S", "models/latent", "models/audio", "models/motion/model", "data/motion/norm.npz")
>>> random_bundle("bundle-tiny", seed=0)      # random weights, tiny sizes: tests and documentation
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vasa.errors import VasaError

FORMAT = 1
PARTS = ("latent", "audio", "motion")
NORM_KEYS = ("pose_mean", "pose_std", "dyn_mean", "dyn_std")
DEFAULT_BUNDLE = "pretrained/vasa-S"


def _config(directory: Path) -> dict:
    try:
        return json.loads((directory / "config.json").read_text("utf-8"))["config"]
    except (OSError, ValueError, KeyError) as e:
        raise VasaError(f"{directory} is not an exported model (config.json unreadable: {e})") from None


def read_norm(path: str | Path) -> dict[str, np.ndarray]:
    """``norm.npz`` -> float32 arrays pose_mean, pose_std, dyn_mean, dyn_std (no pickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NORM_KEYS if k not in z.files]
            if missing:
                raise VasaError(f"{path} lacks {', '.join(missing)} (expected {', '.join(NORM_KEYS)})")
            return {k: np.asarray(z[k], np.float32).reshape(-1) for k in NORM_KEYS}
    except (OSError, ValueError) as e:
        raise VasaError(f"cannot read motion normalisation {path}: {e}") from None


def describe(path: str | Path) -> dict:
    """Dimensions of a bundle from its configs alone (no weights): checks that the parts fit together."""
    path = Path(path)
    if not path.is_dir():
        raise VasaError(f"no model bundle at {path}: pass --checkpoint DIR (a folder with latent/, audio/, motion/), "
                        f"build one with vasa.talker.bundle.save_bundle, or a random test bundle with "
                        f"vasa.talker.bundle.random_bundle")
    for part in PARTS:
        if not (path / part / "config.json").is_file():
            raise VasaError(f"{path} is not a model bundle: {part}/config.json is missing "
                            f"(expected subfolders {', '.join(PARTS)})")
    lat = _config(path / "latent").get("latent")
    aud = _config(path / "audio").get("task", {}).get("model")
    mot = _config(path / "motion").get("task", {}).get("model")
    if lat is None or aud is None or mot is None:
        raise VasaError(f"{path}: latent/, audio/ or motion/ does not hold the expected export")
    from vasa.audio.config import AudioConfig
    from vasa.latent.config import LatentModelConfig

    lc, ac = LatentModelConfig.from_dict(lat), AudioConfig.from_dict(aud)
    norm = read_norm(path / "motion" / "norm.npz")
    pose_dim, dyn_dim = lc.pose_dim, lc.dyn_dim
    if (len(norm["pose_mean"]), len(norm["pose_std"]), len(norm["dyn_mean"]), len(norm["dyn_std"])) != \
            (pose_dim, pose_dim, dyn_dim, dyn_dim):
        raise VasaError(f"{path}/motion/norm.npz has the wrong sizes for a latent model with pose_dim {pose_dim}, "
                        f"dyn_dim {dyn_dim}")
    if mot["motion_dim"] != pose_dim + dyn_dim:
        raise VasaError(f"{path}: the motion model generates {mot['motion_dim']} numbers per frame but the latent "
                        f"model needs z_pose + z_dyn = {pose_dim} + {dyn_dim}: they were not trained together")
    if mot["audio_dim"] == ac.width:
        audio_mode = "encoder"
    elif mot["audio_dim"] == ac.feature_dim:
        audio_mode = "logmel"
    else:
        raise VasaError(f"{path}: the motion model expects {mot['audio_dim']}-d audio features, but the audio "
                        f"encoder gives {ac.width} (and its log-mel {ac.feature_dim}): mismatched bundle")
    info = {}
    if (path / "bundle.json").is_file():
        try:
            info = json.loads((path / "bundle.json").read_text("utf-8"))
        except ValueError as e:
            raise VasaError(f"{path}/bundle.json is not valid JSON: {e}") from None
    train = _config(path / "motion").get("task", {}).get("train") or {}
    ref_drop = train.get("ref_drop_prob")
    ref_drop = train.get("drop_prob", 0.0) if ref_drop is None else ref_drop
    return dict(image_size=lc.image_size, pose_dim=pose_dim, dyn_dim=dyn_dim, audio_mode=audio_mode,
                audio_dim=mot["audio_dim"], window=mot["window"], past=mot["past"],
                diffusion_steps=mot["diffusion_steps"], use_ref=ref_drop < 1.0, info=info)


def fingerprint(path: str | Path) -> str:
    """A short hash of the three parts' weights and the normalisation (identifies a bundle's content)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in [path / p / "model.safetensors" for p in PARTS] + [path / "motion" / "norm.npz"]:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def model_id(path: str | Path, info: dict | None = None) -> int:
    """The watermark's 16-bit model id: ``bundle.json``'s ``model_id``, else derived from the weights."""
    if info and "model_id" in info:
        return int(info["model_id"]) % 65536
    return int(fingerprint(path)[:4], 16)


@dataclass
class Bundle:
    """The loaded parts of a bundle (see the module docstring)."""

    latent: torch.nn.Module
    audio: torch.nn.Module
    motion: torch.nn.Module
    norm: dict[str, np.ndarray]
    audio_mode: str  # "encoder" | "logmel"
    path: Path | None = None
    use_ref: bool = True  # the motion model was trained with x_ref (the portrait's own motion) as a condition
    info: dict = field(default_factory=dict)
    model_id: int = 0

    @property
    def name(self) -> str:
        return str(self.info.get("name") or (self.path.name if self.path else "vasa"))


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load the three parts and the normalisation (after :func:`describe` checked that they fit)."""
    from vasa.audio import load_audio_encoder
    from vasa.latent.train import load_latent
    from vasa.motion import load_motion_model

    path = Path(path)
    d = describe(path)
    latent = load_latent(path / "latent", device=device)
    audio, _ = load_audio_encoder(path / "audio")
    motion = load_motion_model(path / "motion")
    for m in (audio, motion):
        m.to(device).eval().requires_grad_(False)
    return Bundle(latent, audio, motion, read_norm(path / "motion" / "norm.npz"), d["audio_mode"], path,
                  d["use_ref"], d["info"], model_id(path, d["info"]))


def _copy_half(src: Path, dst: Path) -> None:
    """Copy a safetensors file with its float32 tensors stored as float16 (loading upcasts them to the
    module's float32 parameters; half the bytes, ~1e-3 relative rounding of each weight)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
    save_file(tensors, str(dst), metadata=meta)


def save_bundle(out: str | Path, latent_dir: str | Path, audio_dir: str | Path, motion_dir: str | Path,
                norm_path: str | Path, name: str | None = None, version: str | None = None,
                extra: dict | None = None, half: tuple[str, ...] = ()) -> Path:
    """Copy the exported parts into a bundle folder ``out`` atomically (temporary sibling, then rename).

    The parts must fit together (checked with :func:`describe` before the rename). ``bundle.json``
    records the name, version, the watermark model id, a fingerprint of each part and ``extra``
    (e.g. what trained them). Parts named in ``half`` store their float32 weights as float16.
    """
    unknown = sorted(set(half) - set(PARTS))
    if unknown:
        raise VasaError(f"half: unknown bundle part(s) {unknown}; choose from {PARTS}")
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for part, src in zip(PARTS, (latent_dir, audio_dir, motion_dir)):
            src = Path(src)
            if not (src / "config.json").is_file() or not (src / "model.safetensors").is_file():
                raise VasaError(f"{src} is not an exported model (needs config.json + model.safetensors)")
            (tmp / part).mkdir()
            shutil.copy2(src / "config.json", tmp / part / "config.json")
            if part in half:
                _copy_half(src / "model.safetensors", tmp / part / "model.safetensors")
            else:
                shutil.copy2(src / "model.safetensors", tmp / part / "model.safetensors")
        read_norm(norm_path)
        shutil.copy2(norm_path, tmp / "motion" / "norm.npz")
        describe(tmp)
        fp = fingerprint(tmp)
        parts = {}
        for part in PARTS:
            h = hashlib.sha256((tmp / part / "model.safetensors").read_bytes()).hexdigest()[:16]
            parts[part] = {"fingerprint": h, "config": _config(tmp / part)}
        info = {"format": FORMAT, "name": name or out.name, "version": version or "0",
                "model_id": int(fp[:4], 16), "fingerprint": fp, "float16_parts": list(half),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "parts": parts, **(extra or {})}
        (tmp / "bundle.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f".tmp-old-{out.name}-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        from vasa.io.atomic import disk_error

        raise disk_error(out, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def random_bundle(out: str | Path, seed: int = 0, latent: str = "tiny", audio: str = "tiny", motion: str = "tiny",
                  audio_mode: str = "encoder", latent_overrides: dict | None = None, **motion_overrides) -> Path:
    """A bundle with random weights (named sizes of each part) at ``out``: for tests, docs and timing.

    ``audio_mode="logmel"`` makes a motion model that reads raw log-mel instead of the encoder.
    ``motion_overrides`` change the motion config (e.g. ``window=8``), ``latent_overrides`` the latent
    model's (e.g. ``{"src_blend": True}``). Deterministic for a seed.
    """
    import tempfile

    from vasa.audio import AudioEncoder, audio_config
    from vasa.latent import FaceLatentModel
    from vasa.latent.config import latent_config
    from vasa.motion import MotionDiT, motion_config
    from vasa.motion.conditions import EMOTION_DIM
    from vasa.train import save_pretrained

    torch.manual_seed(seed)
    lc = latent_config(latent, **(latent_overrides or {}))
    ac = audio_config(audio)
    if audio_mode not in ("encoder", "logmel"):
        raise VasaError(f"audio_mode must be 'encoder' or 'logmel', got {audio_mode!r}")
    a_dim = ac.width if audio_mode == "encoder" else ac.feature_dim
    mc = motion_config(motion, motion_dim=lc.pose_dim + lc.dyn_dim, audio_dim=a_dim, emotion_dim=EMOTION_DIM,
                       **motion_overrides)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="vasa-random-bundle-") as tdir:
        t = Path(tdir)
        face = FaceLatentModel(lc)
        with torch.no_grad():  # low-contrast frames instead of saturated noise (random weights: tests only)
            face.G.out[0].weight.mul_(0.15)
            face.G.out[0].bias.zero_()
        save_pretrained(t / "latent", {"model": face}, {"latent": lc.to_dict(), "size": latent})
        save_pretrained(t / "audio", AudioEncoder(ac), {"task": {"model": ac.to_dict(), "vocab": []}})
        save_pretrained(t / "motion", MotionDiT(mc), {"task": {"model": mc.to_dict()}})
        pose_std = np.full(lc.pose_dim, 0.05, np.float32)
        np.savez(t / "norm.npz", pose_mean=np.zeros(lc.pose_dim, np.float32), pose_std=pose_std,
                 dyn_mean=rng.normal(0, 0.1, lc.dyn_dim).astype(np.float32),
                 dyn_std=np.full(lc.dyn_dim, 0.3, np.float32), count=np.array(0))
        return save_bundle(out, t / "latent", t / "audio", t / "motion", t / "norm.npz", name=Path(out).name,
                           version="random", extra={"random": True, "seed": seed})
