"""The fast paths of issue 19 against plain references: the CSR and key sorts of edges, the CSR segment
sum of kernel messages (forward and backward), and the fast FPS's covering radius."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from meshop.geometry.hierarchy import farthest_point_sampling, hierarchy
from meshop.geometry.neighbors import radius_graph, sort_edges
from meshop.nn import EdgeEmbedding, Edges, KernelIntegral
from meshop.nn.edges import kernel_mean


@pytest.mark.parametrize("n", [7, 300, 1000, 2**30])       # <= 400 edges: merged through a CSR matrix
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_sort_edges_equals_lexsort_and_unique(n, dtype):
    rng = np.random.default_rng(n)
    src, dst = (rng.integers(0, min(n, 50), 400).astype(dtype) * (n // min(n, 50)) for _ in range(2))
    expected = np.unique(np.stack([dst, src]).astype(np.int64), axis=1)[::-1]   # by (dst, src)
    np.testing.assert_array_equal(sort_edges(src, dst, n), expected)
    kept = sort_edges(src, dst, n, merge=False)                  # duplicates kept, same order
    assert kept.shape[1] == 400
    np.testing.assert_array_equal(np.unique(kept, axis=1), np.unique(expected, axis=1))


def test_radius_graph_with_loops_equals_brute_force():
    points = np.random.default_rng(3).random((200, 3))
    dist = np.linalg.norm(points[:, None] - points[None], axis=2)
    dst, src = np.nonzero(dist <= 0.2)                           # self pairs included, by target
    np.testing.assert_array_equal(radius_graph(points, 0.2, loop=True), np.stack([src, dst]))


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_assembled_in_c_equals_the_csr_path(monkeypatch, loop):
    from meshop.geometry import neighbors
    from meshop.nn import compiled

    if not compiled.available():
        pytest.skip(f"meshop's compiled library does not run here: {compiled._unavailable or 'turned off'}")
    points = np.random.default_rng(4).random((3000, 3))
    monkeypatch.setattr(neighbors, "COMPILED_PAIRS", 1 << 62)
    expected = radius_graph(points, 0.12, loop=loop)                 # scipy's CSR conversion
    monkeypatch.setattr(neighbors, "COMPILED_PAIRS", 0)
    edges = radius_graph(points, 0.12, loop=loop)                    # the counting sort in C
    assert expected.shape[1] > 50_000                               # ~19 neighbours a node
    np.testing.assert_array_equal(edges, expected)
    assert edges.dtype == np.int64


@pytest.mark.parametrize("shape, picks", [((6000, 3), 1500), ((3000, 2), 3000), ((20000, 3), 700)])
def test_exact_fps_in_c_picks_what_the_numpy_loop_picks(monkeypatch, shape, picks):
    import sys

    from meshop.nn import compiled

    if not compiled.available():
        pytest.skip(f"meshop's compiled library does not run here: {compiled._unavailable or 'turned off'}")
    module = sys.modules["meshop.geometry.hierarchy"]
    rng = np.random.default_rng(picks)
    points = rng.random(shape)
    points[: len(points) // 4] = np.round(points[: len(points) // 4] * 6) / 6   # lattice: ties, coincident points
    monkeypatch.setattr(module, "COMPILED_FPS_WORK", 1 << 62)
    expected = farthest_point_sampling(points, picks, start=5)                  # numpy
    monkeypatch.setattr(module, "COMPILED_FPS_WORK", 0)
    np.testing.assert_array_equal(farthest_point_sampling(points, picks, start=5), expected)
    assert len(np.unique(expected)) == picks


def test_segment_sum_matches_index_add_forward_and_backward():
    torch.manual_seed(0)
    target = torch.sort(torch.randint(0, 30, (500,))).values      # node 29 may have none
    index = torch.stack([torch.randint(0, 40, (500,)), target])
    messages = torch.randn(500, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(30, 6, dtype=torch.float64)
    edges = Edges(index, lambda i, t=None: messages[: i.shape[1]], 30)
    assert edges.sorted and edges.chunk is None                  # autograd: one chunk
    ours = kernel_mean(edges, lambda i, embedding: embedding)
    (grad,) = torch.autograd.grad((ours * weights).sum(), messages)
    count = torch.bincount(target, minlength=30).clamp(min=1).unsqueeze(1)
    reference = torch.zeros(30, 6, dtype=torch.float64).index_add_(0, target, messages) / count
    (grad_ref,) = torch.autograd.grad((reference * weights).sum(), messages)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=0)


def test_kernel_integral_same_sorted_unsorted_and_chunked():
    """One radius graph given sorted, shuffled (index_add_ path) and chunked (CSR per chunk)."""
    torch.manual_seed(1)
    points = np.random.default_rng(1).random((300, 3))
    index = torch.from_numpy(radius_graph(points, 0.2))
    pos, v = torch.from_numpy(points).float(), torch.randn(300, 8)
    embedding, layer = EdgeEmbedding(3, 8, 16), KernelIntegral(8, 16)
    shuffled = index[:, torch.randperm(index.shape[1])]
    with torch.no_grad():
        whole = layer(v, Edges(index, embedding.bind(pos, v, 0.2), 300, chunk=10**9))
        unsorted = layer(v, Edges(shuffled, embedding.bind(pos, v, 0.2), 300, chunk=10**9))
        chunked = layer(v, Edges(shuffled, embedding.bind(pos, v, 0.2), 300, chunk=97))
    assert not Edges(shuffled, None, 300, chunk=10**9).sorted
    torch.testing.assert_close(unsorted, whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def covering_radius(points, sample):
    return cKDTree(points[sample]).query(points)[0].max()


def test_fast_fps_is_a_sample_with_the_exact_covering_radius():
    points = np.random.default_rng(4).random((20_000, 3))
    exact = farthest_point_sampling(points, 2000)
    fast = farthest_point_sampling(points, 2000, exact=False)
    assert fast.dtype == np.int64 and len(np.unique(fast)) == 2000
    assert covering_radius(points, fast) == pytest.approx(covering_radius(points, exact), rel=0.03)
    # greedy: the second pick is the farthest point from the first, and prefixes cover as FPS
    first = np.linalg.norm(points - points[fast[0]], axis=1)
    assert first[fast[1]] == pytest.approx(first.max(), rel=1e-6)


def test_fast_fps_on_coincident_points_falls_back_to_exact():
    points = np.repeat(np.random.default_rng(5).random((30, 2)), 4, axis=0)   # 30 distinct
    fast = farthest_point_sampling(points, 50, exact=False)
    np.testing.assert_array_equal(fast, farthest_point_sampling(points, 50))


def test_bucket_fps_hierarchy_is_nested_with_the_fast_sample():
    points = np.random.default_rng(6).random((4000, 3))
    h = hierarchy(points, levels=3, ratio=4, method="bucket-fps")
    np.testing.assert_array_equal(h.indices[1], farthest_point_sampling(points, 1000, exact=False))
    np.testing.assert_array_equal(h.indices[2], h.indices[1][:250])
    assert h.method == "bucket-fps"
