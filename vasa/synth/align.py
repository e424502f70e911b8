"""Independent check of espeak's phoneme timings: pocketsphinx forced alignment of English speech.

espeak-ng reports where it *placed* each phoneme; a speech recogniser reports where the phones
*are* in the audio. Agreement between the two shows that the timings we train on (mouth shapes,
per-frame phoneme labels) match what is audible. Pocketsphinx's bundled US-English acoustic model
and CMU dictionary align at 10 ms frames.

Unit of comparison: phone onsets, matched by sequence alignment. The inventories differ (espeak
IPA vs CMU ARPAbet) and so do pronunciations (espeak reduces vowels, flaps /t/, merges ``ɑːɹ`` into
one event; CMU lists citation forms), so we (1) map each espeak phoneme to its ARPAbet phones
(a rhotic or diphthong cluster becomes several phones, of which only the first has a known onset;
an ambiguous symbol such as the flap ``ɾ`` lists every phone it may stand for), (2) align the two
phone sequences with an edit-distance dynamic programme, and (3) compare onsets only for aligned
pairs whose labels agree. Word onsets alone would be fewer and dominated by easy pause-initial
words; phone onsets test every transition, including stop closures and vowel onsets that drive
the mouth.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from vasa.errors import VasaError
from vasa.synth.speech import Utterance

# espeak en-us IPA symbol -> ARPAbet alternatives of its phones; longest symbols are matched first
_IPA_TO_ARPA: dict[str, tuple[tuple[str, ...], ...]] = {
    "tʃ": (("CH",),), "dʒ": (("JH",),), "aɪ": (("AY",),), "aʊ": (("AW",),), "ɔɪ": (("OY",),),
    "eɪ": (("EY",),), "oʊ": (("OW",),), "ɚ": (("ER",),), "ɜ": (("ER",),), "əl": (("AH",), ("L",)),
    "p": (("P",),), "b": (("B",),), "t": (("T",),), "d": (("D",),), "k": (("K",),), "ɡ": (("G",),),
    "m": (("M",),), "n": (("N",),), "ŋ": (("NG",),), "f": (("F",),), "v": (("V",),),
    "θ": (("TH",),), "ð": (("DH",),), "s": (("S",),), "z": (("Z",),), "ʃ": (("SH",),),
    "ʒ": (("ZH",),), "h": (("HH",),), "l": (("L",),), "w": (("W",),), "j": (("Y",),),
    "ɹ": (("R",),), "ɾ": (("T", "D"),), "ʔ": (("T",),), "i": (("IY",),), "ɪ": (("IH",),),
    "ᵻ": (("IH", "AH"),), "e": (("EY", "EH"),), "ɛ": (("EH",),), "æ": (("AE",),),
    "a": (("AE", "AA"),), "ɑ": (("AA",),), "ɒ": (("AA",),), "ɔ": (("AO",),), "o": (("OW",),),
    "ʊ": (("UH",),), "u": (("UW",),), "ʌ": (("AH",),), "ə": (("AH",),), "ɐ": (("AH",),),
}
_SYMBOLS = sorted(_IPA_TO_ARPA, key=len, reverse=True)
_MARKS = re.compile("[ˈˌːˑ.‿-]")
# Sphinx frame k analyses [10k, 10k + 25.625] ms, centred at 10k + 12.8 ms; a phone that starts at
# frame k therefore starts between the centres of frames k-1 and k, i.e. at 10k + 7.8 ms.
_FRAME_S, _WINDOW_S = 0.010, 0.025625
_BOUNDARY_OFFSET_S = _WINDOW_S / 2 - _FRAME_S / 2
# Wider beams than the defaults: with the default beams the first (word) pass sometimes prunes the
# only path for high-pitched synthetic voices and sub-word alignment then fails.
_BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}


def ipa_to_arpabet(ipa: str) -> list[tuple[str, ...]]:
    """Split one espeak IPA phoneme into ARPAbet phones, each a tuple of acceptable labels."""
    s = _MARKS.sub("", "".join(c for c in unicodedata.normalize("NFD", ipa) if not unicodedata.combining(c)))
    out: list[tuple[str, ...]] = []
    while s:
        sym = next((x for x in _SYMBOLS if s.startswith(x)), None)
        if sym is None:
            s = s[1:]  # a symbol outside the English inventory: skip it
            continue
        out.extend(_IPA_TO_ARPA[sym])
        s = s[len(sym):]
    return out


def align_phones(audio: np.ndarray, text: str, sr: int = 16000) -> list[tuple[str, float, float]]:
    """Force-align 16 kHz English speech to ``text``; return ``[(ARPAbet phone, start_s, end_s)]``.

    Times are phone boundaries between frame centres (see ``_BOUNDARY_OFFSET_S``). Silences
    (``SIL``) are left out. Words must be in pocketsphinx's CMU dictionary.
    """
    from pocketsphinx import Decoder

    if sr != 16000:
        raise VasaError(f"pocketsphinx needs 16 kHz audio, got {sr} Hz; resample first")
    words = re.sub(r"[^\w' ]+", " ", text.lower()).split()
    if not words:
        raise VasaError("cannot align empty text; pass the sentence that was spoken")
    raw = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    dec = Decoder(samprate=16000, loglevel="FATAL", bestpath=False, lm=None, dither=True, **_BEAMS)
    try:
        dec.set_align_text(" ".join(words))
    except RuntimeError as e:
        raise VasaError(f"pocketsphinx cannot align {text[:40]!r} ({e}); use words from its CMU dictionary") from e
    try:
        for k in range(2):  # pass 1: word alignment; pass 2: phone alignment (no hyp() in between)
            dec.start_utt()
            dec.process_raw(raw, full_utt=True)
            dec.end_utt()
            if k == 0:
                dec.set_alignment()
    except RuntimeError as e:
        raise VasaError(f"pocketsphinx could not align {text[:40]!r} ({e}); check the text matches the audio") from e
    off = _BOUNDARY_OFFSET_S
    return [(p.name, p.start * _FRAME_S + off, (p.start + p.duration) * _FRAME_S + off)
            for p in dec.get_alignment().phones() if p.name != "SIL"]


def _match(a: list[tuple[str, ...]], b: list[str]) -> list[tuple[int, int]]:
    """Edit-distance alignment of label-set sequence ``a`` with ``b``; pairs (i, j) whose labels agree."""
    n, m = len(a), len(b)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = cost[i - 1, j - 1] + (0.0 if b[j - 1] in a[i - 1] else 1.0)
            cost[i, j] = min(sub, cost[i - 1, j] + 1.0, cost[i, j - 1] + 1.0)
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        same = b[j - 1] in a[i - 1]
        if cost[i, j] == cost[i - 1, j - 1] + (0.0 if same else 1.0):
            if same:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1.0:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def onset_errors_ms(audio: np.ndarray, sr: int, text: str, phonemes) -> np.ndarray:
    """Signed onset differences in milliseconds (espeak minus pocketsphinx) of matched phones.

    ``phonemes`` are espeak's ``(start_s, end_s, ipa)`` triples of English speech ``audio`` (as in
    ``Utterance.phonemes`` or a corpus record). Only the first ARPAbet phone of each espeak phoneme
    has a known onset; later phones of a cluster take part in the sequence alignment but are not
    compared.
    """
    seq: list[tuple[str, ...]] = []
    onset: list[float | None] = []
    for start, _, ipa in phonemes:
        for k, labels in enumerate(ipa_to_arpabet(ipa)):
            seq.append(labels)
            onset.append(float(start) if k == 0 else None)
    phones = align_phones(audio, text, sr)
    errors = [onset[i] - phones[j][1] for i, j in _match(seq, [p[0] for p in phones]) if onset[i] is not None]
    return 1000.0 * np.asarray(errors, np.float64)


def onset_errors(utt: Utterance) -> np.ndarray:
    """Signed onset differences in seconds (espeak minus pocketsphinx) for an English ``utt``."""
    if utt.language != "en":
        raise VasaError(f"forced alignment needs English speech, got language {utt.language!r}")
    return onset_errors_ms(utt.audio, utt.sr, utt.text, utt.phonemes) / 1000.0
