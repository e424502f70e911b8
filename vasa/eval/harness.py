"""Stage ``evaluate``: every row on every test set, measured by one harness, with 95 % CIs.

:func:`evaluate` builds (or reuses) the fixed test-set manifest (:mod:`vasa.eval.testsets`), produces
each row's video for each item (:mod:`vasa.eval.rows`; generation is cut to ``max_seconds`` except
on the long set), measures it (:class:`vasa.eval.measure.VideoMeasurer`: the first ``max_seconds``,
or the last ones of a long video, whose identity drift uses the whole minute), sweeps the controls,
and aggregates:

* ``table[set][row][metric] = {mean, ci, n, median}`` (per-item values, Student-t 95 % half-width);
* ``outliers``: the (set, row, item, metric) values more than 5 robust SDs from their row's median
  (:func:`vasa.eval.metrics.robust_outliers`): with six items per set one clip whose face the
  trackers lose can double a row's mean dP or jitter, and the report names it;
* ``best[set][metric] = row`` by the metric's direction (:data:`METRICS`): higher, lower, or closest
  to the ground-truth row (motion statistics such as dP, where real video is the target; sets
  without a ground truth compare with the ``test_en`` ground truth). The ground-truth row itself
  is never "best";
* ``fd[set][row]``: FD-vasa-expert of the row's 1 s segments against the ground truth's
  (:mod:`vasa.eval.fd`), with a bootstrap CI over items;
* ``per_language[row][lang]``: S_C by language (``test_en`` + ``test_lang``);
* ``controls[row]``: gaze error (degrees), distance response (Spearman, R²), emotion accuracy,
  with the raw points for the response curves; the ground-truth row measures the corpus's own
  conditions (the estimators' floor) and the static portrait is the no-control reference.

Measurement runs in ``workers`` forked processes beside generation (:mod:`vasa.eval.workers`). The
long set runs ``long_rows`` only (60 s with 50 sampling steps costs minutes on a CPU; the fast
sampler shares the decoder, whose identity drift is measured).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.eval import metrics as M
from vasa.eval.rows import GENERATED, ROWS, RowMaker
from vasa.eval.testsets import FORMAT, SETS, build_testsets, corpus_fingerprint, load_item
from vasa.eval.workers import MeasurePool
from vasa.io.atomic import write_json
from vasa.synth.params import EMOTIONS

FPS, SPF = 25, 640
MEDIAN_METRICS = ("s_c", "dp", "pose_std", "jitter", "mouth_jaw_r")  # outlier-sensitive: medians in the DVC metrics
REFERENCE_ROWS = ("gt", "latent_recon")  # references, not contenders: never marked best
# metric -> "max" | "min" | "gt" (closest to the ground-truth row is best)
METRICS: dict[str, str] = {
    "s_c": "max", "s_d": "min", "abs_offset": "min", "s_c_official": "max", "s_d_official": "min",
    "capp": "max", "dp": "gt", "pose_std": "gt", "gaze_std": "gt", "det_rate": "max", "mouth_jaw_r": "max",
    "mouth_audio_r": "gt", "jitter": "gt", "csim": "max", "drift": "max", "psnr": "max", "ssim": "max",
    "fps": "max",
}
LABELS = {"s_c": "S_C", "s_d": "S_D", "abs_offset": "|offset|", "s_c_official": "S_C (official)",
          "s_d_official": "S_D (official)", "capp": "CAPP", "dp": "dP (deg)", "pose_std": "pose std (deg)",
          "gaze_std": "gaze std (deg)", "det_rate": "face det.", "mouth_jaw_r": "mouth~jaw r",
          "mouth_audio_r": "mouth~audio r", "jitter": "jitter (%)", "csim": "CSIM", "drift": "id. drift",
          "psnr": "PSNR", "ssim": "SSIM", "fps": "fps", "fd": "FD-vasa-expert"}


@dataclass
class Results:
    manifest: dict
    records: list[dict]  # one per (set, row, item): numbers + arrays (keys starting with "_")
    table: dict
    best: dict
    fd: dict
    per_language: dict
    controls: dict
    availability: dict
    samples: dict  # (set, item id) -> {"audio": ..., "portrait": ..., rows: frames}
    timing: dict = field(default_factory=dict)
    outliers: list = field(default_factory=list)  # {set, row, item, metric, value, median}

    def to_json(self) -> dict:
        recs = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.records]
        ctrl = {row: {k: v for k, v in c.items() if not k.startswith("_")} for row, c in self.controls.items()}
        return dict(table=self.table, best=self.best, fd=self.fd, per_language=self.per_language, controls=ctrl,
                    availability=self.availability, timing=self.timing, records=recs, outliers=self.outliers,
                    testsets={k: [it["id"] for it in s["items"]] for k, s in self.manifest["sets"].items()},
                    skipped_sets=self.manifest.get("skipped", {}))

    def metrics(self) -> dict:
        """Compact DVC metrics: means per set / row / metric (medians too for :data:`MEDIAN_METRICS`), FD,
        controls, per-language S_C, the number of outlying item values."""
        out: dict = {}
        for s, rows in self.table.items():
            out[s] = {r: {m: _r(v["mean"]) for m, v in ms.items()} for r, ms in rows.items()}
            for r, ms in rows.items():
                out[s][r].update({f"{m}_median": _r(v.get("median", float("nan")))
                                  for m, v in ms.items() if m in MEDIAN_METRICS})
            for r, v in self.fd.get(s, {}).items():
                out[s].setdefault(r, {})["fd"] = _r(v["mean"])
        out["controls"] = {row: {k: _r(v) for k, v in c.items() if not k.startswith("_") and isinstance(v, float)}
                           for row, c in self.controls.items()}
        out["per_language_s_c"] = {row: {k: _r(v["mean"]) for k, v in d.items()}
                                   for row, d in self.per_language.items()}
        out["outlier_values"] = len(self.outliers)
        return out


def _r(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def testsets_manifest(corpus: Corpus, path: Path, **selection) -> dict:
    """The manifest at ``path`` when it matches the corpus and the selection; else a new one, written."""
    if path.is_file():
        m = json.loads(path.read_text())
        if (m.get("format") == FORMAT and m.get("corpus_fingerprint") == corpus_fingerprint(corpus)
                and m.get("selection") == {k: v for k, v in selection.items() if k != "sets"}
                and set(m["sets"]) | set(m.get("skipped", {})) == set(selection["sets"])):
            return m
    m = build_testsets(corpus, **selection)
    write_json(path, m)
    return m


def _best(table: dict, ref: dict | None) -> dict:
    """Best row per metric of one set's table (see the module docstring)."""
    out = {}
    for metric, how in METRICS.items():
        cand = {r: v[metric]["mean"] for r, v in table.items() if r not in REFERENCE_ROWS and metric in v
                and np.isfinite(v[metric]["mean"])}
        if not cand:
            continue
        if how == "max":
            out[metric] = max(cand, key=cand.get)
        elif how == "min":
            out[metric] = min(cand, key=cand.get)
        else:
            g = (table.get("gt") or ref or {}).get(metric, {}).get("mean")
            if g is not None and np.isfinite(g):
                out[metric] = min(cand, key=lambda r: abs(cand[r] - g))
    return out


