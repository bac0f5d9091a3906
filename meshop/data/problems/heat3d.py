"""``heat3d``: steady heat conduction -ΔT = q in random 3D mechanical parts, T = g on the boundary.

Parts come from :func:`meshop.data.shapes.random_part_3d`: plates, blocks, L-brackets, flanges and shafts
from 1 cm to 2 m, randomly rotated and placed. q (the volumetric heat source divided by the
conductivity, K/m²) and g (the boundary temperature, K) are built from smooth random fields of
unit standard deviation laid over the part's bounding box, whatever its size, in one of three
regimes drawn per sample with equal odds:

``heating``   q = s (1 + ½ φ), g = 0: a roughly uniform source in a part whose surfaces are held
              cold, the situation whose temperature marks thick, slow-to-cool regions;
``boundary``  q = 0, g = ψ: temperature imposed on the surface, no source;
``both``      q = s φ, g = ψ.

φ, ψ are unit smooth random fields and ``s = 2 · 10^U(-0.5, 0.5) / d²`` K/m² a source strength,
with d the part's largest distance to its boundary (half its thickness), so that the interior
rise ``s d² / 2`` is comparable to g and neither term is negligible whatever the part's size or
slenderness. The interior rise caused by q scales like q L²; a scale-free model feeds q L² (field
length power 2, see :mod:`meshop.fields`), which is what the manifest's ``length_power`` says.
Each sample records its size, regime and source strength.
"""

from __future__ import annotations

import numpy as np

from ...mesh import Mesh
from ..fem import solve_poisson, solve_poisson_p2
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
#: what a part without these fields most likely means: uniform heating, surfaces held at 0
INPUT_DEFAULTS = {"source": 1.0, "boundary_temperature": 0.0}
#: T depends linearly on (q, g) together
LINEAR_INPUTS = ["source", "boundary_temperature"]
#: source/boundary regimes, drawn with equal odds (see the module docstring)
REGIMES = ("heating", "boundary", "both")


def heat3d_sample(rng: np.random.Generator, resolution: int = 5000, solver: str = "direct",
                  tol: float = 1e-10) -> tuple[Mesh, dict]:
    """One heat3d sample.

    Args:
        rng: random generator; draws the part, then φ, ψ, the regime and the source strength.
        resolution: target number of mesh nodes (the meshes land within about 10 %).
        solver, tol: see :func:`meshop.data.fem.solve_poisson` ("amg" is faster above ~20k nodes).

    Returns:
        A tetrahedral :class:`~meshop.Mesh` (metres) with point fields ``source``,
        ``boundary_temperature``, ``temperature``, and the part's description: ``family``,
        ``params``, ``size`` (m, longest side of the unrotated part), ``rotation``,
        ``translation``, plus ``source_scale`` (q L² with L = size, the scale of the interior
        rise), ``regime``, ``source_strength`` (s, K/m²) and the solver's ``residual``.
    """
    points, tets, part = random_part_3d(rng, target_nodes=resolution)
    mesh = Mesh(points, {"tetra": tets})
    phi = smooth_random_field(points, rng)
    psi = smooth_random_field(points, rng)
    regime = str(rng.choice(REGIMES))
    strength = 2.0 * 10.0 ** rng.uniform(-0.5, 0.5) / mesh.distance_to_boundary.max() ** 2
    source = {"heating": strength * (1.0 + 0.5 * phi), "boundary": np.zeros_like(phi),
              "both": strength * phi}[regime]
    g = np.zeros_like(psi) if regime == "heating" else psi
    boundary = mesh.boundary_mask
    solution = solve_poisson(points, tets, source, np.flatnonzero(boundary), g[boundary],
                             solver=solver, tol=tol)
    mesh = mesh.with_point_data(source=source, boundary_temperature=np.where(boundary, g, 0.0),
                                temperature=solution.u)
    part.pop("tries")
    return mesh, {**part, "source_scale": part["size"] ** 2, "regime": regime,
                  "source_strength": strength, "residual": solution.residual}


def uniform_heating(mesh: Mesh, solver: str = "direct", degree: int = 1) -> np.ndarray:
    """FEM temperature ``(N,)`` of ``mesh`` for the default model's use case: q = 1, T = 0 on the
    boundary (the ground truth the bundled model is measured against); ``degree`` 2: quadratic
    elements on the same tetrahedra, its values at the nodes (:func:`~meshop.data.fem.solve_poisson_p2`)."""
    if degree == 2:
        return solve_poisson_p2(mesh.points, mesh.cells["tetra"], 1.0, solver=solver)
    if degree != 1:
        raise ValueError(f"degree must be 1 or 2, got {degree!r}.")
    boundary = np.flatnonzero(mesh.boundary_mask)
    return solve_poisson(mesh.points, mesh.cells["tetra"], np.ones(mesh.n_points), boundary,
                         np.zeros(len(boundary)), solver=solver).u
