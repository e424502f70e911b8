"""Per-frame face measurements of any video with the same real pretrained estimators for every row.

One pass over the frames runs

* MediaPipe's BlazeFace detector (:class:`vasa.eval.landmarks.FaceDetector`): the face-detection
  rate and the face boxes the experts crop from (:mod:`vasa.eval.crops`);
* MediaPipe's face mesh (478 landmarks with iris, every frame on its own: no tracker smoothing, so
  jitter is measured, not hidden) and the validated label estimator of :mod:`vasa.ingest.labels`
  (``measure`` + ``label_matrix``): head pose by PnP against the canonical face, gaze from the iris,
  distance, mouth opening (``jaw`` units), blinks -- THE pose estimator of dP, CAPP and the
  controls, so ground truth, baselines and vasa are measured alike.

>>> tr = face_tracks(frames)               # FaceTracks
>>> tr.angles                               # T x 3 yaw, pitch, roll in degrees (NaN: no face)
>>> tr.labels[:, PARAM_INDEX["gaze_yaw"]]   # per-frame gaze relative to the head, degrees
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasa.eval.crops import detect_boxes
from vasa.eval.landmarks import CHIN, FOREHEAD_TOP, FaceDetector, FaceMesh
from vasa.ingest.labels import PoseSolver, clip_distance, label_matrix, main_gaze, measure
from vasa.synth.params import PARAM_INDEX, N_PARAMS

ANGLES = ("yaw", "pitch", "roll")


@dataclass
class FaceTracks:
    found: np.ndarray  # (T,) bool: BlazeFace found a face
    boxes: np.ndarray  # T x 4 detector boxes in pixels (NaN where none)
    meshed: np.ndarray  # (T,) bool: the face mesh found a face
    labels: np.ndarray  # T x N_PARAMS calibrated labels in the corpus's columns (NaN where unmeasured)
    mouth: np.ndarray  # (T,) raw inner-lip gap over face height (NaN where no mesh)
    landmarks: np.ndarray  # T x 478 x 2 mesh landmarks in units of the face height (NaN where no mesh)

    def __len__(self) -> int:
        return len(self.found)

    @property
    def detection_rate(self) -> float:
        return float(self.found.mean()) if len(self.found) else float("nan")

    @property
    def angles(self) -> np.ndarray:
        """T x 3 yaw, pitch, roll in degrees."""
        return self.labels[:, [PARAM_INDEX[a] for a in ANGLES]]

    @property
    def gaze(self) -> np.ndarray:
        """T x 2 gaze yaw, pitch relative to the head, degrees."""
        return self.labels[:, [PARAM_INDEX["gaze_yaw"], PARAM_INDEX["gaze_pitch"]]]

    def main_gaze(self) -> tuple[float, float] | None:
        """The clip's main gaze (histogram mode, as the corpus labels it)."""
        g = self.gaze
        return main_gaze(g[:, 0], g[:, 1])

    def distance(self) -> float | None:
        """The clip's normalised head distance (median PnP distance over the nominal one)."""
        return clip_distance(self.labels)

    def window(self, sl: slice) -> "FaceTracks":
        return FaceTracks(self.found[sl], self.boxes[sl], self.meshed[sl], self.labels[sl], self.mouth[sl],
                          self.landmarks[sl])


class FaceTracker:
    """Holds the MediaPipe graphs (creating them costs ~0.1 s); :meth:`__call__` measures a video."""

    def __init__(self, fov_deg: float | None = None):
        self.detector = FaceDetector()
        self.mesh = FaceMesh(static=True)
        self.fov_deg = fov_deg

    def __call__(self, frames: np.ndarray, detect_stride: int = 1) -> FaceTracks:
        frames = np.asarray(frames)
        t, h, w = frames.shape[:3]
        boxes, found = detect_boxes(frames, self.detector, detect_stride)
        solver = PoseSolver(w, h) if self.fov_deg is None else PoseSolver(w, h, self.fov_deg)
        raw, mouth = [], np.full(t, np.nan, np.float32)
        lms = np.full((t, 478, 2), np.nan, np.float32)
        prev = None
        for i, f in enumerate(frames):
            r = self.mesh.process(f)
            if r is None:
                raw.append(None)
                continue
            # identical landmarks, identical labels (PnP's warm-started refinement would drift by ~0.01 deg)
            same = prev is not None and np.array_equal(prev[0], r.landmarks)
            raw.append(prev[1] if same else measure(r.landmarks, solver))
            prev = (r.landmarks, raw[-1])
            mouth[i] = r.mouth_opening
            height = max(float(np.linalg.norm(r.landmarks[FOREHEAD_TOP, :2] - r.landmarks[CHIN, :2])), 1e-6)
            lms[i] = r.landmarks[:478, :2] / height
        labels = label_matrix(raw) if t else np.zeros((0, N_PARAMS), np.float32)
        return FaceTracks(found, boxes, np.array([r is not None for r in raw], bool), labels, mouth, lms)

    def close(self) -> None:
        self.detector.close()
        self.mesh.close()


def face_tracks(frames: np.ndarray) -> FaceTracks:
    """One-shot :class:`FaceTracker` call (creates and closes the MediaPipe graphs)."""
    tr = FaceTracker()
    try:
        return tr(frames)
    finally:
        tr.close()
