"""Solvers on a coarse mesh answering on the fine mesh that carries it (the MM-PDE protocol):
burgers2d stored fine, the P1 maps between the meshes, batching, and mppde / mmpde trained so."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

import meshop
from meshop import checkpoint
from meshop.data.generate import generate
from meshop.data.problems.burgers2d import burgers2d_sample
from meshop.errors import MeshError
from meshop.geometry.coarse import COARSE_TRIANGLES, coarse_triangles, p1_stencil, with_coarse
from meshop.graph import build_graph
from meshop.metrics import rollout_errors
from meshop.models.coarse import attach_coarse, coarse_view, prolong
from meshop.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SAMPLE = dict(resolution=40, domain="random", frames=4, stride=2, nu=0.01, refine=1)


def _sample(seed: int = 0, **options):
    return burgers2d_sample(np.random.default_rng(seed), **{**SAMPLE, **options})[0]


def test_burgers2d_stored_fine_holds_the_coarse_solve_at_its_first_nodes_and_carries_the_coarse_mesh(tmp_path):
    coarse, fine = _sample(store="mesh"), _sample(store="fine")
    n = coarse.n_points
    assert fine.n_points == fine.metadata["solved_nodes"] > n == fine.metadata["coarse_nodes"]
    np.testing.assert_array_equal(fine.fields["velocity"][:, :n], coarse.fields["velocity"])
    np.testing.assert_array_equal(fine.mesh.points[:n], coarse.mesh.points)
    np.testing.assert_array_equal(coarse_triangles(fine.mesh), coarse.mesh.cells["triangle"])
    again = meshop.read_series(meshop.write_series(fine, tmp_path / "fine.pvd"))      # a series keeps it
    np.testing.assert_array_equal(coarse_triangles(again.mesh), coarse.mesh.cells["triangle"])
    with pytest.raises(MeshError, match="store must be one of"):
        _sample(store="fine", refine=0)


def test_a_mesh_without_or_with_a_broken_coarse_mesh_is_refused_in_one_sentence():
    mesh = _sample(store="mesh").mesh
    with pytest.raises(MeshError, match="carries no coarse mesh"):
        coarse_triangles(mesh)
    for values, match in (([0, 1], "3 per triangle"), ([0, 1, 2.5], "whole node ids"),
                          ([0, 1, mesh.n_points], "names node"), ([0, 0, 1], "zero area")):
        with pytest.raises(MeshError, match=match):
            coarse_triangles(mesh.with_field_data(**{COARSE_TRIANGLES: values}))


def test_p1_maps_between_the_meshes_reproduce_linear_fields_exactly():
    """P1 interpolation is exact for linear fields: from the coarse mesh to every fine node (the
    prolongation), and from the fine mesh to any points inside it (how the moved mesh samples)."""
    fine = _sample(store="fine").mesh
    linear = lambda p: np.stack([1.0 + 2.0 * p[:, 0] - 3.0 * p[:, 1], p[:, 0] + p[:, 1]], axis=1)  # noqa: E731
    graph = attach_coarse(torch_graph(fine), fine)
    view = coarse_view(graph)
    pos = graph.pos.double()
    values = torch.as_tensor(linear(pos[view.index].numpy()))
    on_fine = prolong(values, view.local, graph.prolong_index, graph.prolong_weight.double())
    np.testing.assert_allclose(on_fine.numpy(), linear(pos.numpy()), atol=1e-5)
    rng = np.random.default_rng(1)
    triangles = fine.cells["triangle"][rng.integers(0, len(fine.cells["triangle"]), 300)]
    corners = rng.dirichlet(np.ones(3), 300)
    corners[:100] = corners[:100] * [1, 1, 0] / corners[:100, :2].sum(1, keepdims=True)   # on edges
    queries = np.einsum("mk,mkd->md", corners, pos.numpy()[triangles])
    ids, weights = p1_stencil(pos.numpy(), fine.cells["triangle"], queries)
    sampled = np.einsum("mk,mkc->mc", weights, linear(pos.numpy())[ids])
    np.testing.assert_allclose(sampled, linear(queries), atol=1e-9)


def torch_graph(mesh):
    from torch_geometric.data import Data

    points = mesh.points[:, :2]
    return Data(pos=torch.as_tensor((points - points.mean(0)) / np.ptp(points, 0).max(), dtype=torch.float32),
                boundary_mask=torch.as_tensor(mesh.boundary_mask), num_nodes=mesh.n_points)


@pytest.fixture(scope="module")
def fine_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fine")
    data = generate("burgers2d", 4, root / "data", seed=0, progress=False, split=(0.5, 0.25, 0.25),
                    **{**SAMPLE, "store": "fine", "frames": 5})
    tiny = dict(epochs=15, batch_size=2, lr=1e-2, progress=False, unroll=1, latent=16, coarse=True)
    runs = {name: train(data, model=name, out=root / name, **tiny, **extra)
            for name, extra in (("mppde", {"layers": 2}), ("mmpde", {"layers": 1, "mover": "classical"}))}
    return data, runs


@pytest.mark.parametrize("name", ["mppde", "mmpde"])
def test_coarse_solvers_train_answer_on_the_fine_nodes_and_batch_like_one_mesh_at_a_time(fine_runs, name):
    data, runs = fine_runs
    losses = [row["train_loss"] for row in runs[name].history]
    ckpt = checkpoint.load(runs[name].best)
    assert ckpt.model.config["coarse"] is True
    series = [meshop.read_series(path) for path in sorted(data.glob("*.pvd"))[:2]]
    result = meshop.predict(series[0], model=ckpt, steps=3, write=False)
    field = result.trajectory.fields["velocity_pred"]
    assert field.shape == (4, series[0].n_points, 2) and np.isfinite(field).all()
    velocity = series[0].fields["velocity"]
    persistence = rollout_errors(np.repeat(velocity[:1], 4, axis=0), velocity[:4])
    # a coarse stepper's floor on the fine nodes is high (the true coarse increments, prolonged,
    # are no better than persistence here): it must learn, and beat persistence at every step
    assert losses[-1] < 0.9 * losses[0], losses
    assert np.all(result.errors["velocity"][1:] < persistence[1:]), (result.errors["velocity"], persistence)
    # the same step of two different meshes, batched and one at a time (the ids' offsets)
    model = ckpt.model.eval()
    graphs = []
    for traj in series:
        mesh = traj.frame(1)
        graph = model.attach_mesh(build_graph(mesh, ckpt.fields, ckpt.graph, with_targets=False), mesh)
        state = torch.as_tensor(ckpt.fields.encode("velocity", mesh.point_data["velocity"], 1.0), dtype=torch.float32)
        graphs.append(model.attach_window(graph, mesh, state, 1, {}))
        graphs[-1].state = state
    with torch.no_grad():
        alone = [model.step(g, g.state) for g in graphs]
        batch = next(iter(DataLoader(graphs, batch_size=2)))
        together = model.step(batch, batch.state)
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-5)


def test_a_coarse_model_names_the_missing_coarse_mesh(fine_runs):
    data, runs = fine_runs
    traj = meshop.read_series(next(data.glob("*.pvd")))
    plain = meshop.Trajectory(meshop.Mesh(traj.mesh.points, traj.mesh.cells), traj.times, traj.fields,
                              metadata=traj.metadata)
    with pytest.raises(MeshError, match="carries no coarse mesh"):
        meshop.predict(plain, model=checkpoint.load(runs["mppde"].best), steps=2, write=False)


def test_the_moved_coarse_mesh_samples_the_fine_state_where_its_nodes_went(fine_runs):
    """mmpde's moved branch reads the fine state's P1 interpolant at the moved nodes, and its answer
    reaches the fine nodes by the moved mesh's P1 interpolation: both exact on linear fields."""
    data, runs = fine_runs
    ckpt = checkpoint.load(runs["mmpde"].best)
    traj = meshop.read_series(next(data.glob("*.pvd")))
    mesh = traj.frame(2)
    graph = ckpt.model.attach_mesh(build_graph(mesh, ckpt.fields, ckpt.graph, with_targets=False), mesh)
    state = torch.as_tensor(mesh.point_data["velocity"], dtype=torch.float32)
    moved = ckpt.model.attach_moved(graph, mesh, state)
    view = coarse_view(moved)
    assert moved.moved_pos.shape == (len(view.index), 2) and moved.moved_prolong_index.shape == (3, mesh.n_points)
    assert float((moved.moved_pos - view.pos).norm(dim=1).max()) > 1e-3             # the coarse mesh moved
    pos = moved.pos.double()
    linear = 0.5 + pos[:, :1] - 2.0 * pos[:, 1:]
    sampled = (moved.sample_weight.double() * linear[moved.sample_index].squeeze(-1).T).sum(1)
    expected = 0.5 + moved.moved_pos[:, 0].double() - 2.0 * moved.moved_pos[:, 1].double()
    torch.testing.assert_close(sampled, expected, atol=1e-5, rtol=0)
    at_moved = (0.5 + moved.moved_pos[:, :1] - 2.0 * moved.moved_pos[:, 1:]).double()
    on_fine = prolong(at_moved, view.local, moved.moved_prolong_index, moved.moved_prolong_weight.double())
    # exact where the moved mesh covers the fine nodes: away from the boundary, along which boundary
    # nodes slide past the polygon's vertices (cutting them off a little)
    from scipy.spatial import cKDTree

    edges = view.pos[view.edge_index[0]] - view.pos[view.edge_index[1]]
    wall = cKDTree(pos[mesh.boundary_mask].numpy()).query(pos.numpy())[0]
    away = torch.as_tensor(wall > 1.5 * float(edges.norm(dim=1).max()))
    assert int(away.sum()) >= 20
    torch.testing.assert_close(on_fine[away], linear[away], atol=1e-5, rtol=0)


