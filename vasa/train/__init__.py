"""Training for every vasa stage: one loop, safetensors checkpoints, exact resume, DDP.

Public API::

    from vasa.train import TrainTask, OptimGroup, train, save_pretrained, load_pretrained

* :class:`TrainTask` / :class:`OptimGroup` / :func:`train` -- :mod:`vasa.train.loop`
* :func:`save_pretrained` / :func:`load_pretrained`, checkpoint folders -- :mod:`vasa.train.checkpoint`
* :class:`EMA` -- :mod:`vasa.train.ema`;  DDP helpers and the resumable sampler -- :mod:`vasa.train.dist`

Layout of ``out_dir`` after :func:`train`::

    checkpoints/step-00001000/{model,ema,state}.safetensors + trainer.json   (newest N kept)
    dvclive/metrics.json, dvclive/plots/metrics/*.tsv, dvclive/plots/images/*.png
    model/model.safetensors + config.json                                   (save_pretrained layout)

A task, with several optimizers (a GAN)::

    class FaceGAN(TrainTask):
        def build_model(self):
            return {"gen": Generator(), "disc": Discriminator(), "vgg": FrozenVGG()}
        def optim_groups(self):                     # stepped in this order; "vgg" is in no group,
            return [OptimGroup("disc", ["disc"], lr=2e-4),  # so it is not optimized
                    OptimGroup("gen", ["gen"])]     # lr=None: the global lr
        def ema_modules(self):
            return ["gen"]
        def loss(self, m, batch, step):
            fake = m["gen"](batch["src"], batch["drv"])
            real_logits, fake_logits = m["disc"](batch["drv"]), m["disc"](fake)
            d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
            g = F.softplus(-fake_logits).mean() + 10 * m["vgg"].distance(fake, batch["drv"])
            return {"disc": d, "gen": g}, {"d_real": real_logits.mean()}

One forward pass serves both losses: the loop back-propagates each group's loss into that group's
parameters only (``backward(inputs=...)``), so no ``detach`` is needed, then steps the groups in order.
Leave a group's key out of the dict to skip its update in that step (e.g. a lazy regulariser). For
strictly alternating updates (D stepped before G's forward) set ``alternate = True``: the loop then
calls ``loss(models, batch, step, group=name)`` once per group, in order, stepping after each.

Launch with several processes through ``torchrun --nproc_per_node N script.py``; nothing changes in
the task. A stage's ``dvc.yaml`` can declare ``<out_dir>/dvclive/metrics.json`` as metrics and
``<out_dir>/dvclive/plots/metrics`` as plots (x: step).
"""

from vasa.train.checkpoint import Checkpoint, latest_checkpoint, load_pretrained, save_pretrained
from vasa.train.dist import DistInfo, EpochSampler
from vasa.train.ema import EMA
from vasa.train.loop import OptimGroup, TrainTask, lr_factor, train

__all__ = ["Checkpoint", "DistInfo", "EMA", "EpochSampler", "OptimGroup", "TrainTask", "latest_checkpoint",
           "load_pretrained", "lr_factor", "save_pretrained", "train"]
