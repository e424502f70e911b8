"""The evaluation report: tables (mean ± 95 % CI, best per column in bold), plots, a grid of sample
videos with sound, and one HTML page (``index.html``, relative links) that opens in a browser.

>>> figs = figures(res, "reports/evaluate/figures")    # {name: path}
>>> vids = sample_videos(res, "reports/evaluate/videos")
>>> write_html(res, "reports/evaluate", figs, vids)
"""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np

from vasa.eval.harness import LABELS, METRICS, Results
from vasa.eval.rows import ROWS
from vasa.eval.sync import VSHIFT
from vasa.synth.params import EMOTIONS

ROW_LABELS = {"gt": "ground truth", "latent_recon": "ground-truth motion through the latent space",
              "static": "static portrait", "mouth_flap": "mouth flap (audio energy)", "regression": "regression motion",
              "vasa_50": "vasa (50 steps)", "vasa_fast": "vasa (fast sampler)"}


def _fmt(v: dict | None, digits: int = 3, median: bool = False) -> str:
    if not v or v.get("mean") is None or not np.isfinite(v["mean"]):
        return "–"
    if v.get("n", 0) > 1 and np.isfinite(v.get("ci", np.nan)):
        cell = f"{v['mean']:.{digits}g} ± {v['ci']:.2g}"
        med = v.get("median")
        if median and med is not None and np.isfinite(med):  # an outlying item moves this mean
            cell += f" (median {med:.{digits}g})"
        return cell
    return f"{v['mean']:.{digits}g}"