def _fd(records: list[dict], boots: int = 20, seed: int = 0) -> dict:
    """FD-vasa-expert of each row against the ground-truth segments, per set (bootstrap CI over items)."""
    rng = np.random.default_rng(seed)
    by: dict = {}
    for r in records:
        f = r.get("_fd")
        if f is not None and len(f):
            by.setdefault(r["set"], {}).setdefault(r["row"], []).append(f)
    ref_all = by.get("test_en", {}).get("gt")
    out: dict = {}
    for s, rows in by.items():
        ref = rows.get("gt") or ref_all
        if not ref or sum(len(x) for x in ref) < 3:
            continue
        fd_ref = M.FrechetReference(np.concatenate(ref))
        for row, feats in rows.items():
            if row == "gt" or sum(len(x) for x in feats) < 3:
                continue
            val = fd_ref.distance(np.concatenate(feats))
            bs = []
            for _ in range(boots if len(feats) > 1 else 0):
                pick = rng.integers(len(feats), size=len(feats))
                x = np.concatenate([feats[i] for i in pick])
                if len(x) >= 3:
                    bs.append(fd_ref.distance(x))
            ci = float(1.96 * np.std(bs)) if len(bs) > 1 else 0.0
            out.setdefault(s, {})[row] = {"mean": val, "ci": ci, "n": len(feats)}
    return out


