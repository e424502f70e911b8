"""Face identity embeddings with dlib's face descriptor (CSIM): a real pretrained judge.

dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``, trained on ~3M real faces,
99.38 % on LFW) ships in the ``face-recognition-models`` package. Importing that package fails in
our environment (it imports ``pkg_resources``), so the model folder is located with
:func:`importlib.util.find_spec` instead. vasa trained none of these models, which makes them a fair
judge of identity preservation (CSIM) for the latent space and the final evaluation.

>>> emb = DlibFaceEmbedder()
>>> e = emb.embed(frame)                   # RGB uint8 H x W x 3 -> (128,) unit vector
>>> csim = emb.similarity(source, frames)  # cosine of the source's embedding with each frame's

Face box: dlib's HOG frontal detector on the image upscaled to at least ``min_size`` pixels; when
it finds nothing (strong yaw, small or stylised faces) the whole image is the box (our frames are
face crops), and :attr:`DlibFaceEmbedder.last_detected` says which was used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from vasa.errors import VasaError

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"


def models_dir() -> Path:
    """The ``models`` folder of the installed ``face-recognition-models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VasaError("face-recognition-models is not installed: run `bash scripts/setup.sh`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / DESCRIPTOR).is_file():
        raise VasaError(f"dlib face models are missing in {folder}: reinstall face-recognition-models")
    return folder


class DlibFaceEmbedder:
    """dlib face detector + landmark aligner + 128-d ResNet descriptor, normalised to unit length.

    Args:
        landmarks: 5 or 68 (which shape predictor aligns the face chip; 5 is dlib's recommendation).
        detect: run the HOG face detector (else always use the full image as the face box).
        min_size: images are upscaled to at least this size before detection and alignment.
        jitters: dlib's ``num_jitters`` (random re-crops averaged; 0 = one pass, deterministic).
    """

    def __init__(self, landmarks: int = 5, detect: bool = True, min_size: int = 256, jitters: int = 0):
        try:
            import dlib
        except ImportError:  # pragma: no cover - an install problem
            raise VasaError("dlib is not installed: run `bash scripts/setup.sh`") from None
        if landmarks not in (5, 68):
            raise VasaError(f"landmarks must be 5 or 68, got {landmarks}")
        folder = models_dir()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(folder / (SHAPE_5 if landmarks == 5 else SHAPE_68)))
        self._net = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR))
        self._det = dlib.get_frontal_face_detector() if detect else None
        self.min_size, self.jitters = min_size, jitters
        self.last_detected = False

    def _prepare(self, img: np.ndarray) -> np.ndarray:
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise VasaError(f"expected an RGB uint8 H x W x 3 image, got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        if min(h, w) < self.min_size:
            f = self.min_size / min(h, w)
            img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(img)

    def face_box(self, img: np.ndarray):
        """dlib rectangle of the largest detected face in a prepared image, or the full image."""
        h, w = img.shape[:2]
        if self._det is not None:
            dets = list(self._det(img, 0))
            if dets:
                self.last_detected = True
                return max(dets, key=lambda r: r.area())
        self.last_detected = False
        return self._dlib.rectangle(0, 0, w - 1, h - 1)

    def embed(self, img: np.ndarray) -> np.ndarray:
        """RGB uint8 H x W x 3 -> (128,) float32 unit vector."""
        img = self._prepare(img)
        shape = self._shape(img, self.face_box(img))
        d = np.asarray(self._net.compute_face_descriptor(img, shape, self.jitters), np.float32)
        return d / max(float(np.linalg.norm(d)), 1e-12)

    def embed_many(self, images) -> tuple[np.ndarray, np.ndarray]:
        """N images -> (N x 128 unit vectors, N bool: a face was detected, else the full image was used)."""
        embs, found = [], []
        for im in images:
            embs.append(self.embed(im))
            found.append(self.last_detected)
        return np.stack(embs) if embs else np.zeros((0, 128), np.float32), np.array(found, bool)

    def similarity(self, source: np.ndarray, frames) -> np.ndarray:
        """Cosine similarity of ``source``'s embedding with each of ``frames`` (CSIM per frame)."""
        e = self.embed(source)
        return self.embed_many(frames)[0] @ e


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of unit vectors: (N x d) @ (M x d)^T -> N x M."""
    return np.asarray(a, np.float32) @ np.asarray(b, np.float32).T
