"""Phonemes -> visemes -> coarticulated per-frame mouth tracks.

Viseme classes group IPA symbols by what the lips and jaw do. Each class has a target mouth shape
(``jaw``, ``lip_round``, ``lip_spread``, ``lip_press``) and a per-parameter *dominance*: how strongly
the class imposes that parameter on its neighbourhood (Cohen & Massaro 1993). A bilabial dominates
``lip_press`` (it must close the lips) but barely constrains rounding, so /m/ in "moon" is already
rounded; an alveolar hardly constrains the lips at all.

Coarticulation: every phoneme (or half of a diphthong) is a segment with a dominance function that
is flat over its central half and decays outside it as ``exp(-(d / tau)^1.5)``, with a longer
anticipatory ``tau`` (before the segment) than carry-over ``tau`` (after it); rounding anticipates
the furthest, as measured in speech production. A parameter at time t is the dominance-weighted
mean of the targets. Silences are segments too (mouth closed, lips lightly together) whose
dominance grows with their length: a pause shorter than 60 ms does not close the mouth, one of
150 ms or more closes it fully except within ~100 ms of the speech on either side (the mouth opens
before a phrase-initial vowel is heard).

Frames: frame k of a clip at ``fps`` is sampled at its centre, ``(k + 0.5) / fps``; per-frame phoneme
and viseme labels are read at the same instant (``"sil"`` / class 0 outside phonemes).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

MOUTH_PARAMS: tuple[str, ...] = ("jaw", "lip_round", "lip_spread", "lip_press")
SILENCE_LABEL = "sil"

# class name: (target jaw, round, spread, press), (dominance jaw, round, spread, press)
_CLASSES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "sil": ((0.00, 0.00, 0.00, 0.15), (4.0, 4.0, 4.0, 4.0)),
    "bilabial": ((0.03, 0.00, 0.00, 1.00), (3.0, 0.3, 0.3, 10.0)),
    "labiodental": ((0.10, 0.00, 0.15, 0.45), (2.0, 0.4, 0.5, 3.0)),
    "dental": ((0.18, 0.00, 0.25, 0.00), (1.5, 0.3, 0.5, 1.5)),
    "alveolar": ((0.15, 0.00, 0.15, 0.00), (1.0, 0.2, 0.2, 1.0)),
    "sibilant": ((0.08, 0.00, 0.35, 0.00), (2.0, 0.3, 0.8, 1.5)),
    "postalveolar": ((0.12, 0.55, 0.00, 0.00), (1.5, 1.5, 1.0, 1.5)),
    "velar": ((0.22, 0.00, 0.10, 0.00), (0.6, 0.15, 0.15, 1.0)),
    "rhotic": ((0.18, 0.45, 0.00, 0.00), (0.8, 1.0, 0.8, 1.0)),
    "labiovelar": ((0.12, 0.95, 0.00, 0.00), (1.5, 3.0, 2.0, 1.5)),
    "open": ((0.75, 0.00, 0.20, 0.00), (2.0, 1.0, 1.0, 1.5)),
    "mid": ((0.45, 0.00, 0.10, 0.00), (1.5, 0.5, 0.5, 1.5)),
    "spread": ((0.25, 0.00, 0.80, 0.00), (1.5, 1.5, 1.5, 1.5)),
    "round_close": ((0.22, 0.90, 0.00, 0.00), (1.5, 2.0, 1.5, 1.5)),
    "round_open": ((0.50, 0.65, 0.00, 0.00), (1.5, 2.0, 1.5, 1.5)),
}
VISEMES: tuple[str, ...] = tuple(_CLASSES)
VISEME_INDEX: dict[str, int] = {v: i for i, v in enumerate(VISEMES)}
TARGETS = np.array([c[0] for c in _CLASSES.values()], np.float64)  # (n_visemes, 4)
DOMINANCE = np.array([c[1] for c in _CLASSES.values()], np.float64)  # (n_visemes, 4)

_SYMBOLS = {
    "bilabial": "pbmɓʙɸβ",
    "labiodental": "fvʋɱ",
    "dental": "θð",
    "alveolar": "tdnlɾɫɬɮrʈɖɳɭɗcɟɲʎ",
    "sibilant": "szçʝ",
    "postalveolar": "ʃʒɕʑʂʐ",
    "velar": "kgɡŋxɣqɢχʁħʕhɦʔɰ",
    "rhotic": "ɹɻɚɝ",
    "labiovelar": "wɥʍ",
    "open": "aɑɒæɐäɶ",
    "mid": "əɛʌɜɘɞɤ",
    "spread": "iɪeɨᵻɯj",
    "round_close": "uʊyʏʉ",
    "round_open": "oɔøœɵ",
}
_CHAR_CLASS = {ch: VISEME_INDEX[name] for name, chars in _SYMBOLS.items() for ch in chars}
_VOWELS = {VISEME_INDEX[n] for n in ("open", "mid", "spread", "round_close", "round_open", "rhotic")}
# for a consonant cluster (affricates, aspirated stops) the most visible articulation wins
_PRIORITY = [VISEME_INDEX[n] for n in ("bilabial", "labiodental", "labiovelar", "postalveolar", "dental",
                                       "sibilant", "rhotic", "alveolar", "velar")]
_DEFAULT = VISEME_INDEX["mid"]  # an unknown symbol: a neutral, half-open mouth
_STRIP = re.compile("[ˈˌːˑ.‿\\-ʰʲʷˠˤ˞ⁿˡ˥˦˧˨˩0-9]")

# coarticulation time constants per mouth parameter (seconds)
_TAU_ANTICIPATE = np.array([0.050, 0.080, 0.060, 0.030])
_TAU_CARRY = np.array([0.035, 0.050, 0.040, 0.025])
_SHAPE = 1.5
_SIL_MIN, _SIL_FULL = 0.06, 0.15  # silence shorter than _SIL_MIN has no dominance; full from _SIL_FULL
_SIL_EDGE = 0.08  # the mouth starts opening about this long before speech (and closes as long after)


def normalize_ipa(ipa: str) -> str:
    """Drop stress, length, tone, syllable and modifier marks and combining diacritics."""
    base = "".join(c for c in unicodedata.normalize("NFD", ipa) if not unicodedata.combining(c))
    return _STRIP.sub("", base)


def phoneme_visemes(ipa: str) -> tuple[int, ...]:
    """Viseme class(es) of one phoneme: one class, or (first, last) for diphthongs and r-coloured vowels.

    An empty or silence symbol gives ``(0,)``; unknown symbols are ignored, and a phoneme made only of
    unknown symbols gives a neutral half-open mouth.
    """
    s = normalize_ipa(ipa)
    if s in ("", "_", SILENCE_LABEL):
        return (VISEME_INDEX["sil"],)
    classes = [_CHAR_CLASS[c] for c in s if c in _CHAR_CLASS]
    if not classes:
        return (_DEFAULT,)
    vowels = [c for c in classes if c in _VOWELS]
    if vowels:
        seq = vowels + ([classes[-1]] if classes[-1] not in _VOWELS else [])
        return (seq[0],) if len(set(seq)) == 1 else (seq[0], seq[-1])
    return (min(classes, key=_PRIORITY.index),)


@dataclass
class MouthTrack:
    """Per-frame mouth parameters (columns ``MOUTH_PARAMS``) and frame-centre labels."""

    mouth: np.ndarray  # (T, 4) float32
    phoneme: list[str]  # (T,) phoneme at frame centre, "sil" in silence
    viseme: np.ndarray  # (T,) int viseme class at frame centre


def frame_times(duration: float, fps: int) -> np.ndarray:
    """Centres of the ``ceil(duration * fps)`` frames of a clip, in seconds."""
    n = int(np.ceil(duration * fps - 1e-9))
    return (np.arange(n) + 0.5) / fps


def _segments(phonemes: list[tuple[float, float, str]], duration: float):
    """(start, end, class, dominance scale) for every phoneme half and silence of the clip."""
    segs: list[tuple[float, float, int, float]] = []
    cursor = 0.0
    for start, end, ipa in [*phonemes, (duration, duration, "")]:
        gap = start - cursor
        if gap > 0:
            weight = float(np.clip((gap - _SIL_MIN) / (_SIL_FULL - _SIL_MIN), 0.0, 1.0))
            if weight > 0:
                segs.append((cursor, start, VISEME_INDEX["sil"], weight))
        if end > start:
            classes = phoneme_visemes(ipa)
            step = (end - start) / len(classes)
            segs += [(start + k * step, start + (k + 1) * step, c, 1.0) for k, c in enumerate(classes)]
        cursor = max(cursor, end)
    return segs


def mouth_tracks(phonemes: list[tuple[float, float, str]], duration: float, fps: int = 25) -> MouthTrack:
    """Coarticulated mouth parameters and labels for a clip of ``duration`` seconds.

    ``phonemes`` are ``(start_s, end_s, ipa)`` sorted by time, as in ``Utterance.phonemes``.
    """
    t = frame_times(duration, fps)
    segs = _segments(phonemes, duration)
    if not segs:  # no speech and no silence long enough: keep the mouth at rest
        segs = [(0.0, duration, VISEME_INDEX["sil"], 1.0)]
    start = np.array([s[0] for s in segs])
    end = np.array([s[1] for s in segs])
    cls = np.array([s[2] for s in segs])
    scale = np.array([s[3] for s in segs])
    length = end - start
    # silences hold their core until _SIL_EDGE from the speech; phonemes over their central half
    margin = np.where(cls == VISEME_INDEX["sil"], np.minimum(_SIL_EDGE, length / 2), length / 4)
    core_lo, core_hi = start + margin, end - margin
    before = np.clip(core_lo[None, :] - t[:, None], 0.0, None)  # (T, S)
    after = np.clip(t[:, None] - core_hi[None, :], 0.0, None)
    alpha = DOMINANCE[cls] * scale[:, None]  # (S, 4)
    dist = before[:, :, None] / _TAU_ANTICIPATE + after[:, :, None] / _TAU_CARRY  # (T, S, 4)
    dom = alpha[None] * np.exp(-dist ** _SHAPE) + 1e-12
    mouth = (dom * TARGETS[cls][None]).sum(1) / dom.sum(1)

    phon_start = np.array([p[0] for p in phonemes]) if phonemes else np.zeros(0)
    idx = np.searchsorted(phon_start, t, side="right") - 1
    labels: list[str] = []
    visemes = np.zeros(len(t), np.int64)
    for k, (tk, i) in enumerate(zip(t, idx)):
        if i >= 0 and tk < phonemes[i][1]:
            s, e, ipa = phonemes[i]
            classes = phoneme_visemes(ipa)
            labels.append(ipa)
            visemes[k] = classes[min(int((tk - s) / (e - s) * len(classes)), len(classes) - 1)]
        else:
            labels.append(SILENCE_LABEL)
    return MouthTrack(mouth=mouth.astype(np.float32), phoneme=labels, viseme=visemes)
