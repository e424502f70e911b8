"""Evaluation of the motion stage in motion space, on held-out identities and sentences (the test split).

>>> from vasa.config import load_params
>>> from vasa.stage_kwargs import motion_eval_kwargs
>>> ev = evaluate_motion(**motion_eval_kwargs(load_params("params.yaml").train_motion), figures_dir="reports/motion")
>>> ev["metrics"]          # JSON-able (metrics/train_motion.json); ev["figures"]: {name: matplotlib Figure}

Ground truth enters only here, through linear read-outs fit on the **val** split's exported motion
(other identities than test) and applied to generated and to ground-truth (exported) test motion:

* (a) **lip sync**: a ridge probe ``dyn -> jaw`` (corpus parameter); per clip Pearson r of the
  generated probe-jaw with the probe-jaw of the clip's exported motion and with the true jaw, mean
  and 95 % CI over clips. References: the exported motion itself (the probe's ceiling) and the
  generated jaw against *another* clip's jaw (chance).
* (b) **head pose**: dP (mean absolute frame-to-frame change of yaw, pitch, roll in degrees, the
  paper's metric) and the per-clip range, generated vs exported vs true parameters.
* (b') **blinks**: a ridge probe ``dyn -> eye closure`` (mean of ``blink_l``, ``blink_r``); blink
  events per minute (closure rising to >= 0.5) of generated vs exported motion vs the true parameters.
  Blinks are not audio-driven, so their rate is compared, not their timing.
* (c) **diversity**: std of the generated motion across seeds (normalised units, per frame and
  dimension) against the ground truth's variability over time.
* (d) **condition response**: requested vs generated gaze (probe ``dyn -> gaze_yaw, gaze_pitch``,
  clip means), distance (probe ``pose -> tz``; Spearman and per-clip monotonicity), emotion (a
  logistic-regression classifier on ``dyn`` frames of val clips; accuracy on generated motion for
  the requested emotion).
* (e) every metric for the diffusion model and the **regression baseline** (same backbone).
* (f) **seamlessness**: ``|X_t - X_{t-1}|`` (normalised units) at window boundaries vs within windows.
* (g) **sampling cost**: ms of compute per second of motion (one clip, batch 1, CFG included, this
  CPU, ``cost_threads`` threads, best of two runs) for DDIM at several step counts, the few-step
  sampler and the baseline, with (a) and (b) at each.

The audio encoder's frame phoneme accuracy (h) is measured by the ``train_audio`` stage
(:func:`vasa.audio.train.evaluate_encoder`); its fingerprint is recorded here.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.eval.probes import RidgeProbe
from vasa.motion.dataset import MotionClip, MotionSpace
from vasa.motion.figures import make_figures
from vasa.motion.generate import MotionGenerator, generate_batch
from vasa.motion.task import load_motion_model
from vasa.synth.params import EMOTIONS

GAZE_SWEEP = ((0.0, 0.0), (-15.0, 0.0), (15.0, 0.0), (0.0, -10.0), (0.0, 10.0))  # (yaw, pitch) degrees
DISTANCE_SWEEP = (0.8, 0.9, 1.0, 1.12, 1.25)  # normalised head distance (the corpus draws 0.8..1.25)


# ----------------------------------------------------------------------------- small statistics
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two series (cut to the shorter); NaN when either is constant."""
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    if n < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def mean_ci(values) -> dict[str, float | int | None]:
    """Mean, 95 % confidence half-width (Student t) and count of the finite values."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return {"mean": None, "ci95": None, "n": 0}
    ci = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None
    return {"mean": float(v.mean()), "ci95": ci, "n": int(len(v))}


def _clean(obj: Any) -> Any:
    """JSON-able: numpy scalars to Python, NaN / inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return obj


