"""Speech synthesis (espeak-ng) and the sentence generator."""

from __future__ import annotations

import multiprocessing as mp
import os
import re

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.synth.sentences import SPLITS, _VOCAB, _entries, sample_sentence
from vasa.synth.speech import LANGUAGES, SAMPLE_RATE, VOICES, synthesize

TEXT = "My old neighbour painted a small boat yesterday, but nobody saw it."
SAMPLE_TEXTS = {
    "en": TEXT,
    "es": "El niño pequeño come una manzana en la cocina.",
    "de": "Der alte Mann liest heute die Zeitung im Garten.",
    "fr": "Le petit garçon mange une pomme près de la rivière.",
    "cmn": "我的朋友昨天在公园里看了一本书。",
}


def _check_intervals(items, duration):
    starts = np.array([a for a, _, _ in items])
    ends = np.array([b for _, b, _ in items])
    assert np.all(ends > starts)
    assert np.all(starts[1:] >= ends[:-1] - 1e-9), "intervals overlap or are unsorted"
    assert starts[0] >= 0 and ends[-1] <= duration + 1e-9


def test_synthesis_returns_16k_mono_float_audio():
    u = synthesize(TEXT, "en", "m1")
    assert u.sr == SAMPLE_RATE == 16000
    assert u.audio.dtype == np.float32 and u.audio.ndim == 1
    assert 2.0 < u.duration < 8.0
    assert 0.05 < np.abs(u.audio).max() <= 1.0
    _check_intervals(u.phonemes, u.duration)
    _check_intervals(u.words, u.duration)
    assert [w for _, _, w in u.words][:3] == ["My", "old", "neighbour"]
    assert all(label for _, _, label in u.phonemes)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_language_speaks(language):
    u = synthesize(SAMPLE_TEXTS[language], language, "f2")
    assert u.language == language and len(u.phonemes) >= 15 and len(u.words) >= 3
    _check_intervals(u.phonemes, u.duration)


def test_every_voice_speaks_and_voices_differ():
    lengths = set()
    for voice in VOICES:
        u = synthesize("Please call her before the meeting starts.", "en", voice)
        _check_intervals(u.phonemes, u.duration)
        lengths.add(len(u.audio))
    assert len(VOICES) >= 6 and len(lengths) >= 4  # different rates give different lengths


def test_unknown_language_or_voice_lists_the_allowed_ones():
    with pytest.raises(VasaError, match="unknown language 'xx'.*en, es"):
        synthesize(TEXT, "xx", "m1")
    with pytest.raises(VasaError, match="unknown voice 'zz'.*m1"):
        synthesize(TEXT, "en", "zz")
    with pytest.raises(VasaError, match="empty text"):
        synthesize("  ", "en", "m1")


def test_synthesis_is_deterministic_with_and_without_rng():
    a, b = synthesize(TEXT, "en", "m3"), synthesize(TEXT, "en", "m3")
    assert np.array_equal(a.audio, b.audio) and a.phonemes == b.phonemes
    c = synthesize(TEXT, "en", "m3", rng=np.random.default_rng(5))
    d = synthesize(TEXT, "en", "m3", rng=np.random.default_rng(5))
    assert np.array_equal(c.audio, d.audio) and c.phonemes == d.phonemes and c.lead_s == d.lead_s


def test_padding_shifts_times_and_is_silent():
    a = synthesize(TEXT, "en", "f1", lead_s=0.2, tail_s=0.2)
    b = synthesize(TEXT, "en", "f1", lead_s=0.5, tail_s=0.35)
    assert len(b.audio) - len(a.audio) == round(0.45 * SAMPLE_RATE)
    shift = np.array([p[0] for p in b.phonemes]) - np.array([p[0] for p in a.phonemes])
    assert np.allclose(shift, 0.3, atol=1e-9)
    assert a.phonemes[0][0] >= 0.2 and not np.any(b.audio[: round(0.5 * SAMPLE_RATE)])


