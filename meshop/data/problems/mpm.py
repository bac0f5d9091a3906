"""``mpm2d`` / ``mpm3d``: bodies of jelly, water, sand or plasticine falling and colliding in a box.

Each sample is a particle trajectory simulated with MLS-MPM (:mod:`meshop.data.mpm`, warp kernels on
the CPU or a CUDA GPU): 1-3 bodies of random shape (2D: random polygons and discs; 3D: meshop's
mechanical parts and balls) of about 0.16-0.4 m in the unit box [0, 1]^d (m), with random rigid
initial velocities, under gravity (9.81 m/s² along -y in 2D, -z in 3D), inside walls that are
sticky or slip. SI units throughout. Frame ``k`` is at ``t = k * frame_dt``; the solver takes
``stride`` substeps of ``dt`` per frame (CFL 0.35 on the fastest wave speed).

The metadata carries GNS's normalisation statistics: ``vel_mean/std`` and ``acc_mean/std`` per axis
of the frame differences x_{k+1} - x_k and of their differences (m per frame, m per frame²).
"""

import sys

import numpy as np

from ...errors import MeshError
from ...mesh import Mesh
from ...trajectory import Trajectory
from ..mpm.scene import SHAPE_FAMILIES, fill, place_bodies, rigid_velocity
from ..mpm.solver import MATERIALS, MaterialParameters, MPMSolver

FIELDS = {
    "material": ("input", "material id per particle (0 elastic, 1 fluid, 2 sand, 3 plasticine), "
                          "constant in time"),
    "velocity": ("target", "particle velocity in m/s per frame (the positions move too)"),
}
DEFAULTS = {"resolution": 4096, "material": "mixed", "frames": 100, "walls": "slip", "shapes": "mixed", "speed": 1.0}
CFL = 0.35
GRAVITY = 9.81
#: particles per grid cell along each axis
PARTICLES_PER_CELL = 2


def mpm2d_sample(rng: np.random.Generator, resolution: int = 4096, material: str = "mixed",
                 frames: int = 100, walls: str = "slip", bodies: int = 0, frame_dt: float = 0.01,
                 device: str = "auto", progress: bool | None = None, shapes: str = "mixed",
                 speed: float = 1.0) -> tuple[Trajectory, dict]:
    """One 2D MPM trajectory; see :func:`simulate_scene` for the arguments."""
    return simulate_scene(rng, 2, resolution, material, frames, walls, bodies, frame_dt, device, progress,
                          shapes, speed)


def mpm3d_sample(rng: np.random.Generator, resolution: int = 8192, material: str = "mixed",
                 frames: int = 100, walls: str = "slip", bodies: int = 0, frame_dt: float = 0.01,
                 device: str = "auto", progress: bool | None = None, shapes: str = "mixed",
                 speed: float = 1.0) -> tuple[Trajectory, dict]:
    """One 3D MPM trajectory; see :func:`simulate_scene` for the arguments."""
    return simulate_scene(rng, 3, resolution, material, frames, walls, bodies, frame_dt, device, progress,
                          shapes, speed)


def _check_options(material: str, frames: int, walls: str, bodies: int, frame_dt: float, resolution: int,
                   dim: int, shapes: str, speed: float):
    names = list(MATERIALS.values())
    if shapes not in ("mixed",) + SHAPE_FAMILIES[dim]:
        raise MeshError(f"unknown {dim}D shape family '{shapes}' (known: {', '.join(SHAPE_FAMILIES[dim])}, mixed).")
    if not 0 <= speed < 100:
        raise MeshError(f"speed (the initial velocities' standard deviation) must lie in [0, 100) m/s, got {speed}.")
    if material not in names + ["mixed"]:
        raise MeshError(f"unknown MPM material '{material}' (known: {', '.join(names)}, mixed).")
    if walls not in ("sticky", "slip"):
        raise MeshError(f"walls must be 'sticky' or 'slip', not '{walls}'.")
    if frames < 1 or not 0 <= bodies <= 5 or not frame_dt > 0 or resolution < 16:
        raise MeshError(f"MPM options out of range: frames {frames} (>= 1), bodies {bodies} (0 = random "
                        f"1-3, at most 5), frame_dt {frame_dt} (> 0 s), resolution {resolution} (>= 16 particles).")


