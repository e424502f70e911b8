"""Notebook front-end of generation (``notebooks/00_quickstart.ipynb``): samples, inline video, the widget app.

* :func:`samples` -- the bundled portraits and speech clips (``samples/``);
* :func:`resolve` -- a path relative to the working folder or, failing that, to the repository;
* :func:`load_talker` -- the bundle (optionally random weights when none exists); :func:`speak` -- TTS;
* :func:`video_html` / :func:`side_by_side` -- mp4s with sound, embedded inline (base64);
* :func:`compare` -- the same audio under several settings (e.g. three emotions), side by side;
* :func:`quickstart_app` -- the ipywidgets app: portrait (sample or upload), audio (sample, upload
  or typed text), sliders for gaze, distance, emotion, guidance scales, steps and seed, a Generate
  button with a progress bar, and a comparison panel.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from vasa.errors import VasaError

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".m4a")


def resolve(path: str | Path) -> Path:
    """``path`` as given when it exists, else relative to the repository root (samples, pretrained)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return ROOT / p if (ROOT / p).exists() else p


def samples() -> dict[str, dict[str, Path]]:
    """``{"portraits": {name: path}, "speech": {name: path}}`` of the bundled samples."""
    files = sorted(SAMPLES.glob("*")) if SAMPLES.is_dir() else []
    return {"portraits": {p.stem: p for p in files if p.suffix.lower() in IMAGE_EXT},
            "speech": {p.stem: p for p in files if p.suffix.lower() in AUDIO_EXT}}


def speak(text: str, language: str = "en", voice: str = "f1") -> tuple:
    """``(samples, 16000)`` of ``text`` spoken by the built-in speech synthesis (espeak-ng)."""
    from vasa.synth.speech import synthesize

    utt = synthesize(text, language, voice)
    return utt.audio, utt.sr


def load_talker(checkpoint: str | Path, allow_random: bool = False, work_dir: str | Path = "."):
    """``Talker.from_pretrained(checkpoint)``; a missing bundle with ``allow_random`` gives a random one
    (the pipeline runs, the faces are noise) and says so."""
    from vasa.talker import Talker, random_bundle

    path = resolve(checkpoint)
    if not path.is_dir() and allow_random:
        from IPython.display import Markdown, display

        path = random_bundle(Path(work_dir) / "random-bundle", seed=0)
        display(Markdown(f"**No trained model at `{checkpoint}`: using RANDOM weights** (`{path}`) so the notebook "
                         "runs end to end; the videos show noise, not a face. Train one (`dvc repro`) or pass "
                         "`checkpoint`."))
    return Talker.from_pretrained(path)