def test_rng_padding_is_within_range():
    leads = [synthesize("Hello there.", "en", "m1", rng=np.random.default_rng(s)).lead_s for s in range(8)]
    assert min(leads) >= 0.2 and max(leads) <= 0.5 and len(set(leads)) == 8


def _rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_event_times_match_the_energy_envelope():
    """Speech starts right at the phoneme that ends a pause and stops at the pause event.

    Onsets are sharp (digital silence up to the event). After a phrase-final phoneme only the
    formant resonators' decaying ring remains, so offsets are checked by an energy drop.
    """
    u = synthesize("Look. Then, maybe, we can all go home now.", "en", "m2")
    sr, ms = u.sr, u.sr // 1000
    gaps = [(a, b) for a, b in zip([(0, 0, "")] + u.phonemes, u.phonemes + [(u.duration, u.duration, "")])
            if b[0] - a[1] >= 0.06]
    assert len(gaps) >= 3
    for prev, nxt in gaps:
        if prev[1] > 0:  # end of a phrase: energy collapses after the pause event
            end = round(prev[1] * sr)
            assert _rms(u.audio[end + 3 * ms:end + 43 * ms]) < 0.33 * _rms(u.audio[end - 43 * ms:end - 3 * ms])
        if nxt[0] < u.duration:  # start of a phrase: silence before, speech after
            start = round(nxt[0] * sr)
            before, after = _rms(u.audio[start - 25 * ms:start - 3 * ms]), _rms(u.audio[start + 3 * ms:start + 25 * ms])
            assert before < 1e-3 < after


def _child_audio(text: str) -> bytes:
    return synthesize(text, "en", "f3").audio.tobytes()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_synthesise_identically(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} unavailable")
    parent = synthesize("Good morning.", "en", "f3").audio.tobytes()  # initialises the parent's engine
    with mp.get_context(method).Pool(1) as pool:
        assert pool.apply(_child_audio, ("Good morning.",)) == parent
        assert pool.apply(os.getpid) != os.getpid()


def test_threads_serialise_on_the_engine():
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"Thread number {k} says hello to the others." for k in range(6)]
    alone = [synthesize(t, "en", "f2").audio for t in texts]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda t: synthesize(t, "en", "f2").audio, texts))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def _cmu_words() -> set[str]:
    import pocketsphinx

    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    with open(path, encoding="utf-8") as f:
        return {line.split(maxsplit=1)[0] for line in f if line.strip()}


def test_english_sentences_use_only_cmu_dictionary_words():
    words, rng = _cmu_words(), np.random.default_rng(0)
    for split in SPLITS:
        for _ in range(300):
            tokens = re.sub(r"[^\w' ]+", " ", sample_sentence(rng, "en", split).lower()).split()
            assert set(tokens) <= words, set(tokens) - words


def test_sentences_are_deterministic_varied_and_split_disjoint():
    train = [sample_sentence(np.random.default_rng(s), "en") for s in range(1500)]
    test = [sample_sentence(np.random.default_rng(s), "en", "test") for s in range(1500)]
    assert train[:20] == [sample_sentence(np.random.default_rng(s), "en") for s in range(20)]
    assert len(set(train)) > 1450 and len(set(test)) > 1450
    assert not set(train) & set(test)
    for lang in _VOCAB:
        for cat in _VOCAB[lang]:
            tr, te = set(_entries(lang, cat, "train")), set(_entries(lang, cat, "test"))
            assert tr and te and not tr & te, (lang, cat)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_sentences_last_about_2_to_10_seconds(language):
    rng = np.random.default_rng(1)
    durations = [synthesize(sample_sentence(rng, language), language, "m1", lead_s=0, tail_s=0).duration
                 for _ in range(12)]
    assert 1.0 < min(durations) and max(durations) < 13.0
    assert 2.5 < np.median(durations) < 9.0


def test_sentence_errors():
    with pytest.raises(VasaError, match="language 'xx'"):
        sample_sentence(np.random.default_rng(0), "xx")
    with pytest.raises(VasaError, match="split 'dev'"):
        sample_sentence(np.random.default_rng(0), "en", "dev")
