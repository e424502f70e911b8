"""Speech synthesis with exact phoneme timings: espeak-ng (bundled by ``espeakng_loader``) via ctypes.

espeak-ng runs in synchronous mode: ``espeak_Synth`` calls our callback with 22050 Hz int16 audio
chunks and the events that fall in each chunk. We keep phoneme (type 7) and word (type 1) events.

Timing. Each event carries ``audio_position`` (milliseconds, truncated to an integer) and
``sample`` (the exact output-sample index at 22050 Hz, counted from the start of the message). We use
``sample``: it has 0.045 ms resolution, while ``audio_position`` is both coarser and biased by up
to -1 ms. A phoneme event marks the *start* of that phoneme; its end is the next phoneme event (an
event with an empty IPA string is a pause, which we turn into a gap, not a phoneme). We checked this
against the energy envelope: the audio is digital silence up to the event that ends a pause and
speech within 3 ms after it, and after the pause event that follows a phrase-final phoneme only a
decaying formant ring remains (energy falls below a third at once); ``tests/test_speech.py`` keeps
both checks. Independently, pocketsphinx forced alignment puts phone onsets within a median 10 ms of
espeak's (``vasa.synth.align``). The 22050 -> 16000 Hz
conversion uses a zero-phase polyphase filter, so times map by ``sample / 22050`` exactly.

Reproducibility. espeak-ng carries hidden state from one utterance to the next (its pitch flutter
advances a static index), so the same text is not bit-identical twice in one process, and its
initialisation seeds the breath-noise generator (used by the breathy variants f2 and f3) with the
wall-clock second. We reload the library before every utterance and seed the generator from a hash
of (voice, text), which makes synthesis a pure function of (text, voice, settings).

Process model. The espeak library holds global state, so there is one engine per process, created
lazily on first use and guarded by a lock (threads serialise). The engine remembers the process id
that created it: a forked child (multiprocessing "fork") sees a different pid and creates its own
engine and lock instead of using a copy that another thread of the parent may have left
mid-synthesis; "spawn" workers simply start fresh.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import resample_poly

from vasa.errors import VasaError

SAMPLE_RATE = 16000  # output sample rate of every Utterance
_ESPEAK_RATE = 22050  # espeak-ng's native rate (checked at initialisation)

# espeak-ng API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS_IPA = 3  # espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4

PAD_RANGE_S = (0.2, 0.5)  # leading / trailing silence drawn by synthesize(..., rng=...)
RATE_FACTOR_RANGE = (0.9, 1.12)  # speaking-rate scale drawn by synthesize(..., rng=...)
_DEFAULTS = {"lead_s": 0.3, "tail_s": 0.3, "rate_factor": 1.0}


@dataclass(frozen=True)
class Voice:
    """A speaker: an espeak-ng voice variant plus prosody settings.

    ``rate`` is in words per minute (espeak default 175), ``pitch`` and ``range`` are espeak's 0-100
    base pitch and pitch-range (intonation excursion) settings.
    """

    variant: str
    pitch: int
    rate: int
    range: int


VOICES: dict[str, Voice] = {
    "m1": Voice("m1", pitch=42, rate=165, range=55),
    "m2": Voice("m2", pitch=35, rate=150, range=45),
    "m3": Voice("m3", pitch=48, rate=180, range=65),
    "m4": Voice("m4", pitch=30, rate=160, range=40),
    "f1": Voice("f1", pitch=55, rate=170, range=60),
    "f2": Voice("f2", pitch=62, rate=160, range=70),
    "f3": Voice("f3", pitch=50, rate=185, range=55),
    "f4": Voice("f4", pitch=68, rate=155, range=75),
}

# language code used by the project -> espeak-ng voice name
LANGUAGES: dict[str, str] = {"en": "en-us", "es": "es", "de": "de", "fr": "fr", "cmn": "cmn"}
TRAIN_LANGUAGES: tuple[str, ...] = ("en",)
HELDOUT_LANGUAGES: tuple[str, ...] = ("es", "de", "fr", "cmn")  # out-of-distribution evaluation


@dataclass
class Utterance:
    """Synthesised speech with its exact timing.

    ``phonemes`` and ``words`` are ``(start_s, end_s, label)`` in seconds from the start of
    ``audio`` (padding included), sorted, non-overlapping; gaps between phonemes are silence.
    Phoneme labels are espeak-ng IPA (stress marks included, e.g. ``ˈaɪ``).
    """

    audio: np.ndarray  # (n,) float32 mono at ``sr``
    sr: int
    phonemes: list[tuple[float, float, str]]
    words: list[tuple[float, float, str]]
    text: str
    language: str
    voice: str
    lead_s: float = 0.0  # leading silence padding added before espeak's output
    tail_s: float = 0.0  # trailing silence padding added after it
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Length of ``audio`` in seconds."""
        return len(self.audio) / self.sr


