"""Training arrays of the evaluation experts, cut once from the corpus and held in memory.

For each speech clip of a split (at most ``max_clips``, a seeded choice):

* ``lips``  T x S/2 x S x 3 uint8: the lower half of every frame's face crop
  (:mod:`vasa.eval.crops`, the crop the scorer uses) -- the sync expert's visual input;
* ``faces`` K x F x F x 3 uint8: whole face crops of K evenly spaced frames (emotion classifier; its
  own crop size ``face_spec``);
* ``mel``   T x 320 float16: frame-aligned log-mel (:func:`vasa.audio.features.log_mel_frames`);
* ``pose``  T x 3 float32: ground-truth yaw, pitch, roll in degrees (CAPP);
* ``emotion`` (index into ``vasa.synth.params.EMOTIONS``) and its intensity, from the record's
  conditions, and ``face_params``: the ground-truth expression parameters (smile, brows, eye
  opening, lip press) of the K face crops (the classifier's auxiliary target).

Face boxes come from MediaPipe on every ``detect_stride``-th frame, interpolated in between (a
corpus head moves slowly; detection on every frame would dominate the stage's time).
Memory: about (S/2 * S * 3 + 640) bytes per frame, 8 MB per 1,000 frames at S = 48.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from vasa.audio.config import AudioConfig
from vasa.audio.features import log_mel_frames
from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.eval.crops import CropSpec, crop_faces, detect_boxes, fill_boxes, lower_half
from vasa.synth.params import EMOTIONS, PARAM_INDEX

POSE_COLUMNS = ("yaw", "pitch", "roll")
EXPRESSION_COLUMNS = ("smile", "brow_raise", "brow_furrow", "eye_wide", "lip_press")  # what emotions change


@dataclass
class ClipArrays:
    id: str
    lips: np.ndarray  # T x S/2 x S x 3 uint8
    faces: np.ndarray  # K x S x S x 3 uint8
    mel: np.ndarray  # T x F float16
    pose: np.ndarray  # T x 3 float32 (degrees)
    emotion: int
    intensity: float
    face_params: np.ndarray | None = None  # K x len(EXPRESSION_COLUMNS) ground truth of the face crops

    def __len__(self) -> int:
        return len(self.lips)


def clip_mel(audio: np.ndarray, n_frames: int, cfg: AudioConfig | None = None) -> np.ndarray:
    """Log-mel of a clip, exactly ``n_frames`` rows (zero-padded audio / trimmed): T x F float32."""
    cfg = cfg or AudioConfig()
    a = np.asarray(audio, np.float32).reshape(-1)
    need = n_frames * cfg.samples_per_frame
    a = np.pad(a, (0, max(0, need - len(a))))[:need]
    return log_mel_frames(a, cfg).numpy()[:n_frames]


def select_records(corpus: Corpus, split: str, max_clips: int = 0, seed: int = 0) -> list[dict]:
    """Speech records of ``split`` (all when ``max_clips`` is 0, else a seeded choice, in id order)."""
    recs = sorted(corpus.records(split=split, kind="speech"), key=lambda r: r["id"])
    if max_clips and len(recs) > max_clips:
        pick = np.random.default_rng(seed).choice(len(recs), max_clips, replace=False)
        recs = [recs[i] for i in sorted(pick)]
    return recs


def build_expert_data(corpus: str | Corpus, split: str = "train", spec: CropSpec | None = None, max_clips: int = 0,
                      faces_per_clip: int = 12, detect_stride: int = 12, seed: int = 0, progress: bool = True,
                      detector=None, face_spec: CropSpec | None = None) -> list[ClipArrays]:
    """The arrays above for the speech clips of ``split`` (see the module docstring)."""
    from vasa.eval.landmarks import FaceDetector

    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    spec = spec or CropSpec()
    recs = select_records(c, split, max_clips, seed)
    if not recs:
        raise VasaError(f"the corpus at {c.root} has no speech clips in split {split!r}")
    det = detector or FaceDetector()
    cols = [PARAM_INDEX[n] for n in POSE_COLUMNS]
    out = []
    for r in tqdm(recs, desc=f"expert data ({split})", disable=not progress):
        clip = c.load_clip(r["id"])
        frames = clip.frames
        boxes, found = detect_boxes(frames, det, detect_stride)
        filled = fill_boxes(boxes, found, frames.shape[1:3], spec.smooth)
        crops = crop_faces(frames, filled, spec)
        k = np.unique(np.linspace(0, len(frames) - 1, max(1, faces_per_clip)).round().astype(int))
        same = face_spec is None or face_spec == spec
        faces = crops[k].copy() if same else crop_faces(frames[k], filled[k], face_spec)
        cond = r.get("conditions") or {}
        emo = cond.get("emotion") or "neutral"
        out.append(ClipArrays(
            id=r["id"], lips=np.ascontiguousarray(lower_half(crops)), faces=faces,
            mel=clip_mel(clip.audio, len(frames)).astype(np.float16),
            pose=clip.params[:, cols].astype(np.float32),
            emotion=EMOTIONS.index(emo) if emo in EMOTIONS else -1,
            intensity=float(cond.get("emotion_intensity") or 0.0),
            face_params=clip.params[k][:, [PARAM_INDEX[n] for n in EXPRESSION_COLUMNS]].astype(np.float32)))
    if detector is None:
        det.close()
    return out


def mel_stats(data: list[ClipArrays], centred: bool = False) -> tuple[float, float]:
    """Global mean and std of the log-mel values (the experts' input normalisation); ``centred``:
    of the values minus each clip's mean per mel bin (the sync expert's input)."""
    from vasa.eval.sync_expert import centre_mel

    x = np.concatenate([(centre_mel(d.mel) if centred else d.mel.astype(np.float32)).reshape(-1) for d in data])
    return float(x.mean()), float(x.std() + 1e-6)
