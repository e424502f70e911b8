"""Generation API (vasa.talker) on a tiny random bundle: determinism, streaming == offline, batch == single,
inputs (crop / paste, audio formats, controls), reenactment, watermark + provenance in every output path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from vasa.errors import VasaError

sys.path.insert(0, str(Path(__file__).parent))
from _talker_fixtures import FAST, PHOTO, PORTRAIT, _one_thread_and_dev_key, speech, talker, tiny_bundle  # noqa: E402,F401

GID = 123_456_789
pytestmark = pytest.mark.filterwarnings("ignore:output .* the invisible watermark is robust")


@pytest.fixture(scope="module")
def offline(talker, speech):
    return talker.generate(PORTRAIT, speech, resolution=64, generation_id=GID, **FAST)


def test_generate_shapes_and_same_seed_same_frames(talker, speech, offline):
    assert offline.frames.shape == (55, 64, 64, 3) and offline.frames.dtype == np.uint8
    assert offline.z_pose.shape == (55, 6) and offline.z_dyn.shape == (55, 8)
    assert len(offline.audio) == 55 * 640 and offline.payload.generation_id == GID
    again = talker.generate(PORTRAIT, speech, resolution=64, generation_id=GID, **FAST)
    assert np.array_equal(again.frames, offline.frames)
    other = talker.generate(PORTRAIT, speech, resolution=64, generation_id=GID, steps=2, seed=1)
    assert not np.array_equal(other.z_dyn, offline.z_dyn)


@pytest.mark.parametrize("chunk_ms", [40, 120, 200])
def test_streaming_equals_offline(talker, speech, offline, chunk_ms):
    n = 16 * chunk_ms
    chunks = (speech[s:s + n] for s in range(0, len(speech), n))
    frames = list(talker.stream(chunks, image=PORTRAIT, resolution=64, generation_id=GID, **FAST))
    assert np.array_equal(np.stack(frames), offline.frames)


def test_hop_stream_equals_generate_and_starts_sooner(talker, speech, offline):
    from vasa.talker.live import simulate_stream

    gen = talker.generate(PORTRAIT, speech, resolution=64, generation_id=GID, hop=8, **FAST)
    assert gen.frames.shape == offline.frames.shape and not np.array_equal(gen.z_dyn, offline.z_dyn)
    chunks = (speech[s:s + 1280] for s in range(0, len(speech), 1280))
    frames = list(talker.stream(chunks, image=PORTRAIT, resolution=64, generation_id=GID, hop=8, **FAST))
    assert np.array_equal(np.stack(frames), gen.frames)
    la = talker.bundle.audio.cfg.lookahead
    assert talker.stream_latency_frames(8) == 8 + la < talker.latency_frames == talker.bundle.motion.cfg.window + la
    s = simulate_stream(talker, PORTRAIT, speech, chunk_ms=80, realtime=False, resolution=64, hop=8, **FAST)
    assert s["frames"] == 55 and s["algorithmic_latency_s"] == pytest.approx((8 + la) / 25 + 0.0075)


def test_stream_resamples_other_rates(talker, speech):
    from vasa.talker.inputs import resample

    a44 = resample(speech, 16000, 44100)
    frames = list(talker.stream([a44[:4410], a44[4410:]], image=PORTRAIT, sr=44100, resolution=64, **FAST))
    assert abs(len(frames) - 55) <= 1


def test_silence_runs(talker):
    gen = talker.generate(PORTRAIT, np.zeros(16000, np.float32), resolution=64, watermark=True, **FAST)
    assert gen.frames.shape[0] == 25 and np.isfinite(gen.z_dyn).all()


def test_batch_equals_single(talker, speech, offline, tmp_path):
    from vasa.talker.batch import read_batch, run_batch

    sf.write(tmp_path / "a.wav", speech, 16000)
    sf.write(tmp_path / "b.wav", speech[:16000], 16000)
    (tmp_path / "pairs.csv").write_text(f"image,audio,seed\n{PORTRAIT},a.wav,0\n{PORTRAIT},b.wav,1\n")
    items = read_batch(tmp_path / "pairs.csv")
    assert [i.audio.name for i in items] == ["a.wav", "b.wav"] and items[1].controls == {"seed": 1}
    res = run_batch(talker, items, tmp_path / "out", keep_frames=True, resolution=64, generation_id=GID, steps=2)
    assert all(r["ok"] for r in res) and (tmp_path / "out" / "a.mp4").is_file()
    assert np.array_equal(res[0]["generation"].frames, offline.frames)
    single_b = talker.generate(PORTRAIT, tmp_path / "b.wav", resolution=64, generation_id=GID, steps=2, seed=1)
    assert np.array_equal(res[1]["generation"].frames, single_b.frames)


def test_mp4_video_audio_durations_watermark_provenance(talker, speech, tmp_path):
    """Default 512 px output: marked (payload intact, also after a CRF 28 re-encode), tagged, signed."""
    from vasa.io.video import read_mp4, write_mp4
    from vasa.watermark import attacks
    from vasa.watermark.detect import detect_file

    out = tmp_path / "gen.mp4"
    gen = talker.generate(PHOTO, speech, out=out, motion_out=tmp_path / "motion.json", **FAST)
    assert gen.frames is None and gen.path == out
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, a.codec_context.name) == ("h264", "aac")
        assert (v.codec_context.width, v.codec_context.height) == (512, 512) and float(v.average_rate) == 25
        dv, da = float(v.duration * v.time_base), float(a.duration * a.time_base)
    assert abs(dv - 55 / 25) < 0.05 and abs(da - dv) < 0.1, (dv, da)
    d = detect_file(out)
    assert d.found and d.payload_valid and d.extraction.payload == gen.payload
    assert "AI-generated by vasa" in d.provenance["tag"] and d.provenance["c2pa"]["state"] in ("Trusted", "Valid")
    frames, audio, _ = read_mp4(out)
    write_mp4(tmp_path / "crf28.mp4", attacks.h264(frames, 28), audio=audio)
    d28 = detect_file(tmp_path / "crf28.mp4", provenance=False)
    assert d28.found and d28.extraction.payload == gen.payload
    m = json.loads((tmp_path / "motion.json").read_text())
    assert m["frames"] == 55 and len(m["z_pose"][0]) == 6 and m["controls"]["steps"] == 2


def test_research_flag_warns_and_paste_keeps_the_photo(talker, speech, monkeypatch, capsys):
    from vasa.talker.inputs import even_size

    monkeypatch.setenv("VASA_DISABLE_WATERMARK", "I_UNDERSTAND")
    gen = talker.generate(PHOTO, speech[:8000], paste=True, **FAST)
    assert "watermark DISABLED" in capsys.readouterr().err and gen.payload is None
    photo = even_size(np.asarray(__import__("PIL.Image").Image.open(PHOTO).convert("RGB")))
    assert gen.frames.shape[1:] == photo.shape
    changed = np.any(gen.frames[0] != photo, axis=-1)
    ys, xs = np.nonzero(changed)
    cx, cy, side = talker.portrait(PHOTO).square
    assert xs.min() >= cx - side / 2 - 2 and xs.max() <= cx + side / 2 + 2  # only the face square changed
    assert ys.min() >= cy - side / 2 - 2 and ys.max() <= cy + side / 2 + 2


def test_crop_paste_round_trip():
    """The crop of `prepare` pasted back: the image is unchanged outside the square and matches inside."""
    from vasa.ingest.crop import crop
    from vasa.talker.inputs import paste_back, prepare_portrait

    p = prepare_portrait(PHOTO, 128)
    cx, cy, side = p.square
    assert p.face.shape == (128, 128, 3) and 100 < side < 300
    assert np.array_equal(p.face, crop(p.image, cx, cy, side, 128))
    sq = (float(round(cx)), float(round(cy)), float(2 * round(side / 2)))  # pixel-aligned: resampling is exact
    face = crop(p.image, *sq, int(sq[2]))
    back = paste_back(p.image, face, sq)
    x0, y0, s = int(sq[0] - sq[2] / 2), int(sq[1] - sq[2] / 2), int(sq[2])
    inside = np.zeros(p.image.shape[:2], bool)
    inside[y0:y0 + s, x0:x0 + s] = True
    assert np.array_equal(back[~inside], p.image[~inside])
    assert np.abs(back.astype(int) - p.image.astype(int))[inside].max() <= 1
    model_size = paste_back(p.image, p.face, p.square)  # the 128 px crop, upscaled back: close, not exact
    assert np.abs(model_size.astype(int) - p.image.astype(int))[inside].mean() < 4


def test_portrait_errors_and_no_crop(tmp_path):
    from vasa.talker.inputs import load_image, prepare_portrait

    flat = tmp_path / "flat.png"
    __import__("cv2").imwrite(str(flat), np.full((200, 300, 3), 128, np.uint8))
    with pytest.raises(VasaError, match="no face found.*--no-crop"):
        prepare_portrait(flat, 64)
    p = prepare_portrait(flat, 64, crop=False)
    assert p.face.shape == (64, 64, 3) and p.square is None
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(VasaError, match="cannot read image"):
        load_image(tmp_path / "bad.jpg")
    rgba = np.zeros((32, 32, 4), np.uint8)
    assert load_image(rgba).shape == (32, 32, 3) and load_image(np.zeros((20, 20))).shape == (20, 20, 3)


def test_several_faces_warns_and_uses_the_largest():
    from vasa.talker.inputs import prepare_portrait

    img = np.asarray(__import__("PIL.Image").Image.open(PHOTO).convert("RGB"))
    small = __import__("cv2").resize(img, (400, 400))
    canvas = np.full((600, 1000, 3), 255, np.uint8)
    canvas[40:552, 460:972] = img
    canvas[100:500, 20:420] = small
    with pytest.warns(UserWarning, match="2 faces found.*largest"):
        p = prepare_portrait(canvas, 64)
    assert p.square[0] > 560 and p.faces_found == 2  # the big one, on the right


def test_audio_formats_rates_channels(tmp_path, speech):
    from vasa.io.video import write_mp4
    from vasa.talker.inputs import load_audio, resample

    st = np.stack([resample(speech, 16000, 44100)] * 2, axis=1)
    sf.write(tmp_path / "stereo44.flac", st, 44100)
    a = load_audio(tmp_path / "stereo44.flac")
    assert abs(len(a) - len(speech)) <= 2 and np.corrcoef(a[:len(speech) - 2], speech[:len(speech) - 2])[0, 1] > 0.99
    write_mp4(tmp_path / "voice.m4a.mp4", None, audio=speech)  # AAC: read through PyAV
    assert abs(len(load_audio(tmp_path / "voice.m4a.mp4")) - len(speech)) < 2048
    assert len(load_audio((st, 44100))) == len(a)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(VasaError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(VasaError, match="cannot read audio"):
        load_audio(tmp_path / "junk.wav")


def test_controls_ranges():
    from vasa.talker.inputs import Controls, parse_emotion

    ok = Controls.build(max_steps=50, gaze="10,-5", distance=1.2, emotion="happy=0.6,sad=0.2", steps=10)
    assert ok.gaze == (10.0, -5.0) and ok.emotion_vector[-1] == pytest.approx(0.8)
    assert parse_emotion("neutral").sum() == 0 and parse_emotion(None) is None
    for kw, msg in [(dict(gaze="45,0"), r"gaze yaw must be in \[-30, 30\]"),
                    (dict(gaze=(0, -40)), r"gaze pitch must be in \[-25, 25\]"),
                    (dict(distance=3.0), r"distance must be in \[0.5, 2\]"),
                    (dict(emotion="joyful"), "unknown emotion 'joyful'"),
                    (dict(emotion="happy=0.8,sad=0.5"), "sum to at most 1"),
                    (dict(steps=0), r"steps must be an integer in \[1, 50\]"),
                    (dict(steps=51), r"\[1, 50\]"), (dict(cfg_audio=-1), r"cfg_audio must be in \[0, 10\]"),
                    (dict(seed=-3), "seed"), (dict(sampler="euler"), "unknown sampler"),
                    (dict(hop=0), r"hop must be an integer number of frames in \[1, 20\]"), (dict(hop=21), "hop"),
                    (dict(colour="red"), "unknown control")]:
        with pytest.raises(VasaError, match=msg):
            Controls.build(max_steps=50, max_hop=20, **kw)


def test_reenact_is_the_latent_composition(talker, tmp_path):
    import torch

    from vasa.data.frames import to_tensor
    from vasa.io.video import read_mp4, write_mp4

    rng = np.random.default_rng(0)
    drv = np.clip(rng.normal(128, 30, (10, 64, 64, 3)), 0, 255).astype(np.uint8)
    write_mp4(tmp_path / "drv.mp4", drv, audio=np.zeros(10 * 640, np.float32))
    gen = talker.reenact(PORTRAIT, tmp_path / "drv.mp4", parts=["pose"], driver_crop=False, resolution=None,
                         watermark=True, keep_frames=True, out=tmp_path / "re.mp4")
    assert gen.frames.shape == (10, 64, 64, 3) and (tmp_path / "re.mp4").is_file()
    decoded, _, _ = read_mp4(tmp_path / "drv.mp4")
    src = to_tensor(talker.portrait(PORTRAIT).face)[None]
    with torch.no_grad():
        ref = talker.bundle.latent.reenact(src, to_tensor(decoded[3])[None], parts=("pose",))
    ref = ((ref.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()
    mark = np.abs(gen.frames[3].astype(int) - ref.astype(int))
    assert mark.mean() < 4  # equal up to the watermark (PSNR ~41 dB)
    with pytest.raises(VasaError, match="unknown part"):
        talker.reenact(PORTRAIT, tmp_path / "drv.mp4", parts=["jaw"])


def test_simulated_live_stream_figures(talker, speech, tmp_path):
    from vasa.talker.live import simulate_stream

    s = simulate_stream(talker, PORTRAIT, speech, chunk_ms=200, realtime=False, resolution=64,
                        out=tmp_path / "live.mp4", **FAST)
    assert s["frames"] == 55 and s["first_frame_latency_s"] > 0 and s["algorithmic_latency_s"] == pytest.approx(0.7275)
    assert s["compute_fps"] > 0 and (tmp_path / "live.mp4").is_file()


def test_microphone_needs_portaudio():
    from vasa.talker.live import microphone_chunks

    try:
        import sounddevice  # noqa: F401
        pytest.skip("sounddevice works here")
    except OSError:
        pass
    with pytest.raises(VasaError, match="PortAudio"):
        microphone_chunks()


def test_bundle_checks_and_logmel_features(tmp_path, tiny_bundle, speech):
    from vasa.talker import Talker, random_bundle, save_bundle
    from vasa.talker.bundle import describe

    bad = tmp_path / "norm.npz"
    np.savez(bad, pose_mean=np.zeros(3), pose_std=np.ones(3), dyn_mean=np.zeros(8), dyn_std=np.ones(8))
    with pytest.raises(VasaError, match="wrong sizes"):
        save_bundle(tmp_path / "x", tiny_bundle / "latent", tiny_bundle / "audio", tiny_bundle / "motion", bad)
    assert not (tmp_path / "x").exists()
    with pytest.raises(VasaError, match="no model bundle"):
        describe(tmp_path / "missing")
    lm = Talker.from_pretrained(random_bundle(tmp_path / "logmel", seed=1, audio_mode="logmel"), device="cpu")
    assert lm.bundle.audio_mode == "logmel"
    assert lm.generate(PORTRAIT, speech[:9000], resolution=64, steps=1).frames.shape[0] == 15


def test_src_blend_bundle_generates_streams_and_reenacts(tmp_path, speech):
    """A latent model that blends the warped portrait into its output (src_blend) runs every path."""
    import torch

    from vasa.data.frames import to_tensor
    from vasa.latent.model import expand_source
    from vasa.talker import Talker, random_bundle

    t = Talker.from_pretrained(random_bundle(tmp_path / "blend", seed=2, latent_overrides={"src_blend": True}),
                               device="cpu")
    assert t.bundle.latent.cfg.src_blend
    gen = t.generate(PORTRAIT, speech, resolution=64, generation_id=GID, **FAST)
    chunks = (speech[s:s + 1920] for s in range(0, len(speech), 1920))
    frames = list(t.stream(chunks, image=PORTRAIT, resolution=64, generation_id=GID, **FAST))
    assert np.array_equal(np.stack(frames), gen.frames)
    src = to_tensor(t.portrait(PORTRAIT).face)[None]
    lat = t.bundle.latent
    with torch.no_grad():
        V_app, z_id = lat.encode_appearance(src)
        ref = lat.decode(V_app.expand(2, -1, -1, -1, -1), z_id.expand(2, -1), torch.as_tensor(gen.z_pose[:2]),
                         torch.as_tensor(gen.z_dyn[:2]), source=expand_source(lat.encode_source(src), 2))
    ref = ((ref.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(gen.frames[:2].astype(int) - ref.astype(int)).mean() < 4  # equal up to the watermark


def test_quickstart_app_buttons(talker, tmp_path):
    """The notebook's widget app: Generate and Compare write and show videos (buttons clicked in-process)."""
    import ipywidgets as W

    from vasa.talker.ui import quickstart_app

    app = quickstart_app(talker, tmp_path, defaults=dict(resolution=64, steps=1))

    def walk(w):
        yield w
        for c in getattr(w, "children", ()):
            yield from walk(c)

    widgets = list(walk(app))
    buttons = {w.description: w for w in widgets if isinstance(w, W.Button)}
    next(w for w in widgets if isinstance(w, W.Text) and w.description == "text").value = "Hi."  # short: TTS
    buttons["Generate"].click()
    assert (tmp_path / "generated_1.mp4").is_file()
    buttons["Compare 3 emotions"].click()
    assert len(list(tmp_path.glob("compare_emotion_*.mp4"))) == 3
    status = next(w for w in widgets if isinstance(w, W.HTML) and "emotions" in w.value)
    assert "three emotions" in status.value


