"""Every measure of one video, the same code for every row: :class:`VideoMeasurer`.

Input: frames (T x H x W x 3 uint8, 25 fps), the 16 kHz audio that drove them, the source portrait,
and, where the item has one, the ground-truth parameters of the clip whose audio is used. Output: a
flat dict of numbers (the table's cells) plus a few arrays for the plots (``_`` keys):

=============  =====================================================================================
key            what
=============  =====================================================================================
s_c, s_d       SyncNet protocol with our expert (:mod:`vasa.eval.sync`); ``offset`` (frames)
s_c_official   the same with the official SyncNet weights, when configured
capp           CAPP score of the measured head pose with the audio (:mod:`vasa.eval.capp`)
dp             mean absolute frame-to-frame head-angle change, degrees (face-mesh PnP estimator)
pose_std       standard deviation of yaw / pitch / roll over the video, mean of the three (degrees)
gaze_std       standard deviation of the measured gaze (yaw / pitch mean, degrees)
det_rate       share of frames where MediaPipe's detector finds a face
mouth_jaw_r    Pearson r of the measured mouth opening with the ground-truth jaw track of the audio's clip
mouth_audio_r  Pearson r of the measured mouth opening with the audio's RMS energy per frame
jitter         high-frequency (> 8 Hz) RMS of the mesh landmark tracks, % of the face height
csim           dlib descriptor cosine of the source portrait with ``csim_frames`` evenly spaced frames
drift          identity drift: cosine of the mean dlib embeddings of the first and last ``drift_seconds``
psnr, ssim     against the ground-truth frames (reconstruction), when the item has them
emotion        the classifier's emotion of the video (a string); ``gaze_main``, ``distance`` measured
=============  =====================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasa.eval import metrics as M
from vasa.eval.capp import capp_score
from vasa.eval.crops import crop_faces, fill_boxes, lower_half
from vasa.eval.emotion import video_emotion
from vasa.eval.experts import Experts
from vasa.eval.fd import segment_features
from vasa.eval.sync import offset_distances, score_from_distances, sync_score
from vasa.eval.tracks import FaceTracker, FaceTracks
from vasa.synth.params import PARAM_INDEX

FPS, SR = 25, 16000


def _resize(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Frames at another resolution resampled to ``hw`` (area / cubic) for pixel comparisons."""
    if frames.shape[1:3] == tuple(hw):
        return frames
    import cv2

    interp = cv2.INTER_AREA if frames.shape[1] > hw[0] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=interp) for f in frames])


