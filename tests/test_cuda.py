"""The GPU path: prediction and training on a CUDA device agree with the CPU. Marked ``cuda``:
they run where a CUDA device is present and skip with the reason elsewhere (conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from meshop import Mesh, checkpoint, predict, read
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


@pytest.mark.cuda
def test_time_models_roll_out_on_cuda_as_on_cpu():
    """The bundled time-dependent models on a CUDA device roll out the CPU outputs pinned in
    tests/data (the inputs of test_predict's pinned test): ``heat3d-transient`` 5 steps on the
    bracket, ``mpm2d`` 4 steps of a 225-particle cloud, its radius graphs built on the device."""
    pinned = np.load(Path(__file__).parent / "data" / "bundled_time_models.npz")
    bracket = read(Path(__file__).resolve().parents[1] / "examples" / "parts" / "bracket.vtu")
    transient = predict(bracket, model="heat3d-transient", steps=5, write=False, device="cuda")
    temperature = transient.trajectory.fields["temperature_pred"]
    assert np.abs(temperature - pinned["transient"]).max() <= 1e-5 * np.abs(pinned["transient"]).max()
    points = pinned["cloud"]
    cloud = Mesh(points, None, {"material": np.arange(len(points)) % 4,
                                "velocity": np.tile([0.3, -0.1], (len(points), 1))})
    positions = predict(cloud, model="mpm2d", steps=4, write=False, device="cuda").trajectory.positions
    assert np.abs(positions - pinned["particles"]).max() <= 1e-5 * np.abs(pinned["particles"]).max()


@pytest.mark.cuda
@pytest.mark.parametrize("dim, n, radius", [(2, 3000, 0.04), (3, 4000, 0.09)])
def test_radius_graph_on_cuda_is_the_kd_tree_graph(dim, n, radius):
    """The particle models' radius graph built by torch kernels on the GPU: cKDTree's edges."""
    from meshop.geometry.neighbors import radius_graph
    from meshop.models.device_graphs import radius_graph_on_device

    points = np.random.default_rng(dim * n).random((n, dim)) - 7.0
    got = radius_graph_on_device(torch.as_tensor(points, device="cuda"), radius)
    assert got.device.type == "cuda"
    np.testing.assert_array_equal(got.cpu().numpy(), radius_graph(points, radius))


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["gns", "giorom"])
def test_particle_model_gradients_on_cuda_equal_cpu(name):
    """One training step's loss and gradients of a particle model are the CPU's on the GPU (GIOROM
    in training mode draws its sparse nodes from torch's generator: the same seed on both)."""
    from torch_geometric.data import Data

    from meshop import models

    rng = np.random.default_rng(5)
    frames = rng.uniform(0.3, 0.7, (300, 2)) + np.arange(3)[:, None, None] * rng.normal(0, 0.004, (300, 2))
    positions = torch.as_tensor(frames, dtype=torch.float32).transpose(0, 1)
    material = torch.as_tensor(rng.integers(0, 4, 300))
    torch.manual_seed(0)
    options = dict(history=2, latent=16, message_passing_steps=2, radius=0.08)
    model = models.get(name, 4, 2, 2, **options, **({"sparse_nodes": 60} if name == "giorom" else {}))
    results = {}
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad()
        torch.manual_seed(1)
        data = Data(material=material.to(device), num_nodes=300)
        loss = model.accelerations(data, positions.to(device)).square().mean()
        loss.backward()
        results[device] = loss.item(), {k: p.grad.detach().to("cpu", copy=True)   # .to() moves grads in place
                                         for k, p in model.named_parameters() if p.grad is not None}
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-4)
    assert results["cpu"][1].keys() == results["cuda"][1].keys() and len(results["cpu"][1]) > 4
    for key, grad in results["cpu"][1].items():      # per tensor: float32 sums in another order
        assert (results["cuda"][1][key] - grad).norm() <= 1e-4 * grad.norm() + 1e-12, key


@pytest.mark.cuda
def test_giorom_queries_on_cuda_equal_cpu():
    """The bundled mpm2d (GIOROM) stepped and queried on the GPU, its decoder's neighbour search
    on the device too: the CPU's accelerations at 5,000 query points."""
    from torch_geometric.data import Data

    from meshop.prediction import bundled_models

    rng = np.random.default_rng(6)
    start = torch.as_tensor(np.stack([0.4 + 0.2 * rng.random((800, 2))] * 6, 1), dtype=torch.float32)
    material = torch.as_tensor(rng.integers(0, 4, 800))
    queries = 0.35 + 0.3 * rng.random((5000, 2))
    results = {}
    for device in ("cpu", "cuda"):
        model = checkpoint.load(bundled_models()["mpm2d"]).model.to(device).eval()
        data = Data(material=material.to(device), num_nodes=800)
        positions = start[:, -model.history - 1:].to(device)
        with torch.no_grad():
            model.step(data, positions, model.rollout_plan(data, positions))
            results[device] = model.query(queries)["acceleration"].cpu()
    assert results["cpu"].abs().max() > 0
    torch.testing.assert_close(results["cuda"], results["cpu"], rtol=1e-4, atol=1e-5 * results["cpu"].abs().max().item())
