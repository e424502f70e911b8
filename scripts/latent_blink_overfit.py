"""Can the decoder draw a closed eye at all? Overfit a handful of blink pairs and look.

A capacity test for "Why the decoder does not draw the blink" (README). It takes ``--pairs`` training
frames whose eyes MediaPipe sees closed (the guidance cache's pose-free closure >= ``--closed``; one per
clip), each with its clip's first frame (open eyes) as the source, and trains only those pairs for
``--steps`` steps (Adam, ``--lr``) on the whole image's L1 plus ``--w-eyes`` times the L1 inside the eye box the
model was trained with. What trains is chosen by ``--train``:

- ``all``: every module (encoders, generator);
- ``G``: the generator only (E_app, E_id and E_mot frozen: the code is what the shipped E_mot gives);
- ``G_nosrc``: the generator only, with its view of the warped source (``gen_sees_source``) zeroed:
  nothing of the source's open eye reaches the generated layer except through the 3D volume.

If a variant cannot close the eyes of 8 pairs it has seen hundreds of times, the decoder lacks the
means, not the data. MediaPipe's pose-free closure (1 - EAR / the source's EAR) of the drivers and of
the renders before and after is reported, with a grid of (source, driver, render before, render after,
warped source, generated layer, blending mask) per pair; the trained pairs first, then the held-out ones.

    python scripts/latent_blink_overfit.py pretrained/vasa-S/latent --train G --steps 300 --grid x.jpg --out x.json

``--steps 0`` only renders: the closure a model already draws on those pairs (``closure_before``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_channel_response import reading, region_boxes  # noqa: E402
from latent_mouth_jaw import load_any  # noqa: E402
from vasa.data.corpus import Corpus  # noqa: E402
from vasa.data.frames import to_tensor  # noqa: E402
from vasa.errors import VasaError  # noqa: E402
from vasa.eval.landmarks import FaceMesh  # noqa: E402
from vasa.latent.guidance import Guidance  # noqa: E402


def blink_pairs(corpus: str, guidance: str, n: int, closed: float) -> tuple[torch.Tensor, torch.Tensor, list]:
    """-> sources, drivers (n x 3 x S x S) and (clip, frame, closure) of ``n`` guided training frames with
    the highest MediaPipe closure >= ``closed``, one per clip, the source being the clip's first frame."""
    if not Path(guidance).is_file():
        raise SystemExit(f"error: no guidance cache at {guidance}: run train_latent's guidance first (vasa.latent.guidance."
                         "estimate_guidance) or pass --guidance")
    g = Guidance.load(guidance, "closure")
    cl = np.nan_to_num(g.eyes_closed(), nan=-1.0)
    order = np.argsort(-cl)
    c, seen, picked = Corpus(corpus), set(), []
    for i in order:
        if cl[i] < closed or len(picked) == n:
            break
        clip = str(g.clip_ids[i])
        if clip not in seen:
            seen.add(clip)
            picked.append((clip, int(g.frame_idx[i]), float(cl[i])))
    if len(picked) < n:
        raise SystemExit(f"only {len(picked)} clips have a guided frame with closure >= {closed}; lower --closed")
    src, drv = [], []
    for clip, t, _ in picked:
        fr = c.load_clip(clip).frames
        src.append(to_tensor(fr[0]))
        drv.append(to_tensor(fr[t]))
    return torch.stack(src), torch.stack(drv), picked


