"""The sections of ``params.yaml`` as keyword arguments of each stage's one entry point.

A stage (notebook or CLI) loads its typed section with :func:`vasa.config.load_params` and calls
its entry point with one of these adapters, so every knob of the section reaches the function
whose signature lists it (EDM's ``train.py`` -> ``training_loop``). ``eval_*`` fields of a training
section go to the stage's evaluation function instead, prefix dropped.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vasa.config import (AudioStageConfig, EvaluateConfig, ExpertsConfig, ExportMotionConfig, LatentConfig,
                             MotionStageConfig, PrepareConfig)


def ingest_kwargs(cfg: PrepareConfig) -> dict:
    """The ``prepare`` section as keyword arguments of :func:`vasa.ingest.ingest` (real videos)."""
    return dict(src=cfg.source, out=cfg.out, resolution=cfg.resolution, shard=cfg.ingest_shard or None,
                workers=cfg.workers, min_frames=cfg.min_clip_frames, min_face=cfg.min_face_px,
                align=cfg.align_transcripts, split_fractions=list(cfg.split_fractions))


def synth_kwargs(cfg: PrepareConfig) -> dict:
    """The ``prepare`` section as keyword arguments of :func:`vasa.synth.corpus.synth_corpus`."""
    keys = ("out", "clips", "ood_lang_clips", "art_clips", "identities", "gallery_per_identity",
            "split_fractions", "languages", "voices", "seed", "resolution", "supersample", "fps",
            "clips_per_shard", "workers")
    return {k: getattr(cfg, k) for k in keys}


def latent_kwargs(cfg: LatentConfig) -> dict:
    """The training fields of ``train_latent`` as keyword arguments of :func:`vasa.latent.train.train_latent`."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if not k.startswith("eval_")}


def latent_eval_kwargs(cfg: LatentConfig) -> dict:
    """The ``eval_*`` fields of ``train_latent`` as keyword arguments of
    :func:`vasa.latent.evaluate.evaluate_latent` (prefix dropped), plus the model and corpus paths."""
    kw = {k[len("eval_"):]: v for k, v in dataclasses.asdict(cfg).items() if k.startswith("eval_")}
    return dict(model=cfg.out, corpus=cfg.corpus, seed=cfg.seed, **kw)


def export_kwargs(cfg: ExportMotionConfig) -> dict:
    """The ``export_motion`` section as keyword arguments of :func:`vasa.latent.export.export_motion`."""
    return dataclasses.asdict(cfg)


def audio_kwargs(cfg: AudioStageConfig) -> dict:
    """The ``train_audio`` section as keyword arguments of :func:`vasa.audio.train.train_audio`."""
    return dataclasses.asdict(cfg)


def motion_kwargs(cfg: MotionStageConfig) -> dict:
    """The training fields of ``train_motion`` as keyword arguments of :func:`vasa.motion.train.train_motion`."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if not k.startswith("eval_")}


def motion_eval_kwargs(cfg: MotionStageConfig) -> dict:
    """The ``eval_*`` fields of ``train_motion`` as keyword arguments of
    :func:`vasa.motion.evaluate.evaluate_motion` (prefix dropped, ``eval_split`` -> ``split``), plus the paths."""
    kw = {k[len("eval_"):]: v for k, v in dataclasses.asdict(cfg).items() if k.startswith("eval_")}
    return dict(corpus=cfg.corpus, motion=cfg.motion, audio_model=cfg.audio_model, model=cfg.out,
                regression_model=cfg.regression_out if cfg.regression_steps > 0 else "", work_dir=cfg.work_dir,
                motion_source=cfg.motion_source, seed=cfg.seed, **kw)


def experts_kwargs(cfg: ExpertsConfig) -> dict:
    """The ``train_experts`` section as keyword arguments of :func:`vasa.eval.experts.train_experts`."""
    return dataclasses.asdict(cfg)


def evaluate_kwargs(cfg: EvaluateConfig) -> dict:
    """The ``evaluate`` section as keyword arguments of :func:`vasa.eval.harness.evaluate`."""
    kw = dataclasses.asdict(cfg)
    kw["gaze_values"] = [tuple(g) for g in kw["gaze_values"]]
    return kw
