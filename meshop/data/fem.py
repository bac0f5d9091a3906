"""Linear (P1) finite elements for -div(a grad u) = f with Dirichlet values, on scikit-fem.

Triangles in 2D, tetrahedra in 3D. Assembly is scikit-fem's; the linear solvers are scipy's
(direct LU, conjugate gradients) and pyamg's (smoothed-aggregation multigrid). Correctness is
measured, not assumed: ``tests/test_fem.py`` checks the h^2 convergence of the L2 error on
manufactured solutions for every solver path (see ``docs/datagen-solvers.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyamg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from skfem import Basis, BilinearForm, ElementTetP1, ElementTriP1, Functional, MeshTet, MeshTri
from skfem.helpers import dot, grad

from ..errors import MeshError

SOLVERS = ("direct", "cg", "amg")
#: cells assembled at a time (see :func:`assemble`)
CHUNK_CELLS = 2 ** 18


@dataclass
class FemSolution:
    """Result of :func:`solve_poisson`.

    Attributes:
        u: ``(N,)`` nodal solution, equal to the Dirichlet values on the Dirichlet nodes.
        residual: ``||b - A u|| / ||b||`` of the reduced (Dirichlet-condensed) system, 0 when b = 0.
        iterations: Krylov or multigrid iterations (0 for the direct solver).
        seconds: wall time of the linear solve, including preconditioner / factorization setup.
    """

    u: np.ndarray
    residual: float
    iterations: int
    seconds: float


@BilinearForm
def _diffusion(u, v, w):
    return w["a"] * dot(grad(u), grad(v))


@BilinearForm
def mass_form(u, v, _):
    """∫ u v (the mass matrix)."""
    return u * v


@BilinearForm
def laplace_form(u, v, _):
    """∫ ∇u·∇v (the stiffness matrix of -Δ)."""
    return dot(grad(u), grad(v))


def p1_basis(points: np.ndarray, cells: np.ndarray, intorder: int | None = None) -> Basis:
    """scikit-fem P1 basis on a triangle (2D) or tetrahedron (3D) mesh; DOF i is point i.

    Raises:
        MeshError: wrong shapes, out-of-range ids, or points that belong to no cell.
    """
    mesh, element = _p1_mesh(points, cells)
    return Basis(mesh, element, intorder=intorder)


def _p1_mesh(points: np.ndarray, cells: np.ndarray):
    """The validated scikit-fem mesh and P1 element of ``points``, ``cells``."""
    points = np.asarray(points, dtype=np.float64)
    cells = np.asarray(cells)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise MeshError(f"points have shape {points.shape}; expected (N, 2) or (N, 3).")
    dim = points.shape[1]
    if cells.ndim != 2 or cells.shape[1] != dim + 1 or len(cells) == 0:
        raise MeshError(f"cells have shape {cells.shape}; expected (M, {dim + 1}) "
                        f"{'triangles' if dim == 2 else 'tetrahedra'} for {dim}D points.")
    if cells.min() < 0 or cells.max() >= len(points):
        raise MeshError(f"cells refer to point ids outside 0..{len(points) - 1}.")
    used = np.zeros(len(points), dtype=bool)
    used[cells.ravel()] = True
    if not used.all():
        raise MeshError(f"{int((~used).sum())} point(s) belong to no cell; remove unused points "
                        "before solving (their value would be undetermined).")
    mesh_type, element = (MeshTri, ElementTriP1) if dim == 2 else (MeshTet, ElementTetP1)
    mesh = mesh_type(np.ascontiguousarray(points.T), np.ascontiguousarray(cells.T.astype(np.int32)))
    return mesh, element()


def _coefficient_kind(coefficient, n_points: int, n_cells: int) -> str | None:
    """``"nodal"`` for a coefficient of shape ``(N,)``, ``"cell"`` for ``(M,)`` or ``(M, 1)``, None for
    None (a = 1)."""
    if coefficient is None:
        return None
    shape = np.shape(coefficient)
    if shape == (n_cells, 1) or (shape == (n_cells,) and n_cells != n_points):
        return "cell"
    if shape == (n_points,) and n_cells != n_points:
        return "nodal"
    if shape == (n_points,):
        raise MeshError(f"coefficient of length {n_points} is ambiguous (the mesh has as many points as "
                        "cells); pass a per-cell coefficient with shape (M, 1).")
    raise MeshError(f"coefficient has shape {shape}; expected ({n_points},) nodal or ({n_cells},) per-cell values.")


def _field(basis: Basis, values: np.ndarray | None, kind: str | None):
    """The coefficient at ``basis``' quadrature points: nodal values of its nodes interpolated
    (P1), per-cell values of its cells held constant, 1 without any."""
    if kind is None:
        return 1.0
    values = np.asarray(values, dtype=np.float64)
    if kind == "nodal":
        return basis.interpolate(values)
    return np.repeat(values.reshape(-1, 1), basis.X.shape[1], axis=1)


def assemble(points: np.ndarray, cells: np.ndarray, source: np.ndarray,
             coefficient: np.ndarray | None = None, chunk: int = CHUNK_CELLS) -> tuple[sp.csr_matrix, np.ndarray]:
    """Stiffness matrix and load vector of -div(a grad u) = f, before boundary conditions.

    Args:
        points: ``(N, d)`` node coordinates.
        cells: ``(M, d + 1)`` triangles or tetrahedra.
        source: ``(N,)`` nodal f, interpolated as a P1 field (the load is the P1 mass matrix times f).
        coefficient: None (a = 1), ``(N,)`` nodal (P1-interpolated) or ``(M,)`` per-cell a.
        chunk: cells assembled at a time, each chunk on a mesh of its own cells; bounds the
            memory of the quadrature data on big meshes (~0.3 GB in chunks of 2^18 tetrahedra).

    Returns:
        ``(A, b)``: ``(N, N)`` CSR stiffness matrix and ``(N,)`` load vector.
    """
    mesh, element = _p1_mesh(points, cells)
    source = np.asarray(source, dtype=np.float64)
    if source.shape != (len(points),):
        raise MeshError(f"source has shape {source.shape}; expected ({len(points)},) nodal values.")
    n_points, n_cells = len(points), len(cells)
    kind = _coefficient_kind(coefficient, n_points, n_cells)
    values = None if kind is None else np.asarray(coefficient, dtype=np.float64).reshape(-1)
    # one quadrature point: the integrands (P1 gradients, a constant or P1 a) are at most linear
    if n_cells <= chunk:
        basis = Basis(mesh, element, intorder=1)
        return _diffusion.assemble(basis, a=_field(basis, values, kind)).tocsr(), p1_load(basis, source)
    # each chunk on a mesh of its own cells: a basis on some cells of the whole mesh maps the
    # quadrature points of every cell (measured: 15 of 24 s at 2.3M tetrahedra in 9 chunks)
    stiffness, load = sp.csr_matrix((n_points, n_points)), np.zeros(n_points)
    for start in range(0, n_cells, chunk):
        part = cells[start:start + chunk]
        nodes, local = np.unique(part, return_inverse=True)
        basis = Basis(type(mesh)(np.ascontiguousarray(points[nodes].T),
                                 np.ascontiguousarray(local.reshape(part.shape).T.astype(np.int32))), element, intorder=1)
        chunk_values = None if kind is None else values[nodes] if kind == "nodal" else values[start:start + chunk]
        entries = _diffusion.coo_data(basis, a=_field(basis, chunk_values, kind))      # local numbering
        stiffness = stiffness + sp.csr_matrix((entries.data, (nodes[entries.indices[0]], nodes[entries.indices[1]])),
                                              shape=(n_points, n_points))
        load[nodes] += p1_load(basis, source[nodes])
    return stiffness, load


def p1_load(basis: Basis, source: np.ndarray) -> np.ndarray:
    """``(N,)`` consistent load ``M f`` of the nodal P1 field ``source (N,)`` over the cells of the P1
    ``basis``, in closed form: ``∫_T φ_i φ_j = |T| (1 + δ_ij) / ((d + 1)(d + 2))``, so
    ``(M f)_i = Σ_T |T| (f_i + Σ_{j in T} f_j) / ((d + 1)(d + 2))``. Equal to the mass matrix
    times f (tests); written out because assembling that matrix (or skfem's load form at the
    quadrature order it needs) took 2 s on 550k tetrahedra, this 0.05 s."""
    cells = basis.element_dofs                                          # (d + 1, M)
    corners = len(cells)
    volume = basis.dx.sum(axis=1)                                       # (M,) |T|
    f = source[cells]
    per_corner = volume * (f + f.sum(axis=0)) / (corners * (corners + 1))
    return np.bincount(cells.ravel(), weights=per_corner.ravel(), minlength=basis.N)


def stiffness_matrix(basis: Basis, coefficient: np.ndarray | None = None) -> sp.csr_matrix:
    """``(N, N)`` P1 stiffness matrix ``∫ a ∇φ_j · ∇φ_i`` (a: see :func:`assemble`)."""
    kind = _coefficient_kind(coefficient, basis.N, basis.nelems)
    return _diffusion.assemble(basis, a=_field(basis, coefficient, kind)).tocsr()


def mass_matrix(basis: Basis) -> sp.csr_matrix:
    """``(N, N)`` P1 mass matrix ``∫ φ_j φ_i`` (consistent, not lumped)."""
    return mass_form.assemble(basis).tocsr()


def reduce_dirichlet(stiffness: sp.csr_matrix, load: np.ndarray, dirichlet_nodes: np.ndarray,
                     dirichlet_values: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Eliminate Dirichlet nodes: returns ``(A_II, b_I - A_ID g, free_nodes)``."""
    n = stiffness.shape[0]
    fixed = np.zeros(n, dtype=bool)
    fixed[dirichlet_nodes] = True
    if not fixed.any():
        raise MeshError("no Dirichlet nodes given; the pure Neumann problem is singular.")
    free = np.flatnonzero(~fixed)
    g = np.zeros(n)
    g[dirichlet_nodes] = dirichlet_values
    rhs = load - stiffness @ g
    return stiffness[free][:, free].tocsr(), rhs[free], free