# ----------------------------------------------------------------------------- read-outs fit on val
class Readouts:
    """Linear read-outs from motion to ground-truth factors, fit on the probe split's exported motion."""

    def __init__(self, space: MotionSpace, clips: list[MotionClip], params: list[np.ndarray], names: list[str],
                 emotions: list[str | None]):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.space = space
        col = {n: i for i, n in enumerate(names)}
        x = np.concatenate([c.motion for c in clips])
        y = np.concatenate(params)
        groups = np.concatenate([np.full(len(c.motion), i) for i, c in enumerate(clips)])
        pose, dyn = space.split(x)
        self.jaw = RidgeProbe().fit(dyn, y[:, col["jaw"]], groups)
        self.gaze = RidgeProbe().fit(dyn, y[:, [col["gaze_yaw"], col["gaze_pitch"]]], groups)
        self.tz = RidgeProbe().fit(pose, y[:, col["tz"]], groups)
        self.blink = RidgeProbe().fit(dyn, true_blink(y, names), groups) if "blink_l" in col else None
        labels = np.concatenate([np.full(len(c.motion), e or "") for c, e in zip(clips, emotions)])
        known = labels != ""
        self.emotion = None
        if len(set(labels[known])) >= 2:
            self.emotion = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0))
            self.emotion.fit(dyn[known], labels[known])

    def jaw_of(self, x: np.ndarray) -> np.ndarray:
        return self.jaw.predict(self.space.split(x)[1])[:, 0]

    def blink_of(self, x: np.ndarray) -> np.ndarray | None:
        """Per-frame eye closure (mean of both eyes, 0 open .. 1 closed) read from ``dyn``."""
        return None if self.blink is None else self.blink.predict(self.space.split(x)[1])[:, 0]

    def gaze_of(self, x: np.ndarray) -> np.ndarray:
        """Clip-mean gaze (yaw, pitch) in degrees read from ``dyn``."""
        return self.gaze.predict(self.space.split(x)[1]).mean(0)

    def tz_of(self, x: np.ndarray) -> float:
        return float(self.tz.predict(self.space.split(x)[0]).mean())

    def emotion_of(self, x: np.ndarray) -> str | None:
        """The clip's emotion: the class of highest mean log-probability over its frames."""
        if self.emotion is None:
            return None
        lp = self.emotion.predict_log_proba(self.space.split(x)[1]).mean(0)
        return str(self.emotion.classes_[int(np.argmax(lp))])


# ----------------------------------------------------------------------------- per-clip metrics
BLINK_CLOSED = 0.5  # eye closure (0 open .. 1 closed) from which a frame counts as a blink


def true_blink(params: np.ndarray, names) -> np.ndarray:
    """The corpus's eye closure per frame: the mean of ``blink_l`` and ``blink_r``."""
    col = {n: i for i, n in enumerate(list(names))}
    return (params[:, col["blink_l"]] + params[:, col["blink_r"]]) / 2


def blinks_per_minute(closure: np.ndarray, fps: float = 25.0, closed: float = BLINK_CLOSED) -> float:
    """Blink events (frames where ``closure`` rises to ``closed`` or above) per minute of the series."""
    c = np.asarray(closure, np.float64) >= closed
    if len(c) < 2:
        return float("nan")
    events = int(c[0]) + int((c[1:] & ~c[:-1]).sum())
    return events * 60.0 * fps / len(c)


def head_stats(space: MotionSpace, x: np.ndarray) -> dict[str, float]:
    """dP (mean |frame-to-frame change| of yaw, pitch, roll, degrees) and the mean per-angle range."""
    deg = space.pose_degrees(x)
    if len(deg) < 2:
        return {"dP": float("nan"), "range": float("nan")}
    return {"dP": float(np.abs(np.diff(deg, axis=0)).mean()), "range": float((deg.max(0) - deg.min(0)).mean())}


