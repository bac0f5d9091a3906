"""Transient heat conduction with P1 finite elements and implicit time stepping, on scikit-fem.

The equation, in the time unit ``d²/α`` (α = k / ρc the diffusivity, d a length, by default the
part's inradius: its largest distance to the boundary), with coordinates in metres::

    ∂T/∂τ = d² (ΔT + q)                       in the part, τ = α t / d²
    -∂T/∂n = β (T - T∞)                       on Robin surfaces (β = h / k, 1/m; β = 0: insulated)
    T = T∞                                    on Dirichlet nodes

q is the source over the conductivity (K/m²). The Galerkin system ``M dT/dτ + A T = F(τ)`` has
``A = d² (K + R)`` and ``F = d² (M q on(τ) + R T∞)``: M the mass, K the stiffness and R the
boundary mass ``∫_∂Ω β φ_j φ_i ds`` (scikit-fem ``FacetBasis`` on the boundary facets). The
source switches on after ``t_on``: on(τ) = 1 for τ > t_on, else 0.

Time schemes (:data:`SCHEMES`): ``bdf2`` (default; L-stable, so a sudden quench or switch-on
leaves no ringing; started, and restarted where the source switches on, by one backward-Euler
step, which keeps second order) and ``cn``
(Crank–Nicolson, source at the step's midpoint). Dirichlet values are imposed on each step's
system by condensation, so they may vary in time. Each step matrix is factorized once (SuperLU),
or gets its CG preconditioner once (the diagonal, or a pyamg smoothed-aggregation hierarchy),
and is reused for every step; ``benchmarks/heat_fem_step.py`` measures the three.
``tests/test_heat_transient.py`` measures order 2 in time and in space on manufactured solutions.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pyamg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from skfem import BilinearForm, FacetBasis

from ..errors import MeshError
from ..mesh import Mesh
from ..trajectory import Trajectory
from .fem import mass_matrix, p1_basis, stiffness_matrix

SCHEMES = ("bdf2", "cn")
SOLVERS = ("direct", "cg", "amg")
#: the per-node constant inputs :class:`HeatSimulation` reads, with their value when absent
INPUTS = {"source": 0.0, "heat_transfer": 0.0, "ambient_temperature": 0.0, "dirichlet_mask": 0.0}
#: the fields a run produces per frame (dropped from the constant point fields of its mesh)
EVOLVING = ("temperature", "source_on")


@BilinearForm
def _weighted_mass(u, v, w):
    return w["beta"] * u * v


def heat_matrices(points: np.ndarray, tets: np.ndarray, heat_transfer: np.ndarray | None = None
                  ) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """P1 mass M, stiffness K and Robin boundary mass R of a tetrahedral (or triangle) mesh.

    Args:
        points: ``(N, d)`` coordinates; tets: ``(M, d + 1)`` cells.
        heat_transfer: ``(N,)`` nodal β = h/k (1/m), read on the boundary facets (interpolated
            P1 over each facet); None or all zero: R = 0 (insulated surfaces).

    Returns:
        ``(M, K, R)``, each ``(N, N)`` CSR.
    """
    basis = p1_basis(points, tets)
    n = basis.N
    beta = np.zeros(n) if heat_transfer is None else np.asarray(heat_transfer, dtype=np.float64)
    if beta.shape != (n,):
        raise MeshError(f"heat_transfer has shape {beta.shape}; expected ({n},) nodal values.")
    if not np.any(beta):
        robin = sp.csr_matrix((n, n))
    else:
        facets = FacetBasis(basis.mesh, basis.elem, facets=basis.mesh.boundary_facets())
        robin = _weighted_mass.assemble(facets, beta=facets.interpolate(beta)).tocsr()
    return mass_matrix(basis), stiffness_matrix(basis), robin


def _linear_solver(matrix: sp.csr_matrix, solver: str, tol: float
                   ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``solve(rhs, guess) -> x`` for the SPD ``matrix``: a SuperLU factorization ("direct"), or
    CG started from ``guess`` and preconditioned by the diagonal ("cg": the step matrices of small
    steps are mass-dominated, so well conditioned) or one smoothed-aggregation hierarchy ("amg")."""
    if solver == "direct":
        lu = spla.splu(matrix.tocsc())
        return lambda rhs, guess: lu.solve(rhs)
    if solver == "cg":
        preconditioner = sp.diags(1.0 / matrix.diagonal())
    else:
        preconditioner = pyamg.smoothed_aggregation_solver(matrix, symmetry="symmetric").aspreconditioner(cycle="V")

    def solve(rhs, guess):
        x, info = spla.cg(matrix, rhs, x0=guess, rtol=tol, atol=0.0, maxiter=500, M=preconditioner)
        if info != 0:
            raise RuntimeError(f"CG did not reach tol={tol:g} in 500 iterations.")
        return x
    return solve


