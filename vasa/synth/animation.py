"""Speech-driven animation of the face parameters: mouth, head pose, blinks, gaze and emotion.

``animate(utt, cond, rng)`` turns an ``Utterance`` into per-frame parameters (columns
``PARAM_NAMES``) for the renderer. Everything is drawn from ``rng`` in a fixed order, so one seed
gives one animation; there is no global state.

- Mouth: coarticulated viseme tracks (``visemes.mouth_tracks``) scaled by a per-clip articulation
  strength, with louder frames opening the jaw a little more.
- Head: a per-clip rest pose, smooth idle sway (twice-filtered white noise, i.e. a second-order
  Ornstein-Uhlenbeck process, never frozen, also in silence), sway that grows while speaking, nods
  and small turns on accented syllables (espeak's stressed vowels, weighted by loudness and pitch),
  head raised with rising F0, and rare large look-aways. A soft limit keeps |yaw| under ~38 degrees.
- Blinks: a Poisson process (~15-20 per minute, per-clip rate) with a refractory period whose hazard
  is raised around phrase boundaries; closing takes ~35 % of the 100-200 ms blink.
- Gaze: fixations of 0.3-2 s around the clip's main gaze, joined by ~40 ms saccades, plus partial
  vestibulo-ocular compensation of fast head motion.
- Emotion: ``cond.emotion`` with ``cond.emotion_intensity`` adds expression offsets (smile, brows,
  eye opening, lip press, head pitch) and scales head-motion energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from vasa.errors import VasaError
from vasa.synth.params import EMOTIONS, N_PARAMS, NOMINAL_DISTANCE, PARAM_INDEX, ClipConditions, clip_params
from vasa.synth.speech import Utterance
from vasa.synth.visemes import MOUTH_PARAMS, VISEME_INDEX, frame_times, mouth_tracks, phoneme_visemes

# emotion -> (offsets per unit intensity, head-motion energy factor, relative jaw change per unit).
# Offsets are in parameter units; "blink" is a resting closure of both lids (the squint of a smile)
# and "pitch" a head pitch offset in degrees.
_EMOTION: dict[str, tuple[dict[str, float], float, float]] = {
    "neutral": ({}, 1.0, 0.0),
    "happy": ({"smile": 0.6, "brow_raise": 0.15, "blink": 0.12, "pitch": 1.0}, 1.1, 0.0),
    "sad": ({"smile": -0.45, "brow_raise": -0.25, "brow_furrow": 0.2, "pitch": -6.0}, 0.7, -0.15),
    "angry": ({"brow_furrow": 0.7, "brow_raise": -0.45, "lip_press": 0.25, "smile": -0.15, "pitch": -2.0},
              1.2, -0.25),
    "surprised": ({"brow_raise": 0.75, "eye_wide": 0.7, "jaw": 0.12, "pitch": 2.0}, 1.15, 0.0),
}
_VOWEL_CLASSES = {VISEME_INDEX[n] for n in ("open", "mid", "spread", "round_close", "round_open", "rhotic")}
_PHRASE_PAUSE_S = 0.15  # a silence at least this long is a phrase boundary
_BLINK_REFRACTORY_S = 0.5
_F0_RANGE = (70.0, 400.0)  # Hz searched by the pitch tracker


@dataclass
class Animation:
    """Per-frame face parameters and labels of one clip."""

    params: np.ndarray  # (T, N_PARAMS) float32, columns PARAM_NAMES, clipped to FRAME_PARAMS
    phoneme: list[str]  # (T,) phoneme at frame centre ("sil" in silence)
    viseme: np.ndarray  # (T,) int viseme class at frame centre
    fps: int
    traits: dict[str, float] = field(default_factory=dict)  # per-clip random style draws

    def column(self, name: str) -> np.ndarray:
        """One parameter's track."""
        return self.params[:, PARAM_INDEX[name]]


@dataclass
class Prosody:
    """Frame-level prosodic features sampled at the frame centres."""

    loud: np.ndarray  # level in dB relative to the clip's median speech level, divided by 10
    pitch_z: np.ndarray  # F0 in semitones relative to the clip's median, divided by 3; 0 when unvoiced
    speaking: np.ndarray  # speech activity smoothed over 0.5 s, in [0, 1]


