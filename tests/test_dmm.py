"""The data-free mesh mover: its losses on known maps, its training step, adapt and the CLI."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import meshop
from meshop.adaptation import adapt, save_mover
from meshop.cli import app
from meshop.data.fem import l2_error
from meshop.data.problems.darcy2d import square_mesh
from meshop.errors import MeshError
from meshop.models.dmm import DMM, monge_ampere_step, prepare
from meshop.nn.monge_ampere import convexity_penalty, monge_ampere_residual
from meshop.nn.heat_potential import WIDTHS, heat_potential, potential_grids


def front(x):
    return np.tanh((np.linalg.norm(x - [0.2, 0.25], axis=1) - 0.5) / 0.05)


@pytest.fixture(scope="module")
def square():
    points, triangles = square_mesh(13)
    return points, triangles


def test_heat_potential_matches_the_exact_gaussian_sum_and_its_derivatives():
    """For smooth sources, the grid-spread sum gives φ, ∇φ and H(φ) within 2, 4 and 6 % of their
    largest values (measured 0.6, 2.1, 4.3 %: mostly the cutoff at 3 σ) of the exact sum over
    every node pair, whose derivatives autograd takes."""
    torch.manual_seed(0)
    pos = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    sources = torch.stack([torch.cos(3 * pos[:, 0]) * torch.sin(2 * pos[:, 1] + s) for s in range(len(WIDTHS))], 1)
    weights = torch.full((300,), 1 / 300, dtype=torch.float64)

    def exact(xi):                                                  # φ at xi (2,), all pairs
        r2 = ((xi - pos) ** 2).sum(1)
        return sum(4.0 / (4 * np.pi) * (weights * sources[:, s] * torch.exp(-r2 / (2 * w ** 2))).sum()
                   for s, w in enumerate(WIDTHS))
    phi, gradient, hessian = heat_potential(pos, potential_grids(pos.numpy()), sources, weights, 4.0)
    for k in range(0, 300, 37):
        xi = pos[k].clone().requires_grad_(True)
        value = exact(xi)
        expected_gradient = torch.autograd.grad(value, xi)[0]
        expected_hessian = torch.autograd.functional.hessian(exact, pos[k])
        assert abs(float(phi[k] - value.detach())) < 0.02 * float(phi.abs().max())
        assert float((gradient[k] - expected_gradient).abs().max()) < 0.04 * float(gradient.abs().max())
        assert float((hessian[k] - expected_hessian).abs().max()) < 0.06 * float(hessian.abs().max())


def test_heat_potential_sums_every_charged_grid_node_within_the_cutoff():
    """Brute force: every (node, grid node with charge) pair closer than CUTOFF σ, summed in float64
    from the grid nodes' positions, gives the same φ, ∇φ and H(φ) (the windows miss no grid node
    and the x-y factoring of the Gaussians is exact)."""
    from scipy.spatial import cKDTree

    from meshop.nn.heat_potential import CUTOFF, SPACING

    rng = np.random.default_rng(1)
    pos = rng.uniform(-1, 1, (300, 2)) * [1.0, 0.6]                     # not square: rows != columns
    sources = rng.normal(size=(300, len(WIDTHS)))
    grids = potential_grids(pos)
    phi, gradient, hessian = heat_potential(torch.as_tensor(pos), grids, torch.as_tensor(sources),
                                            torch.full((300,), 1 / 300, dtype=torch.float64), 4.0)
    expected = np.zeros((300, 6))                                        # φ, ∇φ, H xx, xy, yy
    for s, (sigma, grid) in enumerate(zip(WIDTHS, grids)):
        step, reach = SPACING * sigma, round(CUTOFF / SPACING)
        rows = int(np.floor(np.ptp(pos[:, 1]) / step)) + 2 + 2 * reach
        charge = np.zeros(grid.size + 1)
        np.add.at(charge, grid.corners.numpy().ravel(), (grid.shares.numpy() * 4.0 / (4 * np.pi * 300)
                                                          * sources[:, s:s + 1]).ravel())
        ids = np.flatnonzero(charge)
        nodes = pos.min(0) + step * (np.column_stack(np.divmod(ids, rows)) - reach)
        near = cKDTree(pos).sparse_distance_matrix(cKDTree(nodes), CUTOFF * sigma, output_type="ndarray")
        i, d = near["i"], pos[near["i"]] - nodes[near["j"]]
        value = np.exp(-(d ** 2).sum(1) / (2 * sigma ** 2)) * charge[ids[near["j"]]]
        terms = [value, -d[:, 0] * value / sigma ** 2, -d[:, 1] * value / sigma ** 2,
                 (d[:, 0] ** 2 / sigma ** 2 - 1) * value / sigma ** 2, d[:, 0] * d[:, 1] * value / sigma ** 4,
                 (d[:, 1] ** 2 / sigma ** 2 - 1) * value / sigma ** 2]
        for c, term in enumerate(terms):
            np.add.at(expected[:, c], i, term)
    got = np.column_stack([phi, gradient, hessian[:, 0, 0], hessian[:, 0, 1], hessian[:, 1, 1]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_compiled_heat_potential_equals_the_pytorch_path():
    """The C sums (inference) give the PyTorch path's φ, ∇φ and H(φ) to float64 rounding (1e-12
    of the largest value), on a wide mesh whose windows reach past its grid's first rows, with
    and without H; and a training step (autograd through the sources) still takes the PyTorch path."""
    from meshop.nn import compiled

    if not compiled.available():
        pytest.skip(f"meshop's compiled library does not run here: {compiled._unavailable or 'turned off'}")
    rng = np.random.default_rng(3)
    pos = rng.uniform(-1, 1, (500, 2)) * [1.0, 0.3] + [0.2, -0.5]
    sources = torch.as_tensor(rng.normal(size=(500, len(WIDTHS))))
    weights = torch.as_tensor(rng.uniform(0.5, 1.5, 500) / 500 / 1.0)
    compiled.use_compiled(False)
    try:
        expected = heat_potential(torch.as_tensor(pos), potential_grids(pos), sources, weights, 0.9)
    finally:
        compiled.use_compiled(None)
    for hessian in (True, False):
        got = heat_potential(torch.as_tensor(pos), potential_grids(pos), sources, weights, 0.9, hessian=hessian)
        for value, reference in zip(got[:2 + hessian], expected):
            assert float((value - reference).abs().max()) < 1e-12 * float(reference.abs().max())
        assert hessian or got[2] is None
    grids = potential_grids(pos)
    trained = heat_potential(torch.as_tensor(pos), grids, sources.clone().requires_grad_(True), weights, 0.9)
    assert trained[1].requires_grad and grids._scales is not None        # the grids were built for it


def test_bundled_mover_in_float32_is_its_float64_evaluation_to_1e_6(one_torch_thread, kernel_path):
    """The bundled DMM's ∇φ (float32 network, float64 Gaussian sums) is within 1e-6 (relative to
    its largest value) of the same network evaluated in float64: the fast path loses no accuracy."""
    import copy

    from meshop.adaptation import _bundled_mover

    points, triangles = square_mesh(21)
    sample = prepare(points, triangles, front(points))
    model = _bundled_mover()
    with torch.no_grad():
        gradient, _ = model(sample, hessian=False)
        for name in ("pos", "features", "weights"):
            setattr(sample, name, getattr(sample, name).double())
        exact, _ = copy.deepcopy(model).double()(sample, hessian=False)
    assert float((gradient - exact).abs().max() / exact.abs().max()) < 1e-6   # measured 1.2e-7


def test_monge_ampere_residual_and_convexity_on_known_maps():
    weights = torch.full((4,), 0.25)
    scale = torch.tensor([0.0, 1.0, -0.5, 3.0])                  # H = s I, det(I + H) = (1 + s)^2
    hessian = scale[:, None, None] * torch.eye(2)
    m = 1.0 / (1 + scale) ** 2                                    # m det = 1 everywhere: equidistributed
    loss, theta = monge_ampere_residual(m, hessian, weights)
    assert float(loss) < 1e-12 and float(theta) == pytest.approx(1.0)
    loss, _ = monge_ampere_residual(torch.ones(4), hessian, weights)
    assert float(loss) > 0.5
    assert float(convexity_penalty(hessian, weights)) == 0.0
    folded = torch.diag(torch.tensor([-3.0, 0.0])).expand(4, 2, 2)  # λ_min(I + H) = -2
    assert float(convexity_penalty(folded, weights)) == pytest.approx(4.0)


def test_untrained_mover_is_the_identity_and_the_step_trains(square, one_torch_thread):
    torch.manual_seed(0)
    points, triangles = square
    sample = prepare(points, triangles, front(points))
    model = DMM(width=16, layers=2, head_width=32)
    moved, quality = model.move(sample)
    np.testing.assert_allclose(moved, points, atol=1e-12)
    assert quality.n_inverted == 0 and quality.halvings == 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss, logs = monge_ampere_step(model, [sample])
        loss.backward()
        optimizer.step()
        first = first if first is not None else logs
    assert set(logs) == {"monge_ampere", "convexity", "boundary", "cells", "loss"}
    assert logs["loss"] < 0.8 * first["loss"], (first, logs)           # measured 2.80 -> 1.98
    moved, quality = model.move(sample)
    assert quality.n_inverted == 0
    ratio = l2_error(moved, triangles, front(moved), front) / l2_error(points, triangles, front(points), front)
    assert ratio < 0.8, ratio                                           # measured 0.71
    boundary = sample.slider.boundary
    on_edge = np.isclose(moved[boundary], 0.0, atol=1e-9) | np.isclose(moved[boundary], 1.0, atol=1e-9)
    assert on_edge.any(axis=1).all()


def test_adapt_classical_and_with_a_checkpoint(square, tmp_path):
    points, triangles = square
    mesh = meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)})
    fine, fine_cells = square_mesh(21)                                 # the bundled mover's mesh scale
    result = meshop.adapt(meshop.Mesh(fine, {"triangle": fine_cells}, {"u": front(fine)}), "u")  # lazy name
    assert result.method == "dmm" and result.quality.n_inverted == 0    # the bundled mover
    moved = result.mesh.points
    ratio = l2_error(moved, fine_cells, front(moved), front) / l2_error(fine, fine_cells, front(fine), front)
    assert ratio < 0.85, ratio                                          # measured 0.80
    np.testing.assert_allclose(result.mesh.point_data["displacement"], moved - fine)
    result = meshop.adapt(mesh, "u", method="classical")
    assert result.method == "classical" and result.quality.n_inverted == 0
    moved = result.mesh.points
    assert l2_error(moved, triangles, front(moved), front) < 0.9 * l2_error(points, triangles, front(points), front)
    np.testing.assert_allclose(result.mesh.point_data["displacement"], moved - points)
    path = save_mover(DMM(width=8, layers=1, head_width=16), tmp_path / "mover.safetensors")
    identity = adapt(mesh, "u", model=path)
    assert identity.method == "dmm"
    np.testing.assert_allclose(identity.mesh.points, points, atol=1e-12)
    np.testing.assert_allclose(identity.mesh.point_data["u"], mesh.point_data["u"], atol=1e-12)


def test_adapt_refuses_bad_input(square, tmp_path):
    points, triangles = square
    mesh = meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)})
    with pytest.raises(MeshError, match="no point field 'v'"):
        adapt(mesh, "v")
    with pytest.raises(MeshError, match="unknown adapt method"):
        adapt(mesh, "u", method="magic")
    cube = meshop.Mesh(np.random.default_rng(0).random((4, 3)), {"tetra": np.array([[0, 1, 2, 3]])})
    with pytest.raises(MeshError, match="2D triangle meshes"):
        adapt(cube, np.zeros(4))


def test_cli_adapt(square, tmp_path):
    points, triangles = square
    source = tmp_path / "front.vtu"
    meshop.write(meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)}), source)
    out, picture = tmp_path / "moved.vtu", tmp_path / "moved.png"
    runner = CliRunner()
    result = runner.invoke(app, ["adapt", str(source), "--field", "u", "--out", str(out), "--method", "classical",
                                 "--picture", str(picture)])
    assert result.exit_code == 0, result.output
    assert "0 inverted" in result.stdout and "min angle" in result.stdout
    moved = meshop.read(out)
    assert moved.n_points == len(points) and np.abs(moved.points - points).max() > 1e-3
    assert picture.stat().st_size > 10_000
    bad = runner.invoke(app, ["adapt", str(source), "--field", "nope", "--out", str(tmp_path / "x.vtu")])
    assert bad.exit_code == 2 and not (tmp_path / "x.vtu").exists()
    assert "no point field 'nope'" in bad.stderr and "Traceback" not in bad.output


def test_bundled_mover_on_a_domain_with_holes():
    """A random gmsh domain with holes: no inverted cell, boundary nodes on the boundary, and
    a lower interpolation error of a front than the original mesh."""
    from meshop.data.shapes import random_domain_2d
    from meshop.geometry.moving import BoundarySlider

    points, triangles = random_domain_2d(np.random.default_rng(3), target_nodes=500)

    def f(x):
        return np.tanh((np.linalg.norm(x - points.mean(0), axis=1) - 0.3 * np.ptp(points, 0).max()) / 0.05)
    result = adapt(meshop.Mesh(points, {"triangle": triangles}, {"u": f(points)}), "u")
    assert result.method == "dmm" and result.quality.n_inverted == 0
    moved = result.mesh.points[:, :2]
    slider = BoundarySlider(points, triangles)
    np.testing.assert_allclose(slider.project(moved)[slider.boundary], moved[slider.boundary], atol=1e-9)
    ratio = l2_error(moved, triangles, f(moved), f) / l2_error(points, triangles, f(points), f)
    assert ratio < 0.95, ratio                                          # measured 0.60


def test_bundled_mover_gives_the_moves_pinned_in_tests_data(kernel_path):
    """The bundled DMM moves a front on a holed domain (504 nodes) to where the code of commit
    3511065 moved it (bundled_dmm_3511065.npz, recorded before the potential ran in C and the
    boundary slider kept its segments), to 1e-6 of the domain's size, on either kernel path."""
    from pathlib import Path

    from meshop import Mesh
    from meshop.adaptation import adapt

    pinned = np.load(Path(__file__).parent / "data" / "bundled_dmm_3511065.npz")
    points = pinned["points"]
    moved = adapt(Mesh(points, {"triangle": pinned["triangles"]}), pinned["u"]).mesh.points[:, :2]
    assert np.abs(moved - pinned["moved"]).max() <= 1e-6 * float(np.ptp(points, axis=0).max())
    assert np.abs(pinned["moved"] - points).max() > 1e-2 * float(np.ptp(points, axis=0).max())   # it does move


