"""Short fine-tunes of a trained face latent model under changed loss weights, scored by the probes.

A cheap CPU screen for loss-weight ideas before a full run: each variant starts from the same
exported model (``--model``), trains ``--steps`` steps with the stage's task and loop (landmark
guidance from ``--guidance``, no GAN, constant learning rate), and is scored on the held-out test
identities (self-reenactment PSNR, mouth-box PSNR, linear probes fit on val). A control variant with
the default weights separates the effect of the change from the effect of more training.

    python scripts/latent_finetune_ablation.py --steps 300 --set control: --set flip_decorr:w_flip=1.0,w_decorr=1.0 \\
        --out metrics/ablations/latent_finetune.json

``--set NAME:model.pose_cond=true,w_leak=1`` also overrides fields of the model's config (JSON values),
``--set NAME:task.guide_targets=pose_free`` the guidance targets, ``--set NAME:task.blink_boost=8`` how much
more often drivers with closed eyes are drawn, ``--set NAME:task.freeze=E_app+E_id+E_mot`` keeps those modules
as exported (only the decoder learns).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.latent.evaluate import clip_codes, mouth_reenactment, probes, self_reenactment  # noqa: E402
from vasa.latent.guidance import guidance_fit  # noqa: E402
from vasa.latent.model import FaceLatentModel  # noqa: E402
from vasa.latent.residual import fit_on_corpus  # noqa: E402
from vasa.latent.task import LatentTask  # noqa: E402
from vasa.latent.warp import resample_grid_head  # noqa: E402
from vasa.latent.train import load_latent  # noqa: E402
from vasa.train import load_pretrained, train  # noqa: E402


class FineTuneTask(LatentTask):
    """The latent task with its model initialised from an exported model. A model override that widens
    the input of a linear layer (``model.pose_cond=1``: the z_dyn networks also read z_pose) gets the
    exported weights with zero columns for the new inputs, and ``model.mot_split=true`` a z_dyn backbone
    copied from the shared one; ``model.vol_up=1`` zero-initialised fine-volume paths,
    ``model.gen_sees_source=true`` a zero-initialised warped-source input and ``model.gen_source_gate=true``
    that input's gate as built (0.98 open), ``model.flow_refine=8`` the refinement as built (zero last layer),
    and ``model.flow_size=[4,32,32]`` (or a finer ``model.dyn_volume``) the coarse head's output grid resampled
    (``warp.resample_grid_head``): the fine-tune starts from the same function (``vol_up``: nearly, the fine
    warp pooled is close to the coarse one; the gate: nearly, 0.98 of the source input; the finer flows:
    nearly, the driving warp samples the same field on a finer grid)."""

    def __init__(self, init: str, *a, freeze: str = "", **kw):
        self.init, self.freeze = init, [f for f in freeze.split("+") if f]
        super().__init__(*a, **kw)

    def build_model(self):
        mods = super().build_model()
        init_cfg, tensors = load_pretrained(self.init)
        own = mods["model"].state_dict()
        for k in own:  # model.mot_split=true: the new z_dyn backbone starts as a copy of the shared one
            for new, old in (("E_mot.dyn_net.", "E_mot.net."), ("E_mot.dyn_fc.", "E_mot.fc.")):
                if k.startswith(new) and k not in tensors["model"]:
                    tensors["model"][k] = tensors["model"][old + k[len(new):]].clone()
        for k in own:  # model.vol_up=1 (the fine volume is the upsampled coarse one), gen_sees_source: zeros
            if k not in tensors["model"] and k.startswith(("E_app.to_vol_up.", "G.skips.", "G.src_in.")):
                tensors["model"][k] = torch.zeros_like(own[k])
            if k not in tensors["model"] and k.startswith(("G.src_gate.", "G.flow_refine.")):  # as built: open gate,
                # a refinement whose last layer is zero (the coarse flow)
                tensors["model"][k] = own[k].clone()
        for k in own:  # model.flow_size / model.dyn_volume finer: the coarse head's outputs resampled (same function)
            v = tensors["model"].get(k)
            if v is not None and k.endswith(("flow.mlp.2.weight", "flow.mlp.2.bias", "dyn_volume.mlp.2.weight",
                                             "dyn_volume.mlp.2.bias")) and v.shape != own[k].shape:
                field = "flow_size" if ".flow." in k else "dyn_volume"
                tensors["model"][k] = resample_grid_head(v, init_cfg["latent"][field], getattr(self.model_cfg, field))
        for k, v in tensors["model"].items():
            if k in own and v.ndim == 2 and own[k].ndim == 2 and v.shape[0] == own[k].shape[0] and v.shape[1] < own[k].shape[1]:
                tensors["model"][k] = torch.cat([v, v.new_zeros(v.shape[0], own[k].shape[1] - v.shape[1])], 1)
        mods["model"].load_state_dict({k: v.to(own[k].dtype) for k, v in tensors["model"].items()})
        for name in self.freeze:  # task.freeze=E_app+E_id+E_mot: those modules keep the exported weights
            if not isinstance(getattr(mods["model"], name, None), torch.nn.Module):
                raise SystemExit(f"task.freeze: the model has no module {name!r}")
            getattr(mods["model"], name).requires_grad_(False)
        return mods


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/latent")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--guidance", default="runs/latent/guidance-train.npz")
    ap.add_argument("--set", action="append", default=[], metavar="NAME:KEY=V,KEY=V",
                    help="a variant: its name, then loss weights over the defaults")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--work", default="runs/latent_finetune")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    cfg, _ = load_pretrained(a.model)
    base_w = {k: v for k, v in cfg["task"].items() if k.startswith("w_") or k in ("rec_ssim", "guide_pose", "guide_dyn",
                                                                                  "consist_every", "cross_every")}
    base_w.update(w_adv=0.0, w_fm=0.0, adv_start=0, w_mouth=0.0, w_eyes=0.0)
    report = dict(command="python scripts/latent_finetune_ablation.py " + " ".join(argv or sys.argv[1:]),
                  model=a.model, steps=a.steps, batch=a.batch, lr=a.lr, variants={})
    boxes: dict = {}
    for spec in a.set or ["control:"]:
        name, _, kv = spec.partition(":")
        pairs = [x.split("=", 1) for x in re.split(r",(?![^\[]*\])", kv) if x]  # commas inside [..] are a list's
        w = dict(base_w, **{k: float(v) for k, v in pairs if not k.startswith(("model.", "task."))})
        task_over = {k[len("task."):]: v for k, v in pairs if k.startswith("task.")}  # e.g. task.guide_targets=pose_free
        model_over = {k[len("model."):]: json.loads(v) for k, v in pairs if k.startswith("model.")}
        if cfg["task"].get("mouth_box") and cfg["task"].get("eyes_box"):  # the crops the model was trained with
            boxes = dict(mouth=cfg["task"]["mouth_box"], eyes=cfg["task"]["eyes_box"])
        if (w.get("w_mouth", 0) > 0 or w.get("w_eyes", 0) > 0 or w.get("w_blend_regions", 0) > 0) and not boxes:
            from vasa.latent.mouth import corpus_region_boxes
            boxes = corpus_region_boxes(a.corpus, "train", 64, 0)
        task = FineTuneTask(a.model, a.corpus, cfg["task"]["size"], "5d", ["speech"], dataset_size=a.steps * a.batch,
                            identity=cfg["task"].get("identity") if w.get("w_cross_id", 0) > 0 else None,
                            guidance=a.guidance, seed=0, mouth_box=boxes.get("mouth") if w.get("w_mouth", 0) > 0 or w.get("w_blend_regions", 0) > 0 else None,
                            eyes_box=boxes.get("eyes") if w.get("w_eyes", 0) > 0 or w.get("w_blend_regions", 0) > 0 else None,
                            blend_regions=cfg["task"].get("blend_regions", "box"),
                            guide_targets=task_over.get("guide_targets", cfg["task"].get("guide_targets", "raw")),
                            blink_boost=float(task_over.get("blink_boost", cfg["task"].get("blink_boost", 0.0))),
                            blink_threshold=float(task_over.get("blink_threshold", cfg["task"].get("blink_threshold", 0.4))),
                            freeze=task_over.get("freeze", ""), **w,
                            model={k: v for k, v in cfg["latent"].items() if k != "warp_backend"} | model_over)
        t0 = time.time()
        work = Path(a.work) / name
        train(task, out_dir=str(work), steps=a.steps, batch_size=a.batch, lr=a.lr, warmup_steps=0,
              lr_schedule="constant", ema_decay=0.99, log_every=25, seed=0, device="cpu", progress=False,
              export=True, checkpoint_every=0)
        net = FaceLatentModel(task.model_cfg)
        load_pretrained(work / "model", {"model": net})
        if net.dyn_res is not None:  # re-fit the pose trend of z_dyn on the fine-tuned encoder (as the stage does)
            fit_on_corpus(net, a.corpus, "train", progress=False)
        net.eval().requires_grad_(False)
        gfit = guidance_fit(net, a.corpus, "test", 16, work_dir=Path(a.guidance).parent)
        sr = self_reenactment(net, a.corpus, 256, 0, progress=False)["metrics"]
        mr = mouth_reenactment(net, a.corpus, 64, 0)["metrics"]
        pr = probes(clip_codes(net, a.corpus, "val", 40, progress=False), clip_codes(net, a.corpus, "test", 40, progress=False))
        report["variants"][name] = dict(weights_changed={k: w[k] for k in w if w[k] != base_w.get(k)}, model_changed=model_over,
                                        task_changed=task_over,
                                        psnr=sr["psnr"], ssim=sr["ssim"], psnr_auto=sr["psnr_auto"], mouth_psnr=mr["mouth_psnr"],
                                        probes=pr["table"], guidance_fit=gfit, seconds=round(time.time() - t0, 1))
        print(name, json.dumps(report["variants"][name]), flush=True)
    start = load_latent(a.model)
    pr0 = probes(clip_codes(start, a.corpus, "val", 40, progress=False), clip_codes(start, a.corpus, "test", 40, progress=False))
    report["start_probes"] = pr0["table"]
    report["start_guidance_fit"] = guidance_fit(start, a.corpus, "test", 16, work_dir=Path(a.guidance).parent)
    Path(a.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