def quality(space: MotionSpace, ro: Readouts, gen: list[np.ndarray], gt: list[np.ndarray],
            jaw: list[np.ndarray]) -> dict[str, Any]:
    """(a) and (b) for generated clips ``gen`` against their exported ``gt`` motion and true ``jaw``."""
    r_lat, r_gt, r_other = [], [], []
    for i, (g, x, j) in enumerate(zip(gen, gt, jaw)):
        jg = ro.jaw_of(g)
        r_lat.append(pearson(jg, ro.jaw_of(x)))
        r_gt.append(pearson(jg, j))
        if len(gen) > 1:
            r_other.append(pearson(jg, jaw[(i + 1) % len(gen)]))
    hs = [head_stats(space, g) for g in gen]
    # blinks: events per minute of the eye closure read out of the motion (the corpus blinks 17 / min);
    # their timing is not audio-driven, so only the rate is compared
    bpm = [blinks_per_minute(ro.blink_of(g)) for g in gen] if ro.blink is not None else []
    return {"jaw_r_vs_exported": mean_ci(r_lat), "jaw_r_vs_true": mean_ci(r_gt),
            "jaw_r_vs_other_clip": mean_ci(r_other), "blinks_per_min": mean_ci(bpm),
            "dP": mean_ci([h["dP"] for h in hs]), "pose_range": mean_ci([h["range"] for h in hs]),
            "_per_clip": {"jaw_r_vs_exported": r_lat, "jaw_r_vs_true": r_gt, "jaw_r_vs_other_clip": r_other}}


def seams(xs: list[np.ndarray], window: int, mean: np.ndarray, std: np.ndarray, region: int = 4) -> dict[str, Any]:
    """(f) frame-to-frame change ``|X_t - X_{t-1}|`` (L2 over normalised dims) at window starts vs within.

    ``ratio``: mean change into the first frame of a window / mean change elsewhere; ``region_ratio``:
    the same for the first ``region`` frames of every window (a step spread over a few frames, e.g. by
    :func:`~vasa.motion.generate.blend_boundary`, still shows there) against the frames after them.
    """
    at, within, reg, rest = [], [], [], []
    for x in xs:
        d = np.linalg.norm(np.diff((x - mean) / std, axis=0), axis=1)  # change into frame t = 1..T-1
        t = np.arange(1, len(x))
        at.append(d[t % window == 0])
        within.append(d[t % window != 0])
        past_first = t >= window  # the first window has no boundary
        reg.append(d[past_first & (t % window < region)])
        rest.append(d[t % window >= region])
    cat = lambda v: np.concatenate(v) if v else np.zeros(0)  # noqa: E731
    a, w, rg, rs = cat(at), cat(within), cat(reg), cat(rest)
    mean_ = lambda v: float(v.mean()) if len(v) else float("nan")  # noqa: E731
    ma, mw = mean_(a), mean_(w)
    return {"boundary_mean": ma, "within_mean": mw, "ratio": ma / mw if len(a) and mw > 0 else float("nan"),
            "region_ratio": mean_(rg) / mean_(rs) if len(rg) and len(rs) and mean_(rs) > 0 else float("nan"),
            "boundary_n": int(len(a)), "_boundary": a, "_within": w}


def _split_arrays(d: dict) -> tuple[dict, dict]:
    """Keys starting with '_' are arrays for plots, the rest metrics."""
    metrics = {k: v for k, v in d.items() if not k.startswith("_")}
    arrays = {k[1:]: v for k, v in d.items() if k.startswith("_")}
    return metrics, arrays


# ----------------------------------------------------------------------------- the evaluation
def controls_from_record(record: dict) -> dict[str, Any]:
    """MotionGenerator keywords from a record's ``conditions`` (missing labels dropped: None)."""
    c = record.get("conditions") or {}
    return dict(gaze=(c["gaze_yaw"], c["gaze_pitch"]) if "gaze_yaw" in c and "gaze_pitch" in c else None,
                distance=c.get("distance"), emotion=c.get("emotion"),
                emotion_intensity=c.get("emotion_intensity", 1.0))


