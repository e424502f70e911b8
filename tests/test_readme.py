"""The README's Python example runs as written (x-transformers' test_readme)."""

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, capsys, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    (tmp_path / "samples").symlink_to(README.parent / "samples")  # the examples run from the repository root
    monkeypatch.setenv("VASA_C2PA_DEV_DIR", str(tmp_path / "c2pa-dev"))  # no development key in ~/.config
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for code in blocks:
            exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert re.search(r"\(\d+, 64, 64, 3\) \(\d+, 19\)", out)  # real shapes printed
    assert re.search(r"\(115, 512, 512, 3\) \(115, 6\)\nTrue", out)  # Generate: frames, motion, watermark found
    assert (tmp_path / "data" / "corpus-tiny" / "manifest.jsonl").is_file()
