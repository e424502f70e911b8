"""Evaluation of the face latent space on held-out identities (ground truth is read here only).

:func:`evaluate_latent` measures, for an exported model (``models/latent``):

* **self-reenactment** (test split): decode(source appearance, driver motion) vs the driver frame,
  PSNR (uint8, peak 255) and SSIM (Gaussian window sigma 1.5, Wang et al.) at 128 x 128, against the
  trivial baseline of copying the source frame, plus autoencoding (source = driver), a ceiling of
  the rendering path (not with ``src_blend``: that decoder can copy its own source frame); for
  ``src_blend`` models also the mean blending mask (the share of the output taken from the warped
  source), over whole frames and inside the mouth box, and a figure of the blend;
* **cross-identity reenactment**: a grid of source identities x driving frames of other identities,
  and CSIM with dlib's face descriptor (:mod:`vasa.eval.identity`): source vs result, next to the
  reference rows source vs driver (another person) and source vs another frame of the same person;
* **disentanglement**: ridge probes (:mod:`vasa.eval.probes`) fit on val clips and scored on test
  clips -- ``z_pose`` -> yaw/pitch/roll, ``z_dyn`` -> jaw/blink, and the cross probes ``z_pose`` -> jaw,
  ``z_dyn`` -> yaw, with the issue's bars (``LATENT_BARS``); the same table with a nonlinear
  k-nearest-neighbour probe (``probes_knn``, no bars: what a linear read-out cannot see);
* **partial transfer**: pose-only transfer must keep the source's mouth opening (MediaPipe face
  mesh) and take the driver's head angle; dynamics-only transfer must keep the source's head angle
  (read by the val-fitted yaw probe) and take the driver's mouth.

Figures (PNG) go to ``figures_dir``; the returned dict holds every number (JSON-able) under
``metrics`` and arrays for plots under ``arrays``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from vasa.data.corpus import Corpus
from vasa.data.frames import to_tensor
from vasa.errors import VasaError
from vasa.eval.probes import LATENT_BARS, RidgeProbe, probe_table
from vasa.latent.export import encode_frames
from vasa.latent.model import expand_source
from vasa.latent.task import to_uint8
from vasa.latent.train import load_latent
from vasa.viz import image_grid

EVAL_RES = 128


def _to_eval_res(img: np.ndarray) -> np.ndarray:
    if img.shape[0] == EVAL_RES:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > EVAL_RES else cv2.INTER_CUBIC
    return cv2.resize(img, (EVAL_RES, EVAL_RES), interpolation=interp)


def save_png(path: str | Path, img: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, atomically."""
    from vasa.io.atomic import write_bytes

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise VasaError(f"PNG encoding failed for {path}")
    write_bytes(path, buf.tobytes())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB images (Gaussian window, sigma 1.5, channel mean)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _batches(n: int, bs: int):
    for k in range(0, n, bs):
        yield slice(k, min(n, k + bs))


# ----------------------------------------------------------------------------- (a) self-reenactment
def frame_pairs(c: Corpus, split: str, n: int, rng: np.random.Generator, size: int,
                min_jaw_gap: float = 0.0, with_records: bool = False) -> tuple:
    """``n`` pairs (source frame i, driver frame j != i) of random speech clips of ``split``:
    (sources, drivers, source params n x P, driver params n x P); frames resized to ``size``.
    With ``min_jaw_gap`` only pairs whose ground-truth jaw differs by at least that much; with
    ``with_records`` a fifth element, each pair's clip record."""
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    recs = [r for r in recs if r["n_frames"] >= 2]
    if not recs:
        raise VasaError(f"split {split!r} has no speech clip with 2+ frames to evaluate on")
    jaw = c.param_names.index("jaw")
    picks = []
    for _ in range(max(n * 50, 100)):
        if len(picks) == n:
            break
        r = recs[int(rng.integers(len(recs)))]
        i, j = (int(v) for v in rng.choice(r["n_frames"], size=2, replace=False))
        prm = c.params(r["id"])
        if abs(prm[i, jaw] - prm[j, jaw]) >= min_jaw_gap:
            picks.append((r, i, j))
    if not picks:
        raise VasaError(f"no frame pair in split {split!r} with a jaw gap >= {min_jaw_gap}")
    src, drv, ps, pd = [None] * len(picks), [None] * len(picks), [], []
    for k in sorted(range(len(picks)), key=lambda k: picks[k][0]["shard"]):  # one shard load per shard
        r, i, j = picks[k]
        src[k], drv[k] = _frame(c, r, i, size), _frame(c, r, j, size)
    for r, i, j in picks:
        prm = c.params(r["id"])
        ps.append(prm[i])
        pd.append(prm[j])
    if with_records:
        return src, drv, np.array(ps), np.array(pd), [r for r, _, _ in picks]
    return src, drv, np.array(ps), np.array(pd)


