"""Tiny tasks for tests/test_train_loop.py; run as a script under torchrun for the DDP test.

    torchrun --nproc_per_node 2 tests/_train_toy.py OUT_DIR STEPS BATCH_PER_RANK
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vasa.train import OptimGroup, TrainTask, train


class Regression(Dataset):
    """y = sin(x W) + noise, fixed by a seed."""

    def __init__(self, n: int = 64, dim: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = torch.sin(self.x @ torch.randn(dim, 1, generator=g)) + 0.05 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class MLPTask(TrainTask):
    """A 2-layer MLP regression; ``noise`` adds input noise from the global RNG (tests RNG resume)."""

    def __init__(self, hidden: int = 16, noise: float = 0.0, n: int = 64):
        self.hidden, self.noise, self.n = hidden, noise, n

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))

    def dataset(self) -> Dataset:
        return Regression(self.n)

    def loss(self, model, batch, step):
        x = batch["x"]
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        loss = F.mse_loss(model(x), batch["y"])
        return loss, {"abs_err": (model(x) - batch["y"]).abs().mean()}

    def samples(self, models, step):
        return {"grid": np.full((8, 8), min(step, 255), np.uint8)}

    def config(self):
        return {"hidden": self.hidden, "noise": self.noise, "n": self.n}


class GANTask(TrainTask):
    """A 1-D GAN: generator maps noise to samples of N(2, 0.5); two optimizer groups."""

    def build_model(self):
        return {"gen": nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)),
                "disc": nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))}

    def optim_groups(self):
        return [OptimGroup("disc", ["disc"], lr=3e-3), OptimGroup("gen", ["gen"])]

    def ema_modules(self):
        return ["gen"]

    def dataset(self):
        g = torch.Generator().manual_seed(1)
        return [2.0 + 0.5 * torch.randn(1, generator=g) for _ in range(64)]

    def loss(self, m, real, step, group=None):  # group: only passed when alternate = True
        fake = m["gen"](torch.randn(real.shape[0], 2))
        real_logits, fake_logits = m["disc"](real), m["disc"](fake)
        d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        g = F.softplus(-fake_logits).mean()
        return {"disc": d, "gen": g}, {"fake_mean": fake.mean()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    train(MLPTask(), out_dir=out, steps=steps, batch_size=batch, lr=1e-2, log_every=1,
          checkpoint_every=0, device="cpu", progress=False)
