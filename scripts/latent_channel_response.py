"""Does the decoder follow a guided z_dyn channel? Sweep one channel, hold the rest, measure the picture.

E_mot's first ``z_dyn`` channels are guided by MediaPipe (``vasa.latent.guidance.DYN_NAMES``: mouth,
eyes_closed, gaze_h, gaze_v). A probe can read a channel while the decoder ignores it; this script asks
the decoder. For each of ``--clips`` test clips, frame 0 is the source and frame ``--driver-frame`` the
driver; the driver's raw code (the one the networks read) is kept except for one channel, set to the
quantiles of that channel over the clips' frames (``--quantiles``: from the code's typical values to its
extremes, i.e. a wide-open mouth or a closed eye). Reported per channel and value, averaged over clips:

- ``region_change``: mean absolute change (0-255 grey levels) inside the channel's own region (the
  stage's MediaPipe-placed mouth box for ``mouth``, the eye box for ``eyes_closed``) against the render
  at the channel's median;
- ``elsewhere_change``: the same outside that region (a channel that moves the whole picture is not a
  local control);
- ``mediapipe``: MediaPipe's reading of the render: the mouth opening for ``mouth``, the pose-free eye
  closure (1 - EAR / the clip's open-eye EAR at the median render) for ``eyes_closed``.

A decoder that renders the channel gives a large region change and a MediaPipe reading that rises
with the value; ``--grid`` writes the renders (rows: clips; columns: the driver, then the values).

``--blink-grid`` looks inside the ``src_blend`` decoder at real blinks: the first test clips whose true
blink (evaluation only) reaches 0.8, source frame 0 and the blink peak as driver, one row each: the
driver, the output, the warped source, the generated layer and the blending mask (white = the warped
source). It reports the mean mask in the eye box over those frames (``blink_eye_mask``) and, for a
``gen_source_gate`` model, the mean gate there (``blink_eye_gate``: 1 = the source's texture let in).

    python scripts/latent_channel_response.py models/latent [more ...] --clips 8 --out F.json --grid F.png
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_mouth_jaw import load_any  # noqa: E402
from vasa.data.corpus import Corpus  # noqa: E402
from vasa.data.frames import to_tensor  # noqa: E402
from vasa.eval.landmarks import FaceMesh  # noqa: E402
from vasa.ingest.labels import PoseSolver, measure  # noqa: E402
from vasa.latent.guidance import DYN_NAMES  # noqa: E402
from vasa.train import load_pretrained  # noqa: E402

CHANNELS = {"mouth": 0, "eyes_closed": 1}
BLINK_PEAK = 0.8  # blink_decomposition: clips whose true blink (mean of both lids) reaches this
FALLBACK_BOX = {"mouth": (0.62, 0.93, 0.23, 0.79), "eyes_closed": (0.37, 0.59, 0.14, 0.85)}  # y0, y1, x0, x1


def region_boxes(model_dir: str) -> dict[str, tuple]:
    """The mouth / eye boxes (fractions y0, y1, x0, x1) the model was trained with, else the defaults'."""
    cfg, _ = load_pretrained(model_dir)
    task = cfg.get("config", cfg).get("task", {})
    return {"mouth": tuple(task.get("mouth_box") or FALLBACK_BOX["mouth"]),
            "eyes_closed": tuple(task.get("eyes_box") or FALLBACK_BOX["eyes_closed"])}


def reading(mesh: FaceMesh, im: np.ndarray, channel: str) -> float:
    r = mesh.process(im)
    if r is None:
        return float("nan")
    if channel == "mouth":
        return float(r.mouth_opening)
    m = measure(r.landmarks, PoseSolver(im.shape[1], im.shape[0]))
    return float((m.ear_l + m.ear_r) / 2)


