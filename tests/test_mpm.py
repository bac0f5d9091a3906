"""MLS-MPM generator: conservation laws, plasticity invariants, reproducibility, and two classic
experiments (dam break, granular column collapse) against published data."""

import numpy as np
import pytest

from meshop.data.mpm.experiments import MARTIN_MOYCE, block, column_collapse, dam_break, lube_runout
from meshop.data.mpm.solver import ELASTIC, FLUID, PLASTICINE, SAND, MaterialParameters, MPMSolver
from meshop.data.problems import get_problem
from meshop.errors import MeshError


def free_flight(dim, materials, spacing=0.01, seed=0, stretch=0.0):
    """Blocks of ``materials`` in the middle of the unit box, random velocities plus a pure
    stretch of rate ``stretch`` (1/s) about each block's centre, no gravity."""
    rng = np.random.default_rng(seed)
    blocks, ids = [], []
    for k, material in enumerate(materials):
        lower = np.full(dim, 0.35)
        lower[0] = 0.2 + 0.16 * k
        cube = block(lower, [0.12] * dim, spacing)
        blocks.append(cube)
        ids.append(np.full(len(cube), material))
    x = np.concatenate(blocks)
    centres = np.concatenate([np.broadcast_to(b.mean(axis=0), b.shape) for b in blocks])
    axes = np.where(np.arange(dim) == 0, 1.0, -1.0 / (dim - 1))
    v = rng.normal(0.0, 0.3, size=x.shape) + stretch * (x - centres) * axes
    return MPMSolver(x, v, np.concatenate(ids), np.full(len(x), spacing ** dim), np.zeros(dim), np.ones(dim),
                     2 * spacing, 2e-4, walls="sticky", device="cpu")


def test_mass_exact_and_momentum_conserved_in_free_flight():
    solver = free_flight(2, [ELASTIC, FLUID, SAND, PLASTICINE])
    masses = solver.masses.copy()
    momentum0 = masses @ solver.velocities
    scale = masses @ np.abs(solver.velocities).sum(axis=1)
    solver.step(100)
    assert np.array_equal(solver.masses, masses)
    assert solver.grid_mass.sum() == pytest.approx(masses.sum(), rel=1e-5)
    assert (solver.grid_mass >= 0).all()
    drift = np.abs(masses @ solver.velocities - momentum0).max()
    assert drift < 1e-5 * scale, (drift, scale)
    assert solver.positions.min() > 0.1 and solver.positions.max() < 0.9      # no wall touched


def test_elastic_energy_bounded():
    """A spinning, stretching neo-Hookean block without gravity or walls: kinetic + elastic energy
    never exceeds its initial value by more than 1 % (APIC only dissipates) and is not damped away."""
    x = block([0.4, 0.4], [0.2, 0.2], 0.005)
    r = x - 0.5
    v = 2.0 * np.stack([-r[:, 1], r[:, 0]], axis=1) + 3.0 * r * [1.0, -1.0]        # spin + stretch
    solver = MPMSolver(x, v, np.full(len(x), ELASTIC), np.full(len(x), 0.005 ** 2), [0, 0], [1, 1],
                       0.01, 1e-4, walls="slip", device="cpu")
    initial = solver.kinetic_energy() + solver.elastic_energy()
    energies, stored = [], []
    for _ in range(20):
        solver.step(25)
        stored.append(solver.elastic_energy())
        energies.append(solver.kinetic_energy() + stored[-1])
    assert max(energies) <= initial * 1.01, (max(energies), initial)
    assert min(energies) >= 0.5 * initial
    assert max(stored) > 0.05 * initial                                     # it did deform


