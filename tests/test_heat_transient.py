"""Transient heat (meshop.data.fem_transient, heat3d-transient): manufactured solutions converge at
order 2 in time and in space, the source-free L2 norm decays, heat is conserved step by step,
the long-time limit is the steady solver's solution, and samples are deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skfem import FacetBasis, LinearForm, MeshTet
from skfem.helpers import dot

from meshop import Mesh, MeshError, read_series, write_series
from meshop.data.fem import l2_error, p1_basis, solve_poisson
from meshop.data.fem_transient import HeatStepper, heat_matrices, simulate_heat
from meshop.data.problems import get_problem
from meshop.data.problems.heat3d_transient import heat3d_transient_sample

PI = np.pi
SCHEMES = ["bdf2", "cn"]


def unit_cube(n: int) -> Mesh:
    cube = MeshTet.init_tensor(*[np.linspace(0.0, 1.0, n)] * 3)
    return Mesh(cube.p.T, {"tetra": cube.t.T})


def observed_orders(errors) -> np.ndarray:
    """log2 of successive error ratios, for a parameter halved each time."""
    return np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))


# -- order in time: T = e^{-t} (1 + x + 2y + 3z) is linear in space, so the P1 semi-discrete
# solution equals its nodal values exactly and the error at t = 1 is the time scheme's alone.
GRADIENT = np.array([1.0, 2.0, 3.0])


def linear_exact(x, t):
    return np.exp(-t) * (1.0 + x @ GRADIENT)


def time_errors(scheme: str, boundary: str, steps_list=(10, 20, 40, 80)) -> list[float]:
    mesh = unit_cube(5)
    points, tets = mesh.points, mesh.cells["tetra"]
    beta = 2.0
    heat_transfer = beta * mesh.boundary_mask if boundary == "robin" else None
    mass, stiffness, robin = heat_matrices(points, tets, heat_transfer)
    flux = np.zeros(len(points))
    if boundary == "robin":                   # b(t) = e^{-t} ∫ (∂T/∂n + β T) v ds over the surface
        basis = p1_basis(points, tets)
        facets = FacetBasis(basis.mesh, basis.elem, facets=basis.mesh.boundary_facets(), intorder=3)

        @LinearForm
        def boundary_flux(v, w):
            gradient = GRADIENT[:, None, None]
            return (dot(gradient, w.n) + beta * (1.0 + dot(gradient, w.x))) * v

        flux = boundary_flux.assemble(facets)
    fixed = np.flatnonzero(mesh.boundary_mask) if boundary == "dirichlet" else np.array([], dtype=int)
    source = mass @ -linear_exact(points, 0.0)           # f = ∂T/∂t - ΔT = -T

    errors = []
    for steps in steps_list:
        stepper = HeatStepper(mass, stiffness + robin, 1.0 / steps, fixed, scheme)
        frames = stepper.run(linear_exact(points, 0.0), 1, lambda t: np.exp(-t) * (source + flux),
                             lambda t: linear_exact(points[fixed], t), stride=steps)
        errors.append(np.abs(frames[-1] - linear_exact(points, 1.0)).max())
    return errors


@pytest.mark.parametrize("boundary", ["dirichlet", "robin"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_second_order_in_time(scheme, boundary):
    errors = time_errors(scheme, boundary)
    orders = observed_orders(errors)
    assert np.all(np.abs(orders - 2.0) < 0.2), (errors, orders)


# -- order in space: T = S(x) (1 - e^{-μt}) with S a product of 1D profiles and q = μ S constant in
# time, run through simulate_heat. Dirichlet: S = Π sin(π x_i), μ = 3π². Robin with T∞ = 0:
# S = Π cos(k (x_i - ½)) satisfies -∂S/∂n = β S on every face for β = k tan(k/2); μ = 3k².
def space_error(n: int, boundary: str) -> float:
    mesh = unit_cube(n)
    k = PI if boundary == "dirichlet" else 1.0
    mu = 3.0 * k * k
    profile = (lambda x: np.prod(np.sin(PI * x), axis=1)) if boundary == "dirichlet" else \
        (lambda x: np.prod(np.cos(k * (x - 0.5)), axis=1))
    surface = mesh.boundary_mask.astype(float)
    inputs = {"source": mu * profile(mesh.points),
              "dirichlet_mask": surface if boundary == "dirichlet" else 0.0,
              "heat_transfer": k * np.tan(k / 2) * surface if boundary == "robin" else 0.0}
    t_end, steps = 1.5 / mu, 60
    traj = simulate_heat(mesh, np.zeros(mesh.n_points), t_end / steps, 1, inputs, stride=steps,
                         length_scale=1.0, solver="cg", tol=1e-9)
    assert traj.times[-1] == pytest.approx(t_end)
    return l2_error(mesh.points, mesh.cells["tetra"], traj.fields["temperature"][-1],
                    lambda x: profile(x) * (1.0 - np.exp(-mu * t_end)))


@pytest.mark.parametrize("boundary", ["dirichlet", "robin"])
def test_second_order_in_space(boundary):
    sizes = np.array([1 / 4, 1 / 8, 1 / 16])
    errors = [space_error(int(round(1 / h)) + 1, boundary) for h in sizes]
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    finest = observed_orders(errors)[-1]
    assert abs(slope - 2.0) < 0.2 and abs(finest - 2.0) < 0.2, (errors, slope, finest)


# -- the generator ----------------------------------------------------------------------------------
SEED = 0           # a shaft of ~600 nodes at resolution 600


def sample(**options):
    return heat3d_transient_sample(np.random.default_rng(SEED), resolution=600, frames=41, **options)


@pytest.fixture(scope="module")
def heating_robin():
    return sample(scenario="heating", boundary="robin")


@pytest.mark.parametrize("boundary", ["dirichlet", "robin"])
def test_source_free_l2_norm_decays(boundary):
    """Cooling without a source: ||T - T∞||_L2 falls at every frame, with BDF2 (the sample) and CN."""
    traj, info = sample(scenario="cooling", boundary=boundary)
    cn = simulate_heat(traj.mesh, traj.fields["temperature"][0], info["dt"], traj.n_frames - 1,
                       stride=info["stride"], scheme="cn")
    mass = heat_matrices(traj.mesh.points, traj.mesh.cells["tetra"])[0]
    for run in (traj, cn):
        excess = run.fields["temperature"] - info["ambient_temperature"]
        norms = np.sqrt(np.einsum("tn,tn->t", excess, (mass @ excess.T).T))
        assert np.all(np.diff(norms) < 0), norms
        assert norms[-1] < 0.5 * norms[0]


@pytest.mark.parametrize("solver", ["cg", "amg"])
def test_iterative_solvers_agree_with_the_factorization(solver):
    mesh = unit_cube(7)
    surface = mesh.boundary_mask.astype(float)
    inputs = {"source": 1.0 + mesh.points[:, 0], "heat_transfer": 3.0 * surface, "ambient_temperature": 0.5}
    runs = [simulate_heat(mesh, np.zeros(mesh.n_points), 0.01, 5, inputs, stride=2, solver=name, tol=1e-12)
            for name in ("direct", solver)]
    direct, iterative = (run.fields["temperature"] for run in runs)
    assert np.abs(direct[-1] - 0.5).max() > 0.01
    np.testing.assert_allclose(iterative, direct, rtol=0, atol=1e-9)


def test_heat_balance_holds_every_step(heating_robin):
    """BDF2 on Robin surfaces, step by step (backward Euler where the source switches on): the
    change of the heat content ∫T equals d² (heat made - heat lost through the surface) exactly,
    and the frames are every stride-th step."""
    traj, info = heating_robin
    mesh, d, dt = traj.mesh, info["length_scale"], info["dt"]
    steps = simulate_heat(mesh, traj.fields["temperature"][0], dt, info["stride"] * (traj.n_frames - 1),
                          t_on=info["t_on"], length_scale=d)
    T = steps.fields["temperature"]
    np.testing.assert_array_equal(T[:: info["stride"]], traj.fields["temperature"])
    mass, _, robin = heat_matrices(mesh.points, mesh.cells["tetra"], mesh.point_data["heat_transfer"])
    content = mass.sum(axis=0).A1 @ T.T
    made = mass.sum(axis=0).A1 @ mesh.point_data["source"] * (steps.times > info["t_on"])
    lost = robin.sum(axis=0).A1 @ (T - info["ambient_temperature"]).T
    rate = (1.5 * content[2:] - 2.0 * content[1:-1] + 0.5 * content[:-2]) / dt
    switch = int(round(info["t_on"] / dt))                     # a backward-Euler step there
    assert switch > 0
    rate[switch - 1] = (content[switch + 1] - content[switch]) / dt
    balance = d * d * (made[2:] - lost[2:])
    np.testing.assert_allclose(rate, balance, rtol=0, atol=1e-9 * np.abs(balance).max())
    assert np.abs(balance).max() > 0


def test_long_time_limit_is_the_steady_solution():
    traj, info = sample(scenario="heating", boundary="dirichlet")
    mesh = traj.mesh
    final = simulate_heat(mesh, traj.fields["temperature"][0], 0.5, 40, t_on=0.0).fields["temperature"][-1]
    held = mesh.boundary_mask & (mesh.point_data["surfaces_held"] > 0.5)
    steady = solve_poisson(mesh.points, mesh.cells["tetra"], mesh.point_data["source"], held,
                           mesh.point_data["ambient_temperature"]).u
    assert np.abs(final - steady).max() <= 1e-8 * np.abs(steady - info["ambient_temperature"]).max()
    assert np.abs(steady - info["ambient_temperature"]).max() > 0.1


def test_sample_is_deterministic_and_reproduced_by_simulate_heat(heating_robin, tmp_path):
    traj, info = heating_robin
    again, info_again = sample(scenario="heating", boundary="robin")
    assert info == info_again and traj.metadata == again.metadata
    np.testing.assert_array_equal(traj.mesh.points, again.mesh.points)
    for name in traj.fields:
        np.testing.assert_array_equal(traj.fields[name], again.fields[name])
    json.dumps([info, traj.metadata], allow_nan=False)
    stored = read_series(write_series(traj, tmp_path / "sample.pvd"))
    assert stored.metadata == traj.metadata and set(stored.mesh.point_data) == set(traj.mesh.point_data)
    np.testing.assert_array_equal(stored.fields["temperature"], traj.fields["temperature"])
    replay = simulate_heat(traj.frame(0), traj.fields["temperature"][0], info["dt"], traj.n_frames - 1,
                           stride=info["stride"], t_on=info["t_on"])
    np.testing.assert_array_equal(replay.fields["temperature"], traj.fields["temperature"])
    # the replay also carries the held-node mask it derived from the sample's surfaces_held flag
    assert set(replay.mesh.point_data) == set(traj.mesh.point_data) | {"dirichlet_mask"}


def test_source_switches_on_at_t_on(heating_robin):
    traj, info = heating_robin
    T, on = traj.fields["temperature"], traj.fields["source_on"]
    first = int(round(info["t_on"] / info["frame_dt"]))
    np.testing.assert_array_equal(on[:, 0], (np.arange(traj.n_frames) >= first).astype(float))
    np.testing.assert_allclose(T[: first + 1], info["ambient_temperature"], rtol=0, atol=1e-12)
    assert np.all(T[-1] > info["ambient_temperature"])
    assert traj.metadata["state"] == ["temperature"]
    assert set(traj.metadata["inputs"]) <= set(traj.mesh.point_data)


def test_registered_with_its_fields():
    problem = get_problem("heat3d-transient")
    assert problem.targets == {"temperature": problem.fields["temperature"][1]}
    assert {"source", "heat_transfer", "ambient_temperature", "surfaces_held", "source_on"} == set(problem.inputs)


def test_bad_input_is_one_clear_error():
    mesh = unit_cube(3)
    with pytest.raises(MeshError, match="initial temperature has shape"):
        simulate_heat(mesh, np.zeros(5), 0.1, 2)
    with pytest.raises(MeshError, match="input 'source' has shape"):
        simulate_heat(mesh, np.zeros(mesh.n_points), 0.1, 2, {"source": np.ones(3)})
    with pytest.raises(MeshError, match="tetrahedral mesh"):
        simulate_heat(Mesh(mesh.points), np.zeros(mesh.n_points), 0.1, 2)


def test_second_order_in_time_across_the_switch_on():
    """BDF2 restarts with a backward-Euler step where the source switches on, so the error
    (against 16x finer steps) still falls 4x per halving."""
    mesh = unit_cube(6)
    inputs = {"source": 3 * PI ** 2 * np.prod(np.sin(PI * mesh.points), axis=1), "dirichlet_mask": mesh.boundary_mask * 1.0}

    def final(stride):
        return simulate_heat(mesh, np.zeros(mesh.n_points), 0.005 / stride, 10, inputs, stride=stride, t_on=0.025,
                             length_scale=1.0).fields["temperature"][-1]

    reference = final(32)
    errors = [np.abs(final(stride) - reference).max() for stride in (1, 2, 4)]
    orders = observed_orders(errors)
    assert np.all(np.abs(orders - 2.0) < 0.2), (errors, orders)
