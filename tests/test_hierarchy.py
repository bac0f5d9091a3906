"""Farthest-point and voxel sampling and multi-scale hierarchies, against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from meshop.errors import MeshError
from meshop.geometry.hierarchy import farthest_point_sampling, hierarchy, voxel_sampling
from meshop.geometry.neighbors import knn_graph, radius_graph


def brute_fps(points, n_samples, start=0):
    """The plain loop: update every point's distance to the newest pick, take the farthest."""
    dist = np.full(len(points), np.inf)
    picks = [start]
    for _ in range(n_samples - 1):
        dist = np.minimum(dist, ((points - points[picks[-1]]) ** 2).sum(axis=1))
        picks.append(int(np.argmax(dist)))
    return np.array(picks)


@pytest.mark.parametrize("dim", [2, 3])
def test_fps_equals_brute_force_loop(dim):
    points = np.random.default_rng(dim).random((500, dim))
    np.testing.assert_array_equal(farthest_point_sampling(points, 500, start=17),
                                  brute_fps(points, 500, start=17))


def test_fps_skips_far_blocks_exactly_on_a_larger_set():
    points = np.random.default_rng(11).normal(size=(6000, 3)) * [1.0, 2.0, 0.5]
    np.testing.assert_array_equal(farthest_point_sampling(points, 1500), brute_fps(points, 1500))


def test_fps_on_a_grid_breaks_ties_like_argmax():
    grid = np.stack(np.meshgrid(np.arange(15.0), np.arange(15.0)), -1).reshape(-1, 2)
    np.testing.assert_array_equal(farthest_point_sampling(grid, 100), brute_fps(grid, 100))


def test_fps_first_pick_determinism_and_covering_radius():
    points = np.random.default_rng(5).normal(size=(2000, 3))
    sample = farthest_point_sampling(points, 150, start=42)
    assert sample[0] == 42 and sample.dtype == np.int64
    np.testing.assert_array_equal(sample, farthest_point_sampling(points, 150, start=42))
    assert len(np.unique(sample)) == 150
    # FPS invariant: the sample's covering radius is at most its smallest pairwise distance
    covering = cdist(points, points[sample]).min(axis=1).max()
    pairwise = cdist(points[sample], points[sample])
    np.fill_diagonal(pairwise, np.inf)
    assert covering <= pairwise.min()


def test_fps_never_repeats_coincident_points():
    points = np.zeros((20, 2))
    sample = farthest_point_sampling(points, 20, start=3)
    np.testing.assert_array_equal(np.sort(sample), np.arange(20))


@pytest.mark.parametrize("call, message", [
    (lambda: farthest_point_sampling(np.zeros((5, 2)), 6), r"n_samples .* \[1, 5\]; got 6"),
    (lambda: farthest_point_sampling(np.zeros((5, 2)), 2, start=5), r"start .* \[0, 4\]; got 5"),
    (lambda: voxel_sampling(np.zeros((5, 2)), 0.0), "voxel_size .* got 0.0"),
    (lambda: hierarchy(np.zeros((5, 2)), 0), "levels .* got 0"),
    (lambda: hierarchy(np.zeros((5, 2)), 2, ratio=1.0), "ratio .* got 1.0"),
    (lambda: hierarchy(np.zeros((5, 2)), 2, method="grid"), "'bucket-fps' or 'voxel'; got 'grid'"),
    (lambda: hierarchy(np.zeros((5, 2)), 2, radius=1.0, k=3), "at most one of radius and k"),
    (lambda: hierarchy(np.zeros((5, 2)), 2, coarse_nodes=0), "coarse_nodes .* got 0"),
])
def test_bad_arguments_raise(call, message):
    with pytest.raises(MeshError, match=message):
        call()


def test_voxel_sampling_one_per_voxel_nearest_the_centroid():
    points = np.random.default_rng(6).random((3000, 3))
    size = 0.2
    chosen = voxel_sampling(points, size)
    voxel = np.floor((points - points.min(axis=0)) / size).astype(int)
    keys = [tuple(v) for v in voxel]
    occupied = set(keys)
    assert len(chosen) == len(occupied) == len({keys[i] for i in chosen})
    assert np.all(np.diff(chosen) > 0)
    for i in chosen[:40]:
        members = [j for j, key in enumerate(keys) if key == keys[i]]
        centroid = points[members].mean(axis=0)
        assert members[np.argmin(((points[members] - centroid) ** 2).sum(axis=1))] == i


def check_levels(h, points):
    assert h.n_levels == len(h.indices) == len(h.edges) == len(h.down) + 1 == len(h.up) + 1
    np.testing.assert_array_equal(h.indices[0], np.arange(len(points)))
    for level in range(h.n_levels - 1):
        fine, coarse = h.indices[level], h.indices[level + 1]
        np.testing.assert_array_equal(fine[h.coarse_in_fine[level]], coarse)      # nested
        down, up = h.down[level], h.up[level]
        np.testing.assert_array_equal(np.sort(down[0]), np.arange(len(fine)))  # one per fine node
        dist = cdist(points[fine], points[coarse])
        np.testing.assert_allclose(dist[down[0], down[1]], dist.min(axis=1)[down[0]])
        np.testing.assert_array_equal(down[:, down[0] == h.coarse_in_fine[level][down[1]]][1],
                                      np.arange(len(coarse)))                      # self-pooling
        assert {tuple(e) for e in up.T} == {(b, a) for a, b in down.T}
    for ids, edges in zip(h.indices, h.edges):
        assert edges.min(initial=0) >= 0 and edges.max(initial=0) < len(ids)


