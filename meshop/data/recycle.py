"""Sorting Krylov Recycling (SKR): solve a family of linear systems on one mesh in a sequence that
re-uses Krylov information from one solve to the next.

Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace Recycling"
(ICLR 2024): (1) order the systems so that neighbours have similar coefficients (greedy nearest
neighbour tour), (2) solve them in that order with a recycling Krylov solver. Two solvers:

- ``method="rcg"`` (default, symmetric positive definite systems): recycled conjugate gradients,
  i.e. deflated CG (Saad, Yeung, Erhel & Guyomarc'h 2000) whose deflation space W of k approximate
  eigenvectors of the smallest eigenvalues is refined after each solve by Rayleigh-Ritz on
  [W, first search directions] and carried to the next system. It is the SPD counterpart of the
  paper's GCRO-DR. Hand-written: neither scipy nor pyamg ships a recycling CG.
- ``method="gcrotmk"``: scipy's GCROT(m, k), carrying its recycled ``CU`` space across systems.

With ``recycle=False`` the same solver runs on every system independently (plain CG, or gcrotmk
without ``CU``), which is the fair baseline: same method, preconditioner and tolerance.
The tolerance is always on the true relative residual ``||b - A x|| / ||b||``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyamg
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

METHODS = ("rcg", "gcrotmk")
PRECONDITIONERS = (None, "jacobi", "amg")


# ----------------------------------------------------------------------------------------- sorting
def greedy_order(features: np.ndarray, start: int = 0, n_components: int | None = 64) -> np.ndarray:
    """Greedy nearest-neighbour tour: from ``start``, always go to the closest unvisited sample.

    Args:
        features: ``(S, F)`` one row per system (e.g. the coefficient field).
        start: the first sample.
        n_components: project on this many principal components first when ``F`` is larger
            (deterministic full SVD); None keeps the raw features.

    Returns:
        ``(S,)`` permutation of ``range(S)``.
    """
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    n_samples = len(features)
    if n_components is not None and features.shape[1] > n_components and n_samples > n_components:
        features = PCA(n_components=n_components, svd_solver="full").fit_transform(features)
    index = NearestNeighbors().fit(features)
    visited = np.zeros(n_samples, dtype=bool)
    order = [start]
    visited[start] = True
    for _ in range(n_samples - 1):
        k = 8
        while True:  # widen the query until an unvisited neighbour shows up
            neighbours = index.kneighbors(features[order[-1]:order[-1] + 1], min(k, n_samples),
                                          return_distance=False)[0]
            fresh = neighbours[~visited[neighbours]]
            if len(fresh) or k >= n_samples:
                break
            k *= 4
        order.append(int(fresh[0]))
        visited[fresh[0]] = True
    return np.asarray(order)


def path_length(features: np.ndarray, order: np.ndarray) -> float:
    """Sum of Euclidean distances between consecutive samples in ``order``."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return float(np.linalg.norm(np.diff(features[np.asarray(order)], axis=0), axis=1).sum())


# ------------------------------------------------------------------------------ recycled CG
class RecycledCG:
    """Deflated CG whose deflation space is carried and refined from one system to the next.

    Args:
        recycle_dim: k, the number of recycled vectors (0 gives plain CG).
        harvest: number of first CG search directions used with W for the Rayleigh-Ritz update.
        jacobi: symmetric diagonal scaling D^-1/2 A D^-1/2 (equivalent to Jacobi-preconditioned CG).
    """

    def __init__(self, recycle_dim: int = 20, harvest: int | None = None, jacobi: bool = False):
        self.recycle_dim = recycle_dim
        self.harvest = 2 * recycle_dim if harvest is None else harvest
        self.jacobi = jacobi
        self.space: np.ndarray | None = None  # (n, k) recycled vectors, unscaled coordinates

    def solve(self, matrix: sp.csr_matrix, rhs: np.ndarray, tol: float = 1e-8,
              maxiter: int = 100_000) -> tuple[np.ndarray, int]:
        """Solve ``matrix x = rhs`` to relative residual ``tol``; returns ``(x, matvecs)``."""
        scale = 1.0 / np.sqrt(matrix.diagonal()) if self.jacobi else np.ones(len(rhs))
        scaled = sp.diags(scale) @ matrix @ sp.diags(scale) if self.jacobi else matrix
        space = None if self.space is None else self.space / scale[:, None]
        x, matvecs = np.zeros(len(rhs)), 0
        target = tol * np.linalg.norm(rhs)
        while True:  # deflated CG; restarted only if the recurrence residual drifted from the true one
            x, steps, directions = _deflated_cg(scaled, scale * rhs, x, space, target, 1.0 / scale,
                                                maxiter - matvecs, self.harvest)
            matvecs += steps + 1 + (0 if space is None else space.shape[1])
            true_residual = np.linalg.norm(rhs - matrix @ (scale * x))
            if true_residual <= target or matvecs >= maxiter or steps == 0:
                break
        if true_residual > target:
            raise RuntimeError(f"recycled CG did not reach tol={tol:g} in {maxiter} matrix products.")
        ritz = _ritz_vectors(directions, self.recycle_dim) if self.recycle_dim > 0 else None
        self.space = None if ritz is None else scale[:, None] * ritz
        return scale * x, matvecs


