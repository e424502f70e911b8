"""Frame pairs for training the face latent space (stage 1).

``FramePairs(root)[k]`` -> dict of float32 tensors in [-1, 1], ``3 x H x W``:

* ``source`` (frame i) and ``driver`` (frame j != i) of the same clip,
* ``other``: a frame of a clip of a *different* identity (for the cross-identity loss),
* ``identity`` / ``other_identity``: integer ids of the identities (indices into ``.identities``),
* with ``with_params=True``: ``source_params``, ``driver_params``, ``other_params`` (P,) ground
  truth, for evaluation probes only (never for the default losses);
* with ``guide`` (a :class:`vasa.latent.guidance.Guidance`): source and driver are drawn among the
  guided frames of each clip and ``source_guide`` / ``driver_guide`` (8,) hold their landmark targets,
  ``driver_lip`` (2,) the centre (x, y fractions; NaN: no face) of the driver's lips (the lip GAN's crop),
  ``driver_eyes`` (2, 2) its eyes' centres and ``driver_eye_closure`` () their standardised pose-free
  closure (the eye GAN's crops and condition);
  with ``region_fn`` too (e.g. :func:`vasa.latent.mouth.region_mask`) ``regions`` (1 x S x S) holds the
  source's and the driver's lip + eye regions united (all zero when MediaPipe missed either face);
  with ``driver_weights`` ({clip id: weight per guided frame}, e.g.
  :meth:`vasa.latent.guidance.Guidance.driver_weights`) the *driver* is drawn in proportion to its
  weight over all guided frames and the source uniformly among its clip's other guided frames
  (rare expressions such as blinks drawn more often; needs ``guide`` and ``size``).

Deterministic per index (and ``seed``). Without ``size`` the dataset has one item per frame of the
selected clips (that frame is the source); with ``size`` items draw a clip (frame-weighted) and a
source at random. Only JPEG decoding happens per item: shard arrays are memory-mapped (the npz is
uncompressed), so DataLoader workers share the page cache and no shard is ever loaded whole.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vasa.data.corpus import Corpus
from vasa.errors import VasaError
from vasa.io.shards import decode_jpeg, shard_complete


def _npz_memmap(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an uncompressed npz as a read-only memmap (falls back to loading it)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        compressed = info.compress_type != zipfile.ZIP_STORED
    if not compressed:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
            offset = fh.tell()
        if not fortran and not dtype.hasobject:
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    with np.load(path) as z:
        return z[key]


class _ShardView:
    """JPEG bytes, offsets and params of one shard, memory-mapped."""

    def __init__(self, path: Path):
        if not shard_complete(path):
            raise VasaError(f"shard {path} is missing or incomplete (re-run `vasa synth` to finish it)")
        self.jpeg = _npz_memmap(path, "jpeg")
        self.jpeg_offsets = np.asarray(_npz_memmap(path, "jpeg_offsets"))
        self.clip_offsets = np.asarray(_npz_memmap(path, "clip_offsets"))
        self.params = _npz_memmap(path, "params")

    def frame(self, i: int) -> np.ndarray:
        return decode_jpeg(np.asarray(self.jpeg[self.jpeg_offsets[i]:self.jpeg_offsets[i + 1]]))


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """RGB uint8 H x W x 3 -> float32 3 x H x W in [-1, 1] (numpy: torch's per-op threading
    overhead on small images was half of the loading time)."""
    x = np.ascontiguousarray(frame.transpose(2, 0, 1)).astype(np.float32)
    x *= np.float32(1 / 127.5)
    x -= np.float32(1.0)
    return torch.from_numpy(x)


class FramePairs(Dataset):
    """Map-style dataset of (source, driver, other-identity) frames, see the module docstring.

    kind: clip kinds to draw from ("speech", "gallery"; a gallery "clip" is one identity's stills).
    resize: optional output size (cv2 area interpolation) when the corpus resolution differs.
    """

    def __init__(self, corpus_root, split: str = "train", kind=("speech",), size: int | None = None, seed: int = 0,
                 with_params: bool = False, resize: int | None = None, guide=None, region_fn=None,
                 driver_weights: dict | None = None):
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        self.corpus = Corpus(corpus_root)
        self.guide = guide
        if region_fn is not None and guide is None:
            raise VasaError("per-frame regions (region_fn) come from the guidance cache: pass guide= too")
        self.region_fn = region_fn
        recs = [r for k in kinds for r in self.corpus.records(split=split, kind=k)]
        if guide is not None:  # only clips with 2+ guided frames; frames index guide.frames[id]
            recs = [r for r in recs if len(guide.frames.get(r["id"], ())) >= 2]
        self.records = sorted((r for r in recs if r["n_frames"] >= 2), key=lambda r: r["id"])
        if not self.records:
            raise VasaError(f"no clip of kind {kinds} with 2+ frames in split {split!r} of {corpus_root}")
        self.identities = sorted({str(r["identity"]) for r in self.records})
        if len(self.identities) < 2:
            raise VasaError(f"split {split!r} of {corpus_root} has one identity: cross-identity pairs need two")
        self._id_index = {n: i for i, n in enumerate(self.identities)}
        self.clip_ident = np.array([self._id_index[str(r["identity"])] for r in self.records])
        self.n_frames = np.array([len(guide.frames[r["id"]]) if guide is not None else r["n_frames"]
                                  for r in self.records], np.int64)
        self.cum = np.concatenate([[0], np.cumsum(self.n_frames)])
        self.size, self.seed, self.with_params, self.resize = size, seed, with_params, resize
        self.driver_cum = None  # cumulative driver weights over all guided frames (clip order)
        if driver_weights is not None:
            if guide is None or size is None:
                raise VasaError("driver_weights weigh guided frames in random draws: pass guide= and size= too")
            w = [np.asarray(driver_weights[r["id"]], np.float64) for r in self.records]
            if any(len(a) != n for a, n in zip(w, self.n_frames)) or any((a < 0).any() for a in w):
                raise VasaError("driver_weights need one weight >= 0 per guided frame of every clip")
            self.driver_cum = np.cumsum(np.concatenate(w))
            if self.driver_cum[-1] <= 0:
                raise VasaError("driver_weights are all zero: no driver can be drawn")
        self._shards: dict[str, _ShardView] = {}

    def __len__(self) -> int:
        return int(self.size if self.size is not None else self.cum[-1])

    def _shard(self, name: str) -> _ShardView:
        if name not in self._shards:  # per process (DataLoader workers build their own)
            self._shards[name] = _ShardView(self.corpus.root / "shards" / f"{name}.npz")
        return self._shards[name]

    def _load(self, c: int, t: int):
        r = self.records[c]
        sh = self._shard(r["shard"])
        g = int(sh.clip_offsets[r["index"]]) + t
        img = sh.frame(g)
        if self.resize and img.shape[0] != self.resize:
            import cv2
            img = cv2.resize(img, (self.resize, self.resize), interpolation=cv2.INTER_AREA)
        return to_tensor(img), (torch.from_numpy(np.array(sh.params[g], np.float32)) if self.with_params else None)

    def __getitem__(self, k: int) -> dict:
        if not 0 <= k < len(self):
            raise IndexError(k)
        rng = np.random.default_rng((self.seed, int(k)))
        if self.driver_cum is not None:  # weighted driver g over all guided frames, then a source of its clip
            g = min(int(np.searchsorted(self.driver_cum, rng.random() * self.driver_cum[-1], side="right")),
                    len(self.driver_cum) - 1)
            c = int(np.searchsorted(self.cum, g, side="right") - 1)
            j = int(g - self.cum[c])
            i = int(rng.integers(self.n_frames[c] - 1))
            i += i >= j  # any frame but j
        elif self.size is None:
            c = int(np.searchsorted(self.cum, k, side="right") - 1)
            i = int(k - self.cum[c])
        else:
            c = int(np.searchsorted(self.cum, rng.integers(self.cum[-1]), side="right") - 1)
            i = int(rng.integers(self.n_frames[c]))
        if self.driver_cum is None:
            j = int(rng.integers(self.n_frames[c] - 1))
            j += j >= i  # any frame but i
        others = np.flatnonzero(self.clip_ident != self.clip_ident[c])
        o = int(others[rng.integers(len(others))])
        to = int(rng.integers(self.n_frames[o]))
        item: dict = {}
        if self.guide is not None:  # positions among the guided frames -> frame numbers
            cid, oid = self.records[c]["id"], self.records[o]["id"]
            i, j = int(self.guide.frames[cid][i]), int(self.guide.frames[cid][j])
            to = int(self.guide.frames[oid][to])
            item.update(source_guide=torch.from_numpy(self.guide.target(cid, i).copy()),
                        driver_guide=torch.from_numpy(self.guide.target(cid, j).copy()),
                        driver_lip=torch.from_numpy(self.guide.lip_centre(cid, j)),
                        driver_eyes=torch.from_numpy(self.guide.eye_centres(cid, j)),
                        driver_eye_closure=torch.tensor(float(self.guide.eye_closure(cid, j))))
        (src, ps), (drv, pd), (oth, po) = self._load(c, i), self._load(c, j), self._load(o, to)
        if self.region_fn is not None:  # the source's and the driver's regions united: 1 x S x S
            s = drv.shape[-1]
            a, b = (self.region_fn(self.guide.region_points(cid, t), s) for t in (i, j))
            both = np.maximum(a, b) if a.any() and b.any() else np.zeros_like(a)  # a face missed in either: none (loss falls back to boxes)
            item["regions"] = torch.from_numpy(both[None].astype(np.float32))
        item.update(source=src, driver=drv, other=oth, identity=int(self.clip_ident[c]),
                    other_identity=int(self.clip_ident[o]))
        if self.with_params:
            item.update(source_params=ps, driver_params=pd, other_params=po)
        return item
