"""The figure docs/latent_mouth_gap.jpg: does the face latent space render the mouth?

Per test clip (rows): the frames with the smallest, median and largest ground-truth jaw opening
(left three), then the same frames re-rendered by the latent model from their own encoded motion
on the clip's first frame's appearance (right three; self-reenactment).

    python scripts/latent_mouth_figure.py --model models/latent --out docs/latent_mouth_gap.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vasa.data.corpus import Corpus  # noqa: E402
from vasa.data.frames import to_tensor  # noqa: E402
from vasa.io.video import read_mp4  # noqa: E402
from vasa.latent.model import expand_source  # noqa: E402
from vasa.latent.train import load_latent  # noqa: E402
from vasa.synth.params import PARAM_INDEX  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--model", default="models/latent")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--out", default="docs/latent_mouth_gap.jpg")
    a = ap.parse_args(argv)
    c, model = Corpus(a.corpus), load_latent(a.model)
    rows = []
    for rec in c.records(split="test", kind="speech")[:a.clips]:
        fr = read_mp4(c.video_path(rec["id"]))[0][:75]
        jaw = c.params(rec["id"])[:len(fr), PARAM_INDEX["jaw"]]
        idx = [int(np.argmin(jaw)), int(np.argsort(jaw)[len(jaw) // 2]), int(np.argmax(jaw))]
        x = torch.stack([to_tensor(f) for f in fr])
        with torch.no_grad():
            V, zid = model.encode_appearance(x[:1])
            zp, zd = model.encode_motion(x[idx])
            y = model.decode(V.expand(3, *V.shape[1:]), zid.expand(3, *zid.shape[1:]), zp, zd,
                             source=expand_source(model.encode_source(x[:1]), 3))
        img = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        rows.append(np.concatenate([fr[i] for i in idx] + list(img), 1))
        print(rec["id"], "jaw", [round(float(jaw[i]), 2) for i in idx])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(a.out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    main()
