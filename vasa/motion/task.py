"""Training the motion DiT ``H`` with :func:`vasa.train.train`: :class:`MotionTask` and model loading.

One optimizer step on a batch of consecutive-window items (:class:`~vasa.motion.dataset.MotionWindows`):

1. conditions from the batch (labels a clip lacks are dropped: ``has_gaze`` etc.);
2. condition dropout from the loop's RNG: each of A, g, d, e and the reference motion ``x_ref`` with
   ``drop_prob`` (``ref_drop_prob`` for ``x_ref`` when set), the past context (``X_pre``, ``A_pre``)
   with ``drop_past_prob``;
3. audio-tail truncation: with ``truncate_prob`` a window keeps only its first
   ``U[min_frames, n]`` audio frames (the rest gets the null audio token and no loss), so the model
   handles the last, partial window of a clip;
4. ``objective = "diffusion"``: ``t ~ U{0..T-1}``, ``X_t = q_sample(X, t, eps)``, predict ``x0``;
   ``"regression"``: the same backbone predicts ``X`` from the conditions alone (MSE);
5. loss = ``X0Loss + velocity_weight * VelocityLoss + smooth_weight * SmoothnessLoss``.

>>> task = MotionTask(clips, MotionTrainConfig(size="S"))
>>> train(task, out_dir="models/motion", steps=20000, batch_size=64, lr=1e-4, ema_decay=0.999)
>>> model = load_motion_model("models/motion/model")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vasa.errors import VasaError
from vasa.motion.conditions import MotionConditions
from vasa.motion.config import MotionConfig, MotionTrainConfig
from vasa.motion.dataset import MotionClip, MotionWindows
from vasa.motion.diffusion import NoiseSchedule, SmoothnessLoss, VelocityLoss, X0Loss
from vasa.motion.model import MotionDiT
from vasa.train import TrainTask, load_pretrained


def batch_conditions(batch: dict[str, torch.Tensor]) -> MotionConditions:
    """The conditions of a collated :class:`MotionWindows` batch (missing labels dropped)."""
    return MotionConditions(
        audio=batch["audio"], audio_mask=batch["mask"], gaze=batch["gaze"], distance=batch["distance"],
        emotion=batch["emotion"], x_pre=batch["x_pre"], a_pre=batch["a_pre"], ref=batch.get("ref"),
        keep={"gaze": batch["has_gaze"], "distance": batch["has_distance"], "emotion": batch["has_emotion"],
              "past": batch["has_past"]})


class MotionTask(TrainTask):
    """:class:`~vasa.train.TrainTask` for :class:`MotionDiT` (diffusion or the regression baseline)."""

    def __init__(self, clips: list[MotionClip], train_cfg: MotionTrainConfig = MotionTrainConfig(),
                 mean=None, std=None, data_info: dict[str, Any] | None = None):
        self.train_cfg = train_cfg
        self.data_info = dict(data_info or {})  # recorded in config() (motion space, audio encoder)
        self.data = MotionWindows(clips, train_cfg.window, train_cfg.past, train_cfg.stride, mean, std)
        e_dim = next((len(c.emotion) for c in clips if c.emotion is not None), 6)
        self.model_cfg = train_cfg.model_config(self.data.motion_dim, self.data.audio_dim, e_dim)
        self.schedule = NoiseSchedule(self.model_cfg.diffusion_steps, self.model_cfg.schedule)
        self.x0_loss, self.vel_loss, self.smooth_loss = X0Loss(), VelocityLoss(), SmoothnessLoss()

    def build_model(self) -> MotionDiT:
        model = MotionDiT(self.model_cfg)
        model.set_motion_stats(torch.from_numpy(self.data.mean), torch.from_numpy(self.data.std))
        return model

    def dataset(self) -> Dataset:
        return self.data

    def augment(self, batch: dict[str, torch.Tensor]) -> tuple[MotionConditions, torch.Tensor]:
        """Conditions with random dropout and audio-tail truncation; returns them and the loss mask B x W."""
        tc = self.train_cfg
        mask = batch["mask"]  # B x W
        b, w = mask.shape
        dev = mask.device
        rand = lambda: torch.rand(b, device=dev)  # noqa: E731
        drops = {n: rand() < tc.drop_prob for n in ("audio", "gaze", "distance", "emotion")}
        drops["past"] = rand() < tc.drop_past_prob
        drops["ref"] = rand() < (tc.drop_prob if tc.ref_drop_prob is None else tc.ref_drop_prob)
        n_valid = mask.sum(1)  # B
        lo = torch.clamp(n_valid, max=tc.min_frames)
        keep_n = lo + (rand() * (n_valid - lo + 1).float()).long().clamp(max=n_valid - lo)  # U[lo, n_valid]
        truncate = rand() < tc.truncate_prob
        n = torch.where(truncate, keep_n, n_valid)
        frames = torch.arange(w, device=dev)[None] < n[:, None]  # B x W
        cond = batch_conditions(batch)
        cond.audio_mask = mask & frames
        return cond.with_drop(drops), mask & frames

    def loss(self, model: MotionDiT, batch: dict[str, torch.Tensor], step: int, **kw: Any):
        cond, loss_mask = self.augment(batch)
        x0 = batch["motion"]  # B x W x D
        b = x0.shape[0]
        if self.model_cfg.objective == "diffusion":
            t = self.schedule.sample_timesteps(b, x0.device)
            x_t = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        else:
            t, x_t = torch.zeros(b, dtype=torch.long, device=x0.device), torch.zeros_like(x0)
        pred = model(x_t, t, cond)
        tc = self.train_cfg
        l_x0 = self.x0_loss(pred, x0, loss_mask)
        l_vel = self.vel_loss(pred, x0, loss_mask, batch["x_pre"], cond.kept("past"))
        l_smooth = self.smooth_loss(pred, x0, loss_mask)
        total = l_x0 + tc.velocity_weight * l_vel + tc.smooth_weight * l_smooth
        return total, {"x0": l_x0.detach(), "velocity": l_vel.detach(), "smooth": l_smooth.detach()}

    def config(self) -> dict[str, Any]:
        cfg = {"model": self.model_cfg.to_dict(), "train": self.train_cfg.to_dict(), "windows": len(self.data)}
        return {**cfg, "data": self.data_info} if self.data_info else cfg


def load_motion_model(directory: str | Path) -> MotionDiT:
    """An exported :class:`MotionDiT` (``out_dir/model`` of a :class:`MotionTask` run), in eval mode."""
    config, _ = load_pretrained(directory)
    model_cfg = config.get("task", {}).get("model")
    if model_cfg is None or "motion_dim" not in model_cfg:
        raise VasaError(f"{directory} is not an exported motion model (config has no task.model)")
    model = MotionDiT(MotionConfig.from_dict(model_cfg))
    load_pretrained(directory, model)
    return model.eval()
