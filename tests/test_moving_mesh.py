"""Mesh movers' geometry: quality checks, sliding boundaries, and the classical Monge-Ampere mover."""

import numpy as np
import pytest

from meshop.data.fem import l2_error
from meshop.data.problems.darcy2d import square_mesh
from meshop.geometry.monge_ampere import equidistribution, monge_ampere_move
from meshop.geometry.monitor import P1Locator, cell_gradients, monitor
from meshop.geometry.moving import BoundarySlider, boundary_loops, mesh_quality, safe_move, signed_areas


def front(x):
    """A sharp circular tanh front (width 0.03) across the unit square."""
    return np.tanh((np.linalg.norm(x - [0.2, 0.25], axis=1) - 0.5) / 0.03)


def annulus(n_radial=6, n_around=40):
    """A structured annulus 0.5 < r < 1: one outer loop, one hole, no corners."""
    r, a = np.meshgrid(np.linspace(0.5, 1.0, n_radial), np.linspace(0, 2 * np.pi, n_around, endpoint=False), indexing="ij")
    points = np.stack([r * np.cos(a), r * np.sin(a)], axis=-1).reshape(-1, 2)
    ids = np.arange(n_radial * n_around).reshape(n_radial, n_around)
    i, j = np.meshgrid(np.arange(n_radial - 1), np.arange(n_around), indexing="ij")
    a0, a1, b0, b1 = ids[i, j], ids[i, (j + 1) % n_around], ids[i + 1, j], ids[i + 1, (j + 1) % n_around]
    triangles = np.concatenate([np.stack([a0, a1, b1], -1).reshape(-1, 3), np.stack([a0, b1, b0], -1).reshape(-1, 3)])
    return points, triangles


def test_quality_of_a_right_triangle_mesh():
    points, triangles = square_mesh(5)
    quality = mesh_quality(points, triangles)
    assert quality.n_inverted == 0 and quality.min_angle == pytest.approx(45.0)
    assert sum(quality.histogram) == len(triangles) and quality.histogram[9] == len(triangles)  # 45-50
    flipped = points.copy()
    flipped[6] = [0.6, 0.6]                            # node (0.25, 0.25) pushed past its neighbours
    assert mesh_quality(flipped, triangles, points).n_inverted > 0


def test_gradient_and_locator_are_exact_on_linear_fields():
    points, triangles = square_mesh(7)
    linear = points @ [2.0, -3.0] + 1.0
    np.testing.assert_allclose(cell_gradients(points, triangles, linear)[:, :, 0], np.tile([2.0, -3.0], (len(triangles), 1)))
    query = np.random.default_rng(0).uniform(0, 1, (50, 2))
    np.testing.assert_allclose(P1Locator(points, triangles).interpolate(linear, query), query @ [2.0, -3.0] + 1.0)
    np.testing.assert_allclose(monitor(points, triangles, linear), 1.0 + 1.0 / 0.2)   # uniform |grad u|


def test_boundary_loops_corners_and_sliding():
    points, triangles = annulus()
    loops = boundary_loops(triangles, len(points))
    assert sorted(len(loop) for loop in loops) == [40, 40]
    slider = BoundarySlider(points, triangles)
    assert len(slider.corners) == 0                                       # 9 degrees per vertex
    moved = slider.project(points * 1.1 + [0.0, 0.05])                    # pushed off the curves
    radius = np.linalg.norm(moved[slider.boundary], axis=1)
    polygon_inner = 0.5 * np.cos(np.pi / 40)                              # chord midpoints
    assert np.all((radius > polygon_inner - 1e-12) & (radius < 1.0 + 1e-12))
    assert np.all((np.abs(radius - 0.75) > 0.2))                          # each stayed on its own loop
    square, cells = square_mesh(5)
    square_slider = BoundarySlider(square, cells)
    assert sorted(square_slider.corners.tolist()) == [0, 4, 20, 24]
    dragged = square_slider.project(square + 0.1)
    np.testing.assert_array_equal(dragged[[0, 4, 20, 24]], square[[0, 4, 20, 24]])
    edge = np.isclose(square[:, 0], 0.0)
    np.testing.assert_allclose(dragged[edge, 0], 0.0)                     # slid along x = 0


def test_safe_move_backs_off():
    points, triangles = square_mesh(5)
    target = points.copy()
    target[12] += [0.6, 0.0]                                              # centre node far past its ring
    moved, quality = safe_move(points, triangles, target)
    assert quality.halvings >= 2 and quality.n_inverted == 0
    assert np.all(signed_areas(moved, triangles) / signed_areas(points, triangles) > 0)
    assert any("halved" in line for line in quality.lines())
    uniform, quality = safe_move(points, triangles, target, shrink=0.8)   # the whole move shrinks
    assert quality.halvings >= 1 and quality.n_inverted == 0
    np.testing.assert_allclose(uniform - points, 0.8 ** quality.halvings * (target - points), atol=1e-12)
    previous = points + 0.8 ** (quality.halvings - 1) * (target - points)   # one round less: tangled
    assert np.any(signed_areas(previous, triangles) / signed_areas(points, triangles) < 1e-4)