def video_html(path: str | Path, width: int = 320, label: str | None = None) -> str:
    """An inline ``<video>`` (with sound, controls) of an mp4, as HTML."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    cap = f"<div style='text-align:center;font:13px sans-serif'>{html.escape(label)}</div>" if label else ""
    return (f"<div style='display:inline-block;margin:4px'><video width='{width}' controls "
            f"src='data:video/mp4;base64,{data}'></video>{cap}</div>")


def side_by_side(paths, labels=None, width: int = 256) -> str:
    """Several videos in one row (HTML)."""
    labels = labels or [Path(p).stem for p in paths]
    return "<div>" + "".join(video_html(p, width, lab) for p, lab in zip(paths, labels)) + "</div>"


def compare(talker, image, audio, out_dir: str | Path, vary: str = "emotion", values=("neutral", "happy", "sad"),
            progress=None, **options) -> list[Path]:
    """Generate ``audio`` once per value of the control ``vary`` (the rest as ``options``); returns the mp4s."""
    out_dir = Path(out_dir)
    paths = []
    for v in values:
        path = out_dir / f"compare_{vary}_{str(v).replace(',', '_').replace('=', '')}.mp4"
        talker.generate(image, audio, out=path, progress=progress or False, **{**options, vary: v})
        paths.append(path)
    return paths


def _save_upload(upload, folder: Path) -> Path | None:
    """The last file of an ipywidgets FileUpload, written to ``folder``."""
    value = upload.value
    if not value:
        return None
    item = value[-1] if isinstance(value, (tuple, list)) else list(value.values())[-1]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(item["name"]).name
    path.write_bytes(bytes(item["content"]))
    return path


def quickstart_app(talker, out_dir: str | Path = "quickstart", defaults: dict | None = None):
    """The interactive app (ipywidgets); returns the top-level widget (display it)."""
    import ipywidgets as W
    from IPython.display import HTML, display

    from vasa.synth.params import EMOTIONS
    from vasa.synth.speech import VOICES
    from vasa.talker.inputs import CFG_RANGE, DISTANCE_RANGE, GAZE_PITCH_RANGE, GAZE_YAW_RANGE

    d = {"gaze": (0.0, 0.0), "distance": 1.0, "emotion": "neutral", "intensity": 1.0, "cfg_audio": 0.5,
         "cfg_gaze": 1.0, "steps": min(50, talker.max_steps), "seed": 0, "resolution": 512, **(defaults or {})}
    out_dir = Path(out_dir)
    s = samples()
    style = {"description_width": "110px"}
    wide = W.Layout(width="420px")
    portrait = W.Dropdown(options=list(s["portraits"].items()), description="portrait", style=style, layout=wide)
    portrait_up = W.FileUpload(accept="image/*", multiple=False, description="upload portrait")
    speech = W.Dropdown(options=list(s["speech"].items()), description="speech", style=style, layout=wide)
    speech_up = W.FileUpload(accept="audio/*", multiple=False, description="upload speech")
    text = W.Text(placeholder="or type text to speak (built-in speech synthesis)", description="text", style=style,
                  layout=wide)
    voice = W.Dropdown(options=list(VOICES), value="f1", description="voice", style=style)
    language = W.Dropdown(options=["en", "es", "de", "fr", "cmn"], value="en", description="language", style=style)
    yaw = W.FloatSlider(value=d["gaze"][0], min=GAZE_YAW_RANGE[0], max=GAZE_YAW_RANGE[1], step=1,
                        description="gaze yaw (deg)", style=style, layout=wide)
    pitch = W.FloatSlider(value=d["gaze"][1], min=GAZE_PITCH_RANGE[0], max=GAZE_PITCH_RANGE[1], step=1,
                          description="gaze pitch (deg)", style=style, layout=wide)
    distance = W.FloatSlider(value=d["distance"], min=DISTANCE_RANGE[0], max=DISTANCE_RANGE[1], step=0.05,
                             description="distance", style=style, layout=wide)
    emotion = W.Dropdown(options=list(EMOTIONS), value=d["emotion"], description="emotion", style=style)
    intensity = W.FloatSlider(value=d["intensity"], min=0, max=1, step=0.05, description="intensity", style=style)
    cfg_a = W.FloatSlider(value=d["cfg_audio"], min=CFG_RANGE[0], max=4, step=0.1, description="CFG audio",
                          style=style, layout=wide)
    cfg_g = W.FloatSlider(value=d["cfg_gaze"], min=CFG_RANGE[0], max=4, step=0.1, description="CFG gaze",
                          style=style, layout=wide)
    steps = W.IntSlider(value=d["steps"], min=1, max=min(100, talker.max_steps), description="steps", style=style,
                        layout=wide)
    seed = W.IntText(value=d["seed"], description="seed", style=style)
    go = W.Button(description="Generate", button_style="primary", icon="play")
    cmp_btn = W.Button(description="Compare 3 emotions", icon="columns")
    bar = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="420px"))
    status = W.HTML()
    out = W.Output()
    state = {"n": 0}

    def inputs():
        img = _save_upload(portrait_up, out_dir / "uploads") or portrait.value
        aud = _save_upload(speech_up, out_dir / "uploads") or speech.value
        if text.value.strip():
            aud = speak(text.value.strip(), language.value, voice.value)
        emo = None if emotion.value == "neutral" else f"{emotion.value}={intensity.value:.2f}"
        controls = dict(gaze=(yaw.value, pitch.value), distance=distance.value, emotion=emo, cfg_audio=cfg_a.value,
                        cfg_gaze=cfg_g.value, steps=steps.value, seed=int(seed.value), resolution=d["resolution"])
        return img, aud, controls

    def progress(i, n):
        bar.max, bar.value = max(n, 1), i

    def run(fn):
        go.disabled = cmp_btn.disabled = True
        try:
            with out:
                out.clear_output()
                fn()
        except VasaError as e:
            status.value = f"<b style='color:#b00'>{html.escape(str(e))}</b>"
        finally:
            go.disabled = cmp_btn.disabled = False

    def on_generate(_):
        def fn():
            img, aud, controls = inputs()
            state["n"] += 1
            path = out_dir / f"generated_{state['n']}.mp4"
            status.value = "generating..."
            gen = talker.generate(img, aud, out=path, progress=progress, **controls)
            status.value = (f"{gen.num_frames} frames in {gen.info['seconds']:.1f} s &mdash; watermark "
                            f"generation_id {gen.payload.generation_id if gen.payload else 'NONE'} &mdash; {path}")
            display(HTML(video_html(path, 384)))
        run(fn)

    def on_compare(_):
        def fn():
            img, aud, controls = inputs()
            status.value = "generating three emotions..."
            values = ["neutral", "happy=0.9", "sad=0.9"]
            paths = compare(talker, img, aud, out_dir, "emotion", values, progress=progress,
                            **{k: v for k, v in controls.items() if k != "emotion"})
            status.value = "same audio and seed, three emotions"
            display(HTML(side_by_side(paths, ["neutral", "happy", "sad"])))
        run(fn)

    go.on_click(on_generate)
    cmp_btn.on_click(on_compare)
    left = W.VBox([W.HTML("<b>Portrait</b>"), portrait, portrait_up, W.HTML("<b>Speech</b>"), speech, speech_up,
                   text, W.HBox([voice, language])])
    right = W.VBox([W.HTML("<b>Controls</b>"), yaw, pitch, distance, W.HBox([emotion, intensity]), cfg_a, cfg_g,
                    steps, seed])
    return W.VBox([W.HBox([left, right]), W.HBox([go, cmp_btn]), bar, status, out])
