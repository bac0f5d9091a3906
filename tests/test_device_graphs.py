"""The radius graph of moving particles built from tensors on their device (a cell list of torch
kernels) against scipy's cKDTree graph, the reference, to the last edge."""

import numpy as np
import pytest
import torch

from meshop.errors import MeshError
from meshop.geometry.neighbors import radius_graph
from meshop.models.device_graphs import radius_graph_on_device
from meshop.models.gns import scene_radius_graph


@pytest.mark.parametrize("dim, n, radius", [(2, 3000, 0.04), (3, 4000, 0.09), (3, 500, 0.5)])
def test_same_edges_as_the_kd_tree(dim, n, radius):
    points = np.random.default_rng(dim * n).random((n, dim)) * [1.0, 3.0, 0.5][:dim] - 7.0
    expected = radius_graph(points, radius)
    assert expected.shape[1] > 3 * n                      # a graph worth comparing
    got = radius_graph_on_device(torch.as_tensor(points), radius)
    assert got.dtype == torch.long
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("radius", [1.0, np.sqrt(2.0), 2.0])
def test_lattice_ties_at_the_radius_are_kept(radius):
    """Integer lattice: many pairs exactly at the radius (distance <= r keeps them)."""
    lattice = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    got = radius_graph_on_device(torch.as_tensor(lattice), radius).numpy()
    np.testing.assert_array_equal(got, radius_graph(lattice, radius))
    interior = 2 * 36 + 2 * 6 + 2                          # node (2, 2, 2)'s id in the 6x6x6 lattice
    degree = {1.0: 6, np.sqrt(2.0): 18, 2.0: 32}[radius]
    assert (got[1] == interior).sum() == degree


def test_scenes_are_not_linked_and_blocks_do_not_change_the_graph():
    rng = np.random.default_rng(1)
    points = torch.as_tensor(rng.random((900, 2)) * 0.3)   # three scenes overlapping in space
    scenes = [(0, 300), (300, 650), (650, 900)]
    scene = torch.repeat_interleave(torch.arange(3), torch.tensor([300, 350, 250]))
    expected = scene_radius_graph(points, scenes, 0.05)     # the CPU path: cKDTree per scene
    for max_candidates in (2 ** 24, 97):                   # one block, and many small ones
        got = radius_graph_on_device(points, 0.05, scene, max_candidates=max_candidates)
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert (scene[expected[0]] == scene[expected[1]]).all()


def test_float32_differs_only_at_the_radius():
    points = np.random.default_rng(2).random((3000, 3))
    expected = {tuple(e) for e in radius_graph(points, 0.1).T}
    got = {tuple(e) for e in radius_graph_on_device(torch.as_tensor(points, dtype=torch.float32), 0.1).numpy().T}
    for i, j in expected ^ got:
        assert abs(np.linalg.norm(points[i] - points[j]) - 0.1) < 1e-6


def test_small_and_degenerate_clouds():
    assert radius_graph_on_device(torch.zeros((1, 3)), 0.1).shape == (2, 0)
    same = radius_graph_on_device(torch.zeros((4, 2)), 0.1)          # every pair at distance 0
    assert same.shape == (2, 12) and (same[0] != same[1]).all()
    with pytest.raises(MeshError, match="radius must be a positive"):
        radius_graph_on_device(torch.zeros((4, 2)), 0.0)
    with pytest.raises(MeshError, match="too many to index"):
        radius_graph_on_device(torch.tensor([[0.0, 0.0, 0.0], [1e30, 1e30, 1e30]], dtype=torch.float64), 1e-9)


def test_nan_positions_are_named():
    with pytest.raises(MeshError, match="NaN or infinite"):
        radius_graph_on_device(torch.tensor([[0.0, 0.0], [float("nan"), 1.0]]), 0.5)


@pytest.mark.parametrize("dim, k, chunk", [(2, 8, 97), (3, 1, 4096), (2, 30, 1000)])
def test_nearest_on_device_gives_the_kd_tree_neighbours(dim, k, chunk):
    """GIOROM's decoder search on the device: cKDTree's k nearest ids, in its order, in float32
    inputs as in float64, whatever the chunk of queries."""
    from scipy.spatial import cKDTree

    from meshop.models.device_graphs import nearest_on_device

    rng = np.random.default_rng(dim + k)
    nodes, queries = rng.random((300, dim)).astype(np.float32), rng.random((2500, dim)).astype(np.float32) * 1.2
    expected = cKDTree(nodes).query(queries, k=k)[1].reshape(len(queries), k)
    got = nearest_on_device(torch.as_tensor(queries), torch.as_tensor(nodes), k, chunk=chunk)
    assert got.dtype == torch.long and got.shape == (2500, k)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_nearest_on_device_refuses_what_it_cannot_answer():
    from meshop.models.device_graphs import nearest_on_device

    with pytest.raises(MeshError, match="k = 5 nearest nodes asked for among 3"):
        nearest_on_device(torch.zeros((4, 2)), torch.rand((3, 2)), 5)
    with pytest.raises(MeshError, match="NaN or infinite"):
        nearest_on_device(torch.tensor([[float("nan"), 0.0]]), torch.rand((3, 2)), 2)
    assert nearest_on_device(torch.zeros((0, 2)), torch.rand((3, 2)), 2).shape == (0, 2)
