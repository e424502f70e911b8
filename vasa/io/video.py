"""mp4 I/O with PyAV: H.264 video + AAC audio, muxed, playable anywhere."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from vasa.errors import VasaError
from vasa.io.atomic import atomic_path

if TYPE_CHECKING:
    from vasa.watermark import Watermarker


def _audio_stream(out, sr: int):
    """Add a mono AAC stream (every stream must exist before the first packet is muxed)."""
    ast = out.add_stream("aac", rate=sr)
    ast.layout = "mono"
    ast.codec_context.time_base = Fraction(1, sr)
    return ast


def _mux_audio(out, ast, audio: np.ndarray, sr: int) -> None:
    """Encode mono float audio into ``ast``: 1024-sample chunks with explicit pts from 0."""
    a = np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1)
    for start in range(0, len(a), 1024):
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(a[None, start:start + 1024]), format="flt",
                                        layout="mono")
        af.sample_rate, af.pts = sr, start
        for pkt in ast.encode(af):
            out.mux(pkt)
    for pkt in ast.encode():
        out.mux(pkt)


def write_mp4(
    path: str | Path,
    frames: np.ndarray | None,  # T x H x W x 3 uint8 RGB; None writes an audio-only mp4
    fps: int = 25,
    audio: np.ndarray | None = None,  # S float32 mono in [-1, 1]
    sr: int = 16000,
    crf: int = 18,
    metadata: dict[str, str] | None = None,
    watermark: "Watermarker | None" = None,
) -> Path:
    """Write frames (and mono audio) to an H.264 + AAC mp4, atomically.

    Height and width must be even (yuv420p). The audio is written in 1024-sample chunks with
    explicit pts so both streams start at 0 and the durations match. ``frames=None`` writes the
    audio alone (an AAC-only mp4). With ``watermark`` (a :class:`vasa.watermark.Watermarker`)
    every frame is marked, its provenance tags are added to ``metadata`` and, when it carries a
    signer, the finished file is C2PA-signed before the rename.
    """
    if frames is None:
        if audio is None:
            raise VasaError("write_mp4 needs frames, audio, or both")
        t = h = w = 0
    else:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VasaError(f"write_mp4 needs T x H x W x 3 uint8 frames, got {frames.shape} {frames.dtype}")
        t, h, w, _ = frames.shape
        if h % 2 or w % 2:
            raise VasaError(f"write_mp4 needs even frame sizes for H.264, got {w}x{h}")
    path = Path(path)
    if watermark is not None:
        metadata = {**(metadata or {}), **watermark.metadata()}
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            for k, v in (metadata or {}).items():
                out.metadata[k] = v
            if frames is not None:
                vs = out.add_stream("libx264", rate=fps)
                vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
                vs.options = {"crf": str(crf), "preset": "veryfast"}
                vs.codec_context.time_base = Fraction(1, fps)
            ast = _audio_stream(out, sr) if audio is not None else None
            if frames is not None:
                for i in range(t):
                    frame = frames[i] if watermark is None else watermark.mark_frame(frames[i])
                    vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                    vf.pts = i
                    for pkt in vs.encode(vf):
                        out.mux(pkt)
                for pkt in vs.encode():
                    out.mux(pkt)
            if ast is not None:
                _mux_audio(out, ast, audio, sr)
        if watermark is not None and frames is not None:
            watermark.seal(tmp, title=path.name)
    return path


def read_mp4(path: str | Path, sr: int = 16000) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Decode an mp4: (T x H x W x 3 uint8 frames, mono float32 audio resampled to ``sr`` or None, fps)."""
    path = Path(path)
    if not path.is_file():
        raise VasaError(f"video not found: {path}")
    try:
        with av.open(str(path)) as cont:
            if not cont.streams.video:
                raise VasaError(f"{path} has no video stream")
            vstream = cont.streams.video[0]
            fps = float(vstream.average_rate or 25)
            frames = [f.to_ndarray(format="rgb24") for f in cont.decode(vstream)]
        audio = None
        with av.open(str(path)) as cont:
            if cont.streams.audio:
                res = av.AudioResampler(format="flt", layout="mono", rate=sr)
                chunks = []
                for f in cont.decode(cont.streams.audio[0]):
                    for g in res.resample(f):
                        chunks.append(g.to_ndarray().reshape(-1))
                for g in res.resample(None):
                    chunks.append(g.to_ndarray().reshape(-1))
                audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    except av.error.FFmpegError as e:
        raise VasaError(f"cannot decode {path}: {e}") from None
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8), audio, fps