def mouth_boxes(records: list[dict], params: np.ndarray, size: int) -> np.ndarray:
    """Ground-truth mouth box of each frame (a generated corpus: the renderer's projected mouth centre,
    half-width 0.7 x the eye-to-eye distance, half-height 0.6 x the half-width): n x 4 ints
    (x0, y0, x1, y1) at ``size`` px.
    Evaluation only: it reads the corpus's identity parameters."""
    from vasa.synth.identity import Identity
    from vasa.synth.render import HeadRenderer

    boxes, renderers = [], {}  # one renderer per clip: a clip's frames share it
    for r, p in zip(records, params):
        if "identity_params" not in r:
            raise VasaError("mouth_boxes needs a generated corpus (records with identity_params)")
        key = r.get("id", id(r))
        if key not in renderers:
            renderers[key] = HeadRenderer(Identity.from_dict(r["identity_params"]), resolution=size, supersample=1)
        lm = renderers[key].landmarks(p)
        (mx, my), (lx, ly), (rx, ry) = lm["mouth_center"], lm["eye_l"], lm["eye_r"]
        hw = max(3.0, 0.7 * float(np.hypot(lx - rx, ly - ry)))
        hh = 0.6 * hw
        boxes.append([int(np.floor(mx - hw)), int(np.floor(my - hh)), int(np.ceil(mx + hw)), int(np.ceil(my + hh))])
    return np.clip(np.array(boxes), 0, size)


@torch.no_grad()
def mouth_reenactment(model, corpus: str, pairs: int = 128, seed: int = 0, batch: int = 16,
                      split: str = "test", min_jaw_gap: float = 0.3) -> dict[str, Any]:
    """Does the decoder render the driver's mouth? PSNR inside the ground-truth mouth box of pairs whose
    jaw differs by >= ``min_jaw_gap``: reenactment vs driver, and the source copied (a decoder that
    ignores z_dyn's mouth scores like the copy). ``mouth_gain`` = reenactment - copy, in dB."""
    c = Corpus(corpus)
    src_all, drv_all, _, p_drv, recs = frame_pairs(c, split, pairs, np.random.default_rng((seed, 17)),
                                                    model.cfg.image_size, min_jaw_gap, with_records=True)
    boxes = mouth_boxes(recs, p_drv, EVAL_RES)
    rec_db, copy_db, mask = [], [], []
    for sl in _batches(len(src_all), batch):
        src = torch.stack([to_tensor(f) for f in src_all[sl]])
        drv = torch.stack([to_tensor(f) for f in drv_all[sl]])
        out = model(src, drv)
        for i, k in enumerate(range(sl.start, sl.stop)):
            x0, y0, x1, y1 = boxes[k]
            d, r, so = (_to_eval_res(to_uint8(x[i]))[y0:y1, x0:x1] for x in (drv, out["recon"], src))
            rec_db.append(psnr(r, d))
            copy_db.append(psnr(so, d))
            if "blend_mask" in out:  # src_blend: how much of the mouth is the warped source, not generated
                m = cv2.resize(out["blend_mask"][i, 0].numpy(), (EVAL_RES, EVAL_RES), interpolation=cv2.INTER_AREA)
                mask.append(float(m[y0:y1, x0:x1].mean()))
    rec_db, copy_db = np.array(rec_db), np.array(copy_db)
    return dict(metrics=dict(pairs=len(rec_db), mouth_psnr=float(rec_db.mean()), mouth_psnr_copy=float(copy_db.mean()),
                             mouth_gain=float((rec_db - copy_db).mean()),
                             mouth_blend_mask=float(np.mean(mask)) if mask else None),
                arrays=dict(mouth_psnr=rec_db, mouth_psnr_copy=copy_db, boxes=boxes))