def test_adapt_refuses_meshes_its_point_location_cannot_take(square):
    """Unused points (an IndexError before), duplicate nodes and overlapping triangles (a sentence
    without the file or the cause before): each named."""
    points, triangles = square
    u = front(points)
    spare = meshop.Mesh(np.vstack([points, [[0.5, 0.51]]]), {"triangle": triangles}, {"u": np.append(u, 0.0)},
                        source="spare.vtu")
    with pytest.raises(MeshError, match=r"spare.vtu: 1 point\(s\) belong to no triangle \(first: point 169\)"):
        adapt(spare, "u")
    seam = triangles.copy()
    seam[0, np.argmax(seam[0] == triangles[0].min())] = len(points)     # a copy of a node, used by one triangle
    twin = meshop.Mesh(np.vstack([points, points[triangles[0].min()]]), {"triangle": seam}, {"u": np.append(u, 0.0)})
    with pytest.raises(MeshError, match=f"1 node\\(s\\) sit where another node is \\(first: nodes {triangles[0].min()} "
                                        f"and 169"):
        adapt(twin, "u")
    folded = points.copy()
    folded[14] = [0.9, 0.9]                                             # an inner node dragged over its neighbours
    with pytest.raises(MeshError, match="the triangles overlap"):
        adapt(meshop.Mesh(folded, {"triangle": triangles}, {"u": u}), "u", method="classical")


