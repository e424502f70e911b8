"""Rebuild the bundled samples in ``samples/`` (portraits and speech clips; see samples/README.md).

    python scripts/make_samples.py [--corpus data/corpus] [--out samples]

Portraits: one frame (the most frontal one) of two test-split clips and one art-split clip of the
generated corpus (JPEG q92, 128 x 128), and the public-domain astronaut photo shipped by
scikit-image (``skimage.data.astronaut()``, NASA; JPEG q85, 512 x 512). Speech: two sentences
synthesised with espeak-ng (``vasa.synth.speech``), English and Spanish, 16 kHz mono 16-bit WAV.
Deterministic for a given corpus.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

SPEECH = {
    "speech_en.wav": ("Hello! This short sentence was spoken by a speech synthesizer.", "en", "f1"),
    "speech_es.wav": ("Hola, esta frase corta fue creada por un sintetizador de voz.", "es", "m1"),
}


def _frontal_frame(corpus, rec: dict) -> np.ndarray:
    clip = corpus.load_clip(rec["id"])
    names = corpus.param_names
    yaw, pitch = clip.params[:, names.index("yaw")], clip.params[:, names.index("pitch")]
    return clip.frames[int(np.argmin(np.abs(yaw) + np.abs(pitch)))]


def _jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.write_bytes(buf.tobytes())


def main(argv=None) -> None:
    from skimage.data import astronaut

    from vasa.data.corpus import Corpus
    from vasa.synth.speech import synthesize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--out", default="samples")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(a.corpus)
    picks = [("portrait_test_1.jpg", "test", 0), ("portrait_test_2.jpg", "test", 3), ("portrait_art.jpg", "test_art", 0)]
    for name, split, k in picks:
        rec = corpus.records(split=split, kind="speech")[k]
        _jpeg(out / name, _frontal_frame(corpus, rec), 92)
        print(f"{name}: clip {rec['id']} ({split})")
    _jpeg(out / "astronaut.jpg", astronaut(), 85)
    for name, (text, lang, voice) in SPEECH.items():
        utt = synthesize(text, lang, voice)
        sf.write(out / name, utt.audio, utt.sr, subtype="PCM_16")
        print(f"{name}: {utt.duration:.2f} s")


if __name__ == "__main__":
    main()
