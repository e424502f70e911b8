"""Training task of the face latent space (stage 1) for the shared loop :func:`vasa.train.train`.

Modules: ``model`` (:class:`FaceLatentModel`, the generator, EMA-tracked), ``disc``
(:class:`PatchDiscriminator`), when ``w_leak > 0`` ``leak`` (:class:`PoseLeakProbe`: buffers
only, in no optimizer group) and, when ``w_cross_id > 0``, ``ident`` (the frozen
:class:`~vasa.latent.identity.FaceIdentityNet`, in no optimizer group). Optimizer groups are stepped
in the order ``disc`` then ``gen``; one forward pass serves both (the loop back-propagates each
group's loss into its own parameters only).

Per micro-batch of :class:`~vasa.data.frames.FramePairs` (source i, driver j of one clip, a frame of
another identity), with images ``B x 3 x S x S`` in [-1, 1]::

    recon    = decode(V_app^i, z_id^i, z_pose^j, z_dyn^j)     -> w_rec * ReconstructionLoss(recon, driver)
    consist  = decode(V_app^j, z_id^j, z_pose^i, z_dyn^j) vs
               decode(V_app^i, z_id^i, z_pose^i, z_dyn^j)     -> w_consist * l_consist   (every consist_every steps)
    cross    = decode(V_app^i, z_id^i, motion of the other)    -> w_cross_id * l_cross_id (every cross_every steps)
    GAN      = hinge loss + feature matching on recon          -> w_adv, w_fm             (from step adv_start)
    lip GAN  = the same on a crop around the driver's lips     -> w_lip_adv, w_lip_fm     (from step region_adv_start,
               -1: adv_start; its own discriminator ``disc_lip``, the crop placed by the guidance cache, conditioned
               on the driver's MediaPipe mouth opening unless lip_cond is 0: vasa.latent.lip_gan)
    eye GAN  = the same on a crop around each of its eyes      -> w_eye_adv, w_eye_fm     (from region_adv_start too;
               ``disc_eye``, conditioned on MediaPipe's pose-free eye closure unless eye_cond is 0: vasa.latent.eye_gan;
               region_blur 1: both region GANs see low-passed crops, lip_gan.binomial_blur)
    eye expert = a closure regressor learns MediaPipe's eye closure on the driver's eye crops (module and
               optimizer group ``eye_expert``, from step 0); the render's eyes must read as closed as the
               driver's                                       -> w_eye_expert (from region_adv_start, at the
               earliest from EXPERT_WARMUP: vasa.latent.eye_expert)
    regulars  = pose equivariance (in-plane similarity) and mirror equivariance (yaw; z_dyn near flip-invariant)
                of the driver, z_pose/z_dyn decorrelation, flow smoothness
    leak      = w_leak * PoseLeakLoss: squared correlation of z_pose with its best linear read-out from z_dyn,
                re-solved every step over a memory of recent codes (PoseLeakProbe, module "leak", no optimizer);
                off before step leak_start, then ramped up linearly over leak_ramp steps (:func:`leak_ramp`)
    guidance  = w_guide * GuidanceLoss: MediaPipe landmark estimates (yaw/pitch/roll -> z_pose, pose-free
                mouth / eyes closed / gaze -> the first 4 z_dyn channels) on the guided frames (vasa.latent.guidance)
    blend     = w_blend_regions * BlendRegionLoss: the src_blend mask (the share copied from the warped source)
                inside the lips and eyes, which must be rendered: the corpus's crops (blend_regions "box") or
                each pair's own MediaPipe contours from the guidance cache ("landmarks", item "regions")
    optional  = w_sup_pose * SupervisedPoseLoss (ground-truth labels; 0 by default, an ablation)

No ground-truth label enters the default losses; labels are only read by the evaluation. The
guidance comes from a pretrained landmark model applied to pixels, as it would be on real video.
``init_mot``: E_mot's weights at step 0, from its warm start on that guidance alone
(:mod:`vasa.latent.mot_pretrain`; a checkpoint, when resuming, overrides them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from vasa.data.corpus import Corpus
from vasa.data.frames import FramePairs
from vasa.errors import VasaError
from vasa.latent import losses as L
from vasa.latent.config import latent_config
from vasa.latent.model import FaceLatentModel
from vasa.train import OptimGroup, TrainTask

BLEND_REGIONS = ("box", "landmarks")  # where the src_blend mask is kept out: corpus boxes, or per-frame contours
LOSS_WEIGHTS = ("w_rec", "rec_ssim", "w_consist", "consist_every", "w_cross_id", "cross_every", "w_adv", "w_fm",
                "adv_start", "w_equiv", "w_flip", "w_decorr", "w_warp", "w_sup_pose", "w_guide", "guide_pose", "guide_dyn", "w_mouth", "w_eyes", "w_blend_regions", "w_leak",
                "leak_start", "leak_ramp", "w_lip_adv", "w_lip_fm", "lip_cond", "w_eye_adv", "w_eye_fm", "eye_cond",
                "w_eye_expert", "region_adv_start", "region_blur")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """3 x H x W in [-1, 1] -> H x W x 3 uint8."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def reenactment_grid(model: FaceLatentModel, batch: dict[str, torch.Tensor]) -> np.ndarray:
    """Rows: source, driver, reconstruction (source with the driver's motion), other identity,
    cross-identity (source with the other's motion); one column per item. -> uint8 image."""
    from vasa.viz import image_grid

    out = model(batch["source"], batch["driver"], other=batch["other"])
    rows = [batch["source"], batch["driver"], out["recon"], batch["other"], out["cross"]]
    ims = [to_uint8(r[i]) for r in rows for i in range(len(batch["source"]))]
    return image_grid(ims, cols=len(batch["source"]))


