"""Does the rendered head look like a face to real detectors? MediaPipe checks of the renderer.

For ``--identities`` random identities and ``--frames`` random frames each (|yaw| <= 30, |pitch| <= 20,
|roll| <= 15, jaw in [0, 1], random expression/gaze/blinks, distance 0.85..1.25), it reports
- the MediaPipe face-detection rate (``mp.solutions.face_detection``, short-range model, conf 0.5),
- the Pearson correlation between ground-truth ``jaw`` and MediaPipe face-mesh mouth opening
  (inner-lip gap, landmarks 13-14, over face height, landmarks 10-152), on frames where a mesh is found.
With ``--animated N`` it instead renders N speech clips driven by the project's animator (espeak
speech -> ``vasa.synth.animation.animate``), every 3rd frame, as the corpus quality check does.
Writes JSON to ``benchmarks/results/render_quality.json`` (or ``--out``).

    python benchmarks/render_quality.py --identities 50 --frames 6 --style photo --resolution 128
    python benchmarks/render_quality.py --animated 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def random_frame(rng: np.random.Generator) -> np.ndarray:
    """One random frame of parameters within the quality bar's pose range."""
    from vasa.synth.params import NOMINAL_DISTANCE, PARAM_INDEX as I, clip_params, neutral_params

    p = neutral_params()
    d = rng.uniform(0.85, 1.25)
    p[I["tz"]], p[I["scale"]] = d * NOMINAL_DISTANCE, 1 / d
    p[I["yaw"]], p[I["pitch"]], p[I["roll"]] = rng.uniform(-30, 30), rng.uniform(-20, 20), rng.uniform(-15, 15)
    p[I["tx"]], p[I["ty"]] = rng.uniform(-0.2, 0.2, 2)
    p[I["jaw"]] = rng.uniform(0, 1)
    for k in ("lip_round", "lip_spread", "lip_press", "brow_furrow", "eye_wide"):
        p[I[k]] = rng.uniform(0, 1) * (rng.random() < 0.4)
    for k in ("smile", "brow_raise"):
        p[I[k]] = rng.uniform(-1, 1) * (rng.random() < 0.5)
    blink = rng.uniform(0, 1) if rng.random() < 0.15 else 0.0
    p[I["blink_l"]] = p[I["blink_r"]] = blink
    p[I["gaze_yaw"]], p[I["gaze_pitch"]] = rng.uniform(-20, 20), rng.uniform(-15, 15)
    return clip_params(p)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--identities", type=int, default=50)
    ap.add_argument("--frames", type=int, default=6, help="random frames per identity")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--style", default="photo", choices=("photo", "art"))
    ap.add_argument("--animated", type=int, default=0, help="use N animator-driven speech clips instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default="", help="write a PNG grid of the first 48 frames here")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "render_quality.json"))
    a = ap.parse_args(argv)
    import mediapipe as mp

    from vasa.synth.identity import sample_identity
    from vasa.synth.params import PARAM_INDEX as I
    from vasa.synth.render import HeadRenderer

    det = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    rng = np.random.default_rng(a.seed)
    found, frontal, jaws, opens, shown, misses = [], [], [], [], [], []
    t0 = time.time()
    def sequences():
        """(identity index, params (T, P)) pairs: random frames, or animator-driven clips."""
        if not a.animated:
            for k in range(a.identities):
                yield k, np.stack([random_frame(rng) for _ in range(a.frames)])
            return
        from vasa.synth.animation import animate, sample_conditions
        from vasa.synth.sentences import sample_sentence
        from vasa.synth.speech import VOICES, synthesize

        for k in range(a.animated):
            crng = np.random.default_rng([a.seed, 42, k])
            utt = synthesize(sample_sentence(crng, "en", split="test"), "en", str(crng.choice(sorted(VOICES))),
                             rng=crng)
            yield k, animate(utt, sample_conditions(crng), crng, fps=25).params[::3]

    for k, seq in sequences():
        r = HeadRenderer(sample_identity(np.random.default_rng([a.seed, 99, k])), a.resolution, style=a.style)
        for p in seq:
            img = r.render(p)
            frontal.append(abs(float(p[I["yaw"]])) <= 30)
            ok = det.process(img).detections is not None
            found.append(ok)
            if not ok:
                misses.append({"identity": k, "yaw": float(p[I["yaw"]]), "pitch": float(p[I["pitch"]])})
            res = mesh.process(img)
            if res.multi_face_landmarks:
                lm = res.multi_face_landmarks[0].landmark
                gap = np.hypot(lm[13].x - lm[14].x, lm[13].y - lm[14].y)
                face = np.hypot(lm[10].x - lm[152].x, lm[10].y - lm[152].y)
                jaws.append(float(p[I["jaw"]]))
                opens.append(float(gap / max(face, 1e-6)))
            if len(shown) < 48:
                shown.append(img)
    r_jaw = float(np.corrcoef(jaws, opens)[0, 1]) if len(jaws) > 2 else float("nan")
    found_a, frontal_a = np.array(found), np.array(frontal)
    out = {"mode": f"animated x{a.animated}" if a.animated else f"random x{a.identities}x{a.frames}",
           "frames": len(found), "resolution": a.resolution, "style": a.style,
           "detection_rate_yaw30": float(found_a[frontal_a].mean()) if frontal_a.any() else None,
           "detection_rate": float(found_a.mean()), "mesh_found_rate": len(jaws) / max(len(found), 1),
           "jaw_mouth_open_pearson_r": r_jaw, "seconds": round(time.time() - t0, 1), "misses": misses[:20]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    if a.save:
        import cv2

        rows = [np.hstack(shown[i:i + 8]) for i in range(0, len(shown) - len(shown) % 8, 8)]
        cv2.imwrite(a.save, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(json.dumps({k: v for k, v in out.items() if k != "misses"}, indent=2))
    return out


if __name__ == "__main__":
    main()