def test_a_fine_mesh_keeps_its_coarse_mesh_through_with_coarse():
    mesh = _sample(store="mesh").mesh
    triangles = mesh.cells["triangle"]
    np.testing.assert_array_equal(coarse_triangles(with_coarse(mesh, triangles)), triangles)


def _carrying(mesh, values):
    return mesh.with_field_data(**{COARSE_TRIANGLES: np.asarray(values)})


def test_node_ids_out_of_range_are_named_as_given():
    """Was 'names node 57 or -1' (the largest id, in range) and, for 1e300, a wrapped
    -9223372036854775808 after a numpy cast warning."""
    mesh = _sample(store="fine").mesh
    flat = coarse_triangles(mesh).ravel().astype(np.float64)
    for bad, shown in ((-1.0, "-1"), (1e300, "1e\\+300"), (float(mesh.n_points), str(mesh.n_points))):
        values = flat.copy()
        values[4] = bad
        with pytest.raises(MeshError, match=f"names node {shown}; the mesh has nodes 0 to {mesh.n_points - 1}"):
            coarse_triangles(_carrying(mesh, values))


def test_overlapping_crossing_or_partial_coarse_meshes_are_refused_in_one_sentence():
    """Were: duplicated triangles, matplotlib's 'Triangulation is invalid' without the file or the
    field; a coarse mesh over part of the fine one, accepted (the fine nodes outside it took the
    value at a nearby coarse triangle's edge)."""
    mesh = _sample(store="fine").mesh
    triangles = coarse_triangles(mesh)
    used = np.unique(triangles)
    points = mesh.points[used]
    across = used[[np.argmin(points[:, 0]), np.argmax(points[:, 0]), np.argmax(points[:, 1])]]
    for values, match in ((np.concatenate([triangles, triangles[:3]]), "overlap: 2 of them lie on the same side"),
                          (np.concatenate([triangles, triangles[:3, [0, 2, 1]]]), "overlap"),
                          (np.concatenate([triangles, [across]]), "do not form a valid triangle mesh"),
                          (triangles[: len(triangles) // 2], "cover only part of the mesh"),
                          (triangles[:1], "cover only part of the mesh")):
        with pytest.raises(MeshError, match=match) as err:
            coarse_triangles(_carrying(mesh, values.ravel()))
        assert "\n" not in str(err.value) and COARSE_TRIANGLES in str(err.value)
    # either orientation, or both mixed, is one coarse mesh; so is the fine mesh itself
    mixed = triangles.copy()
    mixed[::2] = mixed[::2, [0, 2, 1]]
    for values in (triangles[:, [0, 2, 1]], mixed, mesh.cells["triangle"]):
        np.testing.assert_array_equal(coarse_triangles(_carrying(mesh, values.ravel())), values)


def test_a_coarse_model_on_3d_data_or_an_xdmf_series_names_the_real_cause(tmp_path):
    """Was 'the mesh carries no coarse mesh ... write the data with one' for both: a 3D mesh can
    carry none, and XDMF drops the field data the series was written with."""
    from meshop.models.mmpde import MMPDE
    from meshop.models.mppde import MPPDE

    with pytest.raises(ValueError, match="coarse=True runs on the coarse triangle mesh a 2D mesh carries; the data is 3D"):
        MPPDE(2, 2, 3, coarse=True)
    MPPDE(2, 2, 3)                                            # the solver on the mesh itself stays 3D-able
    assert MMPDE(2, 2, 2, coarse=True).coarse
    cube = meshop.Mesh(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]), {"tetra": np.array([[0, 1, 2, 3]])})
    with pytest.raises(MeshError, match="made of triangles of a planar mesh; this mesh is 3D"):
        coarse_triangles(_carrying(cube, [0, 1, 2]))
    fine = _sample(store="fine")
    series = meshop.read_series(meshop.write_series(fine, tmp_path / "fine.xdmf"))
    with pytest.raises(MeshError, match=r"fine\.xdmf: the mesh carries no coarse mesh .*XDMF keeps no field data, "
                                        r"so write the series as \.pvd\.$"):
        coarse_triangles(series.mesh)
