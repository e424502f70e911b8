"""Validation of real-video ingestion (``vasa.ingest``): labels, tracking, A/V sync, bad input.

Three checks, written to ``benchmarks/results/ingest_validation.json``:

1. ``corpus``: the generated corpus's own test-split mp4 files (``data/corpus/clips/test``) are
   ingested as if they were real videos and compared with their ground truth: per-frame yaw, pitch,
   roll (median absolute error over frames with |yaw| <= 30 deg; bar <= 5 deg), per-frame gaze,
   per-clip main gaze, and the per-clip distance (Spearman rank correlation; bar >= 0.9). The
   calibration constants of ``vasa.ingest.labels.CALIBRATION`` and the canonical face were fit on
   *train*-split clips (other identities); ``--calibrate N`` re-fits them on N train clips and
   prints them. ``framing`` re-measures the crop framing constants of ``vasa.ingest.crop``.
2. ``astronaut``: a real public-domain photo (``skimage.data.astronaut()``) moved by known
   translations and scales over 4 s at 30 fps with 44.1 kHz speech (real recorded speech: the voice
   prompts of Debian's alsa-utils, `apt-get install alsa-utils`; espeak-ng when absent) and a click + flash pair at
   t = 2.0 s: how far the face in the output crops strays from the framing position (px at the
   output resolution), and the audio-video offset of the click against the flash (frames).
   ``real_face_pose``: PnP on that photo mirrored and rotated in-plane by known angles.
3. ``bad_inputs``: garbage bytes, a truncated file, video without audio, audio without video, no
   face, a 1-frame video and a short 4K 60 fps file: each skipped with its reason (or ingested), no
   crash; a second run redoes nothing.

    nice -n 10 python benchmarks/ingest_validation.py --clips 30 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "ingest_validation.json"


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def check_corpus(corpus_dir: str, clips: int, workers: int, work: Path) -> dict:
    """Ingest test-split mp4s of the generated corpus and compare with the ground truth."""
    from vasa.data.corpus import Corpus
    from vasa.ingest import ingest
    from vasa.synth.params import PARAM_INDEX as I

    corpus = Corpus(corpus_dir)
    recs = sorted(corpus.records(split="test", kind="speech"), key=lambda r: r["id"])[:clips]
    src = work / "corpus_src"
    src.mkdir(parents=True, exist_ok=True)
    for r in recs:
        shutil.copy(corpus.video_path(r["id"]), src / f"{r['id']}.mp4")
    t0 = time.perf_counter()
    stats = ingest(src, work / "corpus_out", resolution=corpus.schema["resolution"], workers=workers,
                   progress=False, min_frames=25)
    elapsed = time.perf_counter() - t0
    out = Corpus(work / "corpus_out")
    est, gt, clip_rows = [], [], []
    for r in out.records():
        cid = Path(r["source"]["path"]).stem
        p_gt = corpus.params(cid)[r["source"]["start_frame"]:r["source"]["stop_frame"]]
        p_est = out.params(r["id"])
        est.append(p_est)
        gt.append(p_gt)
        c_gt = corpus.record(cid)["conditions"]
        c = r["conditions"]
        clip_rows.append([c_gt["distance"], c.get("distance", np.nan), c_gt["gaze_yaw"], c.get("gaze_yaw", np.nan),
                          c_gt["gaze_pitch"], c.get("gaze_pitch", np.nan)])
    E, G, C = np.concatenate(est), np.concatenate(gt), np.array(clip_rows)
    ok = np.isfinite(E[:, I["yaw"]])
    sel = ok & (np.abs(G[:, I["yaw"]]) <= 30)

    def mae(name: str, mask: np.ndarray) -> float:
        return round(float(np.median(np.abs(E[mask, I[name]] - G[mask, I[name]]))), 3)

    baseline = {n: round(float(np.median(np.abs(G[sel, I[n]] - np.median(G[sel, I[n]])))), 3)
                for n in ("gaze_yaw", "gaze_pitch")}
    return dict(
        clips_in=len(recs), clips_out=len(out.records()), frames=int(len(E)), frames_labelled=int(ok.sum()),
        frames_abs_yaw_le_30=int(sel.sum()), seconds=round(elapsed, 1), workers=workers,
        seconds_per_video=stats["cost"]["seconds_per_video"],
        input_frames_per_second_per_worker=stats["cost"]["input_frames_per_second"],
        median_abs_error_deg={n: mae(n, sel) for n in ("yaw", "pitch", "roll", "gaze_yaw", "gaze_pitch")},
        gaze_constant_baseline_deg=baseline,
        pearson={n: round(float(np.corrcoef(E[sel, I[n]], G[sel, I[n]])[0, 1]), 4)
                 for n in ("yaw", "pitch", "roll", "gaze_yaw", "gaze_pitch", "jaw")},
        main_gaze_clip_median_abs_error_deg=dict(
            yaw=round(float(np.nanmedian(np.abs(C[:, 3] - C[:, 2]))), 3),
            pitch=round(float(np.nanmedian(np.abs(C[:, 5] - C[:, 4]))), 3)),
        main_gaze_constant_baseline_deg=dict(
            yaw=round(float(np.median(np.abs(C[:, 2] - np.median(C[:, 2])))), 3),
            pitch=round(float(np.median(np.abs(C[:, 4] - np.median(C[:, 4])))), 3)),
        main_gaze_pearson=dict(yaw=round(float(np.corrcoef(C[:, 2], C[:, 3])[0, 1]), 4),
                               pitch=round(float(np.corrcoef(C[:, 4], C[:, 5])[0, 1]), 4)),
        distance_spearman=round(_spearman(C[:, 0], C[:, 1]), 4),
        distance_median_abs_error=round(float(np.nanmedian(np.abs(C[:, 1] - C[:, 0]))), 4),
        bars=dict(pose_mae_le_5=bool(all(mae(n, sel) <= 5 for n in ("yaw", "pitch", "roll"))),
                  gaze_mae_le_5=bool(all(mae(n, sel) <= 5 for n in ("gaze_yaw", "gaze_pitch"))),
                  distance_spearman_ge_0_9=bool(_spearman(C[:, 0], C[:, 1]) >= 0.9)),
    )


def calibrate(corpus_dir: str, clips: int, step: int = 12) -> dict:
    """Re-derive the canonical face and fit the linear calibration on train-split frames."""
    from vasa.data.corpus import Corpus
    from vasa.eval.landmarks import FaceMesh
    from vasa.ingest import canonical, labels
    from vasa.synth.params import PARAM_INDEX as I

    corpus, mesh = Corpus(corpus_dir), FaceMesh(static=True)
    data = []
    for r in corpus.records(split="train", kind="speech")[:clips]:
        clip = corpus.load_clip(r["id"])
        for t in range(0, len(clip.frames), step):
            m = mesh.process(clip.frames[t])
            if m is not None:
                data.append((m.landmarks, clip.params[t]))
    shape = canonical.derive_canonical([d[0] for d in data])
    res = corpus.schema["resolution"]
    rows = []
    for lm, p in data:
        f = labels.measure(lm, labels.PoseSolver(res, res))
        rows.append([f.yaw, f.pitch, f.roll, f.gaze_h, f.gaze_v, f.mouth, f.tz / p[I["tz"]],
                     p[I["yaw"]], p[I["pitch"]], p[I["roll"]], p[I["gaze_yaw"]], p[I["gaze_pitch"]], p[I["jaw"]]])
    R = np.array(rows)
    fits = {n: [round(float(v), 3) for v in np.polyfit(R[:, a], R[:, b], 1)]
            for n, a, b in (("yaw", 0, 7), ("pitch", 1, 8), ("roll", 2, 9), ("gaze_yaw", 3, 10),
                            ("gaze_pitch", 4, 11), ("jaw", 5, 12))}
    fits["tz_nominal"] = [round(float(np.median(R[:, 6]) * 9.0), 3), 0.0]
    return dict(frames=len(data), clips=clips, fits_gain_offset=fits, canonical=canonical.format_canonical(shape))


def framing(corpus_dir: str, clips: int = 6, step: int = 10) -> dict:
    """MediaPipe face box vs head scale and projected head centre on generated frames."""
    from vasa.data.corpus import Corpus
    from vasa.eval.landmarks import FaceDetector
    from vasa.synth.params import PARAM_INDEX as I
    from vasa.synth.render import project_head_center

    corpus, det = Corpus(corpus_dir), FaceDetector()
    res = corpus.schema["resolution"]
    rows = []
    for r in corpus.records(split="train", kind="speech")[:clips]:
        clip = corpus.load_clip(r["id"])
        for t in range(0, len(clip.frames), step):
            d = det.detect(clip.frames[t])
            if d:
                b = d[0][1] * res
                hx, hy = project_head_center(clip.params[t], res)
                w = b[2] - b[0]
                rows.append([w / res / clip.params[t][I["scale"]], ((b[0] + b[2]) / 2 - hx) / w, ((b[1] + b[3]) / 2 - hy) / w])
    R = np.array(rows)
    return dict(frames=len(R), face_width=round(float(np.median(R[:, 0])), 4),
                face_width_std=round(float(R[:, 0].std()), 4), dx=round(float(np.median(R[:, 1])), 4),
                dy=round(float(np.median(R[:, 2])), 4))


ALSA_SOUNDS = Path("/usr/share/sounds/alsa")  # Debian alsa-utils: real recorded speech ("Front Center", ...)


def _speech(seconds: float) -> tuple[np.ndarray, str]:
    """Real recorded speech when available (ALSA's voice prompts, `apt-get install alsa-utils`), else
    espeak-ng synthesis; 16 kHz, padded/cut to ``seconds``. Returns (audio, description)."""
    names = ["Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Side_Left"]
    files = [ALSA_SOUNDS / f"{n}.wav" for n in names]
    if all(f.is_file() for f in files):
        import soundfile as sf
        from scipy.signal import resample_poly

        parts = []
        for f in files:
            x, sr = sf.read(f, dtype="float32", always_2d=True)
            parts.append(resample_poly(x.mean(1), 16000, sr).astype(np.float32))
        a, desc = np.concatenate(parts), "real speech: ALSA voice prompts (" + ", ".join(names) + ")"
    else:
        from vasa.synth.speech import synthesize

        utt = synthesize("The quick brown fox jumps over the lazy dog while the old man watches quietly.",
                         "en", "m1", lead_s=0.2, tail_s=0.3)
        a, desc = utt.audio, "espeak-ng synthesis (no real recording installed)"
    a = a / max(1e-6, np.abs(a).max()) * 0.3
    n = int(seconds * 16000)
    return np.pad(a, (0, max(0, n - len(a))))[:n].astype(np.float32), desc


def check_astronaut(work: Path, resolution: int = 128) -> dict:
    """Moving real photo + speech + click/flash: tracking error and A/V offset."""
    import cv2
    from scipy.signal import resample_poly
    from skimage.data import astronaut

    from vasa.data.corpus import Corpus
    from vasa.eval.landmarks import FaceDetector
    from vasa.ingest import ingest
    from vasa.ingest.crop import FRAMING
    from vasa.io.video import write_mp4

    img = astronaut()  # 512 x 512 RGB, public domain (NASA)
    fps, sr, secs, W, H = 30, 44100, 4.0, 640, 480
    det = FaceDetector()
    b0 = det.detect(img)[0][1] * 512  # the face box in the photo
    fx, fy, fw = (b0[0] + b0[2]) / 2, (b0[1] + b0[3]) / 2, b0[2] - b0[0]
    n = int(secs * fps)
    frames, truth = [], []
    for j in range(n):
        t = j / fps
        s = 0.9 + 0.3 * t / secs  # the photo grows from 0.9x to 1.2x
        cx, cy = W / 2 + 150 * np.sin(2 * np.pi * t / secs), 230 + 40 * np.cos(2 * np.pi * t / secs)
        m = np.array([[s, 0, cx - s * fx], [0, s, cy - s * fy]], np.float64)  # face centre -> (cx, cy)
        frames.append(cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 60, 80)))
        truth.append(m)
    flash_j = 60  # t = 2.0 s exactly (a multiple of 1/25 s too)
    m = truth[flash_j]
    px, py = m[0, 0] * (fx + 0.7 * fw) + m[0, 2], m[1, 1] * fy + m[1, 2]  # beside the face, inside the crop
    frames[flash_j] = frames[flash_j].copy()
    frames[flash_j][int(py) - 6:int(py) + 6, int(px) - 6:int(px) + 6] = 255
    speech16, speech_desc = _speech(secs)
    speech = resample_poly(speech16, sr, 16000).astype(np.float32)
    speech[int(2.0 * sr):int(2.0 * sr) + int(0.004 * sr)] = 0.95  # 4 ms click at t = 2.0 s
    src = work / "astro_src"
    write_mp4(src / "astronaut.mp4", np.stack(frames), fps=fps, audio=speech, sr=sr)
    ingest(src, work / "astro_out", resolution=resolution, workers=1, progress=False, min_frames=25)
    out = Corpus(work / "astro_out")
    recs = out.records()
    if len(recs) != 1:
        return dict(error=f"expected one clip, got {len(recs)}", skipped=json.loads((work / "astro_out" / "skipped.json").read_text()))
    clip = out.load_clip(recs[0]["id"])
    # tracking: the face box in the output crops against where the framing puts it
    cx_exp = resolution / 2 + FRAMING["dx"] * FRAMING["face_width"] * resolution
    cy_exp = resolution / 2 + FRAMING["dy"] * FRAMING["face_width"] * resolution
    cen, widths = [], []
    for f in clip.frames:
        d = det.detect(f)
        if d:
            b = d[0][1] * resolution
            cen.append([(b[0] + b[2]) / 2 - cx_exp, (b[1] + b[3]) / 2 - cy_exp])
            widths.append((b[2] - b[0]) / resolution)
    cen = np.array(cen)
    errs = np.hypot(cen[:, 0], cen[:, 1])
    bias = cen.mean(0)
    jitter = np.hypot(*(cen - bias).T)
    # sync: flash frame (largest change against its neighbours) vs click sample
    fr = clip.frames.astype(np.float32)
    change = np.array([np.abs(fr[k] - 0.5 * (fr[k - 1] + fr[k + 1])).mean() for k in range(1, len(fr) - 1)])
    flash_k = int(np.argmax(change)) + 1
    click_k = int(np.argmax(np.abs(clip.audio))) // (16000 // 25)
    start = recs[0]["source"]["start_frame"]
    return dict(
        source=dict(size=[W, H], fps=fps, audio_rate=sr, seconds=secs, photo_scale="0.9 -> 1.2",
                    face_centre_px="x 320 +- 150 (sine), y 230 +- 40 (cosine), one period", speech=speech_desc),
        clip_frames=len(clip.frames), clip_start_frame=start, frames_with_face=len(errs),
        crop_face_centre_error_px=dict(median=round(float(np.median(errs)), 2), p95=round(float(np.percentile(errs, 95)), 2),
                                       max=round(float(np.max(errs)), 2), resolution=resolution,
                                       mean_offset_xy=[round(float(v), 2) for v in bias],
                                       about_mean_median=round(float(np.median(jitter)), 2),
                                       about_mean_max=round(float(np.max(jitter)), 2)),
        detectors=recs[0]["source"]["detectors"],
        crop_face_width_rel=dict(median=round(float(np.median(widths)), 4), std=round(float(np.std(widths)), 4),
                                 expected=FRAMING["face_width"]),
        seconds_to_ingest=json.loads(next((work / "astro_out" / "status").glob("*.json")).read_text())["seconds"],
        flash_frame=flash_k + start, click_frame=click_k + start, av_offset_frames=click_k - flash_k,
        expected_frame=50,
    )


def check_real_face_pose() -> dict:
    """PnP on a real face: the astronaut photo, mirrored and rotated in-plane by known angles.

    She looks into the camera (gaze near 0). Mirroring must flip the signs of yaw, roll and gaze yaw; a counter-clockwise in-plane rotation by a must add
    a to roll and leave yaw and pitch alone; the reprojection error (over the outer-eye-corner
    distance) shows how well the derived canonical face fits a real face.
    """
    import cv2
    from skimage.data import astronaut

    from vasa.eval.landmarks import FaceMesh
    from vasa.ingest.labels import CALIBRATION, PoseSolver, label_matrix, measure
    from vasa.synth.params import PARAM_INDEX as I

    img, mesh, rows = astronaut(), FaceMesh(), {}
    variants = {"photo": img, "mirrored": np.ascontiguousarray(img[:, ::-1])}
    for a in (-20, -10, 10, 20):
        variants[f"rotated_{a:+d}"] = cv2.warpAffine(img, cv2.getRotationMatrix2D((256, 256), a, 1.0), (512, 512),
                                                     borderMode=cv2.BORDER_REPLICATE)
    for name, im in variants.items():
        lm = mesh.process(im).landmarks
        f = measure(lm, PoseSolver(512, 512))
        iod = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
        g = label_matrix([f])[0]
        rows[name] = dict(yaw=round(f.yaw, 2), pitch=round(f.pitch + CALIBRATION["pitch"][1], 2), roll=round(f.roll, 2),
                          gaze_yaw=round(float(g[I["gaze_yaw"]]), 2), gaze_pitch=round(float(g[I["gaze_pitch"]]), 2),
                          reprojection_over_eye_distance=round(f.reproj_px / iod, 4))
    base = rows["photo"]
    return dict(per_image=rows,
                roll_change_vs_rotation_deg={k: round(v["roll"] - base["roll"], 2) for k, v in rows.items() if k.startswith("rot")},
                mirrored_yaw_plus_photo_yaw=round(rows["mirrored"]["yaw"] + base["yaw"], 2),
                mirrored_roll_plus_photo_roll=round(rows["mirrored"]["roll"] + base["roll"], 2))


def check_bad_inputs(work: Path) -> dict:
    """Each bad input gets a skip reason; the run does not crash; a rerun redoes nothing."""
    import cv2
    from skimage.data import astronaut

    from vasa.ingest import ingest
    from vasa.io.video import write_mp4

    src = work / "bad_src"
    src.mkdir(parents=True, exist_ok=True)
    face = cv2.resize(astronaut(), (256, 256))
    t = 50
    frames = np.stack([face] * t)
    audio = (0.1 * np.random.default_rng(0).standard_normal(t * 640)).astype(np.float32)
    good = write_mp4(src / "good.mp4", frames, audio=audio)
    (src / "garbage.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    data = good.read_bytes()
    (src / "truncated.mp4").write_bytes(data[:len(data) // 2])
    write_mp4(src / "no_audio.mp4", frames)
    write_mp4(src / "audio_only.mp4", None, audio=(0.1 * np.sin(np.arange(32000) / 16000 * 2 * np.pi * 220)).astype(np.float32))
    write_mp4(src / "no_face.mp4", np.stack([np.full((256, 256, 3), 90 + i, np.uint8) for i in range(t)]), audio=audio)
    write_mp4(src / "one_frame.mp4", frames[:1], audio=audio[:640])
    big = cv2.resize(astronaut(), (1200, 1200))
    canvas = np.full((2160, 3840, 3), 70, np.uint8)
    canvas[480:1680, 1320:2520] = big
    t0 = time.perf_counter()
    write_mp4(src / "uhd_60fps.mp4", np.stack([canvas] * 60), fps=60,
              audio=(0.1 * np.random.default_rng(2).standard_normal(48000)).astype(np.float32), sr=48000)
    make_4k = time.perf_counter() - t0
    out = work / "bad_out"
    t0 = time.perf_counter()
    s1 = ingest(src, out, workers=2, progress=False, min_frames=20)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    s2 = ingest(src, out, workers=2, progress=False, min_frames=20)
    skipped = json.loads((out / "skipped.json").read_text())
    seconds = {Path(st["path"]).name: st.get("seconds") for st in
               (json.loads(p.read_text()) for p in (out / "status").glob("*.json"))}
    recs = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    return dict(
        inputs=sorted(p.name for p in src.iterdir()), seconds_first_run=round(first, 1),
        seconds_second_run=round(time.perf_counter() - t0, 1), second_run_processed=s2["run"]["processed"],
        make_4k_seconds=round(make_4k, 1),
        skipped={Path(s["path"]).name: f"{s['reason']}" + (f" ({s['detail']})" if s["detail"] else "")
                 for s in skipped["skipped"]},
        ingested={Path(r["source"]["path"]).name: dict(frames=r["n_frames"], src=[r["source"]["src_width"], r["source"]["src_height"], r["source"]["src_fps"]])
                  for r in recs},
        clips=s1["clips"], seconds_per_input=dict(sorted(seconds.items())),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--clips", type=int, default=30, help="test clips to ingest for check 1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--calibrate", type=int, default=0, help="re-fit calibration on N train clips (prints it)")
    ap.add_argument("--only", nargs="*", default=["corpus", "astronaut", "real_face_pose", "bad_inputs", "framing"])
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()
    res: dict = {}
    prev = json.loads(Path(a.out).read_text()) if Path(a.out).is_file() else {}
    with tempfile.TemporaryDirectory(prefix="vasa-ingest-val-") as tmp:
        work = Path(tmp)
        if a.calibrate:
            res["calibration"] = calibrate(a.corpus, a.calibrate)
            print(res["calibration"]["fits_gain_offset"])
        if "framing" in a.only:
            res["framing"] = framing(a.corpus)
        if "corpus" in a.only:
            res["corpus"] = check_corpus(a.corpus, a.clips, a.workers, work)
        if "astronaut" in a.only:
            res["astronaut"] = check_astronaut(work)
        if "real_face_pose" in a.only:
            res["real_face_pose"] = check_real_face_pose()
        if "bad_inputs" in a.only:
            res["bad_inputs"] = check_bad_inputs(work)
    merged = {**prev, **res}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
