"""Baselines that need no trained model: a static portrait and an audio-energy mouth flap.

**Static portrait**: the source image repeated for every frame (no motion at all).

**Mouth flap** (an image-space warp of the mouth region, no latent model, no head motion): per
frame the audio's RMS energy in the frame's 40 ms slot, normalised by the clip's 95th percentile
and clipped to [0, 1], opens the mouth by up to ``max_open`` of the face height. MediaPipe's face
mesh on the portrait gives the inner-lip line (landmarks 13/14), the mouth corners (61/291) and
the chin (152); the jaw region (below the lip line, within the jaw's width, fading out below the
chin and towards the cheeks) is shifted down by the opening with a smooth backward warp, and a dark
mouth interior (an ellipse between the lips, soft edge) fills the gap. Mouth closed in silence,
open with loud speech: the crudest lip sync that still follows the audio.
"""

from __future__ import annotations

import cv2
import numpy as np

from vasa.errors import VasaError
from vasa.eval.landmarks import CHIN, FOREHEAD_TOP, LOWER_INNER_LIP, UPPER_INNER_LIP, FaceMesh
from vasa.eval.metrics import audio_rms

MOUTH_LEFT, MOUTH_RIGHT = 61, 291
INTERIOR_RGB = (45, 18, 20)


def static_video(portrait: np.ndarray, n_frames: int) -> np.ndarray:
    """The portrait repeated: T x H x W x 3 uint8."""
    return np.repeat(np.asarray(portrait, np.uint8)[None], n_frames, axis=0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def energy_envelope(audio: np.ndarray, n_frames: int, sr: int = 16000, fps: float = 25.0) -> np.ndarray:
    """Per-frame opening in [0, 1]: RMS over the clip's 95th percentile (a silent clip stays closed)."""
    rms = audio_rms(audio, n_frames, sr, fps)
    ref = float(np.percentile(rms, 95)) if len(rms) else 0.0
    if ref < 1e-4:
        return np.zeros(n_frames)
    return np.clip(rms / ref, 0.0, 1.0)


class MouthFlap:
    """The mouth-flap baseline for one portrait (the face mesh runs once, in the constructor)."""

    def __init__(self, portrait: np.ndarray, max_open: float = 0.09, mesh: FaceMesh | None = None):
        self.portrait = np.asarray(portrait, np.uint8)
        own = mesh is None
        mesh = mesh or FaceMesh(static=True)
        try:
            r = mesh.process(self.portrait)
        finally:
            if own:
                mesh.close()
        h, w = self.portrait.shape[:2]
        if r is None:  # no face found: assume a centred corpus-like framing
            self.mouth = np.array([0.5 * w, 0.72 * h])
            self.half_width, self.chin, self.face_h = 0.12 * w, 0.9 * h, 0.6 * h
            self.gap0 = 0.0
        else:
            lm = r.landmarks
            up, lo = lm[UPPER_INNER_LIP, :2], lm[LOWER_INNER_LIP, :2]
            self.mouth = (up + lo) / 2
            self.half_width = 0.5 * float(np.linalg.norm(lm[MOUTH_RIGHT, :2] - lm[MOUTH_LEFT, :2]))
            self.chin = float(lm[CHIN, 1])
            self.face_h = float(np.linalg.norm(lm[FOREHEAD_TOP, :2] - lm[CHIN, :2]))
            self.gap0 = float(lo[1] - up[1])
        self.max_open = max_open * self.face_h
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._xx, self._yy = xx, yy
        # where the jaw moves: below the lip line, inside ~1.6 mouth widths, fading out under the chin
        jaw_w = 1.6 * self.half_width + 1.0
        wx = 1.0 - _smoothstep((np.abs(xx - self.mouth[0]) - 0.6 * jaw_w) / (0.6 * jaw_w))
        below = _smoothstep((yy - self.mouth[1] + 1.0) / 2.0)
        fade = 1.0 - _smoothstep((yy - self.chin) / (0.15 * self.face_h + 1.0))
        self._weight = (wx * below * fade).astype(np.float32)

    def frame(self, opening: float) -> np.ndarray:
        """One frame with the mouth opened by ``opening`` in [0, 1]."""
        d = float(np.clip(opening, 0.0, 1.0)) * self.max_open
        if d < 0.05:
            return self.portrait.copy()
        map_y = self._yy - d * self._weight
        out = cv2.remap(self.portrait, self._xx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # the mouth interior between the (unmoved) upper lip and the lowered lower lip
        cy = self.mouth[1] + d / 2
        ax, ay = 0.75 * self.half_width, (self.gap0 + d) / 2
        e = ((self._xx - self.mouth[0]) / max(ax, 1.0)) ** 2 + ((self._yy - cy) / max(ay, 0.5)) ** 2
        alpha = np.clip(1.5 - e * 1.5, 0.0, 1.0)[..., None]
        return (out * (1 - alpha) + np.array(INTERIOR_RGB, np.float32) * alpha + 0.5).astype(np.uint8)

    def video(self, audio: np.ndarray, n_frames: int, sr: int = 16000, fps: float = 25.0) -> np.ndarray:
        """T x H x W x 3 uint8 frames driven by the audio's energy."""
        if n_frames < 1:
            raise VasaError(f"mouth flap needs at least one frame, got {n_frames}")
        env = energy_envelope(audio, n_frames, sr, fps)
        return np.stack([self.frame(o) for o in env])


def mouth_flap_video(portrait: np.ndarray, audio: np.ndarray, n_frames: int,
                     mesh: FaceMesh | None = None) -> np.ndarray:
    """Functional form: the mouth-flap baseline video of ``portrait`` driven by ``audio``."""
    return MouthFlap(portrait, mesh=mesh).video(audio, n_frames)