def evaluate_motion(
    corpus: str = "data/corpus",
    motion: str = "data/motion",
    audio_model: str = "models/audio",
    model: str = "models/motion",                       # the diffusion model (train_motion's out)
    regression_model: str = "models/motion_regression",  # the baseline ("" = none)
    work_dir: str = "runs/motion",                      # audio feature cache (work_dir/features)
    motion_source: str = "latent",
    split: str = "test",                 # held-out identities and sentences
    probe_split: str = "val",            # read-outs are fit here
    clips: int = 40,                     # test clips for (a), (b), (e), (f)
    sampler: str = "dpmpp_2m",           # main setting
    steps: int = 10,
    guidance_audio: float = 0.5,         # CFG scales (the paper: audio 0.5, gaze 1.0)
    guidance_gaze: float = 1.0,
    seeds: int = 3,                      # (c) seeds per clip
    diversity_clips: int = 10,
    condition_clips: int = 6,            # (d) clips per requested value
    condition_frames: int = 50,          # (d) frames generated per request
    cost_steps: list | tuple = (50, 25, 10),  # (g) DDIM step counts
    fast_sampler: str = "dpmpp_2m",      # (g) the few-step sampler
    fast_steps: int = 10,
    cost_clips: int = 10,                # (g) clips for the quality at each setting
    cost_seconds: float = 8.0,           # (g) length of the timed clip
    cost_threads: int = 1,               # (g) torch threads while timing (1: stable on a shared CPU)
    ref_frame: int = 0,                  # x_ref = the exported motion of this frame of each test clip; -1: none
    ablate_ref: bool = True,             # also generate without x_ref (the paper's conditions) for (a), (b), (f)
    blend: int = 3,                      # frames over which each window-boundary step is spread (0 = raw output)
    ablate_blend: bool = True,           # also the raw output (blend 0) of the diffusion model, for (f)
    low_latency_hop: int = 10,           # also windows of this many frames (the low-latency stream; 0 = skip)
    seed: int = 0,
    figures_dir: str | None = "reports/motion",
    progress: bool = True,
) -> dict[str, Any]:
    """Run (a)-(g) (see the module docstring). Returns ``{"metrics": JSON-able, "figures": {name: Figure},
    "arrays": per-clip series for further plots}``; figures are also written to ``figures_dir``."""
    from vasa.motion.train import load_stage_data

    t_start = time.perf_counter()
    c = Corpus(corpus)
    space, data, info = load_stage_data(corpus, motion, audio_model, work_dir, motion_source, (probe_split, split))
    if split not in data or probe_split not in data:
        raise VasaError(f"need speech clips in splits {probe_split!r} and {split!r} of {corpus}")
    names = c.param_names
    col = {n: i for i, n in enumerate(names)}
    rec = {r["id"]: r for r in c.records(kind="speech")}
    val = data[probe_split]
    ro = Readouts(space, val, [c.params(v.clip_id) for v in val], names,
                  [(rec[v.clip_id].get("conditions") or {}).get("emotion") for v in val])
    test = sorted(data[split], key=lambda x: x.clip_id)[:clips]
    gt = [t.motion for t in test]
    true = [c.params(t.clip_id) for t in test]
    jaw = [p[:len(x), col["jaw"]] for p, x in zip(true, gt)]
    audio = [torch.from_numpy(t.audio) for t in test]
    ctrl = [dict(controls_from_record(rec[t.clip_id]),
                 ref=t.motion[min(ref_frame, len(t.motion) - 1)] if ref_frame >= 0 else None) for t in test]
    guidance = {"audio": guidance_audio, "gaze": guidance_gaze}
    models = {"diffusion": load_motion_model(model)}
    if regression_model and Path(regression_model, "model.safetensors").is_file():
        models["regression"] = load_motion_model(regression_model)
    window = models["diffusion"].cfg.window
    timings: dict[str, float] = {}

    def gen(name: str, idx: list[int], *, controls=None, steps_=steps, sampler_=sampler, seed_=seed,
            frames: int | None = None, blend_: int | None = None, hop_: int | None = None) -> list[np.ndarray]:
        t0 = time.perf_counter()
        a = [audio[i][:frames] if frames else audio[i] for i in idx]
        out = generate_batch(models[name], a, controls if controls is not None else [ctrl[i] for i in idx],
                             sampler=sampler_, steps=steps_, guidance=guidance, seed=seed_,
                             blend=blend if blend_ is None else blend_, hop=hop_)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return [o.numpy().astype(np.float64) for o in out]

    all_idx = list(range(len(test)))
    m: dict[str, Any] = {"setup": dict(info, split=split, probe_split=probe_split, clips=len(test),
                                       probe_clips=len(val), sampler=sampler, steps=steps, guidance=guidance,
                                       ref_frame=ref_frame, blend=blend,
                                       threads=torch.get_num_threads(), window=window,
                                       seconds_of_motion=float(sum(len(x) for x in gt) / 25.0))}
    # read-out quality on the test split's exported motion (how far the probes can be trusted)
    xt, yt = np.concatenate(gt), np.concatenate([p[:len(x)] for p, x in zip(true, gt)])
    m["readouts"] = {"jaw_r2": float(ro.jaw.score(space.split(xt)[1], yt[:, col["jaw"]])[0]),
                     "gaze_r2": ro.gaze.score(space.split(xt)[1], yt[:, [col["gaze_yaw"], col["gaze_pitch"]]]).tolist(),
                     "tz_r2": float(ro.tz.score(space.split(xt)[0], yt[:, col["tz"]])[0])}
    if ro.blink is not None:  # how well the motion carries the eyes' closure
        m["readouts"]["blink_r2"] = float(ro.blink.score(space.split(xt)[1], true_blink(yt, names))[0])
    if ro.emotion is not None:
        emo_gt = [(rec[t.clip_id].get("conditions") or {}).get("emotion") for t in test]
        hits = [ro.emotion_of(x) == e for x, e in zip(gt, emo_gt) if e]
        m["readouts"]["emotion_acc_exported"] = float(np.mean(hits)) if hits else None

    # (a), (b), (e): main setting, diffusion and regression; references: exported motion, true parameters
    generated = {name: gen(name, all_idx) for name in models}
    if ablate_ref and ref_frame >= 0:
        generated["diffusion, no x_ref"] = gen("diffusion", all_idx, controls=[{**c, "ref": None} for c in ctrl])
    if ablate_blend and blend > 0:
        generated["diffusion, no blend"] = gen("diffusion", all_idx, blend_=0)
    hop_name = f"diffusion, hop {low_latency_hop}"
    if 0 < low_latency_hop < window:
        generated[hop_name] = gen("diffusion", all_idx, hop_=low_latency_hop)
    arrays: dict[str, Any] = {"clip_ids": [t.clip_id for t in test], "gt": gt, "true_jaw": jaw,
                              "generated": generated}
    qual = {}
    for name, g in generated.items():
        qual[name], arrays[f"quality_{name}"] = _split_arrays(quality(space, ro, g, gt, jaw))
    ref, arrays["quality_exported"] = _split_arrays(quality(space, ro, gt, gt, jaw))
    ref["dP_true_params"] = mean_ci([float(np.abs(np.diff(p[:, [col[a] for a in ("yaw", "pitch", "roll")]], axis=0))
                                           .mean()) for p in true])
    if "blink_l" in col:
        ref["blinks_per_min_true_params"] = mean_ci([blinks_per_minute(true_blink(p[:len(x)], names))
                                                     for p, x in zip(true, gt)])
    ref["pose_range_true_params"] = mean_ci([float((p[:, [col[a] for a in ("yaw", "pitch", "roll")]].max(0) -
                                                    p[:, [col[a] for a in ("yaw", "pitch", "roll")]].min(0)).mean())
                                             for p in true])
    qual["exported (ground truth)"] = ref
    m["quality"] = qual

    # (f) seamlessness
    m["seams"] = {}
    for name, xs in list(generated.items()) + [("exported (ground truth)", gt)]:
        period = low_latency_hop if name == hop_name else window  # that row's window boundaries
        m["seams"][name], arrays[f"seams_{name}"] = _split_arrays(seams(xs, period, space.mean, space.std))

    # (c) diversity across seeds (seed 0 is the main run)
    div_idx = all_idx[:diversity_clips]
    runs = [[generated["diffusion"][i] for i in div_idx]] + [gen("diffusion", div_idx, seed_=seed + s)
                                                            for s in range(1, max(seeds, 2))]
    norm = lambda x: (x - space.mean) / space.std  # noqa: E731
    seed_std, gt_std = {"pose": [], "dyn": []}, {"pose": [], "dyn": []}
    for j, i in enumerate(div_idx):
        stack = np.stack([norm(r[j]) for r in runs])  # S x T x D
        sd = stack.std(0)  # T x D
        tv = norm(gt[i]).std(0)  # D: variability of the ground truth over time
        for part, sl in (("pose", slice(0, space.pose_dim)), ("dyn", slice(space.pose_dim, None))):
            seed_std[part].append(float(sd[:, sl].mean()))
            gt_std[part].append(float(tv[sl].mean()))
    m["diversity"] = {"seeds": len(runs), "clips": len(div_idx),
                      **{f"seed_std_{p}": mean_ci(seed_std[p]) for p in seed_std},
                      **{f"gt_temporal_std_{p}": mean_ci(gt_std[p]) for p in gt_std},
                      "ratio_pose": _ratio(seed_std["pose"], gt_std["pose"]),
                      "ratio_dyn": _ratio(seed_std["dyn"], gt_std["dyn"]),
                      "regression_seed_std": 0.0 if "regression" in models else None}
    arrays["diversity"] = {"runs": [r[0] for r in runs], "clip": test[div_idx[0]].clip_id} if div_idx else {}

    # (d) condition response (both models)
    m["conditions"], arrays["conditions"] = {}, {}
    cidx = all_idx[:condition_clips]
    for name in models:
        m["conditions"][name], arrays["conditions"][name] = _condition_response(
            gen, name, cidx, ctrl, ro, condition_frames)

    # (g) sampling cost and quality per sampler setting
    m["sampling"], arrays["sampling"] = _sampling_cost(gen, models, audio, cost_steps, fast_sampler, fast_steps,
                                                       all_idx[:cost_clips], space, ro, gt, jaw, guidance,
                                                       cost_seconds, (sampler, steps), generated, cost_threads, blend,
                                                       low_latency_hop)
    m["generation_seconds"] = timings
    m["seconds"] = time.perf_counter() - t_start
    figures = make_figures(space, ro, m, arrays, window)
    if figures_dir:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        for fname, fig in figures.items():
            fig.savefig(Path(figures_dir) / f"{fname}.png", dpi=80, bbox_inches="tight")
    return {"metrics": _clean(m), "figures": figures, "arrays": arrays}


