"""Corpus shards: many clips in one file that loads fast, plus a JSON sidecar of clip records.

Layout of a corpus folder (``data/corpus`` by default)::

    schema.json                 fps, sample rate, resolution, parameter names, camera, format version
    manifest.jsonl              one JSON record per clip (id, kind, split, shard, n_frames, labels...)
    stats.json                  corpus statistics (also DVC metrics)
    synth_timing.json           wall-clock seconds of each `vasa synth` run (in .dvcignore: not content)
    shards/<name>.npz           frames + audio + per-frame ground truth of a group of clips
    shards/<name>.json          the clip records of that shard (written last: the completeness mark)
    clips/<split>/<id>.mp4      every clip as H.264 + AAC mp4 (25 fps, audio muxed)

A shard ``.npz`` (uncompressed, so it loads with one read) holds::

    jpeg          uint8  (B,)      JPEG bytes of every frame, concatenated (quality 95, 4:4:4, RGB)
    jpeg_offsets  int64  (N+1,)    frame i is jpeg[jpeg_offsets[i]:jpeg_offsets[i+1]]
    clip_offsets  int64  (C+1,)    clip c owns frames clip_offsets[c]:clip_offsets[c+1]
    params        float32 (N, P)   per-frame ground truth, columns = schema["params"]
    viseme        int16  (N,)      per-frame viseme class (-1 where there is no speech track)
    audio         int16  (S,)      16 kHz mono audio of every clip, concatenated
    audio_offsets int64  (C+1,)    clip c owns audio[audio_offsets[c]:audio_offsets[c+1]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vasa.errors import VasaError
from vasa.io.atomic import atomic_path, write_text

JPEG_QUALITY = 95


def encode_jpeg(frame: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """RGB uint8 H x W x 3 -> JPEG bytes as a uint8 array."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [
        cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise VasaError("JPEG encoding failed")
    return buf.reshape(-1)


def decode_jpeg(buf: np.ndarray) -> np.ndarray:
    """JPEG bytes -> RGB uint8 H x W x 3."""
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img[..., ::-1]


@dataclass
class ClipData:
    """One clip in memory: frames, audio and ground truth."""

    record: dict  # JSON-serialisable metadata (id, split, text, phonemes, conditions, identity, ...)
    frames: np.ndarray  # T x H x W x 3 uint8
    params: np.ndarray  # T x P float32
    viseme: np.ndarray | None = None  # T int
    audio: np.ndarray | None = None  # S float32, 16 kHz
    extra: dict = field(default_factory=dict)


def write_shard(path_npz: Path, clips: list[ClipData]) -> list[dict]:
    """Write clips to ``path_npz`` and their records to the ``.json`` sidecar, both atomically.

    Returns the records, each completed with ``shard`` and ``index`` (position in the shard).
    """
    jpegs, params, visemes, audios = [], [], [], []
    clip_offsets, audio_offsets = [0], [0]
    for c in clips:
        t = len(c.frames)
        if c.params.shape[0] != t:
            raise ValueError(f"clip {c.record.get('id')}: {t} frames but {c.params.shape[0]} param rows")
        jpegs.extend(encode_jpeg(f) for f in c.frames)
        params.append(c.params.astype(np.float32))
        visemes.append(np.full(t, -1, np.int16) if c.viseme is None else c.viseme.astype(np.int16))
        a = np.zeros(0, np.float32) if c.audio is None else c.audio
        audios.append(np.round(np.clip(a, -1, 1) * 32767).astype(np.int16))
        clip_offsets.append(clip_offsets[-1] + t)
        audio_offsets.append(audio_offsets[-1] + len(a))
    lens = np.array([len(j) for j in jpegs], np.int64)
    arrays = dict(
        jpeg=np.concatenate(jpegs) if jpegs else np.zeros(0, np.uint8),
        jpeg_offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        clip_offsets=np.array(clip_offsets, np.int64),
        params=np.concatenate(params) if params else np.zeros((0, 0), np.float32),
        viseme=np.concatenate(visemes) if visemes else np.zeros(0, np.int16),
        audio=np.concatenate(audios) if audios else np.zeros(0, np.int16),
        audio_offsets=np.array(audio_offsets, np.int64),
    )
    with atomic_path(path_npz, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    records = []
    for i, c in enumerate(clips):
        rec = dict(c.record)
        rec.update(shard=path_npz.stem, index=i, n_frames=int(len(c.frames)))
        records.append(rec)
    write_text(path_npz.with_suffix(".json"), json.dumps(records) + "\n")
    return records


def shard_complete(path_npz: Path) -> bool:
    """A shard is complete when its sidecar exists and parses (it is written after the npz)."""
    side = path_npz.with_suffix(".json")
    if not (path_npz.is_file() and side.is_file()):
        return False
    try:
        json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


class Shard:
    """Read access to one shard; arrays are loaded once and frames decoded on demand."""

    def __init__(self, path_npz: str | Path):
        self.path = Path(path_npz)
        if not shard_complete(self.path):
            raise VasaError(f"shard {self.path} is missing or incomplete (re-run `vasa synth` to finish it)")
        with np.load(self.path) as z:
            self.arrays = {k: z[k] for k in z.files}
        self.records: list[dict] = json.loads(self.path.with_suffix(".json").read_text())

    def __len__(self) -> int:
        return len(self.records)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` of the shard (global index inside the shard), RGB uint8."""
        off = self.arrays["jpeg_offsets"]
        return decode_jpeg(self.arrays["jpeg"][off[i]:off[i + 1]])

    def frames(self, c: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` of clip ``c``: T x H x W x 3 uint8."""
        lo, hi = self.arrays["clip_offsets"][c], self.arrays["clip_offsets"][c + 1]
        stop = hi - lo if stop is None else stop
        return np.stack([self.frame(lo + i) for i in range(start, stop)])

    def clip(self, c: int) -> ClipData:
        """Clip ``c`` fully decoded."""
        lo, hi = self.arrays["clip_offsets"][c], self.arrays["clip_offsets"][c + 1]
        alo, ahi = self.arrays["audio_offsets"][c], self.arrays["audio_offsets"][c + 1]
        audio = self.arrays["audio"][alo:ahi].astype(np.float32) / 32767.0
        return ClipData(
            record=self.records[c],
            frames=self.frames(c),
            params=self.arrays["params"][lo:hi],
            viseme=self.arrays["viseme"][lo:hi],
            audio=audio,
        )
