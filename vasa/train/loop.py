"""The one training loop of vasa: a :class:`TrainTask` says *what* to train, :func:`train` does the rest.

A task implements ``build_model`` (one module or ``{name: module}``), ``dataset`` (map-style),
``loss(models, batch, step) -> (loss, metrics)`` and optionally ``optim_groups``, ``ema_modules``,
``samples``, ``config`` and ``collate``. The loop owns devices, DDP, AMP, gradient accumulation and
clipping, LR warmup/schedule, EMA, logging (tqdm + dvclive), checkpoints and exact resume.

How a GAN (several optimizer groups) plugs in: see the :mod:`vasa.train` package docstring.
"""

from __future__ import annotations

import abc
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from vasa.errors import VasaError
from vasa.train import checkpoint as ckpt
from vasa.train import dist as D
from vasa.train.ema import EMA

Models = Any  # an nn.Module, or a dict of them: whatever build_model returned


@dataclass
class OptimGroup:
    """One AdamW optimizer over ``modules`` (None: every module); None fields use train()'s values."""

    name: str
    modules: Sequence[str] | None = None
    lr: float | None = None
    weight_decay: float | None = None
    betas: tuple[float, float] | None = None


class TrainTask(abc.ABC):
    """What a stage implements to be trained by :func:`train` (see the module docstring)."""

    alternate: bool = False  # True: call loss(..., group=name) once per optimizer group, in order

    @abc.abstractmethod
    def build_model(self) -> nn.Module | dict[str, nn.Module]:
        """Fresh modules (called after seeding, so initialisation is reproducible)."""

    @abc.abstractmethod
    def dataset(self) -> Dataset:
        """A map-style dataset; items must depend only on the index (derive augmentation from it)."""

    @abc.abstractmethod
    def loss(self, models: Models, batch: Any, step: int, **kw: Any
             ) -> tuple[torch.Tensor | dict[str, torch.Tensor], dict[str, Any]]:
        """``(loss or {group: loss}, {metric: scalar})`` for one micro-batch (already on the device)."""

    def optim_groups(self) -> list[OptimGroup]:
        """Optimizer groups in stepping order; default one group over everything."""
        return [OptimGroup("main")]

    def ema_modules(self) -> list[str] | None:
        """Names of the modules to keep EMA weights for (None: all; needs ema_decay > 0)."""
        return None

    def samples(self, models: Models, step: int) -> dict[str, np.ndarray]:
        """Images to log (HxW or HxWx3, uint8 or float in [0, 1]); EMA weights where kept."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-able description saved with checkpoints; resuming requires it unchanged."""
        return {}

    def collate(self, items: list[Any]) -> Any:
        return default_collate(items)


