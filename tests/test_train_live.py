"""The loop's metric logger without dvclive: the same values as JSON lines."""

import builtins
import json

import numpy as np
import pytest

from vasa.train.live import JsonLinesLive, open_live


def test_json_lines_live_records_steps_images_and_resumes(tmp_path):
    live = JsonLinesLive(tmp_path / "d")
    live.log_params({"a": 1})
    for step in (25, 50):
        live.step = step
        live.log_metric("loss", 1.0 / step)
        live.next_step()
    live.log_image("s.png", np.zeros((4, 4, 3), np.uint8))
    live.end()
    rows = [json.loads(x) for x in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [25, 50] and rows[1]["loss"] == pytest.approx(0.02)
    assert rows[1]["time"] >= rows[0]["time"]
    assert json.loads((tmp_path / "d" / "metrics.json").read_text())["step"] == 50
    assert (tmp_path / "d" / "plots" / "images" / "s.png").is_file()
    JsonLinesLive(tmp_path / "d", resume=True).end()  # resume keeps the rows
    assert len((tmp_path / "d" / "metrics.jsonl").read_text().splitlines()) == 2
    JsonLinesLive(tmp_path / "d", resume=False)  # a fresh run starts over
    assert not (tmp_path / "d" / "metrics.jsonl").exists()


def test_open_live_falls_back_with_a_warning(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_dvclive(name, *a, **k):
        if name == "dvclive":
            raise ImportError("no dvclive")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dvclive)
    with pytest.warns(UserWarning, match="dvclive is not installed"):
        live = open_live(tmp_path / "d")
    assert isinstance(live, JsonLinesLive)


def test_resume_drops_json_lines_logged_after_the_checkpoint(tmp_path):
    from vasa.train.loop import _truncate_dvclive

    live = JsonLinesLive(tmp_path / "d")
    for step in (25, 50, 75):
        live.step = step
        live.log_metric("loss", 1.0)
        live.next_step()
    _truncate_dvclive(tmp_path / "d", 50)  # the run died after step 75, its last checkpoint was step 50
    rows = [json.loads(x) for x in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [25, 50]
