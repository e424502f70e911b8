"""MediaPipe face detection and face mesh (mediapipe 0.10.14: real models trained on real faces).

No part of vasa trained these models, which makes them fair judges of generated and rendered
faces: the corpus quality bars (detection rate, mouth opening against the ground-truth jaw) and
later the evaluation's landmark measures use this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Face-mesh landmark indices (canonical 468/478 topology).
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD_TOP, CHIN = 10, 152
LEFT_IRIS, RIGHT_IRIS = 468, 473  # iris centres (refine_landmarks=True)


def _mp():
    try:
        import mediapipe as mp
    except ImportError:  # pragma: no cover - an install problem, not a user mistake
        from vasa.errors import VasaError

        raise VasaError("mediapipe is not installed: run `bash scripts/setup.sh`") from None
    return mp


def _upscale(frame: np.ndarray, min_size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if min(h, w) >= min_size:
        return np.ascontiguousarray(frame)
    f = min_size / min(h, w)
    return cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC)


class FaceDetector:
    """MediaPipe's BlazeFace short-range detector, frame by frame (no tracking)."""

    def __init__(self, min_confidence: float = 0.5, model_selection: int = 0):
        mp = _mp()
        self._det = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence)

    def detect(self, frame: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """RGB uint8 frame -> [(score, box x0 y0 x1 y1 in relative coords)], best first."""
        res = self._det.process(np.ascontiguousarray(frame))
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            out.append((float(d.score[0]), np.array([b.xmin, b.ymin, b.xmin + b.width, b.ymin + b.height])))
        return sorted(out, key=lambda x: -x[0])

    def found(self, frames: np.ndarray) -> np.ndarray:
        """T x H x W x 3 -> bool (T,): a face was detected in each frame."""
        return np.array([len(self.detect(f)) > 0 for f in frames], bool)

    def close(self) -> None:
        self._det.close()


@dataclass
class MeshResult:
    landmarks: np.ndarray  # 478 x 3, x/y in pixels of the input frame, z relative
    mouth_opening: float  # inner-lip gap over face height (10 -> 152)


class FaceMesh:
    """MediaPipe face mesh with iris refinement (478 landmarks). Frames are upscaled to >= 256."""

    def __init__(self, static: bool = True, min_confidence: float = 0.5, min_size: int = 256):
        mp = _mp()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=min_confidence)
        self.min_size = min_size

    def process(self, frame: np.ndarray) -> MeshResult | None:
        """RGB uint8 frame -> landmarks and mouth opening, or None when no face is found."""
        h, w = frame.shape[:2]
        res = self._mesh.process(_upscale(frame, self.min_size))
        if not res.multi_face_landmarks:
            return None
        lm = np.array([(p.x * w, p.y * h, p.z * w) for p in res.multi_face_landmarks[0].landmark], np.float32)
        return MeshResult(lm, mouth_opening(lm))

    def mouth_openings(self, frames: np.ndarray) -> np.ndarray:
        """T x H x W x 3 -> (T,) mouth opening, NaN where no face was found."""
        out = np.full(len(frames), np.nan, np.float32)
        for i, f in enumerate(frames):
            r = self.process(f)
            if r is not None:
                out[i] = r.mouth_opening
        return out

    def close(self) -> None:
        self._mesh.close()


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap (landmarks 13-14) over face height (10-152), from a 468/478 x 2+ array."""
    gap = np.linalg.norm(landmarks[UPPER_INNER_LIP, :2] - landmarks[LOWER_INNER_LIP, :2])
    height = np.linalg.norm(landmarks[FOREHEAD_TOP, :2] - landmarks[CHIN, :2])
    return float(gap / max(height, 1e-6))
