"""Figures of the motion-space evaluation (:func:`vasa.motion.evaluate.evaluate_motion`): lip sync,
head pose, seams, condition responses, diversity across seeds, sampling cost (matplotlib, Agg-safe)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vasa.motion.dataset import MotionSpace

if TYPE_CHECKING:
    from vasa.motion.evaluate import Readouts


def make_figures(space: MotionSpace, ro: Readouts, m: dict, arrays: dict, window: int) -> dict[str, Any]:
    """The evaluation's figures (matplotlib, Agg-safe): jaw, pose, seams, conditions, diversity, cost."""
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    gen, gt, jaw = arrays["generated"], arrays["gt"], arrays["true_jaw"]
    names = list(gen)
    n_show = min(2, len(gt))
    # (a) lip sync: series and per-clip r
    fig, axes = plt.subplots(1, n_show + 1, figsize=(6 * n_show + 5, 3.6), squeeze=False)
    for k in range(n_show):
        ax = axes[0, k]
        t = np.arange(len(gt[k])) / 25.0
        ax.plot(t, jaw[k], "k", lw=1.5, label="true jaw")
        ax.plot(t, ro.jaw_of(gt[k]), "k--", lw=1, label="probe(exported)")
        for name in names:
            ax.plot(t, ro.jaw_of(gen[name][k]), lw=1, label=f"probe({name})")
        ax.set_title(arrays["clip_ids"][k], fontsize=9)
        ax.set_xlabel("time (s)")
        ax.legend(fontsize=7)
    ax = axes[0, -1]
    data = [arrays[f"quality_{n}"]["per_clip"]["jaw_r_vs_exported"] for n in names]
    data.append(arrays["quality_exported"]["per_clip"]["jaw_r_vs_true"])
    data.append(arrays["quality_diffusion"]["per_clip"]["jaw_r_vs_other_clip"])
    labels = [f"{n} vs exported" for n in names] + ["exported vs true", "diffusion vs other clip"]
    data = [[v for v in d if np.isfinite(v)] or [0.0] for d in data]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, fontsize=7, ha="right")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("Pearson r of probe jaw")
    fig.tight_layout()
    figs["lip_sync"] = fig
    # (b) head pose
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.4))
    deg_gt = space.pose_degrees(gt[0])
    t = np.arange(len(deg_gt)) / 25.0
    for a, ang in enumerate(("yaw", "pitch", "roll")):
        axes[a].plot(t, deg_gt[:, a], "k", label="exported")
        for name in names:
            axes[a].plot(t, space.pose_degrees(gen[name][0])[:, a], label=name)
        axes[a].set_title(f"{ang} (deg)")
        axes[a].set_xlabel("time (s)")
        axes[a].legend(fontsize=7)
    q = m["quality"]
    keys = list(q)
    axes[3].bar(keys, [q[k]["dP"]["mean"] or 0 for k in keys],
                yerr=[q[k]["dP"]["ci95"] or 0 for k in keys])
    if q["exported (ground truth)"]["dP_true_params"]["mean"] is not None:
        axes[3].axhline(q["exported (ground truth)"]["dP_true_params"]["mean"], color="r", ls="--",
                        label="true parameters")
        axes[3].legend(fontsize=7)
    axes[3].set_title("dP (deg / frame)")
    axes[3].tick_params(axis="x", labelsize=7, rotation=20)
    fig.tight_layout()
    figs["head_pose"] = fig
    # (f) seams
    fig, ax = plt.subplots(1, 1, figsize=(8, 3.6))
    for name in list(gen) + ["exported (ground truth)"]:
        s = arrays[f"seams_{name}"]
        both = np.concatenate([s["within"], s["boundary"]])
        hi = max(1e-6, float(np.percentile(both, 99))) if len(both) else 1.0
        bins = np.linspace(0, hi, 40)
        ax.hist(s["within"], bins=bins, density=True, histtype="step", label=f"{name}: within windows")
        if len(s["boundary"]):
            ax.hist(s["boundary"], bins=bins, density=True, histtype="stepfilled", alpha=0.3,
                    label=f"{name}: window boundaries")
    ax.set_xlabel("|X_t - X_{t-1}| (normalised units)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figs["seams"] = fig
    # (d) conditions
    cond = arrays["conditions"]
    if cond:
        fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
        for name, c in cond.items():
            if "gaze" in c:
                g = c["gaze"]
                axes[0].scatter(g["requested"][:, 0], g["generated"][:, 0], s=10, label=name)
                axes[1].scatter(g["requested"][:, 1], g["generated"][:, 1], s=10, label=name)
            if "distance" in c:
                d = c["distance"]
                axes[2].plot(d["requested"], d["tz"].mean(0), "o-", label=name)
        for ax, ttl in zip(axes[:3], ("gaze yaw: requested vs probe (deg)", "gaze pitch: requested vs probe (deg)",
                                      "distance: requested vs probe tz (clip mean)")):
            ax.set_title(ttl, fontsize=9)
        for ax in axes[:2]:
            lo, hi = ax.get_xlim()
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.6, label="y = x")
        for ax in axes[:3]:
            ax.legend(fontsize=7)
        if "emotion" in cond.get("diffusion", {}):
            e = cond["diffusion"]["emotion"]
            axes[3].imshow(e["confusion"], cmap="Blues")
            axes[3].set_xticks(range(len(e["classes"])), e["classes"], rotation=30, fontsize=7)
            axes[3].set_yticks(range(len(e["classes"])), e["classes"], fontsize=7)
            axes[3].set_xlabel("classified")
            axes[3].set_ylabel("requested")
            axes[3].set_title("emotion (diffusion)", fontsize=9)
            for (i, j), v in np.ndenumerate(e["confusion"]):
                axes[3].text(j, i, str(v), ha="center", va="center", fontsize=8)
        else:
            axes[3].axis("off")
        fig.tight_layout()
        figs["conditions"] = fig
    # (c) diversity
    dv = arrays.get("diversity") or {}
    if dv.get("runs"):
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.4))
        x0 = gt[0]
        t = np.arange(len(x0)) / 25.0
        axes[0].plot(t, space.pose_degrees(x0)[:, 0], "k", lw=2, label="exported")
        axes[1].plot(t, ro.jaw_of(x0), "k", lw=2, label="exported")
        for s, x in enumerate(dv["runs"]):
            axes[0].plot(t[:len(x)], space.pose_degrees(x)[:, 0], lw=1, label=f"seed {s}")
            axes[1].plot(t[:len(x)], ro.jaw_of(x), lw=1, label=f"seed {s}")
        axes[0].set_title(f"{dv['clip']}: yaw (deg) across seeds", fontsize=9)
        axes[1].set_title("probe jaw across seeds", fontsize=9)
        for ax in axes:
            ax.legend(fontsize=7)
            ax.set_xlabel("time (s)")
        fig.tight_layout()
        figs["diversity"] = fig
    # (g) cost
    sm = m["sampling"]["settings"]
    if sm:
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
        ks = list(sm)
        axes[0].bar(ks, [sm[k]["ms_per_s"] for k in ks])
        axes[0].axhline(1000, color="r", ls="--", label="real time")
        axes[0].set_ylabel("ms per second of motion")
        axes[0].legend(fontsize=7)
        axes[1].plot(ks, [sm[k]["jaw_r_vs_exported"] or 0 for k in ks], "o-", label="jaw r vs exported")
        axes[1].plot(ks, [sm[k]["dP"] or 0 for k in ks], "s-", label="dP (deg)")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        figs["sampling"] = fig
    plt.close("all")
    return figs
