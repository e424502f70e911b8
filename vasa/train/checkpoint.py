"""Checkpoint I/O without pickle: tensors in safetensors, everything else in JSON.

A training checkpoint is a folder ``<root>/step-00001000/`` holding

* ``model.safetensors``  the weights of every module, keys ``"<module>.<state key>"``;
* ``ema.safetensors``    the EMA copies of the modules the task marked (absent without EMA);
* ``state.safetensors``  optimizer moments (``"optim.<group>.<param index>.<key>"``) and per-rank
  torch RNG states (``"rng.<rank>.torch_cpu"``, ``"rng.<rank>.cuda.<device>"``);
* ``trainer.json``       step, data position, config, optimizer structure (hyperparameters, which
  state keys exist), python/numpy RNG states and the last metrics. Written last.

The folder is written under a temporary name (``.tmp-step-...``) and renamed when complete, so a
crash never leaves a partial checkpoint under a final name; :func:`latest_checkpoint` ignores the
temporaries and :func:`remove_stale` deletes them. Exported models (what later stages load) use
:func:`save_pretrained` / :func:`load_pretrained`: ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vasa.errors import VasaError
from vasa.io.atomic import disk_error, write_json

PREFIX = "step-"
TRAINER_JSON = "trainer.json"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- module weights
def module_tensors(modules: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Flatten ``{name: module}`` into ``{"name.key": cpu tensor}`` (copies; tied weights are fine)."""
    out: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, t in module.state_dict().items():
            out[f"{name}.{key}"] = t.detach().to("cpu", copy=True).contiguous()
    return out


def load_module_tensors(modules: Mapping[str, nn.Module], tensors: Mapping[str, torch.Tensor],
                        strict: bool = True) -> None:
    """Inverse of :func:`module_tensors`: load ``"name.key"`` tensors into each module."""
    for name, module in modules.items():
        prefix = f"{name}."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            missing, unexpected = module.load_state_dict(sd, strict=False)
        except RuntimeError as e:  # shape mismatch
            detail = " ".join(str(e).split("\n")[1:2]).strip()
            raise VasaError(f"weights do not fit module '{name}' ({detail}): load weights saved for this "
                            "architecture") from None
        if strict and (missing or unexpected):
            raise VasaError(f"weights do not fit module '{name}' (missing {list(missing)[:3]}, "
                            f"unexpected {list(unexpected)[:3]}): load weights saved for this architecture")


