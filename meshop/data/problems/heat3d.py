"""``heat3d``: steady heat conduction -ΔT = q in random 3D mechanical parts, T = g on the boundary.

Parts come from :func:`meshop.data.shapes.random_part_3d`: plates, blocks, L-brackets and flanges
from 1 cm to 2 m, randomly rotated and placed. q (the volumetric heat source divided by the
conductivity, K/m²) and g (the boundary temperature, K) are independent smooth random fields of
unit standard deviation, laid over the part's bounding box, whatever its size.

Scale, honestly: the interior rise caused by q is about q L², so a 1 cm part is heated ~10^-4 K
by its source and its temperature is nearly the harmonic extension of g, while a 2 m part's
source term dominates. Each sample records its size; a scale-free model feeds q L² (field length
power 2, see :mod:`meshop.fields`), which is what the manifest's ``length_power`` says.
"""

from __future__ import annotations

import numpy as np

from ...mesh import Mesh
from ..fem import solve_poisson
from ..grf import smooth_random_field
from ..shapes import random_part_3d

FIELDS = {
    "source": ("input", "q, volumetric heat source over conductivity in K/m² (-ΔT = q)"),
    "boundary_temperature": ("input", "g in K, the temperature imposed on boundary nodes; 0 at "
                                      "interior nodes"),
    "temperature": ("target", "steady temperature T in K (P1 finite elements)"),
}
DEFAULTS = {"resolution": 5000, "solver": "direct"}
LENGTH_POWERS = {"source": 2}
DIRICHLET = {"temperature": "boundary_temperature"}


def heat3d_sample(rng: np.random.Generator, resolution: int = 5000, solver: str = "direct",
                  tol: float = 1e-10) -> tuple[Mesh, dict]:
    """One heat3d sample.

    Args:
        rng: random generator; draws the part, then q, then g.
        resolution: target number of mesh nodes (the meshes land within about 10 %).
        solver, tol: see :func:`meshop.data.fem.solve_poisson` ("amg" is faster above ~20k nodes).

    Returns:
        A tetrahedral :class:`~meshop.Mesh` (metres) with point fields ``source``,
        ``boundary_temperature``, ``temperature``, and the part's description: ``family``,
        ``params``, ``size`` (m, longest side of the unrotated part), ``rotation``,
        ``translation``, plus ``source_scale`` (q L² with L = size, the scale of the interior
        rise) and the solver's ``residual``.
    """
    points, tets, part = random_part_3d(rng, target_nodes=resolution)
    mesh = Mesh(points, {"tetra": tets})
    source = smooth_random_field(points, rng)
    g = smooth_random_field(points, rng)
    boundary = mesh.boundary_mask
    solution = solve_poisson(points, tets, source, np.flatnonzero(boundary), g[boundary],
                             solver=solver, tol=tol)
    mesh = mesh.with_point_data(source=source, boundary_temperature=np.where(boundary, g, 0.0),
                                temperature=solution.u)
    part.pop("tries")
    return mesh, {**part, "source_scale": part["size"] ** 2, "residual": solution.residual}