def channel_response(model_dir: str, corpus: str = "data/corpus", clips: int = 8, driver_frame: int = 20,
                     quantiles=(0.5, 0.02, 0.9, 0.99, 1.0), grid: str = "") -> dict:
    c, m, mesh = Corpus(corpus), load_any(model_dir), FaceMesh(static=True)
    boxes, recs = region_boxes(model_dir), c.records(split="test", kind="speech")[:clips]
    clip_frames = [c.load_clip(r["id"]).frames for r in recs]
    with torch.no_grad():  # the raw code's distribution over the clips' frames
        codes = torch.cat([m.E_mot(torch.stack([to_tensor(f) for f in fr[::5]]))[1] for fr in clip_frames])
    out: dict = dict(model=model_dir, clips=len(recs), driver_frame=driver_frame, quantiles=list(quantiles), channels={})
    rows = []
    try:
        for name, ch in CHANNELS.items():
            assert DYN_NAMES[ch] == name
            values = [float(torch.quantile(codes[:, ch], q)) for q in quantiles]
            y0, y1, x0, x1 = boxes[name]
            res = np.full((len(recs), len(values), 3), np.nan)
            for k, fr in enumerate(clip_frames):
                x = torch.stack([to_tensor(fr[0]), to_tensor(fr[min(driver_frame, len(fr) - 1)])])
                with torch.no_grad():
                    e = m.encode(x[:1])
                    z_pose, z_raw = m.E_mot(x[1:])
                    z = z_raw.repeat(len(values), 1)
                    z[:, ch] = torch.tensor(values)
                    n = len(values)
                    src = {key: v.expand(n, *v.shape[1:]) for key, v in e["source"].items()} if e["source"] else None
                    img = m.G(e["V_app"].expand(n, -1, -1, -1, -1), e["z_id"].expand(n, -1), z_pose.expand(n, -1), z, source=src)
                ims = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
                S = ims.shape[1]
                inside = np.zeros((S, S), bool)
                inside[int(y0 * S):int(y1 * S), int(x0 * S):int(x1 * S)] = True
                base = ims[0].astype(float)
                for j, im in enumerate(ims):
                    d = np.abs(im.astype(float) - base).mean(-1)
                    res[k, j, :2] = d[inside].mean(), d[~inside].mean()
                    res[k, j, 2] = reading(mesh, im, name)
                if name == "eyes_closed":  # closure relative to the render at the median code (open eyes)
                    res[k, :, 2] = 1 - res[k, :, 2] / res[k, 0, 2]
                if grid:
                    rows.append(np.concatenate([fr[min(driver_frame, len(fr) - 1)]] + list(ims), 1))
            with warnings.catch_warnings():  # a column MediaPipe never read stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(res, 0)
            out["channels"][name] = dict(values=values, region_change=mean[:, 0].round(3).tolist(),
                                         elsewhere_change=mean[:, 1].round(3).tolist(),
                                         mediapipe=mean[:, 2].round(4).tolist())
    finally:
        mesh.close()
    if grid:
        from PIL import Image
        Path(grid).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, 0)).save(grid)
    return out


def blink_decomposition(model, corpus: str = "data/corpus", rows: int = 6, grid: str = "",
                        eyes_box: tuple | None = None) -> dict:
    """The ``src_blend`` layers at the blink peaks of the first test clips with a closed-eye frame.
    ``model``: a model folder, or a loaded ``FaceLatentModel`` (then ``eyes_box``, default the fallback)."""
    from vasa.synth.params import PARAM_INDEX

    name = model if isinstance(model, str) else type(model).__name__
    m = load_any(model) if isinstance(model, str) else model
    y0, y1, x0, x1 = region_boxes(model)["eyes_closed"] if isinstance(model, str) else (eyes_box or FALLBACK_BOX["eyes_closed"])
    if not m.cfg.src_blend:  # no layers to show
        return dict(model=name, src_blend=False, blink_frames=0, blink_eye_mask=None)
    c = Corpus(corpus)
    ims, eye_mask, eye_gate = [], [], []
    for rec in c.records(split="test", kind="speech"):
        blink = c.params(rec["id"])[:, [PARAM_INDEX["blink_l"], PARAM_INDEX["blink_r"]]].mean(1)
        if blink.max() < BLINK_PEAK:
            continue
        fr = c.load_clip(rec["id"]).frames
        t = int(blink.argmax())
        with torch.no_grad():
            e = m.encode(to_tensor(fr[0])[None])
            z_pose, z_raw = m.E_mot(to_tensor(fr[t])[None])
            r = m.G.render(e["V_app"], e["z_id"], z_pose, z_raw, source=e["source"])
        S = fr.shape[1]
        mask = r["mask"][0, 0].numpy()
        eye_mask.append(float(mask[int(y0 * S):int(y1 * S), int(x0 * S):int(x1 * S)].mean()))
        if "source_gate" in r:  # gen_source_gate: how much of the source's texture the generator lets in there
            g = r["source_gate"][0, 0].numpy()
            h = g.shape[0]
            eye_gate.append(float(g[int(y0 * h):int(y1 * h), int(x0 * h):int(x1 * h)].mean()))
        layers = [((r[k].clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()
                  for k in ("image", "warped_src", "generated")]
        ims.append(np.concatenate([fr[t]] + layers + [np.repeat((mask[..., None] * 255).astype(np.uint8), 3, -1)], 1))
        if len(ims) == rows:
            break
    if grid and ims:
        from PIL import Image
        Path(grid).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(ims, 0)).save(grid, quality=90)
    return dict(model=name, src_blend=True, blink_frames=len(ims), blink_eye_mask=float(np.mean(eye_mask)) if eye_mask else None,
                blink_eye_gate=float(np.mean(eye_gate)) if eye_gate else None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--driver-frame", type=int, default=20)
    ap.add_argument("--grid", default="", help="a PNG of the renders (first model; rows: clips, mouth then eyes)")
    ap.add_argument("--blink-grid", default="", help="the decoder's layers at real blinks (first model)")
    ap.add_argument("--out", default="", help="also write the results (a JSON list) here")
    a = ap.parse_args(argv)
    results = [channel_response(d, a.corpus, a.clips, a.driver_frame, grid=a.grid if i == 0 else "")
               for i, d in enumerate(a.models)]
    for i, r in enumerate(results):
        r.update(blink_decomposition(r["model"], a.corpus, grid=a.blink_grid if i == 0 else ""))
    for r in results:
        print(json.dumps(r), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
