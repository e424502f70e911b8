"""File formats: atomic writes, mp4 with audio, shard round trips."""

import errno
import json

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.io import atomic
from vasa.io.shards import ClipData, Shard, shard_complete, write_shard
from vasa.io.video import read_mp4, write_mp4


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left


def test_disk_errors_are_one_line():
    e = atomic.disk_error("x/y.npz", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(e, VasaError) and "disk full" in str(e) and "x/y.npz" in str(e)
    e = atomic.disk_error("x", OSError(errno.EACCES, "Permission denied"))
    assert "permission denied" in str(e)


def test_remove_stale_temporaries(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".a.npz.x1.npz.tmp").write_bytes(b"")
    (tmp_path / "keep.npz").write_bytes(b"")
    assert atomic.remove_stale_temporaries(tmp_path) == 1
    assert (tmp_path / "keep.npz").exists()


def _frames(t=30, h=64, w=64, seed=0):
    """Smooth moving colour gradients with a disc: image-like content for lossy codecs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    c0, c1 = rng.uniform(40, 215, 3), rng.uniform(-60, 60, 3)
    out = []
    for i in range(t):
        img = c0 + c1 * np.sin(2 * np.pi * (xx + yy + i / t))[..., None]
        disc = (xx - 0.3 - 0.4 * i / t) ** 2 + (yy - 0.5) ** 2 < 0.02
        img[disc] = 255 - c0
        out.append(img)
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def test_mp4_round_trip_has_both_streams_with_matching_duration(tmp_path):
    frames = _frames(50)
    sr = 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * sr) / sr)).astype(np.float32)  # 2.0 s
    path = write_mp4(tmp_path / "a.mp4", frames, fps=25, audio=audio, sr=sr, metadata={"comment": "test"})
    got, got_audio, fps = read_mp4(path)
    assert fps == 25 and got.shape == frames.shape
    assert np.abs(got.astype(int) - frames.astype(int)).mean() < 6  # lossy but close
    assert abs(len(got_audio) / sr - len(frames) / 25) < 0.1  # AAC priming aside, durations match
    # the tone survives: strongest frequency is 220 Hz
    spec = np.abs(np.fft.rfft(got_audio[:sr]))
    assert abs(np.argmax(spec) * sr / sr - 220) <= 2


def test_mp4_rejects_bad_frames(tmp_path):
    with pytest.raises(VasaError, match="even frame sizes"):
        write_mp4(tmp_path / "b.mp4", np.zeros((3, 63, 64, 3), np.uint8))
    with pytest.raises(VasaError, match="uint8"):
        write_mp4(tmp_path / "b.mp4", np.zeros((3, 64, 64, 3), np.float32))
    with pytest.raises(VasaError, match="not found"):
        read_mp4(tmp_path / "missing.mp4")


def test_shard_round_trip(tmp_path):
    clips = []
    for c in range(3):
        t = 10 + c
        clips.append(ClipData(
            record={"id": f"c{c}", "kind": "speech"}, frames=_frames(t, seed=c),
            params=np.random.default_rng(c).normal(size=(t, 5)).astype(np.float32),
            viseme=np.arange(t) % 4, audio=np.linspace(-1, 1, 1600 * (c + 1)).astype(np.float32)))
    path = tmp_path / "shards" / "speech-00000.npz"
    recs = write_shard(path, clips)
    assert shard_complete(path) and [r["index"] for r in recs] == [0, 1, 2]
    sh = Shard(path)
    for c, orig in enumerate(clips):
        got = sh.clip(c)
        assert got.record["id"] == f"c{c}" and got.record["n_frames"] == len(orig.frames)
        np.testing.assert_array_equal(got.params, orig.params)
        np.testing.assert_array_equal(got.viseme, orig.viseme)
        assert np.abs(got.audio - orig.audio).max() < 1e-4  # int16 quantisation
        psnr = 10 * np.log10(255 ** 2 / np.mean((got.frames.astype(float) - orig.frames) ** 2))
        assert psnr > 35  # JPEG quality 95


def test_incomplete_shard_is_detected(tmp_path):
    path = tmp_path / "s.npz"
    write_shard(path, [ClipData({"id": "x"}, _frames(2), np.zeros((2, 1), np.float32))])
    path.with_suffix(".json").unlink()  # crash between the npz and its sidecar
    assert not shard_complete(path)
    with pytest.raises(VasaError, match="incomplete"):
        Shard(path)


def test_mp4_audio_only(tmp_path):
    sr = 16000
    audio = (0.2 * np.sin(2 * np.pi * 300 * np.arange(sr) / sr)).astype(np.float32)
    path = write_mp4(tmp_path / "a.mp4", None, audio=audio, sr=sr)
    with pytest.raises(VasaError, match="no video stream"):
        read_mp4(path)
    with pytest.raises(VasaError, match="frames, audio, or both"):
        write_mp4(tmp_path / "b.mp4", None)