def evaluate(
    corpus: str = "data/corpus",                 # the prepared corpus (test splits)
    experts: str = "models/experts",             # train_experts' exports
    bundle: str = "pretrained/vasa-S",           # the generator's bundle (vasa rows)
    regression: str = "models/motion_regression",  # the regression motion baseline (same layout as bundle/motion)
    motion: str = "data/motion",                 # exported motion of the corpus (the latent_recon row; "" = off)
    syncnet_weights: str = "",                   # converted official SyncNet weights ("" = none)
    out: str = "reports/evaluate",               # testsets.json, results.json, figures/, videos/, index.html
    sets: list | tuple = SETS,
    rows: list | tuple = ROWS,
    long_rows: list | tuple = ("static", "mouth_flap", "regression", "vasa_fast"),  # rows run on the long set
    clips: int = 6, lang_clips: int = 1, art_clips: int = 2, long_items: int = 1, long_seconds: float = 60.0,
    real_speech_items: int = 1,
    max_seconds: float = 4.0,                    # seconds generated and measured per video (long: measured at the end)
    csim_frames: int = 4, drift_seconds: float = 5.0, drift_frames: int = 4,
    steps: int = 50, fast_sampler: str = "dpmpp_2m", fast_steps: int = 10, cfg_audio: float = 0.5,
    cfg_gaze: float = 1.0,
    control_row: str = "vasa_fast", control_portraits: int = 2, control_seconds: float = 3.0,
    gaze_values: list | tuple = ((0.0, 0.0), (15.0, 0.0), (-15.0, 0.0), (0.0, 10.0), (0.0, -10.0)),
    distance_values: list | tuple = (0.8, 0.9, 1.0, 1.1, 1.25),
    emotions: list | tuple = EMOTIONS,
    sample_items: int = 1, seed: int = 0, device: str = "cpu", progress: bool = True,
    workers: int = 1,                            # measurement processes beside generation (0: inline)
) -> Results:
    """Run the evaluation (see the module docstring); returns :class:`Results` (also written to ``out``)."""
    t0 = time.perf_counter()
    c = Corpus(corpus)
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    manifest = testsets_manifest(c, out_p / "testsets.json", sets=list(sets), clips=clips, lang_clips=lang_clips,
                                 art_clips=art_clips, long_items=long_items, long_seconds=long_seconds,
                                 real_speech_items=real_speech_items, seed=seed)
    if not Path(experts).is_dir():
        raise VasaError(f"no experts at {experts}: run `dvc repro train_experts` first")
    maker = RowMaker(bundle or None, regression or None, steps, fast_sampler, fast_steps, cfg_audio, cfg_gaze, seed,
                     device, motion or None)
    avail = maker.available(rows)
    run_rows = [r for r in rows if avail[r] is None]
    pool = MeasurePool(workers, experts=experts, syncnet_weights=syncnet_weights, csim_frames=csim_frames,
                       drift_seconds=drift_seconds, drift_frames=drift_frames)
    max_f, drift_f = int(round(max_seconds * FPS)), int(round(drift_seconds * FPS))
    jobs: list[tuple[dict, object]] = []
    samples: dict = {}
    total = sum(len(s["items"]) for s in manifest["sets"].values())
    bar = tqdm(total=total * len(run_rows), desc="evaluate", disable=not progress)
    try:
        for set_name, s in manifest["sets"].items():
            is_long = set_name == "long"
            for k, it in enumerate(s["items"]):
                item = load_item(c, it)
                audio = item.audio if is_long else item.audio[:max_f * SPF]
                n = int(np.ceil(len(audio) / SPF))
                gt_frames = None if item.gt_frames is None else item.gt_frames[:n]
                gt_params = None if item.gt_params is None else item.gt_params[:n]
                keep = k < sample_items
                if keep:
                    samples[(set_name, item.id)] = {"_audio": audio[:max_f * SPF], "_portrait": item.portrait}
                for row in run_rows:
                    bar.update(1)
                    if (row == "gt" and gt_frames is None) or (is_long and row not in long_rows):
                        continue
                    if row == "latent_recon" and gt_frames is None:
                        continue
                    o = maker.make(row, item.portrait, audio, gt_frames=gt_frames,
                                   clip_id=it["audio"][0] if it.get("gt") else None)
                    frames = o.frames
                    lo = max(0, len(frames) - max_f) if is_long else 0
                    win = frames[lo:lo + max_f]
                    drift = np.concatenate([frames[:drift_f], frames[-drift_f:]]) \
                        if is_long and len(frames) >= 2 * drift_f else None
                    fut = pool.video(win, audio[lo * SPF:(lo + len(win)) * SPF], item.portrait, gt_params,
                                     None if row == "gt" else gt_frames, drift)
                    meta = dict(set=set_name, row=row, item=item.id, language=it.get("language", "en"),
                                style=it.get("style", "photo"), conditions=it.get("conditions", {}),
                                fps=float(len(frames) / o.seconds) if row in GENERATED + ("mouth_flap",)
                                and o.seconds > 0 else float("nan"))
                    jobs.append((meta, fut))
                    if keep:
                        samples[(set_name, item.id)][row] = win
        records = [{**f.result(), **meta} for meta, f in jobs]
        timing = {"rows_seconds": time.perf_counter() - t0}
        t1 = time.perf_counter()
        controls = _controls(maker, pool, c, manifest, records, control_row if control_row in run_rows else None,
                             control_portraits, control_seconds, gaze_values, distance_values, emotions, progress)
        timing["controls_seconds"] = time.perf_counter() - t1
    finally:
        bar.close()
        pool.close()
    table = _table(records)
    ref = table.get("test_en", {}).get("gt")
    best = {s: _best(t, ref) for s, t in table.items()}
    per_lang: dict = {}
    for r in records:
        if r["set"] in ("test_en", "test_lang") and "s_c" in r:
            per_lang.setdefault(r["row"], {}).setdefault(r["language"], []).append(r["s_c"])
    per_lang = {row: {lang: M.mean_ci(v) for lang, v in sorted(d.items())} for row, d in per_lang.items()}
    timing["seconds"] = time.perf_counter() - t0
    res = Results(manifest, records, table, best, _fd(records, seed=seed), per_lang, controls, avail, samples, timing,
                  outliers(records))
    write_json(out_p / "results.json", _jsonable(res.to_json()))
    return res


