"""K-D-tree decomposition and sub-domain grids, checked against brute force and exact fields."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import Delaunay

from meshop.errors import MeshError
from meshop.geometry.kdtree import Subdomain, decompose, from_grid, to_grid

CRITERIA = ["density", "median"]


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Half uniform background in the unit box, half a dense blob: non-uniform on purpose."""
    rng = np.random.default_rng(seed)
    blob = 0.6 + 0.2 * rng.random((n // 2, dim))
    return np.concatenate([rng.random((n - n // 2, dim)), blob])


def lattice_plus_random(per_axis: int, n_random: int, dim: int, seed: int) -> np.ndarray:
    """A lattice on the unit box (boundary included) plus random interior points."""
    axes = [np.linspace(0.0, 1.0, per_axis)] * dim
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    rng = np.random.default_rng(seed)
    return np.concatenate([grid, 0.02 + 0.96 * rng.random((n_random, dim))])


def brute_force_halos(points: np.ndarray, subs: list[Subdomain], r: float) -> list[np.ndarray]:
    """O(N^2) reference: points outside each core within distance r of one of its points."""
    d2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
    halos = []
    for s in subs:
        close = (d2[:, s.core] <= r * r).any(axis=1)
        close[s.core] = False
        halos.append(np.flatnonzero(close))
    return halos


def weighted_kl(points: np.ndarray, subs: list[Subdomain], bins: int = 4) -> float:
    """Mean over points of each box's KL divergence to uniform, on a bins^d histogram."""
    total = 0.0
    for s in subs:
        counts, _ = np.histogramdd(points[s.core], bins=bins, range=list(zip(*s.box)))
        p = counts.ravel() / counts.sum()
        p = p[p > 0]
        total += len(s.core) * float(np.sum(p * np.log(p * counts.size)))
    return total / len(points)


def share_inside(box: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Fraction of ``box``'s volume inside the box ``[lo, hi]``."""
    overlap = np.clip(np.minimum(box[1], hi) - np.maximum(box[0], lo), 0, None)
    return float(np.prod(overlap) / np.prod(box[1] - box[0]))


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("dim", [2, 3])
def test_cores_partition_the_points(criterion, dim):
    points = clustered(3000, dim, seed=dim)
    subs = decompose(points, max_points=200, criterion=criterion)
    cores = np.concatenate([s.core for s in subs])
    assert cores.dtype == np.int64
    assert np.array_equal(np.sort(cores), np.arange(len(points)))      # each index exactly once
    assert all(0 < len(s.core) <= 200 for s in subs)
    assert all(np.all(np.diff(s.core) > 0) for s in subs)
    assert len(subs) >= 3000 // 200


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("r", [0.03, 0.3])
def test_halos_equal_brute_force(criterion, dim, r):
    points = clustered(1200, dim, seed=10 + dim)
    subs = decompose(points, max_points=150, halo=r, criterion=criterion)
    expected = brute_force_halos(points, subs, r)
    for s, ref in zip(subs, expected):
        assert s.halo.dtype == np.int64
        assert np.array_equal(s.halo, ref)
        assert np.array_equal(s.indices, np.concatenate([s.core, s.halo]))
    assert sum(len(s.halo) for s in subs) > 0


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("dim", [2, 3])
def test_boxes_tile_the_root_box(criterion, dim):
    points = clustered(2500, dim, seed=20 + dim)
    subs = decompose(points, max_points=100, criterion=criterion)
    root = np.stack([points.min(axis=0), points.max(axis=0)])
    volumes = np.array([np.prod(s.box[1] - s.box[0]) for s in subs])
    assert volumes.sum() == pytest.approx(np.prod(root[1] - root[0]), rel=1e-12)
    for a, s in enumerate(subs):
        assert np.all(s.box[0] >= root[0]) and np.all(s.box[1] <= root[1])
        inside = (points[s.core] >= s.box[0]) & (points[s.core] <= s.box[1])
        assert inside.all()
        for t in subs[a + 1:]:                                       # interiors disjoint
            overlap = np.minimum(s.box[1], t.box[1]) - np.maximum(s.box[0], t.box[0])
            assert np.any(overlap <= 0)
    assert max(s.depth for s in subs) >= np.log2(len(points) / 100)


def test_median_splits_are_count_balanced():
    points = np.random.default_rng(3).random((20000, 2))
    subs = decompose(points, max_points=2000, criterion="median")
    assert sorted(len(s.core) for s in subs) == [1250] * 16
    assert {s.depth for s in subs} == {4}


def test_density_on_uniform_points_falls_back_to_median_cuts():
    points = np.random.default_rng(4).random((4000, 2))
    density = decompose(points, max_points=500, criterion="density")
    median = decompose(points, max_points=500, criterion="median")
    assert len(density) == len(median)
    for a, b in zip(density, median):
        assert np.array_equal(a.core, b.core) and np.array_equal(a.box, b.box)


def test_density_criterion_follows_a_dense_blob():
    rng = np.random.default_rng(1)
    lo, hi = np.array([0.6, 0.2]), np.array([0.8, 0.4])
    points = np.concatenate([rng.random((10000, 2)), lo + (hi - lo) * rng.random((10000, 2))])
    by = {c: decompose(points, max_points=2000, criterion=c) for c in CRITERIA}
    kl = {c: weighted_kl(points, subs) for c, subs in by.items()}
    in_blob = {c: [s for s in subs if share_inside(s.box, lo, hi) >= 0.9]
               for c, subs in by.items()}
    assert kl["density"] < 0.5 * kl["median"]                  # measured: 0.08 vs 0.36 nats
    assert len(in_blob["density"]) > len(in_blob["median"])    # measured: 7 vs 3 boxes
    blob_points = {c: sum(int(np.sum(s.core >= 10000)) for s in boxes)
                   for c, boxes in in_blob.items()}
    assert blob_points["density"] > 1.5 * blob_points["median"]
    background = [s for s in by["density"] if share_inside(s.box, lo, hi) == 0]
    blob_area = np.mean([np.prod(s.box[1] - s.box[0]) for s in in_blob["density"]])
    assert blob_area < 0.1 * np.mean([np.prod(s.box[1] - s.box[0]) for s in background])


@pytest.mark.parametrize("criterion", CRITERIA)
def test_decompose_is_deterministic_and_handles_duplicate_coordinates(criterion):
    points = lattice_plus_random(20, 0, 2, seed=0)               # many equal x and y values
    a = decompose(points, max_points=7, halo=0.06, criterion=criterion)
    b = decompose(points.copy(), max_points=7, halo=0.06, criterion=criterion)
    assert np.array_equal(np.sort(np.concatenate([s.core for s in a])), np.arange(400))
    assert all(len(s.core) <= 7 for s in a)
    for s, t in zip(a, b, strict=True):
        assert np.array_equal(s.core, t.core) and np.array_equal(s.halo, t.halo)
        assert np.array_equal(s.box, t.box) and s.depth == t.depth


def test_small_point_set_is_one_subdomain():
    points = np.random.default_rng(5).random((50, 3))
    (only,) = decompose(points, max_points=50, halo=0.5)
    assert np.array_equal(only.core, np.arange(50)) and len(only.halo) == 0 and only.depth == 0
    assert np.array_equal(only.box, np.stack([points.min(axis=0), points.max(axis=0)]))


def test_unsplittable_duplicates_raise():
    points = np.concatenate([np.full((10, 2), 0.5), np.random.default_rng(6).random((20, 2))])
    with pytest.raises(MeshError, match=r"cannot split 10 identical points at \(0\.5, 0\.5\)"):
        decompose(points, max_points=5)


@pytest.mark.parametrize("points, kwargs, message", [
    (np.zeros((5,)), {}, r"\(N, d\) array with d in \{2, 3\}; got shape \(5,\)"),
    (np.zeros((5, 4)), {}, r"got shape \(5, 4\)"),
    (np.zeros((0, 2)), {}, r"non-empty"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), {}, r"1 point\(s\) have NaN or infinite"),
    (np.zeros((5, 2)), {"max_points": 0}, r"max_points must be a positive integer; got 0"),
    (np.zeros((5, 2)), {"max_points": 2.5}, r"max_points must be a positive integer; got 2\.5"),
    (np.zeros((5, 2)), {"halo": -1.0}, r"halo must be a finite distance >= 0; got -1\.0"),
    (np.zeros((5, 2)), {"halo": np.inf}, r"halo must be a finite distance"),
    (np.zeros((5, 2)), {"criterion": "mean"}, r"criterion must be one of .*got 'mean'"),
    (np.zeros((5, 2)), {"bins": 1}, r"bins must be an integer >= 2 or None; got 1"),
])
def test_decompose_rejects_bad_input(points, kwargs, message):
    kwargs = {"max_points": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        decompose(points, **kwargs)


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("dim, per_axis, n_random, max_points, shape", [
    (2, 21, 1500, 400, (12, 9)),
    (3, 9, 1500, 600, (6, 7, 5)),
])
def test_to_grid_is_exact_on_linear_fields(criterion, dim, per_axis, n_random, max_points, shape):
    points = lattice_plus_random(per_axis, n_random, dim, seed=dim)
    coeffs = np.array([[1.5, -2.0, 0.7], [0.3, 4.0, -1.1]])[:, :dim]
    values = points @ coeffs.T + np.array([0.25, -3.0])          # two linear channels
    subs = decompose(points, max_points=max_points, halo=2.0 / (per_axis - 1),
                     criterion=criterion)
    assert len(subs) > 2
    for s in subs:
        sample = to_grid(points, values, s, shape)
        assert sample.shape == shape and sample.grid_values.shape == (*shape, 2)
        assert sample.n_nearest == 0                             # grid inside the points' hull
        exact = sample.grid_points @ coeffs.T + np.array([0.25, -3.0])
        assert np.abs(sample.grid_values.reshape(-1, 2) - exact).max() < 1e-10
        assert sample.back_values.shape == (len(s.core), 2)
        assert sample.max_error < 1e-10 and sample.relative_error < 1e-12


def test_to_grid_fills_with_nearest_only_outside_the_hull():
    points = np.random.default_rng(7).random((2000, 2))           # no points on the box corners
    values = 3.0 * points[:, 0] - points[:, 1]
    subs = decompose(points, max_points=300, halo=0.05)
    total_filled = 0
    for s in subs:
        sample = to_grid(points, values, s, (10, 10))
        nodes = sample.grid_points
        inside = Delaunay(points[s.indices]).find_simplex(nodes) >= 0
        grid = sample.grid_values.ravel()
        assert np.abs(grid[inside] - (3.0 * nodes[inside, 0] - nodes[inside, 1])).max() < 1e-10
        nearest = s.indices[np.argmin(((nodes[~inside, None] - points[s.indices]) ** 2).sum(-1),
                                      axis=1)]
        assert np.array_equal(grid[~inside], values[nearest])
        assert sample.n_nearest == int((~inside).sum())
        total_filled += sample.n_nearest
    assert total_filled > 0                                      # corner boxes exercised the fill


def test_to_grid_error_decreases_with_grid_refinement():
    points = lattice_plus_random(41, 20000, 2, seed=8)
    values = np.sin(2 * np.pi * points[:, 0]) * np.cos(np.pi * points[:, 1])
    (s, *_) = decompose(points, max_points=8000, halo=0.05, criterion="median")
    errors = [to_grid(points, values, s, (n, n)).relative_error for n in (5, 9, 17, 33)]
    assert all(b < 0.5 * a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 5e-3
    nearest = to_grid(points, values, s, (33, 33), method="nearest")
    assert nearest.n_nearest == 33 * 33 and nearest.relative_error > errors[-1]


def test_from_grid_maps_grid_values_to_points():
    points = lattice_plus_random(11, 300, 2, seed=9)
    values = 2.0 * points[:, 0] + 5.0 * points[:, 1]
    s = decompose(points, max_points=100, halo=0.2)[0]
    sample = to_grid(points, values, s, (7, 8))
    assert np.array_equal(from_grid(sample, sample.grid_values, points[s.core]),
                          sample.back_values)
    query = s.box[0] + (s.box[1] - s.box[0]) * np.random.default_rng(0).random((50, 2))
    got = from_grid(sample.axes, sample.grid_values, query)
    assert np.abs(got - (2.0 * query[:, 0] + 5.0 * query[:, 1])).max() < 1e-10
    with pytest.raises(ValueError, match=r"grid_values must have shape \(7, 8\)"):
        from_grid(sample, np.zeros((8, 7)), query)


@pytest.mark.parametrize("values, shape, method, message", [
    (np.zeros(7), (4, 4), "linear", r"values must have shape \(30,\) or \(30, c\)"),
    (np.full(30, np.nan), (4, 4), "linear", r"values contain NaN"),
    (np.zeros(30), (4, 4, 4), "linear", r"shape must be 2 integers >= 2"),
    (np.zeros(30), (4, 1), "linear", r"shape must be 2 integers >= 2 .*got \(4, 1\)"),
    (np.zeros(30), (4, 4), "cubic", r"method must be one of \('linear', 'nearest'\)"),
])
def test_to_grid_rejects_bad_input(values, shape, method, message):
    points = np.random.default_rng(10).random((30, 2))
    (s,) = decompose(points, max_points=30)
    with pytest.raises(ValueError, match=message):
        to_grid(points, values, s, shape, method=method)


def test_to_grid_rejects_a_subdomain_of_other_points():
    points = np.random.default_rng(11).random((40, 2))
    (s,) = decompose(points, max_points=40)
    with pytest.raises(MeshError, match=r"does not belong to these 30 points in 2D"):
        to_grid(points[:30], points[:30, 0], s, (4, 4))
    with pytest.raises(MeshError, match=r"does not belong to these 40 points in 3D"):
        to_grid(np.column_stack([points, points[:, 0]]), points[:, 0], s, (4, 4, 4))


def test_to_grid_needs_points_spanning_the_box_for_linear():
    points = np.column_stack([np.linspace(0, 1, 5), np.linspace(0, 2, 5)])   # all on one line
    (s,) = decompose(points, max_points=5)
    with pytest.raises(MeshError, match=r"3 or more points not all on one line"):
        to_grid(points, points[:, 0], s, (4, 4))
    assert to_grid(points, points[:, 0], s, (4, 4), method="nearest").n_nearest == 16
