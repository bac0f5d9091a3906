"""MGNO, BENO and AMG: fitting, batching, node-order and checkpoint invariants, 2D and 3D."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skfem import MeshTet, MeshTri
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from meshop import Mesh, checkpoint, models
from meshop.fields import FieldSpec
from meshop.graph import (GraphSettings, build_graph, decode, feature_count, feature_layout, geometry_feature_count,
                          positional_layout)
from meshop.metrics import relative_l2
from meshop.models.transforms import high_frequency_score
from meshop.models.multilevel import MultiLevelData

NEW_MODELS = ["mgno", "beno", "amg"]
#: the models and variants the invariance tests run: a name, or "<name>:<variant>" with the
#: variant's options in SMALL
VARIANTS = ["mgno", "mgno:coarse-cycles", "beno", "amg"]
#: small configurations that keep every test below a few seconds on 2 CPU cores
SMALL = {"mgno": {"width": 32, "cycles": 1},
         "mgno:coarse-cycles": {"width": 32, "cycles": 2, "smooth_finest": False, "finest_once": True},
         "beno": {"width": 32, "cycles": 1, "d_model": 32, "encoder_layers": 1},
         "amg": {"width": 32, "blocks": 2}}
SETTINGS = GraphSettings()
#: relative L2 after 250 Adam steps; AMG's nodes away from its two sparse graphs learn through
#: per-node MLPs and token attention, which fit a smooth field more slowly than kernel integrals
FIT_ERROR = {"mgno": 0.05, "mgno:coarse-cycles": 0.05, "beno": 0.05, "amg": 0.08}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def with_fields(points: np.ndarray, cells: dict, source: np.ndarray, u: np.ndarray) -> Mesh:
    """A poisson2d-like sample: inputs ``source`` and ``boundary_value`` (u on the boundary, 0
    inside), target ``u``."""
    mesh = Mesh(points, cells)
    return mesh.with_point_data(source=source, boundary_value=np.where(mesh.boundary_mask, u, 0.0), u=u)


def square_mesh(refine: int, stretch: float = 0.0) -> Mesh:
    """Unit square (x stretched by ``1 + stretch``) with u = x(1-x) sin(y)."""
    grid = MeshTri.init_symmetric().refined(refine)
    p = grid.p.T.copy()
    p[:, 0] *= 1 + stretch
    x, y = p[:, 0], p[:, 1]
    return with_fields(p, {"triangle": grid.t.T}, np.sin(3 * x) + y, x * (1 - x) * np.sin(y))


def cube_mesh(refine: int) -> Mesh:
    grid = MeshTet().refined(refine)
    p = grid.p.T.copy()
    x, y, z = p.T
    return with_fields(p, {"tetra": grid.t.T}, np.cos(2 * z) + x, x * (1 - x) * np.sin(y) + z)


def spec_for(meshes) -> FieldSpec:
    """Coded like poisson2d: x = [geometry, source, boundary value, extended boundary value]."""
    return FieldSpec(["source", "boundary_value"], ["u"], dirichlet={"u": "boundary_value"}).fit(meshes)


def make_model(variant: str, spec: FieldSpec, dim: int, **overrides) -> models.NeuralOperator:
    torch.manual_seed(0)
    name = variant.split(":")[0]
    return models.get(name, feature_count(spec, dim), 1, dim, features=feature_layout(spec, dim),
                      **{**SMALL.get(variant, {}), **overrides})


def graphs_for(model, meshes, spec):
    return [build_graph(m, spec, SETTINGS, prepare=model.prepare, mesh_graph=model.uses_mesh_graph)
            for m in meshes]


# ---------------------------------------------------------------------------- registry
def test_registered_with_cpu_sized_defaults():
    assert set(NEW_MODELS) <= set(models.available())
    for name in NEW_MODELS:
        for dim in (2, 3):
            model = models.get(name, geometry_feature_count(dim) + 3, 1, dim)
            assert 50_000 <= model.n_parameters() <= 300_000, (name, dim, model.n_parameters())
        assert model.config == json.loads(json.dumps(models.defaults(name)))


def test_beno_reads_its_features_by_name():
    spec = FieldSpec(["source", "boundary_value"], ["u"], dirichlet={"u": "boundary_value"})
    spec.mean = {"source": [0.0], "boundary_value": [0.0], "u": [0.0]}
    layout = feature_layout(spec, 2)          # geometry, source, boundary_value, extended:boundary_value
    model = models.get("beno", feature_count(spec, 2), 1, 2, features=layout)
    assert model.source_columns == [6] and model.boundary_columns == [7, 8] and model.normal_columns == [4, 5]
    assert model.config["source"] is None and model.config["boundary"] is None  # derived from the layout
    darcy_like = positional_layout(geometry_feature_count(2) + 1, 2)  # one unnamed input: permeability
    plain = models.get("beno", geometry_feature_count(2) + 1, 1, 2, features=darcy_like)
    assert plain.source_columns == [] and plain.boundary_columns == []
    with pytest.raises(ValueError, match="BENO \\(source\\) reads node feature 'heat', which these node features lack"):
        models.get("beno", feature_count(spec, 2), 1, 2, features=layout, source=["heat"])
    with pytest.raises(ValueError, match="share"):
        models.get("beno", feature_count(spec, 2), 1, 2, features=layout, boundary=["source"])
    with pytest.raises(ValueError, match="does not cover the model's 10 node features"):
        models.get("amg", 10, 1, 2, features=layout)


# ---------------------------------------------------------------------------- batching
def test_multilevel_data_shifts_sets_and_local_edges_when_batched():
    def graph(n: int, n_coarse: int) -> MultiLevelData:
        return MultiLevelData(
            x=torch.zeros(n, 1), edge_index=torch.tensor([[0], [n - 1]]),
            coarse_nodes=torch.arange(n_coarse) * 2,
            coarse_edges=torch.tensor([[0], [n_coarse - 1]]),
            mesh_to_coarse_edges=torch.tensor([[n - 1], [n_coarse - 1]]),
            mesh_nodes=torch.arange(n))
    batch = Batch.from_data_list([graph(5, 2), graph(7, 3), graph(4, 1)])
    assert batch.coarse_nodes.tolist() == [0, 2, 5, 7, 9, 12]
    assert batch.coarse_edges.tolist() == [[0, 2, 5], [1, 4, 5]]
    assert batch.mesh_to_coarse_edges.tolist() == [[4, 11, 15], [1, 4, 5]]
    assert batch.edge_index.tolist() == [[0, 5, 12], [4, 11, 15]]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", VARIANTS)
def test_batch_of_different_sizes_equals_graphs_alone(name, dim):
    meshes = [square_mesh(3), square_mesh(2, 0.5), square_mesh(1)] if dim == 2 else [cube_mesh(2), cube_mesh(1)]
    spec = spec_for(meshes)
    model = make_model(name, spec, dim).eval()
    graphs = graphs_for(model, meshes, spec)
    batch = next(iter(DataLoader(graphs, batch_size=len(graphs))))
    with torch.no_grad():
        together = model(batch)
        alone = [model(g) for g in graphs]
    assert together.shape == (sum(m.n_points for m in meshes), 1)
    assert torch.isfinite(together).all()
    for i, out in enumerate(alone):
        torch.testing.assert_close(together[batch.batch == i], out, atol=1e-5, rtol=0)


def test_fixed_degree_is_found_only_when_every_target_has_k_in_edges():
    from meshop.geometry.neighbors import knn_graph
    from meshop.nn import Edges

    index = torch.as_tensor(knn_graph(np.random.default_rng(0).random((40, 3)), 5))
    with torch.no_grad():
        assert Edges(index, None, 40, chunk=12).fixed_degree == 5
        assert Edges(index, None, 40, chunk=12).chunk == 10              # whole targets per chunk
        assert Edges(index[:, 1:], None, 40, chunk=12).fixed_degree == 0  # node 0 has 4
        assert Edges(index, None, 41, chunk=12).fixed_degree == 0         # node 40 has none
    assert Edges(index, None, 40, chunk=12).fixed_degree == 0             # autograd: not chunked


@pytest.mark.parametrize("name", ["gno", "mgno", "mgno:coarse-cycles", "beno"])
def test_inference_in_edge_chunks_equals_all_edges_at_once(name, monkeypatch):
    import meshop.nn.edges

    mesh = cube_mesh(2)
    spec = spec_for([mesh])
    model = make_model(name, spec, 3).eval()
    graph = graphs_for(model, [mesh], spec)[0]
    monkeypatch.setattr("meshop.nn.compiled._mode", "off")          # the PyTorch path, whatever the flag
    chunks = []
    original = meshop.nn.edges.Edges.chunks
    monkeypatch.setattr(meshop.nn.edges.Edges, "chunks",
                        lambda self: chunks.append((self.chunk, self.fixed_degree)) or original(self))
    with torch.no_grad():
        whole = model(graph)
        monkeypatch.setattr(meshop.nn.edges, "EDGE_CHUNK", 50)            # every edge set chunked
        chunked = model(graph)                                           # embeddings kept
        monkeypatch.setattr(meshop.nn.edges, "EMBEDDING_CACHE", 0)
        recomputed = model(graph)                                        # embedded again per chunk
    assert (None, 0) in chunks                                           # whole edge sets ran
    chunked_sets = [(size, degree) for size, degree in chunks if size is not None]
    assert chunked_sets and all(size <= 50 for size, _ in chunked_sets)  # and chunked ones
    # kNN graphs (and prolongations) take the fixed-degree path: chunks of whole targets
    assert any(degree and size % degree == 0 for size, degree in chunked_sets)
    if name != "gno":                                                    # restrictions: any degree
        assert any(degree == 0 for _, degree in chunked_sets)
    assert max(v.shape[1] for k, v in graph.items() if k.endswith("edges") or k == "edge_index") > 4 * 50
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(recomputed, whole, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("name", VARIANTS)
def test_overfits_a_tiny_set(name):
    meshes = [square_mesh(2), square_mesh(3, 0.3), square_mesh(2, -0.2)]
    spec = spec_for(meshes)
    model = make_model(name, spec, 2)
    batch = Batch.from_data_list(graphs_for(model, meshes, spec))
    target = (batch.y - torch.tensor(spec.mean["u"])) / torch.tensor(spec.std["u"])
    steps = 250
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(batch), target).backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        error = relative_l2(decode(model(batch), batch, spec), batch.y, batch.batch).item()
        mean_only = relative_l2(decode(torch.zeros_like(target), batch, spec), batch.y, batch.batch).item()
    assert mean_only > 0.3                      # the target is not trivial
    assert error < FIT_ERROR[name], error


# ---------------------------------------------------------------------------- invariances
def permuted(data, perm: torch.Tensor):
    """``data`` with its nodes renumbered: new node ``i`` is old node ``perm[i]``."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    out = data.clone()
    for key in ("x", "pos", "boundary_mask", "dirichlet", "y"):
        out[key] = data[key][perm]
    out.edge_index = inverse[data.edge_index]
    return out