def outliers(records: list[dict], z: float = 5.0) -> list[dict]:
    """Per (set, row, metric): the items whose value lies more than ``z`` robust SDs from the row's
    median (:func:`vasa.eval.metrics.robust_outliers`), as ``{set, row, item, metric, value, median}``."""
    groups: dict = {}
    for r in records:
        for m in METRICS:
            if m in r and isinstance(r[m], (int, float)) and m != "fps":
                groups.setdefault((r["set"], r["row"], m), []).append((r["item"], float(r[m])))
    out = []
    for (s, row, m), items in groups.items():
        vals = np.array([v for _, v in items])
        med = float(np.nanmedian(vals)) if np.isfinite(vals).any() else float("nan")
        for i in M.robust_outliers(vals, z):
            out.append(dict(set=s, row=row, item=items[i][0], metric=m, value=float(vals[i]), median=med))
    return out


def _table(records: list[dict]) -> dict:
    vals: dict = {}
    for r in records:
        for m in METRICS:
            if m in r and isinstance(r[m], (int, float)):
                vals.setdefault(r["set"], {}).setdefault(r["row"], {}).setdefault(m, []).append(r[m])
    return {s: {row: {m: M.mean_ci(v) for m, v in ms.items()} for row, ms in rows.items()} for s, rows in vals.items()}


