"""``burgers2d``: viscous vector Burgers ∂u/∂t + (u·∇)u = ν Δu on random domains with holes or the unit square.

P1 finite elements (scikit-fem) with semi-implicit Euler steps: the advecting velocity is lagged
(the convection matrix is assembled with u^n), diffusion is implicit,

    (M / dt + C(u^n) + ν K) u^{n+1} = M u^n / dt,

one sparse LU for both components per step, Dirichlet values on every boundary node. First order
in time, second order in space (L2); ``tests/test_burgers.py`` measures both orders on exact
Cole–Hopf solutions (:func:`cole_hopf`). The scheme adds no stabilization, so fronts narrower
than the mesh (ν ≲ h |Δu|) show Galerkin wiggles; those are the sharp fronts moving meshes are for.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.sparse.linalg import splu
from skfem import BilinearForm
from skfem.helpers import dot, grad

from ...errors import MeshError
from ...mesh import Mesh
from ...geometry.coarse import with_coarse
from ...trajectory import Trajectory
from ..fem import laplace_form, mass_form, p1_basis
from ..grf import grf_on_points
from .darcy2d import square_mesh
from .poisson2d import boundary_loops

DOMAINS = ("square", "random")
BOUNDARIES = ("zero", "initial")
FIELDS = {"velocity": ("target", "u (T, N, 2): the Burgers velocity at every frame (state)")}
#: the boundary keeps its initial velocity (both ``boundary`` options): rollouts hold it there
HELD_BOUNDARY = {"state": "velocity", "mask": None, "value": None}
DEFAULTS = {"resolution": 2000, "domain": "random", "nu": 0.01, "dt": 0.01, "frames": 21,
            "stride": 5, "boundary": "zero", "refine": 0, "store": "mesh"}
#: where a refined solve is stored: at the mesh's nodes, or at every node of the solve
STORES = ("mesh", "fine")
#: most refinements of the solve (each splits every triangle in 4)
MAX_REFINE = 3
#: peak |u| of the initial condition
AMPLITUDE = 1.0


@BilinearForm
def _convection(u, v, w):
    return dot(w["wind"], grad(u)) * v


class BurgersStepper:
    """Semi-implicit Euler steps of vector Burgers on one P1 triangle mesh.

    Args:
        points, triangles: the mesh, ``(N, 2)`` and ``(M, 3)``.
        nu: viscosity ν; dt: time step.
        dirichlet: ``(N,)`` bool, nodes whose value is imposed (usually the boundary).
    """

    def __init__(self, points: np.ndarray, triangles: np.ndarray, nu: float, dt: float,
                 dirichlet: np.ndarray):
        if not (nu > 0 and dt > 0 and np.isfinite(nu) and np.isfinite(dt)):
            raise MeshError(f"burgers2d needs nu > 0 and dt > 0, got nu = {nu}, dt = {dt}.")
        self.basis = p1_basis(points, triangles)
        self.nu, self.dt = float(nu), float(dt)
        mass, stiffness = mass_form.assemble(self.basis), laplace_form.assemble(self.basis)
        self.fixed = np.asarray(dirichlet, dtype=bool)
        self.free = ~self.fixed
        self.mass_over_dt = (mass / dt).tocsr()
        self.constant = (self.mass_over_dt + nu * stiffness).tocsr()

    def step(self, u: np.ndarray, boundary_value: np.ndarray | None = None) -> np.ndarray:
        """``u^{n+1} (N, 2)`` from ``u^n (N, 2)``; ``boundary_value (N, 2)`` gives u^{n+1} on the
        Dirichlet nodes (default: kept from u^n)."""
        wind = np.stack([self.basis.interpolate(u[:, c]).value for c in range(2)])  # (2, M, q)
        matrix = (self.constant + _convection.assemble(self.basis, wind=wind)).tocsr()
        new = u.copy() if boundary_value is None else np.array(boundary_value, dtype=np.float64)
        rhs = self.mass_over_dt @ u - matrix[:, self.fixed] @ new[self.fixed]
        new[self.free] = splu(matrix[self.free][:, self.free].tocsc()).solve(rhs[self.free])
        return new


def cole_hopf(velocities: np.ndarray, nu: float, centre=(0.0, 0.0), weights=None
              ) -> Callable[[np.ndarray, float], np.ndarray]:
    """An exact Burgers solution by the Cole–Hopf transform, ``u = -2ν ∇ log θ`` with the heat
    solution ``θ = Σ_k c_k exp(-β_k·(x - x0)/(2ν) + |β_k|² t/(4ν))``.

    ``u(x, t)`` is then the softmax-weighted mean of the constant states ``β_k``: fronts of width
    ~ν/|β_i - β_j| between them, moving with the mean of the two states they separate (normal
    part); states of equal |β| give a steady solution.

    Args:
        velocities: ``(K, 2)`` the states β_k; nu: ν; centre: x0; weights: c_k > 0 (default 1).

    Returns:
        ``u(points (N, 2), t) -> (N, 2)``.
    """
    beta = np.asarray(velocities, dtype=np.float64)
    log_c = np.log(np.ones(len(beta)) if weights is None else np.asarray(weights, dtype=np.float64))

    def velocity(points: np.ndarray, t: float) -> np.ndarray:
        z = log_c + (-(points - centre) @ beta.T / 2.0 + (beta ** 2).sum(axis=1) * t / 4.0) / nu
        z -= z.max(axis=1, keepdims=True)                               # log-sum-exp, no overflow
        softmax = np.exp(z)
        return (softmax / softmax.sum(axis=1, keepdims=True)) @ beta
    return velocity


def random_velocity(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 2)`` initial velocity: two Gaussian random fields N(0, (-Δ+9I)^-2), each scaled to
    peak |u| = :data:`AMPLITUDE`."""
    u = np.stack([grf_on_points(points, rng, grid=129) for _ in range(2)], axis=1)
    return AMPLITUDE * u / max(float(np.abs(u).max()), 1e-12)


