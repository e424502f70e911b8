"""The canonical 3D face for head-pose PnP: a mean shape of MediaPipe face-mesh landmarks.

mediapipe 0.10.14's wheel ships the face-mesh models but not the canonical face model
(``canonical_face_model.obj`` / geometry-pipeline metadata), so we derive one. The face mesh
predicts, besides image x/y, a relative depth z per landmark in the same units as x. Its 3D output on
many faces in many poses, aligned by generalised Procrustes (similarity transforms), averages into
a mean shape; the head frame is then fixed by anatomy:

* x: the mean direction from the subject's right to the subject's left of mirror-symmetric landmark
  pairs (eye corners, cheeks, forehead), i.e. towards image right on a frontal face;
* y: from the chin (152) to the top of the forehead (10), made orthogonal to x (up);
* z = x cross y: out of the face, towards the camera (OpenGL axes, as the renderer).

Only rigid landmarks (:data:`RIGID`: nose, eye corners, forehead, cheek contour; no lips, jaw, brows or
eyelids) are kept, scaled to an outer-eye-corner distance of 1.0 and centred on their centroid.
:data:`CANONICAL` was produced by :func:`derive_canonical` from the face mesh on 618 frames of
the generated corpus's train split (every 12th frame of its first 40 speech clips; the test split
used for validation holds other identities). ``python benchmarks/ingest_validation.py --calibrate 40
--only`` re-derives it (key ``calibration.canonical`` of the results JSON). Any residual pitch offset of this
anatomical frame against the renderer's is part of the global calibration in
:mod:`vasa.ingest.labels`.
"""

from __future__ import annotations

import numpy as np

# Rigid face-mesh landmarks used for PnP (MediaPipe 468-topology indices).
RIGID: list[int] = [
    1, 2, 4, 5, 6, 8, 168, 197, 195, 98, 327,  # nose and nose bridge
    33, 133, 263, 362,  # eye corners
    10, 151, 9, 67, 297, 109, 338, 103, 332,  # forehead
    234, 454, 127, 356, 93, 323, 116, 345, 50, 280,  # cheek contour
]
# Mirror pairs (subject's right, subject's left) inside the full topology, used to fix the x axis.
MIRROR_PAIRS: list[tuple[int, int]] = [(33, 263), (133, 362), (234, 454), (127, 356), (93, 323), (116, 345),
                                       (50, 280), (67, 297), (109, 338), (103, 332), (98, 327)]
FOREHEAD, CHIN = 10, 152
OUTER_EYE = (33, 263)


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation R (no reflection) minimising |a @ R.T - b| for centred point sets."""
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def mesh_to_gl(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe landmarks (x right, y down, z away from the camera, pixels) -> OpenGL axes."""
    return np.asarray(landmarks, np.float64)[:, :3] * np.array([1.0, -1.0, -1.0])


def derive_canonical(shapes: list[np.ndarray], iterations: int = 10) -> np.ndarray:
    """Mean 478 x 3 face shape (OpenGL axes, anatomical head frame) of face-mesh outputs.

    ``shapes``: per-frame 478 x 3 landmarks as returned by :class:`vasa.eval.landmarks.FaceMesh`
    (pixels, z relative). Procrustes alignment on the rigid landmarks removes pose, position and
    scale; the returned shape has outer-eye-corner distance 1.0 and its rigid centroid at 0.
    """
    if len(shapes) < 2:
        raise ValueError("derive_canonical needs at least two face-mesh shapes")
    gl = [mesh_to_gl(s) for s in shapes]
    norm = []
    for s in gl:
        c = s - s[RIGID].mean(0)
        norm.append(c / np.linalg.norm(c[RIGID]))
    mean = norm[0].copy()
    for _ in range(iterations):
        aligned = [s @ _kabsch(s[RIGID], mean[RIGID]).T for s in norm]
        new = np.mean(aligned, 0)
        new /= np.linalg.norm(new[RIGID])
        done = np.abs(new - mean).max() < 1e-7
        mean = new
        if done:
            break
    # anatomical frame
    x = np.mean([mean[b] - mean[a] for a, b in MIRROR_PAIRS], 0)
    x /= np.linalg.norm(x)
    y = mean[FOREHEAD] - mean[CHIN]
    y -= (y @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    frame = np.stack([x, y, z])  # rows: head axes in the current coordinates
    out = (mean - mean[RIGID].mean(0)) @ frame.T
    return out / np.linalg.norm(out[OUTER_EYE[1]] - out[OUTER_EYE[0]])


def to_head_frame(landmarks: np.ndarray) -> np.ndarray:
    """Face-mesh landmarks (478 x 3, pixels, z relative) rotated into the canonical head frame.

    The rotation aligns the rigid landmarks with :data:`CANONICAL` (Kabsch), so the result is
    pose-free up to scale: eye, iris and lip geometry read the same whatever the head pose.
    """
    g = mesh_to_gl(landmarks)
    g = g - g[RIGID].mean(0)
    return g @ _kabsch(g[RIGID], CANONICAL).T


def format_canonical(shape: np.ndarray) -> str:
    """Python source of the rigid subset of ``shape`` (to paste as :data:`CANONICAL`)."""
    rows = ",\n".join(f"    [{p[0]: .5f}, {p[1]: .5f}, {p[2]: .5f}]" for p in shape[RIGID])
    return f"CANONICAL = np.array([\n{rows},\n], np.float64)\n"


# Mean rigid landmarks in the head frame (OpenGL axes, outer-eye-corner distance 1); rows follow RIGID.
CANONICAL = np.array([
    [ 0.00205, -0.37129,  0.46550],
    [ 0.00157, -0.46021,  0.30040],
    [ 0.00198, -0.29801,  0.48079],
    [ 0.00155, -0.20637,  0.44391],
    [ 0.00057,  0.00682,  0.24659],
    [ 0.00021,  0.18804,  0.18242],
    [ 0.00025,  0.09562,  0.18873],
    [ 0.00084, -0.06723,  0.31052],
    [ 0.00119, -0.13448,  0.37573],
    [-0.17966, -0.44872,  0.21138],
    [ 0.18472, -0.44710,  0.21214],
    [-0.50196,  0.02926, -0.04133],
    [-0.19682,  0.01088,  0.02213],
    [ 0.49804,  0.02799, -0.04049],
    [ 0.19319,  0.00952,  0.02157],
    [ 0.00126,  0.61041,  0.09300],
    [ 0.00043,  0.44804,  0.14725],
    [ 0.00019,  0.28500,  0.18741],
    [-0.39471,  0.56835,  0.01115],
    [ 0.39461,  0.56646,  0.01025],
    [-0.21199,  0.60395,  0.07657],
    [ 0.21421,  0.60309,  0.07622],
    [-0.56522,  0.49170, -0.10163],
    [ 0.56190,  0.48954, -0.10342],
    [-0.81011, -0.26053, -0.61174],
    [ 0.80751, -0.25989, -0.61360],
    [-0.81533, -0.09702, -0.57435],
    [ 0.81080, -0.09631, -0.57665],
    [-0.80125, -0.42169, -0.60520],
    [ 0.80116, -0.42132, -0.60622],
    [-0.72924, -0.18597, -0.15850],
    [ 0.72758, -0.18428, -0.15470],
    [-0.54601, -0.33839,  0.06039],
    [ 0.54649, -0.33587,  0.06378],
], np.float64)

