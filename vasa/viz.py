"""Figures shared by the notebooks: identity grids, filmstrips with phoneme tracks, distributions."""

from __future__ import annotations

import numpy as np

from vasa.synth.params import PARAM_INDEX


def image_grid(images: list[np.ndarray], cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile equally sized H x W x 3 uint8 images into one image, row-major."""
    h, w = images[0].shape[:2]
    rows = int(np.ceil(len(images) / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return grid


def identity_grid(corpus, split: str = "train", style: str | None = None, n: int = 24, cols: int = 8,
                  frame: int = 0) -> np.ndarray:
    """One frame of ``n`` different identities' clips (speech clips of ``split``, optional style)."""
    recs, seen = [], set()
    for r in corpus.records(split=split, kind="speech"):
        if (style is None or r["style"] == style) and r["identity"] not in seen:
            recs.append(r)
            seen.add(r["identity"])
        if len(recs) == n:
            break
    ims = []
    for r in recs:
        sh = corpus.shard(r["shard"])
        off = sh.arrays["clip_offsets"][r["index"]]
        ims.append(sh.frame(off + min(frame, r["n_frames"] - 1)))
    return image_grid(ims, min(cols, len(ims)))


def filmstrip_figure(clip, mouth: np.ndarray | None = None, n: int = 10, fps: int = 25):
    """Frames of a clip above its phoneme track, ground-truth jaw and (optionally) measured mouth."""
    import matplotlib.pyplot as plt

    t = len(clip.frames)
    idx = np.linspace(0, t - 1, n).round().astype(int)
    fig = plt.figure(figsize=(1.3 * n, 4.6))
    ax0 = fig.add_axes([0.02, 0.55, 0.96, 0.42])
    ax0.imshow(image_grid([clip.frames[i] for i in idx], n))
    ax0.set_axis_off()
    r = clip.record
    tags = ", ".join(str(x) for x in (r.get("language"), r.get("voice"), r.get("conditions", {}).get("emotion")) if x)
    ax0.set_title(f"{r['id']} ({tags}): \"{(r.get('text') or '')[:80]}\"", fontsize=9)
    ax = fig.add_axes([0.05, 0.1, 0.9, 0.38])
    time = np.arange(t) / fps
    ax.plot(time, clip.params[:, PARAM_INDEX["jaw"]], label="ground-truth jaw", color="C0")
    ax.plot(time, clip.params[:, PARAM_INDEX["lip_press"]], label="lip press", color="C2", lw=0.8)
    ax.plot(time, clip.params[:, PARAM_INDEX["blink_l"]], label="blink", color="C7", lw=0.8)
    if mouth is not None:
        m = mouth / np.nanmax(mouth) if np.any(np.isfinite(mouth)) and np.nanmax(mouth) > 0 else mouth
        ax.plot(time, m, label="MediaPipe mouth opening (scaled)", color="C3", ls="--")
    for a, b, ph in clip.record.get("phonemes", []):
        ax.axvspan(a, b, color="0.9" if hash(ph) % 2 else "0.82", lw=0)
        ax.text((a + b) / 2, 1.02, ph, ha="center", va="bottom", fontsize=6, transform=ax.get_xaxis_transform())
    for i in idx:
        ax.axvline(i / fps, color="k", lw=0.3)
    ax.set_xlim(0, t / fps)
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7, loc="upper right", ncol=4)
    return fig


def distributions_figure(corpus, split: str | None = None):
    """Histograms of head pose, gaze, distance and emotion over the speech clips."""
    import matplotlib.pyplot as plt

    recs = corpus.records(split=split, kind="speech")
    p = np.concatenate([corpus.params(r["id"]) for r in recs])
    fig, axes = plt.subplots(2, 4, figsize=(14, 5.5))
    for ax, name in zip(axes[0], ("yaw", "pitch", "roll", "jaw")):
        col = p[:, PARAM_INDEX[name]]
        ax.hist(col[np.isfinite(col)], bins=60, color="C0")
        ax.set_title(f"{name} ({'deg' if name != 'jaw' else '0..1'}), per frame")
    ax = axes[1, 0]
    gz = p[:, [PARAM_INDEX["gaze_yaw"], PARAM_INDEX["gaze_pitch"]]]
    gz = gz[np.isfinite(gz).all(1)]
    ax.hist2d(gz[:, 0], gz[:, 1], bins=40, cmap="Blues")
    ax.set_title("gaze yaw x pitch (deg), per frame")
    ax = axes[1, 1]
    mg = np.array([[r["conditions"].get("gaze_yaw", np.nan), r["conditions"].get("gaze_pitch", np.nan)]
                   for r in recs]).reshape(-1, 2)
    ax.scatter(mg[:, 0], mg[:, 1], s=5)
    ax.set_title("main gaze per clip (deg)")
    ax = axes[1, 2]
    dist = np.array([r["conditions"].get("distance", np.nan) for r in recs], float)
    ax.hist(dist[np.isfinite(dist)], bins=30, color="C1")
    ax.set_title("head distance per clip (normalised)")
    ax = axes[1, 3]
    emos = [r["conditions"].get("emotion", "missing") for r in recs]
    names = sorted(set(emos))
    ax.bar(names, [emos.count(e) for e in names], color="C2")
    ax.set_title("emotion per clip")
    fig.tight_layout()
    return fig