def test_plastic_states_stay_on_or_inside_yield_surfaces():
    """After steps, sand's Hencky strain lies in the Drucker–Prager cone and plasticine's
    deviatoric strain within the von Mises radius sqrt(2/3) σ_y / 2μ."""
    parameters = MaterialParameters()
    solver = free_flight(2, [SAND, PLASTICINE], stretch=5.0)
    solver.step(100)
    strain = np.log(np.linalg.svd(solver.deformation, compute_uv=False))
    trace = strain.sum(axis=1)
    deviator = np.linalg.norm(strain - trace[:, None] / 2, axis=1)
    material, mu, lam = solver.material.numpy(), solver.mu.numpy(), solver.lam.numpy()
    sand, clay = material == SAND, material == PLASTICINE
    alpha = solver.constants.sand_alpha
    assert (trace[sand] <= 1e-5).all()
    cone = -alpha * (2 * lam[sand] + 2 * mu[sand]) / (2 * mu[sand]) * trace[sand]
    assert (deviator[sand] <= cone + 1e-4).all()
    radius = np.sqrt(2 / 3) * parameters.plastic_yield / (2 * mu[clay])
    assert (deviator[clay] <= radius + 1e-4).all()
    assert deviator[clay].max() > 0.5 * radius.max()                        # it did yield


def test_mpm2d_sample_reproducible_and_described():
    problem = get_problem("mpm2d")
    first, info = problem.sample_with_info(np.random.default_rng(3), resolution=600, frames=4, device="cpu")
    again, _ = problem.sample_with_info(np.random.default_rng(3), resolution=600, frames=4, device="cpu")
    other, _ = problem.sample_with_info(np.random.default_rng(4), resolution=600, frames=4, device="cpu")
    assert np.array_equal(first.positions, again.positions)
    assert np.array_equal(first.fields["velocity"], again.fields["velocity"])
    assert first.positions.shape != other.positions.shape or not np.array_equal(first.positions, other.positions)
    assert first.positions.shape == (5, info["n_particles"], 2) and 500 < info["n_particles"] < 700
    meta = first.metadata
    assert meta["dt"] * meta["stride"] == pytest.approx(0.01) and first.dt == pytest.approx(0.01)
    step = np.diff(first.positions, axis=0).reshape(-1, 2)
    assert meta["vel_mean"] == pytest.approx(step.mean(axis=0).tolist())
    assert meta["acc_std"] == pytest.approx(np.diff(first.positions, 2, axis=0).reshape(-1, 2).std(axis=0).tolist())
    assert set(first.mesh.point_data["material"]) <= {0, 1, 2, 3}
    assert (first.positions >= -0.01).all() and (first.positions <= 1.01).all()


def test_shape_family_and_speed_options_keep_the_other_draws():
    from meshop.data.mpm.scene import place_bodies, rigid_velocity

    mixed = place_bodies(np.random.default_rng(5), 2, 3)
    discs = place_bodies(np.random.default_rng(5), 2, 3, shapes="disc")
    polygons = place_bodies(np.random.default_rng(5), 2, 3, shapes="polygon")
    assert {b.kind for b in discs} == {"disc"} and {b.kind for b in polygons} == {"polygon"}
    for family in (discs, polygons):     # the first body's place and size are drawn before its shape
        assert family[0].radius == mixed[0].radius and np.array_equal(family[0].centre, mixed[0].centre)
    points = np.random.default_rng(0).random((50, 2))
    slow = rigid_velocity(np.random.default_rng(1), points, np.zeros(2), speed=1.0, spin=0.0)
    fast = rigid_velocity(np.random.default_rng(1), points, np.zeros(2), speed=2.0, spin=0.0)
    np.testing.assert_allclose(fast, 2 * slow)


@pytest.mark.parametrize("options, words", [
    ({"material": "honey"}, "unknown MPM material 'honey'"),
    ({"walls": "rough"}, "walls must be 'sticky' or 'slip'"),
    ({"frames": 0}, "frames 0"),
    ({"shapes": "ball"}, "unknown 2D shape family 'ball'"),
    ({"speed": -1.0}, "speed"),
])
def test_mpm_bad_options(options, words):
    with pytest.raises(MeshError, match=words):
        get_problem("mpm2d").sample(np.random.default_rng(0), resolution=100, **options)


