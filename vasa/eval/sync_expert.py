"""Our lip-sync expert (Wav2Lip's SyncNet recipe), trained in the project on the corpus's train split.

* visual tower: the lower halves of 5 consecutive face crops, stacked on the channel axis
  (15 x S/2 x S, crops by :mod:`vasa.eval.crops`) -> conv net -> D-dim unit vector;
* audio tower: the matching 0.2 s of log-mel (20 mel frames x 80 bins, the 5 video frames'
  slots of :func:`vasa.audio.features.log_mel_frames`) -> conv net -> D-dim unit vector;
* training: cosine similarity -> ``sigmoid(scale * cos + bias)`` -> BCE, positives = aligned
  windows, negatives = the same clip's audio shifted by 2..15 frames (half of each batch).

:class:`ExpertSync` wraps a trained expert in the interface of :func:`vasa.eval.sync.sync_score`
(distances between unit embeddings, ``edge="valid"``).

>>> model = SyncExpert(SyncExpertConfig())
>>> sync = ExpertSync(model)              # lip_embeddings(frames, boxes), audio_embeddings(audio, T)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vasa.eval.crops import CropSpec, crop_faces, lower_half
from vasa.eval.expert_data import ClipArrays, clip_mel
from vasa.eval.sync import WINDOW
from vasa.train import TrainTask

N_MELS = 80
MEL_PER_FRAME = 4  # 100 Hz mel frames per 25 fps video frame


@dataclass
class SyncExpertConfig:
    crop: dict = field(default_factory=lambda: CropSpec().to_dict())
    width: int = 32  # channels of the first conv; doubled at each stride
    dim: int = 64  # embedding size
    mel_mean: float = 0.0  # log-mel normalisation (from the training data)
    mel_std: float = 1.0

    @classmethod
    def from_dict(cls, d: dict) -> "SyncExpertConfig":
        return cls(**d)


def _block(cin: int, cout: int, stride=1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _block1d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class SyncExpert(nn.Module):
    """The two towers (see the module docstring); ``forward`` returns the BCE logits of "in sync"
    for every (lip window, audio window) pair of a batch: B x B."""

    def __init__(self, cfg: SyncExpertConfig):
        super().__init__()
        self.cfg = cfg
        w, d = cfg.width, cfg.dim
        self.visual = nn.Sequential(  # 15 x S/2 x S (5 RGB frames stacked on channels)
            _block(3 * WINDOW, 2 * w, 2), _block(2 * w, 2 * w), _block(2 * w, 4 * w, 2), _block(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * w, d))
        self.audio = nn.Sequential(  # 80 mel bins (channels) x 20 mel frames (time)
            _block1d(N_MELS, 4 * w), _block1d(4 * w, 4 * w, 2), _block1d(4 * w, 8 * w, 2), _block1d(8 * w, 8 * w),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8 * w, d))
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.bias = nn.Parameter(torch.tensor(-2.0))

    def embed_lips(self, lips: torch.Tensor) -> torch.Tensor:
        """B x 5 x S/2 x S x 3 mouth crops minus the video's mean crop (float, pixel units) -> B x D."""
        x = lips.float() / 32.0
        b, t, h, w, c = x.shape
        x = x.permute(0, 1, 4, 2, 3).reshape(b, t * c, h, w)
        return F.normalize(self.visual(x), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """B x 5 x 320 stacked log-mel minus the clip's mean per mel bin -> B x D unit vectors."""
        b = mel.shape[0]
        x = mel.float() / self.cfg.mel_std
        x = x.reshape(b, WINDOW * MEL_PER_FRAME, N_MELS).transpose(1, 2)  # B x 80 x 20
        return F.normalize(self.audio(x), dim=-1)

    def forward(self, lips: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Logits of every pair: B x B (row: lip window, column: audio window)."""
        cos = self.embed_lips(lips) @ self.embed_audio(mel).T
        return self.scale * cos + self.bias


def centre_lips(lips: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """T x h x w x 3 uint8 mouth crops minus their mean over the video (float32): the static face
    is removed, the mouth's motion stays (the expert's visual input)."""
    x = lips.astype(np.float32)
    return x - (x.mean(0) if mean is None else mean)


def centre_mel(mel: np.ndarray) -> np.ndarray:
    """T x (4 x 80) stacked log-mel minus the clip's mean per mel bin (cepstral mean normalisation)."""
    x = np.asarray(mel, np.float32)
    t = len(x)
    m = x.reshape(t, MEL_PER_FRAME, N_MELS).mean((0, 1)) if t else np.zeros(N_MELS, np.float32)
    return (x.reshape(t, MEL_PER_FRAME, N_MELS) - m).reshape(t, -1)


def _windows(x: np.ndarray) -> np.ndarray:
    """T x ... -> (T - 4) x 5 x ... sliding windows (a view)."""
    v = np.lib.stride_tricks.sliding_window_view(x, WINDOW, axis=0)  # (T-4) x ... x 5
    return np.moveaxis(v, -1, 1)


class ExpertSync:
    """A trained :class:`SyncExpert` in the interface of :func:`vasa.eval.sync.sync_score`."""

    edge = "valid"
    name = "vasa-sync-expert"

    def __init__(self, model: SyncExpert, batch: int = 256, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.spec = CropSpec.from_dict(model.cfg.crop)
        self.batch, self.device = batch, device

    @torch.no_grad()
    def _run(self, fn, x: np.ndarray) -> np.ndarray:
        out = [fn(torch.from_numpy(np.ascontiguousarray(x[k:k + self.batch])).to(self.device)).cpu()
               for k in range(0, len(x), self.batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.cfg.dim), np.float32)

    def lips(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """T x S/2 x S x 3 mouth crops of the frames."""
        return lower_half(crop_faces(frames, boxes, self.spec))

    def lip_embeddings(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.lip_embeddings_from_crops(self.lips(frames, boxes))

    def lip_embeddings_from_crops(self, lips: np.ndarray) -> np.ndarray:
        """T x S/2 x S x 3 uint8 mouth crops -> (T - 4) x D window embeddings."""
        return self._run(self.model.embed_lips, _windows(centre_lips(lips)))

    def audio_embeddings(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        mel = centre_mel(clip_mel(audio, n_frames))
        return self._run(self.model.embed_audio, _windows(mel))


class SyncChunks(Dataset):
    """Deterministic training chunks: item ``k`` (depending only on ``(seed, k)``) is ``chunk``
    consecutive windows of one clip -- lips ``L x 5 x S/2 x S x 3``, mel ``L x 5 x F`` -- plus the
    clip index and the window starts, so every lip window meets its own audio (positive) and the
    same clip's audio 2 or more frames away (negatives) within one batch."""

    def __init__(self, data: list[ClipArrays], size: int, chunk: int = 24, seed: int = 0):
        self.chunk = chunk
        self.data = [d for d in data if len(d) >= chunk + WINDOW - 1]
        if not self.data:
            raise ValueError(f"no clip has the {chunk + WINDOW - 1} frames of a sync training chunk")
        lens = np.array([len(d) - chunk - WINDOW + 2 for d in self.data], np.float64)
        self.p = lens / lens.sum()
        self.size, self.seed = size, seed
        self.lip_mean = [d.lips.astype(np.float32).mean(0) for d in self.data]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng((self.seed, 11, k))
        c = int(rng.choice(len(self.data), p=self.p))
        d = self.data[c]
        t0 = int(rng.integers(len(d) - self.chunk - WINDOW + 2))
        span = slice(t0, t0 + self.chunk + WINDOW - 1)
        lips = centre_lips(d.lips[span], self.lip_mean[c]) * rng.uniform(0.8, 1.2)
        if rng.random() < 0.5:
            lips = lips[:, :, ::-1]
        mel = centre_mel(d.mel)[span]
        return dict(lips=torch.from_numpy(np.ascontiguousarray(_windows(lips))),
                    mel=torch.from_numpy(np.ascontiguousarray(_windows(mel))),
                    clip=torch.tensor(c), start=torch.arange(t0, t0 + self.chunk))


class PairBCE:
    """BCE over every (lip window, audio window) pair of one clip in a batch: target 1 for the aligned
    pair, 0 for audio 2 or more frames away, adjacent frames ignored; positives and negatives
    weighted equally (mean of each)."""

    def __init__(self, min_shift: int = 1):
        self.min_shift = min_shift

    def __call__(self, logits: torch.Tensor, clip: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, dict]:
        same = clip[:, None] == clip[None, :]
        dt = (start[:, None] - start[None, :]).abs()
        pos = same & (dt == 0)
        neg = same & (dt >= self.min_shift)
        bce = F.binary_cross_entropy_with_logits(logits, pos.float(), reduction="none")
        loss = 0.5 * (bce[pos].mean() + bce[neg].mean())
        # retrieval accuracy: the aligned audio window scores highest among the same clip's windows
        masked = logits.masked_fill(~(pos | neg), float("-inf"))
        acc = (masked.argmax(1) == torch.arange(len(logits), device=logits.device)).float().mean()
        return loss, {"acc": acc, "pos_prob": torch.sigmoid(logits[pos]).mean()}


class SyncTask(TrainTask):
    """:class:`vasa.train.TrainTask` of the sync expert (:class:`PairBCE` on scaled cosine similarity)."""

    def __init__(self, data: list[ClipArrays], cfg: SyncExpertConfig, dataset_size: int, chunk: int = 24,
                 seed: int = 0):
        self.data, self.cfg, self.size, self.chunk, self.seed = data, cfg, dataset_size, chunk, seed
        self.criterion = PairBCE()

    def build_model(self) -> nn.Module:
        return SyncExpert(self.cfg)

    def dataset(self) -> Dataset:
        return SyncChunks(self.data, self.size, self.chunk, self.seed)

    def loss(self, model, batch, step, **kw):
        lips = batch["lips"].flatten(0, 1)  # (B L) x 5 x S/2 x S x 3
        mel = batch["mel"].flatten(0, 1)
        clip = batch["clip"][:, None].expand(-1, self.chunk).reshape(-1)
        start = batch["start"].reshape(-1)
        return self.criterion(model(lips, mel), clip, start)

    def config(self) -> dict:
        return {"model": asdict(self.cfg), "clips": len(self.data), "chunk": self.chunk, "seed": self.seed}
