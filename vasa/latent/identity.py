"""The identity embedder behind VASA-1's ``l_cross_id``: trained on the corpus gallery, then frozen.

:class:`FaceIdentityNet` wraps :class:`vasa.latent.losses.IdentityEmbedder` with a fixed input
transform: a central crop (the frames are face crops), a resize to ``size`` and a soft elliptical
mask towards mid-grey. The mask matters on the generated corpus: every identity has its own
background, and an unmasked embedder learns the background instead of the face.

Training (:class:`IdentityTask`, run by the shared loop :func:`vasa.train.train`): each item is two
views of one identity -- two gallery stills (random pose and expression), or with probability
``speech_share`` two frames of one of its speech clips -- augmented by a random similarity
transform and a brightness/contrast jitter; the loss is the embedder's supervised contrastive loss
over the ``2 B`` views. :func:`verification` measures ROC-AUC and accuracy on held-out identities.

>>> net = train_identity(corpus="data/corpus", out="models/identity", work_dir="runs/identity", steps=600)
>>> net = load_identity("models/identity")          # frozen, eval mode
>>> e = net(images)                                  # B x 3 x S x S in [-1, 1] -> B x dim unit vectors
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vasa.data.corpus import Corpus
from vasa.data.frames import FramePairs, to_tensor
from vasa.errors import VasaError
from vasa.latent.losses import IdentityEmbedder
from vasa.train import TrainTask, load_pretrained, save_pretrained, train


class FaceIdentityNet(nn.Module):
    """Central crop -> resize -> elliptical mask -> :class:`IdentityEmbedder` (unit vectors B x dim)."""

    def __init__(self, size: int = 64, crop: float = 0.8, channels: tuple = (32, 64, 128, 256), dim: int = 128):
        super().__init__()
        self.size, self.crop, self.channels, self.dim = size, crop, tuple(channels), dim
        self.embedder = IdentityEmbedder(3, self.channels, dim)
        a = (torch.arange(size) + 0.5) / size * 2 - 1
        y, x = torch.meshgrid(a, a, indexing="ij")
        r = torch.sqrt((x / 0.85) ** 2 + (y / 0.95) ** 2)  # slightly taller than wide, like a face
        self.register_buffer("mask", torch.sigmoid((1.0 - r) * 12.0)[None, None], persistent=False)

    def config(self) -> dict[str, Any]:
        return dict(size=self.size, crop=self.crop, channels=list(self.channels), dim=self.dim)

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """B x 3 x S x S in [-1, 1] -> B x 3 x size x size, cropped and masked (differentiable)."""
        s = img.shape[-1]
        m = int(round(s * (1 - self.crop) / 2))
        x = img[..., m:s - m, m:s - m] if m > 0 else img
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x * self.mask

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.embedder(self.preprocess(img))

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.embedder.loss(emb, labels)


class IdentityViews(Dataset):
    """Item ``k``: ``{"views": 2 x 3 x H x W in [-1, 1], "label": identity index}`` (deterministic in k).

    Views come from the gallery stills of the split (``FramePairs`` over kind "gallery": source and
    driver are two stills of one identity) or, with probability ``speech_share``, from two frames of
    a speech clip of that split. ``size`` items (a virtual epoch; views are redrawn per index).
    """

    def __init__(self, corpus: str | Path, split: str = "train", size: int = 10_000, seed: int = 0,
                 speech_share: float = 0.3, resize: int | None = None):
        if not any(r["n_frames"] >= 2 for r in Corpus(corpus).records(split=split, kind="gallery")):
            raise VasaError(f"the identity embedder needs two gallery stills per identity in split {split!r} of "
                            f"{corpus}: generate the corpus with prepare.gallery_per_identity >= 2, or turn the "
                            "identity loss off (train_latent.w_cross_id: 0)")
        self.gallery = FramePairs(corpus, split, kind="gallery", size=size, seed=seed, resize=resize)
        self.speech = None
        if speech_share > 0 and Corpus(corpus).records(split=split, kind="speech"):
            self.speech = FramePairs(corpus, split, kind="speech", size=size, seed=seed + 1, resize=resize)
        names = set(self.gallery.identities) | set(self.speech.identities if self.speech else [])
        self.identities = sorted(names)
        self._index = {n: i for i, n in enumerate(self.identities)}
        self.size, self.seed, self.speech_share = size, seed, speech_share

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng((self.seed, 7, int(k)))
        ds = self.speech if self.speech is not None and rng.random() < self.speech_share else self.gallery
        it = ds[k]
        return dict(views=torch.stack([it["source"], it["driver"]]),
                    label=self._index[ds.identities[it["identity"]]])


def augment(img: torch.Tensor, max_rot_deg: float = 10.0, max_shift: float = 0.06, max_log_scale: float = 0.1,
            jitter: float = 0.15) -> torch.Tensor:
    """Random similarity transform + brightness/contrast jitter (global torch RNG): B x 3 x H x W."""
    B = img.shape[0]
    u = torch.rand(B, 6, device=img.device) * 2 - 1
    ang, k = u[:, 0] * math.radians(max_rot_deg), torch.exp(u[:, 3] * max_log_scale)
    c, s = torch.cos(ang) / k, torch.sin(ang) / k
    theta = torch.stack([torch.stack([c, -s, u[:, 1] * max_shift], 1), torch.stack([s, c, u[:, 2] * max_shift], 1)], 1)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    out = F.grid_sample(img, grid, padding_mode="border", align_corners=False)
    gain = (1 + jitter * u[:, 4]).view(B, 1, 1, 1)
    return (out * gain + jitter * u[:, 5].view(B, 1, 1, 1)).clamp(-1, 1)


class IdentityTask(TrainTask):
    """Supervised-contrastive training of :class:`FaceIdentityNet` on :class:`IdentityViews`."""

    def __init__(self, corpus: str, size: int = 64, dataset_size: int = 10_000, speech_share: float = 0.3,
                 seed: int = 0):
        self.corpus, self.size, self.dataset_size = str(corpus), size, dataset_size
        self.speech_share, self.seed = speech_share, seed

    def build_model(self) -> nn.Module:
        return FaceIdentityNet(self.size)

    def dataset(self) -> Dataset:
        return IdentityViews(self.corpus, "train", self.dataset_size, self.seed, self.speech_share)

    def loss(self, net, batch, step, **kw):
        views = batch["views"].flatten(0, 1)  # 2B x 3 x H x W (views of one identity adjacent)
        labels = batch["label"].repeat_interleave(2)  # 2B
        emb = net(augment(views))
        loss = net.loss(emb, labels)
        with torch.no_grad():
            sim = emb @ emb.t()
            same = labels[:, None] == labels[None, :]
            eye = torch.eye(len(emb), dtype=torch.bool, device=emb.device)
            pos, neg = sim[same & ~eye].mean(), sim[~same].mean()
        return loss, {"cos_pos": pos, "cos_neg": neg, "temperature": net.embedder.log_temp.exp()}

    def config(self) -> dict[str, Any]:
        return dict(corpus=self.corpus, size=self.size, dataset_size=self.dataset_size,
                    speech_share=self.speech_share, seed=self.seed)


def train_identity(corpus: str = "data/corpus", out: str = "models/identity", work_dir: str = "runs/identity",
                   steps: int = 600, batch: int = 32, lr: float = 1e-3, size: int = 64, speech_share: float = 0.3,
                   seed: int = 0, device: str = "auto", num_workers: int = 0, progress: bool = True) -> FaceIdentityNet:
    """Train the identity embedder (``batch`` identities x 2 views per step), export it to ``out``
    (``save_pretrained``: model.safetensors + config.json) and return it frozen. Resumes from
    ``work_dir``; an existing export made with the same settings is reused as is."""
    from vasa.train.checkpoint import prepare_run_dir

    task = IdentityTask(corpus, size, steps * batch, speech_share, seed)
    prepare_run_dir(work_dir, dict(task=task.config(), steps=steps, batch=batch, lr=lr))
    if Path(out, "config.json").is_file():
        try:
            cfg, _ = load_pretrained(out)
            if cfg.get("task") == task.config() and cfg.get("steps") == steps:
                return load_identity(out, device="cpu")
        except VasaError:
            pass
    train(task, out_dir=work_dir, steps=steps, batch_size=batch, lr=lr, warmup_steps=min(50, steps // 10),
          lr_schedule="cosine", grad_clip=5.0, log_every=max(1, min(25, steps // 4)), seed=seed, device=device,
          num_workers=num_workers, checkpoint_every=max(100, steps // 4), progress=progress, export=False)
    net = build_identity_from_checkpoint(work_dir, task)
    save_pretrained(out, net, {"net": net.config(), "task": task.config(), "steps": steps})
    return net.eval().requires_grad_(False)


def build_identity_from_checkpoint(work_dir: str | Path, task: IdentityTask) -> FaceIdentityNet:
    """The net of the newest checkpoint in ``work_dir`` (live weights; this task keeps no EMA)."""
    from vasa.train import Checkpoint, latest_checkpoint
    from vasa.train.checkpoint import load_module_tensors

    path = latest_checkpoint(Path(work_dir) / "checkpoints")
    if path is None:
        raise VasaError(f"no identity checkpoint in {work_dir}: train it first")
    net = task.build_model()
    load_module_tensors({"model": net}, Checkpoint(path).weights)
    return net


def load_identity(directory: str | Path = "models/identity", device: str = "cpu") -> FaceIdentityNet:
    """The exported identity embedder, frozen and in eval mode."""
    cfg, _ = load_pretrained(directory)
    n = cfg["net"]
    net = FaceIdentityNet(n["size"], n["crop"], tuple(n["channels"]), n["dim"])
    load_pretrained(directory, net)
    return net.to(device).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- verification
def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve of scores (positives should score higher), ties counted half."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks of ties
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def gallery_embeddings(embed, corpus: str | Path, split: str, max_identities: int = 200,
                       batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (N x d) and identity labels (N,) of the gallery stills of ``split``.

    ``embed``: a function from a list of RGB uint8 images to N x d unit vectors."""
    c = Corpus(corpus)
    recs = sorted(c.records(split=split, kind="gallery"), key=lambda r: r["id"])[:max_identities]
    if len(recs) < 2:
        raise VasaError(f"split {split!r} of {corpus} has fewer than 2 gallery identities: verification needs 2+")
    images, labels = [], []
    for i, r in enumerate(recs):
        frames = c.shard(r["shard"]).frames(r["index"])
        images += list(frames)
        labels += [i] * len(frames)
    embs = [embed(images[k:k + batch]) for k in range(0, len(images), batch)]
    return np.concatenate(embs), np.array(labels)


def pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of all same-identity pairs and all different-identity pairs (i < j)."""
    sim = emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    same = labels[iu[0]] == labels[iu[1]]
    return sim[iu][same], sim[iu][~same]


def best_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """Threshold maximising the balanced accuracy (mean of the true-positive and true-negative rates)."""
    cand = np.unique(np.concatenate([pos, neg]))
    acc = [((pos >= t).mean() + (neg < t).mean()) / 2 for t in cand]
    return float(cand[int(np.argmax(acc))])


def verification(embed, corpus: str | Path, fit_split: str = "val", eval_split: str = "test",
                 max_identities: int = 200) -> dict[str, float]:
    """Face verification on held-out identities: ROC-AUC on ``eval_split`` and balanced accuracy at
    the threshold chosen on ``fit_split`` (both splits' identities are disjoint from training)."""
    pf, nf = pair_scores(*gallery_embeddings(embed, corpus, fit_split, max_identities))
    pe, ne = pair_scores(*gallery_embeddings(embed, corpus, eval_split, max_identities))
    t = best_threshold(pf, nf)
    return dict(roc_auc=roc_auc(pe, ne), accuracy=float(((pe >= t).mean() + (ne < t).mean()) / 2),
                threshold=t, pairs_pos=int(len(pe)), pairs_neg=int(len(ne)),
                cos_pos=float(pe.mean()), cos_neg=float(ne.mean()))


def net_embed_fn(net: FaceIdentityNet, device: str = "cpu"):
    """``embed(list of uint8 images) -> N x d`` for :func:`verification` from a :class:`FaceIdentityNet`."""
    def embed(images):
        x = torch.stack([to_tensor(np.asarray(im)) for im in images]).to(device)
        with torch.no_grad():
            return net(x).cpu().numpy()
    return embed
