"""P1 finite elements: manufactured solutions converge at order 2 for every solver path, solutions
satisfy the assembled system, and the random fields / darcy2d generator behave as specified."""

from __future__ import annotations

import numpy as np
import pytest
from skfem import MeshTet, MeshTri

import meshop
from meshop.data.fem import assemble, l2_error, reduce_dirichlet, relative_residual, solve_poisson, solve_poisson_p2
from meshop.data.grf import grf_fine_resolution, grf_on_grid, smooth_random_field
from meshop.data.problems.darcy2d import cell_mean, darcy2d_sample, square_mesh

SOLVERS = ["direct", "cg", "amg"]
PI = np.pi


# -- manufactured solutions: u, f = -div(a grad u), a ---------------------------------------------------
def u_2d(x):
    return np.sin(PI * x[:, 0]) * np.sin(PI * x[:, 1]) + x[:, 0] ** 2 - 0.5 * x[:, 1]


def grad_u_2d(x):
    sx, sy, cx, cy = np.sin(PI * x[:, 0]), np.sin(PI * x[:, 1]), np.cos(PI * x[:, 0]), np.cos(PI * x[:, 1])
    return np.stack([PI * cx * sy + 2 * x[:, 0], PI * sx * cy - 0.5], axis=1)


def laplace_u_2d(x):
    return -2 * PI ** 2 * np.sin(PI * x[:, 0]) * np.sin(PI * x[:, 1]) + 2


def a_2d(x):
    return 1.0 + x[:, 0] ** 2 + 0.5 * x[:, 1]


def source_2d(x, variable):
    """f = -div(a grad u) = -a Δu - grad a . grad u."""
    if not variable:
        return -laplace_u_2d(x)
    grad_a = np.stack([2 * x[:, 0], np.full(len(x), 0.5)], axis=1)
    return -a_2d(x) * laplace_u_2d(x) - (grad_a * grad_u_2d(x)).sum(axis=1)


def u_3d(x):
    return np.sin(PI * x[:, 0]) * np.sin(PI * x[:, 1]) * np.sin(PI * x[:, 2]) + x[:, 0] * x[:, 1] + x[:, 2]


def source_3d(x):
    return 3 * PI ** 2 * np.sin(PI * x[:, 0]) * np.sin(PI * x[:, 1]) * np.sin(PI * x[:, 2])


def convergence_order(meshes, solver, u_exact, source, coefficient=None):
    """Fitted slope of log(L2 error) vs log(h) over the meshes, h = longest edge."""
    errors, sizes = [], []
    for mesh in meshes:
        points, cells = mesh.p.T, mesh.t.T
        boundary = mesh.boundary_nodes()
        a = None if coefficient is None else coefficient(points, cells)
        solution = solve_poisson(points, cells, source(points), boundary, u_exact(points[boundary]),
                                 coefficient=a, solver=solver, tol=1e-11)
        errors.append(l2_error(points, cells, solution.u, u_exact))
        sizes.append(mesh.param())
    return np.polyfit(np.log(sizes), np.log(errors), 1)[0]


@pytest.mark.parametrize("solver", SOLVERS)
def test_order_two_on_unit_square(solver):
    meshes = [MeshTri.init_sqsymmetric().refined(k) for k in (3, 4, 5)]
    order = convergence_order(meshes, solver, u_2d, lambda x: source_2d(x, False))
    assert 1.8 <= order <= 2.3


@pytest.mark.parametrize("solver", SOLVERS)
def test_order_two_on_l_shape_with_nodal_coefficient(solver):
    meshes = [MeshTri.init_lshaped().refined(k) for k in (3, 4, 5)]
    order = convergence_order(meshes, solver, u_2d, lambda x: source_2d(x, True),
                              coefficient=lambda p, t: a_2d(p))
    assert 1.8 <= order <= 2.3


@pytest.mark.parametrize("solver", SOLVERS)
def test_order_two_on_disk_with_per_cell_coefficient(solver):
    meshes = [MeshTri.init_circle(k) for k in (3, 4, 5)]
    order = convergence_order(meshes, solver, u_2d, lambda x: source_2d(x, True),
                              coefficient=lambda p, t: a_2d(p[t].mean(axis=1)))
    assert 1.8 <= order <= 2.3