@torch.no_grad()
def self_reenactment(model, corpus: str, pairs: int = 512, seed: int = 0, batch: int = 16,
                     split: str = "test", progress: bool = True) -> dict[str, Any]:
    """PSNR / SSIM at 128 x 128 of reenactment, copy-source and autoencoding on ``pairs`` frame pairs."""
    c = Corpus(corpus)
    src_all, drv_all, _, _ = frame_pairs(c, split, pairs, np.random.default_rng((seed, 3)), model.cfg.image_size)
    rows: dict[str, list[float]] = {k: [] for k in ("psnr", "ssim", "psnr_copy", "ssim_copy", "psnr_auto", "ssim_auto")}
    example, blend, masks = None, None, []
    for sl in tqdm(list(_batches(len(src_all), batch)), desc="self-reenactment", disable=not progress):
        src = torch.stack([to_tensor(f) for f in src_all[sl]])
        drv = torch.stack([to_tensor(f) for f in drv_all[sl]])
        out = model(src, drv)
        recon = out["recon"]
        auto = model(drv, drv)["recon"]
        if "blend_mask" in out:  # src_blend
            masks.append(out["blend_mask"].mean((1, 2, 3)))
            if blend is None:  # rows: source, driver, warped source, mask, generated, output
                n = min(8, len(src))
                mk = out["blend_mask"].expand(-1, 3, -1, -1) * 2 - 1
                blend = image_grid([to_uint8(x[i]) for x in (src, drv, out["warped_src"], mk, out["generated"], recon)
                                    for i in range(n)], cols=n)
        for i in range(len(src)):
            d, r, a, so = (_to_eval_res(to_uint8(x[i])) for x in (drv, recon, auto, src))
            rows["psnr"].append(psnr(r, d))
            rows["ssim"].append(ssim(r, d))
            rows["psnr_copy"].append(psnr(so, d))
            rows["ssim_copy"].append(ssim(so, d))
            rows["psnr_auto"].append(psnr(a, d))
            rows["ssim_auto"].append(ssim(a, d))
        if example is None:
            n = min(8, len(src))
            example = image_grid([to_uint8(x[i]) for x in (src, drv, recon) for i in range(n)], cols=n)
    arr = {k: np.array(v) for k, v in rows.items()}
    metrics = {k: float(v.mean()) for k, v in arr.items()}
    metrics["pairs"] = len(src_all)
    metrics["psnr_gain_over_copy"] = metrics["psnr"] - metrics["psnr_copy"]
    metrics["blend_mask"] = float(torch.cat(masks).mean()) if masks else None  # src_blend: share of the warped source
    return dict(metrics=metrics, arrays=arr, grid=example, blend_grid=blend)


# ----------------------------------------------------------------------------- (b) cross-identity
def _distinct_identity_records(c: Corpus, split: str, n: int, rng: np.random.Generator,
                               exclude: set | None = None) -> list[dict]:
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    out, seen = [], set(exclude or ())
    for k in rng.permutation(len(recs)):
        r = recs[k]
        if r["identity"] not in seen:
            out.append(r)
            seen.add(r["identity"])
        if len(out) == n:
            break
    return out


def _frame(c: Corpus, r: dict, t: int, size: int) -> np.ndarray:
    f = c.shard(r["shard"]).frames(r["index"], t, t + 1)[0]
    return f if f.shape[0] == size else cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)


