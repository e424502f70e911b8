"""Motion for audio of any length: sliding windows with past context, offline or streaming.

The audio features ``A`` (``T x F``, 25 fps) are cut into windows of ``W`` frames starting at
``0, W, 2W, ...``; window ``n`` is sampled with ``X_pre`` = the last ``K`` motion frames generated
before it and ``A_pre`` = their audio (the first window has no past: its null tokens), so windows
join without a seam. The last window is padded and its missing audio frames marked (``audio_mask``),
as in training's audio-tail truncation; only its real frames are kept.

Noise is seeded **per window**: window ``n`` draws its ``X_T`` and every later noise from a generator
seeded with ``derive_seed(seed, n)``. The streaming API (:class:`MotionStream`) feeds the same windows
with the same tensors through the same function as :meth:`MotionGenerator.generate`, so for the same
seed its output is exactly (bitwise) the offline result, whatever the chunking of the audio.
Latency of the stream: one window (``W`` frames) of audio.

>>> gen = MotionGenerator(model, sampler="ddim", steps=50, guidance={"audio": 0.5, "gaze": 1.0}, seed=0,
...                       gaze=(0.0, 0.0), distance=1.0, emotion=None)
>>> X = gen.generate(A)                  # T x D motion (model units: [z_pose, z_dyn])
>>> stream = gen.stream()
>>> for chunk in chunks: out = stream.push(chunk)   # k x F in, m x D out (m a multiple of W)
>>> tail = stream.flush()                # the concatenation equals gen.generate(A)

Speed: ``python -m vasa.motion.bench`` (:mod:`vasa.motion.bench`).
"""

from __future__ import annotations

import numpy as np
import torch

from vasa.errors import VasaError
from vasa.motion.conditions import MotionConditions, encode_distance, encode_emotion, encode_gaze
from vasa.motion.diffusion import NoiseSchedule
from vasa.motion.model import MotionDiT
from vasa.motion.sampling import DEFAULT_GUIDANCE, get_sampler, guided_denoiser
from vasa.train.checkpoint import derive_seed

WINDOW_SEED_PURPOSE = 7  # mixed into derive_seed(seed, purpose, window index)
DEFAULT_BLEND = 3  # frames (120 ms): the measured step at window boundaries (2.7x the within-window change) -> 0.9x


def blend_boundary(x: torch.Tensor, x_pre: torch.Tensor | None, frames: int) -> torch.Tensor:
    """Spread the step at a window boundary over the window's first ``frames`` frames.

    ``x``: n x D new window (normalised), ``x_pre``: the K frames before it (what was emitted). The
    jump ``d = x[0] - (2 X_pre[-1] - X_pre[-2])`` (the first frame against the past's linear
    continuation) is removed at frame 0 and faded out linearly by frame ``frames``; later frames are
    untouched. It depends only on the past and the window, so streaming still equals offline.
    """
    if frames <= 0 or x_pre is None or len(x_pre) < 2 or len(x) == 0:
        return x
    d = x[0] - (2 * x_pre[-1] - x_pre[-2])
    k = min(frames, len(x))
    ramp = 1.0 - torch.arange(k, dtype=x.dtype, device=x.device) / frames  # 1 .. > 0
    out = x.clone()
    out[:k] = out[:k] - ramp[:, None] * d.to(x.device)
    return out


def window_seed(seed: int, index: int) -> int:
    """Seed of window ``index``'s noise (offline and streaming use the same)."""
    return derive_seed(seed, WINDOW_SEED_PURPOSE, index)