@pytest.mark.parametrize("solver", SOLVERS)
def test_order_two_on_unit_cube_tetrahedra(solver):
    meshes = [MeshTet.init_tensor(*[np.linspace(0, 1, n)] * 3) for n in (7, 13, 25)]
    order = convergence_order(meshes, solver, u_3d, source_3d)
    assert 1.8 <= order <= 2.3


@pytest.mark.parametrize("dim", [2, 3])
def test_quadratic_elements_reproduce_a_quadratic_solution_where_linear_ones_do_not(dim):
    """-Δu = 1 with u = -|x|²/(2d) + x y: P2 is exact at the nodes of an unstructured mesh (interior
    nodes jittered), P1 is not, so P2 on the same mesh can serve as the more accurate reference."""
    mesh = (MeshTri if dim == 2 else MeshTet).init_tensor(*(np.linspace(0, 1, 6),) * dim)
    points, cells = mesh.p.T.copy(), mesh.t.T
    held = np.unique(mesh.facets[:, mesh.boundary_facets()])
    inner = np.setdiff1d(np.arange(len(points)), held)
    points[inner] += np.random.default_rng(0).uniform(-0.04, 0.04, (len(inner), dim))

    def exact(x):
        return -(x ** 2).sum(axis=1) / (2 * dim) + x[:, 0] * x[:, 1]

    for solver in ("direct", "cg"):
        quadratic = solve_poisson_p2(points, cells, 1.0, exact, solver=solver)
        np.testing.assert_allclose(quadratic, exact(points), atol=1e-9)
    linear = solve_poisson(points, cells, np.ones(len(points)), held, exact(points[held])).u
    assert np.abs(linear - exact(points)).max() > 1e-4
    zero = solve_poisson_p2(points, cells, 2.0)                      # u = 0 on the boundary by default
    assert np.abs(zero[held]).max() == 0.0 and zero[inner].min() > 0.0


def test_constant_coefficient_scales_solution():
    mesh = MeshTri.init_sqsymmetric().refined(3)
    points, cells, boundary = mesh.p.T, mesh.t.T, mesh.boundary_nodes()
    f = np.ones(len(points))
    unit = solve_poisson(points, cells, f, boundary, np.zeros(len(boundary)))
    scaled = solve_poisson(points, cells, f, boundary, np.zeros(len(boundary)),
                           coefficient=np.full(len(cells), 4.0))
    np.testing.assert_allclose(scaled.u, unit.u / 4.0, rtol=1e-12, atol=1e-15)


def test_boolean_dirichlet_mask_equals_node_ids():
    mesh = MeshTri.init_sqsymmetric().refined(3)
    points, cells, boundary = mesh.p.T, mesh.t.T, mesh.boundary_nodes()
    mask = np.zeros(len(points), dtype=bool)
    mask[boundary] = True
    by_ids = solve_poisson(points, cells, source_2d(points, False), boundary, u_2d(points[boundary]))
    by_mask = solve_poisson(points, cells, source_2d(points, False), mask, u_2d(points))
    np.testing.assert_array_equal(by_ids.u, by_mask.u)


@pytest.mark.parametrize("solver,tol", [("direct", 1e-12), ("cg", 1e-8), ("amg", 1e-8)])
def test_stored_solution_satisfies_assembled_system(tmp_path, solver, tol):
    """Write a darcy2d sample, read it back, re-assemble from the stored permeability: the stored u
    solves the reduced system to the solver tolerance and is 0 on the boundary."""
    sample = darcy2d_sample(np.random.default_rng(3), resolution=33, solver=solver, tol=tol)
    path = meshop.write(sample, tmp_path / "sample.vtu")
    stored = meshop.read(path)
    points, cells = stored.points, stored.cells["triangle"]
    permeability, u = stored.point_data["permeability"], stored.point_data["u"]
    boundary = np.flatnonzero(stored.boundary_mask)
    assert len(boundary) == 4 * 32
    np.testing.assert_array_equal(u[boundary], 0.0)
    stiffness, load = assemble(points, cells, np.ones(len(points)), cell_mean(permeability, cells))
    matrix, rhs, free = reduce_dirichlet(stiffness, load, boundary, np.zeros(len(boundary)))
    residual = relative_residual(matrix, u[free], rhs)
    assert residual <= tol
    assert relative_residual(matrix, np.zeros(len(free)), rhs) == 1.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_reported_residual_within_tolerance(solver):
    mesh = MeshTet.init_tensor(*[np.linspace(0, 2, 7)] * 3)
    points, cells, boundary = mesh.p.T, mesh.t.T, mesh.boundary_nodes()
    solution = solve_poisson(points, cells, source_3d(points), boundary, u_3d(points[boundary]),
                             coefficient=1.0 + points[:, 0], solver=solver, tol=1e-9)
    assert solution.residual <= 1e-9
    assert (solution.iterations == 0) == (solver == "direct")
    np.testing.assert_array_equal(solution.u[boundary], u_3d(points[boundary]))