def _even(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else np.zeros(0, int)


@dataclass
class VideoMeasurer:
    """Holds the judges (experts, MediaPipe, dlib) and measures videos (see the module docstring)."""

    experts: Experts
    official: object | None = None  # vasa.eval.syncnet_official.OfficialSync
    csim_frames: int = 4
    drift_seconds: float = 5.0
    drift_frames: int = 4
    ssim_stride: int = 5

    def __post_init__(self):
        from vasa.eval.identity import DlibFaceEmbedder

        self.tracker = FaceTracker()
        self.embedder = DlibFaceEmbedder()
        self._portrait_key, self._portrait_emb = None, None

    def close(self) -> None:
        self.tracker.close()

    def portrait_embedding(self, portrait: np.ndarray) -> np.ndarray:
        key = (portrait.shape, hash(portrait.tobytes()))
        if key != self._portrait_key:
            self._portrait_key, self._portrait_emb = key, self.embedder.embed(portrait)
        return self._portrait_emb

    def identity(self, portrait: np.ndarray, frames: np.ndarray) -> float:
        e = self.portrait_embedding(portrait)
        emb, _ = self.embedder.embed_many([frames[i] for i in _even(len(frames), self.csim_frames)])
        return float((emb @ e).mean()) if len(emb) else float("nan")

    def drift(self, frames: np.ndarray) -> float:
        """Identity drift of a whole video (needs at least twice ``drift_seconds``)."""
        n = int(self.drift_seconds * FPS)
        if len(frames) < 2 * n:
            return float("nan")
        first, _ = self.embedder.embed_many([frames[i] for i in _even(n, self.drift_frames)])
        last, _ = self.embedder.embed_many([frames[len(frames) - n + i] for i in _even(n, self.drift_frames)])
        return M.identity_drift(first, last)

    def __call__(self, frames: np.ndarray, audio: np.ndarray, portrait: np.ndarray, gt_params: np.ndarray | None = None,
                 gt_frames: np.ndarray | None = None, full_frames: np.ndarray | None = None, fd: bool = True) -> dict:
        """Measure ``frames`` (already cut to the measured window) driven by ``audio`` (same window).

        ``full_frames``: the whole video, for identity drift (long videos). ``fd``: also return the
        FD-vasa-expert segment features (``_fd``).
        """
        t = len(frames)
        audio = np.pad(np.asarray(audio, np.float32), (0, max(0, t * 640 - len(audio))))[:t * 640]
        tr: FaceTracks = self.tracker(frames)
        out: dict = {"frames": t, "det_rate": tr.detection_rate}
        boxes = fill_boxes(tr.boxes, tr.found, frames.shape[1:3], self.experts.spec.smooth)
        crops = crop_faces(frames, boxes, self.experts.spec)
        ex = self.experts
        if ex.sync is not None and t > 5:
            v = ex.sync.lip_embeddings_from_crops(lower_half(crops))
            s = score_from_distances(offset_distances(v, ex.sync.audio_embeddings(audio, t), edge=ex.sync.edge))
            out.update(s_c=s.confidence, s_d=s.distance, offset=float(s.offset), abs_offset=float(abs(s.offset)),
                       _mdist=s.mdist)
        if self.official is not None and t > 5:
            so = sync_score(self.official, frames, audio, boxes=boxes)
            out.update(s_c_official=so.confidence, s_d_official=so.distance, offset_official=float(so.offset))
        angles = tr.angles
        out["dp"] = M.pose_change(angles)
        out["pose_std"] = float(np.nanmean(np.nanstd(angles, 0))) if np.isfinite(angles).any() else float("nan")
        g = tr.gaze
        out["gaze_std"] = float(np.nanmean(np.nanstd(g, 0))) if np.isfinite(g).any() else float("nan")
        if ex.capp is not None:
            out["capp"] = capp_score(ex.capp, angles, audio)
        jaw = tr.labels[:, PARAM_INDEX["jaw"]]
        rms = M.audio_rms(audio, t)
        out["mouth_audio_r"] = M.pearson(jaw, rms)
        if gt_params is not None:
            out["mouth_jaw_r"] = M.pearson(jaw, gt_params[:t, PARAM_INDEX["jaw"]])
        out["jitter"] = M.jitter(tr.landmarks)
        out["csim"] = self.identity(portrait, frames)
        if full_frames is not None:
            out["drift"] = self.drift(full_frames)
        if gt_frames is not None and gt_frames is not frames:
            n = min(t, len(gt_frames))
            a = _resize(frames[:n], gt_frames.shape[1:3])
            out["psnr"] = M.psnr(a, gt_frames[:n])
            out["ssim"] = float(np.mean([M.ssim(a[i], gt_frames[i]) for i in range(0, n, self.ssim_stride)]))
        if ex.emotion is not None:
            espec = ex.emotion_spec or ex.spec
            faces = crops if espec == ex.spec else crop_faces(frames, boxes, espec)
            out["emotion"], _ = video_emotion(ex.emotion, faces)
            if fd:
                out["_fd"] = segment_features(faces, ex.emotion, ex.sync, lower_half(crops))
        mg = tr.main_gaze()
        out["gaze_main_yaw"], out["gaze_main_pitch"] = (mg if mg is not None else (float("nan"), float("nan")))
        d = tr.distance()
        out["distance"] = float("nan") if d is None else d
        out["_angles"], out["_jaw"], out["_rms"] = angles, jaw, rms
        return out

    def emotion_only(self, frames: np.ndarray) -> str | None:
        """The classified emotion of a video (detector + crops + classifier only: cheap)."""
        if self.experts.emotion is None:
            return None
        from vasa.eval.crops import detect_boxes

        spec = self.experts.emotion_spec or self.experts.spec
        boxes, found = detect_boxes(frames, self.tracker.detector)
        crops = crop_faces(frames, fill_boxes(boxes, found, frames.shape[1:3], spec.smooth), spec)
        return video_emotion(self.experts.emotion, crops)[0]