def test_cli_adapt_keeps_the_input_and_other_files_unless_told(square, tmp_path, monkeypatch):
    """`--out` on the input mesh (or any file meshop did not write) replaced it silently; and a
    picture that could not be written left the moved mesh behind with a traceback."""
    points, triangles = square
    source = meshop.write(meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)}), tmp_path / "front.vtu")
    before = source.read_bytes()
    runner = CliRunner()
    for out in (source, tmp_path / "notes.vtu"):
        out.touch()
        run = runner.invoke(app, ["adapt", str(source), "--field", "u", "--out", str(out), "--method", "classical"])
        assert run.exit_code == 2 and "Traceback" not in run.output, run.output
        assert "pass --overwrite" in run.stderr and str(out) in run.stderr
    assert source.read_bytes() == before
    run = runner.invoke(app, ["adapt", str(source), "--field", "u", "--out", str(tmp_path / "notes.vtu"),
                              "--method", "classical", "--overwrite"])
    assert run.exit_code == 0, run.output
    assert meshop.read(tmp_path / "notes.vtu").n_points == len(points)
    from meshop.viz import scene

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(scene, "atomic_path", read_only)
    run = runner.invoke(app, ["adapt", str(source), "--field", "u", "--out", str(tmp_path / "moved.vtu"),
                              "--method", "classical", "--picture", str(tmp_path / "moved.png")])
    assert run.exit_code == 2 and "Traceback" not in run.output, run.output
    assert "moved.png: could not write this .png file" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.vtu", "notes.vtu"]