def test_bundle_half_parts_load_and_decode_alike(tmp_path, tiny_bundle):
    """A part stored as float16 (the shipped latent) loads into float32 modules and decodes as before."""
    import torch
    from safetensors import safe_open

    from vasa.latent.train import load_latent
    from vasa.talker import save_bundle

    out = save_bundle(tmp_path / "h", tiny_bundle / "latent", tiny_bundle / "audio", tiny_bundle / "motion",
                      tiny_bundle / "motion" / "norm.npz", half=("latent",))
    with safe_open(str(out / "latent" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert (out / "latent" / "model.safetensors").stat().st_size < 0.6 * (tiny_bundle / "latent" / "model.safetensors").stat().st_size
    a, b = load_latent(tiny_bundle / "latent"), load_latent(out / "latent")
    assert all(p.dtype == torch.float32 for p in b.parameters())
    x = torch.rand(2, 3, a.cfg.image_size, a.cfg.image_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        d = (a(x, x.flip(0))["recon"] - b(x, x.flip(0))["recon"]).abs()
    assert float(d.mean()) < 1 / 255 and float(d.max()) < 0.05
    assert json.loads((out / "bundle.json").read_text())["float16_parts"] == ["latent"]
    with pytest.raises(VasaError, match="unknown bundle part"):
        save_bundle(tmp_path / "h2", tiny_bundle / "latent", tiny_bundle / "audio", tiny_bundle / "motion",
                    tiny_bundle / "motion" / "norm.npz", half=("decoder",))