def relative_residual(matrix: sp.spmatrix, x: np.ndarray, rhs: np.ndarray) -> float:
    """``||rhs - A x|| / ||rhs||`` (0 when rhs and the residual are both zero)."""
    norm = np.linalg.norm(rhs)
    r = np.linalg.norm(rhs - matrix @ x)
    return float(r / norm) if norm > 0 else float(r)


def solve_linear(matrix: sp.csr_matrix, rhs: np.ndarray, solver: str = "direct",
                 tol: float = 1e-10, maxiter: int = 1000) -> tuple[np.ndarray, int]:
    """Solve an SPD system ``A x = rhs`` by "direct" (SuperLU), "cg" (AMG-preconditioned) or
    "amg" (stand-alone smoothed-aggregation V-cycles) to relative residual ``tol``.

    Returns ``(x, iterations)``.
    """
    if solver == "direct":
        return spla.spsolve(matrix.tocsc(), rhs), 0
    if not np.any(rhs):
        return np.zeros_like(rhs), 0
    multigrid = pyamg.smoothed_aggregation_solver(matrix, symmetry="symmetric")
    if solver == "cg":
        count = [0]

        def _count(_):
            count[0] += 1

        x, info = spla.cg(matrix, rhs, rtol=tol, atol=0.0, maxiter=maxiter,
                          M=multigrid.aspreconditioner(cycle="V"), callback=_count)
        iterations = count[0]
    elif solver == "amg":
        residuals: list[float] = []
        x = multigrid.solve(rhs, tol=tol, maxiter=maxiter, cycle="V", accel=None, residuals=residuals)
        iterations = len(residuals) - 1
        info = 0 if residuals[-1] <= tol * np.linalg.norm(rhs) else 1
    else:
        raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}.")
    if info != 0:
        raise RuntimeError(f"{solver} did not reach tol={tol:g} in {maxiter} iterations.")
    return x, iterations