@torch.no_grad()
def cross_identity(model, corpus: str, sources: int = 6, drivers: int = 6, seed: int = 0,
                   split: str = "test", fallback_split: str = "val") -> dict[str, Any]:
    """Cross-identity grid (first row: drivers, first column: sources) and dlib CSIM.

    Sources are identities of ``split``; drivers are other identities of ``split``, or of
    ``fallback_split`` when ``split`` has no other (tiny corpora)."""
    from vasa.eval.identity import DlibFaceEmbedder

    c, s = Corpus(corpus), model.cfg.image_size
    rng = np.random.default_rng((seed, 11))
    src_recs = _distinct_identity_records(c, split, sources, rng)
    taken = {r["identity"] for r in src_recs}
    drv_recs = _distinct_identity_records(c, split, drivers, rng, exclude=taken)
    if not drv_recs:
        drv_recs = _distinct_identity_records(c, fallback_split, drivers, rng, exclude=taken)
    if not src_recs or not drv_recs:
        raise VasaError(f"splits {split!r}/{fallback_split!r} need 2+ identities with speech clips "
                        "for the cross-identity grid")
    src = [_frame(c, r, int(rng.integers(r["n_frames"])), s) for r in src_recs]
    same = [_frame(c, r, int(rng.integers(r["n_frames"])), s) for r in src_recs]  # another frame, same person
    drv = [_frame(c, r, int(rng.integers(r["n_frames"])), s) for r in drv_recs]
    xs = torch.stack([to_tensor(f) for f in src])
    xd = torch.stack([to_tensor(f) for f in drv])
    V, z_id = model.encode_appearance(xs)
    zp, zd = model.encode_motion(xd)
    cells = np.empty((len(src), len(drv)), dtype=object)
    for i in range(len(src)):
        view = expand_source(model.encode_source(xs[i:i + 1]), len(drv))
        out = model.decode(V[i:i + 1].expand(len(drv), *V.shape[1:]), z_id[i:i + 1].expand(len(drv), -1), zp, zd,
                           source=view)
        for j in range(len(drv)):
            cells[i, j] = to_uint8(out[j])
    emb = DlibFaceEmbedder()
    e_src, det_src = emb.embed_many([_to_eval_res(f) for f in src])
    e_same, _ = emb.embed_many([_to_eval_res(f) for f in same])
    e_drv, _ = emb.embed_many([_to_eval_res(f) for f in drv])
    e_cell, det_cell = emb.embed_many([_to_eval_res(cells[i, j]) for i in range(len(src)) for j in range(len(drv))])
    e_cell = e_cell.reshape(len(src), len(drv), -1)
    csim = np.einsum("ijd,id->ij", e_cell, e_src)  # sources x drivers
    blank = np.full_like(src[0], 255)
    tiles = [blank] + drv + [t for i in range(len(src)) for t in [src[i]] + list(cells[i])]
    grid = image_grid(tiles, cols=len(drv) + 1)
    metrics = dict(csim_cross=float(csim.mean()), csim_driver=float((e_drv @ e_src.T).mean()),
                   csim_same_identity=float((e_same * e_src).sum(1).mean()),
                   detected_sources=float(det_src.mean()), detected_results=float(det_cell.mean()))
    return dict(metrics=metrics, arrays=dict(csim=csim), grid=grid)


# ----------------------------------------------------------------------------- (c) probes
def clip_codes(model, corpus: str, split: str, frames_per_clip: int = 40, batch: int = 128,
               progress: bool = True) -> dict[str, np.ndarray]:
    """z_pose, z_dyn, ground-truth params and clip index of up to ``frames_per_clip`` evenly spaced
    frames of every speech clip of ``split``."""
    c = Corpus(corpus)
    recs = sorted(c.records(split=split, kind="speech"), key=lambda r: r["id"])
    if not recs:
        raise VasaError(f"split {split!r} of {corpus} has no speech clip to probe")
    zp, zd, prm, grp = [], [], [], []
    for k, r in enumerate(tqdm(recs, desc=f"codes {split}", disable=not progress)):
        idx = np.unique(np.linspace(0, r["n_frames"] - 1, min(frames_per_clip, r["n_frames"])).round().astype(int))
        frames = c.shard(r["shard"]).frames(r["index"])[idx]
        p, d = encode_frames(model, frames, batch, torch.device("cpu"))
        zp.append(p)
        zd.append(d)
        prm.append(c.params(r["id"])[idx])
        grp.append(np.full(len(idx), k))
    return dict(z_pose=np.concatenate(zp), z_dyn=np.concatenate(zd), params=np.concatenate(prm),
                group=np.concatenate(grp), names=np.array(c.param_names))


def targets_of(params: np.ndarray, names) -> dict[str, np.ndarray]:
    """The probe targets: yaw, pitch, roll (degrees), jaw, blink (mean of both eyes)."""
    ix = {n: i for i, n in enumerate(list(names))}
    return dict(yaw=params[:, ix["yaw"]], pitch=params[:, ix["pitch"]], roll=params[:, ix["roll"]],
                jaw=params[:, ix["jaw"]], blink=(params[:, ix["blink_l"]] + params[:, ix["blink_r"]]) / 2)


