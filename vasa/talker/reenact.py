"""Video-driven reenactment: a driving video's head pose and/or facial dynamics on a portrait.

Two passes over the driver (constant memory): (1) detect the face on every 25 fps frame and smooth
the crop squares over time exactly as ``prepare`` does (:func:`vasa.ingest.crop.crop_track`; frames
without a detection take the nearest detected box); (2) crop each frame, encode its motion with
``E_mot`` and decode it with the portrait's appearance, taking ``z_pose`` and/or ``z_dyn`` from the
driver (``parts``) and the rest from the portrait (the composition of
:meth:`vasa.latent.LatentSpace.reenact`). The driver's audio, when it has one, is muxed in.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from vasa.errors import VasaError
from vasa.latent.model import PARTS

BATCH = 8


def _open(driver: str | Path):
    from vasa.ingest.decode import DecodeError, probe

    path = Path(driver)
    if not path.is_file():
        raise VasaError(f"driving video not found: {path}")
    try:
        return path, probe(path)
    except DecodeError as e:
        raise VasaError(f"cannot read driving video {path}: {e}") from None


def _frames(path: Path, info):
    from vasa.ingest.decode import DecodeError, iter_frames

    try:
        for _, frame in iter_frames(path, info, 25):
            yield frame
    except DecodeError as e:
        raise VasaError(f"cannot decode driving video {path}: {e}") from None


def driver_track(path: Path, info):
    """Pass 1: smoothed crop squares (a :class:`vasa.ingest.crop.CropTrack`) of the driver's main face."""
    from vasa.ingest.crop import crop_track
    from vasa.talker.inputs import detect_faces

    boxes: list[np.ndarray | None] = []
    for frame in _frames(path, info):
        found = detect_faces(frame)
        boxes.append(found[0] if found else None)
    known = [k for k, b in enumerate(boxes) if b is not None]
    if not known:
        raise VasaError(f"no face found in the driving video {path.name}: use a video of one talking face, "
                        "or pass --no-driver-crop if its frames are already face crops")
    ki = np.asarray(known)
    filled = [boxes[int(ki[np.argmin(np.abs(ki - k))])] if b is None else b for k, b in enumerate(boxes)]
    return crop_track(np.stack(filled))


def _audio(path: Path, info) -> np.ndarray | None:
    from vasa.ingest.decode import DecodeError, read_audio

    if not info.has_audio:
        return None
    try:
        return read_audio(path, 16000)
    except DecodeError:
        return None


def reenact(talker, image, driver, *, parts: Iterable[str] = PARTS, out=None, resolution=512, crop=True,
            driver_crop=True, paste=False, watermark=True, generation_id=None, keep_frames=None,
            progress: bool | Callable[[int, int], None] = False):
    """See :meth:`vasa.talker.Talker.reenact`."""
    from vasa.data.frames import to_tensor
    from vasa.ingest.crop import crop as crop_square
    from vasa.talker.inputs import check_resolution
    from vasa.talker.talker import DECODE_BATCH, FrameRenderer, Generation, _progress

    parts = tuple(p.strip() for p in ([parts] if isinstance(parts, str) else parts) if p.strip())
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        raise VasaError(f"unknown part {bad[0]!r} for --parts: use pose, dyn or pose,dyn")
    resolution = check_resolution(resolution)
    portrait = talker.portrait(image, crop=crop)
    path, info = _open(driver)
    track = driver_track(path, info) if driver_crop else None
    audio = _audio(path, info)
    latent, size, dev = talker.bundle.latent, talker.image_size, talker.device
    render = FrameRenderer(latent, portrait, resolution, paste, dev)
    zp_src, zd_src = (z.to(dev) for z in render.z_src)
    wm = talker.watermarker(watermark, generation_id)
    est = int(round((info.duration_s or 0) * 25)) or (len(track) if track is not None else 0)
    bar, cb = _progress(progress, est)
    keep = (out is None) if keep_frames is None else keep_frames
    kept: list[np.ndarray] = []
    poses, dyns = [], []
    h, w = render.out_hw
    spf = 640
    n = 0
    try:
        with (talker.open_writer(out, w, h, wm, audio=audio is not None) if out is not None else contextlib.nullcontext()) as writer:
            def emit(batch: list[np.ndarray]) -> None:
                nonlocal n
                x = torch.stack([to_tensor(f) for f in batch]).to(dev)
                with torch.no_grad():
                    zp, zd = latent.encode_motion(x)
                b = len(batch)
                zp = zp if "pose" in parts else zp_src.expand(b, -1)
                zd = zd if "dyn" in parts else zd_src.expand(b, -1)
                poses.append(zp.float().cpu())
                dyns.append(zd.float().cpu())
                for s in range(0, b, DECODE_BATCH):
                    for face in render.decode(zp[s:s + DECODE_BATCH], zd[s:s + DECODE_BATCH]):
                        frame = render.finish(face)
                        if wm is not None:
                            frame = wm.mark_frame(frame)
                        if keep:
                            kept.append(frame)
                        if writer is not None:
                            writer.write_frame(frame)
                            if audio is not None:
                                writer.write_audio(_slice(audio, n * spf, (n + 1) * spf))
                        n += 1
                        if cb is not None:
                            cb(n, max(est, n))

            batch: list[np.ndarray] = []
            for k, frame in enumerate(_frames(path, info)):
                if track is not None:
                    face = crop_square(frame, track.cx[k], track.cy[k], track.side[k], size)
                else:
                    fh, fw = frame.shape[:2]  # the centred square, as it is
                    face = crop_square(frame, fw / 2, fh / 2, min(fh, fw), size)
                batch.append(face)
                if len(batch) == BATCH:
                    emit(batch)
                    batch = []
            if batch:
                emit(batch)
    finally:
        if bar is not None:
            bar.close()
    a = None if audio is None else _slice(audio, 0, n * spf)
    return Generation(np.stack(kept) if keep and kept else None, a if a is not None else np.zeros(n * spf, np.float32),
                      z_pose=torch.cat(poses).numpy(), z_dyn=torch.cat(dyns).numpy(),
                      path=Path(out) if out is not None else None, payload=None if wm is None else wm.payload,
                      controls={"parts": list(parts), "driver": str(path)},
                      info={"model": talker.name, "frames": n, "resolution": [h, w]}, _talker=talker)


def _slice(audio: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``audio[lo:hi]`` zero-padded to ``hi - lo`` samples."""
    out = np.zeros(hi - lo, np.float32)
    src = audio[lo:hi]
    out[:len(src)] = src
    return out
