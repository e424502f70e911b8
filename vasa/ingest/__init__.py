"""Real talking-head videos in: discover, decode, detect, track, crop, label -> the corpus format.

See :mod:`vasa.ingest.pipeline` for the stages and :func:`vasa.ingest.pipeline.ingest` for the entry
point (``vasa ingest SRC --out DIR``).
"""

from vasa.ingest.pipeline import IngestSettings, finalize, ingest

__all__ = ["IngestSettings", "finalize", "ingest"]
