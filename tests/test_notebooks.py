"""The pipeline notebooks run headless under papermill with the smoke profile (as `dvc repro` runs them)."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_prepare_notebook_smoke(tmp_path):
    import papermill as pm

    out_nb = tmp_path / "01_prepare.ipynb"
    metrics = tmp_path / "metrics.json"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "01_prepare.ipynb"), str(out_nb), cwd=str(tmp_path), kernel_name="python3",
        parameters=dict(params_file=str(ROOT / "params.yaml"), profile="smoke",
                        overrides=[f"prepare.out={tmp_path / 'corpus'}"], metrics_file=str(metrics)),
        progress_bar=False,
    )
    m = json.loads(metrics.read_text())
    assert m["clips"] > 0 and m["identities"] > 0
    assert set(m["quality"]) >= {"detection_rate", "mouth_jaw_pearson_r", "align_median_error_ms"}
    nb = json.loads(out_nb.read_text())
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= 4  # identity grids, quality plots, filmstrip, distributions


@pytest.mark.slow
def test_prepare_notebook_on_real_videos(tmp_path):
    """`prepare.source` = a folder of videos: the same notebook ingests them (no ground-truth cells)."""
    import numpy as np
    import papermill as pm

    from vasa.io.video import write_mp4
    from vasa.synth.corpus import gallery_params
    from vasa.synth.identity import sample_identity
    from vasa.synth.render import HeadRenderer

    src = tmp_path / "videos" / "person_a"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    r = HeadRenderer(sample_identity(rng), resolution=128)
    base = gallery_params(rng)
    frames = np.stack([r.render(base) for _ in range(60)])
    t = np.arange(60 * 640) / 16000
    write_mp4(src / "talk.mp4", frames, fps=25, audio=(0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
    metrics = tmp_path / "metrics.json"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "01_prepare.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
        kernel_name="python3", progress_bar=False,
        parameters=dict(params_file=str(ROOT / "params.yaml"), profile="smoke", metrics_file=str(metrics),
                        overrides=[f"prepare.source={tmp_path / 'videos'}", f"prepare.out={tmp_path / 'real'}"]),
    )
    m = json.loads(metrics.read_text())
    assert m["clips"] == 1 and m["inputs"]["used"] == 1 and "quality" not in m


@pytest.mark.slow
def test_quickstart_notebook_headless(tmp_path, monkeypatch):
    """`00_quickstart` under papermill with a tiny random bundle: generates, shows videos, compares three emotions."""
    import papermill as pm

    from vasa.talker import random_bundle

    monkeypatch.setenv("VASA_C2PA_DEV_DIR", str(tmp_path / "c2pa-dev"))
    bundle = random_bundle(tmp_path / "bundle", seed=0)
    out_nb = tmp_path / "00_quickstart.ipynb"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "00_quickstart.ipynb"), str(out_nb), cwd=str(tmp_path), kernel_name="python3",
        parameters=dict(checkpoint=str(bundle), allow_random=False, audio="", text="Hello there.", steps=2,
                        resolution=256, compare_resolution=64, emotion="happy", headless=True),
        progress_bar=False,
    )
    videos = {p.name for p in (tmp_path / "quickstart").glob("*.mp4")}
    assert videos == {"generated.mp4", "compare_emotion_neutral.mp4", "compare_emotion_happy.mp4",
                      "compare_emotion_sad.mp4"}
    nb = json.loads(out_nb.read_text())
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert html.count("<video") == 4
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "WATERMARK FOUND" in text


def test_quickstart_notebook_is_clean():
    """The committed quickstart carries no outputs (nbformat 4.5, cell ids, a tagged parameters cell)."""
    nb = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5) and all(c.get("id") for c in nb["cells"])
    assert not any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])