def _controls(maker: RowMaker, pool: MeasurePool, c: Corpus, manifest: dict, records: list[dict], row: str | None,
              portraits: int, seconds: float, gaze_values, distance_values, emotions, progress: bool) -> dict:
    """Requested vs measured gaze, distance, emotion (see the module docstring)."""
    out: dict = {}
    gt = [r for r in records if r["row"] == "gt" and r["set"] == "test_en" and r.get("conditions")]
    if gt:
        cond = [r["conditions"] for r in gt]
        out["gt"] = _control_summary(
            [(x.get("gaze_yaw", 0.0), x.get("gaze_pitch", 0.0)) for x in cond],
            [(r["gaze_main_yaw"], r["gaze_main_pitch"]) for r in gt],
            [x.get("distance", 1.0) for x in cond], [r["distance"] for r in gt],
            [x.get("emotion", "neutral") for x in cond], [r.get("emotion") for r in gt])
    items = manifest["sets"].get("test_en", {}).get("items", [])[:portraits]
    if not items:
        return out
    n = int(round(seconds * FPS))
    todo = [("static", None)] + ([(row, None)] if row else [])
    for rname, _ in todo:
        gz, dist, emo = [], [], []  # (requested, future)
        for it in tqdm(items, desc=f"controls ({rname})", disable=not progress):
            item = load_item(c, it)
            audio = item.audio[:n * SPF]
            if rname == "static":  # no controls: one video answers every request
                f = pool.control(maker.make("static", item.portrait, audio).frames)
                gz += [(tuple(g), f) for g in gaze_values]
                dist += [(float(d), f) for d in distance_values]
                emo += [(e, f) for e in emotions]
                continue
            for g in gaze_values:
                g = tuple(float(x) for x in g)
                gz.append((g, pool.control(maker.make(rname, item.portrait, audio, gaze=g).frames)))
            for d in distance_values:
                dist.append((float(d), pool.control(maker.make(rname, item.portrait, audio, distance=float(d)).frames)))
            for e in emotions:
                emo.append((e, pool.control(maker.make(rname, item.portrait, audio, emotion=e).frames)))
        nan2 = (np.nan, np.nan)
        out[rname] = _control_summary(
            [g for g, _ in gz], [f.result()[0] or nan2 for _, f in gz],
            [d for d, _ in dist], [np.nan if f.result()[1] is None else f.result()[1] for _, f in dist],
            [e for e, _ in emo], [f.result()[2] for _, f in emo])
    return out


def _control_summary(gz_req, gz_meas, d_req, d_meas, e_req, e_pred) -> dict:
    gr, gm = np.asarray(gz_req, np.float64).reshape(-1, 2), np.asarray(gz_meas, np.float64).reshape(-1, 2)
    fit = M.monotonic_fit(d_req, d_meas)
    yaw = M.monotonic_fit(gr[:, 0], gm[:, 0])
    pitch = M.monotonic_fit(gr[:, 1], gm[:, 1])
    return {"gaze_error_deg": M.angle_error(gr, gm), "gaze_yaw_slope": yaw["slope"],
            "gaze_pitch_slope": pitch["slope"], "distance_spearman": fit["spearman"], "distance_r2": fit["r2"],
            "distance_slope": fit["slope"], "emotion_accuracy": M.accuracy(e_req, e_pred),
            "_gaze": (gr.tolist(), gm.tolist()), "_distance": (list(map(float, d_req)), list(map(float, d_meas))),
            "_emotion": (list(e_req), list(e_pred))}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def score_file(path: str | Path, experts: str = "models/experts", portrait: np.ndarray | None = None) -> dict:
    """Measure one mp4 (25 fps with 16 kHz-resampled audio; anything else is refused): the numbers of
    :class:`VideoMeasurer` (``portrait``: the source image for CSIM, default the first frame)."""
    from vasa.eval.experts import load_experts
    from vasa.eval.sync import check_rates
    from vasa.io.video import read_mp4

    from vasa.eval.measure import VideoMeasurer

    frames, audio, fps = read_mp4(path)
    check_rates(fps, 16000)
    if audio is None:
        raise VasaError(f"{path} has no audio track: the sync and CAPP scores need the speech")
    meas = VideoMeasurer(load_experts(experts))
    try:
        m = meas(frames, audio, frames[0] if portrait is None else portrait)
    finally:
        meas.close()
    return {k: v for k, v in m.items() if not k.startswith("_")}
