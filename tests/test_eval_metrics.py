"""The evaluation's measures on constructed cases with known answers (no trained model needed):
dP of a static video is 0, identity of a frame with itself is 1, jitter and the Fréchet distance on
known signals, the SyncNet protocol's arithmetic, confidence intervals, the frame-rate refusal, the
mouth-flap baseline, the official SyncNet's MFCC and layout, and the test-set manifest."""

from __future__ import annotations

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.eval import metrics as M


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """The real astronaut photo cut like a corpus frame (128 px)."""
    from vasa.eval.testsets import astronaut_portrait

    return astronaut_portrait(128)


def test_dp_of_a_static_video_is_zero(portrait):
    from vasa.eval.baselines import static_video
    from vasa.eval.tracks import face_tracks

    tr = face_tracks(static_video(portrait, 10))
    assert tr.detection_rate == 1.0 and tr.meshed.all()
    assert M.pose_change(tr.angles) == 0.0
    assert M.jitter(tr.landmarks) == pytest.approx(0.0, abs=1e-9)
    # a head turning at a known rate: dP is that rate (mean over the three angles)
    ramp = np.stack([np.arange(10) * 0.6, np.zeros(10), np.zeros(10)], 1)
    assert M.pose_change(ramp) == pytest.approx(0.2)
    assert np.isnan(M.pose_change(np.full((5, 3), np.nan)))


def test_identity_of_a_frame_with_itself_is_one(portrait):
    from vasa.eval.identity import DlibFaceEmbedder

    emb = DlibFaceEmbedder()
    assert emb.similarity(portrait, [portrait])[0] == pytest.approx(1.0, abs=1e-5)
    e = emb.embed(portrait)[None]
    assert M.identity_drift(e, e) == pytest.approx(1.0)
    assert M.identity_drift(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == pytest.approx(0.0)


def test_jitter_measures_only_high_frequencies():
    t = np.arange(100) / 25.0
    still = np.zeros((100, 4, 2))
    slow = still + 0.05 * np.sin(2 * np.pi * 2.0 * t)[:, None, None]  # 2 Hz: articulation, not jitter
    fast = still + 0.01 * np.sin(2 * np.pi * 10.0 * t)[:, None, None]  # 10 Hz, amplitude 1 % of face height
    assert M.jitter(still) == pytest.approx(0.0, abs=1e-12)
    assert M.jitter(slow) < 0.05
    assert M.jitter(fast) == pytest.approx(100 * 0.01 / np.sqrt(2), rel=0.02)


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    assert M.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert M.frechet_distance(x, x + np.array([3.0, 0.0, 4.0])) == pytest.approx(25.0, rel=1e-6)
    with pytest.raises(VasaError):
        M.frechet_distance(x[:1], x)


def test_mean_ci_and_control_fits():
    r = M.mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert r["mean"] == 2.0 and r["n"] == 3 and r["ci"] == pytest.approx(4.3027 / np.sqrt(3), rel=1e-3)
    assert M.mean_ci([]) ["n"] == 0 and M.mean_ci([5.0]) == {"mean": 5.0, "ci": 0.0, "n": 1, "median": 5.0}
    assert M.mean_ci([1.0, 2.0, 30.0])["median"] == 2.0
    # one broken clip among six (the test_en pose std of an evaluation run): flagged, the spread is not
    pose_std = [0.573, 15.147, 0.532, 0.864, 0.42, 0.565, float("nan")]
    assert M.robust_outliers(pose_std).tolist() == [1]
    assert M.robust_outliers([1.0, 1.0, 1.0, 1.01]).size == 0  # the |median| floor: no noise flagged
    assert M.robust_outliers([1.0, 50.0]).size == 0  # too few values to tell
    assert M.robust_outliers([1.2e-7, 7.2e-7, 1.1e-7, 1.3e-7]).size == 0  # float noise of a static video
    f = M.monotonic_fit([0.8, 0.9, 1.0, 1.1], [0.82, 0.9, 1.01, 1.12])
    assert f["spearman"] == pytest.approx(1.0) and f["r2"] > 0.99
    assert M.angle_error([[0, 0], [10, 0]], [[3, 4], [10, 0]]) == pytest.approx(2.5)
    assert M.accuracy(["happy", "sad"], ["happy", "angry"]) == 0.5
    assert M.pearson([1, 2, 3, np.nan], [2, 4, 6, 1]) == pytest.approx(1.0)


def test_sync_protocol_arithmetic_and_sign():
    """Constructed embeddings: audio window j equals lip window j - k (audio delayed by k frames)."""
    from vasa.eval.sync import VSHIFT, offset_distances, score_from_distances

    rng = np.random.default_rng(1)
    v = rng.standard_normal((60, 8))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for k in (0, 4, -7):
        a = np.roll(v, k, axis=0)
        for edge in ("valid", "zeros"):
            s = score_from_distances(offset_distances(v, a, edge=edge))
            assert s.offset == -k, (k, edge)  # the official sign: audio delayed by k -> offset -k
            # "zeros": the |k| windows whose audio falls outside the clip count with distance |v_i| = 1
            assert s.distance == pytest.approx(0.0 if edge == "valid" else abs(k) / 60, abs=1e-4)
            assert s.confidence > 0.5 and len(s.mdist) == 2 * VSHIFT + 1


def test_scorer_refuses_mismatched_frame_rates(tmp_path):
    from vasa.eval.harness import score_file
    from vasa.eval.sync import check_rates, fit_audio, sync_score
    from vasa.io.video import write_mp4

    check_rates(25, 16000)
    with pytest.raises(VasaError, match="25 fps"):
        check_rates(30, 16000)
    with pytest.raises(VasaError, match="16000 Hz"):
        check_rates(25, 44100)
    frames = np.zeros((30, 32, 32, 3), np.uint8)
    with pytest.raises(VasaError, match="25 fps"):
        sync_score(None, frames, np.zeros(30 * 640, np.float32), fps=30)
    with pytest.raises(VasaError, match="lengths differ"):
        fit_audio(np.zeros(100 * 640, np.float32), 30)
    path = write_mp4(tmp_path / "v30.mp4", frames, fps=30, audio=np.zeros(16000, np.float32))
    with pytest.raises(VasaError, match="25 fps"):
        score_file(path, experts=str(tmp_path / "none"))


def test_mouth_flap_follows_audio_energy(portrait):
    from vasa.eval.baselines import MouthFlap, energy_envelope
    from vasa.eval.landmarks import FaceMesh

    t = np.arange(40 * 640) / 16000
    env = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)  # 1.5 Hz bursts of noise
    audio = (0.3 * env * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    mesh = FaceMesh()
    frames = MouthFlap(portrait, mesh=mesh).video(audio, 40)
    assert frames.shape == (40, 128, 128, 3) and frames.dtype == np.uint8
    opening = mesh.mouth_openings(frames)
    assert M.pearson(opening, energy_envelope(audio, 40)) > 0.8
    assert np.array_equal(MouthFlap(portrait, mesh=mesh).frame(0.0), portrait)  # silence: the portrait itself


def test_official_syncnet_layout_and_mfcc(tmp_path):
    import torch
    from safetensors.torch import save_file

    from vasa.eval.syncnet_official import OfficialSync, SyncNetS, load_official, mfcc

    m = SyncNetS().eval()
    with torch.no_grad():
        assert m.forward_aud(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "w.safetensors"))
    assert isinstance(load_official(tmp_path / "w.safetensors"), SyncNetS)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(VasaError, match="does not hold SyncNet"):
        load_official(tmp_path / "bad.safetensors")
    with pytest.raises(VasaError, match="not found"):
        OfficialSync(tmp_path / "missing.safetensors")
    x = np.random.default_rng(0).standard_normal(16000) * 3000
    assert mfcc(x).shape == (99, 13)
    psf = pytest.importorskip("python_speech_features")
    assert np.abs(psf.mfcc(x, 16000) - mfcc(x)).max() < 1e-8


