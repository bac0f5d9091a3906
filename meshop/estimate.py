"""A-posteriori error estimate of a prediction of a known PDE, and its refinement to the FEM answer.

The bundled models learn P1 finite-element solutions of known PDEs (``heat3d``: -ΔT = q in a 3D
part, T = g on its surface). For those, the finite-element residual of a prediction says how far
it is from the exact discrete answer u_h of the same mesh: with the reduced (Dirichlet rows
removed) system ``A u = b`` and the prediction u, the error e = u_h - u solves ``A e = r``,
r = b - A u. Four conjugate-gradient iterations on that equation, from zero, preconditioned by
one V-cycle of plain (unsmoothed) aggregation multigrid (pyamg), give e closely enough: the
multigrid's coarse levels catch the smooth error a model makes (amplitude, large-scale shape),
CG makes up for plain aggregation's weak coarse correction, and plain aggregation sets up in a
fraction of a second where smoothed aggregation takes seconds. Measured on cubes of 10k-97k
nodes, two bare V-cycles found 56-63 % of the error, four CG iterations 98-100 %. The estimate
of the relative error is ``||e|| / ||u + e||`` (nodal norms, as the benchmarks measure the true
error). ``refine`` continues from a start (``predict`` gives it u + e) with conjugate gradients
preconditioned by smoothed-aggregation V-cycles down to a relative residual, so a user can
always get u_h. The Dirichlet nodes are the mesh's boundary nodes, as in the training data.

Problems are looked up by name in :data:`ESTIMATORS` (the checkpoint's data card records it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyamg
import scipy.sparse.linalg as spla

from .data.fem import assemble, reduce_dirichlet
from .errors import MeshError
from .geometry.cells import TOPOLOGICAL_DIM
from .mesh import Mesh

#: an estimated relative error above this gets a warning that suggests ``--refine``
WARN_ABOVE = 0.10


@dataclass
class ErrorEstimate:
    """The estimated error of one predicted field.

    Attributes:
        relative: estimated ``||u - u_h|| / ||u_h||`` of the prediction u (nodal 2-norms).
        error: ``(N,)`` estimated ``u - u_h`` per node (exact on Dirichlet nodes, 0 on points
            in no cell), the same sign as ``<target>_error`` = prediction - truth.
        residual: the prediction's relative FEM residual ``||b - A u|| / ||b||``.
        iterations: preconditioned CG iterations run on the residual equation.
        seconds: wall time (assembly, multigrid set-up, iterations).
    """

    relative: float
    error: np.ndarray
    residual: float
    iterations: int
    seconds: float


@dataclass
class Refinement:
    """A prediction continued by AMG-preconditioned CG to the FEM solution of its mesh.

    Attributes:
        values: ``(N,)`` refined field (the Dirichlet values on Dirichlet nodes).
        tol, residual: the asked and the reached relative FEM residual.
        iterations, seconds: CG iterations and wall time from the given start (``predict``
            starts from the prediction corrected by its error estimate, ``u - error``).
        cold_iterations, cold_seconds: the same solver from zero, for comparison.
    """

    values: np.ndarray
    tol: float
    residual: float
    iterations: int
    seconds: float
    cold_iterations: int
    cold_seconds: float


class PoissonSystem:
    """The P1 system of -Δu = f, u = g on the boundary nodes of a simplex mesh, reduced to its
    free nodes; multigrid hierarchies are built on first use.

    Args:
        mesh: triangle (2D) or tetrahedron (3D) mesh; points in no cell are left out.
        source: ``(N,)`` nodal f.
        boundary_values: ``(N,)`` nodal g (read on boundary nodes).
    """

    def __init__(self, mesh: Mesh, source: np.ndarray, boundary_values: np.ndarray):
        started = time.perf_counter()
        cells = mesh.cells["tetra" if mesh.dim == 3 else "triangle"]
        self.used = np.unique(cells)                     # node ids of the reduced numbering
        local = np.full(mesh.n_points, -1)
        local[self.used] = np.arange(len(self.used))
        stiffness, load = assemble(mesh.points[self.used], local[cells], np.asarray(source)[self.used])
        fixed = np.flatnonzero(mesh.boundary_mask[self.used])
        g = np.asarray(boundary_values, dtype=np.float64)[self.used][fixed]
        self.matrix, self.rhs, free = reduce_dirichlet(stiffness, load, fixed, g)
        self.free = self.used[free]                      # free node ids in the mesh's numbering
        self.fixed, self.fixed_values = self.used[fixed], g
        self.assembly_seconds = time.perf_counter() - started

    @cached_property
    def aggregation(self) -> pyamg.multilevel.MultilevelSolver:
        """Plain aggregation hierarchy (cheap set-up; the estimate's preconditioner)."""
        return pyamg.smoothed_aggregation_solver(self.matrix, symmetry="symmetric", smooth=None)

    @cached_property
    def smoothed_aggregation(self) -> pyamg.multilevel.MultilevelSolver:
        """Smoothed-aggregation hierarchy (the stronger preconditioner; for refinement)."""
        return pyamg.smoothed_aggregation_solver(self.matrix, symmetry="symmetric")

    def relative_residual(self, u: np.ndarray) -> float:
        """``||b - A u|| / ||b||`` of the nodal field ``u`` ``(N,)`` (the residual if b = 0)."""
        r = np.linalg.norm(self.rhs - self.matrix @ u[self.free])
        norm = np.linalg.norm(self.rhs)
        return float(r / norm) if norm > 0 else float(r)

    def estimate(self, u: np.ndarray, iterations: int = 4) -> ErrorEstimate:
        """Estimated error of the nodal field ``u`` ``(N,)``: ``iterations`` multigrid-preconditioned
        CG iterations on A e = r from zero."""
        started = time.perf_counter()
        u = np.asarray(u, dtype=np.float64)
        correction = np.zeros(len(self.free))           # every node fixed: nothing to correct
        if len(self.free):
            correction = self.aggregation.solve(self.rhs - self.matrix @ u[self.free], x0=correction,
                                                tol=1e-300, maxiter=iterations, cycle="V", accel="cg")
        error = np.zeros_like(u)
        error[self.free] = -correction                   # u - u_h ≈ -e
        error[self.fixed] = u[self.fixed] - self.fixed_values
        corrected = u[self.used] - error[self.used]
        relative = float(np.linalg.norm(error) / max(np.linalg.norm(corrected), 1e-300))
        seconds = self.assembly_seconds + time.perf_counter() - started
        return ErrorEstimate(relative, error, self.relative_residual(u), iterations, seconds)

    def refine(self, u: np.ndarray, tol: float, maxiter: int = 1000) -> Refinement:
        """Continue from ``u`` ``(N,)`` with AMG-preconditioned CG until the relative residual is
        at most ``tol``; also solve from zero with the same solver for comparison (both times
        exclude the shared multigrid set-up)."""
        check_tolerance(tol)
        if len(self.free):
            self.smoothed_aggregation  # noqa: B018 -- set up once, outside both timings
        warm, iterations, seconds = self._cg(np.asarray(u, dtype=np.float64)[self.free], tol, maxiter)
        _, cold_iterations, cold_seconds = self._cg(np.zeros(len(self.free)), tol, maxiter)
        values = np.array(u, dtype=np.float64)
        values[self.free] = warm
        values[self.fixed] = self.fixed_values
        return Refinement(values, tol, self.relative_residual(values), iterations, seconds,
                          cold_iterations, cold_seconds)

    def _cg(self, x0: np.ndarray, tol: float, maxiter: int) -> tuple[np.ndarray, int, float]:
        """CG from ``x0`` to ``||b - A x|| <= tol ||b||``: ``(x, iterations, seconds)``."""
        started = time.perf_counter()
        count = [0]

        def _count(_):
            count[0] += 1

        atol = tol * np.linalg.norm(self.rhs)
        if np.linalg.norm(self.rhs - self.matrix @ x0) <= atol:
            return x0, 0, time.perf_counter() - started
        x, _ = spla.cg(self.matrix, self.rhs, x0=x0, rtol=0.0, atol=atol, maxiter=maxiter,
                       M=self.smoothed_aggregation.aspreconditioner(cycle="V"), callback=_count)
        return x, count[0], time.perf_counter() - started


@dataclass(frozen=True)
class PoissonEstimator:
    """How the fields of a Poisson-type problem (-Δu = f, u = g on the boundary) are named."""

    target: str
    source: str
    boundary: str

    def unsupported(self, mesh: Mesh, targets: list[str]) -> str | None:
        """Why this estimator cannot judge a prediction of ``targets`` on ``mesh``, or None."""
        simplex = "tetra" if mesh.dim == 3 else "triangle"
        volume = [t for t in mesh.cells if TOPOLOGICAL_DIM[t] == mesh.dim]
        if self.target not in targets:
            return f"the model does not predict '{self.target}'"
        if volume != [simplex]:
            return (f"the finite-element residual is computed on {simplex} meshes and this one has "
                    f"{', '.join(volume)} cells")
        return None

    def system(self, mesh: Mesh, inputs: dict[str, np.ndarray]) -> PoissonSystem:
        """The FEM system of ``mesh`` for the model's ``inputs`` (name -> ``(N,)`` or ``(N, 1)``)."""
        return PoissonSystem(mesh, np.ravel(inputs[self.source]), np.ravel(inputs[self.boundary]))


#: problem name (the checkpoint's ``data["problem"]``) -> the PDE of its fields
ESTIMATORS = {
    "heat3d": PoissonEstimator("temperature", "source", "boundary_temperature"),
    "poisson2d": PoissonEstimator("u", "source", "boundary_value"),
}


def estimator_for(problem: str | None) -> PoissonEstimator | None:
    """The estimator of a problem name, None when meshop knows no PDE for it."""
    return ESTIMATORS.get(problem or "")


def check_tolerance(tol: float) -> None:
    """Raise :class:`MeshError` unless ``tol`` is a relative residual in (0, 1)."""
    if not 0.0 < tol < 1.0:
        raise MeshError(f"refine tolerance {tol:g}: expected a relative residual between 0 and 1, such as 1e-8.")


def refinement_note(target: str, refined: Refinement) -> str:
    """One sentence: how refining ``target`` went, against a cold start."""
    return (f"refined {target} to FEM residual {refined.residual:.2g} (asked {refined.tol:g}) in "
            f"{refined.iterations} CG iterations, {refined.seconds:.2f} s, from the corrected prediction; from zero "
            f"the same solver takes {refined.cold_iterations} iterations, {refined.cold_seconds:.2f} s "
            f"(written as {target}_refined).")


def warning(target: str, estimate: ErrorEstimate, mesh=None) -> str | None:
    """A warning line when the estimated error of ``target`` exceeds :data:`WARN_ABOVE`; with the
    predicted ``mesh``, it also names unmerged coincident nodes, a common cause (checked only
    here: sorting the points costs ~0.5 s at 1M nodes)."""
    if estimate.relative <= WARN_ABOVE:
        return None
    line = (f"the estimated error of {target} is {100 * estimate.relative:.1f} % (above "
            f"{100 * WARN_ABOVE:.0f} %); rerun with --refine 1e-8 to get the finite-element answer on this mesh.")
    if mesh is not None:
        twins = np.flatnonzero(mesh.coincident != np.arange(mesh.n_points))
        if len(twins):
            line += (f" The mesh has {len(twins)} node(s) on top of another node (first: node {int(twins[0])}): "
                     "unmerged duplicates cut it into pieces whose faces count as surface (held at the boundary "
                     "value); merge them if they should be one part.")
    return line
