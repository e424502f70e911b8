"""The figure docs/latent_lip_gan.jpg: the lower face of test clips, closed and open jaw, as several
latent models render them.

Per test clip (rows): the ground-truth frames with the smallest and the largest jaw opening, then for
each model the same two frames re-rendered from their own encoded motion on the clip's first frame
(self-reenactment), lower half of the frame only. Stage exports and fine-tune exports both load.

    python scripts/latent_mouth_compare.py pretrained/vasa-S/latent runs/latent_finetune/lip_cond/model \\
        --out docs/latent_lip_gan.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_mouth_jaw import load_any  # noqa: E402
from vasa.data.corpus import Corpus  # noqa: E402
from vasa.data.frames import to_tensor  # noqa: E402
from vasa.latent.model import expand_source  # noqa: E402
from vasa.synth.params import PARAM_INDEX  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    c, models = Corpus(a.corpus), [load_any(d) for d in a.models]
    rows = []
    for rec in c.records(split="test", kind="speech")[:a.clips]:
        fr = np.asarray(c.load_clip(rec["id"]).frames[:100])
        jaw = c.params(rec["id"])[:len(fr), PARAM_INDEX["jaw"]]
        idx = [int(np.argmin(jaw)), int(np.argmax(jaw))]
        x = torch.stack([to_tensor(f) for f in fr])
        row = [*fr[idx]]
        for m in models:
            with torch.no_grad():
                V, z_id = m.encode_appearance(x[:1])
                zp, zd = m.encode_motion(x[idx])
                o = m.decode(V.expand(2, -1, -1, -1, -1), z_id.expand(2, -1), zp, zd,
                             source=expand_source(m.encode_source(x[:1]), 2))
            o = o["image"] if isinstance(o, dict) else o
            row += [np.full((fr.shape[1], 3, 3), 255, np.uint8),
                    *((o.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()]
        h = fr.shape[1]
        rows.append(np.concatenate(row, 1)[h // 2:])  # the lower face
    im = Image.fromarray(np.concatenate(rows, 0))
    im = im.resize((int(im.width * a.scale), int(im.height * a.scale)), Image.NEAREST)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    im.convert("RGB").save(a.out, quality=85)


if __name__ == "__main__":
    main()
