"""CAPP: a contrastive audio-pose model (VASA-1's CLIP-style judge of head motion against speech).

Two encoders map a 3 s window (75 frames at 25 fps) to unit vectors in one space:

* pose encoder: per frame the window-centred head angles (yaw, pitch, roll in degrees, / 5) and
  their velocities (degrees per frame), a linear embedding, learned positions, a transformer
  encoder (``layers``; 6 in the paper), then a *time-resolved* pooling (a strided convolution to
  ``chunks`` steps, flattened, projected): the embedding keeps *when* the head moves, so the
  similarity can reward motion that is timed with the speech;
* audio encoder: the frame-aligned log-mel (:func:`vasa.audio.features.log_mel_frames`, 320 per
  frame), two temporal convolutions, a transformer encoder, the same pooling.

Trained with the symmetric InfoNCE loss (CLIP) on windows of the corpus's train clips, with the
ground-truth angles perturbed like the face-mesh estimator that measures them at scoring time
(per-frame noise, gain, mirroring). Centring each window removes the head's rest pose (and any
constant bias of the estimator): CAPP judges motion against speech, not where the head points.

Score of a video: the mean cosine similarity of its measured pose windows with its audio windows
(windows every ``hop`` frames): :func:`capp_score`. :func:`retrieval_accuracy` checks that the
true pairing ranks first among other clips' audio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vasa.eval.expert_data import ClipArrays, clip_mel
from vasa.train import TrainTask

WINDOW = 75  # 3 s at 25 fps
POSE_NOISE_DEG = (0.5, 1.0, 0.3)  # per-frame noise added to yaw, pitch, roll in training


@dataclass
class CAPPConfig:
    window: int = WINDOW
    width: int = 64
    layers: int = 2  # pose encoder transformer layers (the paper: 6)
    audio_layers: int = 2
    heads: int = 4
    dim: int = 64  # joint embedding size
    chunks: int = 15  # time steps kept by the pooling (window / chunks frames each)
    chunk_dim: int = 16  # features per time step before the projection
    audio_dim: int = 320
    mel_mean: float = 0.0
    mel_std: float = 1.0

    @classmethod
    def from_dict(cls, d: dict) -> "CAPPConfig":
        return cls(**d)


def pose_features(angles: torch.Tensor) -> torch.Tensor:
    """B x W x 3 angles (degrees) -> B x W x 6: window-centred angles / 5 and per-frame velocities."""
    centred = angles - angles.mean(1, keepdim=True)
    vel = torch.diff(angles, dim=1, prepend=angles[:, :1])
    return torch.cat([centred / 5.0, vel], -1)


class TimePool(nn.Module):
    """B x W x C -> B x dim: a strided convolution to ``chunks`` time steps, flattened, projected."""

    def __init__(self, cfg: "CAPPConfig"):
        super().__init__()
        k = cfg.window // cfg.chunks
        self.conv = nn.Conv1d(cfg.width, cfg.chunk_dim, k, k)
        self.proj = nn.Linear(cfg.chunks * cfg.chunk_dim, cfg.dim)
        self.chunks = cfg.chunks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv(x.transpose(1, 2)))[..., : self.chunks]
        return self.proj(y.flatten(1))


def _encoder(width: int, layers: int, heads: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class CAPP(nn.Module):
    """Pose and audio encoders; ``forward`` returns the B x B logits (pose rows, audio columns)."""

    def __init__(self, cfg: CAPPConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.pose_in = nn.Linear(6, w)
        self.pose_pos = nn.Parameter(torch.randn(cfg.window, w) * 0.02)
        self.pose_enc = _encoder(w, cfg.layers, cfg.heads)
        self.pose_out = TimePool(cfg)
        self.audio_in = nn.Sequential(nn.Conv1d(cfg.audio_dim, w, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(w, w, 3, padding=1))
        self.audio_pos = nn.Parameter(torch.randn(cfg.window, w) * 0.02)
        self.audio_enc = _encoder(w, cfg.audio_layers, cfg.heads)
        self.audio_out = TimePool(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_pose(self, angles: torch.Tensor) -> torch.Tensor:
        """B x window x 3 head angles in degrees -> B x D unit vectors."""
        x = self.pose_in(pose_features(angles.float())) + self.pose_pos
        return F.normalize(self.pose_out(self.pose_enc(x)), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """B x window x 320 log-mel (raw) -> B x D unit vectors."""
        x = (mel.float() - self.cfg.mel_mean) / self.cfg.mel_std
        x = self.audio_in(x.transpose(1, 2)).transpose(1, 2) + self.audio_pos
        return F.normalize(self.audio_out(self.audio_enc(x)), dim=-1)

    def forward(self, angles: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        return scale * self.embed_pose(angles) @ self.embed_audio(mel).T


class InfoNCE:
    """Symmetric InfoNCE (CLIP): cross-entropy of the true pairing along rows and columns."""

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, dict]:
        target = torch.arange(len(logits), device=logits.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return loss, {"acc": (logits.argmax(1) == target).float().mean()}


class PoseAudioWindows(Dataset):
    """Deterministic training windows: item ``k`` = one window of one clip (angles perturbed)."""

    def __init__(self, data: list[ClipArrays], size: int, window: int = WINDOW, seed: int = 0, augment: bool = True):
        self.data = [d for d in data if len(d) >= window]
        if not self.data:
            raise ValueError(f"no clip has the {window} frames of a CAPP window")
        lens = np.array([len(d) - window + 1 for d in self.data], np.float64)
        self.p = lens / lens.sum()
        self.size, self.window, self.seed, self.augment = size, window, seed, augment

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng((self.seed, 13, k))
        c = int(rng.choice(len(self.data), p=self.p))
        d = self.data[c]
        t = int(rng.integers(len(d) - self.window + 1))
        pose = d.pose[t:t + self.window].astype(np.float64)
        if self.augment:
            pose = pose * rng.uniform(0.8, 1.2) + rng.normal(0.0, POSE_NOISE_DEG, pose.shape)
            if rng.random() < 0.5:  # mirror: yaw and roll change sign, the audio does not
                pose[:, [0, 2]] *= -1
        return dict(pose=torch.from_numpy(pose.astype(np.float32)),
                    mel=torch.from_numpy(d.mel[t:t + self.window].astype(np.float32)), clip=torch.tensor(c))


class CAPPTask(TrainTask):
    """:class:`vasa.train.TrainTask` of CAPP (symmetric InfoNCE over the batch)."""

    def __init__(self, data: list[ClipArrays], cfg: CAPPConfig, dataset_size: int, seed: int = 0):
        self.data, self.cfg, self.size, self.seed = data, cfg, dataset_size, seed
        self.criterion = InfoNCE()

    def build_model(self) -> nn.Module:
        return CAPP(self.cfg)

    def dataset(self) -> Dataset:
        return PoseAudioWindows(self.data, self.size, self.cfg.window, self.seed)

    def loss(self, model, batch, step, **kw):
        logits = model(batch["pose"], batch["mel"])
        same = batch["clip"][:, None] == batch["clip"][None, :]  # windows of one clip: not negatives
        logits = logits.masked_fill(same & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device), -1e4)
        return self.criterion(logits)

    def config(self) -> dict:
        return {"model": asdict(self.cfg), "clips": len(self.data), "seed": self.seed}


def fill_nan(angles: np.ndarray) -> np.ndarray | None:
    """Linear interpolation over frames without a measurement; None when more than half are missing."""
    a = np.asarray(angles, np.float64)
    ok = np.isfinite(a).all(1)
    if ok.sum() < max(2, len(a) // 2):
        return None
    idx = np.arange(len(a))
    return np.stack([np.interp(idx, idx[ok], a[ok, k]) for k in range(a.shape[1])], 1)


def pad_to(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat the last row until ``x`` has ``n`` rows (a clip shorter than one window)."""
    return x if len(x) >= n else np.concatenate([x, np.repeat(x[-1:], n - len(x), 0)])