def _ratio(a: list[float], b: list[float]) -> float | None:
    return float(np.mean(a) / np.mean(b)) if a and b and np.mean(b) > 0 else None


def _condition_response(gen, name: str, idx: list[int], ctrl: list[dict], ro: Readouts,
                        frames: int) -> tuple[dict, dict]:
    """Gaze, distance and emotion sweeps on clips ``idx`` (other conditions: the clip's own)."""
    from scipy import stats

    out: dict[str, Any] = {}
    arr: dict[str, Any] = {}
    if not idx:
        return out, arr
    # gaze
    reqs = [(i, g) for g in GAZE_SWEEP for i in idx]
    res = gen(name, [i for i, _ in reqs], controls=[{**ctrl[i], "gaze": g} for i, g in reqs], frames=frames)
    got = np.array([ro.gaze_of(x) for x in res])  # N x 2
    want = np.array([g for _, g in reqs])
    yaw_rows = [k for k, (_, g) in enumerate(reqs) if g[1] == 0.0]
    pit_rows = [k for k, (_, g) in enumerate(reqs) if g[0] == 0.0]
    out["gaze"] = {"yaw_r": pearson(want[yaw_rows, 0], got[yaw_rows, 0]),
                   "yaw_slope": _slope(want[yaw_rows, 0], got[yaw_rows, 0]),
                   "pitch_r": pearson(want[pit_rows, 1], got[pit_rows, 1]),
                   "pitch_slope": _slope(want[pit_rows, 1], got[pit_rows, 1]),
                   "abs_error_deg": float(np.abs(got - want).mean())}
    arr["gaze"] = {"requested": want, "generated": got}
    # distance
    reqs = [(i, d) for d in DISTANCE_SWEEP for i in idx]
    res = gen(name, [i for i, _ in reqs], controls=[{**ctrl[i], "distance": d} for i, d in reqs], frames=frames)
    tz = np.array([ro.tz_of(x) for x in res])
    want = np.array([d for _, d in reqs])
    per_clip = tz.reshape(len(DISTANCE_SWEEP), len(idx)).T  # clips x sweep
    mono = [bool(np.all(np.diff(row) > 0)) for row in per_clip]
    rho = stats.spearmanr(want, tz).statistic if np.ptp(tz) > 0 else float("nan")
    out["distance"] = {"spearman": float(rho), "monotonic_clips": float(np.mean(mono)),
                       "tz_slope": _slope(want, tz)}
    arr["distance"] = {"requested": list(DISTANCE_SWEEP), "tz": per_clip}
    # emotion
    if ro.emotion is not None:
        reqs = [(i, e) for e in EMOTIONS for i in idx]
        res = gen(name, [i for i, _ in reqs], controls=[{**ctrl[i], "emotion": e, "emotion_intensity": 1.0}
                                                        for i, e in reqs], frames=frames)
        pred = [ro.emotion_of(x) for x in res]
        want_e = [e for _, e in reqs]
        classes = list(EMOTIONS)
        conf = np.zeros((len(classes), len(classes)), int)
        for w, p in zip(want_e, pred):
            if p in classes:
                conf[classes.index(w), classes.index(p)] += 1
        out["emotion"] = {"accuracy": float(np.mean([w == p for w, p in zip(want_e, pred)])),
                          "chance": 1.0 / len(classes)}
        arr["emotion"] = {"classes": classes, "confusion": conf}
    return out, arr


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 and len(x) > 1 else float("nan")