def lr_factor(step: int, steps: int, warmup_steps: int, schedule: str) -> float:
    """LR multiplier for optimizer step ``step`` (0-based): linear warmup, then constant or cosine to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        t = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    return 1.0


def _image(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return a


def _truncate_dvclive(folder: Path, step: int) -> None:
    """Drop metric rows logged after ``step`` (by a run that died before its next checkpoint)."""
    for tsv in (folder / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text("utf-8").splitlines(keepends=True)
        keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split("\t", 1)[0]) <= step]
        tsv.write_text("".join(keep), "utf-8")
    jsonl = folder / "metrics.jsonl"  # vasa.train.live.JsonLinesLive, where dvclive is not installed
    if jsonl.is_file():
        import json

        lines = jsonl.read_text("utf-8").splitlines(keepends=True)
        jsonl.write_text("".join(ln for ln in lines if json.loads(ln)["step"] <= step), "utf-8")


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise VasaError(msg)


def train(
    task: TrainTask,
    *,
    out_dir: str | Path,                # checkpoints/, dvclive/ and the final export model/ go here
    steps: int,                         # total optimizer steps
    batch_size: int = 32,               # per-rank micro-batch; global batch = x grad_accum x world size
    lr: float = 1e-3,                   # AdamW learning rate (groups may override)
    weight_decay: float = 0.0,          # decoupled weight decay, on tensors with ndim >= 2 only
    betas: tuple[float, float] = (0.9, 0.999),
    warmup_steps: int = 0,              # linear LR warmup from lr/warmup_steps to lr
    lr_schedule: str = "constant",      # "constant" | "cosine" (to 0 at `steps`, after warmup)
    grad_accum: int = 1,                # micro-batches per optimizer step
    grad_clip: float = 0.0,             # max global grad norm per group; 0 = off
    ema_decay: float = 0.0,             # 0 = no EMA; else e.g. 0.999 for the task's ema_modules()
    ema_warmup: bool = True,            # ramp the EMA decay up (see vasa.train.ema)
    amp: str = "auto",                  # "auto" (bf16 on CUDA, off on CPU) | "bf16" | "off"
    checkpoint_every: int = 1000,       # steps between checkpoints (the last step always saves); 0 = end
    keep_checkpoints: int = 3,          # newest checkpoints kept
    log_every: int = 50,                # steps per logged metric point (means over the window)
    sample_every: int = 0,              # steps between task.samples() image logs; 0 = never
    seed: int = 0,                      # seeds init, data order, per-rank RNG, samples
    device: str = "auto",               # "auto" | "cpu" | "cuda"
    num_workers: int = 0,               # DataLoader worker processes
    deterministic: bool | None = None,  # torch.use_deterministic_algorithms; None = on CPU only
    progress: bool = True,              # tqdm bar on rank 0
    resume: bool = True,                # continue from the newest checkpoint; False deletes them
    stop_at_step: int | None = None,    # end this invocation early (checkpointed), keeping `steps`'s schedule
    export: bool = True,                # at the end save out_dir/model (EMA weights where kept)
) -> dict[str, Any]:
    """Train ``task``; returns the final metrics (means over the last log window) plus ``step``."""
    _check(isinstance(steps, int) and steps > 0, f"steps must be a positive integer, got {steps!r}: set steps >= 1")
    for name, v, lo in (("batch_size", batch_size, 1), ("grad_accum", grad_accum, 1), ("log_every", log_every, 1),
                        ("warmup_steps", warmup_steps, 0), ("checkpoint_every", checkpoint_every, 0),
                        ("sample_every", sample_every, 0), ("num_workers", num_workers, 0),
                        ("keep_checkpoints", keep_checkpoints, 1)):
        _check(isinstance(v, int) and v >= lo, f"{name} must be an integer >= {lo}, got {v!r}")
    _check(lr > 0 and grad_clip >= 0, f"need lr > 0 and grad_clip >= 0, got lr={lr}, grad_clip={grad_clip}")
    _check(0.0 <= ema_decay < 1.0, f"ema_decay must be in [0, 1), got {ema_decay}: use e.g. 0.999 or 0 (off)")
    _check(lr_schedule in ("constant", "cosine"), f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    _check(amp in ("auto", "bf16", "off"), f"amp must be 'auto', 'bf16' or 'off', got {amp!r}")
    _check(stop_at_step is None or 0 < stop_at_step <= steps, f"stop_at_step must be in 1..{steps}, got {stop_at_step}")
    info = D.init_distributed(device)
    det_before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if deterministic if deterministic is not None else info.device.type == "cpu":
        if info.device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        loop = _Loop(task, info, dict(locals()))
        return loop.run()
    finally:
        torch.use_deterministic_algorithms(det_before[0], warn_only=det_before[1])
        D.shutdown(info)


class _Loop:
    """State of one :func:`train` call (kept private: the knobs are train()'s arguments)."""

    def __init__(self, task: TrainTask, info: D.DistInfo, a: dict[str, Any]):
        self.task, self.info, self.a = task, info, a
        self.dev = info.device
        self.out = Path(a["out_dir"])
        self.ckpt_dir = self.out / "checkpoints"
        self._check_out_dir()
        self.amp = a["amp"] == "bf16" or (a["amp"] == "auto" and self.dev.type == "cuda")

        ckpt.seed_everything(a["seed"])  # identical initialisation on every rank
        built = task.build_model()
        self.single = isinstance(built, nn.Module)
        self.models: dict[str, nn.Module] = {"model": built} if self.single else dict(built)
        for name, m in self.models.items():
            _check(name.isidentifier(), f"module names must be identifiers (no dots), got {name!r}")
            m.to(self.dev).train()
            D.broadcast_module(m, info)
        self.groups = task.optim_groups()
        self.group_params: dict[str, list[nn.Parameter]] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.base_lr: dict[str, float] = {}
        seen: set[str] = set()
        for g in self.groups:
            names = list(self.models) if g.modules is None else list(g.modules)
            bad = [n for n in names if n not in self.models or n in seen]
            _check(not bad, f"optimizer group {g.name!r}: unknown or repeated modules {bad}; "
                            "use names from build_model()")
            seen.update(names)
            params = [p for n in names for p in self.models[n].parameters() if p.requires_grad]
            wd = a["weight_decay"] if g.weight_decay is None else g.weight_decay
            self.base_lr[g.name] = a["lr"] if g.lr is None else g.lr
            self.group_params[g.name] = params
            self.optims[g.name] = torch.optim.AdamW(
                [{"params": [p for p in params if p.ndim >= 2], "weight_decay": wd},
                 {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                lr=self.base_lr[g.name], betas=tuple(g.betas or a["betas"]))
        self.ema: EMA | None = None
        if a["ema_decay"] > 0:
            names = task.ema_modules()
            names = list(self.models) if names is None else names
            self.ema = EMA({n: self.models[n] for n in names}, a["ema_decay"], a["ema_warmup"])

        self.dataset = task.dataset()
        self.sampler = D.EpochSampler(len(self.dataset), a["seed"], a["batch_size"], a["grad_accum"],
                                      info.rank, info.world_size)
        self.config = {"task": task.config(), "train": {
            "global_batch": self.sampler.step_batch, "lr": a["lr"], "weight_decay": a["weight_decay"],
            "betas": list(a["betas"]), "warmup_steps": a["warmup_steps"], "lr_schedule": a["lr_schedule"],
            "grad_clip": a["grad_clip"], "ema_decay": a["ema_decay"], "ema_warmup": a["ema_warmup"],
            "seed": a["seed"], "optim_groups": [asdict(g) for g in self.groups]}}
        self.step, self.epoch, self.index = 0, 0, 0
        self.metrics: dict[str, float] = {}
        self.window: dict[str, list[Any]] = {}
        ckpt.seed_everything(ckpt.derive_seed(a["seed"], info.rank, 1))  # per-rank training RNG
        self.resumed = self._restore()

    # ------------------------------------------------------------------ setup / resume
    def _check_out_dir(self) -> None:
        err = None
        if self.info.is_main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                probe = self.out / f".write-test-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                err = f"cannot write to out_dir {self.out} ({e.strerror or e}): choose a writable folder"
        err = D.broadcast_object(err, self.info)
        _check(err is None, err or "")

    def _restore(self) -> bool:
        if not self.a["resume"]:
            if self.info.is_main and self.ckpt_dir.exists():
                import shutil
                shutil.rmtree(self.ckpt_dir)
            D.barrier(self.info)
            return False
        if self.info.is_main:
            ckpt.remove_stale(self.ckpt_dir)
        D.barrier(self.info)
        path = ckpt.latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        c = ckpt.Checkpoint(path)
        diff = ckpt.config_diff(c.state["config"], self.config)
        _check(not diff, f"checkpoint {path} was written with a different config ({'; '.join(diff)}): "
                         "restore that config, pass resume=False to start over, or use a new out_dir")
        ckpt.load_module_tensors(self.models, c.weights)
        if self.ema is not None:
            self.ema.load_tensors(c.ema, c.state["ema_updates"])
        self.step, self.epoch, self.index = c.step, c.state["epoch"], c.state["index"]
        self.metrics = c.state.get("metrics", {})
        if not ckpt.unpack_training_state(c, self.optims, self.info.rank, self.info.world_size):
            # saved by another world size: deterministic, though not bit-identical to an unbroken run
            ckpt.seed_everything(ckpt.derive_seed(self.a["seed"], self.info.rank, 2, self.step))
        return True

    # ------------------------------------------------------------------ data
    def _micro_batches(self) -> Iterator[list[Any]]:
        """Yields the micro-batches of one optimizer step at a time, from the current position."""
        accum = self.a["grad_accum"]
        epoch, first = self.epoch, self.index // self.sampler.step_batch
        while True:
            gen = torch.Generator().manual_seed(ckpt.derive_seed(self.a["seed"], self.info.rank, 3, epoch, first))
            loader = DataLoader(self.dataset, batch_sampler=self.sampler.micro_batches(epoch, first),
                                num_workers=self.a["num_workers"], collate_fn=self.task.collate,
                                pin_memory=self.dev.type == "cuda", generator=gen)
            it = iter(loader)
            for s in range(first, self.sampler.steps_per_epoch):
                micro = [D.to_device(next(it), self.dev) for _ in range(accum)]
                done = s + 1 == self.sampler.steps_per_epoch
                self.epoch, self.index = (epoch + 1, 0) if done else (epoch, (s + 1) * self.sampler.step_batch)
                yield micro
            del it, loader
            epoch, first = epoch + 1, 0

    # ------------------------------------------------------------------ one optimizer step
    def _record(self, key: str, value: Any) -> None:
        """Keep a scalar for the log window; tensors stay on the device (no sync until logging)."""
        self.window.setdefault(key, []).append(value.detach() if isinstance(value, torch.Tensor) else value)

    def _loss_key(self, group: str) -> str:
        return "loss" if len(self.groups) == 1 else f"loss_{group}"

    def _as_losses(self, out: Any, group: str | None = None) -> dict[str, torch.Tensor]:
        if isinstance(out, torch.Tensor):
            if group is None and len(self.groups) != 1:
                raise TypeError("with several optimizer groups, loss() must return {group name: loss}")
            return {group or self.groups[0].name: out}
        unknown = set(out) - set(self.group_params)
        if unknown:
            raise KeyError(f"loss() returned losses for unknown optimizer groups {sorted(unknown)}")
        return dict(out) if group is None else {group: out[group]}

    def _forward(self, batch: Any, group: str | None) -> dict[str, torch.Tensor]:
        models = self.models["model"] if self.single else self.models
        kw = {} if group is None else {"group": group}
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            out, metrics = self.task.loss(models, batch, self.step, **kw)
        for k, v in (metrics or {}).items():
            self._record(k, v)
        losses = self._as_losses(out, group)
        for name, l in losses.items():
            self._record(self._loss_key(name), l)
        return losses

    def _finish_group(self, name: str) -> None:
        params = self.group_params[name]
        D.average_gradients(params, self.info)
        if self.a["grad_clip"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.a["grad_clip"])
            self._record("grad_norm" if len(self.groups) == 1 else f"grad_norm_{name}", norm)
        f = lr_factor(self.step, self.a["steps"], self.a["warmup_steps"], self.a["lr_schedule"])
        for pg in self.optims[name].param_groups:
            pg["lr"] = self.base_lr[name] * f
        self.optims[name].step()

    def _train_step(self, micro: list[Any]) -> None:
        accum = len(micro)
        for m in self.models.values():
            m.zero_grad(set_to_none=True)
        if self.task.alternate:
            for g in self.groups:
                for batch in micro:
                    (self._forward(batch, g.name)[g.name] / accum).backward()
                self._finish_group(g.name)
        else:
            stepped: set[str] = set()
            for batch in micro:
                items = list(self._forward(batch, None).items())
                for i, (name, l) in enumerate(items):
                    inputs = None if len(self.groups) == 1 else self.group_params[name]
                    torch.autograd.backward(l / accum, inputs=inputs, retain_graph=i < len(items) - 1)
                    stepped.add(name)
            for g in self.groups:
                if g.name in stepped:
                    self._finish_group(g.name)
        if self.ema is not None:
            self.ema.update(self.models)
        self.step += 1

    # ------------------------------------------------------------------ logging, samples, checkpoints
    def _log(self, live: Any, bar: Any) -> None:
        keys = sorted(self.window)
        if not keys:
            return
        vec = torch.stack([torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.dev).reshape(())
                                        for v in self.window[k]]).mean() for k in keys])
        values = D.all_reduce_mean_(vec, self.info).tolist()
        self.window.clear()
        self.metrics = dict(zip(keys, values))
        f = lr_factor(self.step - 1, self.a["steps"], self.a["warmup_steps"], self.a["lr_schedule"])
        for g in self.groups:
            self.metrics["lr" if len(self.groups) == 1 else f"lr_{g.name}"] = self.base_lr[g.name] * f
        bad = [k for k in keys if k.startswith("loss") and not math.isfinite(self.metrics[k])]
        if bad:
            raise VasaError(f"{bad[0]} became {self.metrics[bad[0]]} by step {self.step}: lower lr, set "
                            "grad_clip, or use amp='off'")
        if live is not None:
            live.step = self.step
            for k, v in self.metrics.items():
                live.log_metric(k, v)
            live.next_step()
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in self.metrics.items() if k.startswith("loss")}, refresh=False)

    def _samples(self, live: Any) -> None:
        models = dict(self.models)
        if self.ema is not None:
            models.update(self.ema.modules)
        for m in self.models.values():
            m.eval()
        try:
            with ckpt.forked_rng(ckpt.derive_seed(self.a["seed"], 4, self.step)), torch.no_grad():
                images = self.task.samples(models["model"] if self.single else models, self.step)
        finally:
            for m in self.models.values():
                m.train()
        for name, img in (images or {}).items():
            live.log_image(f"{name}.png", _image(img))

    def _save(self) -> None:
        js, ts = ckpt.rng_state()
        gathered = D.all_gather_object((js, ts), self.info)
        if not self.info.is_main:
            return
        tensors, packed = ckpt.pack_training_state(self.optims, gathered)
        state = {"step": self.step, "epoch": self.epoch, "index": self.index, "config": self.config,
                 **packed, "metrics": self.metrics,
                 "ema_updates": self.ema.num_updates if self.ema else 0, "world_size": self.info.world_size,
                 "batch_size": self.a["batch_size"], "grad_accum": self.a["grad_accum"], "steps": self.a["steps"]}
        ckpt.save_checkpoint(self.ckpt_dir, self.step, weights=ckpt.module_tensors(self.models),
                             ema=self.ema.tensors() if self.ema else None, state_tensors=tensors, state=state,
                             keep_last=self.a["keep_checkpoints"])

    def _export(self) -> None:
        mods = dict(self.models)
        if self.ema is not None:
            mods.update(self.ema.modules)
        ckpt.save_pretrained(self.out / "model", mods["model"] if self.single else mods, self.config)

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, Any]:
        a, main = self.a, self.info.is_main
        end = a["stop_at_step"] or a["steps"]
        live = bar = None
        if main:
            from tqdm.auto import tqdm

            from vasa.train.live import open_live
            if self.resumed:
                _truncate_dvclive(self.out / "dvclive", self.step)
            live = open_live(self.out / "dvclive", resume=self.resumed)
            if not self.resumed:
                live.log_params({"task": self.config["task"], "train": self.config["train"]})
            bar = tqdm(total=a["steps"], initial=self.step, disable=not a["progress"], dynamic_ncols=True,
                       desc=type(self.task).__name__)
        try:
            batches = self._micro_batches()
            while self.step < end:
                self._train_step(next(batches))
                last = self.step == end
                if self.step % a["log_every"] == 0 or last:
                    self._log(live, bar)
                if main and a["sample_every"] and (self.step % a["sample_every"] == 0 or self.step == a["steps"]):
                    self._samples(live)
                if (a["checkpoint_every"] and self.step % a["checkpoint_every"] == 0) or last:
                    self._save()
                if bar is not None:
                    bar.update(1)
            if main and a["export"] and self.step == a["steps"]:
                self._export()
            D.barrier(self.info)
        finally:
            if bar is not None:
                bar.close()
            if live is not None:
                live.end()
        return {"step": self.step, **self.metrics}