class _EspeakEvent(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))


class _Engine:
    """The process's espeak-ng library; not thread-safe by itself (callers hold ``lock``).

    espeak-ng keeps state across utterances in function-level statics (e.g. the pitch-flutter
    index in ``AdvanceParameters``) that no API call resets, so the same text would come out a few
    samples different on every call. ``synth`` therefore unloads and reloads the library before
    each utterance (~1-2 ms). It loads a private per-process copy of the shared object (on Linux an
    unlinked temporary file held open, so nothing is left behind even if the process is killed), so
    no other user of ``libespeak-ng`` keeps it mapped, and checks that unloading really unmapped it.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.pid = os.getpid()
        self.lock = threading.Lock()
        self._data = espeakng_loader.get_data_path().encode()
        fd, copy = tempfile.mkstemp(prefix="vasa-espeak-", suffix=".so")
        with open(espeakng_loader.get_library_path(), "rb") as src, os.fdopen(fd, "wb", closefd=False) as dst:
            shutil.copyfileobj(src, dst)
        self._mapped_name = copy  # how the copy shows up in /proc/self/maps
        if os.path.isdir("/proc/self/fd"):  # Linux: load through the open descriptor; no file is left behind
            self._path = f"/proc/self/fd/{fd}"
            os.unlink(copy)
        else:
            self._path = copy
            atexit.register(os.remove, copy)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: espeak holds a raw pointer
        self.lib: ctypes.CDLL | None = None

    def _load(self) -> ctypes.CDLL:
        lib = ctypes.CDLL(self._path)
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data, _INIT_PHONEME_EVENTS_IPA)
        if rate != _ESPEAK_RATE:
            raise VasaError(f"espeak-ng failed to initialise (returned {rate}); reinstall espeakng-loader")
        lib.espeak_SetSynthCallback(self._callback)
        return lib

    def _unload(self) -> None:
        if self.lib is None:
            return
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)
        self.lib = None
        if os.path.exists("/proc/self/maps"):
            with open("/proc/self/maps") as f:
                if self._mapped_name in f.read():
                    raise VasaError("libespeak-ng stayed loaded after dlclose, so synthesis would not be "
                                    "reproducible; do not load vasa's private espeak copy elsewhere")

    def _on_synth(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type in (_EVENT_PHONEME, _EVENT_WORD):
                label = e.id.string.decode("utf-8", "ignore") if e.type == _EVENT_PHONEME else ""
                self._events.append((e.type, e.sample, e.text_position, e.length, label))
            i += 1
        return 0

    def synth(self, text: str, voice_name: str, rate: int, pitch: int, range_: int):
        """Raw espeak output: (int16 audio at 22050 Hz, [(type, sample, text_pos, length, ipa)])."""
        self._unload()
        self.lib = self._load()
        # espeak_Initialize seeds the breath-noise generator with time(NULL): seed it from the input
        self.lib.espeak_ng_SetRandSeed(zlib.crc32(f"{voice_name}|{text}".encode()))
        if self.lib.espeak_SetVoiceByName(voice_name.encode()) != 0:
            raise VasaError(f"espeak-ng has no voice {voice_name!r}; reinstall espeakng-loader")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, range_)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise VasaError(f"espeak-ng synthesis failed with code {err} for text {text[:40]!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events


_ENGINE: _Engine | None = None
_ENGINE_GUARD = threading.Lock()


def _engine() -> _Engine:
    """The engine of the current process, created on first use (and again after a fork)."""
    global _ENGINE, _ENGINE_GUARD
    if _ENGINE is not None and _ENGINE.pid != os.getpid():
        _ENGINE, _ENGINE_GUARD = None, threading.Lock()  # forked child: the parent's lock may be held
    if _ENGINE is None:
        with _ENGINE_GUARD:
            if _ENGINE is None:
                _ENGINE = _Engine()
    return _ENGINE


def _check(language: str, voice: str) -> None:
    if language not in LANGUAGES:
        raise VasaError(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")
    if voice not in VOICES:
        raise VasaError(f"unknown voice {voice!r}; use one of {', '.join(VOICES)}")


def _timings(events, n_samples: int, text: str):
    """Phoneme and word intervals in 22050 Hz samples from espeak's event list."""
    phon_starts = [(s, lab) for t, s, _, _, lab in events if t == _EVENT_PHONEME]
    phonemes: list[tuple[int, int, str]] = []
    for k, (s, lab) in enumerate(phon_starts):
        end = phon_starts[k + 1][0] if k + 1 < len(phon_starts) else n_samples
        if lab and end > s:
            phonemes.append((s, end, lab))
    words: list[tuple[int, int, str]] = []
    word_events = [(s, pos, n) for t, s, pos, n, _ in events if t == _EVENT_WORD]
    for k, (s, pos, n) in enumerate(word_events):
        nxt = word_events[k + 1][0] if k + 1 < len(word_events) else n_samples + 1
        inside = [p for p in phonemes if s <= p[0] < nxt]
        if inside:  # a word whose phonemes espeak merged into a neighbour has no interval of its own
            words.append((inside[0][0], inside[-1][1], text[pos - 1:pos - 1 + n]))
    return phonemes, words