def _sampling_cost(gen, models, audio, cost_steps, fast_sampler, fast_steps, idx, space, ro, gt, jaw, guidance,
                   seconds: float, main: tuple[str, int], generated: dict, cost_threads: int,
                   blend: int, hop: int = 0) -> tuple[dict, dict]:
    settings = [("ddim", int(s)) for s in cost_steps] + [(fast_sampler, int(fast_steps))]
    frames = max(1, int(round(seconds * 25)))
    longest = max(audio, key=len)
    reps = -(-frames // len(longest))
    timed_audio = torch.cat([longest] * reps)[:frames]  # a real test clip (repeated to the timed length)
    out, arr = {}, {}
    rows = [(f"{s}_{n}", "diffusion", s, n, None) for s, n in settings]
    if 0 < hop < models["diffusion"].cfg.window:  # the low-latency stream's windows
        rows.append((f"{fast_sampler}_{fast_steps}_hop{hop}", "diffusion", fast_sampler, int(fast_steps), hop))
    if "regression" in models:
        rows.append(("regression", "regression", "onestep", 1, None))
    for key, name, s, n, h in rows:
        g = MotionGenerator(models[name], sampler=s, steps=n, guidance=guidance, seed=0, blend=blend, hop=h)
        threads = torch.get_num_threads()
        torch.set_num_threads(cost_threads)
        try:
            g.generate(timed_audio[:models[name].cfg.window])  # warm-up
            best = float("inf")
            for _ in range(2):  # the best of two: a shared CPU only ever slows a run down
                t0 = time.perf_counter()
                g.generate(timed_audio)
                best = min(best, time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
        ms = 1000.0 * best / (frames / 25.0)
        if name == "diffusion" and (s, n) == main and h is None:
            xs = [generated["diffusion"][i] for i in idx]  # already generated with this setting
        elif name == "regression":
            xs = [generated["regression"][i] for i in idx]
        else:
            xs = gen(name, idx, steps_=n, sampler_=s, hop_=h)
        q, _ = _split_arrays(quality(space, ro, xs, [gt[i] for i in idx], [jaw[i] for i in idx]))
        out[key] = {"ms_per_s": ms, "realtime_factor": 1000.0 / ms, "sampler": s, "steps": n, "hop": h,
                    "jaw_r_vs_exported": q["jaw_r_vs_exported"]["mean"], "jaw_r_vs_true": q["jaw_r_vs_true"]["mean"],
                    "dP": q["dP"]["mean"]}
    return {"settings": out, "timed_seconds": frames / 25.0, "threads": cost_threads}, arr
