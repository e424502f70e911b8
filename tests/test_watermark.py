"""Watermark, provenance and detection: round trips, attacks, null, tampering, the research flag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vasa.cli import main as cli_main
from vasa.errors import VasaError
from vasa.io.video import read_mp4, write_mp4
from vasa.synth.identity import sample_identity
from vasa.synth.params import PARAM_INDEX, neutral_params
from vasa.synth.render import HeadRenderer
from vasa.watermark import Payload, Watermarker, attacks, codec, resolve_watermarker
from vasa.watermark.detect import decide, detect_file
from vasa.watermark.embed import psnr
from vasa.watermark.extract import extract_frames
from vasa.watermark.pattern import KeyedPattern, frame_pattern
from vasa.watermark.provenance import Provenance, read_provenance

PAYLOAD = Payload(model_id=41, generation_id=3_141_592_653)


def _talking_head(n: int = 50, seed: int = 0) -> np.ndarray:
    """A rendered head that sways and talks (128 px), n frames at 25 fps."""
    r = HeadRenderer(sample_identity(np.random.default_rng([seed, 7])), resolution=128)
    frames = []
    for i in range(n):
        p = neutral_params()
        p[PARAM_INDEX["yaw"]] = 12.0 * np.sin(i / 9.0)
        p[PARAM_INDEX["pitch"]] = 4.0 * np.sin(i / 13.0)
        p[PARAM_INDEX["jaw"]] = 0.5 + 0.5 * np.sin(i / 2.5)
        frames.append(r.render(p))
    return np.stack(frames)


@pytest.fixture(scope="module")
def clip512() -> tuple[np.ndarray, np.ndarray]:
    """(original, marked and written at CRF 18) 512 x 512, 2 s."""
    frames = attacks.resize(_talking_head(), 4.0)
    marked = Watermarker(PAYLOAD).mark_frames(frames)
    return frames, attacks.h264(marked, 18)


@pytest.fixture()
def dev_key(tmp_path, monkeypatch):
    monkeypatch.setenv("VASA_C2PA_DEV_DIR", str(tmp_path / "devkey"))
    monkeypatch.delenv("VASA_C2PA_CERT", raising=False)
    monkeypatch.delenv("VASA_C2PA_KEY", raising=False)
    return tmp_path / "devkey"


def test_codec_round_trip_and_crc():
    word = codec.pack(PAYLOAD)
    assert codec.unpack(word) == (PAYLOAD, True)
    coded = codec.encode(PAYLOAD)
    assert coded.shape == (codec.CODED_BITS,)
    noisy = (2.0 * coded - 1.0) + np.random.default_rng(0).normal(0, 0.7, coded.shape)
    noisy[::12] *= -1                                   # 18 scattered channel errors on top of the noise
    p, ok, _ = codec.decode(noisy)
    assert ok and p == PAYLOAD
    tampered = word.copy()
    tampered[5] ^= 1                                    # a flipped payload bit fails the CRC
    assert codec.unpack(tampered)[1] is False
    with pytest.raises(VasaError):
        Payload(model_id=70000, generation_id=0)


def test_pattern_is_keyed_and_periodic():
    a, b = KeyedPattern.from_key("k1"), KeyedPattern.from_key("k2")
    assert not np.array_equal(a.sync, b.sync)
    w = frame_pattern(a, codec.encode(PAYLOAD), 128, 128)
    assert abs(float(np.sqrt(np.mean(w * w))) - 1.0) < 1e-3
    assert np.allclose(w[:64], w[64:])                  # 64-px tiles at 128 px


def test_imperceptible_and_round_trip_128():
    frames = _talking_head()
    marked = Watermarker(PAYLOAD).mark_frames(frames)
    assert psnr(marked, frames) >= 40.0
    e = extract_frames(marked)
    assert e.crc_ok and e.payload == PAYLOAD and decide(e)["found"]


def test_round_trip_256_through_h264():
    frames = attacks.resize(_talking_head(), 2.0)
    e = extract_frames(attacks.h264(Watermarker(PAYLOAD).mark_frames(frames), 23))
    assert e.crc_ok and e.payload == PAYLOAD and decide(e)["found"]


def test_psnr_512(clip512):
    frames, _ = clip512
    assert psnr(Watermarker(PAYLOAD).mark_frames(frames[:5]), frames[:5]) >= 40.0


@pytest.mark.parametrize("attack", [a for a in attacks.ATTACKS if a != "none"] + ["none"])
def test_survives_attack_512(clip512, attack):
    _, written = clip512
    e = extract_frames(attacks.apply(attack, written, seed=3))
    d = decide(e)
    assert d["found"], e.as_dict()
    assert d["payload_valid"] and e.payload == PAYLOAD, e.as_dict()


def test_unmarked_not_flagged(clip512):
    frames, _ = clip512
    for clip in (attacks.h264(frames, 18), attacks.h264(_talking_head(seed=5), 23)):
        e = extract_frames(clip)
        assert not decide(e)["found"], e.as_dict()


def test_wrong_key_finds_nothing(clip512):
    _, written = clip512
    assert not decide(extract_frames(written, key="someone-else"))["found"]


def test_tampered_payload_reported_invalid():
    """A mark whose word fails its CRC is decoded but never reported as a valid payload."""
    frames = attacks.resize(_talking_head(seed=2), 4.0)
    word = codec.pack(PAYLOAD)
    word[3] ^= 1
    wm = Watermarker(PAYLOAD, coded=codec.conv_encode(word))
    e = extract_frames(attacks.h264(wm.mark_frames(frames), 18))
    d = decide(e)
    assert not d["payload_valid"] and not e.crc_ok
    assert e.sync_z > 6.0  # the mark itself is plainly there


def test_write_mp4_marks_tags_and_signs(tmp_path, dev_key):
    frames = attacks.resize(_talking_head(n=55), 2.0)
    audio = np.zeros(55 * 640, np.float32)
    wm = Watermarker(PAYLOAD, provenance=Provenance("test-model"))
    path = write_mp4(tmp_path / "gen.mp4", frames, audio=audio, watermark=wm)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporaries left
    prov = read_provenance(path)
    assert "AI-generated by vasa" in prov["tag"] and "generation_id 3141592653" in prov["tag"]
    c2 = prov["c2pa"]
    assert c2["state"] in ("Valid", "Trusted") and not c2["errors"]
    assert c2["digital_source_type"].endswith("trainedAlgorithmicMedia")
    assert c2["development_key"] and c2["watermark"]["generation_id"] == PAYLOAD.generation_id
    assert (dev_key / "README.txt").is_file()
    d = detect_file(path)
    assert d.found and d.payload_valid and d.extraction.payload == PAYLOAD
    # any modified byte of the media invalidates the manifest (the watermark is still there)
    data = bytearray(path.read_bytes())
    data[data.find(b"mdat") + 1500] ^= 0xFF
    bad = tmp_path / "modified.mp4"
    bad.write_bytes(bytes(data))
    c2 = read_provenance(bad)["c2pa"]
    assert c2["state"] == "Invalid" and c2["errors"]


def test_research_flag_warns_every_time(monkeypatch, capsys):
    monkeypatch.delenv("VASA_DISABLE_WATERMARK", raising=False)
    assert isinstance(resolve_watermarker(PAYLOAD), Watermarker)
    assert capsys.readouterr().err == ""
    for _ in range(2):
        assert resolve_watermarker(PAYLOAD, watermark=False) is None
        assert "watermark DISABLED" in capsys.readouterr().err
    monkeypatch.setenv("VASA_DISABLE_WATERMARK", "I_UNDERSTAND")
    assert resolve_watermarker(PAYLOAD) is None
    assert "watermark DISABLED" in capsys.readouterr().err
    monkeypatch.setenv("VASA_DISABLE_WATERMARK", "1")
    with pytest.raises(VasaError, match="I_UNDERSTAND"):
        resolve_watermarker(PAYLOAD)


def test_cli_detect_exit_codes(tmp_path, capsys, dev_key):
    frames = attacks.resize(_talking_head(), 2.0)
    marked = write_mp4(tmp_path / "m.mp4", frames, watermark=Watermarker(PAYLOAD, provenance=Provenance("t")))
    plain = write_mp4(tmp_path / "p.mp4", frames)
    assert cli_main(["detect", str(marked)]) == 0
    out = capsys.readouterr().out
    assert "WATERMARK FOUND" in out and "generation_id=3141592653" in out and "C2PA" in out
    assert cli_main(["detect", str(marked), str(plain)]) == 1
    assert "no watermark" in capsys.readouterr().out
    assert cli_main(["detect", "--json", str(marked)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["payload"] == PAYLOAD.as_dict() and rows[0]["provenance"]["c2pa"]["state"] in ("Valid", "Trusted")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert cli_main(["detect", str(tmp_path / "junk.mp4"), str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("vasa: error:") for line in err)
    assert read_mp4(plain)[0].shape[0] == 50