def synthesize(text: str, language: str = "en", voice: str = "m1", *, rng: np.random.Generator | None = None,
               lead_s: float | None = None, tail_s: float | None = None,
               rate_factor: float | None = None) -> Utterance:
    """Speak ``text`` and return 16 kHz audio with exact phoneme and word timings.

    ``lead_s`` / ``tail_s`` seconds of digital silence are added around espeak's output (which
    itself starts within ~15 ms of the first phoneme); all times include this padding, so that
    "mouth closed in silence" is exercised. ``rate_factor`` scales the voice's speaking rate (espeak
    clamps the result to 80-450 words per minute). Each of the three left as None is drawn from
    ``rng`` when one is given (padding uniform in ``PAD_RANGE_S``, rate in ``RATE_FACTOR_RANGE``, in
    that order), else takes its default (0.3 s, 0.3 s, 1.0). Deterministic.
    """
    draws = {"lead_s": PAD_RANGE_S, "tail_s": PAD_RANGE_S, "rate_factor": RATE_FACTOR_RANGE}
    given = {"lead_s": lead_s, "tail_s": tail_s, "rate_factor": rate_factor}
    for name, (lo, hi) in draws.items():
        if given[name] is None:
            given[name] = float(rng.uniform(lo, hi)) if rng is not None else _DEFAULTS[name]
    lead_s, tail_s, rate_factor = given["lead_s"], given["tail_s"], given["rate_factor"]
    _check(language, voice)
    if not text.strip():
        raise VasaError("cannot synthesise empty text; pass a sentence (see vasa.synth.sentences)")
    if lead_s < 0 or tail_s < 0 or rate_factor <= 0:
        raise VasaError(f"padding must be >= 0 and rate_factor > 0 (got {lead_s}, {tail_s}, {rate_factor})")
    v = VOICES[voice]
    eng = _engine()
    with eng.lock:
        raw, events = eng.synth(text, f"{LANGUAGES[language]}+{v.variant}",
                                round(v.rate * rate_factor), v.pitch, v.range)
    audio = resample_poly(raw.astype(np.float32) / 32768.0, SAMPLE_RATE, _ESPEAK_RATE).astype(np.float32)
    n_lead, n_tail = round(lead_s * SAMPLE_RATE), round(tail_s * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(n_lead, np.float32), audio, np.zeros(n_tail, np.float32)])
    phon, words = _timings(events, len(raw), text)
    offset = n_lead / SAMPLE_RATE

    def sec(items):
        return [(offset + a / _ESPEAK_RATE, offset + b / _ESPEAK_RATE, lab) for a, b, lab in items]

    return Utterance(audio=audio, sr=SAMPLE_RATE, phonemes=sec(phon), words=sec(words), text=text,
                     language=language, voice=voice, lead_s=n_lead / SAMPLE_RATE,
                     tail_s=n_tail / SAMPLE_RATE, meta={"rate_factor": rate_factor})
