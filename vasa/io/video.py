"""mp4 I/O with PyAV: H.264 video + AAC audio, muxed, playable anywhere."""

from __future__ import annotations

import sys
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


class Mp4Writer:
    """Incremental H.264 + AAC mp4 writer (constant memory): frames and audio as they are produced.

    >>> with Mp4Writer("out.mp4", 512, 512, audio=True, watermark=wm) as w:
    ...     for frame in frames: w.write_frame(frame)      # H x W x 3 uint8 RGB
    ...     w.write_audio(samples)                          # any number of calls, mono float32
    The file appears under its name (atomically) only when the ``with`` block ends without error;
    with ``watermark`` every frame is marked, its provenance tags are written and the finished file
    is C2PA-signed before the rename (``premarked=True``: the frames were marked already, e.g. by a
    streaming generator; only the tag and the signature are added). Audio is encoded in 1024-sample packets with explicit pts from 0.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: int = 25, audio: bool = True,
                 sr: int = 16000, crf: int = 18, metadata: dict[str, str] | None = None,
                 watermark: "Watermarker | None" = None, video: bool = True, premarked: bool = False):
        if video and (width % 2 or height % 2):
            raise VasaError(f"write_mp4 needs even frame sizes for H.264, got {width}x{height}")
        self.path, self.width, self.height, self.fps, self.sr = Path(path), width, height, fps, sr
        self.watermark = watermark
        self.premarked = premarked  # frames already carry the mark: only tag + sign
        self.metadata = {**(metadata or {}), **(watermark.metadata() if watermark is not None else {})}
        self._has_video, self._has_audio, self._crf = video, audio, crf
        self._ctx = None
        self.frames = 0
        self._audio_pts = 0
        self._pending = np.zeros(0, np.float32)

    def __enter__(self) -> "Mp4Writer":
        self._ctx = atomic_path(self.path, suffix=".mp4")
        self._tmp = self._ctx.__enter__()
        try:
            self._out = av.open(str(self._tmp), mode="w", format="mp4")
            for k, v in self.metadata.items():
                self._out.metadata[k] = v
            self._vs = None
            if self._has_video:
                vs = self._out.add_stream("libx264", rate=self.fps)
                vs.width, vs.height, vs.pix_fmt = self.width, self.height, "yuv420p"
                vs.options = {"crf": str(self._crf), "preset": "veryfast"}
                vs.codec_context.time_base = Fraction(1, self.fps)
                self._vs = vs
            self._as = _audio_stream(self._out, self.sr) if self._has_audio else None
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self

    def write_frame(self, frame: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame (marked first when a watermark is set)."""
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise VasaError(f"write_mp4 needs {self.height} x {self.width} x 3 uint8 frames, got {frame.shape} {frame.dtype}")
        if self.watermark is not None and not self.premarked:
            frame = self.watermark.mark_frame(frame)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        for pkt in self._vs.encode(vf):
            self._out.mux(pkt)
        self.frames += 1

    def write_frames(self, frames) -> None:
        for f in frames:
            self.write_frame(f)

    def write_audio(self, samples: np.ndarray) -> None:
        """Append mono float samples in [-1, 1] (encoded in 1024-sample packets; the rest waits)."""
        a = np.clip(np.asarray(samples, np.float32).reshape(-1), -1, 1)
        self._pending = np.concatenate([self._pending, a])
        n = len(self._pending) // 1024 * 1024
        self._encode_audio(self._pending[:n])
        self._pending = self._pending[n:]

    def _encode_audio(self, a: np.ndarray) -> None:
        for start in range(0, len(a), 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(a[None, start:start + 1024]), format="flt",
                                            layout="mono")
            af.sample_rate, af.pts = self.sr, self._audio_pts
            self._audio_pts += af.samples
            for pkt in self._as.encode(af):
                self._out.mux(pkt)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                if self._vs is not None:
                    for pkt in self._vs.encode():
                        self._out.mux(pkt)
                if self._as is not None:
                    self._encode_audio(self._pending)
                    for pkt in self._as.encode():
                        self._out.mux(pkt)
            self._out.close()
            if exc_type is None and self.watermark is not None and self._has_video and self.frames:
                self.watermark.seal(self._tmp, title=self.path.name)
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        return bool(self._ctx.__exit__(exc_type, exc, tb))


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
    signer, the finished file is C2PA-signed before the rename. :class:`Mp4Writer` does the same
    incrementally.
    """
    if frames is None:
        if audio is None:
            raise VasaError("write_mp4 needs frames, audio, or both")
        h = w = 0
    else:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VasaError(f"write_mp4 needs T x H x W x 3 uint8 frames, got {frames.shape} {frames.dtype}")
        h, w = frames.shape[1:3]
    with Mp4Writer(path, w, h, fps=fps, audio=audio is not None, sr=sr, crf=crf, metadata=metadata,
                   watermark=watermark, video=frames is not None) as out:
        if frames is not None:
            out.write_frames(frames)
        if audio is not None:
            out.write_audio(audio)
    return Path(path)


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
