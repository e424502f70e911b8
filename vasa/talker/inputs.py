"""Inputs of generation: portrait loading, face crop / align / paste-back, audio loading, controls.

* **Portrait**: any image PIL or OpenCV reads (EXIF orientation applied, alpha composited on white,
  grey expanded to RGB), or an array. The face is found with the ingestion detector
  (:class:`vasa.ingest.detect.FaceDetector`: MediaPipe short/full range, haar fallback) and cut with
  the same square framing as ``prepare`` (:func:`vasa.ingest.crop.crop_track` + :func:`~vasa.ingest.crop.crop`),
  so a user photo is framed like the training clips. Several faces: the largest is used (a warning
  names it). ``crop=False`` uses the image as is (resized to a square). :func:`paste_back` puts a
  generated face back into the full image with a feathered seam.
* **Audio**: anything soundfile or PyAV decodes (wav, flac, ogg, mp3, m4a, the audio of a video), any
  rate (resampled to 16 kHz), any channel count (averaged to mono).
* **Controls** (:class:`Controls`): validated with one-line errors that name the allowed range.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vasa.errors import VasaError
from vasa.synth.params import EMOTIONS

SAMPLE_RATE = 16000
FPS = 25
DETECT_SIDE = 640  # faces are detected on a copy scaled to this longest side (as ingestion does)

# Allowed control ranges (the training corpus covers gaze |yaw| <= 20, |pitch| <= 12 degrees and
# distance 0.8 - 1.25; beyond that the model extrapolates).
GAZE_YAW_RANGE = (-30.0, 30.0)
GAZE_PITCH_RANGE = (-25.0, 25.0)
DISTANCE_RANGE = (0.5, 2.0)
CFG_RANGE = (0.0, 10.0)
RESOLUTION_RANGE = (64, 2048)


# ----------------------------------------------------------------------------------------- images
def load_image(image) -> np.ndarray:
    """A path, PIL image or array -> H x W x 3 uint8 RGB (one-line error when unreadable)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise VasaError(f"image not found: {path}")
        try:
            from PIL import Image, ImageOps

            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                arr = _pil_rgb(im)
        except Exception:  # noqa: BLE001 - PIL raises many types; OpenCV may still read it
            arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if arr is None:
                raise VasaError(f"cannot read image {path}: not an image format PIL or OpenCV understands "
                                "(use PNG or JPEG)") from None
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        return _check_image(arr, str(path))
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL
        return _check_image(_pil_rgb(image), "image")
    return _check_image(_array_rgb(np.asarray(image)), "image")


def _pil_rgb(im) -> np.ndarray:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"))


