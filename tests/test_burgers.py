"""burgers2d: the semi-implicit P1 scheme converges to exact Cole-Hopf solutions at its order."""

import numpy as np
import pytest

from meshop.data.fem import l2_error
from meshop.data.problems import get_problem
from meshop.data.problems.burgers2d import BurgersStepper, cole_hopf
from meshop.data.problems.darcy2d import square_mesh
from meshop.errors import MeshError

NU = 0.05


def _square(n):
    points, triangles = square_mesh(n)
    return points, triangles, (np.isclose(points, 0.0) | np.isclose(points, 1.0)).any(axis=1)


def _l2(points, triangles, u, exact):
    return np.sqrt(sum(l2_error(points, triangles, u[:, c], lambda x, c=c: exact(x)[:, c]) ** 2
                       for c in range(2)))


def test_cole_hopf_solves_burgers():
    """The exact solution itself: finite-difference residual of u_t + (u.grad)u - nu lap u."""
    exact = cole_hopf([[1.0, 0.3], [-0.2, -0.1], [0.1, 0.8]], NU, centre=(0.5, 0.5))
    x, t, e = np.array([[0.47, 0.52], [0.3, 0.6]]), 0.1, 1e-4
    u_t = (exact(x, t + e) - exact(x, t - e)) / (2 * e)
    d = [(exact(x + e * s, t) - exact(x - e * s, t)) / (2 * e) for s in np.eye(2)]
    lap = sum((exact(x + e * s, t) - 2 * exact(x, t) + exact(x - e * s, t)) / e ** 2 for s in np.eye(2))
    u = exact(x, t)
    residual = u_t + u[:, :1] * d[0] + u[:, 1:] * d[1] - NU * lap
    assert np.abs(residual).max() < 1e-4 * np.abs(u_t).max() + 1e-5
    assert np.abs(u_t).max() > 0.1                                      # a moving front


def test_second_order_in_space():
    """Steady triple junction (three states of equal speed): L2 error ~ h^2."""
    angles = np.array([0.3, 2.4, 4.3])
    exact = cole_hopf(np.stack([np.cos(angles), np.sin(angles)], axis=1), NU, centre=(0.5, 0.5))
    errors = []
    for n in (9, 17, 33):
        points, triangles, boundary = _square(n)
        stepper, u = BurgersStepper(points, triangles, NU, 1.0, boundary), exact(points, 0.0)
        for _ in range(25):                                             # to the discrete steady state
            u = stepper.step(u)
        errors.append(_l2(points, triangles, u, lambda x: exact(x, 0.0)))
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all((orders > 1.7) & (orders < 2.3)) and orders[-1] > 1.9, (errors, orders)   # 1.81, 1.93


def test_first_order_in_time():
    """Moving front, boundary values from the exact solution: error at t = 0.4 ~ dt."""
    exact = cole_hopf([[1.0, 0.3], [-0.2, -0.1]], NU, centre=(0.4, 0.5))
    points, triangles, boundary = _square(33)
    errors = []
    for dt in (0.04, 0.02, 0.01):
        stepper, u = BurgersStepper(points, triangles, NU, dt, boundary), exact(points, 0.0)
        for k in range(round(0.4 / dt)):
            u = stepper.step(u, exact(points, (k + 1) * dt))
        errors.append(_l2(points, triangles, u, lambda x: exact(x, 0.4)))
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all((orders > 0.8) & (orders < 1.2)), (errors, orders)            # 0.89, 0.91


@pytest.mark.parametrize("domain", ["square", "random"])
def test_sample_is_a_trajectory(domain):
    traj, info = get_problem("burgers2d").sample_with_info(
        np.random.default_rng(3), resolution=400, domain=domain, frames=4, stride=2)
    velocity = traj.fields["velocity"]
    assert velocity.shape == (4, traj.mesh.n_points, 2)
    assert traj.metadata["state"] == ["velocity"] and traj.metadata["stride"] == 2
    np.testing.assert_allclose(traj.times, np.arange(4) * 0.02)
    assert np.all(velocity[:, traj.mesh.boundary_mask] == 0.0)          # boundary="zero"
    assert 0.1 < np.abs(velocity[0]).max() <= 1.0
    assert np.all(np.abs(np.diff(velocity, axis=0)).max(axis=(1, 2)) > 1e-4)   # it evolves
    assert info["max_speed"] <= np.sqrt(2.0) + 1e-9


def test_bad_options():
    with pytest.raises(MeshError, match="domain"):
        get_problem("burgers2d").sample(np.random.default_rng(0), domain="cube")
    with pytest.raises(MeshError, match="refine"):
        get_problem("burgers2d").sample(np.random.default_rng(0), refine=5)
    with pytest.raises(MeshError, match="needs nu > 0 and dt > 0, got nu = nan"):    # was a singular factor
        get_problem("burgers2d").sample(np.random.default_rng(0), nu=float("nan"))


@pytest.mark.parametrize("domain", ["square", "random"])
def test_a_refined_solve_converges_at_the_stored_nodes(domain):
    """refine=K solves on the mesh split K times and stores the mesh's own nodes: the stored
    trajectory approaches the finest solve's as K grows, and keeps the mesh, the boundary rule
    and (K = 0) the plain solve."""
    from meshop.data.problems.burgers2d import refined

    problem, options = get_problem("burgers2d"), dict(resolution=150, domain=domain, frames=6, stride=4, nu=0.02)
    runs = [problem.sample(np.random.default_rng(9), refine=k, **options) for k in range(4)]
    mesh = runs[0].mesh
    fine = refined(mesh, 2)
    np.testing.assert_array_equal(fine.points[: mesh.n_points, :2], mesh.points[:, :2])   # own nodes first
    assert fine.n_points > 10 * mesh.n_points and runs[2].metadata["solved_nodes"] == fine.n_points
    assert "refine" not in runs[0].metadata and runs[3].metadata["refine"] == 3
    finest = runs[3].fields["velocity"][-1]
    gaps = [np.linalg.norm(r.fields["velocity"][-1] - finest) / np.linalg.norm(finest) for r in runs[:3]]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.5 * gaps[0], gaps
    for r in runs:
        np.testing.assert_array_equal(r.mesh.points, mesh.points)
        assert np.all(r.fields["velocity"][:, mesh.boundary_mask] == 0.0)                  # boundary="zero"
