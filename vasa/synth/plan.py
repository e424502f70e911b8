"""The corpus plan: which clip gets which identity, split, language and style (deterministic).

Identities are split identity-disjointly into train / val / test. English clips go to train, val
and test; the out-of-distribution splits use test identities only: ``test_lang`` (held-out
languages), ``test_art`` (the artistic rendering style). Every identity also gets a few stills in
the ``gallery`` (random pose, expression and gaze): that is what an identity embedder trains on,
and it makes every identity of the pool appear in the corpus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SPLITS = ("train", "val", "test", "test_lang", "test_art")


@dataclass(frozen=True)
class ClipSpec:
    """What one clip of the corpus is, before it is generated."""

    index: int  # global clip index (seeds the clip's random stream)
    clip_id: str
    kind: str  # "speech" or "gallery"
    split: str
    identity: int
    language: str
    style: str  # "photo" or "art"

    def to_dict(self) -> dict:
        return asdict(self)


def split_identities(n: int, fractions: list[float], seed: int) -> dict[str, np.ndarray]:
    """Identity indices per split, disjoint and covering 0..n-1 (a seeded permutation)."""
    perm = np.random.default_rng([seed, 0xC0FFEE]).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = max(1, int(round(fractions[1] * n)))
    n_train = min(n_train, n - n_val - 1)
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train:n_train + n_val]),
        "test": np.sort(perm[n_train + n_val:]),
    }


def _pick(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """k identities from pool: distinct while the pool lasts, then cycling through it again."""
    if k <= 0:
        return np.zeros(0, int)
    reps = int(np.ceil(k / max(len(pool), 1)))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:k]


def plan_corpus(
    clips: int,
    ood_lang_clips: int,
    art_clips: int,
    identities: int,
    gallery_per_identity: int,
    split_fractions: list[float],
    languages: list[str],
    seed: int,
) -> list[ClipSpec]:
    """The full, ordered list of clips to generate. Same arguments, same plan."""
    ids = split_identities(identities, split_fractions, seed)
    rng = np.random.default_rng([seed, 0x5EED])
    specs: list[ClipSpec] = []

    def add(kind: str, split: str, identity: int, language: str, style: str) -> None:
        i = len(specs)
        specs.append(ClipSpec(i, f"{kind[0]}{i:06d}", kind, split, int(identity), language, style))

    fr = np.asarray(split_fractions, float)
    counts = np.floor(fr * clips).astype(int)
    if clips >= 3:  # every split gets at least one clip
        counts[1:] = np.maximum(counts[1:], 1)
    counts[0] = clips - counts[1:].sum()
    for split, k in zip(("train", "val", "test"), counts):
        for ident in _pick(rng, ids[split], int(k)):
            add("speech", split, ident, "en", "photo")
    ood_langs = [lang for lang in languages if lang != "en"]
    if ood_langs:
        for j, ident in enumerate(_pick(rng, ids["test"], ood_lang_clips)):
            add("speech", "test_lang", ident, ood_langs[j % len(ood_langs)], "photo")
    for ident in _pick(rng, ids["test"], art_clips):
        add("speech", "test_art", ident, "en", "art")
    if gallery_per_identity > 0:
        for split in ("train", "val", "test"):
            for ident in ids[split]:
                add("gallery", split, ident, "", "photo")
    return specs


def shard_plan(specs: list[ClipSpec], clips_per_shard: int, gallery_per_shard: int = 100) -> list[tuple[str, list[ClipSpec]]]:
    """Group specs into named shards: ``speech-00000``, ..., ``gallery-00000``, ... (order kept)."""
    shards: list[tuple[str, list[ClipSpec]]] = []
    for kind, size in (("speech", clips_per_shard), ("gallery", gallery_per_shard)):
        group = [s for s in specs if s.kind == kind]
        for k in range(0, len(group), size):
            shards.append((f"{kind}-{k // size:05d}", group[k:k + size]))
    return shards