def _array_rgb(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number):
            raise VasaError(f"image array must be numeric, got {a.dtype}")
        a = np.clip(a * 255.0 if a.size and float(np.nanmax(a)) <= 1.0 else a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 4:
        alpha = a[..., 3:].astype(np.float32) / 255.0
        a = (a[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a


def _check_image(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim != 3 or a.shape[-1] != 3 or min(a.shape[:2]) < 16:
        raise VasaError(f"{name}: expected an RGB image of at least 16 x 16 pixels, got shape {a.shape}")
    return np.ascontiguousarray(a)


@dataclass
class Portrait:
    """A prepared source image: the model-size ``face`` crop and where it came from."""

    face: np.ndarray  # S x S x 3 uint8: what the model sees
    image: np.ndarray  # the full input image (H x W x 3 uint8)
    square: tuple[float, float, float] | None  # (cx, cy, side) of the crop in image pixels; None = no crop
    faces_found: int = 0


_DETECTOR = None


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (MediaPipe / TFLite / absl log lines written from C++)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some notebook frontends)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _detector():
    global _DETECTOR
    if _DETECTOR is None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        with quiet_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from vasa.ingest.detect import FaceDetector

            _DETECTOR = FaceDetector()
    return _DETECTOR


def detect_faces(image: np.ndarray) -> list[np.ndarray]:
    """Face boxes (x0, y0, x1, y1 in ``image`` pixels, MediaPipe's convention), largest first."""
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    small = image if scale >= 1.0 else cv2.resize(image, (max(2, round(w * scale)), max(2, round(h * scale))),
                                                 interpolation=cv2.INTER_AREA)
    det = _detector()
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = det.detect(small)
    return [d.box / scale for d in found]


def face_square(image: np.ndarray) -> tuple[tuple[float, float, float], int]:
    """The crop square ``(cx, cy, side)`` of the largest face, framed like ``prepare``; and the face count."""
    from vasa.ingest.crop import crop_track

    boxes = detect_faces(image)
    if not boxes:
        raise VasaError("no face found in the portrait: use a photo with one clearly visible, roughly frontal face, "
                        "or pass --no-crop (crop=False) to use the image as is")
    box = boxes[0]
    if len(boxes) > 1:
        x0, y0, x1, y1 = box
        warnings.warn(f"{len(boxes)} faces found in the portrait: using the largest one "
                      f"(box x={x0:.0f}..{x1:.0f}, y={y0:.0f}..{y1:.0f} px)", stacklevel=3)
    t = crop_track(np.asarray(box)[None])
    return (float(t.cx[0]), float(t.cy[0]), float(t.side[0])), len(boxes)


def prepare_portrait(image, size: int, crop: bool = True) -> Portrait:
    """Load ``image``, find the face and cut the model's ``size`` x ``size`` input (see module docstring)."""
    from vasa.ingest.crop import crop as crop_square

    img = load_image(image)
    if not crop:
        face = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if min(img.shape[:2]) > size
                          else cv2.INTER_CUBIC)
        return Portrait(face, img, None, 0)
    square, n = face_square(img)
    return Portrait(crop_square(img, *square, size), img, square, n)


def feather_mask(size: int, margin: float = 0.06) -> np.ndarray:
    """``size`` x ``size`` float32 weights: 1 inside, a smooth ramp to 0 over ``margin`` of the side."""
    m = max(1.0, margin * size)
    u = (np.arange(size) + 0.5)
    ramp = np.clip(np.minimum(u, size - u) / m, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


class Paster:
    """Pastes generated faces back into the full image at the crop square (feathered seam)."""

    def __init__(self, image: np.ndarray, square: tuple[float, float, float], face_size: int,
                 margin: float = 0.06):
        self.image = image
        self.h, self.w = image.shape[:2]
        cx, cy, side = square
        k = side / face_size
        x0, y0 = cx - side / 2, cy - side / 2
        # crop pixel index -> image pixel index (pixel centres), the inverse of vasa.ingest.crop.crop
        self.M = np.array([[k, 0.0, x0 - 0.5 + 0.5 * k], [0.0, k, y0 - 0.5 + 0.5 * k]], np.float64)
        self.size = face_size
        alpha = cv2.warpAffine(feather_mask(face_size, margin), self.M, (self.w, self.h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self.alpha = alpha[..., None]
        ys, xs = np.nonzero(alpha > 0)
        self.region = (0, 0, 0, 0) if len(xs) == 0 else (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        self._base = image.astype(np.float32)

    def __call__(self, face: np.ndarray) -> np.ndarray:
        if face.shape[0] != self.size:
            face = cv2.resize(face, (self.size, self.size), interpolation=cv2.INTER_AREA)
        y0, y1, x0, x1 = self.region
        out = self.image.copy()
        if y1 <= y0:
            return out
        M = self.M.copy()
        M[:, 2] -= (x0, y0)
        interp = cv2.INTER_CUBIC if M[0, 0] > 1 else cv2.INTER_AREA
        warped = cv2.warpAffine(face, M, (x1 - x0, y1 - y0), flags=interp, borderMode=cv2.BORDER_REPLICATE)
        a = self.alpha[y0:y1, x0:x1]
        blend = a * warped.astype(np.float32) + (1 - a) * self._base[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        return out


def paste_back(image: np.ndarray, face: np.ndarray, square: tuple[float, float, float], margin: float = 0.06) -> np.ndarray:
    """``face`` (a crop of ``image`` at ``square``, any size) pasted back into ``image`` (feathered)."""
    return Paster(image, square, face.shape[0], margin)(face)


def even_size(image: np.ndarray) -> np.ndarray:
    """Drop a last row / column so both sides are even (H.264 4:2:0 needs it)."""
    h, w = image.shape[:2]
    return image[:h - h % 2, :w - w % 2]


# ----------------------------------------------------------------------------------------- audio
def resample(audio: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of mono float audio (exact rational ratio)."""
    if sr == target:
        return np.asarray(audio, np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), int(target))
    return resample_poly(np.asarray(audio, np.float64), target // g, int(sr) // g).astype(np.float32)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(S,), (S, C) or (C, S) -> (S,) float32 (channels averaged; integer PCM scaled to [-1, 1])."""
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1 if a.shape[1] <= a.shape[0] else 0)  # channels: the shorter axis
    if a.ndim != 1:
        raise VasaError(f"audio must be (samples,) or (samples, channels), got shape {np.shape(audio)}")
    return a


def load_audio(audio, sr: int | None = None) -> np.ndarray:
    """A path or an array (``sr`` default 16 kHz) -> mono float32 at 16 kHz; one-line error if unreadable/empty."""
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.is_file():
            raise VasaError(f"audio not found: {path}")
        a, rate = _read_audio_file(path)
        name = str(path)
    else:
        if isinstance(audio, tuple) and len(audio) == 2 and np.isscalar(audio[1]):
            audio, sr = audio
        a, rate, name = to_mono(audio), int(sr or SAMPLE_RATE), "audio"
    if not np.all(np.isfinite(a)):
        raise VasaError(f"{name}: audio contains NaN or infinite samples")
    a = resample(a, rate)
    if len(a) == 0:
        raise VasaError(f"{name}: the audio is empty (0 samples): give a speech clip of at least 40 ms")
    return np.clip(a, -1.0, 1.0).astype(np.float32)


def _read_audio_file(path: Path) -> tuple[np.ndarray, int]:
    try:
        import soundfile as sf

        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return data.mean(axis=1).astype(np.float32), int(rate)
    except Exception:  # noqa: BLE001 - fall back to PyAV (mp3, m4a, video files, ...)
        pass
    import av

    try:
        with av.open(str(path)) as cont:
            if not cont.streams.audio:
                raise VasaError(f"{path} has no audio stream")
            res = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = []
            for f in cont.decode(cont.streams.audio[0]):
                chunks.extend(g.to_ndarray().reshape(-1) for g in res.resample(f))
            chunks.extend(g.to_ndarray().reshape(-1) for g in res.resample(None))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VasaError(f"cannot read audio {path}: not an audio format soundfile or PyAV decodes ({e})") from None
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)).astype(np.float32), SAMPLE_RATE


class ChunkResampler:
    """Streaming resampler to 16 kHz mono (stateful, PyAV/libswresample); identity at 16 kHz."""

    def __init__(self, sr: int):
        self.sr = int(sr)
        self._res = None
        if self.sr != SAMPLE_RATE:
            import av

            self._res = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            self._pts = 0

    def __call__(self, chunk: np.ndarray | None) -> np.ndarray:
        if self._res is None:
            return np.zeros(0, np.float32) if chunk is None else to_mono(chunk)
        import av

        if chunk is None:
            frames = self._res.resample(None)
        else:
            c = to_mono(chunk)
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(c[None]), format="flt", layout="mono")
            f.sample_rate, f.pts = self.sr, self._pts
            self._pts += len(c)
            frames = self._res.resample(f)
        out = [g.to_ndarray().reshape(-1) for g in frames]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


# ----------------------------------------------------------------------------------------- controls
def parse_emotion(emotion) -> np.ndarray | None:
    """``None``, a name, ``"name=w[,name=w]"`` or ``{name: w}`` -> the emotion condition ``e`` (or None).

    A bare name means intensity 1.0 ("neutral" means no expression: intensity 0). Weights are in
    [0, 1] and sum to at most 1; ``e`` = sum of ``w * one-hot(name)`` plus the summed intensity.
    """
    if emotion is None or (isinstance(emotion, str) and emotion.strip().lower() in ("", "none")):
        return None
    if isinstance(emotion, str):
        weights: dict[str, float] = {}
        for part in emotion.split(","):
            name, eq, w = part.strip().partition("=")
            try:
                weights[name.strip().lower()] = float(w) if eq else 1.0
            except ValueError:
                raise VasaError(f"emotion weight {w!r} is not a number (use e.g. happy=0.6,surprised=0.3)") from None
    elif isinstance(emotion, dict):
        weights = {str(k).lower(): float(v) for k, v in emotion.items()}
    else:
        raise VasaError(f"emotion must be a name or name=weight pairs, got {emotion!r}")
    from vasa.motion.conditions import EMOTION_DIM, encode_emotion

    e = np.zeros(EMOTION_DIM, np.float32)
    for name, w in weights.items():
        if name not in EMOTIONS:
            raise VasaError(f"unknown emotion {name!r}: choose from {', '.join(EMOTIONS)} "
                            "(or weights like happy=0.6,sad=0.2)")
        if not 0.0 <= w <= 1.0:
            raise VasaError(f"emotion weight of {name} must be in [0, 1], got {w}")
        if name != "neutral":
            e += encode_emotion(name, w)
    if e[-1] > 1.0 + 1e-6:
        raise VasaError(f"emotion weights must sum to at most 1, got {e[-1]:.3f}")
    return e


def parse_gaze(gaze) -> tuple[float, float] | None:
    """``"YAW,PITCH"`` (degrees), a pair, or None (the gaze condition dropped)."""
    if gaze is None or (isinstance(gaze, str) and gaze.strip().lower() == "none"):
        return None
    if isinstance(gaze, str):
        parts = gaze.replace(" ", "").split(",")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != 2:
            raise VasaError(f"gaze must be YAW,PITCH in degrees (e.g. 10,-5), got {gaze!r}")
        return vals[0], vals[1]
    g = tuple(float(v) for v in gaze)
    if len(g) != 2:
        raise VasaError(f"gaze must be (yaw, pitch) in degrees, got {gaze!r}")
    return g


def _in_range(name: str, v: float, lo: float, hi: float, unit: str = "") -> float:
    if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and lo <= v <= hi):
        raise VasaError(f"{name} must be in [{lo:g}, {hi:g}]{unit}, got {v}")
    return float(v)


@dataclass
class Controls:
    """Generation controls (defaults: the paper's: forward gaze, nominal distance, no emotion, CFG 0.5 / 1.0, 50 steps).

    ``gaze`` (yaw, pitch) degrees in ``GAZE_YAW_RANGE`` x ``GAZE_PITCH_RANGE`` or None (dropped);
    ``distance`` in ``DISTANCE_RANGE`` (1.0 nominal) or None; ``emotion`` see :func:`parse_emotion`;
    ``cfg_audio`` / ``cfg_gaze`` in ``CFG_RANGE``; ``steps`` 1 .. the model's diffusion steps;
    ``sampler`` one of ``vasa.motion.SAMPLERS``; ``seed`` >= 0; ``hop``: frames generated per motion
    window, 1 .. the model's window ``W`` (None = ``W``: the offline default; a smaller hop cuts a live
    stream's latency to ``hop`` frames of audio at ``W / hop`` times the motion cost).
    """

    gaze: tuple[float, float] | str | None = (0.0, 0.0)
    distance: float | None = 1.0
    emotion: str | dict | None = None
    cfg_audio: float = 0.5
    cfg_gaze: float = 1.0
    steps: int = 50
    seed: int = 0
    sampler: str = "ddim"
    hop: int | None = None
    emotion_vector: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, max_steps: int | None = None, max_hop: int | None = None, **kw) -> "Controls":
        unknown = set(kw) - {f for f in cls.__dataclass_fields__ if f != "emotion_vector"}
        if unknown:
            raise VasaError(f"unknown control {sorted(unknown)[0]!r} (allowed: gaze, distance, emotion, cfg_audio, "
                            "cfg_gaze, steps, seed, sampler, hop)")
        c = cls(**{k: v for k, v in kw.items() if v is not None or k in ("gaze", "distance", "emotion")})
        return c.validated(max_steps, max_hop)

    def validated(self, max_steps: int | None = None, max_hop: int | None = None) -> "Controls":
        from vasa.motion.sampling import SAMPLERS

        g = parse_gaze(self.gaze)
        if g is not None:
            g = (_in_range("gaze yaw", g[0], *GAZE_YAW_RANGE, " degrees"),
                 _in_range("gaze pitch", g[1], *GAZE_PITCH_RANGE, " degrees"))
        d = None if self.distance is None else _in_range("distance", self.distance, *DISTANCE_RANGE,
                                                         " (1.0 = nominal)")
        hi = max_steps or 1000
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or not 1 <= self.steps <= hi:
            raise VasaError(f"steps must be an integer in [1, {hi}], got {self.steps}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise VasaError(f"seed must be an integer >= 0, got {self.seed}")
        if self.sampler not in SAMPLERS:
            raise VasaError(f"unknown sampler {self.sampler!r} (allowed: {', '.join(SAMPLERS)})")
        if self.hop is not None and (isinstance(self.hop, bool) or not isinstance(self.hop, (int, np.integer))
                                     or not 1 <= self.hop <= (max_hop or 10 ** 6)):
            raise VasaError(f"hop must be an integer number of frames in [1, {max_hop or 'the model window'}], "
                            f"got {self.hop}")
        return Controls(gaze=g, distance=d, emotion=self.emotion,
                        cfg_audio=_in_range("cfg_audio", self.cfg_audio, *CFG_RANGE),
                        cfg_gaze=_in_range("cfg_gaze", self.cfg_gaze, *CFG_RANGE),
                        steps=int(self.steps), seed=int(self.seed), sampler=self.sampler,
                        hop=None if self.hop is None else int(self.hop), emotion_vector=parse_emotion(self.emotion))

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("emotion_vector")
        d["gaze"] = None if self.gaze is None else list(self.gaze)
        return d


def check_resolution(resolution: int | None) -> int | None:
    """``None`` (the model's size) or an even size in ``RESOLUTION_RANGE``."""
    if resolution is None:
        return None
    lo, hi = RESOLUTION_RANGE
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not lo <= resolution <= hi \
            or resolution % 2:
        raise VasaError(f"resolution must be an even number of pixels in [{lo}, {hi}], got {resolution}")
    return int(resolution)