def simulate_scene(rng: np.random.Generator, dim: int, resolution: int, material: str, frames: int,
                   walls: str, bodies: int, frame_dt: float, device: str = "auto",
                   progress: bool | None = None, shapes: str = "mixed", speed: float = 1.0) -> tuple[Trajectory, dict]:
    """Draw a scene, simulate it and return ``(Trajectory, info)``.

    Args:
        rng: draws (in order) the bodies, their materials, the particle jitter and the velocities.
        dim: 2 or 3.
        resolution: target particle count (the scene lands within ~10 %).
        material: "elastic", "fluid", "sand", "plasticine", or "mixed" (one drawn per body).
        frames: frames after the initial one (the trajectory has ``frames + 1``).
        walls: "sticky" or "slip" box walls.
        bodies: number of bodies, 0 for a random 1-3.
        frame_dt: time between frames (s).
        device: "cpu", "cuda", or "auto" (CUDA when present). Bit-for-bit reproducible per device.
        progress: progress bar over frames on stderr; None shows it on a terminal for long runs.
        shapes: "mixed" or one shape family (2D: "disc", "polygon"; 3D: "ball", "part").
        speed: standard deviation of the bodies' initial translation velocity per axis (m/s).
    """
    _check_options(material, frames, walls, bodies, frame_dt, resolution, dim, shapes, speed)
    count = bodies or int(rng.integers(1, 4))
    bodies_drawn = place_bodies(rng, dim, count, shapes=shapes)
    names = list(MATERIALS.values())
    kinds = [material if material != "mixed" else names[int(rng.integers(len(names)))] for _ in bodies_drawn]
    spacing = (sum(b.volume for b in bodies_drawn) / resolution) ** (1 / dim)
    points, velocities, ids = [], [], []
    for body, kind in zip(bodies_drawn, kinds):
        cloud = fill(rng, body, spacing)
        points.append(cloud)
        velocities.append(rigid_velocity(rng, cloud, body.centre, speed=speed))
        ids.append(np.full(len(cloud), names.index(kind), dtype=np.int32))
    points, velocities, ids = np.concatenate(points), np.concatenate(velocities), np.concatenate(ids)

    parameters = MaterialParameters()
    dx = PARTICLES_PER_CELL * spacing
    speed = max(parameters.wave_speed(m) for m in set(ids.tolist())) + np.abs(velocities).max()
    stride = int(np.ceil(frame_dt / (CFL * dx / speed)))
    gravity = np.zeros(dim)
    gravity[-1] = -GRAVITY
    solver = MPMSolver(points, velocities, ids, np.full(len(points), spacing ** dim), np.zeros(dim),
                       np.ones(dim), dx, frame_dt / stride, gravity, walls, parameters, device)
    positions, frame_velocities = _run(solver, frames, stride, progress)

    mesh = Mesh(positions[0], None, {"material": ids})
    metadata = {
        "dt": solver.dt, "stride": stride, "frame_dt": frame_dt, "state": ["position", "velocity"],
        "dim": dim, "bounds": [[0.0, 1.0]] * dim, "materials": {str(k): v for k, v in MATERIALS.items()},
        "walls": walls, "gravity": gravity.tolist(), "dx": dx, "particle_spacing": spacing,
        "default_connectivity_radius": 2.5 * spacing, "sequence_length": frames + 1,
        **motion_statistics(positions), "engine": f"warp-lang {solver.wp.__version__} ({solver.device})",
    }
    trajectory = Trajectory(mesh, np.arange(frames + 1) * frame_dt, {"velocity": frame_velocities},
                            positions, metadata)
    info = {"bodies": [{"shape": b.kind, "centre": b.centre.tolist(), "radius": b.radius, "material": k}
                       for b, k in zip(bodies_drawn, kinds)],
            "n_particles": len(points), "substeps": stride * frames, "device": solver.device}
    return trajectory, info


def _run(solver: MPMSolver, frames: int, stride: int, progress: bool | None):
    """Positions and velocities ``(frames + 1, N, d)`` of every frame."""
    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty() and solver.n * frames * stride > 2e7
    positions, velocities = [solver.positions], [solver.velocities]
    for _ in tqdm(range(frames), desc="MPM frames", unit="frame", file=sys.stderr, disable=not progress,
                  leave=False):
        solver.step(stride)
        positions.append(solver.positions)
        velocities.append(solver.velocities)
    return np.stack(positions), np.stack(velocities)


def motion_statistics(positions: np.ndarray) -> dict:
    """GNS normalisation statistics of ``positions (T, N, d)``: mean and std per axis of the
    frame-difference velocities (T-1 of them) and accelerations (T-2), m/frame and m/frame²."""
    velocity = np.diff(positions, axis=0)
    acceleration = np.diff(velocity, axis=0)
    d = positions.shape[-1]

    def stats(values):
        flat = values.reshape(-1, d)
        if len(flat) == 0:
            return [0.0] * d, [0.0] * d
        return flat.mean(axis=0).tolist(), flat.std(axis=0).tolist()

    (vm, vs), (am, acs) = stats(velocity), stats(acceleration)
    return {"vel_mean": vm, "vel_std": vs, "acc_mean": am, "acc_std": acs}
