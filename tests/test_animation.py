"""Visemes, coarticulation and the speech-driven animation of face parameters."""

from __future__ import annotations

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.synth.animation import animate, frame_prosody, sample_conditions, smooth_noise
from vasa.synth.params import EMOTIONS, FRAME_PARAMS, N_PARAMS, NOMINAL_DISTANCE, ClipConditions
from vasa.synth.speech import synthesize
from vasa.synth.visemes import VISEME_INDEX, VISEMES, frame_times, mouth_tracks, phoneme_visemes

FPS = 25
TEXT = "Maybe we should open the window. Please bring my umbrella, because the sky looks grey."
NEUTRAL = ClipConditions()


@pytest.fixture(scope="module")
def utt():
    return synthesize(TEXT, "en", "m1", lead_s=0.4, tail_s=0.4)


@pytest.fixture(scope="module")
def anim(utt):
    return animate(utt, NEUTRAL, np.random.default_rng(0), fps=FPS)


def col(a, name):
    return a.params[:, list(FRAME_PARAMS).index(name)]


def test_shapes_types_and_ranges(utt, anim):
    n = int(np.ceil(utt.duration * FPS))
    assert anim.params.shape == (n, N_PARAMS) and anim.params.dtype == np.float32
    assert len(anim.phoneme) == n and anim.viseme.shape == (n,)
    assert anim.viseme.min() >= 0 and anim.viseme.max() < len(VISEMES)
    for j, (lo, hi) in enumerate(FRAME_PARAMS.values()):
        assert np.all(anim.params[:, j] >= lo) and np.all(anim.params[:, j] <= hi)
    assert np.allclose(col(anim, "tz"), NOMINAL_DISTANCE, atol=0.6)
    assert np.allclose(col(anim, "scale"), NOMINAL_DISTANCE / col(anim, "tz"), rtol=1e-5)


def test_deterministic_per_seed(utt, anim):
    again = animate(utt, NEUTRAL, np.random.default_rng(0), fps=FPS)
    other = animate(utt, NEUTRAL, np.random.default_rng(1), fps=FPS)
    assert np.array_equal(anim.params, again.params) and anim.phoneme == again.phoneme
    assert not np.array_equal(anim.params, other.params)
    assert np.array_equal(anim.viseme, other.viseme)  # labels depend on the speech only


def test_ipa_of_every_language_maps_to_visemes():
    for ipa, name in [("ˈaɪ", "open"), ("m", "bilabial"), ("f", "labiodental"), ("ð", "dental"),
                      ("ɡ", "velar"), ("ˈuː", "round_close"), ("ˈɔ̃", "round_open"), ("iː", "spread"),
                      ("tʃ", "postalveolar"), ("tɕh", "postalveolar"), ("ə-", "mid"), ("a˥˩", "open"),
                      ("ʁ", "velar"), ("w", "labiovelar"), ("ɹ", "rhotic"), ("", "sil")]:
        assert VISEMES[phoneme_visemes(ipa)[0]] == name, ipa
    assert [VISEMES[v] for v in phoneme_visemes("ˈaʊ")] == ["open", "round_close"]
    assert len(phoneme_visemes("☃%")) == 1  # unknown symbols never crash


def test_mouth_is_closed_in_long_silences(utt, anim):
    t = frame_times(utt.duration, FPS)
    starts = np.array([p[0] for p in utt.phonemes])
    ends = np.array([p[1] for p in utt.phonemes])
    dist = np.min(np.maximum(starts[None] - t[:, None], t[:, None] - ends[None]), axis=1)
    far = dist > 0.1  # frame centres at least 100 ms from any phoneme
    assert far.sum() >= 10
    assert col(anim, "jaw")[far].max() < 0.05
    assert col(anim, "lip_round")[far].max() < 0.05 and col(anim, "lip_spread")[far].max() < 0.05
    assert all(anim.phoneme[k] == "sil" and anim.viseme[k] == 0 for k in np.nonzero(far)[0])


def test_bilabials_reach_closure(utt, anim):
    t = frame_times(utt.duration, FPS)
    press, jaw = col(anim, "lip_press"), col(anim, "jaw")
    bilabials = [p for p in utt.phonemes if phoneme_visemes(p[2]) == (VISEME_INDEX["bilabial"],)]
    assert len(bilabials) >= 4
    for start, end, _ in bilabials:
        near = np.abs(t - (start + end) / 2) <= 0.5 / FPS + (end - start) / 2
        assert press[near].max() > 0.7 and jaw[near].min() < 0.15, (start, end)


def test_jaw_moves_smoothly(anim):
    jaw = col(anim, "jaw")
    assert np.abs(np.diff(jaw)).max() < 0.4
    assert np.abs(np.diff(jaw, 2)).mean() < 0.08
    assert jaw.max() > 0.5  # and it does open


