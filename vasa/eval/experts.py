"""Stage ``train_experts``: the evaluation's judges, trained in the project on the corpus's train split.

* ``sync``    the lip-sync expert (:mod:`vasa.eval.sync_expert`) behind S_C / S_D;
* ``capp``    the contrastive audio-pose model (:mod:`vasa.eval.capp`);
* ``emotion`` the expression classifier (:mod:`vasa.eval.emotion`), emotion-control accuracy;
* the FD-vasa-expert features (:mod:`vasa.eval.fd`) are the last two's towers: nothing more to train.

Each trains with :func:`vasa.train.train` in ``work_dir/<name>`` (checkpoints + dvclive; an
interrupted run resumes, changed settings start over) and is exported to ``out/<name>``
(``save_pretrained``: ``model.safetensors`` + ``config.json``); ``out/experts.json`` holds the
validation figures on the val split (identities never seen in training):

* sync: the share of val clips whose offset is found at 0 with their own audio, and at ``-5`` with
  the audio delayed by 5 frames; mean S_C / S_D;
* capp: top-1 retrieval of each clip's audio from its pose among all val clips (chance 1 / N);
* emotion: clip-level accuracy (chance 0.2).

>>> summary = train_experts(**experts_kwargs(load_params().train_experts))
>>> ex = load_experts("models/experts")   # Experts(sync=ExpertSync, capp=CAPP, emotion=EmotionNet, spec)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vasa.errors import VasaError
from vasa.eval.capp import CAPP, CAPPConfig, CAPPTask, retrieval_accuracy
from vasa.eval.crops import CropSpec
from vasa.eval.emotion import EmotionConfig, EmotionNet, EmotionTask, clip_accuracy
from vasa.eval.expert_data import ClipArrays, build_expert_data, mel_stats
from vasa.eval.sync import offset_distances, score_from_distances
from vasa.eval.sync_expert import ExpertSync, SyncExpert, SyncExpertConfig, SyncTask, _windows, centre_mel
from vasa.train import Checkpoint, latest_checkpoint, load_pretrained, save_pretrained, train
from vasa.train.checkpoint import load_module_tensors

NAMES = ("sync", "capp", "emotion")
# bumped when an expert's architecture or training changes: a finished run of an older version is redone
VERSIONS = {"sync": 1, "capp": 2, "emotion": 2}
SHIFT_CHECK = 5  # frames of audio delay in the sync validation


@dataclass
class Experts:
    """The loaded judges (any may be None when not trained)."""

    spec: CropSpec  # the sync expert's crop (lips, FD features)
    emotion_spec: CropSpec | None = None  # the expression classifier's crop
    sync: ExpertSync | None = None
    capp: CAPP | None = None
    emotion: EmotionNet | None = None
    info: dict | None = None


def _settings_match(work: Path, settings: dict) -> bool:
    """Whether ``work`` holds a run with these settings; otherwise its checkpoints are cleared."""
    import shutil

    from vasa.io.atomic import write_json

    path = work / "run.json"
    key = json.loads(json.dumps(settings))
    if path.is_file() and json.loads(path.read_text()) == key:
        return True
    if (work / "checkpoints").exists():
        print(f"{work}: settings changed since the last run, starting over")
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    shutil.rmtree(work / "dvclive", ignore_errors=True)
    write_json(path, key)
    return False


def _finished(work: Path, out: Path, steps: int, settings: dict) -> bool:
    """Trained with these settings and exported: nothing left to do."""
    run, cfg = work / "run.json", out / "config.json"
    if not (run.is_file() and cfg.is_file()):
        return False
    same = json.loads(run.read_text()) == json.loads(json.dumps(settings))
    last = latest_checkpoint(work / "checkpoints")
    return same and last is not None and int(last.name.split("-")[-1]) == steps


def _export(task, work: Path, out: Path, kind: str) -> None:
    c = Checkpoint(latest_checkpoint(work / "checkpoints"))
    model = task.build_model()
    load_module_tensors({"model": model}, c.ema or c.weights)
    save_pretrained(out, model, {"kind": kind, **task.config(), "train": c.state["config"]["train"], "steps": c.step})


def _run(name: str, task, work_dir: Path, out: Path, steps: int, settings: dict, train_kw: dict) -> dict:
    work = work_dir / name
    work.mkdir(parents=True, exist_ok=True)
    _settings_match(work, settings)
    t0 = time.perf_counter()
    metrics = train(task, out_dir=work, steps=steps, export=False, **train_kw)
    seconds = time.perf_counter() - t0
    if metrics["step"] == steps:
        _export(task, work, out / name, name)
    return {"metrics": metrics, "seconds": seconds}


def train_experts(
    corpus: str = "data/corpus",      # prepared corpus (train split to train, val split to validate)
    out: str = "models/experts",      # out/{sync,capp,emotion}/ exports + experts.json
    work_dir: str = "runs/experts",   # work_dir/<name>/: checkpoints + dvclive (resumable)
    face_size: int = 48,              # face crop side (the sync expert sees its lower half)
    emotion_size: int = 64,           # face crop side of the expression classifier
    train_clips: int = 0,             # train clips used (0 = all)
    val_clips: int = 20,              # val clips for the validation figures
    detect_stride: int = 12,          # face detection every k-th frame when cutting the training crops
    faces_per_clip: int = 12,         # face crops per clip for the emotion classifier
    sync_steps: int = 1500, sync_batch: int = 4, sync_chunk: int = 24, sync_lr: float = 3e-3, sync_width: int = 16,
    capp_steps: int = 600, capp_batch: int = 64, capp_lr: float = 1e-3, capp_width: int = 64, capp_layers: int = 2,
    emotion_steps: int = 3000, emotion_batch: int = 64, emotion_lr: float = 2e-3, emotion_width: int = 16,
    log_every: int = 25, checkpoint_every: int = 250, seed: int = 0, device: str = "auto", progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume, or skip when done) the three experts; returns losses, timings, validation."""
    if not Path(corpus, "manifest.jsonl").is_file():
        raise VasaError(f"no corpus at {corpus}: run `dvc repro prepare` first")
    out_p, work_p = Path(out), Path(work_dir)
    spec, espec = CropSpec(size=face_size), CropSpec(size=emotion_size)
    data_key = dict(corpus=str(Path(corpus).resolve()), face_size=face_size, emotion_size=emotion_size,
                    train_clips=train_clips,
                    detect_stride=detect_stride, faces_per_clip=faces_per_clip, seed=seed)
    settings = {
        "sync": dict(data_key, steps=sync_steps, batch=sync_batch, chunk=sync_chunk, lr=sync_lr, width=sync_width),
        "capp": dict(data_key, steps=capp_steps, batch=capp_batch, lr=capp_lr, width=capp_width, layers=capp_layers),
        "emotion": dict(data_key, steps=emotion_steps, batch=emotion_batch, lr=emotion_lr, width=emotion_width)}
    settings = {n: dict(s, version=VERSIONS[n]) for n, s in settings.items()}
    steps = {"sync": sync_steps, "capp": capp_steps, "emotion": emotion_steps}
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"experts": {}}
    todo = [n for n in NAMES if not _finished(work_p / n, out_p / n, steps[n], settings[n])]
    val = build_expert_data(corpus, "val", spec, val_clips, faces_per_clip, detect_stride, seed, progress,
                            face_spec=espec)
    if todo:
        t1 = time.perf_counter()
        data = build_expert_data(corpus, "train", spec, train_clips, faces_per_clip, detect_stride, seed, progress,
                                 face_spec=espec)
        summary["data_seconds"] = time.perf_counter() - t1
        summary["train_clips"], summary["train_frames"] = len(data), int(sum(len(d) for d in data))
        kw = dict(log_every=log_every, checkpoint_every=checkpoint_every, seed=seed, device=device,
                  progress=progress, warmup_steps=20, lr_schedule="cosine", grad_clip=1.0)
        if "sync" in todo:
            _, std = mel_stats(data, centred=True)
            task = SyncTask(data, SyncExpertConfig(crop=spec.to_dict(), width=sync_width, mel_std=std),
                            sync_steps * sync_batch, sync_chunk, seed)
            summary["experts"]["sync"] = _run("sync", task, work_p, out_p, sync_steps, settings["sync"],
                                              dict(kw, batch_size=sync_batch, lr=sync_lr))
        if "capp" in todo:
            mean, std = mel_stats(data)
            task = CAPPTask(data, CAPPConfig(width=capp_width, layers=capp_layers, mel_mean=mean, mel_std=std),
                            capp_steps * capp_batch, seed)
            summary["experts"]["capp"] = _run("capp", task, work_p, out_p, capp_steps, settings["capp"],
                                              dict(kw, batch_size=capp_batch, lr=capp_lr, weight_decay=0.01))
        if "emotion" in todo:
            task = EmotionTask(data, EmotionConfig(crop=espec.to_dict(), width=emotion_width),
                               emotion_steps * emotion_batch, seed)
            summary["experts"]["emotion"] = _run("emotion", task, work_p, out_p, emotion_steps, settings["emotion"],
                                                 dict(kw, batch_size=emotion_batch, lr=emotion_lr))
        del data
    summary["skipped"] = [n for n in NAMES if n not in todo]
    ex = load_experts(out_p)
    summary["validation"] = validate(ex, val)
    summary["seconds"] = time.perf_counter() - t0
    from vasa.io.atomic import write_json

    write_json(out_p / "experts.json", {"crop": spec.to_dict(), "emotion_crop": espec.to_dict(),
                                        "validation": summary["validation"],
                                        "settings": settings, "val_clips": [d.id for d in val]})
    return summary


