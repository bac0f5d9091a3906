"""The heat physics term of the time stepper (meshop.models.heat_physics): one RKL2 super-step
per frame on the part's P1 matrices follows the generator's BDF2 FEM, is stable at the stage
count it picks, and its sparse product has the right gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from meshop import Mesh
from meshop.data.fem_transient import HeatSimulation
from meshop.models.heat_physics import HeatOperators, _product, heat_operator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def box(n: int = 6) -> Mesh:
    """A structured tetrahedral mesh of a 2 x 1 x 1 m box (scikit-fem's tensor mesh)."""
    from skfem import MeshTet

    g = np.linspace(0.0, 1.0, n)
    box = MeshTet.init_tensor(2 * g, g, g)
    return Mesh(box.p.T, {"tetra": box.t.T})


def physics_rollout(mesh: Mesh, inputs: dict, initial: np.ndarray, frames: int, on: float,
                    tau: float = 0.01) -> np.ndarray:
    data = Data(**heat_operator(mesh.with_point_data(**inputs), float(mesh.distance_to_boundary.max())))
    data.num_nodes = mesh.n_points
    operators = HeatOperators(data)
    state, out = torch.as_tensor(initial, dtype=torch.float32)[:, None], [initial]
    with torch.no_grad():
        for _ in range(frames):
            state = operators.frame(state, torch.full_like(state, on), tau)
            out.append(state[:, 0].numpy())
    return np.array(out)


@pytest.mark.parametrize("boundary", ["dirichlet", "robin"])
def test_physics_term_follows_the_fem(boundary):
    """Cooling from a smooth bump with a source on: 20 frames of the physics term within 1 % of
    the BDF2 FEM (4 solver steps per frame) in relative L2 at every frame."""
    mesh = box()
    surface = mesh.boundary_mask.astype(float)
    x = mesh.points
    initial = 1.0 + np.sin(np.pi * x[:, 0] / 2) * np.sin(np.pi * x[:, 1]) * np.sin(np.pi * x[:, 2])
    held = boundary == "dirichlet"
    inputs = {"source": 2.0 + x[:, 0], "ambient_temperature": np.full(mesh.n_points, 0.3),
              "heat_transfer": 0.0 * surface if held else 3.0 * surface}
    fem = HeatSimulation(mesh, 0.0025, {**inputs, "dirichlet_mask": surface * held}).run(initial, 20, 4, t_on=-1.0)
    reference = fem.fields["temperature"]
    ours = physics_rollout(mesh, {**inputs, "surfaces_held": np.full(mesh.n_points, float(held))},
                           reference[0], 20, on=1.0)
    errors = np.linalg.norm(ours - reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert errors.max() < 0.01, errors
    if held:
        assert np.allclose(ours[:, mesh.boundary_mask], 0.3, atol=1e-6)


def test_stages_keep_a_stiff_cooling_stable():
    """A box cooling through held surfaces from a rough (random) start, frames of τ = 0.2: the
    M-norm of T never grows frame to frame, with τ λ_max ~50x the explicit Euler limit (2)."""
    mesh = box(9)
    rng = np.random.default_rng(0)
    inputs = {"surfaces_held": np.ones(mesh.n_points), "ambient_temperature": np.zeros(mesh.n_points)}
    data = Data(**heat_operator(mesh.with_point_data(**inputs), float(mesh.distance_to_boundary.max())))
    data.num_nodes = mesh.n_points
    operators = HeatOperators(data)
    assert operators.rate * 0.2 > 50 and operators.stages(0.2) > 5
    initial = np.where(mesh.boundary_mask, 0.0, rng.uniform(0, 1, mesh.n_points))
    frames = physics_rollout(mesh, inputs, initial, 10, on=0.0, tau=0.2)
    from meshop.data.fem_transient import heat_matrices

    mass = heat_matrices(mesh.points, mesh.cells["tetra"])[0]
    norms = np.sqrt(np.einsum("fi,fi->f", frames, (mass @ frames.T).T))
    assert (np.diff(norms) <= 1e-9).all() and norms[-1] < 0.01 * norms[0]


def test_sparse_product_gradient_is_the_dense_one():
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(6, 6))
    dense = dense + dense.T
    index = torch.as_tensor(np.vstack(np.nonzero(dense)))
    values = torch.as_tensor(dense[tuple(index.numpy())], dtype=torch.float32)
    x = torch.randn(6, 1, requires_grad=True)
    weights = torch.randn(6, 1)
    (_product(index, values, 6)(x) * weights).sum().backward()
    expected = torch.as_tensor(dense, dtype=torch.float32) @ weights
    assert torch.allclose(x.grad, expected, atol=1e-5)


def _heating_dataset(folder, n=3):
    """Boxes heated by a source that switches on at frame 3, surfaces held at T∞ = 0.2 K."""
    import json

    import meshop

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        mesh = box(5)
        mesh = Mesh(mesh.points * (1 + 0.3 * i), mesh.cells)
        surface = mesh.boundary_mask.astype(float)
        inputs = {"source": np.full(mesh.n_points, 2.0 / mesh.distance_to_boundary.max() ** 2),
                  "ambient_temperature": np.full(mesh.n_points, 0.2), "heat_transfer": 0.0 * surface,
                  "dirichlet_mask": surface}
        traj = HeatSimulation(mesh, 0.005, inputs).run(np.full(mesh.n_points, 0.2), 8, 2, t_on=0.03)
        held = traj.mesh.point_data.pop("dirichlet_mask")
        traj.mesh.point_data["surfaces_held"] = np.full(mesh.n_points, float(held.max() > 0.5))
        files.append(meshop.write_series(traj, folder / f"case_{i}.pvd").name)
    (folder / "dataset.json").write_text(json.dumps({
        "inputs": ["source", "heat_transfer", "ambient_temperature", "surfaces_held", "source_on"],
        "targets": ["temperature"], "samples": files, "fields": {"source": {"length_power": 2},
                                                                  "heat_transfer": {"length_power": 1}},
        "split": {"train": files[:1], "val": files[1:2], "test": files[2:]},
        "time": {"state": ["temperature"], "varying_inputs": ["source_on"], "frame_dt": 0.01}}))
    return folder


def test_physics_stepper_trains_and_rolls_out_a_source_switching_on(tmp_path):
    """`meshop train` with `physics: heat`: the checkpoint carries the physics option and the
    state coding, and its rollout of a test trajectory switches the source on when the reference
    series does (frame 3), following the FEM within 2 % at every frame."""
    import meshop
    from meshop import checkpoint
    from meshop.training import train

    data = _heating_dataset(tmp_path / "data")
    result = train(data, model="stepper", epochs=1, out=tmp_path / "run", progress=False, batch_size=4,
                   physics="heat", processor_options={"width": 8, "levels": 2, "cycles": 1, "kernel_width": 8,
                                                      "neighbors": 8})
    ckpt = checkpoint.load(result.best)
    assert ckpt.model.physics == "heat" and ckpt.model.frame_dt == 0.01
    assert ckpt.model.state_std.item() > 0 and "RKL2" in ckpt.dynamics["integrator"]
    reference = meshop.read_series(data / "case_2.pvd")
    errors = meshop.predict(reference, model=result.best, steps=8, write=False).errors["temperature"]
    assert errors.max() < 0.02, errors
    frozen = meshop.predict(reference.frame(0), model=result.best, steps=8, write=False)
    assert np.abs(frozen.trajectory.fields["temperature_pred"] - 0.2).max() < 0.01    # no source: stays at T∞
