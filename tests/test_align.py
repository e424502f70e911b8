"""pocketsphinx forced alignment agrees with espeak's phoneme timings (the corpus quality bar)."""

from __future__ import annotations

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.synth.align import align_phones, ipa_to_arpabet, onset_errors, onset_errors_ms
from vasa.synth.sentences import sample_sentence
from vasa.synth.speech import synthesize


def test_ipa_to_arpabet_splits_clusters():
    assert ipa_to_arpabet("ˈaɪ") == [("AY",)]
    assert ipa_to_arpabet("ˈɑːɹ") == [("AA",), ("R",)]
    assert ipa_to_arpabet("tʃ") == [("CH",)]
    assert ipa_to_arpabet("ɾ") == [("T", "D")]
    assert ipa_to_arpabet("ˈɔ̃") == [("AO",)]  # diacritics dropped
    assert ipa_to_arpabet("☃") == []


@pytest.mark.slow
def test_median_onset_error_is_at_most_20_ms():
    rng = np.random.default_rng(11)
    errors = []
    for voice in ("m1", "f2", "m3", "f4"):
        utt = synthesize(sample_sentence(rng, "en"), "en", voice, rng=rng)
        e = onset_errors(utt)
        assert len(e) >= 0.6 * len(utt.phonemes), (utt.text, len(e), len(utt.phonemes))
        errors.append(e)
    err_ms = 1000 * np.abs(np.concatenate(errors))
    assert np.median(err_ms) <= 20.0, np.median(err_ms)


def test_alignment_of_stored_records_and_errors():
    utt = synthesize("Please call her before the meeting starts.", "en", "m2")
    phones = align_phones(utt.audio, utt.text)
    assert [p[0] for p in phones][:3] == ["P", "L", "IY"]
    assert all(a < b for _, a, b in phones)
    stored = [[round(a, 4), round(b, 4), ph] for a, b, ph in utt.phonemes]  # as in a corpus record
    assert np.median(np.abs(onset_errors_ms(utt.audio, utt.sr, utt.text, stored))) <= 20.0
    with pytest.raises(VasaError, match="16 kHz"):
        align_phones(utt.audio, utt.text, sr=22050)
    with pytest.raises(VasaError, match="English"):
        onset_errors(synthesize("Hola amigo.", "es", "m1"))