def probes(fit: dict[str, np.ndarray], ev: dict[str, np.ndarray]) -> dict[str, Any]:
    """R² table {code: {target: R²}} (fit on ``fit``, scored on ``ev``) and the bars' pass/fail."""
    tf, te = targets_of(fit["params"], fit["names"]), targets_of(ev["params"], ev["names"])
    table = probe_table({k: (fit[k], ev[k]) for k in ("z_pose", "z_dyn")},
                        {k: (tf[k], te[k]) for k in tf}, groups_fit=fit["group"])
    table = {c: {t: (v if np.isfinite(v) else None) for t, v in row.items()} for c, row in table.items()}  # JSON
    knn = probe_table({k: (fit[k], ev[k]) for k in ("z_pose", "z_dyn")}, {k: (tf[k], te[k]) for k in tf}, kind="knn")
    knn = {c: {t: (v if np.isfinite(v) else None) for t, v in row.items()} for c, row in knn.items()}
    bars = {}
    for b in LATENT_BARS:
        r2 = table[b.code][b.target]
        bars[f"{b.code}->{b.target} {b.op} {b.bar}"] = dict(r2=r2, passed=b.passed(r2))
    return dict(table=table, knn=knn, bars=bars, all_passed=all(v["passed"] for v in bars.values()))


# ----------------------------------------------------------------------------- partial transfer
@torch.no_grad()
def partial_transfer(model, corpus: str, yaw_probe: RidgeProbe, pairs: int = 64, seed: int = 0,
                     split: str = "test", min_jaw_gap: float = 0.3) -> dict[str, Any]:
    """Pose-only and dynamics-only transfer on pairs of one clip whose jaw differs by >= ``min_jaw_gap``.

    Mouth opening is measured by MediaPipe's face mesh on the images; yaw by ``yaw_probe`` (z_pose ->
    degrees, fit on val) on the re-encoded output. Errors are mean absolute differences."""
    from vasa.eval.landmarks import FaceMesh

    c = Corpus(corpus)
    ix = {n: i for i, n in enumerate(c.param_names)}
    src, drv, p_src, p_drv = frame_pairs(c, split, pairs, np.random.default_rng((seed, 13)), model.cfg.image_size,
                                         min_jaw_gap)
    xs, xd = torch.stack([to_tensor(f) for f in src]), torch.stack([to_tensor(f) for f in drv])
    pose_only = model.reenact(xs, xd, parts=("pose",))
    dyn_only = model.reenact(xs, xd, parts=("dyn",))
    mesh = FaceMesh(static=True)
    try:
        m_src = mesh.mouth_openings(np.stack(src))
        m_drv = mesh.mouth_openings(np.stack(drv))
        m_pose = mesh.mouth_openings(np.stack([to_uint8(x) for x in pose_only]))
        m_dyn = mesh.mouth_openings(np.stack([to_uint8(x) for x in dyn_only]))
    finally:
        mesh.close()
    yaw = lambda x: yaw_probe.predict(model.encode_motion(x)[0].numpy())[:, 0]  # noqa: E731
    y_src, y_drv = p_src[:, ix["yaw"]], p_drv[:, ix["yaw"]]
    y_pose, y_dyn = yaw(pose_only), yaw(dyn_only)
    ok = np.isfinite(m_src) & np.isfinite(m_drv) & np.isfinite(m_pose) & np.isfinite(m_dyn)
    mae = lambda a, b: float(np.abs(a[ok] - b[ok]).mean()) if ok.any() else float("nan")  # noqa: E731
    metrics = dict(
        pairs=len(src), mesh_found=float(ok.mean()),
        pose_only_mouth_err_vs_source=mae(m_pose, m_src), pose_only_mouth_err_vs_driver=mae(m_pose, m_drv),
        dyn_only_mouth_err_vs_driver=mae(m_dyn, m_drv), dyn_only_mouth_err_vs_source=mae(m_dyn, m_src),
        pose_only_yaw_err_vs_driver=float(np.abs(y_pose - y_drv).mean()),
        pose_only_yaw_err_vs_source=float(np.abs(y_pose - y_src).mean()),
        dyn_only_yaw_err_vs_source=float(np.abs(y_dyn - y_src).mean()),
        dyn_only_yaw_err_vs_driver=float(np.abs(y_dyn - y_drv).mean()),
        source_driver_yaw_gap=float(np.abs(y_src - y_drv).mean()),
        source_driver_mouth_gap=mae(m_src, m_drv))
    metrics = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()}  # JSON
    metrics["pose_only_keeps_mouth"] = bool(
        ok.any() and metrics["pose_only_mouth_err_vs_source"] < metrics["pose_only_mouth_err_vs_driver"])
    metrics["dyn_only_keeps_yaw"] = bool(metrics["dyn_only_yaw_err_vs_source"] < metrics["dyn_only_yaw_err_vs_driver"])
    n = min(6, len(src))
    grid = image_grid([t for k in range(n) for t in (src[k], drv[k], to_uint8(pose_only[k]), to_uint8(dyn_only[k]))],
                      cols=4)
    arrays = dict(m_src=m_src, m_drv=m_drv, m_pose=m_pose, m_dyn=m_dyn, y_src=y_src, y_drv=y_drv,
                  y_pose=y_pose, y_dyn=y_dyn)
    return dict(metrics=metrics, arrays=arrays, grid=grid)


