"""The corpus plan: identity-disjoint splits, out-of-distribution splits on test identities."""

import numpy as np
import pytest

from vasa.synth.plan import plan_corpus, shard_plan, split_identities


@pytest.mark.parametrize("n", [3, 10, 2000])
def test_identity_splits_disjoint_and_complete(n):
    s = split_identities(n, [0.8, 0.1, 0.1], seed=1)
    allids = np.concatenate([s["train"], s["val"], s["test"]])
    assert len(allids) == n and len(set(allids.tolist())) == n
    assert all(len(v) > 0 for v in s.values())


def _plan(**kw):
    args = dict(clips=50, ood_lang_clips=8, art_clips=4, identities=100, gallery_per_identity=2,
                split_fractions=[0.8, 0.1, 0.1], languages=["en", "es", "de", "fr", "cmn"], seed=3)
    args.update(kw)
    return plan_corpus(**args)


def test_plan_splits_and_languages():
    specs = _plan()
    speech = [s for s in specs if s.kind == "speech"]
    ids = {sp: {s.identity for s in speech if s.split == sp} for sp in ("train", "val", "test", "test_lang", "test_art")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    test_pool = set(split_identities(100, [0.8, 0.1, 0.1], 3)["test"].tolist())
    assert ids["test_lang"] <= test_pool and ids["test_art"] <= test_pool
    assert {s.language for s in speech if s.split == "test_lang"} == {"es", "de", "fr", "cmn"}
    assert {s.language for s in speech if s.split != "test_lang"} == {"en"}
    assert {s.style for s in speech if s.split == "test_art"} == {"art"}
    assert sum(s.split in ("train", "val", "test") for s in speech) == 50
    gallery = [s for s in specs if s.kind == "gallery"]
    assert len({s.identity for s in gallery}) == 100  # every identity of the pool appears


def test_plan_is_deterministic_and_seeded():
    assert _plan() == _plan()
    assert _plan() != _plan(seed=4)


def test_distinct_identities_while_pool_lasts():
    speech = [s for s in _plan() if s.kind == "speech" and s.split == "train"]
    assert len({s.identity for s in speech}) == len(speech)  # 40 clips, 80 train identities


def test_shard_plan_covers_every_clip_once():
    specs = _plan()
    shards = shard_plan(specs, clips_per_shard=7)
    flat = [s for _, group in shards for s in group]
    assert sorted(s.index for s in flat) == list(range(len(specs)))
    assert all(len({s.kind for s in g}) == 1 for _, g in shards)
    assert len({n for n, _ in shards}) == len(shards)