class HeatStepper:
    """Implicit steps of ``M dT/dt + A T = F(t)`` with ``T = g(t)`` on fixed nodes.

    The step matrices (``1.5 M + dt A`` and the backward-Euler start ``M + dt A`` for BDF2,
    ``M + dt/2 A`` for CN) are condensed onto the free nodes and factorized in the constructor
    (``factor_seconds``); :meth:`run` then costs one sparse solve per step (``step_seconds``:
    mean wall time of one step of the last run, right-hand side included).
    """

    def __init__(self, mass: sp.csr_matrix, operator: sp.csr_matrix, dt: float,
                 fixed_nodes: np.ndarray = (), scheme: str = "bdf2", solver: str = "direct",
                 tol: float = 1e-10):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}.")
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}.")
        if not dt > 0:
            raise MeshError(f"the time step must be positive, got dt = {dt}.")
        self.mass, self.operator, self.dt, self.scheme = mass.tocsr(), operator.tocsr(), float(dt), scheme
        n = mass.shape[0]
        self.fixed = np.zeros(n, dtype=bool)
        self.fixed[np.asarray(fixed_nodes, dtype=np.int64)] = True
        self.free = np.flatnonzero(~self.fixed)
        weights = {"cn": {"cn": (1.0, 0.5)}, "bdf2": {"be": (1.0, 1.0), "bdf2": (1.5, 1.0)}}[scheme]
        start = time.perf_counter()
        self._systems = {key: self._condensed(a * self.mass + (b * self.dt) * self.operator, solver, tol)
                         for key, (a, b) in weights.items()}
        self.factor_seconds = time.perf_counter() - start
        self.step_seconds = float("nan")

    def _condensed(self, matrix: sp.csr_matrix, solver: str, tol: float):
        rows = matrix[self.free]
        return rows[:, np.flatnonzero(self.fixed)].tocsr(), _linear_solver(rows[:, self.free].tocsr(), solver, tol)

    def _step(self, key: str, rhs: np.ndarray, fixed_values: np.ndarray, guess: np.ndarray) -> np.ndarray:
        coupling, solve = self._systems[key]
        out = np.empty_like(rhs)
        out[self.fixed] = fixed_values
        out[self.free] = solve(rhs[self.free] - coupling @ fixed_values, guess[self.free])
        return out

    def run(self, initial: np.ndarray, steps: int, load: Callable[[float], np.ndarray],
            fixed_values: Callable[[float], np.ndarray] | np.ndarray = (), t0: float = 0.0,
            stride: int = 1, jumps: tuple[float, ...] = ()) -> np.ndarray:
        """``steps`` frames after ``initial``, one every ``stride`` solver steps: ``(steps + 1, N)``.

        ``load(t)`` is F at time t (read at the step's end for BDF2, its midpoint for CN);
        ``fixed_values`` are the values on the fixed nodes, constant or a function of t. BDF2
        restarts with a backward-Euler step at the step times in ``jumps`` (where the load jumps),
        which keeps it second order across the jump.
        """
        restarts = {int(round((t - t0) / self.dt)) for t in jumps if np.isfinite(t)}
        values = fixed_values if callable(fixed_values) else (lambda t, g=np.asarray(fixed_values, float): g)
        dt, current = self.dt, np.asarray(initial, dtype=np.float64).copy()
        previous, frames = None, [current.copy()]
        start = time.perf_counter()
        for n in range(steps * stride):
            t_next = t0 + (n + 1) * dt
            if self.scheme == "cn":
                rhs = self.mass @ current - (0.5 * dt) * (self.operator @ current) + dt * load(t_next - 0.5 * dt)
                key = "cn"
            elif previous is None or n in restarts:
                rhs, key = self.mass @ current + dt * load(t_next), "be"
            else:
                rhs, key = self.mass @ (2.0 * current - 0.5 * previous) + dt * load(t_next), "bdf2"
            guess = current if previous is None else 2.0 * current - previous      # for CG
            previous, current = current, self._step(key, rhs, values(t_next), guess)
            if (n + 1) % stride == 0:
                frames.append(current.copy())
        self.step_seconds = (time.perf_counter() - start) / max(steps * stride, 1)
        return np.stack(frames)


