"""The GPU path: prediction and training on a CUDA device agree with the CPU. Marked ``cuda``:
they run where a CUDA device is present and skip with the reason elsewhere (conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from meshop import checkpoint, read
from meshop.graph import GraphSettings
from meshop.prediction import Predictor
from meshop.training import train

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
SMALL = dict(graph=GraphSettings(k=8), width=16, layers=2, kernel_width=16, progress=False)


@pytest.mark.cuda
@pytest.mark.parametrize("model", ["heat3d", "heat3d-gno"])
def test_predict_on_cuda_equals_cpu(model):
    mesh = read(SAMPLES / "heat3d" / "sample_00000.vtu")
    cpu = Predictor(model, device="cpu").predict(mesh).mesh.point_data["temperature_pred"]
    cuda = Predictor(model, device="cuda").predict(mesh).mesh.point_data["temperature_pred"]
    assert np.abs(cuda - cpu).max() <= 1e-5 * np.abs(cpu).max()


@pytest.mark.cuda
def test_train_on_cuda_matches_cpu_weights(tmp_path):
    runs = {device: train(SAMPLES / "darcy2d", epochs=2, batch_size=1, lr=5e-3, device=device,
                          out=tmp_path / device, **SMALL) for device in ("cpu", "cuda")}
    cpu, cuda = (checkpoint.load(runs[d].last).model.state_dict() for d in ("cpu", "cuda"))
    for name, weight in cpu.items():
        torch.testing.assert_close(cuda[name].cpu(), weight, rtol=1e-4, atol=1e-5, msg=name)
    assert runs["cuda"].metrics["best_val_rel_l2"] == pytest.approx(runs["cpu"].metrics["best_val_rel_l2"], rel=1e-3)