def test_cli_mover_and_other_checkpoints_in_the_wrong_command(square, tmp_path):
    """The mesh mover given to `predict` (with or without --steps) was a KeyError traceback; a
    bundled model of another kind given to `adapt --model` by name said "no such checkpoint file"."""
    points, triangles = square
    source = meshop.write(meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)}), tmp_path / "front.vtu")
    runner = CliRunner()
    for extra in ([], ["--steps", "2"]):
        result = runner.invoke(app, ["predict", str(source), "--model", "dmm", *extra])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "dmm: a 'dmm' checkpoint, a mesh mover: it moves the nodes of a 2D mesh and predicts no fields; " \
               "use `meshop adapt MESH --field FIELD --model dmm`" in result.stderr
    result = runner.invoke(app, ["adapt", str(source), "--field", "u", "--out", str(tmp_path / "x.vtu"),
                                 "--model", "mpm2d"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "mpm2d: a 'giorom' checkpoint, not a mesh mover (dmm)." in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.vtu"]


def test_adapt_arguments_of_the_wrong_type_are_named(square):
    """Not an AttributeError ('int' object has no attribute 'eval'), an IndexError for a scalar
    field, numpy's string conversion, or a ZeroDivisionError for beta=-1."""
    points, triangles = square
    mesh = meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)})
    cases = [((points, "u"), {}, TypeError, "adapt needs a meshop.Mesh or a mesh file path, got ndarray"),
             ((mesh, 5), {}, MeshError, r"finite nodal values .* got shape \(\)"),
             ((mesh, None), {}, TypeError, "field must be the name of a point field"),
             ((mesh, np.full(len(points), "a")), {}, MeshError, "the field to adapt to must be real numbers"),
             ((mesh, "u"), {"model": 123}, TypeError, "model must be a DMM checkpoint path"),
             ((mesh, "u"), {"method": "classical", "beta": -1}, MeshError, "--beta must be a positive number"),
             ((mesh, "u"), {"method": "classical", "beta": "x"}, MeshError, "--beta must be a positive number")]
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            adapt(*args, **kwargs)


