"""Per-frame labels measured on real video: head pose (PnP), gaze, distance, mouth opening, blinks.

Every measure comes from MediaPipe's 478-point face mesh (with iris refinement) on the cropped
face, mapped back to the coordinates of the source frame.

**Head pose.** ``cv2.solvePnP`` of rigid mesh landmarks (nose, eye corners, forehead, cheek
contour: the points that expressions and the jaw do not move) against a canonical 3D face. The
canonical face is not shipped by mediapipe 0.10.14 (no ``canonical_face_model.obj`` or geometry
metadata in the wheel), so we derive a mean shape: :func:`vasa.ingest.canonical.derive_canonical`
aligns the mesh's own 3D output (x, y and the model's relative depth z) of many faces by
generalised Procrustes and fixes the head frame by the face's mirror symmetry (x), the nose-bridge
to forehead direction (y) and their cross product (z, out of the face). The result is stored in
:mod:`vasa.ingest.canonical`. The camera is a pinhole at the frame centre with vertical field of
view ``fov_deg`` (default: the generated corpus's 18 degrees). Angles use the renderer's
conventions (:mod:`vasa.synth.params`): yaw > 0 turns the face towards image right, pitch > 0
looks up, roll > 0 tilts counter-clockwise; ``R = Ry(yaw) Rx(-pitch) Rz(roll)``.

**Gaze.** The iris centre relative to the eye-corner midpoint over the eye width, in the head
frame (the mesh's 3D landmarks rotated onto the canonical face), averaged over both eyes and mapped
to degrees by a linear calibration (:data:`CALIBRATION`). Relative to the head, like ``gaze_yaw`` /
``gaze_pitch``.

**Distance.** PnP's camera distance ``tz`` of the canonical face divided by that of a generated
head at the nominal distance (1.0): a pose-invariant face-scale measure normalised to the generated
corpus's framing (with the default field of view). It describes the *source* frame: the columns
``tz`` (= distance x NOMINAL_DISTANCE) and ``scale`` (= 1 / distance) and the clip's
``conditions.distance``; the crop itself always frames the face at the nominal size.

**Mouth and blinks.** The inner-lip gap over face height (``vasa.eval.landmarks.mouth_opening``)
mapped linearly to the ``jaw`` range, and the eye aspect ratio (EAR) turned into eyelid closure
relative to the clip's open-eye EAR (``blink_l``, ``blink_r``).

:data:`CALIBRATION` holds the linear maps (fit on train-split clips of the generated corpus by
``benchmarks/ingest_validation.py``, evaluated on its test split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vasa.eval.landmarks import mouth_opening
from vasa.ingest.canonical import CANONICAL, RIGID, to_head_frame
from vasa.synth.params import EMOTIONS, NOMINAL_DISTANCE, PARAM_INDEX, N_PARAMS

# Eye landmarks (MediaPipe topology). "r" = the subject's right eye (image left on a frontal face).
EYE_R = dict(outer=33, inner=133, iris=468, ear=(33, 160, 158, 133, 153, 144))
EYE_L = dict(outer=263, inner=362, iris=473, ear=(362, 385, 387, 263, 373, 380))

# Linear maps from raw measures to the corpus's units: value = gain * raw + offset.
# Fit by benchmarks/ingest_validation.py (train split of the generated corpus); see its JSON.
CALIBRATION: dict[str, tuple[float, float]] = {
    "yaw": (1.0, 0.0),  # raw PnP yaw is unbiased (fit gave gain 0.96, offset -0.2: not applied)
    "pitch": (1.0, 7.79),  # the anatomical chin-forehead frame is 7.8 deg off the renderer's rest pose
    "roll": (1.0, 0.0),
    "gaze_yaw": (101.8, 0.34),
    "gaze_pitch": (97.8, -4.91),
    "jaw": (5.06, 0.025),
    "tz_nominal": (9.078, 0.0),  # PnP tz of a distance-1.0 generated head (gain slot only)
}
FOV_DEG = 18.0  # the generated corpus's camera (vasa.synth.render.FOV_Y_DEG)
_GL = np.array([1.0, -1.0, -1.0])  # OpenGL <-> OpenCV axis flip (y down, z forward in OpenCV)


@dataclass
class FrameLabels:
    """Raw measurements of one frame (before calibration)."""

    yaw: float
    pitch: float
    roll: float
    tz: float  # camera distance of the canonical face, model units
    gaze_h: float  # iris offset along the eye axis over eye width (image-right positive)
    gaze_v: float  # iris offset across the eye axis over eye width (up positive)
    mouth: float  # inner-lip gap over face height
    ear_l: float
    ear_r: float
    reproj_px: float  # PnP RMS reprojection error in source pixels


def intrinsics(width: int, height: int, fov_deg: float = FOV_DEG) -> np.ndarray:
    """3x3 pinhole camera matrix: principal point at the frame centre, vertical field of view."""
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def euler_from_matrix(r_gl: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of ``R = Ry(yaw) Rx(-pitch) Rz(roll)`` (vasa.synth.mesh.rotation)."""
    s = float(np.clip(r_gl[1, 2], -1.0, 1.0))
    pitch = math.degrees(math.asin(s))  # R[1,2] = -sin(-pitch)
    yaw = math.degrees(math.atan2(r_gl[0, 2], r_gl[2, 2]))
    roll = math.degrees(math.atan2(r_gl[1, 0], r_gl[1, 1]))
    return yaw, pitch, roll


