"""The README's Python example runs as written (x-transformers' test_readme)."""

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for code in blocks:
            exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    assert re.search(r"\(\d+, 64, 64, 3\) \(\d+, 19\)", capsys.readouterr().out)  # real shapes printed
    assert (tmp_path / "data" / "corpus-tiny" / "manifest.jsonl").is_file()
