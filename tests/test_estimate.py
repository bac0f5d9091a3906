"""Error estimate and refinement: known discrete solutions perturbed by known errors, the estimate
stored in the written file, the CLI's warning and --refine."""

from __future__ import annotations

import meshio
import numpy as np
import pytest
import torch
from skfem import MeshTet
from typer.testing import CliRunner

import meshop
from meshop import checkpoint, models
from meshop.cli import app
from meshop.data.fem import solve_poisson
from meshop.errors import MeshError
from meshop.estimate import PoissonSystem
from meshop.fields import FieldSpec
from meshop.graph import GraphSettings, feature_count
from meshop.prediction import Predictor


def _heated_cube(n: int = 9) -> tuple[meshop.Mesh, np.ndarray]:
    """A unit-cube tet mesh with q = 1 + x, T = y / 20 on the surface, and its exact P1 solution."""
    m = MeshTet.init_tensor(*(np.linspace(0, 1, n),) * 3)
    mesh = meshop.Mesh(m.p.T, {"tetra": m.t.T})
    x, y = mesh.points[:, 0], mesh.points[:, 1]
    boundary = mesh.boundary_mask
    g = np.where(boundary, y / 20, 0.0)
    mesh = mesh.with_point_data(source=1.0 + x, boundary_temperature=g)
    exact = solve_poisson(mesh.points, m.t.T, 1.0 + x, boundary, g).u
    return mesh, exact


def _system(mesh: meshop.Mesh) -> PoissonSystem:
    return PoissonSystem(mesh, mesh.point_data["source"], mesh.point_data["boundary_temperature"])


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("kind", ["amplitude", "smooth bump", "nodal noise"])
def test_estimate_within_factor_two_of_a_known_error(kind):
    mesh, exact = _heated_cube()
    x, y, z = mesh.points.T
    interior = ~mesh.boundary_mask
    perturbation = {
        "amplitude": 0.2 * (exact - y / 20) * interior,  # the part the source heats, 20 % too hot
        "smooth bump": 0.05 * np.sin(np.pi * x) * np.sin(np.pi * y) * np.sin(np.pi * z),
        "nodal noise": 0.02 * np.random.default_rng(0).standard_normal(len(x)) * interior,
    }[kind]
    predicted = exact + perturbation
    true = _relative(predicted, exact)
    found = _system(mesh).estimate(predicted)
    assert 0.05 < true < 0.5
    assert 0.5 < found.relative / true < 2.0, (kind, true, found.relative)
    # the error field points the right way: it correlates with the true nodal error
    assert np.corrcoef(found.error, perturbation)[0, 1] > 0.8
    assert np.allclose(found.error[mesh.boundary_mask], perturbation[mesh.boundary_mask], atol=1e-15)


def test_exact_solution_estimates_zero():
    mesh, exact = _heated_cube(6)
    found = _system(mesh).estimate(exact)
    assert found.relative < 1e-8 and found.residual < 1e-8


def test_refine_reaches_tol_and_equals_the_direct_solve():
    mesh, exact = _heated_cube()
    system = _system(mesh)
    start = exact * (1 + 0.1 * mesh.points[:, 0])
    refined = system.refine(start, 1e-10)
    assert refined.residual <= 1e-10
    assert _relative(refined.values, exact) < 1e-8
    assert refined.iterations > 0 and refined.cold_iterations > 0
    # a start 1e-6 away from the answer needs fewer iterations than a start from zero
    close = system.refine(exact + 1e-6 * np.sin(7 * mesh.points[:, 1]) * ~mesh.boundary_mask, 1e-10)
    assert close.iterations < close.cold_iterations
    with pytest.raises(MeshError, match="between 0 and 1"):
        system.refine(exact, 0.0)


def test_points_in_no_cell_are_left_out():
    mesh, exact = _heated_cube(5)
    stray = meshop.Mesh(np.vstack([mesh.points, [[5.0, 5.0, 5.0]]]), mesh.cells,
                        {k: np.append(v, 0.0) for k, v in mesh.point_data.items()})
    found = _system(stray).estimate(np.append(exact * 1.1, 3.0))
    assert found.error[-1] == 0.0 and 0.05 < found.relative < 0.2


@pytest.fixture(scope="module")
def heat3d_checkpoint(tmp_path_factory):
    """An untrained GNO with heat3d's field coding and data card: its error is large."""
    mesh, exact = _heated_cube(5)
    spec = FieldSpec(["source", "boundary_temperature"], ["temperature"],
                     input_defaults={"source": 1.0, "boundary_temperature": 0.0},
                     length_powers={"source": 2, "temperature": 0},
                     dirichlet={"temperature": "boundary_temperature"},
                     linear_inputs=["source", "boundary_temperature"]).fit([mesh.with_point_data(temperature=exact)])
    torch.manual_seed(0)
    model = models.get("gno", feature_count(spec, 3), 1, 3, width=8, layers=2, kernel_width=8)
    path = tmp_path_factory.mktemp("ckpt") / "heat3d.safetensors"
    checkpoint.save(path, checkpoint.Checkpoint(model, "gno", spec, GraphSettings(k=8), data={"problem": "heat3d"}))
    return path