class MotionGenerator:
    """Generates motion window by window with a trained :class:`MotionDiT` (see the module docstring).

    ``gaze`` (theta, phi) in degrees, ``distance`` normalised (1.0 nominal), ``emotion`` a name of
    ``vasa.synth.params.EMOTIONS`` with ``emotion_intensity``; ``None`` drops the condition (its null
    token). Defaults follow the paper: forward gaze, nominal distance, no emotion. ``ref``: the
    portrait's own motion ``[z_pose, z_dyn]`` (model units, ``D`` numbers) or None (dropped).
    ``blend``: frames over which the step at each window boundary is spread (:func:`blend_boundary`;
    0 = the model's raw output). ``hop``: frames generated per window (1 .. ``W``; None = ``W``): each
    window's audio is its ``hop`` frames, the rest of the ``W`` positions padded and masked (training
    truncates windows the same way), with the previous ``K`` frames as context. A smaller hop is the
    low-latency streaming mode (a window needs only ``hop`` frames of audio) at ``W / hop`` times the cost.
    The past context is used once ``K`` frames exist (the model was trained with exactly ``K``), so with
    ``hop < K`` the first ``ceil(K / hop)`` windows start without it; ``hop >= K`` (e.g. 10) avoids that.
    """

    def __init__(self, model: MotionDiT, *, sampler: str = "ddim", steps: int = 50,
                 guidance: dict[str, float] | None = None, seed: int = 0,
                 gaze: tuple[float, float] | None = (0.0, 0.0), distance: float | None = 1.0,
                 emotion: str | None = None, emotion_intensity: float = 1.0,
                 ref: np.ndarray | torch.Tensor | None = None, blend: int = DEFAULT_BLEND, hop: int | None = None):
        self.model = model.eval()
        self.cfg = model.cfg
        self.schedule = NoiseSchedule(self.cfg.diffusion_steps, self.cfg.schedule)
        if self.cfg.objective == "regression":
            sampler, steps = "onestep", 1
        self.sampler, self.steps = get_sampler(sampler), steps
        self.guidance = dict(DEFAULT_GUIDANCE if guidance is None else guidance)
        self.seed = seed
        if blend < 0:
            raise VasaError(f"blend must be >= 0 frames, got {blend}")
        self.blend = blend  # frames over which a window's first-frame step is spread (blend_boundary)
        self.hop = self.cfg.window if hop is None else int(hop)
        if not 1 <= self.hop <= self.cfg.window:
            raise VasaError(f"hop must be in [1, {self.cfg.window}] frames (the model's window), got {hop}")
        p = next(model.parameters())
        dev, dt = p.device, p.dtype
        as_t = lambda v: None if v is None else torch.as_tensor(v, device=dev, dtype=dt)[None]  # noqa: E731
        self.gaze = as_t(None if gaze is None else encode_gaze(*gaze))  # 1 x 2
        self.distance = as_t(None if distance is None else encode_distance(distance))  # 1 x 1
        self.emotion = as_t(None if emotion is None else encode_emotion(emotion, emotion_intensity))  # 1 x E
        self.ref = None  # 1 x D, normalised
        if ref is not None:
            r = torch.as_tensor(np.asarray(ref, np.float32).reshape(-1))
            if r.shape[0] != self.cfg.motion_dim:
                raise VasaError(f"the reference motion must have {self.cfg.motion_dim} numbers ([z_pose, z_dyn]), "
                                f"got {r.shape[0]}")
            self.ref = model.normalize(r.to(dev, dt))[None]
        if self.emotion is not None and self.emotion.shape[1] != self.cfg.emotion_dim:
            raise VasaError(f"the model's emotion condition has {self.cfg.emotion_dim} dims, "
                            f"not {self.emotion.shape[1]}")

    def conditions(self, audio: torch.Tensor, x_pre: torch.Tensor | None,
                   a_pre: torch.Tensor | None) -> MotionConditions:
        """The conditions (batch of 1) of a window: ``audio`` n x F (n <= W real frames, padded and
        masked), ``x_pre`` K x D (normalised) and ``a_pre`` K x F or None, this generator's g, d, e."""
        cfg = self.cfg
        w, n = cfg.window, audio.shape[0]
        dev, dt = self.model.pos.device, self.model.pos.dtype
        a = torch.zeros(1, w, cfg.audio_dim, device=dev, dtype=dt)
        a[0, :n] = audio
        mask = torch.zeros(1, w, dtype=torch.bool, device=dev)
        mask[0, :n] = True
        return MotionConditions(audio=a, audio_mask=mask, gaze=self.gaze, distance=self.distance,
                                emotion=self.emotion, ref=self.ref,
                                x_pre=None if x_pre is None else x_pre[None].to(dev, dt),
                                a_pre=None if a_pre is None else a_pre[None].to(dev, dt))

    def noise(self, index: int) -> tuple[torch.Tensor, torch.Generator]:
        """``X_T`` of window ``index`` (1 x W x D) and the generator of its later noise."""
        dev, dt = self.model.pos.device, self.model.pos.dtype
        gen = torch.Generator(device=dev).manual_seed(window_seed(self.seed, index))
        return torch.randn(1, self.cfg.window, self.cfg.motion_dim, generator=gen, device=dev, dtype=dt), gen

    @torch.no_grad()
    def window(self, index: int, audio: torch.Tensor, x_pre: torch.Tensor | None,
               a_pre: torch.Tensor | None) -> torch.Tensor:
        """Window ``index``: ``audio`` n x F (n <= W real frames), ``x_pre`` K x D (normalised) or None,
        ``a_pre`` K x F -> n x D normalised motion."""
        cond = self.conditions(audio, x_pre, a_pre)
        noise, gen = self.noise(index)
        denoise = guided_denoiser(self.model, cond, self.guidance)
        x = self.sampler(denoise, noise, self.schedule, steps=self.steps, generator=gen)  # 1 x W x D
        return blend_boundary(x[0, :audio.shape[0]], x_pre, self.blend)

    def _check_audio(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        a = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio, dtype=torch.float32)
        if a.ndim != 2 or a.shape[1] != self.cfg.audio_dim:
            raise VasaError(f"audio features must be T x {self.cfg.audio_dim} (25 fps), got shape {tuple(a.shape)}")
        return a

    def generate(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Motion for a whole clip: ``audio`` T x F -> T x D (denormalised model units)."""
        a = self._check_audio(audio)
        w, k = self.hop, self.cfg.past
        out: list[torch.Tensor] = []  # normalised windows
        for index, s in enumerate(range(0, a.shape[0], w)):
            past = torch.cat(out)[s - k:s] if k and s >= k else None
            out.append(self.window(index, a[s:s + w], past, a[s - k:s] if past is not None else None))
        x = torch.cat(out) if out else torch.zeros(0, self.cfg.motion_dim)
        return self.model.denormalize(x.to(self.model.motion_mean.device)).cpu()

    def stream(self) -> "MotionStream":
        """A streaming session with this generator's settings (see :class:`MotionStream`)."""
        return MotionStream(self)


class MotionStream:
    """Audio-feature chunks in, motion frames out; equals :meth:`MotionGenerator.generate` exactly."""

    def __init__(self, generator: MotionGenerator):
        self.gen = generator
        cfg = generator.cfg
        self._audio = torch.zeros(0, cfg.audio_dim)  # buffered audio frames not yet generated
        self._past_x: torch.Tensor | None = None  # last K generated frames (normalised)
        self._past_a: torch.Tensor | None = None  # their audio
        self._index = 0  # next window
        self._frames = 0  # frames emitted

    def _run(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.gen.cfg
        k = cfg.past
        use_past = k > 0 and self._frames >= k
        x = self.gen.window(self._index, audio, self._past_x if use_past else None,
                            self._past_a if use_past else None)
        self._index += 1
        self._frames += len(audio)
        if k:
            self._past_x = torch.cat([self._past_x, x])[-k:] if self._past_x is not None else x[-k:]
            self._past_a = torch.cat([self._past_a, audio])[-k:] if self._past_a is not None else audio[-k:]
        return self.gen.model.denormalize(x).cpu()

    def push(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Append ``k x F`` audio frames; returns the motion of every window completed (``m x D``)."""
        self._audio = torch.cat([self._audio, self.gen._check_audio(audio)])
        w = self.gen.hop
        outs = []
        while len(self._audio) >= w:
            outs.append(self._run(self._audio[:w]))
            self._audio = self._audio[w:]
        return torch.cat(outs) if outs else torch.zeros(0, self.gen.cfg.motion_dim)

    def flush(self) -> torch.Tensor:
        """Motion of the remaining (partial) window; the stream then starts over."""
        out = self._run(self._audio) if len(self._audio) else torch.zeros(0, self.gen.cfg.motion_dim)
        self.__init__(self.gen)
        return out



@torch.no_grad()
def generate_batch(model: MotionDiT, audios: list[torch.Tensor | np.ndarray], controls: list[dict] | None = None, *,
                   sampler: str = "ddim", steps: int = 50, guidance: dict[str, float] | None = None,
                   seed: int = 0, blend: int = DEFAULT_BLEND, hop: int | None = None) -> list[torch.Tensor]:
    """Motion for several clips at once (evaluation): the windows of every clip with the same index
    go through ``H`` in one batch. ``controls[i]`` holds clip ``i``'s ``gaze`` / ``distance`` /
    ``emotion`` / ``emotion_intensity`` keywords of :class:`MotionGenerator` (a key set to None drops
    that condition; absent keys take the generator's defaults).

    With a deterministic sampler (DDIM eta 0, DPM-Solver++, the regression baseline) clip ``i``'s
    result equals ``MotionGenerator(model, ..., **controls[i]).generate(audios[i])`` up to float
    rounding (same per-window noise); stochastic samplers share one noise generator per window.
    """
    controls = controls if controls is not None else [{} for _ in audios]
    if len(controls) != len(audios):
        raise VasaError(f"{len(audios)} audio tracks but {len(controls)} control sets")
    gens = [MotionGenerator(model, sampler=sampler, steps=steps, guidance=guidance, seed=seed, blend=blend, hop=hop,
                            **c) for c in controls]
    if not gens:
        return []
    feats = [g._check_audio(a) for g, a in zip(gens, audios)]
    g0 = gens[0]
    w, k = g0.hop, g0.cfg.past
    outs: list[list[torch.Tensor]] = [[] for _ in feats]
    for index, s in enumerate(range(0, max(len(a) for a in feats), w)):
        active = [i for i, a in enumerate(feats) if s < len(a)]
        conds, noises = [], []
        for i in active:
            past = torch.cat(outs[i])[s - k:s] if k and s >= k else None
            conds.append(gens[i].conditions(feats[i][s:s + w], past, feats[i][s - k:s] if past is not None else None))
            noises.append(gens[i].noise(index)[0])
        cond = MotionConditions.cat(conds)
        gen = g0.noise(index)[1]
        x = g0.sampler(guided_denoiser(model, cond, g0.guidance), torch.cat(noises), g0.schedule, steps=g0.steps,
                       generator=gen)  # B x W x D
        for j, i in enumerate(active):
            past = torch.cat(outs[i])[s - k:s] if k and s >= k else None
            outs[i].append(blend_boundary(x[j, :len(feats[i][s:s + w])], past, g0.blend))
    return [model.denormalize(torch.cat(o).to(model.motion_mean.device)).cpu() if o else
            torch.zeros(0, g0.cfg.motion_dim) for o in outs]