def test_mouth_anticipates_vowels_and_rounding():
    t = frame_times(2.0, FPS)
    k = int(np.searchsorted(t, 1.0)) - 1  # last frame centre before the vowel onset at 1.0 s
    jaw = mouth_tracks([(1.0, 1.2, "ˈɑː")], 2.0, FPS).mouth[:, 0]
    assert jaw[k] > 0.1 and jaw[k - 1] < jaw[k] < jaw[k + 2]
    # rounding spreads back over the consonants before /u/, not before /i/
    before_u = mouth_tracks([(1.0, 1.08, "s"), (1.08, 1.14, "t"), (1.14, 1.3, "uː")], 2.0, FPS).mouth
    before_i = mouth_tracks([(1.0, 1.08, "s"), (1.08, 1.14, "t"), (1.14, 1.3, "iː")], 2.0, FPS).mouth
    frame_in_s = int(1.04 * FPS)
    assert before_u[frame_in_s, 1] > before_i[frame_in_s, 1] + 0.2


def test_blink_rate_duration_and_symmetry():
    long_text = " ".join([TEXT] * 6)  # ~ 40 s of speech with many phrase boundaries
    u = synthesize(long_text, "en", "f2", lead_s=0.3, tail_s=0.3)
    rates, widths = [], []
    for seed in range(4):
        a = animate(u, NEUTRAL, np.random.default_rng(seed), fps=FPS)
        left, right = col(a, "blink_l"), col(a, "blink_r")
        assert np.abs(left - right).max() < 0.06
        closed = left > 0.3
        onsets = np.nonzero(closed[1:] & ~closed[:-1])[0]
        rates.append(len(onsets) / u.duration * 60)
        runs = np.diff(np.nonzero(np.diff(np.r_[0, closed.astype(int), 0]))[0])[::2]
        widths.extend(runs)
    assert 10 <= np.mean(rates) <= 25, rates
    assert max(widths) <= 5  # <= 200 ms of a closed lid at 25 fps


@pytest.mark.parametrize("emotion", [e for e in EMOTIONS if e != "neutral"])
def test_emotion_offsets_have_the_right_sign(utt, anim, emotion):
    a = animate(utt, ClipConditions(emotion=emotion, emotion_intensity=1.0), np.random.default_rng(0), fps=FPS)

    def delta(name):
        return float(col(a, name).mean() - col(anim, name).mean())

    if emotion == "happy":
        assert delta("smile") > 0.3 and delta("brow_raise") > 0.05 and delta("blink_l") > 0.05
    elif emotion == "sad":
        assert delta("smile") < -0.2 and delta("brow_raise") < -0.1 and delta("pitch") < -3
    elif emotion == "angry":
        assert delta("brow_furrow") > 0.4 and delta("brow_raise") < -0.2 and delta("lip_press") > 0.1
        assert delta("jaw") < 0
    else:
        assert delta("brow_raise") > 0.4 and delta("eye_wide") > 0.4 and delta("jaw") > 0.05


def test_gaze_stays_near_main_gaze_and_makes_saccades(utt):
    cond = ClipConditions(gaze_yaw=12.0, gaze_pitch=-6.0)
    a = animate(utt, cond, np.random.default_rng(3), fps=FPS)
    gy, gp = col(a, "gaze_yaw") - 12.0, col(a, "gaze_pitch") + 6.0
    assert np.abs(gy).mean() < 4 and np.abs(gy).max() < 12 and np.abs(gp).max() < 10
    jumps = np.abs(np.diff(gy)) > 0.8
    assert 2 <= jumps.sum() <= len(gy) // 5  # a few saccades, fixations in between


def test_head_moves_also_in_silence(utt, anim):
    yaw, pitch = col(anim, "yaw"), col(anim, "pitch")
    lead = slice(0, int(0.4 * FPS))
    assert np.abs(np.diff(yaw[lead])).max() > 0.005 and np.abs(np.diff(pitch[lead])).max() > 0.005
    assert np.abs(yaw).max() < 40 and np.abs(np.diff(yaw)).max() < 5


def test_sample_conditions_ranges():
    rng = np.random.default_rng(0)
    conds = [sample_conditions(rng) for _ in range(600)]
    assert {c.emotion for c in conds} == set(EMOTIONS)
    for c in conds:
        assert (c.emotion_intensity == 0.0) == (c.emotion == "neutral")
        assert c.emotion == "neutral" or 0.5 <= c.emotion_intensity <= 1.0
        assert abs(c.gaze_yaw) <= 20 and abs(c.gaze_pitch) <= 12 and 0.8 <= c.distance <= 1.25
    assert 5 < np.std([c.gaze_yaw for c in conds]) < 9
    assert sample_conditions(np.random.default_rng(4)) == sample_conditions(np.random.default_rng(4))


def test_smooth_noise_is_unit_variance_and_smooth():
    x = smooth_noise(np.random.default_rng(0), 20000, FPS, 1.0)
    assert 0.85 < x.std() < 1.15 and np.abs(np.diff(x)).mean() < 0.1


def test_prosody_tracks_pitch_of_a_tone():
    sr, t = 16000, frame_times(1.0, FPS)
    audio = 0.3 * np.sin(2 * np.pi * 180.0 * np.arange(sr) / sr) * np.linspace(0.5, 1, sr)
    pros = frame_prosody(audio.astype(np.float32), sr, t)
    assert np.abs(pros.pitch_z[2:-2]).max() < 0.1 and pros.loud[-3] > pros.loud[2]


def test_unknown_emotion_errors(utt):
    with pytest.raises(VasaError, match="unknown emotion 'bored'"):
        animate(utt, ClipConditions(emotion="bored"), np.random.default_rng(0))