def leak_ramp(step: int, start: int, ramp: int) -> float:
    """Factor of ``w_leak`` at ``step``: 0 before ``start`` (``z_pose`` has not learned the pose yet, and the
    scale-invariant correlation would push ``z_dyn`` against noise), then linear up to 1 over ``ramp`` steps."""
    if step < start:
        return 0.0
    return 1.0 if ramp <= 0 else min(1.0, (step - start + 1) / ramp)


class LatentTask(TrainTask):
    """The face latent space as a :class:`~vasa.train.TrainTask` (see the module docstring)."""

    def __init__(self, corpus: str, size: str = "S", warp_backend: str = "5d", kinds=("speech",),
                 dataset_size: int = 100_000, lr_disc: float = 2e-4, identity: str | None = None,
                 seed: int = 0, sample_items: int = 6, guidance: str | None = None,
                 mouth_box: tuple | list | None = None, eyes_box: tuple | list | None = None,
                 model: dict | None = None, guide_targets: str = "raw", blend_regions: str = "box",
                 blink_boost: float = 0.0, blink_threshold: float = 0.4, init_mot: str | None = None,
                 **weights: float):
        unknown = set(weights) - set(LOSS_WEIGHTS)
        if unknown:
            raise TypeError(f"unknown loss weights {sorted(unknown)}; known: {LOSS_WEIGHTS}")
        self.w = dict(w_rec=1.0, rec_ssim=0.5, w_consist=1.0, consist_every=4, w_cross_id=0.0, cross_every=4,
                      w_adv=0.0, w_fm=0.0, adv_start=0, w_equiv=0.2, w_flip=0.0, w_decorr=0.1, w_warp=0.01,
                      w_sup_pose=0.0, w_guide=0.0, guide_pose=1.0, guide_dyn=1.0, w_mouth=0.0, w_eyes=0.0, w_blend_regions=0.0, w_leak=0.0,
                      leak_start=0, leak_ramp=0, w_lip_adv=0.0, w_lip_fm=0.0, lip_cond=1.0, w_eye_adv=0.0,
                      w_eye_fm=0.0, eye_cond=1.0, w_eye_expert=0.0, region_adv_start=-1, region_blur=0.0)
        self.w.update(weights)
        if self.w["w_guide"] > 0 and not guidance:
            raise VasaError("w_guide > 0 needs landmark guidance (vasa.latent.guidance.estimate_guidance)")
        self.guidance = str(guidance) if guidance else None
        from vasa.latent.guidance import TARGETS
        if guide_targets not in TARGETS:
            raise VasaError(f"guide_targets must be one of {TARGETS}, got {guide_targets!r}")
        self.guide_targets = guide_targets
        if blink_boost and not guidance:
            raise VasaError("blink_boost > 0 picks drivers by MediaPipe's eye closure: it needs the landmark "
                            "guidance (w_guide > 0), or set blink_boost: 0")
        self.blink_boost, self.blink_threshold = float(blink_boost), float(blink_threshold)
        # the lips' / eyes' own reconstruction terms on MediaPipe-placed crops (vasa.latent.mouth)
        self.mouth, self.mouth_box = self._region("w_mouth", mouth_box, "mouth crop")
        self.eyes, self.eyes_box = self._region("w_eyes", eyes_box, "eye crop")
        self.blend_regions = None  # src_blend: the mask is pushed out of the mouth and eye crops
        if blend_regions not in BLEND_REGIONS:
            raise VasaError(f"blend_regions must be one of {BLEND_REGIONS}, got {blend_regions!r}")
        if blend_regions == "landmarks" and self.w["w_blend_regions"] > 0 and not guidance:
            raise VasaError("blend_regions: landmarks needs the landmark guidance cache (w_guide > 0), "
                            "or use blend_regions: box")
        self.region_kind = blend_regions
        self.lip_gan = None  # the lips' own discriminator (vasa.latent.lip_gan), placed by the guidance cache
        if self.w["w_lip_adv"] > 0 or self.w["w_lip_fm"] > 0:
            if not guidance:
                raise VasaError("w_lip_adv / w_lip_fm crop each driver's lips where MediaPipe found them: they need "
                                "the landmark guidance (w_guide > 0), or set both to 0")
            from vasa.latent.lip_gan import LipAdversarialLoss, box_centre
            self.lip_gan = LipAdversarialLoss(fallback=box_centre(mouth_box) if mouth_box is not None else (0.72, 0.5),
                                              blur=bool(self.w["region_blur"]))
            from vasa.latent.guidance import GUIDE_NAMES, RAW_NAMES
            self.guide_mouth = (RAW_NAMES if guide_targets == "raw" else GUIDE_NAMES).index("mouth")
        self.eye_gan = None  # the eyes' own discriminator (vasa.latent.eye_gan), placed by the guidance cache
        if self.w["w_eye_adv"] > 0 or self.w["w_eye_fm"] > 0:
            if not guidance:
                raise VasaError("w_eye_adv / w_eye_fm crop each driver's eyes where MediaPipe found them: they need "
                                "the landmark guidance (w_guide > 0), or set both to 0")
            from vasa.latent.eye_gan import EYE_FALLBACK, EyeAdversarialLoss, eye_fallback
            self.eye_gan = EyeAdversarialLoss(fallback=eye_fallback(eyes_box) if eyes_box is not None else EYE_FALLBACK,
                                              blur=bool(self.w["region_blur"]))
        self.eye_expert = None  # the eye-closure expert (vasa.latent.eye_expert), placed by the guidance cache
        if self.w["w_eye_expert"] > 0:
            if not guidance:
                raise VasaError("w_eye_expert reads each driver's eyes where MediaPipe found them and learns the "
                                "closure MediaPipe measured: it needs the landmark guidance (w_guide > 0), or set it to 0")
            from vasa.latent.eye_expert import EyeExpertLoss
            from vasa.latent.eye_gan import EYE_FALLBACK, eye_fallback
            self.eye_expert = EyeExpertLoss(fallback=eye_fallback(eyes_box) if eyes_box is not None else EYE_FALLBACK,
                                            blur=bool(self.w["region_blur"]))
        if self.w["w_blend_regions"] > 0:
            if mouth_box is None or eyes_box is None:
                raise VasaError("w_blend_regions > 0 needs the mouth and eye crops (vasa.latent.mouth.estimate_region_boxes)")
            from vasa.latent.mouth import BlendRegionLoss
            self.blend_regions = BlendRegionLoss([mouth_box, eyes_box])
            self.mouth_box, self.eyes_box = list(self.blend_regions.boxes[0]), list(self.blend_regions.boxes[1])
        self._guide = None
        self.init_mot = str(init_mot) if init_mot else None  # E_mot's warm start (vasa.latent.mot_pretrain)
        if self.init_mot and not Path(self.init_mot).is_file():
            raise VasaError(f"init_mot: no file {self.init_mot}; run the warm start (mot_pretrain_steps > 0) first")
        self.corpus, self.size, self.warp_backend, self.kinds = str(corpus), size, warp_backend, list(kinds)
        self.dataset_size, self.lr_disc, self.identity, self.seed = dataset_size, lr_disc, identity, seed
        self.sample_items = sample_items
        self.model_cfg = latent_config(size, warp_backend=warp_backend, **(model or {}))
        res = Corpus(self.corpus).schema.get("resolution")
        self.resize = self.model_cfg.image_size if res != self.model_cfg.image_size else None
        self.rec = L.ReconstructionLoss(ssim=self.w["rec_ssim"])
        self.consist = L.ConsistencyLoss()
        self.adv, self.fm = L.AdversarialLoss("hinge"), L.FeatureMatchingLoss()
        self.equiv, self.flip = L.PoseEquivarianceLoss(), L.FlipEquivarianceLoss()
        self.decorr, self.warp = L.PoseDynDecorrelationLoss(), L.WarpSmoothnessLoss()
        self.leak = L.PoseLeakLoss()
        self.guide_loss = L.GuidanceLoss(pose=self.w["guide_pose"], dyn=self.w["guide_dyn"])
        self.sup = None
        if self.w["w_sup_pose"] > 0:
            self.sup = L.SupervisedPoseLoss(Corpus(self.corpus).param_names)
        self._sample_batch: dict[str, torch.Tensor] | None = None

    def _region(self, weight: str, box, what: str):
        """(RegionLoss, box as a list) for a region term whose weight is on, else (None, None)."""
        if self.w[weight] <= 0:
            return None, None
        if box is None:
            raise VasaError(f"{weight} > 0 needs the {what} (vasa.latent.mouth.estimate_region_boxes)")
        from vasa.latent.mouth import RegionLoss
        loss = RegionLoss(box, ssim=self.w["rec_ssim"])
        return loss, list(loss.box)

    # ---- what the loop needs ----
    def build_model(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"model": FaceLatentModel(self.model_cfg), "disc": L.PatchDiscriminator()}
        if self.init_mot:  # E_mot starts from its warm start (a checkpoint, when resuming, overrides it)
            from vasa.latent.mot_pretrain import load_motion_encoder
            load_motion_encoder(mods["model"].E_mot, self.init_mot)
        if self.lip_gan is not None:
            mods["disc_lip"] = L.PatchDiscriminator(in_channels=4 if self.w["lip_cond"] else 3)
        if self.eye_gan is not None:
            mods["disc_eye"] = L.PatchDiscriminator(in_channels=4 if self.w["eye_cond"] else 3)
        if self.eye_expert is not None:
            from vasa.latent.eye_expert import EyeClosureExpert
            mods["eye_expert"] = EyeClosureExpert()
        if self.w["w_cross_id"] > 0:
            if not self.identity:
                raise VasaError("w_cross_id > 0 needs an identity embedder (train_identity first, or set w_cross_id=0)")
            from vasa.latent.identity import load_identity
            mods["ident"] = load_identity(self.identity)
        if self.w["w_leak"] > 0:
            mods["leak"] = L.PoseLeakProbe(self.model_cfg.dyn_dim, self.model_cfg.pose_dim)
        return mods

    def optim_groups(self) -> list[OptimGroup]:
        discs = ["disc"] + (["disc_lip"] if self.lip_gan is not None else []) + (["disc_eye"] if self.eye_gan is not None else [])
        groups = [OptimGroup("disc", discs, lr=self.lr_disc, betas=(0.5, 0.999))]
        if self.eye_expert is not None:  # its own optimizer: it learns on real crops only, from step 0
            from vasa.latent.eye_expert import EXPERT_LR
            groups.append(OptimGroup("eye_expert", ["eye_expert"], lr=EXPERT_LR))
        return groups + [OptimGroup("gen", ["model"])]

    def ema_modules(self) -> list[str]:
        return ["model"]

    def dataset(self) -> Dataset:
        if self.guidance and self._guide is None:
            from vasa.latent.guidance import Guidance
            self._guide = Guidance.load(self.guidance, self.guide_targets)
        region_fn = None
        if self.blend_regions is not None and self.region_kind == "landmarks":
            from vasa.latent.mouth import region_mask
            region_fn = region_mask
        weights = None  # blink_boost: drivers whose eyes MediaPipe sees closed are drawn 1 + boost times as often
        if self.blink_boost > 0:
            weights = self._guide.driver_weights(self.blink_boost, self.blink_threshold)
        return FramePairs(self.corpus, "train", kind=tuple(self.kinds), size=self.dataset_size, seed=self.seed,
                          with_params=self.sup is not None, resize=self.resize, guide=self._guide, region_fn=region_fn,
                          driver_weights=weights)

    def loss(self, m: dict[str, nn.Module], batch: dict[str, torch.Tensor], step: int, **kw: Any):
        w, model = self.w, m["model"]
        src, drv = batch["source"], batch["driver"]
        do_consist = w["w_consist"] > 0 and step % w["consist_every"] == 0
        do_cross = w["w_cross_id"] > 0 and step % w["cross_every"] == 0
        do_gan = (w["w_adv"] > 0 or w["w_fm"] > 0) and step >= w["adv_start"]
        region_start = w["adv_start"] if w["region_adv_start"] < 0 else w["region_adv_start"]
        do_lip = self.lip_gan is not None and step >= region_start  # FramePairs with guide= gives driver_lip
        do_eye = self.eye_gan is not None and step >= region_start  # ... and driver_eyes, driver_eye_closure
        out = model(src, drv, other=batch["other"] if do_cross else None, consistency=do_consist)
        recon = out["recon"]
        metrics: dict[str, Any] = {}
        rec = self.rec(recon, drv)
        gen = w["w_rec"] * rec
        metrics["rec"] = rec
        metrics["l1"] = (recon - drv).abs().mean()
        if w["w_mouth"] > 0:  # the lips' own reconstruction term (vasa.latent.mouth)
            mo = self.mouth(recon, drv)
            gen = gen + w["w_mouth"] * mo
            metrics["mouth"] = mo
        if w["w_eyes"] > 0:  # the eyes' own term: blinks are small and rare (vasa.latent.mouth)
            ey = self.eyes(recon, drv)
            gen = gen + w["w_eyes"] * ey
            metrics["eyes"] = ey
        if self.blend_regions is not None and "blend_mask" in out:  # src_blend: lips and eyes are rendered
            br = self.blend_regions(out["blend_mask"], batch.get("regions"))
            gen = gen + w["w_blend_regions"] * br
            metrics["blend_regions"] = br
        if do_consist:
            c = self.consist(out["consist_a"], out["consist_b"])
            gen = gen + w["w_consist"] * c
            metrics["consist"] = c
        if do_cross:
            c = L.CrossIdentityLoss(m["ident"])(src, out["cross"])
            gen = gen + w["w_cross_id"] * c
            metrics["cross_id"] = c
        if w["w_equiv"] > 0:
            e = self.equiv(model, drv, z_pose=out["z_pose_drv"])
            gen = gen + w["w_equiv"] * e
            metrics["equiv"] = e
        if w["w_flip"] > 0:
            f = self.flip(model, drv, out["z_pose_drv"], out["z_dyn_drv"])
            gen = gen + w["w_flip"] * f
            metrics["flip"] = f
        if w["w_decorr"] > 0 and len(src) > 1:
            d = self.decorr(torch.cat([out["z_pose_src"], out["z_pose_drv"]]),
                            torch.cat([out["z_dyn_src"], out["z_dyn_drv"]]))
            gen = gen + w["w_decorr"] * d
            metrics["decorr"] = d
        losses: dict[str, torch.Tensor] = {}
        if w["w_leak"] > 0 and len(src) > 1:  # z_dyn must not linearly predict z_pose (closed-form adversary)
            zd = torch.cat([out["z_dyn_src"], out["z_dyn_drv"]])
            zp = torch.cat([out["z_pose_src"], out["z_pose_drv"]]).detach()
            lk = self.leak(m["leak"], zd, zp)  # before leak_start too: the probe's memory fills up
            gen = gen + w["w_leak"] * leak_ramp(step, w["leak_start"], w["leak_ramp"]) * lk
            metrics["leak"] = lk
        if w["w_warp"] > 0:
            s = self.warp(out["flow_canon"], out["flow_drive"])
            gen = gen + w["w_warp"] * s
            metrics["warp"] = s
        if w["w_guide"] > 0 and "driver_guide" in batch:
            zp = torch.cat([out["z_pose_src"], out["z_pose_drv"]])
            if self.model_cfg.rot_repr != "euler":
                from vasa.latent import pose as P
                zp = P.matrix_to_euler(P.pose_rotation(zp, self.model_cfg.rot_repr))
            g = self.guide_loss(zp, torch.cat([out["z_dyn_src"], out["z_dyn_drv"]]),
                                torch.cat([batch["source_guide"], batch["driver_guide"]]))
            gen = gen + w["w_guide"] * g
            metrics["guide"] = g
        if self.sup is not None:
            s = self.sup(torch.cat([out["z_pose_src"], out["z_pose_drv"]]),
                         torch.cat([batch["source_params"], batch["driver_params"]]), self.model_cfg.rot_repr)
            gen = gen + w["w_sup_pose"] * s
            metrics["sup_pose"] = s
        if do_gan:
            D = m["disc"]
            real = D(drv)
            losses["disc"] = self.adv.discriminator(real, D(recon.detach()))
            fake = D(recon)
            g_adv, g_fm = self.adv.generator(fake), self.fm(real, fake)
            gen = gen + w["w_adv"] * g_adv + w["w_fm"] * g_fm
            metrics.update(g_adv=g_adv, fm=g_fm)
        if do_lip:  # the lips' own discriminator (vasa.latent.lip_gan)
            cond = batch["driver_guide"][:, self.guide_mouth] if self.w["lip_cond"] else None  # MediaPipe's mouth opening
            d_lip, g_lip, fm_lip = self.lip_gan(m["disc_lip"], recon, drv, batch["driver_lip"], cond)
            losses["disc"] = losses["disc"] + d_lip if "disc" in losses else d_lip
            gen = gen + w["w_lip_adv"] * g_lip + w["w_lip_fm"] * fm_lip
            metrics.update(g_lip_adv=g_lip, lip_fm=fm_lip, d_lip=d_lip)
        if do_eye:  # the eyes' own discriminator (vasa.latent.eye_gan)
            cond = batch["driver_eye_closure"] if self.w["eye_cond"] else None  # MediaPipe's pose-free eye closure
            d_eye, g_eye, fm_eye = self.eye_gan(m["disc_eye"], recon, drv, batch["driver_eyes"], cond)
            losses["disc"] = losses["disc"] + d_eye if "disc" in losses else d_eye
            gen = gen + w["w_eye_adv"] * g_eye + w["w_eye_fm"] * fm_eye
            metrics.update(g_eye_adv=g_eye, eye_fm=fm_eye, d_eye=d_eye)
        if self.eye_expert is not None:  # the eye-closure expert (vasa.latent.eye_expert): learns on the driver from
            from vasa.latent.eye_expert import EXPERT_WARMUP  # step 0, scores the render from region_adv_start

            e_loss, g_expert = self.eye_expert(m["eye_expert"], recon, drv, batch["driver_eyes"], batch["driver_eye_closure"])
            losses["eye_expert"] = e_loss
            if step >= max(region_start, EXPERT_WARMUP):
                gen = gen + w["w_eye_expert"] * g_expert
            metrics.update(eye_expert=e_loss, g_eye_expert=g_expert)
        with torch.no_grad():  # collapse monitors: spread of the motion codes over the batch
            metrics["z_pose_std"] = out["z_pose_drv"].std(0).mean() if len(drv) > 1 else out["z_pose_drv"].sum() * 0
            metrics["z_dyn_std"] = out["z_dyn_drv"].std(0).mean() if len(drv) > 1 else out["z_dyn_drv"].sum() * 0
        metrics["psnr"] = 10 * torch.log10(4.0 / ((recon.detach() - drv) ** 2).mean().clamp_min(1e-10))
        losses["gen"] = gen
        return losses, metrics

    def samples(self, m: dict[str, nn.Module], step: int) -> dict[str, np.ndarray]:
        if self._sample_batch is None:
            self._sample_batch = self._held_out_batch()
        dev = next(m["model"].parameters()).device
        batch = {k: v.to(dev) for k, v in self._sample_batch.items() if isinstance(v, torch.Tensor)}
        return {"reenactment": reenactment_grid(m["model"], batch)}

    def _held_out_batch(self) -> dict[str, torch.Tensor]:
        """Fixed pairs from the val split (held-out identities), else from train."""
        from torch.utils.data import default_collate

        for split in ("val", "train"):
            try:
                ds = FramePairs(self.corpus, split, kind="speech", size=self.sample_items, seed=self.seed + 99,
                                resize=self.resize)
            except VasaError:
                continue
            return default_collate([ds[k] for k in range(self.sample_items)])
        raise VasaError(f"no split of {self.corpus} has two identities with speech clips for the sample grid")

    def config(self) -> dict[str, Any]:
        return dict(corpus=self.corpus, size=self.size, warp_backend=self.warp_backend, kinds=self.kinds,
                    dataset_size=self.dataset_size, lr_disc=self.lr_disc, identity=self.identity,
                    seed=self.seed, guidance=self.guidance, mouth_box=self.mouth_box, eyes_box=self.eyes_box,
                    guide_targets=self.guide_targets, blend_regions=self.region_kind, blink_boost=self.blink_boost,
                    blink_threshold=self.blink_threshold, init_mot=self.init_mot, model=self.model_cfg.to_dict(),
                    **self.w)