def solve_poisson(points: np.ndarray, cells: np.ndarray, source: np.ndarray,
                  dirichlet_nodes: np.ndarray, dirichlet_values: np.ndarray,
                  coefficient: np.ndarray | None = None, solver: str = "direct",
                  tol: float = 1e-10) -> FemSolution:
    """Solve -div(a grad u) = f in the domain, u = g on ``dirichlet_nodes``, with P1 elements.

    Args:
        points: ``(N, d)`` coordinates, d = 2 (triangles) or 3 (tetrahedra); any unit.
        cells: ``(M, d + 1)`` int node ids; every point must belong to a cell.
        source: ``(N,)`` nodal f (interpolated as P1).
        dirichlet_nodes: ``(K,)`` int node ids (or an ``(N,)`` boolean mask) where u = g.
        dirichlet_values: ``(K,)`` values g on those nodes (``(N,)`` with a mask: read on the mask).
        coefficient: None (a = 1), ``(N,)`` nodal or ``(M,)`` per-cell a > 0.
        solver: "direct" (scipy spsolve), "cg" (scipy cg + pyamg smoothed-aggregation
            preconditioner) or "amg" (pyamg V-cycles).
        tol: relative residual target of the iterative solvers.

    Returns:
        :class:`FemSolution`; ``residual`` is that of the reduced system actually solved.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}.")
    stiffness, load = assemble(points, cells, source, coefficient)
    nodes = np.asarray(dirichlet_nodes)
    values = np.asarray(dirichlet_values, dtype=np.float64)
    if nodes.dtype == bool:
        if nodes.shape != (len(load),):
            raise MeshError(f"dirichlet mask has shape {nodes.shape}; expected ({len(load)},).")
        values = values[nodes] if values.shape == nodes.shape else values
        nodes = np.flatnonzero(nodes)
    if values.shape != nodes.shape:
        raise MeshError(f"{values.shape} Dirichlet values for {nodes.shape} Dirichlet nodes.")
    matrix, rhs, free = reduce_dirichlet(stiffness, load, nodes, values)
    start = time.perf_counter()
    x, iterations = solve_linear(matrix, rhs, solver, tol)
    seconds = time.perf_counter() - start
    u = np.zeros(len(load))
    u[nodes] = values
    u[free] = x
    return FemSolution(u=u, residual=relative_residual(matrix, x, rhs), iterations=iterations,
                       seconds=seconds)


def solve_poisson_p2(points: np.ndarray, cells: np.ndarray, source: float = 1.0,
                     boundary: Callable[[np.ndarray], np.ndarray] | None = None, solver: str = "direct",
                     tol: float = 1e-10) -> np.ndarray:
    """Nodal values ``(N,)`` of the quadratic (P2) finite-element solution of -Δu = ``source`` (a
    constant) with u = ``boundary(x)`` on the whole boundary (``(K, d)`` points -> ``(K,)``;
    default 0), on the same triangles or tetrahedra: a reference an order more accurate than
    :func:`solve_poisson`'s P1 on the mesh a model is measured on (it reproduces quadratic
    solutions exactly; P1 on a coarse curved part can be ~10 % off). ``solver`` as there."""
    from skfem import ElementTetP2, ElementTriP2, condense
    from skfem.models.poisson import laplace, unit_load

    mesh, _ = _p1_mesh(points, cells)
    basis = Basis(mesh, ElementTriP2() if mesh.dim() == 2 else ElementTetP2())
    stiffness, load = laplace.assemble(basis), source * unit_load.assemble(basis)
    held = basis.get_dofs().all()
    u = np.zeros(basis.N)
    if boundary is not None:
        u[held] = boundary(basis.doflocs[:, held].T)
    matrix, rhs, _, free = condense(stiffness, load, x=u, D=held)
    u[free] = solve_linear(matrix.tocsr(), rhs, solver, tol)[0]
    return u[basis.nodal_dofs[0]]


def l2_error(points: np.ndarray, cells: np.ndarray, u_h: np.ndarray,
             u_exact: Callable[[np.ndarray], np.ndarray], intorder: int = 6) -> float:
    """``||u_h - u_exact||_{L2}`` with a degree-``intorder`` quadrature per cell.

    ``u_exact`` maps ``(K, d)`` points to ``(K,)`` values; ``u_h`` is ``(N,)`` nodal (P1).
    """
    basis = p1_basis(points, cells, intorder=intorder)
    dim = basis.mesh.dim()

    @Functional
    def squared_error(w):
        x = np.asarray(w.x)
        exact = np.asarray(u_exact(x.reshape(dim, -1).T)).reshape(x.shape[1:])
        return (w["uh"] - exact) ** 2

    return float(np.sqrt(squared_error.assemble(basis, uh=basis.interpolate(np.asarray(u_h, float)))))
