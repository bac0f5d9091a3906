"""Neighbour graphs against brute-force O(N^2) references, the cap warning, and mesh edges."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from meshop.errors import MeshError
from meshop.geometry.neighbors import (NeighborCapWarning, knn_graph, local_edges, mesh_edges,
                                       radius_graph)
from meshop.mesh import Mesh


def brute_radius(points, r):
    dist = cdist(points, points)
    dst, src = np.nonzero((dist <= r) & ~np.eye(len(points), dtype=bool))  # row-major: by target
    return np.stack([src, dst])


def assert_sorted_by_target(edges):
    order = np.lexsort((edges[0], edges[1]))
    np.testing.assert_array_equal(order, np.arange(edges.shape[1]))


@pytest.mark.parametrize("dim", [2, 3])
def test_radius_graph_equals_brute_force(dim):
    points = np.random.default_rng(dim).random((300, dim))
    r = 0.12 if dim == 2 else 0.2
    edges = radius_graph(points, r)
    assert edges.dtype == np.int64
    np.testing.assert_array_equal(edges, brute_radius(points, r))
    assert_sorted_by_target(edges)


def test_radius_graph_loop_adds_one_self_loop_per_node():
    points = np.random.default_rng(0).random((50, 2))
    plain, looped = radius_graph(points, 0.2), radius_graph(points, 0.2, loop=True)
    assert looped.shape[1] == plain.shape[1] + 50
    np.testing.assert_array_equal(np.sort(looped[0][looped[0] == looped[1]]), np.arange(50))
    assert not (plain[0] == plain[1]).any()
    assert_sorted_by_target(looped)


def test_radius_cap_warns_with_count_and_keeps_nearest():
    points = np.random.default_rng(1).random((400, 3))
    r, cap = 0.25, 5
    full = brute_radius(points, r)
    degree = np.bincount(full[1], minlength=400)
    affected = int((degree > cap).sum())
    assert 0 < affected < 400
    with pytest.warns(NeighborCapWarning, match=rf"\b{affected} of 400 nodes"):
        edges = radius_graph(points, r, max_neighbors=cap)
    dist = cdist(points, points)
    np.fill_diagonal(dist, np.inf)
    for node in range(400):
        kept = np.sort(edges[0][edges[1] == node])
        nearest = np.sort(np.argsort(dist[node])[: min(cap, degree[node])])
        np.testing.assert_array_equal(kept, nearest)
    assert_sorted_by_target(edges)


def test_radius_cap_that_drops_nothing_is_silent():
    points = np.random.default_rng(2).random((100, 2))
    degree_max = np.bincount(brute_radius(points, 0.1)[1]).max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edges = radius_graph(points, 0.1, max_neighbors=int(degree_max))
    np.testing.assert_array_equal(edges, brute_radius(points, 0.1))


@pytest.mark.parametrize("dim", [2, 3])
def test_knn_graph_equals_brute_force(dim):
    points = np.random.default_rng(10 + dim).random((200, dim))
    k = 7
    edges = knn_graph(points, k)
    dist = cdist(points, points)
    np.fill_diagonal(dist, np.inf)
    expected_src = np.sort(np.argsort(dist, axis=1)[:, :k], axis=1).ravel()
    np.testing.assert_array_equal(edges[0], expected_src)
    np.testing.assert_array_equal(edges[1], np.repeat(np.arange(200), k))


def test_knn_graph_loop_counts_the_node_itself():
    points = np.random.default_rng(3).random((60, 3))
    edges = knn_graph(points, 4, loop=True)
    dist = cdist(points, points)
    expected = np.sort(np.argsort(dist, axis=1)[:, :4], axis=1).ravel()   # self is nearest
    np.testing.assert_array_equal(edges[0], expected)
    assert (edges[0] == edges[1]).sum() == 60


def test_knn_graph_with_duplicate_points_has_no_self_loops():
    points = np.repeat(np.random.default_rng(4).random((10, 2)), 3, axis=0)   # triplicates
    edges = knn_graph(points, 2)
    assert not (edges[0] == edges[1]).any()
    np.testing.assert_array_equal(np.bincount(edges[1]), np.full(30, 2))
    # the two neighbours of each node are its two copies
    np.testing.assert_array_equal(edges[0] // 3, edges[1] // 3)


@pytest.mark.parametrize("call, message", [
    (lambda: radius_graph(np.zeros(5), 1.0), r"\(N, d\) array; got shape \(5,\)"),
    (lambda: radius_graph(np.zeros((0, 3)), 1.0), r"got shape \(0, 3\)"),
    (lambda: radius_graph(np.array([[0.0, np.nan]]), 1.0), "1 point\\(s\\) have NaN"),
    (lambda: radius_graph(np.zeros((4, 2)), 0.0), "positive finite number; got 0.0"),
    (lambda: radius_graph(np.zeros((4, 2)), -1.0), "got -1.0"),
    (lambda: radius_graph(np.zeros((4, 2)), 1.0, max_neighbors=0), "max_neighbors .* got 0"),
    (lambda: knn_graph(np.zeros((4, 2)), 4), r"\[1, 3\] for 4 points \(k < N\); got 4"),
    (lambda: knn_graph(np.zeros((4, 2)), 0), "got 0"),
    (lambda: knn_graph(np.zeros((4, 2)), 5, loop=True), r"\[1, 4\] .* with loop=True; got 5"),
])
def test_bad_input_raises_precise_message(call, message):
    with pytest.raises(MeshError, match=message):
        call()


def unique_undirected(edges):
    assert_sorted_by_target(edges)
    pairs = {tuple(sorted(e)) for e in edges.T}
    assert edges.shape[1] == 2 * len(pairs)              # both directions, each once
    return pairs


def test_mesh_edges_of_a_2x2_quad_grid():
    xy = np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0), indexing="xy"), -1).reshape(-1, 2)
    quads = np.array([[0, 1, 4, 3], [1, 2, 5, 4], [3, 4, 7, 6], [4, 5, 8, 7]])
    pairs = unique_undirected(mesh_edges(Mesh(xy, {"quad": quads})))
    assert len(pairs) == 12
    # every edge joins grid neighbours at distance 1 (no diagonals)
    assert all(np.isclose(np.linalg.norm(xy[a] - xy[b]), 1.0) for a, b in pairs)


def test_mesh_edges_of_a_tet_and_a_hex():
    tet = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]]), {"tetra": [[0, 1, 2, 3]]})
    assert unique_undirected(mesh_edges(tet)) == {(a, b) for a in range(4) for b in range(a + 1, 4)}
    cube = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                     [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1.0]])
    pairs = unique_undirected(mesh_edges(Mesh(cube, {"hexahedron": [list(range(8))]})))
    assert len(pairs) == 12
    assert all(np.isclose(np.linalg.norm(cube[a] - cube[b]), 1.0) for a, b in pairs)


def test_mesh_edges_of_shared_triangles_and_a_point_cloud():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]])
    two_triangles = Mesh(square, {"triangle": [[0, 1, 2], [0, 2, 3]]})
    assert unique_undirected(mesh_edges(two_triangles)) == {(0, 1), (1, 2), (0, 2), (2, 3), (0, 3)}
    assert mesh_edges(Mesh(square)).shape == (2, 0)


@pytest.mark.parametrize("cell_type, count", [
    ("triangle", 3), ("quad", 4), ("tetra", 6), ("hexahedron", 12), ("wedge", 9), ("pyramid", 8)])
def test_local_edge_counts(cell_type, count):
    assert len(local_edges(cell_type)) == count
