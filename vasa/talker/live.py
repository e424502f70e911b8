"""Live sources for :meth:`Talker.stream`: a file fed in real time (simulation) or a microphone.

:func:`run_stream` consumes ``talker.stream`` over any chunk source (optionally writing the mp4 as
frames come) and measures it. :func:`simulate_stream` feeds a speech file in chunks at the pace it
would arrive live (chunk ``k`` is handed over when its last sample would have been spoken; when
generation falls behind, the next chunk is simply late). The figures:

The talker is warmed up first (:meth:`Talker.warmup`), as a live service would be.

* ``first_frame_latency_s``: from handing over the first chunk to the first output frame. It is
  at least the stream's algorithmic latency (``algorithmic_latency_s``: one motion window plus the
  audio encoder's look-ahead, which must be heard first) plus the time to compute that window;
* ``sustained_fps``: output frames per second after the first one (at most ~25 when generation
  keeps up: the audio arrives at 25 frames per second); ``compute_fps``: frames per second of
  compute time (waiting for audio excluded); ``keeps_up``: compute_fps >= 25;
* ``final_lag_s``: how long after the last audio sample the last frame came out.

:func:`microphone_chunks` reads 16 kHz mono chunks from the default input device with
``sounddevice`` (PortAudio); when the library or a device is missing it raises a one-line error.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from vasa.errors import VasaError
from vasa.talker.inputs import FPS, SAMPLE_RATE, load_audio


class PacedChunks:
    """Iterate ``audio`` in ``chunk_ms`` chunks released at real-time pace (``realtime=False``: at once)."""

    def __init__(self, audio: np.ndarray, chunk_ms: float = 80, realtime: bool = True, sr: int = SAMPLE_RATE):
        if not 1 <= chunk_ms <= 2000:
            raise VasaError(f"chunk size must be in [1, 2000] ms, got {chunk_ms}")
        self.audio, self.n, self.realtime, self.sr = audio, max(1, int(round(chunk_ms * sr / 1000))), realtime, sr

    def __iter__(self) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        for s in range(0, len(self.audio), self.n):
            chunk = self.audio[s:s + self.n]
            if self.realtime:
                wait = t0 + (s + len(chunk)) / self.sr - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            yield chunk


class _Tap:
    """Wraps a 16 kHz chunk source: times it, counts the time spent waiting for audio, keeps the
    samples not yet muxed (bounded by the stream's latency)."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.t_first = self.t_last = None
        self.waited = 0.0
        self.samples = 0
        self._pending: list[np.ndarray] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        it = iter(self.chunks)
        while True:
            t = time.perf_counter()
            try:
                chunk = next(it)
            except StopIteration:
                return
            now = time.perf_counter()
            if self.t_first is None:
                self.t_first = now
            else:
                self.waited += now - t
            self.t_last = now
            chunk = np.asarray(chunk, np.float32).reshape(-1)
            self.samples += len(chunk)
            self._pending.append(chunk)
            yield chunk

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples for the muxer (zeros past the end)."""
        have = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        out, rest = have[:n], have[n:]
        self._pending = [rest] if len(rest) else []
        return out if len(out) == n else np.concatenate([out, np.zeros(n - len(out), np.float32)])


def run_stream(talker, image, chunks, *, out: str | Path | None = None, **options) -> dict:
    """Consume ``talker.stream`` over 16 kHz ``chunks`` (optionally writing ``out``); returns the
    figures described in the module docstring."""
    from vasa.watermark import new_generation_id
    from vasa.watermark.embed import DISABLE_ENV

    talker.warmup(options.get("resolution", 512))  # a live service is warm before the first chunk arrives
    tap = _Tap(chunks)
    gid = options.pop("generation_id", None)
    gid = new_generation_id() if gid is None else gid
    marked = options.get("watermark", True) and DISABLE_ENV not in os.environ
    times: list[float] = []
    spf = SAMPLE_RATE // FPS
    writer = None
    with contextlib.ExitStack() as stack:
        for frame in talker.stream(tap, image=image, generation_id=gid, **options):
            times.append(time.perf_counter())
            if out is None:
                continue
            if writer is None:  # frames are marked by the stream; the file gets the tag and signature
                wm = talker.file_marker(gid) if marked else None
                writer = stack.enter_context(talker.open_writer(out, frame.shape[1], frame.shape[0], wm))
            writer.write_frame(frame)
            writer.write_audio(tap.take(spf))
    n = len(times)
    wall = times[-1] - tap.t_first
    compute = max(1e-9, wall - tap.waited)
    la = talker.stream_latency_frames(options.get("hop")) / FPS + talker.bundle.audio.cfg.stft_reach / SAMPLE_RATE
    return {
        "frames": n, "audio_s": round(tap.samples / SAMPLE_RATE, 3),
        "first_frame_latency_s": round(times[0] - tap.t_first, 4),
        "algorithmic_latency_s": round(la, 4),
        "sustained_fps": round((n - 1) / (times[-1] - times[0]), 2) if n > 1 and times[-1] > times[0] else None,
        "compute_fps": round(n / compute, 2),
        "keeps_up": bool(n / compute >= FPS),
        "final_lag_s": round(times[-1] - tap.t_last, 4),
        "wall_s": round(wall, 3),
        "out": str(out) if out is not None else None,
    }


def simulate_stream(talker, image, audio, *, chunk_ms: float = 80, realtime: bool = True,
                    out: str | Path | None = None, **options) -> dict:
    """Stream a speech file (path or array) as a live source would deliver it; see :func:`run_stream`."""
    stats = run_stream(talker, image, PacedChunks(load_audio(audio), chunk_ms, realtime), out=out, **options)
    return {**stats, "chunk_ms": chunk_ms, "realtime": realtime}


def microphone_chunks(chunk_ms: float = 80, seconds: float | None = None, device=None) -> Iterator[np.ndarray]:
    """16 kHz mono float32 chunks from a microphone (``sounddevice``), for ``seconds`` or until Ctrl-C.

    Checks eagerly: without PortAudio or an input device it raises a one-line :class:`VasaError`."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise VasaError(f"live microphone input needs sounddevice with PortAudio ({e}): install PortAudio "
                        "(e.g. apt install libportaudio2) or stream a file with --audio FILE") from None
    try:
        sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="float32")
    except Exception as e:  # noqa: BLE001 - PortAudio reports missing devices in several ways
        raise VasaError(f"no usable microphone ({e}): connect one, pick one with --device, "
                        "or stream a file with --audio FILE") from None
    return _microphone(sd, max(1, int(round(chunk_ms * SAMPLE_RATE / 1000))), seconds, device)


def _microphone(sd, n: int, seconds: float | None, device) -> Iterator[np.ndarray]:
    q: queue.Queue = queue.Queue()

    def callback(indata, frames, t, status):  # noqa: ARG001
        q.put(indata[:, 0].copy())

    total = 0
    with sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=n, device=device,
                        callback=callback):
        try:
            while seconds is None or total < seconds * SAMPLE_RATE:
                chunk = q.get()
                total += len(chunk)
                yield chunk
        except KeyboardInterrupt:
            return