def validate(ex: Experts, val: list[ClipArrays]) -> dict[str, Any]:
    """Validation figures of the loaded experts on held-out clips (see the module docstring)."""
    out: dict[str, Any] = {"clips": len(val)}
    if ex.sync is not None:
        own, shifted, sc, sd = [], [], [], []
        for d in val:
            v = ex.sync.lip_embeddings_from_crops(d.lips)
            mel = centre_mel(d.mel)
            a = ex.sync._run(ex.sync.model.embed_audio, _windows(mel))
            s0 = score_from_distances(offset_distances(v, a, edge=ex.sync.edge))
            own.append(s0.offset == 0)
            sc.append(s0.confidence)
            sd.append(s0.distance)
            # audio delayed by SHIFT_CHECK frames: the window of frame i hears frame i - k
            a_del = np.concatenate([np.repeat(a[:1], SHIFT_CHECK, 0), a[:-SHIFT_CHECK]])
            s1 = score_from_distances(offset_distances(v[SHIFT_CHECK:], a_del[SHIFT_CHECK:], edge=ex.sync.edge))
            shifted.append(s1.offset == -SHIFT_CHECK)
        out["sync"] = dict(offset0_rate=float(np.mean(own)), shift_found_rate=float(np.mean(shifted)),
                           s_c=float(np.mean(sc)), s_d=float(np.mean(sd)))
    if ex.capp is not None:
        long = [d for d in val if len(d) >= ex.capp.cfg.window]
        if len(long) >= 2:
            acc = retrieval_accuracy(ex.capp, [d.pose for d in long], [d.mel.astype(np.float32) for d in long])
            out["capp"] = dict(retrieval_top1=acc, chance=1.0 / len(long), clips=len(long))
    if ex.emotion is not None:
        out["emotion"] = dict(clip_accuracy=clip_accuracy(ex.emotion, val), chance=0.2)
    return out


