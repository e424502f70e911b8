"""Entry point of the ``train_motion`` stage: the motion DiT (diffusion) and its regression baseline.

>>> from vasa.config import load_params
>>> from vasa.stage_kwargs import motion_kwargs
>>> summary = train_motion(**motion_kwargs(load_params("params.yaml").train_motion))
>>> model = load_motion_model("models/motion")                 # MotionDiT, EMA weights, eval mode
>>> norm = np.load("models/motion/norm.npz")                    # pose_mean, pose_std, dyn_mean, dyn_std

Data: ``X = [z_pose, z_dyn]`` of every train clip from the ``export_motion`` output (``motion``),
normalised with its ``norm.npz`` (``motion_source = "params"``: the corpus's ground-truth face
parameters instead, an ablation); ``A`` = the trained audio encoder's features (``audio_model``),
computed once per clip and cached in ``work_dir/features``; ``g, d, e`` = the corpus record's
``conditions`` (ground-truth labels; a missing label is a dropped condition); ``x_ref`` = the motion
of one frame of the same clip (at inference: the portrait's encoded ``[z_pose, z_dyn]``, passed as
``MotionGenerator(..., ref=...)``).

Outputs:

* ``out`` (``models/motion``): ``save_pretrained`` folder of the :class:`MotionDiT` (EMA weights;
  the model carries the normalisation as buffers) + ``norm.npz`` (a copy of the export's, keys
  ``pose_mean``, ``pose_std``, ``dyn_mean``, ``dyn_std``). ``config.json`` holds
  ``{"task": {"model", "train", "windows", "data"}, "train", "steps"}`` where ``data`` records the
  motion space (``source``, ``pose_dim``, ``dyn_dim``, ``rot_repr``, ``pose_layout``,
  ``latent_fingerprint``) and the audio encoder (``audio_model``, ``audio_fingerprint``, ``audio_dim``).
* ``regression_out`` (``models/motion_regression``): the deterministic baseline (``objective =
  "regression"``, same backbone), same layout; skipped with ``regression_steps = 0``.
* ``work_dir`` (``runs/motion``): ``diffusion/`` and ``regression/`` (checkpoints + dvclive; an
  interrupted run resumes, changed settings or data start over) and ``features/`` (the cache).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.motion.config import MotionTrainConfig
from vasa.motion.dataset import MotionSpace, audio_features, latent_motion_clips, load_motion_space
from vasa.motion.model import MotionDiT
from vasa.motion.task import MotionTask, load_motion_model

__all__ = ["export_motion_model", "load_motion_model", "load_stage_data", "train_motion"]


def load_stage_data(corpus: str | Path, motion: str | Path, audio_model: str | Path, work_dir: str | Path,
                    motion_source: str = "latent", splits: tuple[str, ...] = ("train",), progress: bool = False
                    ) -> tuple[MotionSpace, dict[str, list], dict[str, Any]]:
    """The motion space, ``{split: [MotionClip]}`` and a description of the data (for configs / run keys)."""
    from vasa.audio.train import audio_fingerprint, load_audio_encoder

    c = Corpus(corpus)
    space = load_motion_space(motion_source, motion, c)
    recs = {s: c.records(split=s, kind="speech") for s in splits}
    if space.source == "latent":  # clips the export lacks cannot be used (an export of another corpus)
        missing = [r["id"] for rs in recs.values() for r in rs
                   if not (Path(motion) / "clips" / f"{r['id']}.npz").is_file()]
        if missing:
            raise VasaError(f"{len(missing)} speech clips of {corpus} have no motion file in {motion} "
                            f"(e.g. {missing[0]}): run `dvc repro export_motion`")
    feats = audio_features(c, [r for rs in recs.values() for r in rs], audio_model, Path(work_dir) / "features",
                           progress=progress)
    clips = {s: latent_motion_clips(c, space, s, feats, rs) for s, rs in recs.items() if rs}
    enc, _ = load_audio_encoder(audio_model)
    info = dict(space.to_dict(), audio_model=str(audio_model), audio_fingerprint=audio_fingerprint(audio_model),
                audio_dim=enc.dim, audio_lookahead=enc.cfg.lookahead)
    return space, clips, info


def train_motion(
    corpus: str = "data/corpus",                 # prepared corpus: records (conditions), audio, parameters
    motion: str = "data/motion",                 # export_motion output (z_pose, z_dyn per clip + norm.npz)
    audio_model: str = "models/audio",           # trained audio encoder (train_audio): A = its features
    out: str = "models/motion",                  # diffusion model export (EMA) + norm.npz
    regression_out: str = "models/motion_regression",  # regression baseline export + norm.npz
    work_dir: str = "runs/motion",               # diffusion/, regression/ (checkpoints, dvclive), features/
    motion_source: str = "latent",               # "latent" (the export) | "params" (ground truth, ablation)
    size: str = "S",                             # MOTION_SIZES name
    conditioning: str = "adaln",                 # "adaln" (frame-wise; learns the audio alignment on a CPU
                                                 # budget) | "tokens" (the paper)
    window: int = 50,                            # W frames per window
    past: int = 10,                              # K frames of X_pre / A_pre
    stride: int = 25,                            # frames between training windows of a clip
    drop_prob: float = 0.1,                      # per-condition dropout (CFG)
    drop_past_prob: float = 0.5,                 # X_pre / A_pre dropout
    ref_drop_prob: float = 0.1,                  # x_ref (reference motion) dropout; 1.0 = never used (the paper)
    truncate_prob: float = 0.3,                  # audio-tail truncation
    min_frames: int = 5,
    velocity_weight: float = 1.0,                # L2 on first differences (incl. the window boundary)
    smooth_weight: float = 0.0,                  # L2 on second differences
    diffusion_steps: int = 1000,                 # T of the DDPM
    schedule: str = "cosine",
    steps: int = 2000,                           # optimizer steps of the diffusion model
    batch_size: int = 16,                        # windows per step
    lr: float = 3e-4,                            # AdamW
    weight_decay: float = 0.0,
    warmup_steps: int = 100,
    lr_schedule: str = "cosine",
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,                    # exports hold the EMA weights
    regression_steps: int = 500,                 # optimizer steps of the regression baseline (0 = skip)
    log_every: int = 25,
    checkpoint_every: int = 200,
    num_workers: int = 0,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    stop_at_step: int | None = None,             # end the diffusion run early (checkpointed); rerun resumes
) -> dict[str, Any]:
    """Train (or resume) the diffusion model, export it to ``out``; then the regression baseline to
    ``regression_out``. Returns ``{"data": ..., "diffusion": {metrics, seconds, steps_per_s, ...},
    "regression": {...}}`` (a run stopped by ``stop_at_step`` returns before the baseline)."""
    settings = {k: v for k, v in locals().items() if k not in ("corpus", "motion", "audio_model", "regression_out",
                                                              "regression_steps")}
    from vasa.train.checkpoint import prepare_run_dir
    from vasa.train import train

    if not Path(corpus, "manifest.jsonl").is_file():
        raise VasaError(f"no corpus at {corpus}: run `dvc repro prepare` first")
    t0 = time.perf_counter()
    space, clips, info = load_stage_data(corpus, motion, audio_model, work_dir, motion_source, ("train",), progress)
    data_seconds = time.perf_counter() - t0
    train_clips = clips["train"]
    summary: dict[str, Any] = {"data": dict(info, train_clips=len(train_clips), data_seconds=data_seconds,
                                            train_frames=int(sum(len(c.motion) for c in train_clips)))}
    # data identity (not paths): a new export or audio encoder restarts the runs
    settings.update(corpus=str(Path(corpus).resolve()), data={k: info[k] for k in ("latent_fingerprint",
                                                                                   "audio_fingerprint", "source")})
    runs = [("diffusion", out, steps, stop_at_step)]
    if regression_steps > 0:
        runs.append(("regression", regression_out, regression_steps, None))
    for objective, export_dir, n_steps, stop in runs:
        tcfg = MotionTrainConfig(size=size, conditioning=conditioning, objective=objective, window=window, past=past,
                                 stride=stride, drop_prob=drop_prob, drop_past_prob=drop_past_prob,
                                 ref_drop_prob=ref_drop_prob,
                                 truncate_prob=truncate_prob, min_frames=min_frames, velocity_weight=velocity_weight,
                                 smooth_weight=smooth_weight, diffusion_steps=diffusion_steps, schedule=schedule)
        task = MotionTask(train_clips, tcfg, space.mean, space.std, data_info=info)
        run_dir = Path(work_dir) / objective
        prepare_run_dir(run_dir, {**settings, "objective": objective, "steps": n_steps})
        start = _current_step(run_dir)
        t1 = time.perf_counter()
        metrics = train(task, out_dir=run_dir, steps=n_steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                        warmup_steps=min(warmup_steps, n_steps - 1), lr_schedule=lr_schedule, grad_clip=grad_clip,
                        ema_decay=ema_decay, log_every=log_every, checkpoint_every=checkpoint_every, seed=seed,
                        device=device, num_workers=num_workers, progress=progress, stop_at_step=stop, export=False)
        seconds = time.perf_counter() - t1
        summary[objective] = dict(metrics=metrics, seconds=seconds, steps=metrics["step"], windows=len(task.data),
                                  steps_per_s=(metrics["step"] - start) / seconds if seconds > 0 else 0.0,
                                  params=sum(p.numel() for p in task.build_model().parameters()))
        if metrics["step"] != n_steps:
            return summary  # stopped early: the next call resumes
        export_motion_model(run_dir, export_dir, task, space)
    return summary


def export_motion_model(run_dir: str | Path, out: str | Path, task: MotionTask, space: MotionSpace) -> Path:
    """The EMA weights of ``run_dir``'s newest checkpoint -> ``out`` (save_pretrained) + ``out/norm.npz``."""
    from vasa.io.atomic import atomic_path
    from vasa.train import Checkpoint, latest_checkpoint, save_pretrained
    from vasa.train.checkpoint import load_module_tensors

    path = latest_checkpoint(Path(run_dir) / "checkpoints")
    if path is None:
        raise VasaError(f"no checkpoint in {run_dir}: train first")
    c = Checkpoint(path)
    model = MotionDiT(task.model_cfg)
    load_module_tensors({"model": model}, c.ema or c.weights)
    save_pretrained(out, model, {**c.state["config"], "steps": c.step})
    norm = Path(out) / "norm.npz"
    src = Path(space.root) / "norm.npz"
    with atomic_path(norm) as tmp:
        if space.source == "latent" and src.is_file():
            shutil.copyfile(src, tmp)  # the export's file, byte for byte
        else:
            with open(tmp, "wb") as fh:
                np.savez(fh, **space.norm_arrays(), count=np.array(0))
    return Path(out)


def _current_step(run_dir: str | Path) -> int:
    from vasa.train import latest_checkpoint

    path = latest_checkpoint(Path(run_dir) / "checkpoints")
    return 0 if path is None else int(path.name.split("-")[-1])
