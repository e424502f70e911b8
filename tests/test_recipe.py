"""The corpus recipe: pack a generated corpus, render it back, get the same bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.synth.recipe import main, pack_recipe, unpack_recipe


def test_recipe_round_trip_is_byte_identical(smoke_corpus, tmp_path):
    info = pack_recipe(smoke_corpus, tmp_path / "r.npz", kinds=("speech",), splits=("train", "test"))
    assert info["clips"] > 0 and info["frames"] > 0
    back = unpack_recipe(tmp_path / "r.npz", tmp_path / "c", workers=1, progress=False)
    assert back["frames"] == info["frames"]
    assert (tmp_path / "c" / "manifest.jsonl").read_bytes() == (smoke_corpus / "manifest.jsonl").read_bytes()
    records = [json.loads(x) for x in (smoke_corpus / "manifest.jsonl").read_text().splitlines()]
    shards = sorted({r["shard"] for r in records if r["kind"] == "speech" and r["split"] in ("train", "test")})
    assert len(shards) == back["shards"]
    for name in shards:
        with np.load(smoke_corpus / "shards" / f"{name}.npz") as a, np.load(tmp_path / "c" / "shards" / f"{name}.npz") as b:
            for key in ("jpeg", "jpeg_offsets", "clip_offsets", "params", "viseme"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
            assert b["audio"].size == 0  # audio is not part of a recipe
    from vasa.data.corpus import Corpus

    c = Corpus(tmp_path / "c")
    r = c.records(split="train", kind="speech")[0]
    assert c.load_clip(r["id"]).frames.shape[0] == r["n_frames"]


def test_recipe_errors(tmp_path, smoke_corpus, capsys):
    with pytest.raises(VasaError, match="no corpus"):
        pack_recipe(tmp_path / "none", tmp_path / "r.npz")
    with pytest.raises(VasaError, match="no clip of kinds"):
        pack_recipe(smoke_corpus, tmp_path / "r.npz", kinds=("speech",), splits=("nosuch",))
    with pytest.raises(VasaError, match="no recipe"):
        unpack_recipe(tmp_path / "missing.npz", tmp_path / "c")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "manifest.jsonl").write_text("")
    with pytest.raises(VasaError, match="not a generated corpus"):
        pack_recipe(tmp_path / "real", tmp_path / "r.npz")
    with pytest.raises(SystemExit, match="error: no recipe"):
        main(["unpack", str(tmp_path / "missing.npz"), str(tmp_path / "c")])


def test_unpack_refuses_a_file_that_is_not_a_recipe(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(VasaError, match="not a corpus recipe"):
        unpack_recipe(bad, tmp_path / "c")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(VasaError, match="not a corpus recipe"):
        unpack_recipe(tmp_path / "other.npz", tmp_path / "c")
    assert not (tmp_path / "c" / "manifest.jsonl").exists()
