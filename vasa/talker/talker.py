"""``Talker``: one portrait + speech -> a talking-face video, offline, streaming or reenacted.

>>> talker = Talker.from_pretrained("pretrained/vasa-S")           # latent/, audio/, motion/ (bundle.py)
>>> gen = talker.generate("portrait.jpg", "speech.wav", gaze=(0, 0), emotion="happy", seed=0)
>>> gen.frames.shape, gen.audio.shape                                  # T x 512 x 512 x 3 uint8, 16 kHz
>>> gen.write("out.mp4")                                               # or generate(..., out="out.mp4")
>>> for frame in talker.stream(mic_chunks, image="portrait.jpg"):     # frames as audio arrives
...     show(frame)
>>> talker.reenact("portrait.jpg", "driver.mp4", parts=("pose",), out="pose_only.mp4")

Per frame: the motion window's ``z_pose, z_dyn`` (:mod:`vasa.talker.engine`) are decoded at the
model's resolution together with the portrait's ``V_app, z_id`` (encoded once), upscaled to
``resolution`` (bicubic; default 512, where the watermark survives re-encoding and rescaling) or
pasted back into the full photo (``paste=True``), then **watermarked** (:mod:`vasa.watermark`: on
unless the research flag turns it off). Files additionally get the provenance tag and a signed
C2PA manifest. Offline, streaming and batch generation run the same per-window code, so for a
seed their frames are identical; on CPU the result is deterministic. On CUDA the decoder runs
under bf16 autocast.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
import torch

from vasa.errors import VasaError
from vasa.latent.model import expand_source
from vasa.talker.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from vasa.talker.engine import AudioWindows, MotionWindows, iter_motion
from vasa.talker.inputs import (FPS, SAMPLE_RATE, ChunkResampler, Controls, Paster, Portrait, check_resolution,
                                even_size, load_audio, prepare_portrait)

DEFAULT_RESOLUTION = 512
DECODE_BATCH = 8  # frames decoded together (fixed: part of what makes streaming == offline)
ROBUST_MARK_SIZE = 256  # below this the watermark does not survive CRF 32 / 0.5x scaling (benchmarks/watermark.py)


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VasaError("device 'cuda' requested but CUDA is not available: use --device auto or cpu")
    return device


@dataclass
class Generation:
    """The result of :meth:`Talker.generate` / :meth:`Talker.reenact`."""

    frames: np.ndarray | None  # T x H x W x 3 uint8 RGB (watermarked); None when only written to ``path``
    audio: np.ndarray  # mono float32 at ``sr`` (padded to the video's length)
    sr: int = SAMPLE_RATE
    fps: int = FPS
    z_pose: np.ndarray | None = None  # T x pose_dim: the generated motion (de-normalised latents)
    z_dyn: np.ndarray | None = None  # T x dyn_dim
    path: Path | None = None  # the mp4 written (out=...)
    payload: object | None = None  # the watermark payload (None: unmarked, research flag)
    controls: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # model, timings
    _talker: "Talker | None" = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.info.get("frames", 0 if self.frames is None else len(self.frames)))

    def write(self, path: str | Path) -> Path:
        """Write the frames (already marked) and the audio as an mp4 with provenance."""
        if self.frames is None:
            raise VasaError("this generation kept no frames (it was written to a file): use its .path")
        return self._talker.write(path, self.frames, self.audio, payload=self.payload)

    def save_motion(self, path: str | Path) -> Path:
        """The motion trajectory as JSON: fps, pose layout, per-frame ``z_pose`` / ``z_dyn``, controls."""
        from vasa.io.atomic import write_json

        if self.z_pose is None:
            raise VasaError("this generation kept no motion trajectory")
        layout = list(getattr(self._talker.bundle.latent, "pose_layout", ())) if self._talker else []
        write_json(path, {"format": "vasa-motion-1", "fps": self.fps, "frames": int(len(self.z_pose)),
                          "pose_layout": layout, "model": self.info.get("model"), "controls": self.controls,
                          "z_pose": np.round(self.z_pose, 6).tolist(), "z_dyn": np.round(self.z_dyn, 6).tolist()},
                   indent=None)
        return Path(path)


class FrameRenderer:
    """``(z_pose, z_dyn)`` batches -> output frames of one portrait (decode, upscale or paste)."""

    def __init__(self, latent: torch.nn.Module, portrait: Portrait, resolution: int | None, paste: bool,
                 device: torch.device):
        self.latent, self.device = latent, device
        self.size = latent.cfg.image_size
        from vasa.data.frames import to_tensor

        with torch.no_grad(), self._autocast():
            x = to_tensor(portrait.face)[None].to(device)
            v, z = latent.encode_appearance(x)
            self.source = latent.encode_source(x)  # what src_blend models read of the portrait (else None)
            zp, zd = latent.encode_motion(x)
        self.V_app, self.z_id = v, z
        self.z_src = (zp.float().cpu(), zd.float().cpu())  # the portrait's own z_pose, z_dyn
        self.paster = None
        if paste:
            if portrait.square is None:
                raise VasaError("--paste needs the face crop: drop --no-crop (crop=False)")
            self.paster = Paster(even_size(portrait.image), portrait.square, self.size)
            self.out_hw = self.paster.image.shape[:2]
        else:
            r = resolution or self.size
            self.out_hw = (r, r)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def decode(self, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> np.ndarray:
        """Model-resolution frames ``B x S x S x 3`` uint8."""
        b = len(z_pose)
        with self._autocast():
            img = self.latent.decode(self.V_app.expand(b, *self.V_app.shape[1:]), self.z_id.expand(b, -1),
                                     z_pose.to(self.device), z_dyn.to(self.device), source=expand_source(self.source, b))
        x = ((img.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    def finish(self, face: np.ndarray) -> np.ndarray:
        """One model-resolution face -> the output frame."""
        if self.paster is not None:
            return self.paster(face)
        h, w = self.out_hw
        if h == self.size:
            return face
        return cv2.resize(face, (w, h), interpolation=cv2.INTER_CUBIC if h > self.size else cv2.INTER_AREA)

    def __call__(self, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> Iterator[np.ndarray]:
        for s in range(0, len(z_pose), DECODE_BATCH):
            for face in self.decode(z_pose[s:s + DECODE_BATCH], z_dyn[s:s + DECODE_BATCH]):
                yield self.finish(face)


class Session:
    """One generation in progress: ``push(samples)`` / ``finish()`` yield marked output frames."""

    def __init__(self, talker: "Talker", portrait: Portrait, controls: Controls, resolution: int | None,
                 paste: bool, watermarker, keep_motion: bool = True):
        b = talker.bundle
        self.audio = AudioWindows(b.audio, b.audio_mode, controls.hop or b.motion.cfg.window)
        self.render = FrameRenderer(b.latent, portrait, resolution, paste, talker.device)
        self.motion = MotionWindows(b.motion, b.norm, controls, self.render.z_src if b.use_ref else None)
        self.watermarker = watermarker
        if watermarker is not None and min(self.render.out_hw) < ROBUST_MARK_SIZE:
            warnings.warn(f"output {self.render.out_hw[1]}x{self.render.out_hw[0]}: the invisible watermark is robust to "
                          f"re-encoding and rescaling only from {ROBUST_MARK_SIZE} px up (the default is 512)",
                          stacklevel=3)
        self.keep_motion = keep_motion
        self.z_pose: list[torch.Tensor] = []
        self.z_dyn: list[torch.Tensor] = []
        self.frames = 0

    @property
    def payload(self):
        return None if self.watermarker is None else self.watermarker.payload

    def _run(self, samples: np.ndarray | None, finish: bool) -> Iterator[np.ndarray]:
        for _, zp, zd in iter_motion(self.audio, self.motion, samples, finish):
            if self.keep_motion:
                self.z_pose.append(zp)
                self.z_dyn.append(zd)
            for frame in self.render(zp, zd):
                if self.watermarker is not None:
                    frame = self.watermarker.mark_frame(frame)
                self.frames += 1
                yield frame

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        """Feed 16 kHz samples; yields the frames of every motion window they complete."""
        yield from self._run(samples, False)

    def finish(self) -> Iterator[np.ndarray]:
        """The audio ended: yields the remaining frames."""
        yield from self._run(None, True)

    def motion_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.z_pose:
            return None, None
        return torch.cat(self.z_pose).numpy(), torch.cat(self.z_dyn).numpy()


class Talker:
    """A loaded model bundle plus the generation front-ends (see the module docstring)."""

    def __init__(self, bundle: Bundle, device: str | torch.device | None = "auto"):
        self.device = pick_device(device)
        self.bundle = bundle
        for m in (bundle.latent, bundle.audio, bundle.motion):
            m.to(self.device).eval().requires_grad_(False)
        self.image_size = bundle.latent.cfg.image_size
        self.fps, self.sr = FPS, SAMPLE_RATE
        self._provenance = None

    @classmethod
    def from_pretrained(cls, path: str | Path = DEFAULT_BUNDLE, device: str | torch.device | None = "auto") -> "Talker":
        """Load a bundle folder (``latent/``, ``audio/``, ``motion/`` + ``norm.npz``; :mod:`vasa.talker.bundle`)."""
        return cls(load_bundle(path, device="cpu"), device)

    # ------------------------------------------------------------------ pieces
    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def max_steps(self) -> int:
        return int(self.bundle.motion.cfg.diffusion_steps)

    @property
    def latency_frames(self) -> int:
        """Audio frames (40 ms) the stream needs before its first output frame: one window plus look-ahead."""
        return self.stream_latency_frames()

    def stream_latency_frames(self, hop: int | None = None) -> int:
        """Audio frames before the first output frame with windows of ``hop`` frames (None: the model's
        window): ``hop`` plus the audio encoder's look-ahead."""
        la = self.bundle.audio.cfg.lookahead if self.bundle.audio_mode == "encoder" else 0
        return int((hop or self.bundle.motion.cfg.window) + la)

    def warmup(self, resolution: int | None = DEFAULT_RESOLUTION) -> float:
        """Run the pipeline once on silence (one motion window, 1 step, unmarked, discarded), so that
        one-time costs (library imports, the mel filterbank, kernel selection) do not delay a live
        stream's first frame. Returns the seconds it took."""
        t0 = time.perf_counter()
        s = self.image_size
        grey = np.full((s, s, 3), 128, np.uint8)
        sess = Session(self, Portrait(grey, grey, None), self.controls(steps=1), check_resolution(resolution), False,
                       None, keep_motion=False)
        spf = self.sr // self.fps
        for _ in sess.push(np.zeros(spf * (self.latency_frames + 1), np.float32)):
            pass
        return time.perf_counter() - t0

    def controls(self, **controls) -> Controls:
        """Validated :class:`~vasa.talker.inputs.Controls` (one-line errors naming the allowed range)."""
        return Controls.build(max_steps=self.max_steps, max_hop=int(self.bundle.motion.cfg.window), **controls)

    def portrait(self, image, crop: bool = True) -> Portrait:
        """Load ``image`` and cut the model's input (face detection + the ``prepare`` framing)."""
        if isinstance(image, Portrait):
            return image
        return prepare_portrait(image, self.image_size, crop=crop)

    def _provenance_writer(self):
        from vasa.watermark.provenance import Provenance

        if self._provenance is None:
            self._provenance = Provenance(self.name)
        return self._provenance

    def watermarker(self, watermark: bool = True, generation_id: int | None = None):
        """The output marker with provenance (``None`` only with the research flag: ``resolve_watermarker``)."""
        from vasa.watermark import Payload, new_generation_id, resolve_watermarker

        payload = Payload(self.bundle.model_id, new_generation_id() if generation_id is None else generation_id)
        wm = resolve_watermarker(payload, watermark)
        if wm is not None:
            from vasa.watermark.pattern import key_id

            wm.provenance = self._provenance_writer()
            wm.provenance.watermark_key_id = key_id(wm.key)
        return wm

    def file_marker(self, generation_id: int):
        """The provenance side (tag + C2PA) of a marker, for frames this talker already marked."""
        from vasa.watermark import Payload, Watermarker

        return Watermarker(Payload(self.bundle.model_id, generation_id), provenance=self._provenance_writer())

    def session(self, image, *, resolution: int | None = DEFAULT_RESOLUTION, crop: bool = True, paste: bool = False,
                watermark: bool = True, generation_id: int | None = None, keep_motion: bool = True,
                **controls) -> Session:
        """A :class:`Session` for ``image`` with validated controls (the building block of every front-end)."""
        c = self.controls(**controls)
        resolution = check_resolution(resolution)
        portrait = self.portrait(image, crop=crop)
        return Session(self, portrait, c, resolution, paste, self.watermarker(watermark, generation_id), keep_motion)

    # ------------------------------------------------------------------ offline
    def generate(self, image, audio, *, sr: int | None = None, out: str | Path | None = None,
                 motion_out: str | Path | None = None, resolution: int | None = DEFAULT_RESOLUTION,
                 crop: bool = True, paste: bool = False, watermark: bool = True, generation_id: int | None = None,
                 keep_frames: bool | None = None, progress: bool | Callable[[int, int], None] = False,
                 **controls) -> Generation:
        """Frames for the whole ``audio`` (path, array at ``sr`` or ``(array, sr)``); see :class:`Generation`.

        Controls (:class:`~vasa.talker.inputs.Controls`): ``gaze=(yaw, pitch)``, ``distance``,
        ``emotion``, ``cfg_audio``, ``cfg_gaze``, ``steps``, ``seed``, ``sampler``. With ``out`` the
        mp4 is written while generating (constant memory; frames are then not kept unless
        ``keep_frames=True``). ``progress``: True for a tqdm bar, or ``callback(done, total)``.
        """
        t0 = time.perf_counter()
        samples = load_audio(audio, sr)
        sess = self.session(image, resolution=resolution, crop=crop, paste=paste, watermark=watermark,
                            generation_id=generation_id, **controls)
        return self._run_offline(sess, samples, out, motion_out, keep_frames, progress, t0, controls)

    def _run_offline(self, sess: Session, samples: np.ndarray, out, motion_out, keep_frames, progress, t0,
                     controls) -> Generation:
        total = math.ceil(len(samples) / (self.sr // self.fps))
        spf = self.sr // self.fps
        audio = np.concatenate([samples, np.zeros(total * spf - len(samples), np.float32)])
        keep = (out is None) if keep_frames is None else keep_frames
        h, w = sess.render.out_hw
        frames = np.empty((total, h, w, 3), np.uint8) if keep else None
        bar, cb = _progress(progress, total)
        step = spf * 10  # audio fed in 0.4 s pieces (any size gives the same frames)
        i = 0
        try:
            with (self.open_writer(out, w, h, sess.watermarker) if out is not None else contextlib.nullcontext()) as writer:
                def take(frame: np.ndarray) -> None:
                    nonlocal i
                    if frames is not None:
                        frames[i] = frame
                    if writer is not None:
                        writer.write_frame(frame)
                        writer.write_audio(audio[i * spf:(i + 1) * spf])
                    i += 1
                    if cb is not None:
                        cb(i, total)

                for s in range(0, len(samples), step):
                    for frame in sess.push(samples[s:s + step]):
                        take(frame)
                for frame in sess.finish():
                    take(frame)
        finally:
            if bar is not None:
                bar.close()
        zp, zd = sess.motion_arrays()
        c = self.controls(**controls).as_dict()
        gen = Generation(frames, audio, self.sr, self.fps, zp, zd, Path(out) if out is not None else None,
                         sess.payload, c, {"model": self.name, "frames": i, "seconds": time.perf_counter() - t0,
                                           "resolution": [h, w]}, self)
        if motion_out is not None:
            gen.save_motion(motion_out)
        return gen

    def open_writer(self, path, w: int, h: int, watermarker, audio: bool = True):
        """An incremental mp4 writer for frames this talker already marked (adds tag + C2PA)."""
        from vasa.io.video import Mp4Writer

        return Mp4Writer(path, w, h, fps=self.fps, audio=audio, sr=self.sr, watermark=watermarker, premarked=True)

    def write(self, path: str | Path, frames: np.ndarray, audio: np.ndarray | None, *, payload=None,
              watermark: bool = True) -> Path:
        """Write frames + 16 kHz audio as an mp4. Frames from this talker (``payload`` given) are already
        marked: only the provenance tag and C2PA manifest are added; other frames are marked now."""
        from vasa.io.video import Mp4Writer

        frames = np.asarray(frames)
        if frames.ndim != 4:
            raise VasaError(f"frames must be T x H x W x 3 uint8, got shape {frames.shape}")
        if payload is not None:
            wm, pre = self.file_marker(payload.generation_id), True
        else:
            wm, pre = self.watermarker(watermark), False
        h, w = frames.shape[1:3]
        with Mp4Writer(path, w, h, fps=self.fps, audio=audio is not None, sr=self.sr, watermark=wm,
                       premarked=pre) as out:
            out.write_frames(frames)
            if audio is not None:
                out.write_audio(audio)
        return Path(path)

    # ------------------------------------------------------------------ streaming
    def stream(self, audio_chunks: Iterable[np.ndarray], *, image, sr: int = SAMPLE_RATE,
               resolution: int | None = DEFAULT_RESOLUTION, crop: bool = True, paste: bool = False,
               watermark: bool = True, generation_id: int | None = None, **controls) -> Iterator[np.ndarray]:
        """Yield output frames (H x W x 3 uint8, marked, 25 fps) as audio chunks (any size; 40-200 ms
        typical) arrive; the same frames as :meth:`generate` for the same seed. Memory stays constant:
        nothing but the current motion window is held. The first frame needs ``latency_frames`` of audio."""
        sess = self.session(image, resolution=resolution, crop=crop, paste=paste, watermark=watermark,
                            generation_id=generation_id, keep_motion=False, **controls)
        res = ChunkResampler(sr)
        empty = True
        for chunk in audio_chunks:
            a = res(chunk)
            if len(a):
                empty = False
                if not np.all(np.isfinite(a)):
                    raise VasaError("audio chunk contains NaN or infinite samples")
            yield from sess.push(np.clip(a, -1, 1))
        tail = res(None)
        if len(tail):
            empty = False
            yield from sess.push(np.clip(tail, -1, 1))
        if empty:
            raise VasaError("the audio stream was empty (no samples arrived)")
        yield from sess.finish()

    # ------------------------------------------------------------------ reenactment
    def reenact(self, image, driver: str | Path, *, parts: Iterable[str] = ("pose", "dyn"),
                out: str | Path | None = None, resolution: int | None = DEFAULT_RESOLUTION, crop: bool = True,
                driver_crop: bool = True, paste: bool = False, watermark: bool = True,
                generation_id: int | None = None, keep_frames: bool | None = None,
                progress: bool | Callable[[int, int], None] = False) -> Generation:
        """Transfer head pose and/or facial dynamics (``parts``) of a driving video onto the portrait.

        The driver's face is detected and cropped on every frame (the ``prepare`` framing, smoothed
        over time; ``driver_crop=False`` takes its frames as they are), encoded with ``E_mot``; the
        portrait's own ``z_pose`` / ``z_dyn`` are kept for the parts not transferred (the composition
        of :meth:`vasa.latent.LatentSpace.reenact`, with the portrait encoded once).
        """
        from vasa.talker.reenact import reenact

        return reenact(self, image, driver, parts=parts, out=out, resolution=resolution, crop=crop,
                       driver_crop=driver_crop, paste=paste, watermark=watermark, generation_id=generation_id,
                       keep_frames=keep_frames, progress=progress)


def _progress(progress, total: int):
    """(tqdm bar or None, callback or None) for ``progress`` (False, True or a callable)."""
    if callable(progress):
        return None, progress
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="frame", desc="generating")
        return bar, lambda i, n: bar.update(1)
    return None, None