def window_starts(n: int, window: int, hop: int) -> list[int]:
    """Starts of the windows of a sequence of ``n`` frames (one, padded, when n <= window)."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, hop))
    return starts if starts[-1] == n - window else starts + [n - window]


@torch.no_grad()
def capp_embeddings(model: CAPP, angles: np.ndarray, mel: np.ndarray, hop: int = 25
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose and audio embeddings of the windows of one clip: (N x D, N x D)."""
    w = model.cfg.window
    angles, mel = pad_to(np.asarray(angles), w), pad_to(np.asarray(mel), w)
    starts = window_starts(len(angles), w, hop)
    p = torch.stack([torch.as_tensor(angles[s:s + w], dtype=torch.float32) for s in starts])
    m = torch.stack([torch.as_tensor(mel[s:s + w], dtype=torch.float32) for s in starts])
    return model.embed_pose(p), model.embed_audio(m)


def capp_score(model: CAPP, angles: np.ndarray, audio: np.ndarray, hop: int = 25) -> float:
    """CAPP score of a video: T x 3 measured head angles (degrees, NaN where no face) + its 16 kHz
    audio -> mean cosine similarity of the pose windows with their audio windows (NaN when more than
    half of the frames have no face; a video shorter than a window is padded with its last frame)."""
    model.eval()
    a = fill_nan(angles)
    if a is None:
        return float("nan")
    mel = clip_mel(audio, len(a))
    pe, ae = capp_embeddings(model, a, mel, hop)
    return float((pe * ae).sum(-1).mean())


@torch.no_grad()
def retrieval_accuracy(model: CAPP, angles: list[np.ndarray], mels: list[np.ndarray]) -> float:
    """Top-1 accuracy of the true audio among all given windows' audio, from each pose window (one
    window per clip: the first ``window`` frames; shorter clips are left out)."""
    model.eval()
    w = model.cfg.window
    keep = [k for k, a in enumerate(angles) if len(a) >= w and len(mels[k]) >= w]
    angles, mels = [angles[k] for k in keep], [mels[k] for k in keep]
    if len(keep) < 2:
        return float("nan")
    p = torch.stack([torch.as_tensor(a[:w], dtype=torch.float32) for a in angles])
    m = torch.stack([torch.as_tensor(x[:w], dtype=torch.float32) for x in mels])
    sim = model.embed_pose(p) @ model.embed_audio(m).T
    return float((sim.argmax(1) == torch.arange(len(sim))).float().mean())
