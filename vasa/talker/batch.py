"""Batch generation: many (portrait, speech) pairs in one call, the model loaded once.

Input (:func:`read_batch`):

* a **CSV** with a header: ``image`` and ``audio`` (or ``text`` with optional ``voice`` and
  ``language``), optional ``out`` (mp4 name) and per-row controls ``gaze`` (``"yaw,pitch"``),
  ``distance``, ``emotion``, ``seed``, ``steps``, ``cfg_audio``, ``cfg_gaze``. Relative paths are
  relative to the CSV's folder;
* a **folder**: images and audio files paired by file stem (``alice.jpg`` + ``alice.wav``); a
  folder with exactly one image uses it for every audio file.

Each output is ``out_dir/<out or audio stem>.mp4`` (plus ``.json`` motion with ``motion=True``). A
bad item is reported and skipped, never fatal: :func:`run_batch` returns one record per item.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

from vasa.errors import VasaError

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
AUDIO_EXT = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".mp4", ".webm", ".mkv", ".mov"}
CONTROL_COLUMNS = ("gaze", "distance", "emotion", "seed", "steps", "cfg_audio", "cfg_gaze")


@dataclass
class BatchItem:
    image: Path
    audio: Path | None = None
    text: str | None = None
    voice: str = "m1"
    language: str = "en"
    out: str = ""
    controls: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.out or (self.audio.stem if self.audio is not None else self.image.stem)


def _control(name: str, value: str):
    value = value.strip()
    if not value:
        return None
    try:
        if name in ("seed", "steps"):
            return int(value)
        if name in ("distance", "cfg_audio", "cfg_gaze"):
            return float(value)
    except ValueError:
        raise VasaError(f"batch column {name}: {value!r} is not a number") from None
    return value  # gaze "yaw,pitch" and emotion are parsed by Controls


def read_batch(src: str | Path) -> list[BatchItem]:
    """The items of a CSV or a folder (see the module docstring)."""
    src = Path(src)
    if src.is_dir():
        return _read_folder(src)
    if not src.is_file():
        raise VasaError(f"batch input not found: {src} (give a CSV file or a folder of images + audio)")
    try:
        with open(src, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise VasaError(f"cannot read batch CSV {src}: {e}") from None
    if not rows or "image" not in rows[0] or not ({"audio", "text"} & set(rows[0])):
        raise VasaError(f"batch CSV {src} needs a header with 'image' and 'audio' (or 'text') columns")
    items = []
    for r in rows:
        r = {k.strip(): (v or "") for k, v in r.items() if k}
        if not r.get("image", "").strip():
            continue
        img = src.parent / r["image"].strip()
        aud = src.parent / r["audio"].strip() if r.get("audio", "").strip() else None
        text = r.get("text", "").strip() or None
        if aud is None and text is None:
            raise VasaError(f"batch CSV {src}: row for {r['image']!r} has neither audio nor text")
        controls = {k: _control(k, r[k]) for k in CONTROL_COLUMNS if k in r and r[k].strip()}
        items.append(BatchItem(img, aud, text, r.get("voice", "").strip() or "m1",
                               r.get("language", "").strip() or "en", Path(r.get("out", "").strip()).stem, controls))
    if not items:
        raise VasaError(f"batch CSV {src} has no rows")
    return items


def _read_folder(src: Path) -> list[BatchItem]:
    files = sorted(p for p in src.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXT]
    audios = [p for p in files if p.suffix.lower() in AUDIO_EXT]
    if not images or not audios:
        raise VasaError(f"batch folder {src} needs images and audio files (paired by name, e.g. alice.jpg + alice.wav)")
    if len(images) == 1:
        return [BatchItem(images[0], a) for a in audios]
    by_stem = {p.stem: p for p in images}
    items = [BatchItem(by_stem[a.stem], a) for a in audios if a.stem in by_stem]
    if not items:
        raise VasaError(f"batch folder {src}: no image and audio file share a name (pair them as alice.jpg + alice.wav)")
    return items


def item_audio(item: BatchItem):
    """The item's audio path, or synthesised speech ``(samples, 16000)`` for a text item."""
    if item.audio is not None:
        return item.audio
    from vasa.synth.speech import synthesize

    utt = synthesize(item.text, item.language, item.voice)
    return utt.audio, utt.sr


def run_batch(talker, src, out_dir: str | Path, *, motion: bool = False, keep_frames: bool = False,
              log=None, **options) -> list[dict]:
    """Generate every item of ``src`` (a path or a list of :class:`BatchItem`) into ``out_dir``.

    ``options`` go to :meth:`Talker.generate` (resolution, crop, paste, watermark, controls); per-item
    controls from the CSV override them. Returns one record per item: ``image``, ``audio``, ``out``,
    ``ok``, ``error``, ``frames``, ``seconds`` (and ``generation`` with ``keep_frames``).
    ``log(line)`` is called once per item.
    """
    items = read_batch(src) if isinstance(src, (str, Path)) else list(src)
    out_dir = Path(out_dir)
    used: dict[str, int] = {}
    results = []
    for item in items:
        name = item.name
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name}_{used[name]}"
        out = out_dir / f"{name}.mp4"
        rec = {"image": str(item.image), "audio": str(item.audio) if item.audio else None, "text": item.text,
               "out": str(out), "ok": False, "error": None}
        t0 = time.perf_counter()
        try:
            gen = talker.generate(item.image, item_audio(item), out=out, keep_frames=keep_frames,
                                  motion_out=out.with_suffix(".json") if motion else None,
                                  **{**options, **item.controls})
            rec.update(ok=True, frames=gen.num_frames)
            if keep_frames:
                rec["generation"] = gen
        except VasaError as e:
            rec["error"] = str(e)
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        results.append(rec)
        if log is not None:
            log(f"{out}: {rec['frames']} frames in {rec['seconds']:.1f} s" if rec["ok"] else
                f"{item.image.name} + {item.audio.name if item.audio else 'text'}: FAILED: {rec['error']}")
    return results