def test_fps_hierarchy_levels_graphs_and_pooling():
    points = np.random.default_rng(7).random((1200, 3))
    h = hierarchy(points, levels=3, ratio=4)
    assert [len(i) for i in h.indices] == [1200, 300, 75]
    np.testing.assert_array_equal(h.indices[1], farthest_point_sampling(points, 300))
    check_levels(h, points)
    assert h.radii[0] < h.radii[1] < h.radii[2]
    for ids, edges, r in zip(h.indices, h.edges, h.radii):
        np.testing.assert_array_equal(edges, radius_graph(points[ids], r))
        assert 8 <= edges.shape[1] / len(ids) <= 24                 # ~16 neighbours per node
    assert "n_levels=3" in repr(h) and "[1200, 300, 75]" in repr(h)


def test_hierarchy_with_given_radius_and_with_knn():
    points = np.random.default_rng(8).random((800, 2))
    h = hierarchy(points, levels=2, ratio=4, radius=0.05)
    np.testing.assert_allclose(h.radii, [0.05, 0.05 * 4 ** 0.5])
    hk = hierarchy(points, levels=3, ratio=10, k=6)
    check_levels(hk, points)
    for ids, edges in zip(hk.indices, hk.edges):
        np.testing.assert_array_equal(edges, knn_graph(points[ids], 6))
    skip = hierarchy(points, levels=3, ratio=10, k=6, finest_graph=False)   # the caller has a mesh graph
    assert skip.edges[0].shape == (2, 0)
    for got, want in zip(skip.edges[1:] + skip.indices, hk.edges[1:] + hk.indices):
        np.testing.assert_array_equal(got, want)


def test_coincident_coarse_nodes_pool_into_themselves():
    points = np.repeat(np.random.default_rng(10).random((10, 2)), 2, axis=0)
    h = hierarchy(points, levels=2, ratio=1.5)
    assert len(h.indices[1]) == 13                        # 3 coincident pairs among them
    check_levels(h, points)


def test_voxel_hierarchy_is_nested_with_about_the_target_sizes():
    points = np.random.default_rng(9).random((4000, 3))
    h = hierarchy(points, levels=3, ratio=4, method="voxel")
    check_levels(h, points)
    for level, target in [(1, 1000), (2, 250)]:
        assert abs(len(h.indices[level]) - target) <= 0.1 * target


def test_without_pooling_edges_the_levels_and_graphs_are_the_same():
    points = np.random.default_rng(4).random((3000, 3))
    full = hierarchy(points, levels=3, ratio=8, method="voxel", k=8)
    lean = hierarchy(points, levels=3, ratio=8, method="voxel", k=8, pooling=False)
    for a, b in zip(full.indices + full.edges, lean.indices + lean.edges):
        np.testing.assert_array_equal(a, b)
    assert all(e.shape == (2, 0) for e in lean.down + lean.up) and len(lean.down) == 2
    assert all(e.shape[1] == len(ids) for e, ids in zip(full.down, full.indices[:-1]))


def test_coarse_nodes_caps_level_one_and_only_when_smaller():
    points = np.random.default_rng(5).random((4000, 3))
    capped = hierarchy(points, levels=3, ratio=8, method="voxel", k=8, coarse_nodes=200)
    check_levels(capped, points)
    assert abs(len(capped.indices[1]) - 200) <= 10 and abs(len(capped.indices[2]) - 25) <= 3
    loose = hierarchy(points, levels=3, ratio=8, method="voxel", k=8, coarse_nodes=10_000)
    plain = hierarchy(points, levels=3, ratio=8, method="voxel", k=8)
    for a, b in zip(loose.indices, plain.indices):                      # N / ratio < cap: no change
        np.testing.assert_array_equal(a, b)


def test_capped_voxel_levels_depend_on_the_shape_not_the_resolution():
    """The same cube sampled with 8x more points gets coarse levels of about the same size whose
    nodes sit at the same places (within a coarse spacing); uncapped, level 1 grows with the
    sampling."""
    rng = np.random.default_rng(6)
    coarse, fine = rng.random((4000, 3)), rng.random((32_000, 3))
    a = hierarchy(coarse, levels=3, ratio=8, method="voxel", k=8, coarse_nodes=300)
    b = hierarchy(fine, levels=3, ratio=8, method="voxel", k=8, coarse_nodes=300)
    for level in (1, 2):
        pa, pb = coarse[a.indices[level]], fine[b.indices[level]]
        assert abs(len(pa) - len(pb)) <= 0.15 * len(pa)
        spacing = len(pa) ** (-1 / 3)                                   # of the coarse level
        assert cdist(pa, pb).min(axis=1).max() < spacing and cdist(pb, pa).min(axis=1).max() < spacing
    uncapped = hierarchy(fine, levels=3, ratio=8, method="voxel", k=8)
    assert len(uncapped.indices[1]) > 10 * len(b.indices[1])
