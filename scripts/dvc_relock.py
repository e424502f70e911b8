"""Record the current dependency hashes and params of DVC stages in ``dvc.lock`` while keeping their recorded
outputs: ``dvc commit`` for a checkout that does not hold the outputs (a fresh clone).

For an edit that cannot change a stage's outputs (a model option that is off by default, a new config field
of another stage, docstrings): the README's "Pipeline" section says when that is the case, and the commit
message names the stages. Only the named dependencies (``--deps``: their hash, size and file count) and the
stages' params are re-read from the working tree; every other entry, the outputs' included, stays as recorded
(a regenerated corpus, or a missing model, is not what the edit changed).

    python scripts/dvc_relock.py train_latent export_motion evaluate --deps vasa/latent vasa/config.py
"""

from __future__ import annotations

import argparse


def relock(stages: list[str], deps: list[str], root: str = ".") -> list[str]:
    """Re-hash ``deps`` (paths as written in dvc.yaml) and the params of ``stages`` in ``dvc.lock``; -> the
    stages that depend on any of ``deps`` or have params."""
    from dvc.dependency import ParamsDependency
    from dvc.repo import Repo

    repo = Repo(root)
    done = []
    with repo.lock:
        index = {s.name: s for s in repo.index.stages if getattr(s, "name", None)}
        unknown = sorted(set(stages) - set(index))
        if unknown:
            raise SystemExit(f"error: no stage {unknown} in dvc.yaml; stages: {sorted(index)}")
        known = {str(d.def_path) for n in stages for d in index[n].deps}
        stray = sorted(set(deps) - known)
        if stray:
            raise SystemExit(f"error: {stray} is no dependency of {stages} in dvc.yaml: name the paths as dvc.yaml "
                             f"writes them (e.g. vasa/latent)")
        for name in stages:
            st = index[name]
            hit = [d for d in st.deps if isinstance(d, ParamsDependency) or str(d.def_path) in deps]
            for d in hit:
                d.save()
            if hit:
                st.dump(update_pipeline=False)
                done.append(name)
    return done


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stages", nargs="+")
    ap.add_argument("--deps", nargs="+", required=True, help="the dependency paths the edit changed")
    a = ap.parse_args(argv)
    done = relock(a.stages, a.deps)
    print("relocked:", " ".join(done) if done else "(none)")
    return done


if __name__ == "__main__":
    main()
