"""``darcy2d``: -div(a grad u) = 1, u = 0 on the boundary, a = 12 where a GRF >= 0 and 3 elsewhere.

The classic FNO benchmark recipe: the Gaussian random field has covariance (-Δ + 9I)^-2 and is
synthesized on a fine grid (421 points per side for resolution 85, as in the published data) and
subsampled onto the structured triangle mesh of ``resolution`` nodes per side of the unit square.
``domain="random"`` solves the same PDE on a random planar domain with holes (gmsh).

Coefficient on cells: the permeability is stored as nodal values (3 or 12) and enters the stiffness
matrix as its P1 interpolant. P1 gradients are constant on a cell, so that equals the per-cell
mean of the three corner values (3, 6, 9 or 12), which is what is assembled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from skfem import MeshTri

from ...errors import MeshError
from ...mesh import Mesh
from ..fem import assemble, reduce_dirichlet, solve_poisson
from ..grf import grf_fine_resolution, grf_on_grid, grf_on_points

HIGH, LOW = 12.0, 3.0
ALPHA, TAU = 2.0, 3.0
DOMAINS = ("square", "random")

FIELDS = {
    "permeability": ("input", "diffusion coefficient a: 12 where the Gaussian random field "
                              "N(0, (-Δ+9I)^-2) is >= 0, 3 elsewhere"),
    "u": ("target", "solution of -div(a grad u) = 1 with u = 0 on the boundary"),
}
DEFAULTS = {"resolution": 85, "domain": "square", "solver": "direct"}
LENGTH_POWERS = {"u": -2}  # with a and f = 1 fixed, u grows like length²: u / L² is scale-free
DIRICHLET = {"u": 0.0}


def square_mesh(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured triangle mesh of [0, 1]^2: ``resolution`` nodes per side, point ``i * resolution + j``
    at ``(i, j) / (resolution - 1)``. Returns points ``(R², 2)`` and triangles ``(2 (R-1)², 3)``."""
    if resolution < 3:
        raise MeshError(f"darcy2d resolution must be >= 3 nodes per side, got {resolution}.")
    axis = np.linspace(0.0, 1.0, resolution)
    mesh = MeshTri.init_tensor(axis, axis)
    return mesh.p.T.copy(), mesh.t.T.astype(np.int64)


def threshold(field: np.ndarray) -> np.ndarray:
    """12 where ``field >= 0``, 3 elsewhere."""
    return np.where(field >= 0.0, HIGH, LOW)


