"""FD-vasa-expert: a Fréchet distance in a video feature space trained in this project.

The I3D weights behind FVD cannot be had here, so this is **not FVD** and must never be called so.
Features of a 1 s segment (25 frames of face crops, :mod:`vasa.eval.crops`):

* the expression classifier's penultimate features (:mod:`vasa.eval.emotion`), mean and standard
  deviation over the segment's frames (appearance and expression, and how they move);
* the sync expert's lip-window embeddings (:mod:`vasa.eval.sync_expert`), mean and standard
  deviation over the segment's 5-frame windows (mouth motion).

The distance between the Gaussians of two rows' segment features
(:func:`vasa.eval.metrics.frechet_distance`) is biased upwards for small samples: compare rows on the
same test set (same number of segments) only.
"""

from __future__ import annotations

import numpy as np

from vasa.eval.crops import lower_half
from vasa.eval.emotion import EmotionNet, emotion_features

SEGMENT = 25  # frames per segment (1 s)
NAME = "FD-vasa-expert"


def segment_features(crops: np.ndarray, emotion: EmotionNet, sync=None, lips: np.ndarray | None = None,
                     segment: int = SEGMENT) -> np.ndarray:
    """T x S x S x 3 face crops (the classifier's) -> N x D features of the ``T // segment`` whole
    segments (N may be 0).

    ``sync``: an :class:`vasa.eval.sync_expert.ExpertSync` whose lip embeddings of ``lips`` (T mouth
    crops; default the lower half of ``crops``) are appended, or None.
    """
    n = len(crops) // segment
    if n == 0:
        return np.zeros((0, 0), np.float32)
    crops = crops[: n * segment]
    e = emotion_features(emotion, crops).reshape(n, segment, -1)
    parts = [e.mean(1), e.std(1)]
    if sync is not None:
        lips = lower_half(crops) if lips is None else lips[: n * segment]
        v = np.stack([sync.lip_embeddings_from_crops(lips[k * segment:(k + 1) * segment]) for k in range(n)])
        parts += [v.mean(1), v.std(1)]
    return np.concatenate(parts, 1).astype(np.float32)