def test_bad_meshes_are_mesh_errors():
    points, cells = square_mesh(4)
    with pytest.raises(meshop.MeshError, match="belong to no cell"):
        solve_poisson(np.vstack([points, [[5.0, 5.0]]]), cells, np.ones(17), [0], [0.0])
    with pytest.raises(meshop.MeshError, match="expected"):
        solve_poisson(points, cells[:, :2], np.ones(16), [0], [0.0])
    with pytest.raises(meshop.MeshError, match="coefficient"):
        solve_poisson(points, cells, np.ones(16), [0], [0.0], coefficient=np.ones(5))


def test_l2_error_of_exact_linear_function_is_zero():
    mesh = MeshTri.init_lshaped().refined(2)
    points, cells = mesh.p.T, mesh.t.T
    linear = lambda x: 2 * x[:, 0] - 3 * x[:, 1] + 1  # noqa: E731
    assert l2_error(points, cells, linear(points), linear) < 1e-12
    # ||1||_L2 on the L-shape (area 3) is sqrt(3)
    assert l2_error(points, cells, np.zeros(len(points)), lambda x: np.ones(len(x))) == pytest.approx(3 ** 0.5)


# -- random fields ------------------------------------------------------------------------------------------
def test_grf_variance_matches_spectrum():
    """Mean of field² over the grid = Σ_{k≠0} coefficient_k² for the orthonormal DCT synthesis."""
    shape, alpha, tau = (64, 64), 2.0, 3.0
    k2 = np.add.outer(np.arange(64) ** 2, np.arange(64) ** 2).astype(float)
    expected = (tau ** (alpha - 1) * (PI ** 2 * k2 + tau ** 2) ** (-alpha / 2)) ** 2
    expected = expected.sum() - expected[0, 0]
    rng = np.random.default_rng(0)
    measured = np.mean([np.mean(grf_on_grid(shape, alpha, tau, rng) ** 2) for _ in range(200)])
    assert measured == pytest.approx(expected, rel=0.1)
    first = grf_on_grid(shape, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(first, grf_on_grid(shape, rng=np.random.default_rng(5)))
    assert abs(first.mean()) < 1e-12  # the constant mode is zero


def test_grf_fine_resolution_subsamples_exactly():
    assert grf_fine_resolution(85) == 421
    assert grf_fine_resolution(255) == 509
    assert grf_fine_resolution(421) == 421
    for resolution in (3, 20, 100):
        assert (grf_fine_resolution(resolution) - 1) % (resolution - 1) == 0


def test_smooth_random_field_is_scale_free_and_deterministic():
    points = np.random.default_rng(0).uniform(0, 1, (500, 3))
    metres = smooth_random_field(points, np.random.default_rng(7))
    millimetres = smooth_random_field(points * 1000.0 + 42.0, np.random.default_rng(7))
    np.testing.assert_allclose(millimetres, metres, atol=1e-9)
    assert not np.allclose(smooth_random_field(points, np.random.default_rng(8)), metres)
    draws = np.stack([smooth_random_field(points[:50], np.random.default_rng(s)) for s in range(400)])
    assert abs(draws.mean()) < 0.1 and draws.var() == pytest.approx(1.0, rel=0.15)
    # smooth with length scale 0.25 of the box: close points correlate, distant ones do not
    probes = np.array([[0.0, 0.0], [1.0, 1.0], [0.3, 0.3], [0.31, 0.3], [0.9, 0.3]])
    values = np.stack([smooth_random_field(probes, np.random.default_rng(s)) for s in range(400)])
    assert np.corrcoef(values[:, 2], values[:, 3])[0, 1] > 0.95
    assert abs(np.corrcoef(values[:, 2], values[:, 4])[0, 1]) < 0.2


# -- darcy2d ---------------------------------------------------------------------------------------------------
def test_darcy2d_square_sample_bounds_and_determinism():
    sample = darcy2d_sample(np.random.default_rng(4), resolution=33)
    again = darcy2d_sample(np.random.default_rng(4), resolution=33)
    for name in ("permeability", "u"):
        np.testing.assert_array_equal(sample.point_data[name], again.point_data[name])
    permeability, u = sample.point_data["permeability"], sample.point_data["u"]
    assert set(np.unique(permeability)) == {3.0, 12.0}
    assert sample.n_points == 33 * 33 and len(sample.cells["triangle"]) == 2 * 32 * 32
    np.testing.assert_array_equal(u[sample.boundary_mask], 0.0)
    # compliance b.u = b^T A(a)^-1 b decreases with a (Loewner order), so a in [3, 12] brackets it;
    # a = 3 everywhere gives exactly 4x the a = 12 solution
    points, cells = sample.points, sample.cells["triangle"]
    boundary = np.flatnonzero(sample.boundary_mask)
    _, load = assemble(points, cells, np.ones(len(points)))
    constant = [solve_poisson(points, cells, np.ones(len(points)), boundary, np.zeros(len(boundary)),
                              coefficient=np.full(len(cells), a)).u for a in (12.0, 3.0)]
    assert load @ constant[0] < load @ u < load @ constant[1]
    np.testing.assert_allclose(constant[1], 4 * constant[0], rtol=1e-10, atol=1e-16)


def test_darcy2d_permeability_is_balanced_over_samples():
    fractions = [np.mean(darcy2d_sample(np.random.default_rng(s), resolution=17).point_data["permeability"]
                         == 12.0) for s in range(30)]
    assert 0.35 < np.mean(fractions) < 0.65


def test_darcy2d_on_random_domain():
    sample = darcy2d_sample(np.random.default_rng(0), resolution=20, domain="random")
    u = sample.point_data["u"]
    assert 250 < sample.n_points < 800
    assert set(np.unique(sample.point_data["permeability"])) <= {3.0, 12.0}
    np.testing.assert_array_equal(u[sample.boundary_mask], 0.0)
    assert u.max() > 0 and u.min() > -1e-3 * u.max()
    with pytest.raises(ValueError, match="domain"):
        darcy2d_sample(np.random.default_rng(0), resolution=20, domain="circle")


@pytest.mark.parametrize("coefficient", ["none", "nodal", "per cell"])
def test_assembly_in_chunks_equals_assembly_at_once(coefficient):
    m = MeshTet.init_tensor(*(np.linspace(0, 1, 6),) * 3)
    rng = np.random.default_rng(0)
    a = {"none": None, "nodal": 1 + rng.random(m.p.shape[1]), "per cell": 1 + rng.random(m.t.shape[1])}[coefficient]
    f = rng.random(m.p.shape[1])
    whole = assemble(m.p.T, m.t.T, f, a)
    chunked = assemble(m.p.T, m.t.T, f, a, chunk=97)      # 640 cells in 7 chunks, the last partial
    assert abs(whole[0] - chunked[0]).max() < 1e-13 * abs(whole[0]).max()
    assert np.allclose(whole[1], chunked[1], rtol=1e-13, atol=0)


@pytest.mark.parametrize("mesh", [MeshTri.init_circle(3), MeshTet.init_ball(2)], ids=["triangles", "tetrahedra"])
def test_assembly_equals_full_quadrature_reference(mesh):
    """One-point stiffness and the closed-form load equal skfem's default quadrature (order 2):
    the stiffness matrix with a nodal coefficient, and the mass matrix times the source."""
    from skfem import Basis

    from meshop.data.fem import _p1_mesh, mass_matrix, stiffness_matrix

    rng = np.random.default_rng(3)
    points, cells = mesh.p.T * (1 + rng.random()), mesh.t.T
    a, f = 1 + rng.random(len(points)), rng.normal(size=len(points))
    stiffness, load = assemble(points, cells, f, a)
    reference = Basis(*_p1_mesh(points, cells))
    assert abs(stiffness - stiffness_matrix(reference, a)).max() < 1e-13 * abs(stiffness).max()
    np.testing.assert_allclose(load, mass_matrix(reference) @ f, rtol=1e-12, atol=1e-14 * np.abs(load).max())
