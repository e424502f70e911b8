"""A generated corpus as a small *recipe*, and the corpus rendered back from it, frame for frame.

The generated corpus is a function of its settings, the per-frame face parameters and the identity
seeds; only the speech track needs espeak-ng. ``pack_recipe`` stores what rendering needs (the
manifest, byte for byte, the parameters and visemes of every clip of the chosen shards, the corpus's
settings / schema / stats) in one compressed npz: about 10 MB for the default corpus's 1.9 GB of JPEG
frames. ``unpack_recipe`` renders the frames again on any number of cores (numba + OpenCV, no audio
tools) and writes the same corpus layout. The renderer is deterministic, so every frame's JPEG bytes
equal the original's (checked by ``tests/test_recipe.py``); audio tracks are not carried (the
unpacked shards hold none), so a recipe corpus serves the video stages (latent training, motion
export, the latent evaluation), not the audio ones.

This is how the latent stage trains on a rented GPU machine that only receives a small upload:

    python -m vasa.synth.recipe pack data/corpus .device/recipe.npz            # here
    python -m vasa.synth.recipe unpack .device/recipe.npz data/corpus --workers 16   # there

Caches keyed on the manifest (the landmark guidance in ``runs/latent``) stay valid: the manifest is
restored byte for byte. Real-video corpora (``vasa ingest``) have no recipe: their pixels are data.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vasa.errors import VasaError
from vasa.io.atomic import atomic_path, write_text
from vasa.io.shards import ClipData, write_shard

RECIPE_VERSION = 1
_SIDE_FILES = ("settings.json", "schema.json", "stats.json")


def pack_recipe(corpus: str | Path, out: str | Path, kinds: tuple[str, ...] = ("speech", "gallery"),
                splits: tuple[str, ...] | None = None) -> dict:
    """Write the recipe of ``corpus`` to ``out`` (npz). Shards holding a clip of ``kinds`` (and of
    ``splits``, if given) are included whole. Returns ``{"clips", "frames", "shards", "bytes"}``."""
    root = Path(corpus)
    man = root / "manifest.jsonl"
    if not man.is_file():
        raise VasaError(f"no corpus at {root} (manifest.jsonl missing): run `dvc repro prepare` first")
    settings = json.loads((root / "settings.json").read_text()) if (root / "settings.json").is_file() else {}
    if "supersample" not in settings or "seed" not in settings:
        raise VasaError(f"{root} is not a generated corpus (no synth settings.json): a real-video corpus "
                        "has no recipe, copy its shards instead")
    lines = man.read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines if line.strip()]
    keep = sorted({r["shard"] for r in records
                   if r["kind"] in kinds and (splits is None or r["split"] in splits)})
    if not keep:
        raise VasaError(f"no clip of kinds {list(kinds)} / splits {splits} in {root}")
    by_shard: dict[str, list[dict]] = {}
    for r in records:
        by_shard.setdefault(r["shard"], []).append(r)
    params, visemes, order = [], [], []
    for name in keep:
        with np.load(root / "shards" / f"{name}.npz") as z:
            offs = z["clip_offsets"]
            for r in sorted(by_shard[name], key=lambda r: r["index"]):
                a, b = int(offs[r["index"]]), int(offs[r["index"] + 1])
                params.append(z["params"][a:b])
                visemes.append(z["viseme"][a:b])
                order.append(r["id"])
    lens = np.array([len(p) for p in params], np.int64)
    side = {f: (root / f).read_text() for f in _SIDE_FILES if (root / f).is_file()}
    arrays = dict(
        version=np.array(RECIPE_VERSION),
        manifest=np.frombuffer("".join(lines).encode(), np.uint8),
        side=np.frombuffer(json.dumps(side).encode(), np.uint8),
        shards=np.array(keep), clip_ids=np.array(order),
        frame_offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        params=np.concatenate(params).astype(np.float32), viseme=np.concatenate(visemes).astype(np.int16),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return dict(clips=len(order), frames=int(lens.sum()), shards=len(keep), bytes=out.stat().st_size)


def _render_shard(args: tuple) -> tuple[str, int]:
    """Worker: render one shard's clips and write it. -> (shard name, frames)."""
    name, recs, params, visemes, out, seed, resolution, supersample = args
    import cv2

    from vasa.synth.corpus import _identity
    from vasa.synth.render import HeadRenderer

    cv2.setNumThreads(1)
    clips = []
    for r, p, v in zip(recs, params, visemes):
        renderer = HeadRenderer(_identity(r["identity"], seed), resolution=resolution, supersample=supersample,
                                style=r["style"])
        frames = np.stack([renderer.render(row) for row in p])
        record = {k: val for k, val in r.items() if k not in ("shard", "index", "n_frames")}
        clips.append(ClipData(record=record, frames=frames, params=p, viseme=v))
    written = write_shard(Path(out) / "shards" / f"{name}.npz", clips)
    for w, r in zip(written, recs):
        if (w["shard"], w["index"], w["n_frames"]) != (r["shard"], r["index"], r["n_frames"]):
            raise VasaError(f"recipe shard {name} does not match its manifest (clip {r['id']})")
    return name, sum(len(p) for p in params)


