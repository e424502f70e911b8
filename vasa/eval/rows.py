"""The rows of the evaluation table: what produces a video for a test item.

* ``gt``          the rendered corpus clip itself (only where the item has one);
* ``latent_recon`` the same clip re-rendered by the bundle's face latent model from its exported
                  motion (``data/motion/clips/<id>.npz``, the motion model's training targets) on the
                  portrait's appearance: the ceiling any generated motion can reach through this
                  latent space (separates latent-space from motion-model failures; gt items only);
* ``static``      the source portrait repeated (:func:`vasa.eval.baselines.static_video`);
* ``mouth_flap``  an image-space warp of the portrait's mouth driven by the audio energy, no head
                  motion (:class:`vasa.eval.baselines.MouthFlap`);
* ``regression``  the deterministic regression motion model (``models/motion_regression``, the
                  motion DiT backbone trained with MSE) in place of the bundle's diffusion model,
                  rendered by the same face latent model;
* ``vasa_50``     the bundle with 50 sampling steps (DDIM, the paper's setting);
* ``vasa_fast``   the bundle with the fastest sampler (``fast_sampler`` / ``fast_steps``).

Every call into the generator goes through ONE adapter, :func:`vasa_row`, so a change of the
Talker's interface is fixed in one place.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vasa.errors import VasaError
from vasa.eval.baselines import MouthFlap, static_video

ROWS = ("gt", "latent_recon", "static", "mouth_flap", "regression", "vasa_50", "vasa_fast")
GENERATED = ("regression", "vasa_50", "vasa_fast")  # rows that generate motion with the bundle
FPS, SR = 25, 16000

_TALKERS: dict[tuple[str, str], object] = {}


def _talker(bundle: str | Path, motion: str | Path | None = None, device: str = "cpu"):
    """A cached :class:`vasa.talker.Talker` for ``bundle``, with its motion model replaced by the
    exported motion model in ``motion`` (e.g. the regression baseline) when given."""
    key = (str(Path(bundle).resolve()), str(Path(motion).resolve()) if motion else "")
    if key not in _TALKERS:
        from vasa.talker.bundle import load_bundle, read_norm
        from vasa.talker.talker import Talker

        b = load_bundle(bundle, device="cpu")
        if motion:
            from vasa.motion import load_motion_model

            norm_file = Path(motion) / "norm.npz"
            b = dataclasses.replace(b, motion=load_motion_model(motion),
                                    norm=read_norm(norm_file) if norm_file.is_file() else b.norm,
                                    info={**b.info, "name": f"{b.name}+{Path(motion).name}"})
        _TALKERS[key] = Talker(b, device=device)
    return _TALKERS[key]


def vasa_row(bundle: str | Path, portrait: np.ndarray, audio16k: np.ndarray, controls: dict,
             motion: str | Path | None = None, device: str = "cpu") -> tuple[np.ndarray, float]:
    """THE adapter to the generator: (T x H x W x 3 uint8 frames at 25 fps, at the model's resolution,
    and the generation time in seconds). ``portrait`` is a face crop framed like the corpus (no
    further cropping); ``controls``: gaze=(yaw, pitch), distance, emotion, cfg_audio, cfg_gaze,
    steps, sampler, seed. Frames carry the generator's watermark (what users get), with a generation
    id derived from the inputs (not a random one), so an evaluation is repeatable bit for bit."""
    import hashlib
    import warnings

    talker = _talker(bundle, motion, device)
    h = hashlib.sha256(np.ascontiguousarray(portrait).tobytes() + np.asarray(audio16k, np.float32).tobytes()
                       + repr(sorted(controls.items())).encode())
    controls = {"generation_id": int.from_bytes(h.digest()[:4], "big"), **controls}
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # measured at the model's resolution on purpose (the watermark note is moot)
        warnings.filterwarnings("ignore", message=".*invisible watermark is robust.*")
        gen = talker.generate(np.ascontiguousarray(portrait), (np.asarray(audio16k, np.float32), SR),
                              resolution=None, crop=False, **controls)
    seconds = time.perf_counter() - t0
    frames = np.asarray(gen.frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or int(gen.fps) != FPS:
        raise VasaError(f"the generator returned {frames.dtype} {frames.shape} at {gen.fps} fps; the evaluation "
                        f"needs T x H x W x 3 uint8 at {FPS} fps")
    return frames, seconds


def latent_recon(bundle: str | Path, portrait: np.ndarray, motion_file: str | Path, frames: int,
                 device: str = "cpu") -> np.ndarray:
    """The ``latent_recon`` row: exported ``z_pose``, ``z_dyn`` of a clip (its first ``frames``)
    decoded on ``portrait``'s appearance by the bundle's face latent model (T x S x S x 3 uint8)."""
    import torch

    from vasa.talker.talker import FrameRenderer

    if not Path(motion_file).is_file():
        raise VasaError(f"no exported motion {motion_file}: run `dvc repro export_motion`")
    talker = _talker(bundle, None, device)
    with np.load(motion_file) as z:
        zp, zd = (torch.from_numpy(np.asarray(z[k][:frames], np.float32)) for k in ("z_pose", "z_dyn"))
    if zp.shape[1] != len(talker.bundle.norm["pose_mean"]) or zd.shape[1] != len(talker.bundle.norm["dyn_mean"]):
        raise VasaError(f"{motion_file} holds {zp.shape[1]} + {zd.shape[1]} motion numbers per frame, the bundle's "
                        f"latent model {len(talker.bundle.norm['pose_mean'])} + {len(talker.bundle.norm['dyn_mean'])}: "
                        f"another export")
    r = FrameRenderer(talker.bundle.latent, talker.portrait(np.ascontiguousarray(portrait), crop=False), None, False,
                      talker.device)
    out = np.stack(list(r(zp, zd))) if len(zp) else np.zeros((0, *portrait.shape), np.uint8)
    if len(out) < frames:  # the clip is shorter than the audio (padding): hold the last frame
        out = np.concatenate([out, np.repeat(out[-1:], frames - len(out), 0)])
    return out


def bundle_problem(bundle: str | Path | None) -> str | None:
    """Why a bundle cannot be used (None when it can)."""
    if not bundle:
        return "no bundle configured"
    try:
        from vasa.talker.bundle import describe
    except ImportError:
        return "the generator (vasa.talker) is not installed"
    try:
        describe(bundle)
    except VasaError as e:
        return str(e)
    return None


@dataclass
class RowOutput:
    frames: np.ndarray  # T x H x W x 3 uint8
    seconds: float  # time to produce the frames (NaN for the ground truth)


@dataclass
class RowMaker:
    """Produces the video of one row for one item; :meth:`available` says which rows can run."""

    bundle: str | None = None
    regression: str | None = None
    steps: int = 50
    fast_sampler: str = "dpmpp_2m"
    fast_steps: int = 5
    cfg_audio: float = 0.5
    cfg_gaze: float = 1.0
    seed: int = 0
    device: str = "cpu"
    motion_export: str | None = None  # exported motion (clips/<id>.npz) for the latent_recon row
    _flaps: dict = field(default_factory=dict, repr=False)

    def available(self, rows=ROWS) -> dict[str, str | None]:
        """``{row: None}`` when it can run, else ``{row: reason}``."""
        bp = bundle_problem(self.bundle)
        out = {}
        for r in rows:
            if r not in ROWS:
                raise VasaError(f"unknown row {r!r} (allowed: {', '.join(ROWS)})")
            if r in GENERATED + ("latent_recon",) and bp:
                out[r] = f"bundle {self.bundle}: {bp}"
            elif r == "latent_recon" and not (self.motion_export and (Path(self.motion_export) / "clips").is_dir()):
                out[r] = f"no exported motion at {self.motion_export} (run `dvc repro export_motion`)"
            elif r == "regression" and not (self.regression and (Path(self.regression) / "config.json").is_file()):
                out[r] = f"no regression motion model at {self.regression}"
            else:
                out[r] = None
        return out

    def controls(self, row: str, **overrides) -> dict:
        c = dict(cfg_audio=self.cfg_audio, cfg_gaze=self.cfg_gaze, seed=self.seed)
        if row == "vasa_fast":
            c.update(sampler=self.fast_sampler, steps=self.fast_steps)
        elif row == "vasa_50":
            c.update(sampler="ddim", steps=self.steps)
        c.update(overrides)
        return c

    def make(self, row: str, portrait: np.ndarray, audio: np.ndarray, gt_frames: np.ndarray | None = None,
             clip_id: str | None = None, **controls) -> RowOutput:
        """The row's video for a portrait and 16 kHz audio (``gt_frames`` for the ``gt`` row, the
        corpus ``clip_id`` whose exported motion the ``latent_recon`` row decodes)."""
        n = int(np.ceil(len(audio) / (SR // FPS)))
        t0 = time.perf_counter()
        if row == "gt":
            if gt_frames is None:
                raise VasaError("the gt row needs the item's ground-truth video")
            return RowOutput(gt_frames, float("nan"))
        if row == "latent_recon":
            if clip_id is None:
                raise VasaError("the latent_recon row needs the item's corpus clip (gt items only)")
            return RowOutput(latent_recon(self.bundle, portrait, Path(self.motion_export) / "clips" / f"{clip_id}.npz",
                                          n, self.device), time.perf_counter() - t0)
        if row == "static":
            return RowOutput(static_video(portrait, n), time.perf_counter() - t0)
        if row == "mouth_flap":
            key = (portrait.shape, hash(np.ascontiguousarray(portrait).tobytes()))
            if key not in self._flaps:
                self._flaps = {key: MouthFlap(portrait)}
            return RowOutput(self._flaps[key].video(audio, n), time.perf_counter() - t0)
        if row in GENERATED:
            motion = self.regression if row == "regression" else None
            frames, secs = vasa_row(self.bundle, portrait, audio, self.controls(row, **controls), motion, self.device)
            return RowOutput(frames, secs)
        raise VasaError(f"unknown row {row!r} (allowed: {', '.join(ROWS)})")
