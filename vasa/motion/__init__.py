"""Stage 2 of VASA-1: holistic motion generation ``X = [z_pose, z_dyn]`` from audio and controls.

Public API:

* :class:`MotionDiT` (``H``), :class:`MotionConfig`, ``MOTION_SIZES`` / :func:`motion_config`
* :class:`MotionConditions` (``C = [X_pre, A_pre; A, g, d, e]``) and the encoders of g, d, e
* :class:`NoiseSchedule` and the losses (:mod:`vasa.motion.diffusion`)
* samplers ``sample_ddpm`` / ``sample_ddim`` / ``sample_dpmpp_2m`` / ``sample_onestep`` and
  :func:`guided_denoiser` (per-condition CFG) in :mod:`vasa.motion.sampling`
* :class:`MotionGenerator` / :class:`MotionStream` (any length, streaming == offline)
* :class:`MotionClip` / :class:`MotionWindows` (data), :class:`MotionTask` / :func:`load_motion_model`
"""

from vasa.motion.conditions import MotionConditions, encode_distance, encode_emotion, encode_gaze
from vasa.motion.config import CONDITIONS, MOTION_SIZES, MotionConfig, MotionTrainConfig, motion_config
from vasa.motion.dataset import MotionClip, MotionWindows, corpus_motion_clips, motion_stats
from vasa.motion.diffusion import NoiseSchedule, SmoothnessLoss, VelocityLoss, X0Loss
from vasa.motion.generate import MotionGenerator, MotionStream
from vasa.motion.model import MotionDiT
from vasa.motion.sampling import (DEFAULT_GUIDANCE, SAMPLERS, guided_denoiser, sample_ddim, sample_ddpm,
                                  sample_dpmpp_2m, sample_onestep)
from vasa.motion.task import MotionTask, load_motion_model

__all__ = ["CONDITIONS", "DEFAULT_GUIDANCE", "MOTION_SIZES", "SAMPLERS", "MotionClip", "MotionConditions",
           "MotionConfig", "MotionDiT", "MotionGenerator", "MotionStream", "MotionTask", "MotionTrainConfig",
           "MotionWindows", "NoiseSchedule", "SmoothnessLoss", "VelocityLoss", "X0Loss", "corpus_motion_clips",
           "encode_distance", "encode_emotion", "encode_gaze", "guided_denoiser", "load_motion_model",
           "motion_config", "motion_stats", "sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "sample_onestep"]
