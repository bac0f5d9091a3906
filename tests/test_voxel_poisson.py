"""The coarse voxel Poisson solve (meshop.geometry.voxel_poisson): analytic solutions, its
independence of the mesh, point clouds, and the prior a hybrid model reads (meshop.priors)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from skfem import MeshTet, MeshTri

import meshop
from meshop.geometry.voxel_poisson import voxel_poisson
from meshop.priors import coarse_prior, known_prior
from meshop.errors import MeshError
from meshop.fields import FieldSpec


def _ball(refinements: int, radius: float = 0.3, centre=(0.0, 0.0, 0.0)) -> meshop.Mesh:
    ball = MeshTet.init_ball(refinements)
    return meshop.Mesh(ball.p.T * radius + np.asarray(centre), {"tetra": ball.t.T})


def _prior(mesh: meshop.Mesh, source, boundary_values, voxels: int = 16384, cloud: bool = False) -> np.ndarray:
    spec = FieldSpec(inputs=["q", "g"], targets=["u"], mean={"q": [0.0], "g": [0.0], "u": [0.0]},
                     std={"q": [1.0], "g": [1.0], "u": [1.0]},
                     prior={"u": {"pde": "poisson", "source": "q", "boundary": "g", "voxels": voxels}})
    if cloud:
        mesh = meshop.Mesh(mesh.points, boundary_mask=mesh.boundary_mask)
    raw = {"q": np.broadcast_to(source, (mesh.n_points,))[:, None].astype(float),
           "g": np.broadcast_to(boundary_values, (mesh.n_points,))[:, None].astype(float)}
    return coarse_prior(mesh, spec, raw)[:, 0]


def _relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_uniform_heating_of_a_ball_matches_the_analytic_solution():
    # -Δu = 1 in a ball of radius R, u = 0 on its surface: u = (R² - r²) / 6
    mesh = _ball(3, radius=0.3, centre=(5.0, -2.0, 1.0))
    u = _prior(mesh, 1.0, 0.0)
    r2 = np.sum((mesh.points - (5.0, -2.0, 1.0)) ** 2, axis=1)
    assert _relative(u, (0.09 - r2) / 6) < 0.03
    assert np.all(u[mesh.boundary_mask] == 0.0)


def test_a_disk_in_2d_matches_the_analytic_solution():
    # -Δu = 2 in the unit disk, u = 1 on its circle: u = 1 + (1 - r²) / 2
    disk = MeshTri.init_circle(5)
    mesh = meshop.Mesh(disk.p.T, {"triangle": disk.t.T})
    u = _prior(mesh, 2.0, 1.0, voxels=4096)
    assert _relative(u, 1 + (1 - np.sum(mesh.points ** 2, axis=1)) / 2) < 0.01


def test_a_linear_boundary_value_gives_the_harmonic_linear_field():
    # u = 1 + x - 2 y + z / 2 is harmonic: with that boundary value and no source, the solve gives it
    mesh = _ball(3, radius=1.0)
    exact = 1 + mesh.points @ np.array([1.0, -2.0, 0.5])
    u = _prior(mesh, 0.0, exact)
    assert _relative(u, exact) < 0.02


def _cube(side_nodes: int) -> meshop.Mesh:
    cube = MeshTet.init_tensor(*(np.linspace(0.0, 1.0, side_nodes),) * 3)
    return meshop.Mesh(cube.p.T, {"tetra": cube.t.T})


def test_the_answer_does_not_depend_on_the_mesh_resolution():
    # the same cube meshed with 6^3 and 21^3 nodes: the same voxels, the same answer at the nodes
    # they share (an FEM solve would change by its discretization error)
    coarse, fine = _cube(6), _cube(21)
    u_coarse, u_fine = _prior(coarse, 1.0, 0.0), _prior(fine, 1.0, 0.0)
    key = lambda points: [tuple(p) for p in np.round(points * 20).astype(int)]
    at = {k: i for i, k in enumerate(key(fine.points))}
    shared = np.array([at[k] for k in key(coarse.points)])
    assert _relative(u_fine[shared], u_coarse) < 0.005


def test_a_point_cloud_uses_its_boundary_points():
    mesh = _ball(3, radius=0.3)
    u = _prior(mesh, 1.0, 0.0, cloud=True)
    assert _relative(u, (0.09 - np.sum(mesh.points ** 2, axis=1)) / 6) < 0.15


def test_known_prior_names_the_problem_and_the_fields():
    spec = FieldSpec(inputs=["source", "boundary_temperature"], targets=["temperature"])
    assert known_prior("heat3d", spec, "data")["temperature"]["source"] == "source"
    with pytest.raises(MeshError, match="darcy2d"):
        known_prior("darcy2d", spec, "data")
    with pytest.raises(MeshError, match="inputs source"):
        known_prior("heat3d", FieldSpec(inputs=["source"], targets=["temperature"]), "data")


@pytest.mark.parametrize("prior, message", [
    ({"other": {"pde": "poisson", "source": "q", "boundary": "g", "voxels": 4096}}, "must cover every target"),
    ({"u": {"pde": "heat", "source": "q", "boundary": "g", "voxels": 4096}}, "must be"),
    ({"u": {"pde": "poisson", "source": "nope", "boundary": "g", "voxels": 4096}}, "must be"),
    ({"u": {"pde": "poisson", "source": "q", "boundary": "g", "voxels": True}}, "must be"),
])
def test_a_malformed_prior_is_refused_by_name(prior, message):
    fields = {"inputs": ["q", "g"], "targets": ["u"], "mean": {"q": [0.0], "g": [0.0], "u": [0.0]},
              "std": {"q": [1.0], "g": [1.0], "u": [1.0]}, "prior": prior}
    with pytest.raises(ValueError, match=message):
        FieldSpec.from_dict(fields)


SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"


@pytest.mark.parametrize("problem, model, options", [
    ("heat3d", "mgno", dict(width=16, levels=2, ratio=8, cycles=1, kernel_width=16, sampling="voxel")),
    ("poisson2d", "gno", dict(width=16, layers=2, kernel_width=16)),
])
def test_a_model_trained_with_a_prior_starts_from_it_and_keeps_it(problem, model, options, tmp_path):
    """A run with ``prior=True`` stores the prior in its checkpoint; with its output layer zeroed
    the model answers the coarse solve itself, whose error against the samples' FEM solution is
    small; ``predict`` answers through the same path."""
    from meshop.graph import build_graph, decode
    from meshop.prediction import Predictor
    from meshop.training import Run

    run = Run(SAMPLES / problem, model, epochs=1, batch_size=1, out=tmp_path / "run", progress=False,
              prior=True, **options)
    result = run.fit()
    ckpt = meshop.checkpoint.load(result.best)
    assert ckpt.fields.prior == known_prior(problem, ckpt.fields, "")
    sample = meshop.read(sorted((SAMPLES / problem).glob("*.vtu"))[0])
    target = ckpt.fields.targets[0]
    data = build_graph(sample, ckpt.fields, ckpt.graph, prepare=ckpt.model.prepare,
                       mesh_graph=ckpt.model.uses_mesh_graph)
    with torch.no_grad():
        trained = decode(ckpt.model(data), data, ckpt.fields)[:, 0].numpy()
    predicted = Predictor(result.best).predict(sample).mesh.point_data[f"{target}_pred"]
    assert np.allclose(predicted, trained, rtol=1e-5, atol=1e-6 * np.abs(trained).max())
    last = ckpt.model.project[-1]                                     # the output Linear
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    with torch.no_grad():
        alone = decode(ckpt.model(data), data, ckpt.fields)[:, 0].numpy()
    raw = {name: ckpt.fields.input_array(sample, name)[0] for name in ckpt.fields.inputs}
    assert np.allclose(alone, coarse_prior(sample, ckpt.fields, raw)[:, 0], rtol=1e-5, atol=1e-6 * np.abs(alone).max())
    truth = np.asarray(sample.point_data[target])
    assert _relative(alone, truth) < 0.1


def test_the_enclosed_measure_equals_the_sum_of_the_cells():
    from meshop.geometry.boundary import enclosed_measure
    from meshop.geometry.cells import simplex_measure

    for mesh in (_ball(3, centre=(40.0, 0.0, -7.0)), _cube(5)):
        cells = simplex_measure(mesh.points, "tetra", mesh.cells["tetra"]).sum()
        assert enclosed_measure(mesh.centred_points, mesh.boundary) == pytest.approx(cells, rel=1e-12)
    disk = MeshTri.init_circle(3)
    mesh = meshop.Mesh(disk.p.T, {"triangle": disk.t.T})
    assert enclosed_measure(mesh.centred_points, mesh.boundary) == pytest.approx(
        simplex_measure(mesh.points, "triangle", mesh.cells["triangle"]).sum(), rel=1e-12)


def test_the_prior_of_a_part_far_from_the_origin_is_the_prior_near_it():
    """Solved on the graphs' snapped positions, with the bounding planes between voxel rows: the
    same part shifted by 1e6 or 1e9 gets the same prior (issue 18's contract, kept by the prior)."""
    bracket = meshop.read(Path(__file__).resolve().parents[1] / "examples" / "parts" / "bracket.vtu")
    near = _prior(meshop.Mesh(bracket.points, bracket.cells), 1.0, 0.0)
    for offset in (1e6, 1e9, np.array([3.1e8, -7.7e8, 5.3e8])):
        far = _prior(meshop.Mesh(bracket.points + offset, bracket.cells), 1.0, 0.0)
        assert _relative(far, near) < 1e-6


def test_a_grid_too_large_for_the_box_gets_coarser_voxels_and_a_flat_part_is_refused(monkeypatch):
    import meshop.geometry.voxel_poisson as voxel_module

    mesh = _ball(3, radius=0.3)
    monkeypatch.setattr(voxel_module, "MAX_GRID_CELLS", 4096)      # 16^3: about 1,400 voxels in the ball
    grid = voxel_module.part_grid(mesh.centred_points, None, mesh.distance_to_boundary, 16384, measure=0.113)
    assert np.prod(grid.shape) <= 4096
    u = _prior(mesh, 1.0, 0.0)
    assert _relative(u, (0.09 - np.sum(mesh.points ** 2, axis=1)) / 6) < 0.06
    with pytest.raises(ValueError, match="encloses no volume"):
        voxel_poisson(mesh.points, mesh.boundary_mask, np.ones(mesh.n_points), np.zeros(mesh.n_points),
                      distance=mesh.distance_to_boundary, measure=0.0)


def test_a_part_thinner_than_one_voxel_gets_the_surface_values_not_an_index_error():
    """A 1 x 1 x 0.002 plate has no voxel centre inside at 16,384 voxels: the prior was an
    IndexError (a traceback from `meshop predict`); it is g, the rise the grid cannot resolve."""
    from conftest import box_tetrahedra

    points, tets = box_tetrahedra(4)
    plate = meshop.Mesh(points * [1.0, 1.0, 0.002], {"tetra": tets})
    u = _prior(plate, 1.0, 0.25)
    np.testing.assert_allclose(u, 0.25)
