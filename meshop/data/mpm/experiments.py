"""Two classic experiments the MPM solver is checked against (tests/test_mpm.py, docs gallery).

``dam_break``: a square water column of side a collapses along a slip floor; the surge front
z/a against T = t sqrt(2g/a), compared with Martin & Moyce (1952).
``column_collapse``: a sand column of width L0 and height a L0 against an end wall spreads on a
rough (sticky) floor and a smooth (slip) end wall; the normalised run-out (L_f - L0)/L0 against Lube et al. (2005).
"""

from __future__ import annotations

import numpy as np

from .solver import FLUID, SAND, MaterialParameters, MPMSolver

GRAVITY = 9.81
CFL = 0.35

#: Martin & Moyce (1952), "An experimental study of the collapse of liquid columns on a rigid
#: horizontal plane", Phil. Trans. R. Soc. A 244, 312-324: surge-front position Z = z/a against
#: T = t sqrt(2g/a) for the square column (n² = 1, a = 2.25 in), as tabulated in the paper and
#: reproduced in many SPH/MPS/MPM validations.
MARTIN_MOYCE = np.array([
    (0.41, 1.11), (0.84, 1.22), (1.19, 1.44), (1.43, 1.67), (1.63, 1.89), (1.83, 2.11), (1.98, 2.33),
    (2.20, 2.56), (2.32, 2.78), (2.51, 3.00), (2.65, 3.22), (2.83, 3.44), (2.98, 3.67), (3.11, 3.89),
    (3.33, 4.11)])


def lube_runout(ratio: float) -> float:
    """Lube et al. (2005), Phys. Rev. E 72, 041301, two-dimensional columns: (L_f - L0)/L0 =
    1.6 a for a < 1.8, 2.2 a^(2/3) above."""
    return 1.6 * ratio if ratio < 1.8 else 2.2 * ratio ** (2 / 3)


def block(lower, size, spacing: float) -> np.ndarray:
    """Particle centres ``(P, d)`` of the box ``[lower, lower + size]`` on a lattice of ``spacing``."""
    counts = np.round(np.asarray(size) / spacing).astype(int)
    cells = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1).reshape(-1, len(counts))
    return np.asarray(lower) + (cells + 0.5) * spacing


def _column(material: int, width: float, height: float, cells: int, box, walls: str,
            parameters: MaterialParameters) -> MPMSolver:
    """A 2D column ``[0, width] x [0, height]`` at 4 particles per cell (``cells`` across its width)."""
    dx = width / cells
    x = block([0, 0], [width, height], dx / 2)
    dt = CFL * dx / parameters.wave_speed(material)
    return MPMSolver(x, np.zeros_like(x), np.full(len(x), material), np.full(len(x), (dx / 2) ** 2),
                     [0, 0], box, dx, dt, gravity=[0, -GRAVITY], walls=walls, parameters=parameters,
                     device="cpu")


def dam_break(a: float = 0.25, cells: int = 24, times=MARTIN_MOYCE[:, 0]) -> np.ndarray:
    """Front positions z/a (the farthest particle) at the dimensionless ``times`` T = t sqrt(2g/a)."""
    solver = _column(FLUID, a, a, cells, [5 * a, 1.5 * a], "slip", MaterialParameters())
    time, fronts = 0.0, []
    for T in times:
        steps = int(round((T / np.sqrt(2 * GRAVITY / a) - time) / solver.dt))
        solver.step(steps)
        time += steps * solver.dt
        fronts.append(solver.positions[:, 0].max() / a)
    return np.asarray(fronts)


def column_collapse(ratio: float = 1.0, width: float = 0.15, cells: int = 20,
                    friction_deg: float = 30.0) -> tuple[float, np.ndarray]:
    """Normalised run-out (L_f - L0)/L0 once the sand is at rest (kinetic energy below 1e-4 of
    m g L0), and the deposit's particle positions ``(P, 2)``."""
    parameters = MaterialParameters(sand_friction_deg=friction_deg)
    box = [width * (1 + 1.3 * lube_runout(ratio)) + 0.1, width * ratio * 1.1]
    solver = _column(SAND, width, width * ratio, cells, box, "sticky floor", parameters)
    weight = solver.masses.sum() * GRAVITY * width
    solver.step(int(0.3 / solver.dt))
    while solver.kinetic_energy() > 1e-4 * weight:
        solver.step(200)
    deposit = solver.positions
    return float((deposit[:, 0].max() - width) / width), deposit