def _deflated_cg(matrix, rhs, x, space, target, unscale, maxiter, harvest):
    """Deflated CG (A-DEF2 of Tang et al. 2009) from ``x``; stops when the unscaled residual
    ``||r / scale||`` <= target. Returns x, iterations and the first ``harvest`` search directions
    (A-normalized) with their products, and the deflation space used with its products:
    ``(P, AP, W, AW)``."""
    if space is not None:
        product = np.asarray(matrix @ space)
        gram = space.T @ product
        try:
            factor = sla.cho_factor((gram + gram.T) / 2)
        except sla.LinAlgError:  # the carried space lost rank: solve this system without it
            return _deflated_cg(matrix, rhs, x, None, target, unscale, maxiter, harvest)
        weights = np.asfortranarray(sla.cho_solve(factor, space.T).T)  # W E^-1
        product = np.asfortranarray(product)
        x = x + weights @ (space.T @ (rhs - matrix @ x))

        def project(z):
            return z - weights @ (product.T @ z)
    else:
        def project(z):
            return z.copy()

    r = rhs - matrix @ x
    p = project(r)
    rr = r @ r
    found = np.empty((len(rhs), harvest), order="F")  # A-normalized search directions
    found_products = np.empty_like(found)
    steps = 0
    while np.linalg.norm(r * unscale) > target and steps < maxiter:
        q = matrix @ p
        pq = p @ q
        if steps < harvest:
            found[:, steps] = p / np.sqrt(pq)
            found_products[:, steps] = q / np.sqrt(pq)
        alpha = rr / pq
        x += alpha * p
        r -= alpha * q
        rr_new = r @ r
        p = project(r) + (rr_new / rr) * p
        rr = rr_new
        steps += 1
    kept = min(steps, harvest)
    return x, steps, (found[:, :kept], found_products[:, :kept], space, None if space is None else product)


def _ritz_vectors(directions, k):
    """k Ritz vectors of the smallest Ritz values on span([W, P]), from the ``directions`` tuple
    of :func:`_deflated_cg`; None when that span is empty."""
    found, found_products, space, space_product = directions
    if space is None and found.shape[1] == 0:
        return None
    basis = found if space is None else np.hstack([space, found])
    products = found_products if space is None else np.hstack([space_product, found_products])
    stiffness = basis.T @ products
    gram = basis.T @ basis
    # largest mu of gram y = mu stiffness y  <=>  smallest Ritz values theta = 1 / mu
    _, vectors = sla.eigh((gram + gram.T) / 2, (stiffness + stiffness.T) / 2)
    return basis @ vectors[:, ::-1][:, :min(k, basis.shape[1])]


# ------------------------------------------------------------------------------------ gcrotmk
class RecycledGcrotmk:
    """scipy's GCROT(m, k) with its ``CU`` space carried across systems (C recomputed per matrix)."""

    def __init__(self, recycle_dim: int = 20, inner_dim: int = 30, preconditioner: str | None = None,
                 recycle: bool = True):
        self.recycle_dim, self.inner_dim = recycle_dim, inner_dim
        self.preconditioner, self.recycle = preconditioner, recycle
        self.space: list = []

    def solve(self, matrix: sp.csr_matrix, rhs: np.ndarray, tol: float = 1e-8,
              maxiter: int = 100_000) -> tuple[np.ndarray, int]:
        count = [0]

        def matvec(v):
            count[0] += 1
            return matrix @ v

        operator = spla.LinearOperator(matrix.shape, matvec=matvec, dtype=np.float64)
        x, info = spla.gcrotmk(operator, rhs, rtol=tol, atol=0.0, maxiter=maxiter,
                               M=make_preconditioner(matrix, self.preconditioner), m=self.inner_dim,
                               k=self.recycle_dim, CU=self.space if self.recycle else None,
                               discard_C=True)
        if info != 0:
            raise RuntimeError(f"gcrotmk did not reach tol={tol:g} in {maxiter} outer iterations.")
        return x, count[0]