def eye_aspect(mesh: FaceMesh, imgs: torch.Tensor) -> np.ndarray:
    """B x 3 x S x S in [-1, 1] -> MediaPipe's mean eye aspect ratio per image (NaN: no face)."""
    ims = ((imgs.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return np.array([reading(mesh, im, "eyes_closed") for im in ims], np.float64)


def render(m, src: torch.Tensor, drv: torch.Tensor, state: dict | None = None) -> dict:
    """The model's forward pass without gradients, in eval mode; with ``state``, under those weights."""
    if state is not None:
        now = {k: v.clone() for k, v in m.state_dict().items()}
        m.load_state_dict(state)
    was = m.training
    with torch.no_grad():
        out = m.eval()(src, drv)
    m.train(was)
    if state is not None:
        m.load_state_dict(now)
    return out


def overfit(m, src: torch.Tensor, drv: torch.Tensor, eye: tuple, train: str = "G", steps: int = 300,
            lr: float = 5e-4, w_eyes: float = 10.0, w_blend: float = 0.0) -> dict:
    """Train ``m`` (``train``: all | G | G_nosrc, see the module docstring) on the fixed pairs
    (``src`` -> ``drv``, B x 3 x S x S) with Adam: L1 + ``w_eyes`` x L1 inside ``eye`` (an index of the image
    tensor) + ``w_blend`` x the blending mask there. -> ``losses`` per step, ``before`` (the renders before
    training), ``before_model`` (those weights) and ``seconds``."""
    if train not in ("all", "G", "G_nosrc"):
        raise SystemExit(f"--train must be all, G or G_nosrc, got {train!r}")
    if train == "G_nosrc":
        if getattr(m.G, "src_in", None) is None:
            raise SystemExit("--train G_nosrc needs a model with gen_sees_source")
        for p in m.G.src_in.parameters():
            torch.nn.init.zeros_(p)
    before_model = {k: v.clone() for k, v in m.state_dict().items()}
    before = render(m, src, drv)
    m.requires_grad_(False)
    (m if train == "all" else m.G).requires_grad_(True)
    if train == "G_nosrc":
        m.G.src_in.requires_grad_(False)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    t0, losses = time.time(), []
    m.train()
    for _ in range(steps):
        out = m(src, drv)
        recon = out["recon"]
        loss = (recon - drv).abs().mean() + w_eyes * (recon[eye] - drv[eye]).abs().mean()
        if w_blend and "blend_mask" in out:
            loss = loss + w_blend * out["blend_mask"][eye].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    m.requires_grad_(False)
    return dict(losses=losses, before=before, before_model=before_model, seconds=time.time() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--guidance", default="runs/latent/guidance-train.npz")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--heldout", type=int, default=8, help="more blink pairs (other clips), rendered but never trained on")
    ap.add_argument("--closed", type=float, default=0.5)
    ap.add_argument("--train", choices=("all", "G", "G_nosrc"), default="G")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--w-eyes", type=float, default=10.0)
    ap.add_argument("--w-blend", type=float, default=0.0,
                    help="penalise the blending mask inside the eye box (as w_blend_regions does): the eyes must be generated")
    ap.add_argument("--grid", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.pairs < 1 or a.heldout < 1 or a.steps < 0:
        raise SystemExit(f"error: --pairs and --heldout must be >= 1 and --steps >= 0 (got {a.pairs}, {a.heldout}, {a.steps})")
    torch.manual_seed(0)
    try:
        m = load_any(a.model)
    except VasaError as e:
        raise SystemExit(f"error: {e}")
    src, drv, picked = blink_pairs(a.corpus, a.guidance, a.pairs + a.heldout, a.closed)
    (src, h_src), (drv, h_drv) = src.split([a.pairs, a.heldout]), drv.split([a.pairs, a.heldout])
    y0, y1, x0, x1 = region_boxes(a.model)["eyes_closed"]
    S = src.shape[-1]
    eye = (slice(None), slice(None), slice(int(y0 * S), int(y1 * S)), slice(int(x0 * S), int(x1 * S)))
    n_params = sum(p.numel() for p in (m if a.train == "all" else m.G).parameters())
    fit = overfit(m, src, drv, eye, a.train, a.steps, a.lr, a.w_eyes, a.w_blend)
    losses, before, h_before = fit["losses"], fit["before"], render(m, h_src, h_drv, fit["before_model"])
    after, h_after = render(m, src, drv), render(m, h_src, h_drv)
    mesh = FaceMesh(static=True)
    try:
        ear_src, ear_drv = eye_aspect(mesh, src), eye_aspect(mesh, drv)
        ear_b, ear_a = eye_aspect(mesh, before["recon"]), eye_aspect(mesh, after["recon"])
        h_ear = [eye_aspect(mesh, x) for x in (h_src, h_drv, h_before["recon"], h_after["recon"])]
    finally:
        mesh.close()
    shut = lambda e, ref=ear_src: (1 - e / ref).round(3).tolist()  # noqa: E731  pose-free closure against the source
    eye_l1 = lambda o: float((o["recon"][eye] - drv[eye]).abs().mean())  # noqa: E731
    report = dict(command="python scripts/latent_blink_overfit.py " + " ".join(argv or sys.argv[1:]),
                  model=a.model, train=a.train, steps=a.steps, lr=a.lr, w_eyes=a.w_eyes, pairs=picked,
                  w_blend=a.w_blend, trained_params=n_params, seconds=round(fit["seconds"], 1),
                  loss_first=losses[0] if losses else None, loss_last=float(np.mean(losses[-10:])) if losses else None,
                  eye_l1_before=eye_l1(before), eye_l1_after=eye_l1(after),
                  closure_driver=shut(ear_drv), closure_before=shut(ear_b), closure_after=shut(ear_a),
                  heldout=dict(closure_driver=shut(h_ear[1], h_ear[0]), closure_before=shut(h_ear[2], h_ear[0]),
                               closure_after=shut(h_ear[3], h_ear[0]), eye_l1_before=float((h_before["recon"][eye] - h_drv[eye]).abs().mean()),
                               eye_l1_after=float((h_after["recon"][eye] - h_drv[eye]).abs().mean())),
                  blink_eye_mask_after=float(after["blend_mask"][eye].mean()) if "blend_mask" in after else None)
    if a.grid:
        from PIL import Image
        cat = lambda x, y: torch.cat([x, y])  # noqa: E731  trained pairs, then the held-out ones
        cols = [cat(src, h_src), cat(drv, h_drv), cat(before["recon"], h_before["recon"]), cat(after["recon"], h_after["recon"])]
        if "generated" in after:
            cols += [cat(after["warped_src"], h_after["warped_src"]), cat(after["generated"], h_after["generated"]),
                     cat(after["blend_mask"], h_after["blend_mask"]).expand(-1, 3, -1, -1) * 2 - 1]
        rows = torch.cat([torch.cat(list(c_), 2) for c_ in zip(*cols)], 1)  # 3 x (n S) x (k S)
        Image.fromarray(((rows.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()).save(a.grid, quality=90)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "pairs"}))
    return report


if __name__ == "__main__":
    main()
