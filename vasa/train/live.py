"""The training loop's metric logger: dvclive when it is installed, else the same records as JSON lines.

dvclive (with DVC) is part of the project's environment, and ``dvc.yaml`` reads its files as metrics and
plots. A machine that trains without it (a rented GPU box with a preinstalled PyTorch image, where only
the package's own dependencies were added) still gets every logged value: :class:`JsonLinesLive`
writes ``<dir>/metrics.jsonl`` (one ``{"step", "time", metrics...}`` object per logging step, the
wall-clock time included, so throughput can be read back), ``<dir>/metrics.json`` (the last values) and
``<dir>/plots/images/<name>`` (sample images), and warns once that DVC plots are not written.

>>> live = open_live("runs/x/dvclive", resume=False)
>>> live.step = 25; live.log_metric("loss", 0.5); live.next_step(); live.end()
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any


class JsonLinesLive:
    """The subset of ``dvclive.Live`` the loop uses, written as JSON lines (see the module docstring)."""

    def __init__(self, dir: str | Path, resume: bool = False):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.jsonl"
        if not resume and self.path.exists():
            self.path.unlink()
        self.step = 0
        self._row: dict[str, Any] = {}
        self._last: dict[str, Any] = {}

    def log_params(self, params: dict) -> None:
        from vasa.io.atomic import write_json

        write_json(self.dir / "params.json", params)

    def log_metric(self, name: str, value: float) -> None:
        self._row[name] = float(value)

    def log_image(self, name: str, image: Any) -> None:
        out = self.dir / "plots" / "images" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out) if hasattr(image, "save") else _save_array(out, image)

    def next_step(self) -> None:
        if not self._row:
            return
        row = {"step": int(self.step), "time": time.time(), **self._row}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        self._last, self._row = row, {}

    def end(self) -> None:
        self.next_step()
        if self._last:
            from vasa.io.atomic import write_json

            write_json(self.dir / "metrics.json", self._last)


def _save_array(path: Path, image: Any) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def open_live(dir: str | Path, resume: bool = False) -> Any:
    """``dvclive.Live`` for ``dir`` if dvclive imports, else a :class:`JsonLinesLive` (with a warning)."""
    try:
        from dvclive import Live
    except ImportError:
        warnings.warn(f"dvclive is not installed: training metrics go to {Path(dir) / 'metrics.jsonl'} "
                      "(no DVC plots); `pip install dvclive` for them", stacklevel=2)
        return JsonLinesLive(dir, resume=resume)
    return Live(dir=str(dir), resume=resume, save_dvc_exp=False, dvcyaml=None)