def table_rows(res: Results, set_name: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows of cells) for one test set; the best cell of each column is wrapped in ``**``."""
    t = res.table.get(set_name, {})
    fd = res.fd.get(set_name, {})
    cols = [m for m in METRICS if any(m in v for v in t.values())] + (["fd"] if fd else [])
    best = res.best.get(set_name, {})
    if fd:
        best = {**best, "fd": min(fd, key=lambda r: fd[r]["mean"])}
    flagged = {(o["row"], o["metric"]) for o in getattr(res, "outliers", []) if o["set"] == set_name}
    body = []
    for row in [r for r in ROWS if r in t]:
        cells = [ROW_LABELS.get(row, row)]
        for m in cols:
            v = fd.get(row) if m == "fd" else t[row].get(m)
            s = _fmt(v, median=(row, m) in flagged)
            cells.append(f"**{s}**" if best.get(m) == row and s != "–" else s)
        body.append(cells)
    return ["row"] + [LABELS.get(m, m) for m in cols], body


def markdown_table(res: Results, set_name: str) -> str:
    head, body = table_rows(res, set_name)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def html_table(res: Results, set_name: str) -> str:
    head, body = table_rows(res, set_name)
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    rows = []
    for r in body:
        cells = []
        for c in r:
            bold = c.startswith("**")
            c = html.escape(c.strip("*"))
            cells.append(f"<td><b>{c}</b></td>" if bold else f"<td>{c}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{h}</tr>{''.join(rows)}</table>"


def controls_table(res: Results) -> tuple[list[str], list[list[str]]]:
    keys = ("gaze_error_deg", "gaze_yaw_slope", "gaze_pitch_slope", "distance_spearman", "distance_r2",
            "emotion_accuracy")
    body = []
    for row in [r for r in ROWS if r in res.controls]:
        c = res.controls[row]
        body.append([ROW_LABELS.get(row, row)] + [("–" if c.get(k) is None or not np.isfinite(c[k]) else f"{c[k]:.3g}")
                                                  for k in keys])
    return ["row", "gaze error (deg)", "gaze yaw slope", "gaze pitch slope", "distance Spearman", "distance R²",
            "emotion accuracy"], body


# ----------------------------------------------------------------------------- figures
def figures(res: Results, out_dir: str | Path) -> dict[str, Path]:
    """The report's plots as PNGs: sync offset curves, pose traces against audio, control response
    curves, per-language sync. Returns ``{name: path}`` (a figure without data is skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(fig, name):
        p = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths[name] = p

    # sync offset curves: mean distance per audio offset, per row (first set that has sync scores)
    recs = [r for r in res.records if "_mdist" in r]
    if recs:
        sets = list(dict.fromkeys(r["set"] for r in recs))
        fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.3), squeeze=False)
        off = np.arange(-VSHIFT, VSHIFT + 1)
        for ax, s in zip(axes[0], sets):
            for row in ROWS:
                m = [r["_mdist"] for r in recs if r["set"] == s and r["row"] == row]
                if m:
                    ax.plot(off, np.nanmean(np.stack(m), 0), label=row)
            ax.set_title(f"{s}: mean distance per audio offset", fontsize=9)
            ax.set_xlabel("audio offset (frames; + = audio later)")
        axes[0][0].set_ylabel("sync distance")
        axes[0][0].legend(fontsize=7)
        save(fig, "sync_offsets")
    # pose traces against audio for the first item of the first set with several rows
    first = next((r for r in res.records if "_angles" in r), None)
    if first is not None:
        same = [r for r in res.records if r["set"] == first["set"] and r["item"] == first["item"] and "_angles" in r]
        fig, axes = plt.subplots(4, 1, figsize=(10, 7.5), sharex=True)
        for r in same:
            t = np.arange(len(r["_angles"])) / 25
            for k, name in enumerate(("yaw", "pitch", "roll")):
                axes[k].plot(t, r["_angles"][:, k], label=r["row"], lw=1)
                axes[k].set_ylabel(f"{name} (deg)")
            axes[3].plot(t, r["_jaw"], lw=1, label=r["row"])
        rms = first["_rms"]
        ax2 = axes[3].twinx()
        ax2.fill_between(np.arange(len(rms)) / 25, 0, rms / max(rms.max(), 1e-9), color="0.85", zorder=0)
        ax2.set_yticks([])
        axes[3].set_ylabel("mouth (jaw units)")
        axes[3].set_xlabel("time (s); grey: audio energy")
        axes[0].legend(fontsize=7, ncol=3)
        axes[0].set_title(f"{first['set']} / {first['item']}: measured head pose and mouth against the audio",
                          fontsize=9)
        save(fig, "pose_traces")
    # control response curves
    ctrl = {row: c for row, c in res.controls.items() if "_gaze" in c}
    if ctrl:
        fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
        for row, c in ctrl.items():
            req, mea = np.asarray(c["_gaze"][0], float), np.asarray(c["_gaze"][1], float)
            if len(req):
                axes[0].scatter(req[:, 0], mea[:, 0], s=12, label=row)
                axes[1].scatter(req[:, 1], mea[:, 1], s=12, label=row)
            dr, dm = c["_distance"]
            if dr:
                axes[2].scatter(dr, dm, s=12, label=row)
        for ax, name in zip(axes[:3], ("gaze yaw (deg)", "gaze pitch (deg)", "distance")):
            lo, hi = ax.get_xlim()
            ax.plot([lo, hi], [lo, hi], "k:", lw=0.8)
            ax.set_xlabel(f"requested {name}")
            ax.set_ylabel(f"measured {name}")
        axes[0].legend(fontsize=7)
        show = next((r for r in ("vasa_50", "vasa_fast", "gt") if r in ctrl), next(iter(ctrl)))
        req, pred = ctrl[show]["_emotion"]
        cm = np.zeros((len(EMOTIONS), len(EMOTIONS)))
        for a, b in zip(req, pred):
            if a in EMOTIONS and b in EMOTIONS:
                cm[EMOTIONS.index(a), EMOTIONS.index(b)] += 1
        axes[3].imshow(cm, cmap="Blues")
        axes[3].set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, fontsize=7)
        axes[3].set_yticks(range(len(EMOTIONS)), EMOTIONS, fontsize=7)
        axes[3].set_xlabel("classified")
        axes[3].set_ylabel("requested")
        axes[3].set_title(f"emotion ({show})", fontsize=9)
        save(fig, "controls")
    # per-language sync
    if res.per_language:
        langs = sorted({lang for d in res.per_language.values() for lang in d})
        rows = [r for r in ROWS if r in res.per_language]
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(langs) * max(1, len(rows)) / 3, 3.4))
        w = 0.8 / max(1, len(rows))
        for k, row in enumerate(rows):
            d = res.per_language[row]
            x = np.arange(len(langs)) + k * w
            ax.bar(x, [d.get(lang, {}).get("mean", np.nan) for lang in langs], w,
                   yerr=[d.get(lang, {}).get("ci", 0) or 0 for lang in langs], label=row)
        ax.set_xticks(np.arange(len(langs)) + 0.4 - w / 2, langs)
        ax.set_ylabel("S_C")
        ax.set_title("lip sync by language", fontsize=9)
        ax.legend(fontsize=7)
        save(fig, "per_language_sync")
    return paths


