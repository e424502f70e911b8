"""Short from-scratch runs of face latent model variants, scored by self-reenactment PSNR.

Architecture changes cannot be screened by fine-tuning (new layers start at zero and learn slowly), so
each variant trains from scratch through the stage's own entry point (``train_latent``, the settings of
``params.yaml``'s ``train_latent`` section, ``--steps`` steps, GAN off when ``adv_start`` lies beyond
them) and is scored on ``--pairs`` test pairs (reenactment, copy-the-source and auto-encoding PSNR;
with ``--probes`` also the stage's linear probes; with ``--mouth`` the mouth-box PSNR and blend mask of
:func:`vasa.latent.evaluate.mouth_reenactment` and whether the mouth follows the driver,
``scripts/latent_blend_oracle.py``'s ``mouth_follow``: a full reenactment whose mouth opening is closer to
the source's than to the driver's has a frozen mouth).
Compare variants at equal steps *and* look at ``train_s``: a wider model costs time.

    python scripts/latent_scratch_screen.py --steps 500 --set control: \\
        --set 'wide:{"model": {"dec_channels": [96, 48], "dec_res_blocks": 2}}' --out runs/scr/screen.json

A variant is ``NAME:JSON``: keyword arguments of ``train_latent`` over the stage's settings, where
``model`` is merged into the stage's model overrides. The landmark guidance cache of the stage's work
dir (``runs/latent``) is reused when present and the variant trains on the stage's corpus. A variant
with another ``corpus`` can still be scored on the stage's (``--eval-corpus data/corpus``)::

    python scripts/latent_scratch_screen.py --steps 1000 --pairs 512 --probes --eval-corpus data/corpus \\
        --set 'ids800:{"w_cross_id": 0}' --set 'ids1600:{"w_cross_id": 0, "corpus": "runs/res/corpus2000"}' \\
        --work runs/res/scr1000 --out ids.json

(``w_cross_id: 0`` in both arms there: that corpus has one gallery still per identity, and the identity
embedder needs two.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # latent_blend_oracle (--mouth)

from vasa.config import load_params  # noqa: E402
from vasa.stage_kwargs import latent_kwargs  # noqa: E402
from vasa.latent.evaluate import clip_codes, mouth_reenactment, probes, self_reenactment  # noqa: E402
from vasa.latent.train import load_latent, train_latent  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME:JSON")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--work", default="runs/scr")
    ap.add_argument("--probes", action="store_true", help="also the linear probes (fit on val, R² on test)")
    ap.add_argument("--mouth", action="store_true", help="also the mouth box and whether the mouth follows the driver")
    ap.add_argument("--eval-corpus", default="",
                    help="score every variant on this corpus's val / test splits (default: the one it trained on), "
                         "e.g. data/corpus for a variant trained on another corpus")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    base = latent_kwargs(load_params(a.params).train_latent)
    report = dict(command="python scripts/latent_scratch_screen.py " + " ".join(argv or sys.argv[1:]),
                  steps=a.steps, pairs=a.pairs, variants={})
    for spec in a.set or ["control:"]:
        name, _, js = spec.partition(":")
        over = json.loads(js) if js else {}
        model = dict(base["model"] or {}) | over.pop("model", {})
        work = Path(a.work) / name
        work.mkdir(parents=True, exist_ok=True)
        same_corpus = over.get("corpus", base["corpus"]) == base["corpus"]
        for f in ("guidance-train.npz", "guidance-train.json"):  # MediaPipe cache: depends on the corpus only
            src = Path(base["work_dir"]) / f
            if same_corpus and src.is_file() and not (work / f).exists():
                shutil.copy(src, work / f)
        kw = base | dict(out=str(work / "model"), work_dir=str(work), steps=a.steps, model=model,
                         sample_every=10**9, checkpoint_every=10**9, progress=False) | over
        t0 = time.time()
        train_latent(**kw)
        seconds = time.time() - t0
        net = load_latent(work / "model")
        ev_corpus = a.eval_corpus or kw["corpus"]
        m = self_reenactment(net, ev_corpus, a.pairs, 0, progress=False)["metrics"]
        report["variants"][name] = dict(model=model, over=over, eval_corpus=ev_corpus, train_s=round(seconds), psnr=m["psnr"],
                                        psnr_auto=m["psnr_auto"], ssim=m["ssim"], psnr_copy=m["psnr_copy"],
                                        blend_mask=m.get("blend_mask"))
        if a.mouth:
            from latent_blend_oracle import mouth_follow

            report["variants"][name]["mouth"] = mouth_reenactment(net, ev_corpus, 128, 0)["metrics"]
            report["variants"][name]["mouth_follow"] = mouth_follow(str(work / "model"), ev_corpus, 64, 0)
        if a.probes:
            codes = [clip_codes(net, ev_corpus, split, 40, progress=False) for split in ("val", "test")]
            report["variants"][name]["probes"] = probes(*codes)["table"]
        print(name, json.dumps(report["variants"][name]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
