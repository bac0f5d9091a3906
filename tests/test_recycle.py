"""Sorting Krylov Recycling: ordering, exactness against a direct solver, and measured savings."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from meshop.data.problems.darcy2d import darcy2d_family, darcy2d_sample, darcy2d_samples_recycled
from meshop.data.recycle import greedy_order, path_length, solve_family
from meshop.errors import MeshError


@pytest.fixture(scope="module")
def family():
    return darcy2d_family(np.random.default_rng(11), n_samples=10, resolution=33)


@pytest.fixture(scope="module")
def direct(family):
    return [spla.spsolve(matrix.tocsc(), family.rhs) for matrix in family.matrices]


@pytest.mark.parametrize("method,preconditioner", [("rcg", None), ("rcg", "jacobi"),
                                                   ("gcrotmk", "jacobi"), ("gcrotmk", "amg")])
def test_recycled_solutions_equal_direct(family, direct, method, preconditioner):
    tol = 1e-10
    solutions, stats = solve_family(family.matrices, family.rhs, tol=tol, features=family.permeability,
                                    method=method, preconditioner=preconditioner)
    assert (stats.residuals <= tol).all()
    for solution, reference in zip(solutions, direct):
        assert np.linalg.norm(solution - reference) <= 1e-7 * np.linalg.norm(reference)
    assert sorted(stats.order.tolist()) == list(range(10))
    assert (stats.iterations > 0).all() and (stats.seconds > 0).all()


def test_greedy_order_is_permutation_and_shortens_tour():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    order = greedy_order(features)
    assert sorted(order.tolist()) == list(range(40)) and order[0] == 0
    assert path_length(features, order) < 0.8 * path_length(features, np.arange(40))


def test_greedy_order_follows_a_line():
    """Points on a line in shuffled order: the greedy tour from an end walks the line."""
    positions = np.random.default_rng(1).permutation(30).astype(float)
    features = np.column_stack([positions, np.zeros(30)])
    order = greedy_order(features, start=int(np.argmin(positions)))
    np.testing.assert_array_equal(positions[order], np.arange(30.0))


def test_sorting_darcy_family_shortens_tour_with_pca(family):
    order = greedy_order(family.permeability, n_components=8)
    assert sorted(order.tolist()) == list(range(10))
    assert path_length(family.permeability, order) < path_length(family.permeability, np.arange(10))


@pytest.mark.parametrize("method", ["rcg", "gcrotmk"])
def test_recycling_reduces_total_iterations(family, method):
    common = dict(tol=1e-8, features=family.permeability, method=method, preconditioner="jacobi")
    _, independent = solve_family(family.matrices, family.rhs, recycle=False, **common)
    _, recycled = solve_family(family.matrices, family.rhs, order="sorted", **common)
    assert recycled.iterations.sum() < 0.85 * independent.iterations.sum()
    # the first system of the sequence has nothing to recycle yet
    first = recycled.order[0]
    assert abs(int(recycled.iterations[first]) - int(independent.iterations[first])) <= 20


def test_explicit_order_and_bad_arguments(family):
    permutation = np.arange(10)[::-1]
    _, stats = solve_family(family.matrices[:10], family.rhs, order=permutation)
    np.testing.assert_array_equal(stats.order, permutation)
    with pytest.raises(ValueError, match="permutation"):
        solve_family(family.matrices, family.rhs, order=np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="method"):
        solve_family(family.matrices, family.rhs, method="bicg")
    with pytest.raises(ValueError, match="rcg"):
        solve_family(family.matrices, family.rhs, method="rcg", preconditioner="amg")


def test_per_system_right_hand_sides(family):
    rhs = np.random.default_rng(2).normal(size=(3, len(family.rhs)))
    solutions, stats = solve_family(family.matrices[:3], rhs, tol=1e-10)
    for matrix, b, x in zip(family.matrices[:3], rhs, solutions):
        np.testing.assert_allclose(x, spla.spsolve(matrix.tocsc(), b), rtol=1e-6, atol=1e-12)


def test_recycled_darcy_samples_match_direct_samples():
    rngs = [np.random.default_rng(seed) for seed in range(4)]
    recycled = darcy2d_samples_recycled(rngs, resolution=25, tol=1e-10)
    for seed, sample in enumerate(recycled):
        direct = darcy2d_sample(np.random.default_rng(seed), resolution=25)
        np.testing.assert_array_equal(sample.point_data["permeability"], direct.point_data["permeability"])
        u, reference = sample.point_data["u"], direct.point_data["u"]
        assert np.linalg.norm(u - reference) <= 1e-7 * np.linalg.norm(reference)


def test_generate_with_recycling_matches_direct_samples(tmp_path):
    """`meshop generate darcy2d --solver recycle`: the same inputs as a direct run, u to 1e-8."""
    import meshop
    from meshop.data import generate

    recycled = generate("darcy2d", 5, tmp_path / "recycled", seed=3, resolution=25, solver="recycle", progress=False)
    direct = generate("darcy2d", 5, tmp_path / "direct", seed=3, resolution=25, progress=False)
    for i in range(5):
        a = meshop.read(recycled / f"sample_{i:05d}.vtu")
        b = meshop.read(direct / f"sample_{i:05d}.vtu")
        np.testing.assert_array_equal(a.point_data["permeability"], b.point_data["permeability"])
        u = b.point_data["u"]
        assert np.abs(a.point_data["u"] - u).max() <= 1e-6 * np.abs(u).max()
    with pytest.raises(MeshError, match="needs one mesh for the whole family"):
        generate("darcy2d", 2, tmp_path / "random", resolution=9, solver="recycle", domain="random", progress=False)