def square_permeability(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """Nodal permeability ``(R²,)`` on :func:`square_mesh`, from a GRF on the fine FNO grid."""
    fine = grf_fine_resolution(resolution)
    step = (fine - 1) // (resolution - 1)
    field = grf_on_grid((fine, fine), alpha=ALPHA, tau=TAU, rng=rng)[::step, ::step]
    return threshold(field).ravel()


def cell_mean(nodal: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Per-cell mean of nodal values: ``(N,) -> (M,)`` (or ``(S, N) -> (S, M)`` for S samples)."""
    return np.asarray(nodal)[..., cells].mean(axis=-1)


def _domain_mesh(rng: np.random.Generator, resolution: int, domain: str,
                 mesh: Mesh | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, triangles, boundary mask) of the sample's domain."""
    if mesh is not None:
        if mesh.dim != 2 or "triangle" not in mesh.cells:
            raise MeshError(f"{mesh.source or 'the mesh'}: darcy2d needs a 2D mesh with triangle cells.")
        return mesh.points, mesh.cells["triangle"], mesh.boundary_mask
    if domain == "square":
        points, cells = square_mesh(resolution)
        on_edge = np.isclose(points, 0.0) | np.isclose(points, 1.0)
        return points, cells, on_edge.any(axis=1)
    if domain == "random":
        from ..shapes import random_domain_2d  # gmsh is imported only when a random domain is asked for

        points, cells = random_domain_2d(rng, target_nodes=resolution ** 2)
        return points, cells, Mesh(points, {"triangle": cells}).boundary_mask
    raise MeshError(f"unknown darcy2d domain {domain!r}; expected one of {DOMAINS}.")


def darcy2d_sample(rng: np.random.Generator, resolution: int = 85, domain: str = "square",
                   mesh: Mesh | None = None, solver: str = "direct", tol: float = 1e-10) -> Mesh:
    """One darcy2d sample: a triangle :class:`~meshop.Mesh` with point fields ``permeability``, ``u``.

    Args:
        rng: random generator (draws the domain first when random, then the field).
        resolution: nodes per side of the square (85 as in the FNO tables); for ``domain="random"``
            the gmsh mesh targets ``resolution²`` nodes.
        domain: "square" (unit square, structured) or "random" (random domain with 0-3 holes).
        mesh: solve on this 2D triangle mesh instead (``resolution`` and ``domain`` are then unused);
            the GRF is laid over the square around its bounding box.
        solver, tol: see :func:`meshop.data.fem.solve_poisson`.
    """
    points, cells, boundary = _domain_mesh(rng, resolution, domain, mesh)
    if mesh is None and domain == "square":
        permeability = square_permeability(rng, resolution)
    else:
        permeability = threshold(grf_on_points(points, rng, alpha=ALPHA, tau=TAU))
    solution = solve_poisson(points, cells, np.ones(len(points)), np.flatnonzero(boundary),
                             np.zeros(int(boundary.sum())), coefficient=cell_mean(permeability, cells),
                             solver=solver, tol=tol)
    return Mesh(points, {"triangle": cells}, {"permeability": permeability, "u": solution.u})


@dataclass
class DarcyFamily:
    """Darcy systems sharing one square mesh, reduced to the interior nodes (u = 0 on the boundary).

    Attributes:
        points, cells: the mesh, ``(N, 2)`` and ``(M, 3)``.
        free: ``(n,)`` interior node ids, the unknowns of every system.
        permeability: ``(S, N)`` nodal permeability of each sample.
        matrices: S sparse ``(n, n)`` SPD stiffness matrices.
        rhs: ``(n,)`` load vector, the same for all samples (f = 1, g = 0).
    """

    points: np.ndarray
    cells: np.ndarray
    free: np.ndarray
    permeability: np.ndarray
    matrices: list[sp.csr_matrix]
    rhs: np.ndarray

    def full_solution(self, x: np.ndarray) -> np.ndarray:
        """Interior solution ``(n,)`` -> nodal ``u`` ``(N,)`` with zeros on the boundary."""
        u = np.zeros(len(self.points))
        u[self.free] = x
        return u


def family_from_permeability(permeability: np.ndarray, resolution: int) -> DarcyFamily:
    """Assemble the reduced systems of nodal permeabilities ``(S, R²)`` on :func:`square_mesh`."""
    points, cells = square_mesh(resolution)
    boundary = np.flatnonzero((np.isclose(points, 0.0) | np.isclose(points, 1.0)).any(axis=1))
    permeability = np.atleast_2d(permeability)
    matrices, rhs, free = [], None, None
    for nodal in permeability:
        stiffness, load = assemble(points, cells, np.ones(len(points)), cell_mean(nodal, cells))
        matrix, rhs, free = reduce_dirichlet(stiffness, load, boundary, np.zeros(len(boundary)))
        matrices.append(matrix)
    return DarcyFamily(points, cells, free, permeability, matrices, rhs)


def darcy2d_family(rng: np.random.Generator, n_samples: int, resolution: int = 85) -> DarcyFamily:
    """``n_samples`` darcy2d systems on the square mesh, fields drawn one after another from ``rng``."""
    fields = np.stack([square_permeability(rng, resolution) for _ in range(n_samples)])
    return family_from_permeability(fields, resolution)


def darcy2d_samples_recycled(rngs: list[np.random.Generator], resolution: int = 85, tol: float = 1e-8,
                             method: str = "rcg") -> list[Mesh]:
    """darcy2d samples on the square solved together by Sorting Krylov Recycling.

    Sample i draws its permeability from ``rngs[i]`` exactly as :func:`darcy2d_sample` does, so
    the inputs are bit-identical to a direct run with the same generators; ``u`` solves the
    system to relative residual ``tol`` (see :func:`meshop.data.recycle.solve_family`).
    """
    from ..recycle import solve_family

    family = family_from_permeability(np.stack([square_permeability(r, resolution) for r in rngs]),
                                      resolution)
    solutions, _ = solve_family(family.matrices, family.rhs, order="sorted", tol=tol,
                                features=family.permeability, method=method)
    cells = {"triangle": family.cells}
    return [Mesh(family.points, cells, {"permeability": nodal, "u": family.full_solution(x)})
            for nodal, x in zip(family.permeability, solutions)]