# ----------------------------------------------------------------------------- sample videos
def _label(tile: np.ndarray, text: str, bar: int = 16) -> np.ndarray:
    h, w = tile.shape[:2]
    top = np.full((bar, w, 3), 30, np.uint8)
    cv2.putText(top, text[:max(4, w // 7)], (3, bar - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.concatenate([top, tile], 0)


def sample_videos(res: Results, out_dir: str | Path, size: int = 128) -> dict[str, Path]:
    """One mp4 per sample item: source portrait, ground truth, baselines and vasa side by side, with the
    item's audio; watermarked (it shows generated video). Returns ``{"set/item": path}``."""
    from vasa.io.video import write_mp4
    from vasa.watermark import Payload, new_generation_id, resolve_watermarker

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for (s, item), d in res.samples.items():
        rows = [r for r in ROWS if r in d and r != "static"]
        if not rows:
            continue
        n = min(len(d[r]) for r in rows)
        src = cv2.resize(d["_portrait"], (size, size), interpolation=cv2.INTER_AREA)
        tiles = []
        for i in range(n):
            t = [_label(src, "source")] + [_label(cv2.resize(d[r][i], (size, size), interpolation=cv2.INTER_AREA), r)
                                            for r in rows]
            tiles.append(np.concatenate(t, 1))
        frames = np.stack(tiles)
        wm = resolve_watermarker(Payload(0, new_generation_id()))
        p = write_mp4(out / f"{s}_{item}.mp4", frames, audio=d["_audio"][:n * 640], watermark=wm)
        paths[f"{s}/{item}"] = p
    return paths


# ----------------------------------------------------------------------------- html
CSS = """body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}
video{margin:4px 0}.note{color:#555;font-size:13px}"""


def write_html(res: Results, out_dir: str | Path, figs: dict[str, Path], videos: dict[str, Path],
               title: str = "vasa evaluation", notes: list[str] | None = None) -> Path:
    """``out_dir/index.html``: every table, figure and sample video (links relative to ``out_dir``)."""
    out = Path(out_dir)
    rel = lambda p: Path(p).resolve().relative_to(out.resolve()).as_posix()  # noqa: E731
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for n in notes or []:
        parts.append(f"<p class='note'>{html.escape(n)}</p>")
    skipped = {r: why for r, why in res.availability.items() if why}
    if skipped:
        parts.append("<p class='note'>Rows not run: " + "; ".join(f"<b>{html.escape(r)}</b>: {html.escape(w)}"
                                                                   for r, w in skipped.items()) + "</p>")
    for s, why in res.manifest.get("skipped", {}).items():
        parts.append(f"<p class='note'>Test set <b>{html.escape(s)}</b> skipped: {html.escape(why)}</p>")
    for s in res.table:
        desc = res.manifest["sets"].get(s, {}).get("description", "")
        n_items = len(res.manifest["sets"].get(s, {}).get("items", []))
        parts.append(f"<h2>{html.escape(s)}</h2><p class='note'>{html.escape(desc)} — {n_items} items; "
                     "mean ± 95% CI over items (and the median where an item is an outlier); best row per "
                     "column in bold (dP, pose/gaze std, jitter and mouth~audio r: closest to the ground truth)</p>"
                     + html_table(res, s))
        out_s = [o for o in res.outliers if o["set"] == s]
        if out_s:
            parts.append("<p class='note'>Outlying items (more than 5 robust SDs from the row's median): "
                         + "; ".join(html.escape(f"{o['row']} {o['item']} {o['metric']} {o['value']:.3g} "
                                                 f"(median {o['median']:.3g})") for o in out_s) + "</p>")
    if res.controls:
        head, body = controls_table(res)
        parts.append("<h2>Control accuracy</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                     + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                                         for r in body) + "</table>")
    for name, p in figs.items():
        parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3><img src='{rel(p)}'>")
    if videos:
        parts.append("<h2>Samples (with sound)</h2>")
        for name, p in videos.items():
            parts.append(f"<p>{html.escape(name)}</p><video controls preload='metadata' src='{rel(p)}'></video>")
    parts.append("</body></html>")
    path = out / "index.html"
    from vasa.io.atomic import write_text

    write_text(path, "\n".join(parts))
    return path
