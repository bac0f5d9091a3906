"""The examples run, at a reduced size, as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from meshop import checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: the bundled model's relative L2 error on the bracket is 0.069 against scikit-fem
#: (benchmarks/default_model.py); the bound leaves room for BLAS differences, not for a worse model
QUICKSTART_MAX_REL_L2 = 0.079


def _run(script: str, *args) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny problems: no thread oversubscription
    run = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_train_your_own(tmp_path):
    out = _run("train_your_own.py", "--n", 6, "--epochs", 2, "--resolution", 300, "--out", tmp_path)
    data, run = tmp_path / "data", tmp_path / "run"
    assert len(list(data.glob("sample_*.vtu"))) == 6 and (data / "dataset.json").is_file()
    for name in ("best.safetensors", "last.safetensors", "metrics.csv", "loss.png"):
        assert (run / name).is_file(), name
    best = checkpoint.load(run / "best.safetensors")
    printed = float(re.search(r"test relative L2: ([0-9.]+)%", out).group(1)) / 100
    assert abs(printed - best.metrics["test_rel_l2"]) < 5e-5
    assert best.data["problem"] == "poisson2d" and best.data["sizes"] == {"train": 4, "val": 1, "test": 1}
    assert best.metrics["epochs"] == 2


def test_quickstart_with_the_bundled_model(tmp_path):
    """The quick start on the bundled bracket: the default model's temperature against FEM."""
    import numpy as np

    import meshop
    from meshop.data.problems.heat3d import uniform_heating

    out = _run("quickstart.py", "--out", tmp_path / "bracket.pred.vtu")
    assert "input 'source' is missing; used the model's default source = 1" in out
    predicted = meshop.read(tmp_path / "bracket.pred.vtu")
    temperature = predicted.point_data["temperature_pred"]
    truth = uniform_heating(predicted)
    np.testing.assert_array_equal(temperature[predicted.boundary_mask], 0.0)  # cold surfaces, exactly
    assert np.linalg.norm(temperature - truth) / np.linalg.norm(truth) < QUICKSTART_MAX_REL_L2