def test_prediction_carries_and_writes_the_estimate(heat3d_checkpoint, tmp_path):
    mesh, exact = _heated_cube(7)
    result = meshop.predict(mesh.with_point_data(temperature=exact), heat3d_checkpoint, out=tmp_path / "p.vtu",
                            refine=1e-9)
    found = result.estimate["temperature"]
    true = result.metrics["temperature"]["relative_l2"]
    assert 0.5 < found.relative / true < 2.0
    refined = result.mesh.point_data["temperature_refined"]
    assert _relative(refined, exact) < 1e-7 and result.refinement["temperature"].residual <= 1e-9
    assert any("CG iterations" in note and "from zero" in note for note in result.notes)
    written = meshio.read(tmp_path / "p.vtu")
    assert written.field_data["temperature_error_estimate"][0] == pytest.approx(found.relative)
    assert np.allclose(written.point_data["temperature_estimated_error"], found.error)
    assert meshop.read(tmp_path / "p.vtu").n_points == mesh.n_points


def test_model_of_an_unknown_problem_gets_no_estimate_and_says_so_once(heat3d_checkpoint):
    ckpt = checkpoint.load(heat3d_checkpoint)
    ckpt.data = {"problem": "darcy2d"}
    result = Predictor(ckpt).predict(_heated_cube(5)[0])
    assert result.estimate == {}
    assert [n for n in result.notes if "no error estimate" in n] == [
        "no error estimate: meshop knows no PDE for problem 'darcy2d'."]


def test_cli_prints_the_estimate_and_warns_above_ten_percent(heat3d_checkpoint, tmp_path):
    meshop.write(_heated_cube(5)[0], tmp_path / "part.vtu")
    run = CliRunner().invoke(app, ["predict", str(tmp_path / "part.vtu"), "--model", str(heat3d_checkpoint)])
    assert run.exit_code == 0, run.stderr
    assert "estimated relative error" in run.stdout
    assert "warning: the estimated error of temperature" in run.stderr and "--refine" in run.stderr
    bad = CliRunner().invoke(app, ["predict", str(tmp_path / "part.vtu"), "--model", str(heat3d_checkpoint),
                                   "--refine", "0"])
    assert bad.exit_code == 2 and "between 0 and 1" in bad.stderr


def test_field_data_is_written_to_vtu_read_back_and_warned_about_elsewhere(tmp_path):
    mesh = _heated_cube(3)[0].with_field_data(score=0.25, levels=np.array([1.0, 2.5, 4.0]))
    assert mesh.with_point_data(extra=mesh.points[:, 0]).field_data["score"][0] == 0.25
    meshop.write(mesh, tmp_path / "a.vtu")
    assert meshio.read(tmp_path / "a.vtu").field_data["score"][0] == 0.25
    back = meshop.read(tmp_path / "a.vtu")             # read, write, read: nothing lost on the way
    meshop.write(back, tmp_path / "b.vtu")
    again = meshop.read(tmp_path / "b.vtu")
    assert sorted(again.field_data) == ["levels", "score"]
    np.testing.assert_array_equal(again.field_data["levels"], [1.0, 2.5, 4.0])
    assert again.field_data["score"][0] == 0.25
    import pyvista as pv

    grid = pv.from_meshio(meshio.Mesh(mesh.points, list(mesh.cells.items())))
    grid.field_data["note"], grid.field_data["count"] = ["a", "b"], [3]
    grid.save(tmp_path / "other.vtu")                  # another tool's field data: numbers kept, text left out
    assert meshop.read(tmp_path / "other.vtu").field_data.keys() == {"count"}
    with pytest.warns(UserWarning, match="field data"):
        meshop.write(mesh, tmp_path / "a.vtk")
    with pytest.raises(MeshError, match="field data 'bad'"):
        mesh.with_field_data(bad=np.ones((2, 2)))


def test_the_warning_names_coincident_nodes_when_there_are_some():
    """A mesh cut in two by unmerged duplicate nodes is predicted ~800 % off (its inner faces count
    as surface); the warning then says so. Below the threshold there is no warning at all."""
    from meshop.estimate import WARN_ABOVE, ErrorEstimate, warning

    points = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    high = ErrorEstimate(relative=8.08, error=np.zeros(4), residual=0.5, iterations=4, seconds=0.0)
    line = warning("temperature", high, meshop.Mesh(points))
    assert line.startswith("the estimated error of temperature is 808.0 %")
    assert "The mesh has 1 node(s) on top of another node (first: node 3)" in line
    assert "on top of another" not in warning("temperature", high, meshop.Mesh(points[:3]))
    low = ErrorEstimate(relative=WARN_ABOVE / 2, error=np.zeros(4), residual=0.5, iterations=4, seconds=0.0)
    assert warning("temperature", low, meshop.Mesh(points)) is None