class PoseSolver:
    """PnP of the rigid mesh landmarks against the canonical face, warm-started frame to frame."""

    def __init__(self, width: int, height: int, fov_deg: float = FOV_DEG):
        self.k = intrinsics(width, height, fov_deg)
        self.obj = (CANONICAL * _GL).astype(np.float64)  # object points in OpenCV axes
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the previous frame (call at clip boundaries)."""
        self._prev = None

    def solve(self, pts2d: np.ndarray) -> tuple[float, float, float, float, float]:
        """Rigid landmarks (len(RIGID) x 2, source pixels) -> (yaw, pitch, roll, tz, rms px)."""
        img = np.ascontiguousarray(pts2d, np.float64).reshape(-1, 1, 2)
        if self._prev is None:
            ok, rvec, tvec = cv2.solvePnP(self.obj, img, self.k, None, flags=cv2.SOLVEPNP_SQPNP)
        else:
            rvec, tvec = (v.copy() for v in self._prev)
            ok, rvec, tvec = cv2.solvePnP(self.obj, img, self.k, None, rvec, tvec, useExtrinsicGuess=True,
                                          flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok or tvec[2, 0] <= 0:  # a failed warm start: solve from scratch
            ok, rvec, tvec = cv2.solvePnP(self.obj, img, self.k, None, flags=cv2.SOLVEPNP_SQPNP)
        self._prev = (rvec, tvec)
        proj, _ = cv2.projectPoints(self.obj, rvec, tvec, self.k, None)
        rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img.reshape(-1, 2)) ** 2, 1))))
        r_cv, _ = cv2.Rodrigues(rvec)
        r_gl = np.diag(_GL) @ r_cv @ np.diag(_GL)
        yaw, pitch, roll = euler_from_matrix(r_gl)
        return yaw, pitch, roll, float(tvec[2, 0]), rms


def eye_aspect_ratio(lm: np.ndarray, idx: tuple[int, ...]) -> float:
    """EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) of six eye landmarks (Soukupova & Cech 2016)."""
    p = lm[list(idx), :2]
    w = np.linalg.norm(p[0] - p[3])
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * max(w, 1e-6)))


def iris_offset(lm: np.ndarray) -> tuple[float, float]:
    """Iris centre relative to the eye-corner midpoint, over eye width, averaged over both eyes.

    Measured in the canonical head frame (:func:`vasa.ingest.canonical.to_head_frame`, from the
    mesh's 3D output), so head rotation does not leak into gaze. Returns (horizontal, vertical):
    towards the head's x (image right on a frontal face) and y (up).
    """
    h = to_head_frame(lm)
    hs, vs = [], []
    for eye in (EYE_R, EYE_L):
        a, b = h[eye["outer"]], h[eye["inner"]]
        w = float(np.linalg.norm(a - b))
        if w < 1e-9:
            continue
        d = h[eye["iris"]] - (a + b) / 2
        hs.append(float(d[0]) / w)
        vs.append(float(d[1]) / w)
    if not hs:
        return float("nan"), float("nan")
    return float(np.mean(hs)), float(np.mean(vs))


def measure(lm: np.ndarray, solver: PoseSolver) -> FrameLabels:
    """Raw labels of one frame from 478 mesh landmarks in source-frame pixels."""
    yaw, pitch, roll, tz, rms = solver.solve(lm[RIGID, :2])
    gh, gv = iris_offset(lm)
    return FrameLabels(yaw, pitch, roll, tz, gh, gv, mouth_opening(lm), eye_aspect_ratio(lm, EYE_L["ear"]),
                       eye_aspect_ratio(lm, EYE_R["ear"]), rms)


def _cal(name: str, x: np.ndarray, calibration: dict | None) -> np.ndarray:
    g, o = (calibration or CALIBRATION)[name]
    return g * x + o


def label_matrix(raw: list[FrameLabels | None], calibration: dict | None = None) -> np.ndarray:
    """Per-frame raw labels -> T x N_PARAMS float32 in the corpus's columns (NaN where unmeasured).

    Filled: yaw, pitch, roll, tz, scale (from the calibrated distance), jaw (mouth-opening proxy),
    blink_l / blink_r (EAR closure relative to the clip's open-eye EAR), gaze_yaw, gaze_pitch.
    Left NaN: tx, ty (the crop re-centres the head), lip shape, smile, brows, eye_wide.
    """
    t = len(raw)
    out = np.full((t, N_PARAMS), np.nan, np.float32)
    ok = np.array([r is not None for r in raw])
    if not ok.any():
        return out
    cols = {k: np.array([getattr(r, k) if r is not None else np.nan for r in raw], np.float64)
            for k in FrameLabels.__dataclass_fields__}
    for name in ("yaw", "pitch", "roll"):
        out[:, PARAM_INDEX[name]] = _cal(name, cols[name], calibration)
    dist = cols["tz"] / (calibration or CALIBRATION)["tz_nominal"][0]
    out[:, PARAM_INDEX["tz"]] = dist * NOMINAL_DISTANCE
    out[:, PARAM_INDEX["scale"]] = 1.0 / dist
    out[:, PARAM_INDEX["gaze_yaw"]] = _cal("gaze_yaw", cols["gaze_h"], calibration)
    out[:, PARAM_INDEX["gaze_pitch"]] = _cal("gaze_pitch", cols["gaze_v"], calibration)
    out[:, PARAM_INDEX["jaw"]] = np.clip(_cal("jaw", cols["mouth"], calibration), 0.0, 1.0)
    for side in ("l", "r"):
        ear = cols[f"ear_{side}"]
        open_ear = np.nanpercentile(ear, 90) if np.isfinite(ear).any() else np.nan
        out[:, PARAM_INDEX[f"blink_{side}"]] = np.clip(1.0 - ear / max(open_ear, 1e-6), 0.0, 1.0)
    return out


def main_gaze(gaze_yaw: np.ndarray, gaze_pitch: np.ndarray, bin_deg: float = 2.0,
              radius_deg: float = 6.0) -> tuple[float, float] | None:
    """The clip's main gaze direction: the mode of the 2D histogram of per-frame gaze (Gaussian
    smoothed), refined by the mean of the frames within ``radius_deg`` of it. None without data."""
    ok = np.isfinite(gaze_yaw) & np.isfinite(gaze_pitch)
    if ok.sum() < 3:
        return None
    gy, gp = gaze_yaw[ok], gaze_pitch[ok]
    edges = np.arange(-60.0, 60.0 + bin_deg, bin_deg)
    h, _, _ = np.histogram2d(np.clip(gy, -60, 60), np.clip(gp, -60, 60), bins=[edges, edges])
    h = cv2.GaussianBlur(h.astype(np.float32), (0, 0), 1.0)
    i, j = np.unravel_index(int(np.argmax(h)), h.shape)
    cy, cp = (edges[i] + edges[i + 1]) / 2, (edges[j] + edges[j + 1]) / 2
    near = (gy - cy) ** 2 + (gp - cp) ** 2 <= radius_deg ** 2
    if near.any():
        cy, cp = float(gy[near].mean()), float(gp[near].mean())
    return round(float(cy), 3), round(float(cp), 3)


def clip_distance(params: np.ndarray) -> float | None:
    """The clip's normalised head distance (median of per-frame tz over the nominal distance)."""
    tz = params[:, PARAM_INDEX["tz"]]
    tz = tz[np.isfinite(tz)]
    return round(float(np.median(tz) / NOMINAL_DISTANCE), 4) if tz.size else None


# RAVDESS emotion codes (third field of 03-01-EE-II-SS-RR-AA) -> vasa emotions (None: not in the set)
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fearful", "07": "disgust", "08": "surprised"}
# Dataset emotion words -> vasa.synth.params.EMOTIONS (calm counts as neutral; others have no slot)
_EMOTION_MAP = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
                "surprised": "surprised", "surprise": "surprised", "happiness": "happy", "sadness": "sad",
                "anger": "angry"}


def emotion_condition(label: str | None, intensity: float | None) -> tuple[str, float] | None:
    """A dataset's emotion word and intensity -> (vasa emotion, intensity in 0..1), or None when the
    word has no slot in ``EMOTIONS`` (fearful, disgusted, contempt) or no label exists."""
    if not label:
        return None
    emo = _EMOTION_MAP.get(label.lower())
    if emo is None or emo not in EMOTIONS:
        return None
    inten = 0.0 if emo == "neutral" else float(1.0 if intensity is None else np.clip(intensity, 0.0, 1.0))
    return emo, inten