class HeatSimulation:
    """The FEM of one part, inputs and time step, assembled and factorized once; :meth:`run` it
    from any initial state (the reference a neural rollout is compared against).

    Args:
        mesh: tetrahedral :class:`~meshop.Mesh` in metres.
        dt: solver time step in units of ``d²/α``.
        inputs: per-node constant inputs (:data:`INPUTS`: ``source`` q/k in K/m², ``heat_transfer``
            β = h/k in 1/m on Robin boundary nodes, ``ambient_temperature`` T∞ in K,
            ``dirichlet_mask`` 1 on nodes held at T∞); default: the mesh's point fields, and
            :data:`INPUTS`' values for those it lacks.
        length_scale: d in metres; default the mesh's inradius (largest distance to its boundary).
        scheme: "bdf2" or "cn" (module docstring).
        solver: "direct" (SuperLU, factorized once), "cg" (diagonal-preconditioned CG, fastest
            per step at 10k nodes and beyond) or "amg" (CG with a pyamg preconditioner).
        tol: CG's relative residual tolerance.
    """

    def __init__(self, mesh: Mesh, dt: float, inputs: dict | None = None, length_scale: float | None = None,
                 scheme: str = "bdf2", solver: str = "direct", tol: float = 1e-10):
        if "tetra" not in mesh.cells:
            raise MeshError("transient heat needs a tetrahedral mesh; this mesh has "
                            f"{', '.join(mesh.cells) or 'no cells'}.")
        given = dict(mesh.point_data if inputs is None else inputs)
        if "dirichlet_mask" not in given and "surfaces_held" in given:   # a generated sample's flag
            held = np.asarray(given["surfaces_held"], dtype=np.float64).reshape(-1) > 0.5
            given["dirichlet_mask"] = (mesh.boundary_mask & held).astype(np.float64)
        self.inputs = {name: self._nodal(mesh, name, given.get(name, default)) for name, default in INPUTS.items()}
        self.length_scale = float(mesh.distance_to_boundary.max() if length_scale is None else length_scale)
        mass, stiffness, robin = heat_matrices(mesh.points, mesh.cells["tetra"], self.inputs["heat_transfer"])
        d2 = self.length_scale ** 2
        self.mesh, self.dt, self.scheme = mesh, float(dt), scheme
        self.fixed = np.flatnonzero(self.inputs["dirichlet_mask"] > 0.5)
        self.stepper = HeatStepper(mass, d2 * (stiffness + robin), dt, self.fixed, scheme, solver, tol)
        self._ambient_load = d2 * (robin @ self.inputs["ambient_temperature"])
        self._source_load = d2 * (mass @ self.inputs["source"])

    @staticmethod
    def _nodal(mesh: Mesh, name: str, value) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.ndim == 0:
            return np.full(mesh.n_points, float(value))
        if value.shape != (mesh.n_points,):
            raise MeshError(f"input '{name}' has shape {value.shape}; expected ({mesh.n_points},) "
                            "nodal values or a scalar.")
        return value

    def run(self, initial: np.ndarray, steps: int, stride: int = 1, t_on: float = 0.0,
            t0: float = 0.0) -> Trajectory:
        """``steps`` frames after ``initial`` (``(N,)`` K at time ``t0``; nodes held at T∞ start at
        T∞), ``stride`` solver steps apart; the source is on for t > ``t_on`` (``inf``: never).

        Returns a :class:`~meshop.Trajectory`: the mesh with the inputs as point fields, fields
        ``temperature`` and ``source_on`` ``(steps + 1, N)`` (the fraction of the interval after
        each frame, one frame spacing long, during which the source is on), and metadata ``dt``,
        ``stride``, ``state``, ``inputs``, ``scheme``, ``t_on``, ``length_scale``.
        """
        initial = np.asarray(initial, dtype=np.float64)
        if initial.shape != (self.mesh.n_points,):
            raise MeshError(f"the initial temperature has shape {initial.shape}; expected "
                            f"({self.mesh.n_points},) nodal values.")
        if int(steps) < 0 or int(stride) < 1:
            raise MeshError(f"need steps >= 0 and stride >= 1, got {steps} and {stride}.")
        initial = np.where(self.inputs["dirichlet_mask"] > 0.5, self.inputs["ambient_temperature"], initial)

        def load(t):
            return self._ambient_load + self._source_load if t > t_on else self._ambient_load

        on_step = (t_on - t0) / self.dt
        jumps = (t_on,) if np.isfinite(on_step) and abs(on_step - round(on_step)) < 1e-9 else ()
        temperature = self.stepper.run(initial, int(steps), load, self.inputs["ambient_temperature"][self.fixed],
                                       t0=t0, stride=int(stride), jumps=jumps)
        spacing = self.dt * int(stride)
        times = t0 + spacing * np.arange(int(steps) + 1)
        on = np.clip((times + spacing - t_on) / spacing, 0.0, 1.0)
        metadata = {"dt": self.dt, "stride": int(stride), "state": ["temperature"], "inputs": list(INPUTS),
                    "time_varying_inputs": ["source_on"], "scheme": self.scheme, "t_on": float(t_on),
                    "length_scale": self.length_scale}
        constant = {name: values for name, values in self.mesh.point_data.items() if name not in EVOLVING}
        return Trajectory(Mesh(self.mesh.points, self.mesh.cells, {**constant, **self.inputs}), times,
                          {"temperature": temperature, "source_on": np.repeat(on[:, None], self.mesh.n_points, axis=1)},
                          metadata=metadata)


def simulate_heat(mesh: Mesh, initial: np.ndarray, dt: float, steps: int, inputs: dict | None = None,
                  stride: int = 1, t_on: float = 0.0, **options) -> Trajectory:
    """Run the FEM forward: ``HeatSimulation(mesh, dt, inputs, **options).run(initial, steps, stride, t_on)``.

    ``dt`` is the solver step in units of ``d²/α`` (d: the inradius unless ``length_scale`` is
    given), ``steps`` the number of frames after ``initial``, ``stride`` solver steps per frame.
    """
    return HeatSimulation(mesh, dt, inputs, **options).run(initial, steps, stride, t_on)