def unpack_recipe(recipe: str | Path, out: str | Path, workers: int = 0, progress: bool = True) -> dict:
    """Render the corpus of ``recipe`` into ``out`` (the corpus layout). Returns
    ``{"shards", "frames", "seconds", "frames_per_s"}``."""
    path = Path(recipe)
    if not path.is_file():
        raise VasaError(f"no recipe at {path}: make one with `python -m vasa.synth.recipe pack CORPUS {path}`")
    try:
        with np.load(path) as z:
            version = int(z["version"])
            if version != RECIPE_VERSION:
                raise VasaError(f"{path} is a recipe of version {version}, this vasa reads {RECIPE_VERSION}")
            manifest = z["manifest"].tobytes().decode()
            side = json.loads(z["side"].tobytes().decode())
            shards, clip_ids = [str(s) for s in z["shards"]], [str(c) for c in z["clip_ids"]]
            offs, params, viseme = z["frame_offsets"], z["params"], z["viseme"]
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise VasaError(f"{path} is not a corpus recipe ({type(e).__name__}: {e}): make one with "
                        "`python -m vasa.synth.recipe pack CORPUS RECIPE`") from None
    settings = json.loads(side["settings.json"])
    records = {r["id"]: r for r in map(json.loads, filter(str.strip, manifest.splitlines()))}
    where = {cid: i for i, cid in enumerate(clip_ids)}
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    jobs = []
    for name in shards:
        recs = sorted((r for r in records.values() if r["shard"] == name), key=lambda r: r["index"])
        ix = [where[r["id"]] for r in recs]
        jobs.append((name, recs, [params[offs[i]:offs[i + 1]] for i in ix], [viseme[offs[i]:offs[i + 1]] for i in ix],
                     str(out), int(settings["seed"]), int(settings["resolution"]), int(settings["supersample"])))
    jobs.sort(key=lambda j: -sum(len(p) for p in j[2]))  # longest first: better load balance
    t0 = time.perf_counter()
    n_workers = workers or mp.cpu_count()
    frames = 0
    bar = tqdm(total=len(jobs), desc="render corpus from recipe", disable=not progress)
    if n_workers == 1:
        results = map(_render_shard, jobs)
    else:
        pool = mp.get_context("spawn").Pool(min(n_workers, len(jobs)))
        results = pool.imap_unordered(_render_shard, jobs)
    for _, n in results:
        frames += n
        bar.update(1)
    bar.close()
    if n_workers != 1:
        pool.close()
        pool.join()
    for fname, text in side.items():
        write_text(out / fname, text)
    write_text(out / "manifest.jsonl", manifest)  # last: a corpus with a manifest is complete
    secs = time.perf_counter() - t0
    return dict(shards=len(jobs), frames=frames, seconds=round(secs, 2), frames_per_s=round(frames / max(secs, 1e-9), 1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="pack a generated corpus into a recipe, or render a recipe back")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="corpus -> recipe.npz")
    p.add_argument("corpus")
    p.add_argument("recipe")
    p.add_argument("--kinds", nargs="+", default=["speech", "gallery"])
    p.add_argument("--splits", nargs="+", default=None)
    u = sub.add_parser("unpack", help="recipe.npz -> corpus (rendered)")
    u.add_argument("recipe")
    u.add_argument("corpus")
    u.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "pack":
            r = pack_recipe(a.corpus, a.recipe, tuple(a.kinds), tuple(a.splits) if a.splits else None)
        else:
            r = unpack_recipe(a.recipe, a.corpus, a.workers)
    except VasaError as e:
        raise SystemExit(f"error: {e}") from None
    print(json.dumps(r))


if __name__ == "__main__":
    main()
