"""Shared fixtures: a smoke-sized generated corpus and its motion export (built once per test session)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory) -> Path:
    """The smoke profile's corpus sizes at 64 px: train / val / test identities, test_lang, test_art, gallery."""
    from vasa.synth.corpus import synth_corpus

    out = tmp_path_factory.mktemp("smoke_corpus") / "corpus"
    synth_corpus(out, clips=6, ood_lang_clips=1, art_clips=1, identities=12, gallery_per_identity=2,
                 resolution=64, clips_per_shard=3, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def smoke_motion(smoke_corpus, tmp_path_factory) -> Path:
    """``export_motion`` of ``smoke_corpus`` by a tiny latent model trained for two steps (the motion
    stage's input: meta.json, norm.npz, manifest.jsonl, clips/<id>.npz)."""
    import torch

    from vasa.latent.export import export_motion
    from vasa.latent.train import train_latent

    root = tmp_path_factory.mktemp("smoke_motion")
    kw = dict(size="tiny", steps=2, batch_size=2, warmup_steps=1, w_cross_id=0.0, w_adv=0.0, w_guide=0.0,
              log_every=1, sample_every=0, checkpoint_every=0, device="cpu", progress=False)
    accepted = inspect.signature(train_latent).parameters  # only the knobs this version has
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_latent(str(smoke_corpus), out=str(root / "latent"), work_dir=str(root / "latent_run"),
                     **{k: v for k, v in kw.items() if k in accepted})
        export_motion(str(smoke_corpus), str(root / "latent"), str(root / "motion"), batch_size=64, progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "motion"
