"""Quality bars of the generated corpus, measured with models vasa did not train.

- MediaPipe face detection finds the face in >= 90% of frames with |yaw| <= 30 degrees.
- The MediaPipe face-mesh mouth opening correlates with the ground-truth jaw: Pearson r >= 0.8.
- pocketsphinx forced alignment agrees with espeak's phoneme onsets: median error <= 20 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.synth.params import PARAM_INDEX

BARS = {"detection_rate": (">=", 0.90), "mouth_jaw_pearson_r": (">=", 0.80), "align_median_error_ms": ("<=", 20.0)}


@dataclass
class QualityReport:
    """Figures plus the per-frame measurements behind them (for plots)."""

    figures: dict
    yaw: np.ndarray = field(repr=False)  # (N,) ground-truth yaw of every checked frame
    detected: np.ndarray = field(repr=False)  # (N,) bool
    jaw: np.ndarray = field(repr=False)  # (N,) ground-truth jaw
    mouth: np.ndarray = field(repr=False)  # (N,) MediaPipe mouth opening (NaN: no mesh)
    align_errors_ms: np.ndarray = field(repr=False)

    def passed(self) -> dict[str, bool]:
        out = {}
        for k, (op, bar) in BARS.items():
            v = self.figures.get(k)
            out[k] = v is not None and (v >= bar if op == ">=" else v <= bar)
        return out


def corpus_quality(root: str, n_clips: int = 40, frame_stride: int = 2, split: str = "test",
                   align_clips: int | None = None, progress: bool = True) -> QualityReport:
    """Measure the quality bars on ``n_clips`` English photo clips of ``split`` (every
    ``frame_stride``-th frame), and the alignment bar on ``align_clips`` of them (default all)."""
    from vasa.eval.landmarks import FaceDetector, FaceMesh
    from vasa.synth.align import onset_errors_ms

    corpus = Corpus(root)
    recs = [r for r in corpus.records(split=split, kind="speech") if r["language"] == "en" and r["style"] == "photo"]
    recs = recs[:n_clips]
    if not recs:
        raise VasaError(f"no English photo clips in split {split!r} of {root} to check")
    det, mesh = FaceDetector(), FaceMesh(static=True)
    yaw, found, jaw, mouth, errs = [], [], [], [], []
    try:
        for k, r in enumerate(tqdm(recs, desc="quality", disable=not progress)):
            clip = corpus.load_clip(r["id"])
            idx = np.arange(0, len(clip.frames), frame_stride)
            frames, p = clip.frames[idx], clip.params[idx]
            yaw.append(p[:, PARAM_INDEX["yaw"]])
            jaw.append(p[:, PARAM_INDEX["jaw"]])
            found.append(det.found(frames))
            mouth.append(mesh.mouth_openings(frames))
            if align_clips is None or k < align_clips:
                errs.append(onset_errors_ms(clip.audio, 16000, r["text"], r["phonemes"]))
    finally:
        det.close()
        mesh.close()
    yaw_a, found_a = np.concatenate(yaw), np.concatenate(found)
    jaw_a, mouth_a = np.concatenate(jaw), np.concatenate(mouth)
    err_a = np.concatenate(errs) if errs else np.zeros(0)
    frontal = np.abs(yaw_a) <= 30
    ok = ~np.isnan(mouth_a)
    r = float(np.corrcoef(jaw_a[ok], mouth_a[ok])[0, 1]) if ok.sum() > 2 and jaw_a[ok].std() > 0 else float("nan")
    figures = dict(
        clips=len(recs), frames=int(len(yaw_a)),
        detection_rate=round(float(found_a[frontal].mean()), 4) if frontal.any() else None,
        detection_rate_all_yaw=round(float(found_a.mean()), 4) if len(found_a) else None,
        mesh_rate=round(float(ok.mean()), 4) if len(ok) else None,
        mouth_jaw_pearson_r=round(r, 4),
        align_phones=int(len(err_a)),
        align_median_error_ms=round(float(np.median(np.abs(err_a))), 2) if len(err_a) else None,
    )
    return QualityReport(figures, yaw_a, found_a, jaw_a, mouth_a, err_a)
