"""Expression classifier: a small CNN on face crops -> one of ``vasa.synth.params.EMOTIONS``.

Trained in the project on face crops (:mod:`vasa.eval.crops`) of the corpus's train clips, each
labelled with its record's ``conditions.emotion``. A clip holds one identity and one emotion, so a
plain classifier learns identities; an auxiliary head regresses the crop's ground-truth expression
parameters (smile, brow raise / furrow, eye opening, lip press: ``EXPRESSION_COLUMNS``, what the
emotions change) and makes the features about the expression. It judges the emotion control of generated
video (requested vs classified emotion) and its penultimate features feed the Fréchet distance
(:mod:`vasa.eval.fd`). A video's emotion: the argmax of the mean class probabilities over frames.

>>> net = EmotionNet(EmotionConfig())
>>> probs = predict_proba(net, crops)       # T x 5 (crops: T x S x S x 3 uint8)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vasa.eval.crops import CropSpec
from vasa.eval.expert_data import ClipArrays
from vasa.synth.params import EMOTIONS
from vasa.train import TrainTask


AUX_SCALE = 0.5  # the expression parameters' typical magnitude (they lie in [-1, 1] / [0, 1])


@dataclass
class EmotionConfig:
    crop: dict = field(default_factory=lambda: CropSpec().to_dict())
    width: int = 16
    dim: int = 64  # penultimate features
    classes: int = len(EMOTIONS)
    aux: int = 5  # expression parameters regressed by the auxiliary head (0 = none)
    aux_weight: float = 1.0

    @classmethod
    def from_dict(cls, d: dict) -> "EmotionConfig":
        return cls(**{"aux": 0, **d})  # exports from before the auxiliary head have none


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class EmotionNet(nn.Module):
    """S x S x 3 face crop -> ``dim`` features -> class logits."""

    def __init__(self, cfg: EmotionConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.body = nn.Sequential(_block(3, w, 2), _block(w, 2 * w), _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w),
                                  _block(4 * w, 8 * w, 2), _block(8 * w, 8 * w), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(8 * w, cfg.dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(cfg.dim, cfg.classes))
        self.aux = nn.Linear(cfg.dim, cfg.aux) if cfg.aux else None

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """B x S x S x 3 uint8 (or float 0..255) -> B x dim."""
        x = crops.float().div(127.5).sub(1.0).permute(0, 3, 1, 2)
        return self.body(x)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(crops))


@torch.no_grad()
def _batched(fn, crops: np.ndarray, batch: int = 256) -> torch.Tensor:
    out = [fn(torch.from_numpy(np.ascontiguousarray(crops[k:k + batch]))) for k in range(0, len(crops), batch)]
    return torch.cat(out) if out else torch.zeros(0)


def predict_proba(net: EmotionNet, crops: np.ndarray) -> np.ndarray:
    """T x S x S x 3 uint8 face crops -> T x classes probabilities."""
    net.eval()
    return _batched(lambda x: net(x).softmax(-1), crops).numpy()


def emotion_features(net: EmotionNet, crops: np.ndarray) -> np.ndarray:
    """T x S x S x 3 uint8 face crops -> T x dim penultimate features."""
    net.eval()
    return _batched(net.features, crops).numpy()


def video_emotion(net: EmotionNet, crops: np.ndarray) -> tuple[str, np.ndarray]:
    """The emotion of a video (argmax of the mean probabilities) and the mean probabilities."""
    p = predict_proba(net, crops).mean(0)
    return EMOTIONS[int(np.argmax(p))], p


class EmotionFrames(Dataset):
    """Deterministic labelled face crops: item ``k`` = one stored crop of one clip, augmented."""

    def __init__(self, data: list[ClipArrays], size: int, seed: int = 0):
        self.items = [(c, i) for c, d in enumerate(data) if d.emotion >= 0 for i in range(len(d.faces))]
        if not self.items:
            raise ValueError("no labelled face crops")
        self.data, self.size, self.seed = data, size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng((self.seed, 17, k))
        c, i = self.items[int(rng.integers(len(self.items)))]
        img = self.data[c].faces[i].astype(np.float32)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        dx, dy = rng.integers(-2, 3, 2)
        img = np.roll(img, (int(dy), int(dx)), (0, 1))
        img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15), 0, 255)
        fp = self.data[c].face_params
        aux = np.zeros(5, np.float32) if fp is None else fp[i]
        return dict(crop=torch.from_numpy(np.ascontiguousarray(img)), label=torch.tensor(self.data[c].emotion),
                    aux=torch.from_numpy(aux))


class EmotionTask(TrainTask):
    """:class:`vasa.train.TrainTask` of the expression classifier (cross-entropy, label smoothing 0.1)."""

    def __init__(self, data: list[ClipArrays], cfg: EmotionConfig, dataset_size: int, seed: int = 0):
        self.data, self.cfg, self.size, self.seed = data, cfg, dataset_size, seed

    def build_model(self) -> nn.Module:
        return EmotionNet(self.cfg)

    def dataset(self) -> Dataset:
        return EmotionFrames(self.data, self.size, self.seed)

    def loss(self, model, batch, step, **kw):
        feats = model.features(batch["crop"])
        logits = model.head(feats)
        ce = F.cross_entropy(logits, batch["label"], label_smoothing=0.1)
        metrics = {"acc": (logits.argmax(1) == batch["label"]).float().mean(), "ce": ce}
        if model.aux is None:
            return ce, metrics
        aux = F.mse_loss(model.aux(feats), batch["aux"] / AUX_SCALE)
        metrics["aux"] = aux
        return ce + self.cfg.aux_weight * aux, metrics

    def config(self) -> dict:
        return {"model": asdict(self.cfg), "clips": len(self.data), "seed": self.seed}


def clip_accuracy(net: EmotionNet, data: list[ClipArrays]) -> float:
    """Accuracy of :func:`video_emotion` on the stored face crops of labelled clips."""
    hits = [EMOTIONS.index(video_emotion(net, d.faces)[0]) == d.emotion for d in data if d.emotion >= 0]
    return float(np.mean(hits)) if hits else float("nan")
