"""Real-video ingestion (``vasa.ingest``) on constructed videos: rendered heads written as mp4.

Covers tracking (a face that leaves and re-enters, two faces, a scene cut), labels against known
poses (a rendered yaw sweep), resampling (30 fps / 44.1 kHz in, 25 fps / 16 kHz out, A/V offset 0),
resume, sharding, bad inputs with their skip reasons, dataset layouts, and the CLI.
"""

import json

import av
import numpy as np
import pytest

from vasa.cli import main
from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.ingest import ingest
from vasa.ingest.discover import discover, layout_labels, parse_shard, shard_items
from vasa.ingest.labels import emotion_condition, euler_from_matrix
from vasa.io.video import write_mp4
from vasa.synth.identity import sample_identity
from vasa.synth.mesh import rotation
from vasa.synth.params import PARAM_INDEX as I, neutral_params
from vasa.synth.render import HeadRenderer

FAST = dict(min_frames=15, workers=1, progress=False, align=False)


def _renderer(seed: int, res: int = 128) -> HeadRenderer:
    return HeadRenderer(sample_identity(np.random.default_rng(seed)), resolution=res, supersample=1)


def _speechlike(n_frames: int, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(n_frames / 25 * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _canvas(h: int, w: int, value: int = 60) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _leave_reenter(path):
    """Frames 0-29 face, 30-44 empty, 45-79 face again."""
    r = _renderer(1)
    frames = []
    for k in range(80):
        c = _canvas(160, 256, 50)
        if not 30 <= k < 45:
            p = neutral_params()
            p[I["yaw"]] = 10 * np.sin(k / 8)
            c[16:144, 64 + (k % 5):192 + (k % 5)] = r.render(p)
        frames.append(c)
    write_mp4(path, np.stack(frames), audio=_speechlike(80))


def _two_faces(path):
    """Frames 0-39: two equally large faces (ambiguous); 40-79: face A large, face B small."""
    a, b, b_small = _renderer(2), _renderer(3), _renderer(3, 64)
    fa, fb, fbs = (x.render(neutral_params()) for x in (a, b, b_small))
    frames = []
    for k in range(80):
        c = _canvas(128, 320, 40)
        c[:, 16:144] = fa
        if k < 40:
            c[:, 176:304] = fb
        else:
            c[32:96, 208:272] = fbs
        frames.append(c)
    write_mp4(path, np.stack(frames), audio=_speechlike(80, seed=1))


def _scene_cut(path):
    """Two shots of different people at the same place: 0-39 and 40-79."""
    a, b = _renderer(4), _renderer(5)
    fa, fb = a.render(neutral_params()), b.render(neutral_params())
    frames = [fa if k < 40 else fb for k in range(80)]
    write_mp4(path, np.stack(frames), audio=_speechlike(80, seed=2))


YAWS = np.linspace(-30, 30, 50)


def _yaw_sweep(path):
    r = _renderer(6)
    frames = []
    for y in YAWS:
        p = neutral_params()
        p[I["yaw"]] = y
        frames.append(r.render(p))
    write_mp4(path, np.stack(frames), audio=_speechlike(len(YAWS), seed=3))


FLASH_SRC_FRAME = 36  # t = 1.2 s at 30 fps = frame 30 at 25 fps


def _resample_source(path):
    """30 fps, 44.1 kHz, a white square at source frame 36 and a click at the same instant."""
    r = _renderer(7)
    face = r.render(neutral_params())
    frames = []
    for j in range(75):  # 2.5 s
        f = face.copy()
        if j == FLASH_SRC_FRAME:
            f[56:72, 110:124] = 255
        frames.append(f)
    sr = 44100
    audio = _speechlike(int(2.5 * 25), sr, seed=4) * 0.3
    t_click = int(FLASH_SRC_FRAME / 30 * sr)
    audio[t_click:t_click + int(0.004 * sr)] = 0.95
    write_mp4(path, np.stack(frames), fps=30, audio=audio, sr=sr)


SPOKEN = "hello world this is a short test"


def _spoken(path):
    """A talking head with real (synthesised) speech and its transcript next to it."""
    from vasa.synth.speech import synthesize

    utt = synthesize(SPOKEN, "en", "m1", lead_s=0.3, tail_s=0.3)
    n = len(utt.audio) // 640
    face = _renderer(8).render(neutral_params())
    write_mp4(path, np.stack([face] * n), audio=utt.audio[:n * 640])
    path.with_suffix(".txt").write_text(SPOKEN + "\n")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    src = tmp_path_factory.mktemp("ingest_src")
    _leave_reenter(src / "leave_reenter.mp4")
    _two_faces(src / "two_faces.mp4")
    _scene_cut(src / "scene_cut.mp4")
    _yaw_sweep(src / "yaw_sweep.mp4")
    _resample_source(src / "resample.mp4")
    _spoken(src / "spoken.mp4")
    out = tmp_path_factory.mktemp("ingest_out") / "o"
    stats = ingest(src, out, **dict(FAST, align=True))
    return src, out, stats


def _clips(out, name):
    c = Corpus(out)
    return sorted((r for r in c.records() if r["source"]["path"] == name), key=lambda r: r["source"]["start_frame"])


def test_corpus_format(ingested):
    _, out, stats = ingested
    c = Corpus(out)
    assert stats["clips"] == len(c.records()) >= 6
    for name in ("manifest.jsonl", "schema.json", "stats.json", "skipped.json", "settings.json"):
        assert (out / name).is_file()
    assert c.schema["fps"] == 25 and c.schema["sample_rate"] == 16000 and c.schema["resolution"] == 128
    r = c.records()[0]
    clip = c.load_clip(r["id"])
    assert clip.frames.shape[1:] == (128, 128, 3) and clip.params.shape == (len(clip.frames), len(c.param_names))
    assert len(clip.audio) == 640 * len(clip.frames)
    assert r["kind"] == "speech" and r["split"] in ("train", "val", "test")
    assert (out / r["video"]).is_file()
    assert np.isnan(clip.params[:, I["tx"]]).all() and np.isfinite(clip.params[:, I["yaw"]]).mean() > 0.9
    for rec in c.records():  # splits are a function of the identity
        assert rec["split"] == [x for x in c.records() if x["identity"] == rec["identity"]][0]["split"]


def test_face_leaves_and_reenters(ingested):
    _, out, _ = ingested
    clips = _clips(out, "leave_reenter.mp4")
    assert len(clips) == 2
    (a, b) = clips
    assert a["source"]["start_frame"] == 0 and 28 <= a["source"]["stop_frame"] <= 31
    assert 44 <= b["source"]["start_frame"] <= 46 and b["source"]["stop_frame"] == 80


def test_two_faces_keep_main_speaker_only(ingested):
    _, out, _ = ingested
    clips = _clips(out, "two_faces.mp4")
    assert len(clips) == 1
    assert 39 <= clips[0]["source"]["start_frame"] <= 41  # the equal-size half is ambiguous: dropped
    status = json.loads(next(p for p in (out / "status").glob("*.json")
                             if json.loads(p.read_text())["path"] == "two_faces.mp4").read_text())
    assert status["dropped"]["multiple faces"] >= 38
    frame = Corpus(out).load_clip(clips[0]["id"]).frames[5]
    assert frame.shape == (128, 128, 3)


def test_scene_cut_splits_clips(ingested):
    _, out, _ = ingested
    clips = _clips(out, "scene_cut.mp4")
    assert [(r["source"]["start_frame"], r["source"]["stop_frame"]) for r in clips] == [(0, 40), (40, 80)]


def test_yaw_sweep_labels(ingested):
    _, out, _ = ingested
    (r,) = _clips(out, "yaw_sweep.mp4")
    p = Corpus(out).params(r["id"])
    est = p[:, I["yaw"]]
    truth = YAWS[r["source"]["start_frame"]:r["source"]["stop_frame"]]
    ok = np.isfinite(est)
    assert ok.mean() > 0.9
    assert np.median(np.abs(est[ok] - truth[ok])) < 5.0
    assert np.corrcoef(est[ok], truth[ok])[0, 1] > 0.98
    assert np.median(np.abs(p[ok, I["roll"]])) < 5.0
    assert 0.8 < r["conditions"]["distance"] < 1.25  # a nominal-distance head


def test_resampling_and_av_sync(ingested):
    src, out, _ = ingested
    with av.open(str(src / "resample.mp4")) as cont:
        assert round(float(cont.streams.video[0].average_rate)) == 30 and cont.streams.audio[0].rate == 44100
    (r,) = _clips(out, "resample.mp4")
    assert r["source"]["src_fps"] == 30.0
    clip = Corpus(out).load_clip(r["id"])
    assert 60 <= len(clip.frames) <= 63  # 2.5 s at 25 fps
    fr = clip.frames.astype(np.float32)
    change = [np.abs(fr[k] - 0.5 * (fr[k - 1] + fr[k + 1])).mean() for k in range(1, len(fr) - 1)]
    flash = int(np.argmax(change)) + 1 + r["source"]["start_frame"]
    click = int(np.argmax(np.abs(clip.audio))) // 640 + r["source"]["start_frame"]
    assert flash == 30 and click == flash  # 25 fps frame 30 = 1.2 s; A/V offset 0 frames


def test_transcript_is_aligned(ingested):
    _, out, _ = ingested
    (r,) = _clips(out, "spoken.mp4")
    assert r["text"] == SPOKEN and r["phone_set"] == "arpabet"
    phones = [p for _, _, p in r["phonemes"]]
    assert phones[:4] == ["HH", "AH", "L", "OW"] or phones[:4] == ["HH", "EH", "L", "OW"]
    assert all(0 <= a < b <= r["duration"] + 1e-6 for a, b, _ in r["phonemes"])


def test_discover_layouts_and_emotions(tmp_path):
    assert layout_labels("id00012/21Uxsk56VDQ/00001.mp4") == dict(identity="id00012", dataset="voxceleb2")
    assert layout_labels("WRA_AdamSchiff_000.mp4") == dict(identity="WRA_AdamSchiff", dataset="hdtf")
    mead = layout_labels("M003/video/front/happy/level_2/001.mp4")
    assert mead["identity"] == "M003" and mead["emotion"] == "happy" and abs(mead["emotion_intensity"] - 2 / 3) < 1e-3
    rav = layout_labels("Actor_01/01-01-05-02-01-01-01.mp4")
    assert rav == dict(identity="ravdess_01", dataset="ravdess", emotion="angry", emotion_intensity=1.0)
    assert layout_labels("alice/talk1.mkv") == dict(identity="alice", dataset="folder")
    assert emotion_condition("angry", 1.0) == ("angry", 1.0)
    assert emotion_condition("calm", 0.5) == ("neutral", 0.0)
    assert emotion_condition("fearful", 1.0) is None and emotion_condition(None, None) is None
    # folder + CSV discovery, transcripts, hidden files
    (tmp_path / "v" / "bob").mkdir(parents=True)
    (tmp_path / "v" / "bob" / "a.mp4").write_bytes(b"x")
    (tmp_path / "v" / "bob" / "a.txt").write_text("hello world\n")
    (tmp_path / "v" / "bob" / ".hidden.mp4").write_bytes(b"x")
    (tmp_path / "v" / "bob" / "notes.wav").write_bytes(b"x")
    items = discover(tmp_path / "v")
    assert [(i.rel, i.identity, i.text) for i in items] == [("bob/a.mp4", "bob", "hello world")]
    (tmp_path / "list.csv").write_text("path,identity,emotion\nv/bob/a.mp4,robert,sad\n")
    (it,) = discover(tmp_path / "list.csv")
    assert (it.identity, it.emotion, it.text) == ("robert", "sad", "hello world")
    (tmp_path / "bad.csv").write_text("file\nx.mp4\n")
    with pytest.raises(VasaError, match="'path' column"):
        discover(tmp_path / "bad.csv")


def test_shard_partition_and_euler():
    from vasa.ingest.discover import VideoItem

    items = [VideoItem(path=f"/x/{k}.mp4", rel=f"{k}.mp4", identity="a", dataset="folder") for k in range(50)]
    parts = [shard_items(items, i, 3) for i in range(3)]
    assert sorted(x.rel for p in parts for x in p) == sorted(x.rel for x in items) and all(parts)
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "a/b", "1/0"):
        with pytest.raises(VasaError):
            parse_shard(bad)
    for ypr in ((20.0, -10.0, 5.0), (-35.0, 15.0, -12.0)):
        np.testing.assert_allclose(euler_from_matrix(rotation(*ypr).astype(np.float64)), ypr, atol=1e-4)


def _small_videos(folder, n=3):
    for k in range(n):
        r = _renderer(20 + k, 96)
        frames = []
        for t in range(24):
            p = neutral_params()
            p[I["yaw"]] = 15 * np.sin(t / 5 + k)
            frames.append(r.render(p))
        write_mp4(folder / f"spk{k}" / f"v{k}.mp4", np.stack(frames), audio=_speechlike(24, seed=k))


def test_sharding_union_equals_full_run_and_resume(tmp_path):
    src = tmp_path / "src"
    _small_videos(src)
    opts = dict(FAST, min_frames=10, resolution=96)
    full = ingest(src, tmp_path / "full", **opts)
    a = ingest(src, tmp_path / "parts", shard="0/2", **opts)
    b = ingest(src, tmp_path / "parts", shard="1/2", **opts)
    assert a["run"]["processed"] + b["run"]["processed"] == 3 and full["clips"] == b["clips"] == 3
    man = lambda d: (d / "manifest.jsonl").read_text()  # noqa: E731
    assert man(tmp_path / "full") == man(tmp_path / "parts")
    for r in Corpus(tmp_path / "full").records():
        np.testing.assert_array_equal(Corpus(tmp_path / "full").params(r["id"]),
                                      Corpus(tmp_path / "parts").params(r["id"]))
    # resume: nothing is redone; a lost status mark redoes exactly that video
    statuses = sorted((tmp_path / "parts" / "status").glob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in statuses]
    assert ingest(src, tmp_path / "parts", **opts)["run"]["processed"] == 0
    assert [p.stat().st_mtime_ns for p in statuses] == mtimes
    statuses[0].unlink()
    again = ingest(src, tmp_path / "parts", **opts)
    assert again["run"]["processed"] == 1 and man(tmp_path / "full") == man(tmp_path / "parts")
    with pytest.raises(VasaError, match="other settings"):
        ingest(src, tmp_path / "parts", **dict(opts, resolution=128))


def test_bad_inputs_are_skipped_with_reasons(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    face = _renderer(30, 96).render(neutral_params())
    frames = np.stack([face] * 20)
    good = write_mp4(src / "good.mp4", frames, audio=_speechlike(20))
    (src / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (src / "truncated.mp4").write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    write_mp4(src / "no_audio.mp4", frames)
    write_mp4(src / "audio_only.mp4", None, audio=_speechlike(25))
    write_mp4(src / "no_face.mp4", np.stack([_canvas(96, 96, 80 + k) for k in range(20)]), audio=_speechlike(20))
    write_mp4(src / "one_frame.mp4", frames[:1], audio=_speechlike(1))
    stats = ingest(src, tmp_path / "out", **dict(FAST, min_frames=10, resolution=96))
    rep = json.loads((tmp_path / "out" / "skipped.json").read_text())
    reasons = {s["path"]: s["reason"] for s in rep["skipped"]}
    assert reasons == {"garbage.mp4": "unreadable", "truncated.mp4": "unreadable", "no_audio.mp4": "no audio stream",
                       "audio_only.mp4": "no video stream", "no_face.mp4": "no face", "one_frame.mp4": "too short"}
    assert stats["clips"] == 1 and stats["inputs"]["skipped"] == 6


def test_cli_ingest(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vasa: error: video source not found") and err.count("\n") == 1
    assert main(["ingest", str(tmp_path), "--out", str(tmp_path / "o"), "--shard", "2/2"]) == 2