def make_preconditioner(matrix: sp.spmatrix, kind: str | None) -> spla.LinearOperator | None:
    """None, Jacobi (inverse diagonal) or pyamg smoothed-aggregation V-cycle for ``matrix``."""
    if kind is None:
        return None
    if kind == "jacobi":
        inverse_diagonal = 1.0 / matrix.diagonal()
        return spla.LinearOperator(matrix.shape, matvec=lambda v: inverse_diagonal * v)
    if kind == "amg":
        return pyamg.smoothed_aggregation_solver(matrix, symmetry="symmetric").aspreconditioner()
    raise ValueError(f"unknown preconditioner {kind!r}; expected one of {PRECONDITIONERS}.")


# ------------------------------------------------------------------------------------- family
@dataclass
class FamilyStats:
    """Per-system statistics of :func:`solve_family`, indexed like the input systems.

    Attributes:
        order: ``(S,)`` the order the systems were solved in.
        iterations: ``(S,)`` matrix-vector products per system (including recycled-space updates).
        seconds: ``(S,)`` wall time per system (including preconditioner setup and recycling).
        residuals: ``(S,)`` true relative residuals ``||b - A x|| / ||b||``.
    """

    order: np.ndarray
    iterations: np.ndarray
    seconds: np.ndarray
    residuals: np.ndarray


def solve_family(matrices: list[sp.spmatrix], rhs: np.ndarray, order: str | np.ndarray = "sorted",
                 tol: float = 1e-8, features: np.ndarray | None = None, method: str = "rcg",
                 recycle: bool = True, recycle_dim: int = 20, preconditioner: str | None = None,
                 maxiter: int = 100_000) -> tuple[list[np.ndarray], FamilyStats]:
    """Solve ``matrices[i] x_i = rhs_i`` for a family of systems of the same size, re-using Krylov
    information along a similarity ordering (Sorting Krylov Recycling).

    Args:
        matrices: S sparse ``(n, n)`` matrices (SPD for ``method="rcg"``).
        rhs: ``(n,)`` shared or ``(S, n)`` right-hand sides.
        order: "sorted" (greedy nearest-neighbour tour of ``features``), "given", or a permutation.
        tol: relative residual target, the same for every method.
        features: ``(S, F)`` similarity features, e.g. the coefficient fields; default: the
            matrix diagonals.
        method: "rcg" (recycled CG) or "gcrotmk" (scipy GCROT(m, k) with carried ``CU``).
        recycle: False solves every system independently with the same method.
        recycle_dim: number of recycled vectors k.
        preconditioner: None, "jacobi", or (gcrotmk only) "amg", built per system.
        maxiter: cap on matrix products per system (rcg) or outer iterations (gcrotmk).

    Returns:
        ``(solutions, stats)``: S solution vectors in the input order and :class:`FamilyStats`.
    """
    n_systems = len(matrices)
    rhs = np.asarray(rhs, dtype=np.float64)
    rhs = np.broadcast_to(rhs, (n_systems, rhs.shape[-1])) if rhs.ndim == 1 else rhs
    sequence = _solve_order(matrices, order, features)
    solver = _make_solver(method, recycle, recycle_dim, preconditioner)
    solutions = [None] * n_systems
    iterations, seconds, residuals = (np.zeros(n_systems) for _ in range(3))
    for i in sequence:
        start = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):  # the dense products are small: threads only add overhead
            solutions[i], iterations[i] = solver.solve(matrices[i].tocsr(), rhs[i], tol, maxiter)
        seconds[i] = time.perf_counter() - start
        norm = np.linalg.norm(rhs[i])
        residuals[i] = np.linalg.norm(rhs[i] - matrices[i] @ solutions[i]) / (norm if norm else 1.0)
    return solutions, FamilyStats(sequence, iterations.astype(int), seconds, residuals)


def _solve_order(matrices, order, features) -> np.ndarray:
    if isinstance(order, str):
        if order == "given":
            return np.arange(len(matrices))
        if order != "sorted":
            raise ValueError(f"order must be 'sorted', 'given' or a permutation, got {order!r}.")
        if features is None:
            features = np.stack([m.diagonal() for m in matrices])
        return greedy_order(features)
    sequence = np.asarray(order)
    if sorted(sequence.tolist()) != list(range(len(matrices))):
        raise ValueError(f"order is not a permutation of 0..{len(matrices) - 1}.")
    return sequence


def _make_solver(method, recycle, recycle_dim, preconditioner):
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"unknown preconditioner {preconditioner!r}; expected one of {PRECONDITIONERS}.")
    if method == "rcg":
        if preconditioner == "amg":
            raise ValueError("method 'rcg' supports preconditioner None or 'jacobi'.")
        return RecycledCG(recycle_dim if recycle else 0, jacobi=preconditioner == "jacobi")
    if method == "gcrotmk":
        return RecycledGcrotmk(recycle_dim, preconditioner=preconditioner, recycle=recycle)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}.")