def frame_prosody(audio: np.ndarray, sr: int, t: np.ndarray, window_s: float = 0.064) -> Prosody:
    """Loudness and F0 from ``window_s`` windows centred at times ``t``.

    F0 is the best lag of the normalised, unbiased autocorrelation (FFT, one batch for all frames) in
    ``_F0_RANGE``; a frame is voiced when that peak exceeds 0.5 and it is within 35 dB of the loudest
    frame. Octave errors are possible; the features only modulate motion.
    """
    win = int(window_s * sr)
    idx = np.round(t * sr).astype(np.int64)[:, None] + np.arange(win)[None, :]
    frames = np.pad(audio.astype(np.float64), (win // 2, win))[idx]
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    speech = db > db.max() - 35.0
    loud = (db - np.median(db[speech])) / 10.0
    centred = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, 2 * win, axis=1)) ** 2
    ac = np.fft.irfft(power, axis=1)[:, :win] * (win / (win - np.arange(win)))
    lo, hi = int(sr / _F0_RANGE[1]), int(sr / _F0_RANGE[0])
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(t)), lag] / (ac[:, 0] + 1e-12)
    voiced = (peak > 0.5) & speech
    semitones = np.zeros(len(t))
    if voiced.any():
        f0 = sr / lag
        semitones[voiced] = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
    fps = 1.0 / (t[1] - t[0]) if len(t) > 1 else 25.0
    width = max(1, int(round(0.5 * fps)))
    speaking = np.convolve(speech.astype(np.float64), np.ones(width) / width, "same")
    pitch_z = np.convolve(semitones / 3.0, np.ones(3) / 3, "same")
    return Prosody(loud=loud, pitch_z=pitch_z, speaking=speaking)


def sample_conditions(rng: np.random.Generator) -> ClipConditions:
    """Per-clip conditions: uniform emotion, main gaze mostly near frontal, distance 0.8-1.25."""
    emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
    intensity = 0.0 if emotion == "neutral" else float(rng.uniform(0.5, 1.0))

    def truncated_normal(sd: float, bound: float) -> float:
        while True:  # rejection keeps the bell shape without piling mass on the bounds
            x = float(rng.normal(0.0, sd))
            if abs(x) <= bound:
                return x

    return ClipConditions(emotion=emotion, emotion_intensity=intensity, gaze_yaw=truncated_normal(8.0, 20.0),
                          gaze_pitch=truncated_normal(8.0, 12.0), distance=float(rng.uniform(0.8, 1.25)))