def test_a_field_without_fronts_leaves_the_mesh_unmoved(square, tmp_path):
    """A constant field (or one constant up to rounding) has no fronts: the bundled DMM still moved
    the nodes by up to 2.5 % of the size, and the classical mover relaxed a zero residual 400 steps."""
    points, triangles = square
    for values, says in ((np.full(len(points), 3.0), "field 'u' is constant"),
                         (1.0 + 1e-14 * front(points), "field 'u' varies by only")):
        mesh = meshop.Mesh(points, {"triangle": triangles}, {"u": values})
        for method in ("dmm", "classical"):
            result = adapt(mesh, "u", method=method)
            np.testing.assert_array_equal(result.mesh.points, points)
            assert not result.mesh.point_data["displacement"].any() and result.quality.n_inverted == 0
            assert [f"{says}" in note and "the mesh is returned unmoved" in note for note in result.notes] == [True]
    source = meshop.write(meshop.Mesh(points, {"triangle": triangles}, {"u": np.zeros(len(points))}),
                          tmp_path / "flat.vtu")
    run = CliRunner().invoke(app, ["adapt", str(source), "--field", "u", "--out", str(tmp_path / "moved.vtu")])
    assert run.exit_code == 0, run.output
    assert f"({len(points)} nodes, none moved)" in run.stdout and "field 'u' is constant" in run.stderr


def test_bundled_mover_on_a_domain_whose_holes_touch():
    """Two holes touching at a node: refused before; moved now, the touching node fixed."""
    from test_moving_mesh import pinched_square

    points, triangles = pinched_square()
    pinch = int(np.argmin(np.linalg.norm(points - 0.5, axis=1)))
    result = adapt(meshop.Mesh(points, {"triangle": triangles}, {"u": front(points)}), "u")
    moved = result.mesh.points[:, :2]
    assert result.method == "dmm" and result.quality.n_inverted == 0
    np.testing.assert_array_equal(moved[pinch], points[pinch])
    ratio = l2_error(moved, triangles, front(moved), front) / l2_error(points, triangles, front(points), front)
    assert ratio < 0.95, ratio                                          # measured 0.83