def test_beno_does_not_depend_on_node_order():
    mesh = square_mesh(3, 0.4)
    spec = spec_for([mesh])
    model = make_model("beno", spec, 2, max_boundary_tokens=20).eval()   # 32 boundary nodes: subsampled
    plain = build_graph(mesh, spec, SETTINGS)
    perm = torch.randperm(mesh.n_points, generator=torch.Generator().manual_seed(3))
    original, shuffled = model.prepare(plain.clone()), model.prepare(permuted(plain, perm))
    assert len(original.boundary_nodes) == 20
    # the same boundary points are chosen
    torch.testing.assert_close(original.pos[original.boundary_nodes].sort(dim=0).values,
                               shuffled.pos[shuffled.boundary_nodes].sort(dim=0).values)
    with torch.no_grad():
        torch.testing.assert_close(model(shuffled), model(original)[perm], atol=1e-5, rtol=0)


def test_mgno_hierarchy_does_not_depend_on_node_order():
    mesh = square_mesh(6, 0.4)
    spec = spec_for([mesh])
    model = make_model("mgno", spec, 2).eval()
    plain = build_graph(mesh, spec, SETTINGS)
    perm = torch.randperm(mesh.n_points, generator=torch.Generator().manual_seed(4))
    original, shuffled = model.prepare(plain.clone()), model.prepare(permuted(plain, perm))
    for level in (1, 2):                        # the same coarse nodes, found by their positions
        nodes = f"level{level}_nodes"
        torch.testing.assert_close(original.pos[original[nodes]].sort(dim=0).values,
                                   shuffled.pos[shuffled[nodes]].sort(dim=0).values)
    with torch.no_grad():
        torch.testing.assert_close(model(shuffled), model(original)[perm], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_runs_and_trains_on_a_3d_tet_mesh(name):
    meshes = [cube_mesh(2)]
    spec = spec_for(meshes)
    model = make_model(name, spec, 3)
    graph = graphs_for(model, meshes, spec)[0]
    out = model(graph)
    assert out.shape == (meshes[0].n_points, 1) and torch.isfinite(out).all()
    out.square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not unused                           # every level / graph / branch takes part


@pytest.mark.parametrize("name", VARIANTS)
def test_checkpoint_round_trip_gives_identical_outputs(name, tmp_path):
    meshes = [square_mesh(2)]
    spec = spec_for(meshes)
    model = make_model(name, spec, 2).eval()
    for p in model.parameters():                # non-default weights everywhere
        p.data.add_(0.01 * torch.randn_like(p))
    model_name = name.split(":")[0]
    path = checkpoint.save(tmp_path / f"{model_name}.safetensors", checkpoint.Checkpoint(model, model_name, spec, SETTINGS))
    loaded = checkpoint.load(path)
    assert loaded.model_name == model_name and loaded.model.config == model.config
    graph = build_graph(meshes[0], loaded.fields, loaded.graph, prepare=loaded.model.prepare)
    with torch.no_grad():
        assert torch.equal(loaded.model(graph), model(graph))


def test_finest_once_visits_the_mesh_in_two_transfers_and_needs_no_mesh_graph():
    meshes = [square_mesh(3)]
    spec = spec_for(meshes)
    model = make_model("mgno", spec, 2, cycles=3, smooth_finest=False, finest_once=True).eval()
    processor = model.processor
    assert [sorted(grid) for grid in processor.restrict] == [["0", "1"], ["1"], ["1"]]
    assert [sorted(grid) for grid in processor.prolong] == [["1"], ["1"], ["0", "1"]]
    assert not model.uses_mesh_graph
    calls = []
    for grid in (processor.restrict, processor.prolong, processor.smooth_down, processor.smooth_up):
        for cycle, layers in enumerate(grid):
            for level, layer in layers.items():
                layer.register_forward_hook(lambda module, args, out, key=(cycle, level): calls.append((key, len(out))))
    graph = graphs_for(model, meshes, spec)[0]
    assert graph.edge_index.shape == (2, 0)                     # not built
    with torch.no_grad():
        out = model(graph)
        with_mesh_graph = model(build_graph(meshes[0], spec, SETTINGS, prepare=model.prepare))
    on_mesh = [key for key, rows in calls[:len(calls) // 2] if rows == meshes[0].n_points]
    assert on_mesh == [(2, "0")]                                # the last prolongation (restriction
    assert ((0, "0"), graph.level1_nodes.numel()) in calls      # of cycle 0 outputs level-1 rows)
    assert len(calls) == 2 * (2 + 3 * 5)     # per forward: 2 transfers on the mesh, 5 coarse layers a cycle
    torch.testing.assert_close(out, with_mesh_graph, atol=0, rtol=0)


def test_finest_once_with_smooth_finest_adds_one_mesh_kernel_integral_at_the_end():
    meshes = [square_mesh(3)]
    spec = spec_for(meshes)
    model = make_model("mgno", spec, 2, cycles=3, smooth_finest=True, finest_once=True).eval()
    processor = model.processor
    assert [sorted(grid) for grid in processor.smooth_down] == [["1", "2"]] * 3   # no mesh smoothing going down
    assert [sorted(grid) for grid in processor.smooth_up] == [["1"], ["1"], ["0", "1"]]
    assert model.uses_mesh_graph
    mesh_calls = []
    for grid in (processor.smooth_down, processor.smooth_up):
        for cycle, layers in enumerate(grid):
            for level, layer in layers.items():
                layer.register_forward_hook(lambda module, args, out, key=(cycle, level): mesh_calls.append(key)
                                            if len(out) == meshes[0].n_points else None)
    graph = graphs_for(model, meshes, spec)[0]
    assert graph.edge_index.shape[1] > 0
    with torch.no_grad():
        model(graph)
    assert mesh_calls == [(2, "0")]                                 # once, after the last prolongation
    loss = relative_l2(model.train()(graph), graph.y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())      # every layer is used


def test_finest_once_needs_a_coarse_level():
    with pytest.raises(ValueError, match="finest_once"):
        models.get("mgno", 8, 1, 2, levels=1, finest_once=True)


# ---------------------------------------------------------------------------- AMG sets
def test_high_frequency_nodes_follow_a_jump_in_the_input():
    grid = MeshTri.init_tensor(np.linspace(0, 1, 41), np.linspace(0, 1, 41))
    pos = grid.p.T
    step = (pos[:, 0] > 0.5).astype(float)[:, None]
    coarse = np.arange(0, len(pos), 7)
    score = high_frequency_score(pos, step, coarse)
    top = np.argsort(-score)[:80]
    assert np.abs(pos[top, 0] - 0.5).max() < 0.1           # the 80 strongest sit at the jump
    assert score[np.abs(pos[:, 0] - 0.5) > 0.2].max() < 1e-20  # far from it the interpolant is exact
    linear = high_frequency_score(pos, pos[:, :1].copy(), np.arange(len(pos)))
    assert np.allclose(linear, 0)                           # every node coarse: exact


@pytest.mark.parametrize("name", ["mgno", "beno", "amg"])
def test_graph_building_is_the_models_transforms_composed(name):
    from meshop.graph import node_data
    from meshop.models.transforms import Compose, MeshGraph

    mesh = square_mesh(3)
    spec = spec_for([mesh])
    model = make_model(name, spec, 2)
    built = graphs_for(model, [mesh], spec)[0]
    steps = [MeshGraph(SETTINGS, model.uses_mesh_graph), *model.transforms()]
    assert steps[1:] and all(callable(step) for step in steps)
    composed = Compose(steps)(node_data(mesh, spec)[0])
    assert sorted(composed.keys()) == sorted(built.keys())
    for key in built.keys():
        assert torch.equal(composed[key], built[key]), key
    moved = node_data(mesh.with_points(mesh.points * 2.0, mesh.point_data), spec)[0]  # same shape, 2x larger
    assert torch.equal(Compose(steps)(moved).edge_index, built.edge_index)  # normalized: the same graphs
