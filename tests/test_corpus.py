"""The corpus generator end to end on tiny sizes: determinism, resume, splits, CLI errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vasa.cli import main
from vasa.data.corpus import Corpus
from vasa.io.shards import Shard
from vasa.synth.corpus import TIMING_FILE, synth_corpus

TINY = dict(clips=3, ood_lang_clips=1, art_clips=1, identities=6, gallery_per_identity=1,
            resolution=64, clips_per_shard=2, seed=5, progress=False)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    synth_corpus(out=out, workers=1, **TINY)
    return out


def _arrays(root):
    out = {}
    for p in sorted((root / "shards").glob("*.npz")):
        with np.load(p) as z:
            out[p.stem] = {k: z[k] for k in z.files}
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for k in a[name]:
            np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=f"{name}/{k}")


def test_layout_manifest_and_splits(tiny_corpus):
    c = Corpus(tiny_corpus)
    speech = c.records(kind="speech")
    assert {r["split"] for r in speech} == {"train", "val", "test", "test_lang", "test_art"}
    assert len(c.records(kind="gallery")) == 6  # every identity has gallery stills
    ids = {s: {r["identity"] for r in c.records(split=s)} for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    for r in speech:
        clip = c.load_clip(r["id"])
        assert clip.frames.shape[1:] == (64, 64, 3) and clip.frames.dtype == np.uint8
        assert clip.params.shape == (r["n_frames"], len(c.param_names))
        assert abs(len(clip.audio) / 16000 - r["n_frames"] / 25) < 0.08  # audio covers the frames
        assert c.video_path(r["id"]).is_file()
        assert r["phonemes"] and r["text"] and r["conditions"]["emotion"]
    stats = json.loads((tiny_corpus / "stats.json").read_text())
    assert stats["clips"] == 5 and stats["identities"] == 6


def test_same_seed_same_corpus_whatever_the_workers(tiny_corpus, tmp_path):
    out = tmp_path / "c2"
    synth_corpus(out=out, workers=2, **TINY)
    _assert_same(_arrays(tiny_corpus), _arrays(out))
    assert (tiny_corpus / "manifest.jsonl").read_text() == (out / "manifest.jsonl").read_text()


def test_resume_keeps_complete_shards_and_redoes_partial_ones(tiny_corpus, tmp_path):
    out = tmp_path / "c3"
    shutil.copytree(tiny_corpus, out)
    shards = sorted((out / "shards").glob("speech-*.npz"))
    keep, partial = shards[0], shards[1]
    keep_mtime = keep.stat().st_mtime_ns
    partial.with_suffix(".json").unlink()  # interrupted between the npz and its sidecar
    (out / "shards" / ".speech-00002.npz.abc.npz.tmp").write_bytes(b"half")  # a crashed write
    (out / "manifest.jsonl").unlink()
    stats = synth_corpus(out=out, workers=1, **TINY)
    assert keep.stat().st_mtime_ns == keep_mtime  # complete shard untouched
    assert stats["generation"]["runs"] == 2 and stats["generation"]["frames_per_second"] > 0
    assert not list(out.rglob(".*.tmp"))
    _assert_same(_arrays(tiny_corpus), _arrays(out))


def test_changed_settings_start_over(tiny_corpus, tmp_path):
    out = tmp_path / "c4"
    shutil.copytree(tiny_corpus, out)
    synth_corpus(out=out, workers=1, **{**TINY, "seed": 6})
    assert _arrays(out)["speech-00000"]["params"].tolist() != _arrays(tiny_corpus)["speech-00000"]["params"].tolist()
    assert all(Shard(p) for p in (out / "shards").glob("*.npz"))


@pytest.mark.parametrize("argv, message", [
    (["--languages", "en", "xx"], "unknown language 'xx'"),
    (["--resolution", "1000"], "out of range [64, 512]"),
    (["--resolution", "32"], "out of range [64, 512]"),
    (["--voices", "m1", "robot"], "unknown voice 'robot'"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    code = main(["synth", "--out", str(tmp_path / "x"), "--clips", "1", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.startswith("vasa: error:") and err.count("\n") == 1


def test_cli_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["synth", "--out", str(blocker / "sub"), "--clips", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write" in err


def test_console_script_runs(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "vasa", "synth", "--out", str(out), "--clips", "3",
                        "--identities", "5", "--ood-lang-clips", "0", "--art-clips", "0",
                        "--gallery-per-identity", "0", "--resolution", "64", "--workers", "1", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 clips" in r.stdout
    assert len(Corpus(out).records()) == 3


def test_regenerated_corpus_hashes_the_same_files(tiny_corpus, tmp_path):
    """Wall-clock times stay out of the content: every file but the timing log is byte-identical."""
    out = tmp_path / "c5"
    synth_corpus(out=out, workers=1, **TINY)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*") if p.is_file())
    assert Path(TIMING_FILE) in files and "generation" not in json.loads((out / "stats.json").read_text())
    differ = [f for f in files if (out / f).read_bytes() != (tiny_corpus / f).read_bytes()]
    assert differ == [Path(TIMING_FILE)]
    ignored = (Path(__file__).resolve().parents[1] / ".dvcignore").read_text().split()
    assert TIMING_FILE in ignored