def test_classical_mover_equidistributes_and_cuts_interpolation_error():
    points, triangles = square_mesh(25)
    result = monge_ampere_move(points, triangles, front(points), pseudo_step=0.2, max_iterations=150)
    m = monitor(points, triangles, front(points))
    before, after = equidistribution(points, triangles, m), equidistribution(points, triangles, m, result.points)
    error_ratio = l2_error(result.points, triangles, front(result.points), front) / l2_error(points, triangles, front(points), front)
    assert after < 0.4 * before, (before, after)
    assert error_ratio < 0.7, error_ratio
    assert result.quality.n_inverted == 0 and result.residuals[-1] < 0.5 * result.residuals[0]
    boundary = BoundarySlider(points, triangles).boundary
    on_edge = np.isclose(result.points[boundary], 0.0, atol=1e-12) | np.isclose(result.points[boundary], 1.0, atol=1e-12)
    assert on_edge.any(axis=1).all()                                      # boundary nodes stayed on it


def test_classical_mover_on_a_domain_with_a_hole():
    points, triangles = annulus(8, 48)
    field = np.tanh((points[:, 0] - 0.1) / 0.05)
    result = monge_ampere_move(points, triangles, field, max_iterations=60)
    assert result.quality.n_inverted == 0
    radius = np.linalg.norm(result.points, axis=1)
    assert radius.min() > 0.5 * np.cos(np.pi / 48) - 1e-12 and radius.max() < 1.0 + 1e-12   # the hole stays a hole
    m = monitor(points, triangles, field)
    assert equidistribution(points, triangles, m, result.points) < 0.7 * equidistribution(points, triangles, m)


def test_nodes_next_to_a_corner_cannot_slide_onto_it():
    """Pushed past the corner along the bottom edge, the first node of the edge stops at half its
    distance to the corner, and the next one at half of its own (no flattened cell)."""
    points, triangles = square_mesh(5)                                   # spacing 0.25, corner at 0
    slider = BoundarySlider(points, triangles)
    bottom = np.where(np.isclose(points[:, 1], 0.0) & (points[:, 0] > 0) & (points[:, 0] < 1))[0]
    pushed = points.copy()
    pushed[bottom, 0] -= 0.6
    moved = slider.project(pushed)
    np.testing.assert_allclose(np.sort(moved[bottom, 0]), [0.125, 0.25, 0.375])
    np.testing.assert_allclose(moved[bottom, 1], 0.0)


def test_classical_mover_relaxes_on_a_random_domain_with_holes():
    """On a random polygonal domain with holes (re-entrant corners) the relaxation keeps going:
    the plain scheme stopped after 6 steps at 0.86 of its starting residual, a hole's corner cell
    about to invert (min angle 0.1°)."""
    from meshop.data.shapes import random_domain_2d

    rng = np.random.default_rng(7)
    points, triangles = random_domain_2d(rng, target_nodes=250)
    assert len(boundary_loops(triangles, len(points))) >= 2                # at least one hole
    size = float(np.ptp(points, axis=0).max())
    centre, radius = points[rng.integers(len(points))], rng.uniform(0.25, 0.45) * size
    field = np.tanh((np.linalg.norm(points - centre, axis=1) - radius) / (0.03 * size))
    result = monge_ampere_move(points, triangles, field)
    assert result.quality.n_inverted == 0 and result.quality.min_angle > 5.0, result.quality.lines()
    assert result.iterations > 20 and result.residuals[-1] < 0.7 * result.residuals[0], result.residuals


def pinched_square(n=17):
    """The unit square less two square holes [0.25, 0.5]² and [0.5, 0.75]², which touch at (0.5, 0.5):
    a boundary node with four boundary edges."""
    points, triangles = square_mesh(n)
    centroids = points[triangles].mean(axis=1)
    holes = ((centroids > 0.25) & (centroids < 0.5)).all(1) | ((centroids > 0.5) & (centroids < 0.75)).all(1)
    used, triangles = np.unique(triangles[~holes], return_inverse=True)
    return points[used], triangles.reshape(-1, 3)


def test_a_boundary_that_touches_itself_is_moved_with_the_pinch_fixed():
    """Two holes touching at a node were refused ("the mesh boundary is not a set of simple closed
    curves"); the boundary now splits into loops through that node, which stays put like a corner."""
    points, triangles = pinched_square()
    pinch = int(np.argmin(np.linalg.norm(points - 0.5, axis=1)))
    loops = boundary_loops(triangles, len(points))
    assert sorted(len(loop) for loop in loops) == [16, 16, 64]
    assert (np.concatenate(loops) == pinch).sum() == 2                   # in both hole loops
    slider = BoundarySlider(points, triangles)
    assert pinch in slider.corners.tolist() and not slider.tangents[pinch].any()
    result = monge_ampere_move(points, triangles, front(points), max_iterations=60)
    assert result.quality.n_inverted == 0 and result.residuals[-1] < 0.8 * result.residuals[0]
    np.testing.assert_array_equal(result.points[pinch], points[pinch])
    on_boundary = slider.boundary
    np.testing.assert_allclose(slider.project(result.points)[on_boundary], result.points[on_boundary], atol=1e-12)


def test_classical_mover_stops_at_once_on_a_zero_residual():
    """A field linear on each of two triangles has a uniform monitor: the residual is 0 and the
    relaxation ran its 400 steps ("400 relaxation steps, residual 0 -> 0")."""
    points, triangles = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([[0, 1, 2], [1, 3, 2]])
    result = monge_ampere_move(points, triangles, points[:, 0])
    assert result.iterations == 1 and result.residuals == [0.0]
    np.testing.assert_array_equal(result.points, points)
