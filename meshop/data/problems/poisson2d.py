"""``poisson2d``: -Δu = f on a random planar domain with 0-3 holes, u = g on every boundary.

The BENO setting on real unstructured meshes: the domain comes from
:func:`meshop.data.shapes.random_domain_2d` (about unit radius), f and g are independent smooth
random fields (:func:`meshop.data.grf.smooth_random_field`), solved with P1 finite elements.
f has standard deviation 10 so that the source and the boundary values contribute to u on the
same order (measured: max |u| from f alone and from g alone are both 0.4-3 over ten samples).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ...mesh import Mesh
from ..fem import solve_poisson
from ..grf import smooth_random_field
from ..shapes import random_domain_2d

FIELDS = {
    "source": ("input", "f, the right-hand side of -Δu = f (standard deviation 10)"),
    "boundary_value": ("input", "g, the Dirichlet value u = g on boundary nodes; 0 at interior nodes"),
    "u": ("target", "solution of -Δu = f with u = g on the boundary (P1 finite elements)"),
}
DEFAULTS = {"resolution": 2000, "solver": "direct"}
LENGTH_POWERS = {"source": 2}
DIRICHLET = {"u": "boundary_value"}
#: u depends linearly on (f, g) together
LINEAR_INPUTS = ["source", "boundary_value"]
SOURCE_STD = 10.0


def boundary_loops(mesh: Mesh) -> int:
    """Number of closed boundary curves of a 2D mesh (1 + the number of holes)."""
    edges = mesh.boundary.facets[:, :2]
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                       shape=(mesh.n_points, mesh.n_points))
    _, label = connected_components(graph, directed=False)
    return len(np.unique(label[np.unique(edges)]))


def poisson2d_sample(rng: np.random.Generator, resolution: int = 2000, solver: str = "direct",
                     tol: float = 1e-10) -> tuple[Mesh, dict]:
    """One poisson2d sample.

    Args:
        rng: random generator; draws the domain, then f, then g.
        resolution: target number of mesh nodes.
        solver, tol: see :func:`meshop.data.fem.solve_poisson`.

    Returns:
        A triangle :class:`~meshop.Mesh` with point fields ``source``, ``boundary_value``, ``u``,
        and ``{"n_holes", "residual"}``.
    """
    points, triangles = random_domain_2d(rng, target_nodes=resolution)
    mesh = Mesh(points, {"triangle": triangles})
    source = SOURCE_STD * smooth_random_field(points, rng)
    g = smooth_random_field(points, rng)
    boundary = mesh.boundary_mask
    solution = solve_poisson(points, triangles, source, np.flatnonzero(boundary), g[boundary],
                             solver=solver, tol=tol)
    mesh = mesh.with_point_data(source=source, boundary_value=np.where(boundary, g, 0.0),
                                u=solution.u)
    return mesh, {"n_holes": boundary_loops(mesh) - 1, "residual": solution.residual}
