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