def refined(mesh: Mesh, times: int) -> Mesh:
    """``mesh`` with every triangle split in 4, ``times`` times (scikit-fem), its own nodes first
    (tested); ``mesh`` itself for 0."""
    if times == 0:
        return mesh
    from skfem import MeshTri

    fine = MeshTri(mesh.points[:, :2].T, mesh.cells["triangle"].T).refined(times)
    return Mesh(fine.p.T, {"triangle": fine.t.T})


def random_mesh(rng: np.random.Generator, resolution: int, domain: str) -> Mesh:
    """The mesh of a trajectory: the unit square's nearest n² nodes, or a random poisson2d domain
    with holes (gmsh; draws from ``rng``)."""
    if domain == "square":
        points, triangles = square_mesh(max(3, int(round(np.sqrt(resolution)))))
    else:
        from ..shapes import random_domain_2d     # gmsh only when a random domain is asked for
        points, triangles = random_domain_2d(rng, target_nodes=resolution)
    return Mesh(points, {"triangle": triangles})


def solve_frames(rng: np.random.Generator, mesh: Mesh, nu: float, dt: float, frames: int, stride: int,
                 boundary: str) -> list[np.ndarray]:
    """``frames`` velocities ``(N, 2)`` on ``mesh``, ``stride`` solver steps apart, from a random
    initial velocity (drawn from ``rng``; 0 on the boundary with ``boundary="zero"``)."""
    on_boundary = mesh.boundary_mask
    u = random_velocity(mesh.points, rng)
    if boundary == "zero":
        u[on_boundary] = 0.0
    stepper = BurgersStepper(mesh.points, mesh.cells["triangle"], nu, dt, on_boundary)
    history = [u]
    for _ in range(frames - 1):
        for _ in range(stride):
            u = stepper.step(u)
        history.append(u)
    return history


def burgers2d_sample(rng: np.random.Generator, resolution: int = 2000, domain: str = "random",
                     nu: float = 0.01, dt: float = 0.01, frames: int = 21, stride: int = 5,
                     boundary: str = "zero", refine: int = 0, store: str = "mesh") -> tuple[Trajectory, dict]:
    """One burgers2d trajectory.

    Args:
        rng: random generator; draws the domain (random), then u0.
        resolution: target number of mesh nodes (square: the nearest n² nodes).
        domain: "random" (the poisson2d domains with 0-3 holes) or "square" ([0, 1]²).
        nu, dt: viscosity and solver time step; frames: frames stored (t = 0 first);
        stride: solver steps per frame.
        boundary: "zero" (u = 0 on the boundary, also in u0) or "initial" (u = u0 there).
        refine: solve on the mesh refined this many times (every triangle split in 4 each time;
            scikit-fem keeps the mesh's own nodes first) and store the solution at the mesh's
            nodes: a reference that resolves fronts the stored mesh cannot, as in the MM-PDE
            paper, whose data are downsampled from a finer solve. 0: solve on the mesh itself.
        store: with ``refine``, ``"mesh"`` (the default above) or ``"fine"``: the trajectory on
            every node of the refined solve, carrying the mesh as its coarse mesh (field data
            ``coarse_triangles``, :mod:`meshop.geometry.coarse`): the MM-PDE protocol, solvers
            that run on the coarse mesh and are scored on the fine one.

    Returns:
        A :class:`~meshop.Trajectory` with field ``velocity (frames, N, 2)`` and metadata
        ``dt, stride, state, nu, domain, boundary`` (and ``refine, solved_nodes`` when refined,
        ``coarse_nodes`` when stored fine); and ``{"n_holes", "max_speed"}``.
    """
    if domain not in DOMAINS or boundary not in BOUNDARIES:
        raise MeshError(f"burgers2d: domain must be one of {DOMAINS} and boundary one of "
                        f"{BOUNDARIES}, got {domain!r}, {boundary!r}.")
    if frames < 2 or stride < 1:
        raise MeshError(f"burgers2d needs frames >= 2 and stride >= 1, got {frames}, {stride}.")
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or not 0 <= refine <= MAX_REFINE:
        raise MeshError(f"burgers2d: refine must be an integer from 0 to {MAX_REFINE}, got {refine!r}.")
    if store not in STORES or (store == "fine" and not refine):
        raise MeshError(f"burgers2d: store must be one of {STORES} ('fine' with refine >= 1), got {store!r} "
                        f"with refine = {refine!r}.")
    mesh = random_mesh(rng, resolution, domain)
    solve = refined(mesh, int(refine))
    n = solve.n_points if store == "fine" else mesh.n_points
    history = [u[:n] for u in solve_frames(rng, solve, nu, dt, frames, stride, boundary)]
    metadata = {"dt": dt, "stride": stride, "state": ["velocity"], "nu": nu, "domain": domain, "boundary": boundary}
    if refine:
        metadata.update(refine=int(refine), solved_nodes=solve.n_points)
    if store == "fine":
        metadata.update(coarse_nodes=mesh.n_points)
        mesh = with_coarse(solve, mesh.cells["triangle"])
    traj = Trajectory(mesh, times=np.arange(frames) * dt * stride, fields={"velocity": np.stack(history)},
                      metadata=metadata)
    return traj, {"n_holes": boundary_loops(mesh) - 1,
                  "max_speed": float(np.linalg.norm(traj.fields["velocity"], axis=2).max())}
