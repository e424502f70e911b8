"""Read access to a prepared corpus folder (see :mod:`vasa.io.shards` for the format)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np

from vasa.errors import VasaError
from vasa.io.shards import ClipData, Shard


class Corpus:
    """A prepared corpus: the manifest in memory, shards loaded lazily (small LRU cache).

    >>> corpus = Corpus("data/corpus")
    >>> train = corpus.records(split="train", kind="speech")
    >>> clip = corpus.load_clip(train[0]["id"])   # frames, audio, per-frame ground truth
    """

    def __init__(self, root: str | Path, cache_shards: int = 4):
        self.root = Path(root)
        man = self.root / "manifest.jsonl"
        if not man.is_file():
            raise VasaError(f"no corpus at {self.root} (manifest.jsonl missing): run `vasa synth --out {self.root}` or `dvc repro prepare`")
        self.schema: dict = json.loads((self.root / "schema.json").read_text())
        self._records = [json.loads(line) for line in man.read_text().splitlines() if line.strip()]
        self._by_id = {r["id"]: r for r in self._records}
        self._cache: OrderedDict[str, Shard] = OrderedDict()
        self._cache_size = cache_shards

    @property
    def param_names(self) -> list[str]:
        return list(self.schema["params"])

    def __len__(self) -> int:
        return len(self._records)

    def records(self, split: str | None = None, kind: str | None = None) -> list[dict]:
        """Clip records, optionally filtered by split (train/val/test/test_lang/test_art) and kind."""
        return [r for r in self._records
                if (split is None or r["split"] == split) and (kind is None or r["kind"] == kind)]

    def record(self, clip_id: str) -> dict:
        if clip_id not in self._by_id:
            raise VasaError(f"clip {clip_id!r} is not in the corpus at {self.root}")
        return self._by_id[clip_id]

    def shard(self, name: str) -> Shard:
        """Shard ``name``, from the LRU cache when possible."""
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        sh = Shard(self.root / "shards" / f"{name}.npz")
        self._cache[name] = sh
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return sh

    def load_clip(self, clip_id: str) -> ClipData:
        """One clip fully decoded: frames, audio (16 kHz float32), params, visemes, record."""
        r = self.record(clip_id)
        return self.shard(r["shard"]).clip(r["index"])

    def params(self, clip_id: str) -> np.ndarray:
        """Per-frame ground truth (T x P float32) without decoding frames."""
        r = self.record(clip_id)
        sh = self.shard(r["shard"])
        lo, hi = sh.arrays["clip_offsets"][r["index"]], sh.arrays["clip_offsets"][r["index"] + 1]
        return sh.arrays["params"][lo:hi]

    def video_path(self, clip_id: str) -> Path:
        """The clip's playable mp4."""
        r = self.record(clip_id)
        return self.root / r["video"]

    def iter_frames(self, split: str | None = None, kind: str | None = None) -> Iterator[np.ndarray]:
        """Every frame of the selected clips, shard by shard (sequential, fastest order)."""
        recs = self.records(split, kind)
        by_shard: dict[str, list[int]] = {}
        for r in recs:
            by_shard.setdefault(r["shard"], []).append(r["index"])
        for name, idxs in by_shard.items():
            sh = self.shard(name)
            off = sh.arrays["clip_offsets"]
            for c in idxs:
                for i in range(off[c], off[c + 1]):
                    yield sh.frame(i)