def test_testsets_are_identity_disjoint(tmp_path):
    from vasa.data.corpus import Corpus
    from vasa.eval.testsets import build_testsets, check_disjoint, load_item
    from vasa.synth.corpus import synth_corpus

    synth_corpus(tmp_path / "c", clips=6, ood_lang_clips=1, art_clips=1, identities=12, gallery_per_identity=0,
                 resolution=64, clips_per_shard=6, workers=1, progress=False)
    c = Corpus(tmp_path / "c")
    m = build_testsets(c, sets=("test_en", "test_lang", "test_art", "long"), long_seconds=20.0)
    assert set(m["sets"]) == {"test_en", "test_lang", "test_art", "long"}
    assert all(it["gt"] for s in ("test_en", "test_lang", "test_art") for it in m["sets"][s]["items"])
    assert build_testsets(c, sets=("test_en", "long"), long_seconds=20.0)["sets"]["long"] == m["sets"]["long"]
    item = load_item(c, m["sets"]["long"]["items"][0])
    assert len(item.audio) == 20 * 16000 and item.gt_frames is None
    first = load_item(c, m["sets"]["test_en"]["items"][0])
    assert len(first.audio) == len(first.gt_frames) * 640 and np.array_equal(first.portrait, first.gt_frames[0])
    train = c.records(split="train", kind="speech")[0]["id"]
    m["sets"]["test_en"]["items"].append({"id": train, "portrait": train, "audio": [train]})
    with pytest.raises(VasaError, match="identity-disjoint"):
        check_disjoint(c, m)


def test_vasa_row_is_repeatable(tmp_path):
    """The evaluation's generator adapter: same inputs, same frames (the watermark's generation id
    is derived from the inputs, not drawn at random)."""
    from vasa.eval.rows import vasa_row
    from vasa.talker.bundle import random_bundle

    bundle = random_bundle(tmp_path / "b", seed=0)
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    kw = dict(steps=2, seed=0)
    a, _ = vasa_row(bundle, portrait, audio, kw)
    b, _ = vasa_row(bundle, portrait, audio, kw)
    assert a.shape[0] == 25 and np.array_equal(a, b)
    c, _ = vasa_row(bundle, portrait, audio, dict(kw, seed=1))
    assert not np.array_equal(a, c)


def test_outlying_items_are_named_and_marked_in_the_table():
    from vasa.eval.harness import Results, _table, outliers
    from vasa.eval.report import markdown_table

    recs = [dict(set="test_en", row="vasa_50", item=f"s{k}", dp=v, s_c=0.4) for k, v in
            enumerate([0.36, 6.9, 0.34, 0.64, 0.19, 0.41])]
    out = outliers(recs)
    assert [(o["item"], o["metric"]) for o in out] == [("s1", "dp")] and out[0]["median"] == pytest.approx(0.385)
    table = _table(recs)
    assert table["test_en"]["vasa_50"]["dp"]["median"] == pytest.approx(0.385)
    res = Results({"sets": {}}, recs, table, {}, {}, {}, {}, {}, {}, {}, out)
    md = markdown_table(res, "test_en")
    assert "(median 0.385)" in md  # the mean (1.47) is pulled outside the bulk: the median is shown
    assert res.metrics()["test_en"]["vasa_50"]["dp_median"] == pytest.approx(0.385)
    assert res.metrics()["outlier_values"] == 1 and res.to_json()["outliers"] == out