# ----------------------------------------------------------------------------- optimizers
def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, torch.Tensor):
        return v.item()
    return v


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``opt.state_dict()`` into safetensors-ready tensors and a JSON structure."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state_json: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        entry: dict[str, Any] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                key = f"{prefix}.{pid}.{k}"
                tensors[key] = v.detach().to("cpu", copy=True).contiguous()
                entry[k] = {"tensor": key}
            else:
                entry[k] = {"value": _jsonable(v)}
        state_json[str(pid)] = entry
    groups = [{k: _jsonable(v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"state": state_json, "param_groups": groups}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                           structure: Mapping[str, Any]) -> None:
    """Restore an optimizer from :func:`optimizer_to_tensors` output (exact, no pickle)."""
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in structure["state"].items():
        state[int(pid)] = {k: (tensors[v["tensor"]] if "tensor" in v else v["value"])
                           for k, v in entry.items()}
    groups = []
    for g in structure["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


def pack_training_state(optims: Mapping[str, torch.optim.Optimizer],
                        rngs: Sequence[tuple[dict[str, Any], dict[str, torch.Tensor]]]
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizers and per-rank :func:`rng_state` results -> (tensors, ``{"optimizers", "rng"}`` JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    structure: dict[str, Any] = {}
    for name, opt in optims.items():
        t, structure[name] = optimizer_to_tensors(opt, f"optim.{name}")
        tensors.update(t)
    for rank, (_, rts) in enumerate(rngs):
        tensors.update({f"rng.{rank}.{k}": v for k, v in rts.items()})
    return tensors, {"optimizers": structure, "rng": [js for js, _ in rngs]}


def unpack_training_state(c: "Checkpoint", optims: Mapping[str, torch.optim.Optimizer], rank: int,
                          world_size: int) -> bool:
    """Restore optimizers and this rank's RNG; False when the RNG was saved by another world size."""
    for name, opt in optims.items():
        optimizer_from_tensors(opt, c.tensors, c.state["optimizers"][name])
    rngs = c.state["rng"]
    if len(rngs) != world_size:
        return False
    prefix = f"rng.{rank}."
    set_rng_state(rngs[rank], {k[len(prefix):]: v for k, v in c.tensors.items() if k.startswith(prefix)})
    return True


# ----------------------------------------------------------------------------- RNG
def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This process's python, numpy, torch CPU and CUDA RNG states as (JSON, tensors)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    js = {"python": [version, list(internal), gauss],
          "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    return js, tensors


def set_rng_state(js: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """Inverse of :func:`rng_state`."""
    v, internal, gauss = js["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = js["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in tensors]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)


def derive_seed(*xs: int) -> int:
    """A 32-bit seed mixed from integers (seed, rank, purpose, step...) by numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(x) for x in xs]).generate_state(1)[0])


@contextlib.contextmanager
def forked_rng(seed: int) -> Iterator[None]:
    """Run a block with its own seed, restoring every global RNG afterwards."""
    js, ts = rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(js, ts)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- config comparison
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_diff(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ, as ``"key: saved -> current"`` (JSON-normalised first)."""
    a = _flatten(json.loads(json.dumps(saved)))
    b = _flatten(json.loads(json.dumps(current)))
    return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


# ----------------------------------------------------------------------------- checkpoint folders
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    save_file(dict(tensors), str(path))
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def checkpoint_step(path: Path) -> int | None:
    """The step of a complete checkpoint folder, or None for anything else."""
    if not path.name.startswith(PREFIX) or not (path / TRAINER_JSON).is_file():
        return None
    try:
        return int(path.name[len(PREFIX):])
    except ValueError:
        return None


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(s, p) for p in root.iterdir() if p.is_dir() and (s := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root`` (temporaries and partial folders ignored)."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def remove_stale(root: str | Path) -> None:
    """Delete temporaries left by a crash while writing a checkpoint."""
    root = Path(root)
    if root.is_dir():
        for p in root.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(root: str | Path, step: int, *, weights: Mapping[str, torch.Tensor],
                    ema: Mapping[str, torch.Tensor] | None, state_tensors: Mapping[str, torch.Tensor],
                    state: Mapping[str, Any], keep_last: int = 3) -> Path:
    """Atomically write checkpoint ``step`` under ``root`` and keep only the newest ``keep_last``.

    ``weights``/``ema``/``state_tensors`` go to safetensors files, ``state`` to ``trainer.json``.
    """
    root = Path(root)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _save_tensors(tmp / "model.safetensors", weights)
        if ema:
            _save_tensors(tmp / "ema.safetensors", ema)
        _save_tensors(tmp / "state.safetensors", state_tensors)
        with open(tmp / TRAINER_JSON, "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT_VERSION, **state}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if final.exists():  # the same step written again (e.g. a resumed run that ended there)
            old = root / f".tmp-old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise disk_error(final, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


class Checkpoint:
    """A loaded checkpoint: ``step``, ``state`` (trainer.json), ``weights``, ``ema``, ``tensors``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.state: dict[str, Any] = json.loads((self.path / TRAINER_JSON).read_text("utf-8"))
            self.weights = load_file(str(self.path / "model.safetensors"))
            ema = self.path / "ema.safetensors"
            self.ema = load_file(str(ema)) if ema.exists() else {}
            self.tensors = load_file(str(self.path / "state.safetensors"))
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise VasaError(f"checkpoint {self.path} is unreadable ({e}): delete it to resume from an "
                            "earlier one, or pass resume=False") from None
        if self.state.get("format") != FORMAT_VERSION:
            raise VasaError(f"checkpoint {self.path} has format {self.state.get('format')}, expected "
                            f"{FORMAT_VERSION}: start a new out_dir or pass resume=False")
        self.step: int = int(self.state["step"])


# ----------------------------------------------------------------------------- exported models
def save_pretrained(directory: str | Path, modules: nn.Module | Mapping[str, nn.Module],
                    config: Mapping[str, Any]) -> Path:
    """Export weights for later stages: ``model.safetensors`` + ``config.json``, written atomically.

    A single module is stored under the name ``"model"``; a dict keeps its names.
    """
    directory = Path(directory)
    mods = {"model": modules} if isinstance(modules, nn.Module) else dict(modules)
    tmp = directory.with_name(f".tmp-{directory.name}-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _save_tensors(tmp / "model.safetensors", module_tensors(mods))
        cfg = {"modules": sorted(mods), "config": json.loads(json.dumps(dict(config)))}
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            old = directory.with_name(f".tmp-old-{directory.name}-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise disk_error(directory, e) from None
    return directory


def load_pretrained(directory: str | Path, modules: nn.Module | Mapping[str, nn.Module] | None = None,
                    strict: bool = True) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read an export: returns ``(config, {module name: state_dict})``.

    With ``modules`` (a module, or a dict of modules built from ``config``) the weights are also loaded
    into them (``strict``: every key must match).
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / "config.json").read_text("utf-8"))
        tensors = load_file(str(directory / "model.safetensors"))
    except (OSError, ValueError) as e:
        raise VasaError(f"no exported model in {directory} ({e}): run the training stage first") from None
    states: dict[str, dict[str, torch.Tensor]] = {name: {} for name in meta["modules"]}
    for key, t in tensors.items():
        name, _, rest = key.partition(".")
        states.setdefault(name, {})[rest] = t
    if modules is not None:
        mods = {"model": modules} if isinstance(modules, nn.Module) else dict(modules)
        load_module_tensors(mods, tensors, strict=strict)
    return meta["config"], states


# knobs that change neither the weights nor the data order: a run may resume across them
RESUMABLE = frozenset({"progress", "stop_at_step", "num_workers", "log_every", "sample_every", "checkpoint_every",
                       "device", "out", "work_dir"})


def prepare_run_dir(work_dir: str | Path, settings: dict) -> bool:
    """Whether the run in ``work_dir`` may resume: True when its ``run.json`` holds the same settings
    (``RESUMABLE`` knobs ignored). Otherwise its checkpoints and dvclive logs are removed and ``run.json``
    rewritten, so changing ``params.yaml`` (or the data) and re-running a stage starts a fresh run
    instead of resuming the wrong one."""
    path = Path(work_dir) / "run.json"
    key = json.loads(json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()
                                 if k not in RESUMABLE}))
    same = path.is_file() and json.loads(path.read_text()) == key
    if not same:
        if (Path(work_dir) / "checkpoints").exists():
            print(f"{work_dir}: settings changed since the last run, starting over")
        shutil.rmtree(Path(work_dir) / "checkpoints", ignore_errors=True)
        shutil.rmtree(Path(work_dir) / "dvclive", ignore_errors=True)
        write_json(path, key)
    return same