def load_experts(directory: str | Path = "models/experts") -> Experts:
    """The exported experts in ``directory`` (those present), in eval mode on the CPU."""
    d = Path(directory)
    if not d.is_dir():
        raise VasaError(f"no experts at {d}: run `dvc repro train_experts` first")
    ex = Experts(spec=CropSpec())
    if (d / "sync" / "config.json").is_file():
        cfg, _ = load_pretrained(d / "sync")
        m = SyncExpert(SyncExpertConfig.from_dict(cfg["model"]))
        load_pretrained(d / "sync", m)
        ex.sync = ExpertSync(m)
        ex.spec = CropSpec.from_dict(cfg["model"]["crop"])
    if (d / "capp" / "config.json").is_file():
        cfg, _ = load_pretrained(d / "capp")
        ex.capp = CAPP(CAPPConfig.from_dict(cfg["model"]))
        load_pretrained(d / "capp", ex.capp)
        ex.capp.eval()
    if (d / "emotion" / "config.json").is_file():
        cfg, _ = load_pretrained(d / "emotion")
        ex.emotion = EmotionNet(EmotionConfig.from_dict(cfg["model"]))
        load_pretrained(d / "emotion", ex.emotion)
        ex.emotion.eval()
        ex.emotion_spec = CropSpec.from_dict(cfg["model"]["crop"])
    if (d / "experts.json").is_file():
        ex.info = json.loads((d / "experts.json").read_text())
    for m in (ex.capp, ex.emotion):
        if m is not None:
            m.requires_grad_(False)
    if ex.sync is not None:
        ex.sync.model.requires_grad_(False)
    return ex


def experts_summary(summary: dict) -> dict:
    """The JSON-able metrics of a :func:`train_experts` summary (DVC metrics)."""
    out = {"seconds": round(summary["seconds"], 1), "validation": summary["validation"]}
    for name, r in summary.get("experts", {}).items():
        out[name] = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float))} | {"seconds": r["seconds"]}
    return out