def test_solver_bad_walls_and_cuda_device():
    x = block([0.4, 0.4], [0.1, 0.1], 0.02)
    args = (x, np.zeros_like(x), np.zeros(len(x)), np.full(len(x), 4e-4), [0, 0], [1, 1], 0.04, 1e-3)
    with pytest.raises(MeshError, match="walls must be one of sticky, slip, sticky floor, not 'rough'"):
        MPMSolver(*args, walls="rough", device="cpu")
    import warp as wp

    if wp.is_cuda_available():                  # the same kernels on the GPU agree with the CPU
        gpu, cpu = MPMSolver(*args, device="cuda"), MPMSolver(*args, device="cpu")
        gpu.step(10)
        cpu.step(10)
        assert np.allclose(gpu.positions, cpu.positions, atol=1e-6)
    else:
        with pytest.raises(MeshError, match="no CUDA GPU"):
            MPMSolver(*args, device="cuda")


@pytest.mark.slow
def test_dam_break_surge_front_matches_martin_moyce():
    """A 0.25 m square water column (2304 particles, 24 cells per side, slip walls) collapses; the
    front z/a stays within 20 % of Martin & Moyce (1952, Phil. Trans. R. Soc. A 244, 312-324,
    square column; table in meshop.data.mpm.experiments) at every tabulated time and within 10 %
    on average. (Measured: max +16 % at T = 1.19, mean 7 %; the experiment lags early on because
    its gate takes time to lift, as simulations in the literature also show.)"""
    fronts = dam_break(a=0.25, cells=24)
    error = fronts / MARTIN_MOYCE[:, 1] - 1
    assert np.abs(error).max() < 0.20, error
    assert np.abs(error).mean() < 0.10, error


@pytest.mark.slow
@pytest.mark.parametrize("ratio, cells", [(1.0, 20), (2.0, 16)])
def test_granular_column_collapse_runout_matches_lube(ratio, cells):
    """A sand column (φ = 30°) of aspect ratio a = H/L0 against a smooth end wall collapses on a
    rough (sticky) floor; the normalised run-out (L_f - L0)/L0 is within 30 % (the papers' spread)
    of Lube et al. (2005, "Collapses of two-dimensional granular columns", Phys. Rev. E 72,
    041301): 1.6 a for a < 1.8, 2.2 a^(2/3) above. Lube's quasi-2D channel was wide enough for
    side-wall friction to be negligible, as in our plane-strain simulation; Lajeunesse et al.'s
    narrower channel (1.2 a) is not. (Measured: a = 1: 1.69, +6 %; a = 2: 4.24, +21 %;
    a = 0.5, not tested: 0.55, -31 % from Lube, -8 % from Lajeunesse.)"""
    runout, deposit = column_collapse(ratio=ratio, cells=cells)
    assert runout == pytest.approx(lube_runout(ratio), rel=0.3)
    assert np.isfinite(deposit).all() and deposit[:, 1].min() >= 0.0


@pytest.mark.slow
def test_mpm3d_free_flight_and_sample():
    """3D: mass and momentum as in 2D; one mpm3d sample of a mechanical part or ball."""
    solver = free_flight(3, [ELASTIC, SAND], spacing=0.02)
    masses, momentum0 = solver.masses, solver.masses @ solver.velocities
    solver.step(20)
    assert solver.grid_mass.sum() == pytest.approx(masses.sum(), rel=1e-5)
    assert np.abs(masses @ solver.velocities - momentum0).max() < 1e-5 * masses @ np.abs(solver.velocities).sum(1)
    traj, info = get_problem("mpm3d").sample_with_info(np.random.default_rng(0), resolution=1000, frames=2,
                                                       bodies=1, device="cpu")
    assert traj.positions.shape == (3, info["n_particles"], 3) and 800 < info["n_particles"] < 1200