# ----------------------------------------------------------------------------- all of it
def evaluate_latent(model: str = "models/latent", corpus: str = "data/corpus", seed: int = 0, pairs: int = 512,
                    cross_sources: int = 6, cross_drivers: int = 6, probe_frames: int = 40,
                    transfer_pairs: int = 64, split: str = "test", fit_split: str = "val",
                    figures_dir: str | None = "reports/latent", guidance_frames: int = 16,
                    progress: bool = True) -> dict[str, Any]:
    """Every measure of the module docstring; PNGs (``self_reenactment``, ``cross_identity``,
    ``transfer``, and ``blend`` for src_blend models) under ``figures_dir``. ``guidance_frames`` > 0: also
    how closely E_mot follows its landmark guidance on that many frames per ``split`` clip
    (:func:`vasa.latent.guidance.guidance_fit`, MediaPipe ~11 ms a frame). Returns ``{"metrics": {...}, "arrays": {...}, "grids": {...}}``."""
    net = load_latent(model)
    torch.manual_seed(seed)
    sr = self_reenactment(net, corpus, pairs, seed, split=split, progress=progress)
    generated = all("identity_params" in r for r in Corpus(corpus).records(split=split, kind="speech"))
    # the mouth box needs the renderer's ground truth: a real-video corpus has none (metrics: null)
    mr = mouth_reenactment(net, corpus, max(8, pairs // 4), seed, split=split) if generated else \
        dict(metrics=None, arrays={})
    ci = cross_identity(net, corpus, cross_sources, cross_drivers, seed, split=split, fallback_split=fit_split)
    fit = clip_codes(net, corpus, fit_split, probe_frames, progress=progress)
    ev = clip_codes(net, corpus, split, probe_frames, progress=progress)
    pr = probes(fit, ev)
    yaw_probe = RidgeProbe().fit(fit["z_pose"], targets_of(fit["params"], fit["names"])["yaw"], fit["group"])
    pt = partial_transfer(net, corpus, yaw_probe, transfer_pairs, seed, split=split)
    gfit = None
    if guidance_frames > 0:
        from vasa.latent.guidance import guidance_fit
        gfit = guidance_fit(net, corpus, split, guidance_frames)
    grids = dict(self_reenactment=sr["grid"], cross_identity=ci["grid"], transfer=pt["grid"])
    if sr["blend_grid"] is not None:  # src_blend: source, driver, warped source, mask, generated, output
        grids["blend"] = sr["blend_grid"]
    if figures_dir:
        for name, g in grids.items():
            save_png(Path(figures_dir) / f"{name}.png", g)
    metrics = dict(self_reenactment=sr["metrics"], mouth=mr["metrics"], cross_identity=ci["metrics"], probes=pr["table"],
                   probes_knn=pr["knn"], probe_bars=pr["bars"], probes_passed=pr["all_passed"], transfer=pt["metrics"],
                   guidance_fit=gfit)
    arrays = dict(self_reenactment=sr["arrays"], mouth=mr["arrays"], csim=ci["arrays"]["csim"], transfer=pt["arrays"],
                  probe_fit=fit, probe_eval=ev)
    return dict(metrics=metrics, arrays=arrays, grids=grids)
