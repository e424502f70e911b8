"""The official SyncNet (Chung & Zisserman 2016, ``joonson/syncnet_python``), for users who have its weights.

The weights (``syncnet_v2.model``) cannot be downloaded here and are never downloaded by vasa. A user
who has them converts them once to safetensors (weights only, no pickle at scoring time)::

    python -m vasa.eval.syncnet_official convert syncnet_v2.model models/syncnet_v2.safetensors

and sets ``evaluate.syncnet_weights: models/syncnet_v2.safetensors``; the evaluation then reports
``S_C`` / ``S_D`` of the official model (comparable with published LSE-C / LSE-D) next to ours.

**Expected layout** of the safetensors file: the state dict of ``syncnet_python``'s
``SyncNetModel.S`` (``num_layers_in_fc_layers=1024``) with its own key names -- ``netcnnaud.{0,1,4,5,
8,9,11,12,14,15,18,19}.*`` (Conv2d / BatchNorm2d, incl. ``running_mean``, ``running_var``,
``num_batches_tracked``), ``netfcaud.{0,1,3}.*``, ``netcnnlip.{0,1,4,5,8,9,11,12,14,15,18,19}.*``
(Conv3d / BatchNorm3d), ``netfclip.{0,1,3}.*``; float32. :func:`convert` writes exactly that.

Input pipeline, as ``SyncNetInstance.evaluate`` + ``run_pipeline.crop_video``: face crops at
224 x 224 cut from the face box with crop_scale 0.4 (side 1.4 x the box's larger side, centre 0.2 x
it below the box centre, padding value 110), BGR, float 0..255; audio as 13 MFCCs at 100 Hz
(``python_speech_features.mfcc`` defaults: 25 ms rectangular window, 10 ms step, 26 filters, NFFT
512, pre-emphasis 0.97, lifter 22, c0 replaced by the log frame energy; re-implemented in
:func:`mfcc`) of the int16-scaled waveform; 20 MFCC frames per 5-frame lip window; Euclidean
distances of the raw 1024-d embeddings; edges: zero-padded embeddings (``edge="zeros"``). One
difference remains: the official pipeline's boxes come from S3FD, ours from MediaPipe.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from vasa.errors import VasaError
from vasa.eval.sync import WINDOW

CROP_SCALE = 0.4
SIZE = 224


def _conv2(cin, cout, k, s=(1, 1), p=(1, 1)):
    return [nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _conv3(cin, cout, k, s=(1, 1, 1), p=0):
    return [nn.Conv3d(cin, cout, k, s, p), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


def _fc(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNetS(nn.Module):
    """``syncnet_python``'s ``SyncNetModel.S``, layer for layer (same state-dict keys)."""

    def __init__(self, dim: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv2(1, 64, (3, 3)), nn.MaxPool2d((1, 1), (1, 1)),
            *_conv2(64, 192, (3, 3)), nn.MaxPool2d((3, 3), (1, 2)),
            *_conv2(192, 384, (3, 3)), *_conv2(384, 256, (3, 3)), *_conv2(256, 256, (3, 3)),
            nn.MaxPool2d((3, 3), (2, 2)),
            *_conv2(256, 512, (5, 4), p=(0, 0)))
        self.netfcaud = _fc(dim)
        self.netfclip = _fc(dim)
        self.netcnnlip = nn.Sequential(
            *_conv3(3, 96, (5, 7, 7), (1, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv3(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_conv3(256, 256, (1, 3, 3), p=(0, 1, 1)), *_conv3(256, 256, (1, 3, 3), p=(0, 1, 1)),
            *_conv3(256, 256, (1, 3, 3), p=(0, 1, 1)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv3(256, 512, (1, 6, 6)))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:  # B x 1 x 13 x 20
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:  # B x 3 x 5 x 224 x 224
        return self.netfclip(self.netcnnlip(x).flatten(1))


# ----------------------------------------------------------------------------- MFCC (python_speech_features)
def _hz2mel(hz):
    return 2595 * np.log10(1 + hz / 700.0)


def _mel2hz(mel):
    return 700 * (10 ** (mel / 2595.0) - 1)


def _filterbank(nfilt: int, nfft: int, sr: int, low: float, high: float) -> np.ndarray:
    pts = np.linspace(_hz2mel(low), _hz2mel(high), nfilt + 2)
    b = np.floor((nfft + 1) * _mel2hz(pts) / sr)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(int(b[j]), int(b[j + 1])):
            fb[j, i] = (i - b[j]) / (b[j + 1] - b[j])
        for i in range(int(b[j + 1]), int(b[j + 2])):
            fb[j, i] = (b[j + 2] - i) / (b[j + 2] - b[j + 1])
    return fb


def mfcc(signal: np.ndarray, sr: int = 16000, winlen: float = 0.025, winstep: float = 0.01, numcep: int = 13,
         nfilt: int = 26, nfft: int = 512, preemph: float = 0.97, ceplifter: int = 22) -> np.ndarray:
    """``python_speech_features.mfcc`` with its defaults (rectangular window, appendEnergy): N x 13."""
    from scipy.fft import dct

    x = np.asarray(signal, np.float64)
    x = np.append(x[0], x[1:] - preemph * x[:-1])
    flen, fstep = int(math.floor(winlen * sr + 0.5)), int(math.floor(winstep * sr + 0.5))
    n = 1 if len(x) <= flen else 1 + int(math.ceil((len(x) - flen) / fstep))
    x = np.concatenate([x, np.zeros((n - 1) * fstep + flen - len(x))])
    idx = np.arange(flen)[None] + fstep * np.arange(n)[:, None]
    pspec = np.abs(np.fft.rfft(x[idx], nfft)) ** 2 / nfft
    energy = pspec.sum(1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    feat = pspec @ _filterbank(nfilt, nfft, sr, 0, sr / 2).T
    feat = np.log(np.where(feat == 0, np.finfo(float).eps, feat))
    feat = dct(feat, type=2, axis=1, norm="ortho")[:, :numcep]
    feat *= 1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter)
    feat[:, 0] = np.log(energy)
    return feat


# ----------------------------------------------------------------------------- scoring interface
def official_crop(frame: np.ndarray, box: np.ndarray, size: int = SIZE) -> np.ndarray:
    """``run_pipeline.crop_video`` on one frame: the crop_scale-0.4 square of a face box, 224 x 224."""
    bs = max(box[2] - box[0], box[3] - box[1]) / 2
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bsi = int(bs * (1 + 2 * CROP_SCALE))
    f = cv2.copyMakeBorder(frame, bsi, bsi, bsi, bsi, cv2.BORDER_CONSTANT, value=(110, 110, 110))
    my, mx = cy + bsi, cx + bsi
    face = f[int(my - bs):int(my + bs * (1 + 2 * CROP_SCALE)),
             int(mx - bs * (1 + CROP_SCALE)):int(mx + bs * (1 + CROP_SCALE))]
    return cv2.resize(face, (size, size))


class OfficialSync:
    """The official SyncNet in the interface of :func:`vasa.eval.sync.sync_score`."""

    edge = "zeros"
    name = "syncnet-official"

    def __init__(self, weights: str | Path, batch: int = 20, device: str = "cpu"):
        self.model = load_official(weights).to(device).eval()
        self.batch, self.device = batch, device

    @torch.no_grad()
    def lip_embeddings(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        crops = np.stack([official_crop(f, b) for f, b in zip(frames, boxes)])[..., ::-1]  # RGB -> BGR
        vid = torch.from_numpy(np.ascontiguousarray(crops)).float().permute(3, 0, 1, 2)  # 3 x T x 224 x 224
        out = []
        for k in range(0, len(frames) - WINDOW + 1, self.batch):
            idx = range(k, min(len(frames) - WINDOW + 1, k + self.batch))
            x = torch.stack([vid[:, i:i + WINDOW] for i in idx]).to(self.device)
            out.append(self.model.forward_lip(x).cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def audio_embeddings(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        pcm = np.clip(np.asarray(audio, np.float64), -1, 1) * 32767.0
        m = torch.from_numpy(mfcc(pcm).T.astype(np.float32))  # 13 x N (100 Hz)
        need = 4 * n_frames + 16
        m = torch.nn.functional.pad(m, (0, max(0, need - m.shape[1])))
        out = []
        for k in range(0, n_frames - WINDOW + 1, self.batch):
            idx = range(k, min(n_frames - WINDOW + 1, k + self.batch))
            x = torch.stack([m[:, 4 * i:4 * i + 20] for i in idx])[:, None].to(self.device)
            out.append(self.model.forward_aud(x).cpu())
        return torch.cat(out).numpy()


def load_official(path: str | Path) -> SyncNetS:
    """The official weights from a converted safetensors file (see the module docstring)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise VasaError(f"official SyncNet weights not found at {path}: convert syncnet_v2.model with "
                        "`python -m vasa.eval.syncnet_official convert syncnet_v2.model OUT.safetensors`")
    try:
        sd = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise VasaError(f"{path} is not a safetensors file ({e})") from None
    model = SyncNetS()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise VasaError(f"{path} does not hold SyncNet weights (missing {list(missing)[:3]}, unexpected "
                        f"{list(unexpected)[:3]}): see the expected layout in vasa/eval/syncnet_official.py")
    return model


def convert(src: str | Path, out: str | Path) -> Path:
    """``syncnet_v2.model`` (a torch state dict) -> safetensors weights only (``weights_only`` load)."""
    from safetensors.torch import save_file

    sd = torch.load(str(src), map_location="cpu", weights_only=True)
    if hasattr(sd, "state_dict"):
        sd = sd.state_dict()
    sd = {k.replace("module.", "").replace("__S__.", ""): v.float() if v.is_floating_point() else v
          for k, v in sd.items()}
    SyncNetS().load_state_dict(sd, strict=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out))
    return Path(out)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "convert":
        print("usage: python -m vasa.eval.syncnet_official convert syncnet_v2.model OUT.safetensors", file=sys.stderr)
        return 2
    try:
        print(convert(args[1], args[2]))
    except VasaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
