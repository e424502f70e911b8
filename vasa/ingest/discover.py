"""Find the input videos of a real dataset and what their paths say: identity, emotion, transcript.

``discover(src)`` accepts a folder (searched recursively) or a CSV list of files. Layouts recognised
from the paths (the rest falls back to "identity = the folder that holds the file"):

=========== ============================================ ======================================
dataset     layout                                       labels taken from it
=========== ============================================ ======================================
VoxCeleb2   ``id00012/21Uxsk56VDQ/00001.mp4``             identity ``id00012``
HDTF        ``WRA_AdamSchiff_000.mp4`` (any folder)        identity ``WRA_AdamSchiff``
MEAD        ``M003/video/front/happy/level_2/001.mp4``     identity ``M003``, emotion, level 1-3
RAVDESS     ``Actor_01/01-01-03-02-01-01-01.mp4``           identity ``ravdess_01``, emotion, intensity
=========== ============================================ ======================================

A CSV needs a ``path`` column (relative paths are relative to the CSV's folder) and may carry
``identity``, ``emotion``, ``emotion_intensity`` and ``text`` columns, which win over the layout.
A transcript ``<video>.txt`` next to a video is read as its text.

``shard_items(items, i, n)`` partitions the list deterministically by a hash of each file's
relative path, so ``--shard i/n`` runs on any number of machines cover every input exactly once,
and adding files to the dataset does not move the others between shards.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from vasa.errors import VasaError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg",
                              ".ts", ".3gp", ".wmv", ".ogv"})
_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_EMOTION = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fearful", "07": "disgust", "08": "surprised"}
_VOX_ID = re.compile(r"^id\d{5}$")
_HDTF = re.compile(r"^((?:WRA|WDA|RD)_[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)_\d+$")
_MEAD_LEVEL = re.compile(r"^level_?(\d)$")
_MEAD_ID = re.compile(r"^[MW]\d{3}$")


@dataclass(frozen=True)
class VideoItem:
    """One input video and the labels its location carries."""

    path: str  # absolute path
    rel: str  # path relative to the source folder (or as listed in the CSV): the stable name
    identity: str
    dataset: str  # voxceleb2 | hdtf | mead | ravdess | folder | csv
    emotion: str | None = None  # the dataset's own emotion word, if the layout has one
    emotion_intensity: float | None = None  # 0..1
    text: str | None = None  # transcript

    @property
    def key(self) -> str:
        """Stable 16-hex-digit name of this input (hash of ``rel``)."""
        return hashlib.sha1(self.rel.encode("utf-8")).hexdigest()[:16]


def layout_labels(rel: str) -> dict:
    """Identity, dataset and emotion that a relative path implies (see the module table)."""
    p = Path(rel)
    parts, stem = p.parts, p.stem
    m = _RAVDESS.match(stem)
    if m:
        intensity = {"01": 0.5, "02": 1.0}.get(m.group(4), 0.5)
        return dict(identity=f"ravdess_{m.group(7)}", dataset="ravdess",
                    emotion=_RAVDESS_EMOTION.get(m.group(3)), emotion_intensity=intensity)
    for i, part in enumerate(parts[:-1]):
        lm = _MEAD_LEVEL.match(part)
        if lm and i >= 1:
            ident = next((q for q in parts[:i] if _MEAD_ID.match(q)), parts[0])
            return dict(identity=ident, dataset="mead", emotion=parts[i - 1].lower(),
                        emotion_intensity=round(min(int(lm.group(1)), 3) / 3, 4))
    vox = [q for q in parts[:-1] if _VOX_ID.match(q)]
    if vox:
        return dict(identity=vox[-1], dataset="voxceleb2")
    m = _HDTF.match(stem)
    if m:
        return dict(identity=m.group(1), dataset="hdtf")
    return dict(identity=parts[-2] if len(parts) > 1 else stem, dataset="folder")


def _transcript(path: Path) -> str | None:
    txt = path.with_suffix(".txt")
    if txt.is_file():
        try:
            text = " ".join(txt.read_text(encoding="utf-8", errors="replace").split())
        except OSError:
            return None
        return text or None
    return None


def _from_csv(csv_path: Path) -> list[VideoItem]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise VasaError(f"cannot read the video list {csv_path}: {e}") from None
    if "path" not in fields:
        raise VasaError(f"{csv_path} needs a 'path' column (optional: identity, emotion, emotion_intensity, text)")
    items = []
    for n, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("path"):
            raise VasaError(f"{csv_path} line {n}: empty 'path'")
        p = Path(row["path"])
        full = p if p.is_absolute() else csv_path.parent / p
        lab = layout_labels(row["path"])
        inten = row.get("emotion_intensity")
        try:
            inten_v = float(inten) if inten else lab.get("emotion_intensity")
        except ValueError:
            raise VasaError(f"{csv_path} line {n}: emotion_intensity {inten!r} is not a number") from None
        items.append(VideoItem(
            path=str(full.resolve()), rel=row["path"], identity=row.get("identity") or lab["identity"],
            dataset="csv" if lab["dataset"] == "folder" else lab["dataset"],
            emotion=row.get("emotion") or lab.get("emotion"), emotion_intensity=inten_v,
            text=row.get("text") or _transcript(full)))
    return items


def discover(src: str | Path) -> list[VideoItem]:
    """Every video under folder ``src`` (recursively) or listed in CSV ``src``, sorted by ``rel``."""
    src = Path(src)
    if not src.exists():
        raise VasaError(f"video source not found: {src} (give a folder of videos or a CSV with a 'path' column)")
    if src.is_file():
        if src.suffix.lower() != ".csv":
            raise VasaError(f"{src} is a file but not a .csv list: give a folder of videos or a CSV")
        items = _from_csv(src)
    else:
        items = []
        for p in sorted(src.rglob("*")):
            if p.suffix.lower() not in VIDEO_EXTENSIONS or not p.is_file() or any(
                    q.startswith(".") for q in p.relative_to(src).parts):
                continue
            rel = p.relative_to(src).as_posix()
            lab = layout_labels(rel)
            items.append(VideoItem(path=str(p.resolve()), rel=rel, identity=lab["identity"], dataset=lab["dataset"],
                                   emotion=lab.get("emotion"), emotion_intensity=lab.get("emotion_intensity"),
                                   text=_transcript(p)))
    seen: set[str] = set()
    unique = []
    for it in sorted(items, key=lambda x: x.rel):
        if it.rel not in seen:
            seen.add(it.rel)
            unique.append(it)
    return unique


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; None -> (0, 1)."""
    if spec is None or spec == "":
        return 0, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise VasaError(f"--shard {spec!r} must be i/n with 0 <= i < n (e.g. 0/4 for the first of four)")
    return int(m.group(1)), int(m.group(2))


def shard_items(items: list[VideoItem], index: int, count: int) -> list[VideoItem]:
    """The inputs of shard ``index`` of ``count``: a partition by the hash of each relative path."""
    if count == 1:
        return list(items)
    return [it for it in items if int(it.key, 16) % count == index]