def smooth_noise(rng: np.random.Generator, n: int, fps: int, tau: float) -> np.ndarray:
    """Unit-variance stationary noise with time constant ``tau`` s: white noise through two AR(1) filters."""
    a = float(np.exp(-1.0 / (tau * fps)))
    burn = int(6 * tau * fps) + 1
    x = lfilter([1.0], [1.0, -a], lfilter([1.0], [1.0, -a], rng.standard_normal(n + burn)))
    # stationary variance of the cascade: sum of its squared impulse response
    k = np.arange(burn + n)
    h = (k + 1) * a ** k
    return x[burn:] / np.sqrt(np.sum(h ** 2))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _bump(t: np.ndarray, begin: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0 with smoothstep ramps, starting to rise at ``begin``."""
    return _smoothstep((t - begin) / rise) - _smoothstep((t - begin - rise - hold) / fall)


def _head(rng, t, fps: int, utt: Utterance, pros: Prosody, live: float, accents, cond: ClipConditions,
          emo_pitch: float):
    """Yaw, pitch, roll (degrees) and tx, ty, tz tracks."""
    n = len(t)
    talk = pros.speaking
    rest = rng.normal(0.0, [6.0, 3.5, 2.8])
    sway = 0.6 + 0.4 * talk
    yaw = rest[0] + live * (6.0 * sway * smooth_noise(rng, n, fps, 1.2) + 1.5 * sway * smooth_noise(rng, n, fps, 0.25))
    pitch = rest[1] + emo_pitch + live * 3.5 * sway * smooth_noise(rng, n, fps, 0.9) + 1.2 * pros.pitch_z
    roll = rest[2] + live * 2.8 * sway * smooth_noise(rng, n, fps, 1.5)
    for when, strength in accents:  # nod (down then back) and a small turn around each accent
        lag = np.clip(t - (when - 0.12), 0, None) / 0.15
        kernel = lag * np.exp(1 - lag)
        pitch -= live * strength * rng.uniform(1.5, 4.0) * kernel
        yaw += live * strength * rng.normal(0.0, 1.5) * kernel
        roll += live * strength * rng.normal(0.0, 0.8) * kernel
    n_turns = rng.poisson(live * utt.duration / 20.0)
    for _ in range(n_turns):  # occasional look-away
        amp = rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 28.0)
        yaw += amp * _bump(t, rng.uniform(-0.5, utt.duration), rng.uniform(0.4, 0.8), rng.uniform(1.0, 3.0),
                           rng.uniform(0.5, 1.0))
    roll += 0.12 * (yaw - rest[0])  # a turning head tilts a little
    yaw = 38.0 * np.tanh(yaw / 38.0)
    pitch = 22.0 * np.tanh(pitch / 22.0)
    roll = 16.0 * np.tanh(roll / 16.0)
    tx = 0.04 * smooth_noise(rng, n, fps, 3.0) + 0.01 * yaw / 20.0
    ty = 0.03 * smooth_noise(rng, n, fps, 3.0) + 0.01 * pitch / 15.0
    tz = cond.distance * NOMINAL_DISTANCE + 0.12 * smooth_noise(rng, n, fps, 4.0)
    return yaw, pitch, roll, tx, ty, tz


def _accents(rng, utt: Utterance, pros, fps: int) -> list[tuple[float, float]]:
    """(time, strength) of accented syllables: stressed vowels, weighted by loudness and pitch."""
    out = []
    for start, end, ipa in utt.phonemes:
        if phoneme_visemes(ipa)[0] not in _VOWEL_CLASSES:
            continue
        stress = 1.0 if "ˈ" in ipa else 0.4 if "ˌ" in ipa else 0.15
        k = min(int((start + end) / 2 * fps), len(pros.loud) - 1)
        strength = stress * (0.7 + 0.3 * np.clip(pros.loud[k], -1, 1) + 0.2 * np.clip(pros.pitch_z[k], -1, 2))
        if rng.random() < min(1.0, 0.8 * strength):
            out.append((start + 0.3 * (end - start), float(strength)))
    return out


def _phrase_boundaries(utt: Utterance) -> list[float]:
    """Times of phrase boundaries: speech onset, offsets before pauses of 150 ms or more, speech end."""
    if not utt.phonemes:
        return []
    out = [utt.phonemes[0][0]]
    out += [a[1] for a, b in zip(utt.phonemes, utt.phonemes[1:]) if b[0] - a[1] >= _PHRASE_PAUSE_S]
    return out + [utt.phonemes[-1][1]]


def _blinks(rng, t: np.ndarray, fps: int, utt: Utterance, rate_per_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Left and right eyelid closure tracks in [0, 1]; each blink is fully closed at a frame centre."""
    dt = 1.0 / fps
    weight = np.ones_like(t)
    for b in _phrase_boundaries(utt):
        weight += 4.0 * np.exp(-0.5 * ((t - b - 0.1) / 0.3) ** 2)
    rate = rate_per_min / 60.0
    rate_eff = rate / max(1e-3, 1.0 - rate * _BLINK_REFRACTORY_S)  # undo the refractory loss
    hazard = rate_eff * weight / weight.mean() * dt
    u = rng.random(len(t))
    left, right = np.zeros_like(t), np.zeros_like(t)
    last = -np.inf
    for k in range(len(t)):
        if u[k] >= hazard[k] or t[k] - last < _BLINK_REFRACTORY_S:
            continue
        last = t[k]  # the lids are fully closed at this frame centre
        dur = rng.uniform(0.10, 0.20)
        close, reopen = 0.35 * dur, 0.65 * dur
        depth = rng.uniform(0.9, 1.0) if rng.random() > 0.1 else rng.uniform(0.5, 0.8)
        x = np.where(t <= t[k], 1 - (t[k] - t) / close, 1 - (t - t[k]) / reopen)
        shape = depth * np.sin(np.pi / 2 * np.clip(x, 0, 1)) ** 2
        left = np.maximum(left, shape)
        right = np.maximum(right, shape * rng.uniform(0.95, 1.0))
    return left, right


def _gaze(rng, t: np.ndarray, cond: ClipConditions, yaw: np.ndarray, pitch: np.ndarray, fps: int):
    """Eye-in-head gaze: fixations around the main gaze, saccades, partial VOR of fast head motion."""
    gy, gp = np.full_like(t, cond.gaze_yaw), np.full_like(t, cond.gaze_pitch)
    start, prev = float(-rng.uniform(0, 1.0)), (0.0, 0.0)
    while start < t[-1] + 1.0 / fps:
        target = (rng.normal(0, 2.5), rng.normal(0, 1.8))
        ramp = np.clip((t - start) / 0.04, 0, 1)
        mask = t >= start
        gy[mask] = cond.gaze_yaw + prev[0] + (target[0] - prev[0]) * ramp[mask]
        gp[mask] = cond.gaze_pitch + prev[1] + (target[1] - prev[1]) * ramp[mask]
        prev = target
        start += float(np.clip(rng.lognormal(np.log(0.8), 0.5), 0.3, 2.0))
    window = max(1, int(0.5 * fps))
    kernel = np.ones(window) / window
    for head, g in ((yaw, gy), (pitch, gp)):
        slow = np.convolve(np.pad(head, window, mode="edge"), kernel, "same")[window:-window]
        g -= 0.5 * (head - slow)
    return gy, gp


def animate(utt: Utterance, cond: ClipConditions, rng: np.random.Generator, fps: int = 25) -> Animation:
    """Animate ``utt`` under the clip conditions ``cond``; deterministic given ``rng``'s state."""
    if cond.emotion not in _EMOTION:
        raise VasaError(f"unknown emotion {cond.emotion!r}; use one of {', '.join(EMOTIONS)}")
    if fps <= 0 or utt.duration <= 0:
        raise VasaError(f"need fps > 0 and non-empty audio (got fps={fps}, {utt.duration:.3f} s)")
    t = frame_times(utt.duration, fps)
    offsets, energy, jaw_factor = _EMOTION[cond.emotion]
    intensity = float(np.clip(cond.emotion_intensity, 0.0, 1.0))
    traits = {"liveliness": float(rng.uniform(0.5, 1.5)) * energy, "articulation": float(rng.uniform(0.75, 1.15)),
              "blink_rate": float(rng.uniform(14.0, 21.0))}
    pros = frame_prosody(utt.audio, utt.sr, t)
    mouth = mouth_tracks(utt.phonemes, utt.duration, fps)
    accents = _accents(rng, utt, pros, fps)
    p = np.zeros((len(t), N_PARAMS), np.float64)
    col = PARAM_INDEX

    m = mouth.mouth.astype(np.float64)
    jaw_gain = traits["articulation"] * (1 + 0.25 * np.clip(pros.loud, -1, 1)) * (1 + jaw_factor * intensity)
    p[:, col["jaw"]] = m[:, 0] * jaw_gain + offsets.get("jaw", 0.0) * intensity
    for j, name in enumerate(MOUTH_PARAMS[1:3], start=1):
        p[:, col[name]] = m[:, j] * traits["articulation"]
    p[:, col["lip_press"]] = m[:, 3] + offsets.get("lip_press", 0.0) * intensity

    yaw, pitch, roll, tx, ty, tz = _head(rng, t, fps, utt, pros, traits["liveliness"], accents, cond,
                                         offsets.get("pitch", 0.0) * intensity)
    for name, track in (("yaw", yaw), ("pitch", pitch), ("roll", roll), ("tx", tx), ("ty", ty), ("tz", tz)):
        p[:, col[name]] = track
    p[:, col["scale"]] = NOMINAL_DISTANCE / tz

    wobble = intensity * (1 + 0.1 * smooth_noise(rng, len(t), fps, 2.0))  # expressions breathe a little
    accent_brows = np.zeros_like(t)
    for when, strength in accents:  # brows lift on accents
        accent_brows += 0.12 * strength * np.exp(-0.5 * ((t - when) / 0.15) ** 2)
    p[:, col["smile"]] = offsets.get("smile", 0.0) * wobble
    p[:, col["brow_raise"]] = offsets.get("brow_raise", 0.0) * wobble + traits["liveliness"] * accent_brows
    p[:, col["brow_furrow"]] = offsets.get("brow_furrow", 0.0) * wobble
    p[:, col["eye_wide"]] = offsets.get("eye_wide", 0.0) * wobble

    squint = offsets.get("blink", 0.0) * intensity
    left, right = _blinks(rng, t, fps, utt, traits["blink_rate"])
    p[:, col["blink_l"]] = squint + (1 - squint) * left
    p[:, col["blink_r"]] = squint + (1 - squint) * right
    p[:, col["gaze_yaw"]], p[:, col["gaze_pitch"]] = _gaze(rng, t, cond, yaw, pitch, fps)
    return Animation(params=clip_params(p), phoneme=mouth.phoneme, viseme=mouth.viseme, fps=fps, traits=traits)
