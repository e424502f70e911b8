"""Decode any video PyAV reads into 25 fps frames and 16 kHz mono audio on one shared clock.

Frame rate conversion is by presentation time: output frame ``k`` is the source frame on screen at
``t = k / fps`` (the last one whose timestamp is <= t), computed with exact fractions from the
stream's time base, so 30, 29.97, 50, 60 fps or variable-frame-rate input all map without drift.
Audio is resampled by libswresample to 16 kHz mono and placed on the same clock: time 0 is the
first video frame's timestamp, audio that starts later is padded with silence and audio that
starts earlier is trimmed. Output sample ``k * sr / fps`` therefore belongs with frame ``k``.

Frames larger than ``max_side`` on their longest side (4K and up) are scaled down while decoding
(libswscale), which bounds memory and time; labels are measured in these decoded coordinates.
Problems become :class:`DecodeError` with a short reason code that the skip report uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np


class DecodeError(Exception):
    """A video that cannot be used; ``reason`` is a short code for the skip report."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class MediaInfo:
    """What a container holds, from its headers."""

    width: int  # decoded frame size (after the max_side reduction)
    height: int
    src_width: int
    src_height: int
    src_fps: float
    duration_s: float | None  # container duration, when known
    has_audio: bool
    audio_rate: int | None
    codec: str


def _why(err: Exception, path: str | Path) -> str:
    """First line of an FFmpeg error, without the (long, machine-specific) file path."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return msg.replace(f": '{path}'", "").replace(str(path), Path(path).name)[:200]


def _scaled(w: int, h: int, max_side: int) -> tuple[int, int]:
    s = min(1.0, max_side / max(w, h))
    # even sizes keep every later resize and the H.264 writer happy
    return max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)


def probe(path: str | Path, max_side: int = 1920) -> MediaInfo:
    """Open ``path`` and read its stream headers (raises DecodeError)."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError("missing file", str(path))
    try:
        with av.open(str(path)) as cont:
            if not cont.streams.video:
                raise DecodeError("no video stream")
            vs = cont.streams.video[0]
            w, h = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
            if w <= 0 or h <= 0:
                raise DecodeError("unreadable", "video stream without a frame size")
            rate = vs.average_rate or vs.base_rate or vs.guessed_rate
            dur = float(cont.duration / av.time_base) if cont.duration else None
            aud = cont.streams.audio[0] if cont.streams.audio else None
            ow, oh = _scaled(w, h, max_side)
            return MediaInfo(width=ow, height=oh, src_width=w, src_height=h, src_fps=float(rate or 0.0),
                             duration_s=dur, has_audio=aud is not None,
                             audio_rate=int(aud.rate) if aud is not None and aud.rate else None,
                             codec=vs.codec_context.name)
    except DecodeError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DecodeError("unreadable", _why(e, path)) from None


def _time(frame: av.VideoFrame | av.AudioFrame, fallback: Fraction) -> Fraction:
    if frame.pts is not None and frame.time_base is not None:
        return Fraction(frame.pts) * Fraction(frame.time_base)
    return fallback


def iter_frames(path: str | Path, info: MediaInfo, fps: int = 25) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, RGB frame)`` for k = 0, 1, ... at ``fps`` (see module docstring).

    A stream that breaks off (a truncated file) ends the iteration at the last good frame; a
    stream that yields no frame at all raises DecodeError.
    """
    step = Fraction(1, fps)
    src_step = Fraction(1, max(1, round(info.src_fps))) if info.src_fps > 0 else step
    k, t0, prev, prev_t, n_src = 0, None, None, None, 0
    try:
        with av.open(str(path)) as cont:
            vs = cont.streams.video[0]
            vs.thread_type = "AUTO"
            for fr in cont.decode(vs):
                t = _time(fr, (prev_t + src_step) if prev_t is not None else Fraction(0))
                if t0 is None:
                    t0 = t
                t -= t0
                if prev_t is not None and t <= prev_t:  # non-monotonic timestamps: assume one frame step
                    t = prev_t + src_step
                img = fr.to_ndarray(width=info.width, height=info.height, format="rgb24") \
                    if (fr.width, fr.height) != (info.width, info.height) else fr.to_ndarray(format="rgb24")
                n_src += 1
                if prev is not None:
                    while k * step < t:
                        yield k, prev
                        k += 1
                prev, prev_t = img, t
    except (av.error.FFmpegError, OSError) as e:
        if prev is None:
            raise DecodeError("unreadable", _why(e, path)) from None
    if prev is None:
        raise DecodeError("no frames", "the video stream holds no decodable frame")
    last_dur = src_step
    while k * step < prev_t + last_dur:
        yield k, prev
        k += 1


def video_start(path: str | Path) -> Fraction:
    """Timestamp of the first decodable video frame (the shared clock's zero)."""
    with av.open(str(path)) as cont:
        for fr in cont.decode(cont.streams.video[0]):
            return _time(fr, Fraction(0))
    return Fraction(0)


def read_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """The first audio stream as mono float32 at ``sr``, on the video's clock (see module docstring).

    A stream that breaks off returns what decoded; no audio at all raises DecodeError.
    """
    t_video = video_start(path)
    chunks: list[np.ndarray] = []
    t_audio: Fraction | None = None
    try:
        with av.open(str(path)) as cont:
            if not cont.streams.audio:
                raise DecodeError("no audio stream")
            res = av.AudioResampler(format="flt", layout="mono", rate=sr)
            try:
                for fr in cont.decode(cont.streams.audio[0]):
                    if t_audio is None:
                        t_audio = _time(fr, t_video)
                    for g in res.resample(fr):
                        chunks.append(g.to_ndarray().reshape(-1))
            except (av.error.FFmpegError, OSError):
                pass  # truncated audio: keep what decoded
            for g in res.resample(None):
                chunks.append(g.to_ndarray().reshape(-1))
    except DecodeError:
        raise
    except (av.error.FFmpegError, OSError) as e:
        raise DecodeError("unreadable", _why(e, path)) from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise DecodeError("no audio stream", "the audio stream holds no decodable samples")
    shift = int(round(float((t_audio - t_video) * sr))) if t_audio is not None else 0
    if shift > 0:
        audio = np.concatenate([np.zeros(shift, np.float32), audio])
    elif shift < 0:
        audio = audio[-shift:]
    return audio
