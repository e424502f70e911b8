"""scripts/dvc_relock.py: re-hash named dependencies (and params) of a stage in dvc.lock, outputs absent."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock(repo: Path) -> dict:
    stage = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["make"]
    return {"deps": {d["path"]: d["md5"] for d in stage["deps"]}, "outs": {o["path"]: o["md5"] for o in stage["outs"]},
            "params": stage["params"]["params.yaml"]}


def test_relock_rehashes_only_the_named_deps_and_keeps_the_outputs(tmp_path, monkeypatch):
    pytest.importorskip("dvc")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "params.yaml").write_text("make:\n  n: 1\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  make:\n    cmd: cat a.txt b.txt > o.txt\n"
                                      "    deps: [a.txt, b.txt]\n    params: [make]\n    outs: [o.txt]\n")
    subprocess.run(["dvc", "repro", "-q"], cwd=tmp_path, check=True)
    before = _lock(tmp_path)
    (tmp_path / "o.txt").unlink()  # a fresh clone: the output is not there
    (tmp_path / "a.txt").write_text("a, edited")
    (tmp_path / "b.txt").write_text("b, edited")
    (tmp_path / "params.yaml").write_text("make:\n  n: 1\n  extra: 0\n")
    spec = importlib.util.spec_from_file_location("dvc_relock", ROOT / "scripts" / "dvc_relock.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.chdir(tmp_path)
    assert mod.main(["make", "--deps", "a.txt"]) == ["make"]
    after = _lock(tmp_path)
    assert after["deps"]["a.txt"] != before["deps"]["a.txt"]  # re-hashed
    assert after["deps"]["b.txt"] == before["deps"]["b.txt"]  # not named: as recorded
    assert after["outs"] == before["outs"]  # the missing output keeps its entry
    assert after["params"] == {"make": {"n": 1, "extra": 0}}  # params re-read
    with pytest.raises(SystemExit, match="no stage"):
        mod.main(["nope", "--deps", "a.txt"])
    with pytest.raises(SystemExit, match="is no dependency of"):
        mod.main(["make", "--deps", "c.txt"])
