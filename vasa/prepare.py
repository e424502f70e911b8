"""The ``prepare`` stage: build the corpus from the generator or from real videos.

``source: synth`` renders the generated corpus (:func:`vasa.synth.corpus.synth_corpus`); a folder or
CSV of videos is ingested (:func:`vasa.ingest.ingest`) into the same format.
"""

from __future__ import annotations

from vasa.config import PrepareConfig
from vasa.stage_kwargs import ingest_kwargs, synth_kwargs


def is_synthetic(cfg: PrepareConfig) -> bool:
    """Whether the stage builds the generated corpus (with ground truth) rather than real videos."""
    return cfg.source == "synth"


def prepare(cfg: PrepareConfig, progress: bool = True) -> dict:
    """Build (or finish: both paths resume) the corpus in ``cfg.out``; returns its statistics."""
    if is_synthetic(cfg):
        from vasa.synth.corpus import synth_corpus

        return synth_corpus(**synth_kwargs(cfg), progress=progress)
    from vasa.ingest import ingest

    return ingest(**ingest_kwargs(cfg), progress=progress)
