"""Entry point of the ``train_latent`` stage: identity embedder, then the face latent space, then export.

>>> from vasa.config import load_params
>>> from vasa.stage_kwargs import latent_kwargs
>>> summary = train_latent(**latent_kwargs(load_params("params.yaml").train_latent))
>>> model = load_latent("models/latent")          # FaceLatentModel, EMA weights, eval mode

Order: the identity embedder, the landmark guidance cache, E_mot's warm start on that guidance alone
(``mot_pretrain_steps > 0``: :mod:`vasa.latent.mot_pretrain`, cached in ``work_dir``), the joint
training, the export.

Outputs: ``identity_out`` (the frozen identity embedder, when ``w_cross_id > 0``), ``work_dir``
(checkpoints + dvclive of the latent run; an interrupted run resumes from there), ``out``
(``model.safetensors`` with the EMA weights of the :class:`FaceLatentModel` under the name
``model`` + ``config.json`` holding ``{"latent": LatentModelConfig, "size", "task", "train", "steps"}``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from vasa.errors import VasaError
from vasa.latent.config import LatentModelConfig
from vasa.latent.model import FaceLatentModel
from vasa.latent.task import LatentTask
from vasa.train import Checkpoint, latest_checkpoint, load_pretrained, save_pretrained, train
from vasa.train.checkpoint import load_module_tensors, prepare_run_dir


def train_latent(
    corpus: str = "data/corpus",           # prepared corpus (train split for training, val for samples)
    out: str = "models/latent",            # export: model.safetensors + config.json
    work_dir: str = "runs/latent",         # checkpoints + dvclive (resumable)
    size: str = "S",                       # named model size (vasa.latent.config.LATENT_SIZES)
    model: dict | None = None,             # LatentModelConfig fields over the named size, e.g. {"dyn_volume": [4, 16, 16]}
    warp_backend: str = "5d",              # "5d" | "2d" (the same values; 2d for MPS/ONNX/TensorRT)
    kinds: list | tuple = ("speech",),     # clip kinds for frame pairs ("speech", "gallery")
    steps: int = 1600,                     # optimizer steps
    batch_size: int = 8,                   # frame pairs per step
    lr: float = 5e-4,                      # generator (AdamW)
    lr_disc: float = 2e-4,                 # discriminator (AdamW, betas 0.5 / 0.999)
    warmup_steps: int = 100,
    lr_schedule: str = "cosine",
    grad_clip: float = 1.0,
    ema_decay: float = 0.995,
    w_rec: float = 1.0,                    # L1 + Laplacian pyramid + rec_ssim * (1 - MS-SSIM)
    rec_ssim: float = 0.5,
    w_consist: float = 1.0,                # VASA-1 l_consist
    consist_every: int = 4,
    w_cross_id: float = 0.2,               # VASA-1 l_cross_id (frozen identity embedder)
    cross_every: int = 4,
    w_adv: float = 0.05,                   # hinge GAN (generator side)
    w_fm: float = 0.5,                     # discriminator feature matching
    adv_start: int = 1200,                 # GAN terms from this step on
    w_equiv: float = 0.2,                  # z_pose equivariance to similarity transforms
    w_flip: float = 0.1,                   # mirror equivariance of z_pose, near-invariance of z_dyn
    w_decorr: float = 0.1,                 # z_pose / z_dyn cross-correlation
    w_leak: float = 0.0,                   # z_pose's best linear read-out from z_dyn (learned adversary)
    leak_start: int = 0,                   # w_leak is off before this step ...
    leak_ramp: int = 0,                    # ... then ramps up linearly over this many steps
    w_warp: float = 0.01,                  # flow smoothness
    w_sup_pose: float = 0.0,               # ground-truth pose supervision (ablation only; 0 = off)
    w_guide: float = 1.0,                  # MediaPipe landmark guidance (vasa.latent.guidance; 0 = label-free)
    guide_pose: float = 1.0,               # weight of the yaw / pitch / roll part of the guidance
    guide_dyn: float = 1.0,                # weight of the mouth / eye / gaze part of the guidance
    guide_frames: int = 16,                # guided frames per training clip (MediaPipe ~11 ms/frame/core)
    guide_targets: str = "raw",            # "raw" MediaPipe measures | "pose_free" (vasa.latent.guidance.dyn_targets) | "closure" (raw, eyes per-clip closure)
    w_mouth: float = 0.0,                  # the lips' own reconstruction term on a mouth crop (vasa.latent.mouth)
    w_eyes: float = 0.0,                   # the eyes' own reconstruction term on an eye crop (blinks)
    w_blend_regions: float = 0.0,          # src_blend: mask inside the mouth + eye crops (the copy kept out)
    blend_regions: str = "box",            # "box": one crop per corpus | "landmarks": each pair's lip + eye contours
    w_lip_adv: float = 0.0,                # the lips' own GAN on a crop at each driver's lips (vasa.latent.lip_gan) ...
    w_lip_fm: float = 0.0,                 # ... and its feature matching; from region_adv_start, need w_guide > 0
    lip_cond: bool = True,                 # ... its discriminator conditioned on the driver's MediaPipe mouth opening
    w_eye_adv: float = 0.0,                # the eyes' own GAN on a crop at each of the driver's eyes (vasa.latent.eye_gan) ...
    w_eye_fm: float = 0.0,                 # ... and its feature matching; need w_guide > 0
    eye_cond: bool = True,                 # ... its discriminator conditioned on MediaPipe's pose-free eye closure
    w_eye_expert: float = 0.0,             # the render's eyes read as closed as the driver's by a closure expert; w_guide > 0
    region_adv_start: int = -1,            # the lip / eye GANs from this step on (-1: adv_start)
    region_blur: bool = False,             # the lip / eye GANs judge low-passed crops (lip_gan.binomial_blur)
    mouth_frames: int = 64,                # training frames MediaPipe places the mouth / eye crops on
    mot_pretrain_steps: int = 0,           # E_mot warm start: fitted to the guidance alone first (vasa.latent.mot_pretrain; 0 = off)
    mot_pretrain_batch: int = 64,          # ... frames per step (the guided frames)
    mot_pretrain_lr: float = 1e-3,         # ... AdamW, warmup + cosine
    mot_pretrain_blink_boost: float = 0.0,  # ... closed-eye frames (blink_threshold) drawn 1 + this times as often
    blink_boost: float = 0.0,              # drivers whose eyes MediaPipe sees closed drawn 1 + boost times as often
    blink_threshold: float = 0.4,          # ... "closed": pose-free eye closure (1 - EAR / open-eye EAR) >= this
    log_every: int = 25,
    sample_every: int = 400,
    checkpoint_every: int = 200,
    num_workers: int = 0,
    seed: int = 0,
    device: str = "auto",
    amp: str = "off",                      # "off" | "bf16" | "auto" (bf16 on CUDA): see params.yaml
    identity_out: str = "models/identity",  # identity embedder export
    identity_work_dir: str = "runs/identity",
    identity_steps: int = 300,
    identity_batch: int = 32,               # identities per step (two views each)
    identity_lr: float = 1e-3,
    identity_size: int = 64,                # embedder input resolution
    identity_speech_frames: float = 0.3,    # share of views drawn from speech clips (else gallery)
    progress: bool = True,
    stop_at_step: int | None = None,        # end this call early (checkpointed); the next call resumes
) -> dict[str, Any]:
    """Train (or resume) the identity embedder and the face latent space; export the EMA model to
    ``out``. Returns ``{"identity": seconds, "latent": final loop metrics, "seconds", "steps_per_s"}``."""
    if not Path(corpus, "manifest.jsonl").is_file():
        raise VasaError(f"no corpus at {corpus}: run `dvc repro prepare` (or `vasa synth --out {corpus}`) first")
    settings = {k: v for k, v in locals().items() if k != "corpus"} | {"corpus": str(Path(corpus).resolve())}
    from vasa.latent.config import latent_config  # the resolved architecture: a changed named size starts over too

    settings["model_config"] = latent_config(size, **{k: v for k, v in (model or {}).items()
                                                      if k != "warp_backend"}).to_dict()
    summary: dict[str, Any] = {}
    identity = None
    if w_cross_id > 0:
        from vasa.latent.identity import train_identity

        t0 = time.perf_counter()
        train_identity(corpus, identity_out, identity_work_dir, identity_steps, identity_batch, identity_lr,
                       identity_size, identity_speech_frames, seed, device, num_workers, progress)
        summary["identity_seconds"] = time.perf_counter() - t0
        identity = identity_out
    weights = dict(w_rec=w_rec, rec_ssim=rec_ssim, w_consist=w_consist, consist_every=consist_every,
                   w_cross_id=w_cross_id, cross_every=cross_every, w_adv=w_adv, w_fm=w_fm, adv_start=adv_start,
                   w_equiv=w_equiv, w_flip=w_flip, w_decorr=w_decorr, w_leak=w_leak, leak_start=leak_start, leak_ramp=leak_ramp, w_warp=w_warp, w_sup_pose=w_sup_pose,
                   w_guide=w_guide, guide_pose=guide_pose, guide_dyn=guide_dyn, w_mouth=w_mouth, w_eyes=w_eyes,
                   w_blend_regions=w_blend_regions, w_lip_adv=w_lip_adv, w_lip_fm=w_lip_fm,
                   lip_cond=float(lip_cond), w_eye_adv=w_eye_adv, w_eye_fm=w_eye_fm, eye_cond=float(eye_cond),
                   w_eye_expert=w_eye_expert, region_adv_start=region_adv_start, region_blur=float(region_blur))
    prepare_run_dir(work_dir, settings)  # identity_* included: another embedder changes the latent run
    guidance = None
    if w_guide > 0:  # cached in work_dir (kept when the settings change: it depends on the corpus only)
        from vasa.latent.guidance import estimate_guidance

        t0 = time.perf_counter()
        g = estimate_guidance(corpus, "train", guide_frames, work_dir, workers=num_workers or 0, progress=progress)
        summary.update(guidance_seconds=time.perf_counter() - t0, guidance_frames=len(g),
                       guidance_found=g.found_rate())
        guidance = str(Path(work_dir) / "guidance-train.npz")
    boxes: dict = {}
    regions = w_blend_regions > 0
    lip = w_lip_adv > 0 or w_lip_fm > 0  # the lip GAN's fallback crop centre: the corpus mouth box
    eye = w_eye_adv > 0 or w_eye_fm > 0 or w_eye_expert > 0  # eye crops' fallback centres: the corpus eye box's halves
    if w_mouth > 0 or w_eyes > 0 or regions or lip or eye:
        from vasa.latent.mouth import corpus_region_boxes

        boxes = corpus_region_boxes(corpus, "train", mouth_frames, seed)
        summary.update(mouth_box=list(boxes["mouth"]), eyes_box=list(boxes["eyes"]))
    init_mot = None
    if mot_pretrain_steps > 0:
        if guidance is None:
            raise VasaError("mot_pretrain_steps > 0 fits E_mot to the landmark guidance: it needs w_guide > 0, "
                            "or set mot_pretrain_steps: 0")
        from vasa.latent.mot_pretrain import warm_start_file

        t0 = time.perf_counter()
        init_mot, fit = warm_start_file(corpus, guidance, work_dir, settings["model_config"], guide_targets,
                                        guide_pose, guide_dyn, mot_pretrain_steps, mot_pretrain_batch, mot_pretrain_lr,
                                        mot_pretrain_blink_boost, blink_threshold, seed, device, progress)
        summary.update(mot_pretrain_seconds=time.perf_counter() - t0, mot_pretrain=fit)
    task = LatentTask(corpus, size, warp_backend, kinds, dataset_size=steps * batch_size, lr_disc=lr_disc,
                      identity=identity, seed=seed, guidance=guidance, mouth_box=boxes.get("mouth") if w_mouth > 0 or regions or lip else None,
                      eyes_box=boxes.get("eyes") if w_eyes > 0 or regions or eye else None, model=model,
                      guide_targets=guide_targets, blend_regions=blend_regions, blink_boost=blink_boost,
                      blink_threshold=blink_threshold, init_mot=init_mot, **weights)
    start = _current_step(work_dir)
    t0 = time.perf_counter()
    metrics = train(task, out_dir=work_dir, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                    lr_schedule=lr_schedule, grad_clip=grad_clip, ema_decay=ema_decay, log_every=log_every,
                    sample_every=sample_every, checkpoint_every=checkpoint_every, seed=seed, device=device,
                    num_workers=num_workers, progress=progress, stop_at_step=stop_at_step, export=False, amp=amp)
    seconds = time.perf_counter() - t0
    summary.update(latent=metrics, seconds=seconds,
                   steps_per_s=(metrics["step"] - start) / seconds if seconds > 0 else 0.0)
    if metrics["step"] == steps:
        export_latent(work_dir, out, task, steps, progress=progress)
        fit = load_pretrained(out)[0].get("dyn_residual")
        if fit:
            summary["dyn_residual"] = fit
    return summary


def _current_step(work_dir: str | Path) -> int:
    path = latest_checkpoint(Path(work_dir) / "checkpoints")
    return 0 if path is None else int(path.name.split("-")[-1])


def export_latent(work_dir: str | Path, out: str | Path, task: LatentTask, steps: int, progress: bool = True) -> Path:
    """Write the EMA weights of the newest checkpoint's ``model`` to ``out`` (save_pretrained layout).
    With ``dyn_residual`` the pose trend of ``z_dyn`` is fitted first, on the training split's frames
    (:func:`vasa.latent.residual.fit_on_corpus`; its summary goes into ``config.json``)."""
    path = latest_checkpoint(Path(work_dir) / "checkpoints")
    if path is None:
        raise VasaError(f"no checkpoint in {work_dir}: train first")
    c = Checkpoint(path)
    model = FaceLatentModel(task.model_cfg)
    load_module_tensors({"model": model}, c.ema or c.weights)
    cfg = {"latent": task.model_cfg.to_dict(), "size": task.size, "task": task.config(),
           "train": c.state["config"]["train"], "steps": c.step}
    if model.dyn_res is not None:
        from vasa.latent.residual import fit_on_corpus

        cfg["dyn_residual"] = fit_on_corpus(model, task.corpus, "train", progress=progress)
    return save_pretrained(out, {"model": model}, cfg)


def load_latent(directory: str | Path = "models/latent", device: str | torch.device = "cpu") -> FaceLatentModel:
    """The exported face latent model (EMA weights), in eval mode without gradients."""
    cfg, _ = load_pretrained(directory)
    model = FaceLatentModel(LatentModelConfig.from_dict(cfg["latent"]))
    load_pretrained(directory, {"model": model})
    return model.to(device).eval().requires_grad_(False)


def latent_fingerprint(directory: str | Path) -> str:
    """A short hash of the exported weights (motion files record which model encoded them)."""
    import hashlib

    h = hashlib.sha256()
    with open(Path(directory) / "model.safetensors", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
