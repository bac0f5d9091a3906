"""The classical Monge–Ampère mesh mover on scikit-fem: the reference the DMM is measured against.

The nodes move from ξ to x = ξ + ∇φ(ξ) where the potential φ solves the Monge–Ampère equation
``m(x) det(I + H(φ)) = θ`` with ``θ = ∫ m(x) det(I + H) dξ / |Ω|`` (the area-weighted mean of m
over the moved mesh), which equidistributes ``m × cell area``. As in the parabolic relaxation
scheme of Firedrake's `movement` (``MongeAmpereMover_Relaxation``, McRae, Cotter & Budd 2018),
φ is P1, its gradient and Hessian are recovered by L2 projection (the gradient's normal part
removed on the boundary, zero at corners), and it relaxes in pseudo-time

    -Δ ∂φ/∂τ = m(x) det(I + H(φ)) - θ,      ∇φ·n = 0 on the boundary,

one sparse solve per step with a matrix factorized once (written here on scikit-fem; no library
offers it outside Firedrake). Boundary nodes slide and every returned mesh is valid
(:mod:`meshop.geometry.moving`).

Domains with holes (measured on ``random_domain_2d`` meshes, 2026-12): the plain scheme stopped
after 5-20 steps with its residual still 0.8-2.1, because a step would invert a cell, and the
inverting cells were, nearly all, cells touching a *re-entrant* corner (interior angle 205-303°:
the vertices of the polygonal holes, dents of the outer polygon), the rest cells with two
sliding nodes on a curved boundary. Two reasons, both from x = ξ + ∇φ being a straight-line
displacement rather than a flow:

* at a re-entrant corner of angle ω > π the Neumann problem's solution behaves like
  ``r^(π/ω) cos(πθ/ω)``, its gradient like ``r^(π/ω - 1)``: unbounded. The relaxation pushes the
  nodes next to the corner around it (3-5 cell sizes after a few steps, the largest displacements
  in the mesh), while the corner is pinned and its sliding neighbours stop short of it: the
  interior neighbours cross the boundary edges at the corner. (On a convex domain, the square,
  every corner is convex and this singularity does not exist.)
* a sliding node is moved along its tangent and projected back onto the (curved) boundary; its
  interior neighbours move along nearly the same tangent without that normal correction, and
  overtake the boundary edge.

The fix, measured: (1) the displacement is scaled by ``min(1, d / (R h))`` where d is the
distance to the nearest re-entrant corner, h the mean cell size and R = :data:`CORNER_CELLS`
(the singular part of the gradient lives within a few cells of the corner; convex corners, and so
the square, are unaffected); (2) the normal correction of the projected boundary nodes is carried
into the interior by its discrete harmonic extension (one more solve per step with a factorized
interior Laplacian), so near-boundary nodes follow the curved boundary; (3) the density uses the
Jacobian of the map actually applied, I + D(x - ξ) with D the L2-recovered derivative (= I +
H(φ) where nothing is limited or corrected), so the relaxation sees what the mesh does; (4) a
step that would tangle the mesh is backtracked for that step only (dτ halved, then grown back by
1.2 per accepted step up to its start), and the relaxation stops when the residual changes, per
unit of the full step, by less than ``rtol``, or when no step down to 1/1000 of dτ is valid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.sparse.linalg import splu
from skfem import Basis, BilinearForm

from ..data.fem import laplace_form, mass_form, p1_basis
from ..errors import MeshError
from .monitor import BETA, P1Locator, monitor
from .moving import BoundarySlider, MeshQuality, corner_cosines, is_valid, safe_move, signed_areas

#: the displacement is limited within this many mean cell sizes of a re-entrant corner
CORNER_CELLS = 6.0


@dataclass
class MoveResult:
    """A moved mesh and how it was obtained.

    Attributes:
        points: ``(N, 2)`` moved node positions (same connectivity).
        quality: :class:`~meshop.geometry.moving.MeshQuality` of the moved mesh.
        iterations: relaxation steps accepted; residuals: relative Monge–Ampère residual per step.
        seconds: wall time of the move.
    """

    points: np.ndarray
    quality: MeshQuality
    iterations: int
    residuals: list[float]
    seconds: float


def _derivative(axis: int) -> BilinearForm:
    return BilinearForm(lambda u, v, _: u.grad[axis] * v)


class _Recovery:
    """L2-projected gradient and Hessian of P1 fields on a fixed mesh (matrices factorized once)."""

    def __init__(self, basis: Basis):
        self.mass = mass_form.assemble(basis).tocsc()
        self._mass_lu = splu(self.mass)
        self._derivatives = [_derivative(k).assemble(basis).tocsr() for k in range(2)]

    def gradient(self, phi: np.ndarray) -> np.ndarray:
        """``(N, 2)`` from ``phi (N,)``, or ``(N, c, 2)`` from ``(N, c)`` (one solve for all)."""
        rhs = np.stack([d @ phi for d in self._derivatives], axis=-1)      # (N, [c,] 2)
        return self._mass_lu.solve(rhs.reshape(len(rhs), -1)).reshape(rhs.shape)

    def hessian(self, gradient: np.ndarray) -> np.ndarray:
        """``(N, 2, 2)``, symmetrized, from a recovered gradient ``(N, 2)``."""
        h = self.gradient(gradient)
        return 0.5 * (h + np.transpose(h, (0, 2, 1)))


def monge_ampere_move(points: np.ndarray, triangles: np.ndarray, u: np.ndarray, beta: float = BETA,
                      pseudo_step: float = 0.1, max_iterations: int = 400, rtol: float = 1e-3,
                      slider: BoundarySlider | None = None) -> MoveResult:
    """Move a triangle mesh so that it equidistributes the monitor of the nodal field ``u``.

    Args:
        points: ``(N, 2)``; triangles: ``(M, 3)``; u: ``(N,)`` or ``(N, c)`` nodal field.
        beta: monitor parameter β (:func:`~meshop.geometry.monitor.monitor`).
        pseudo_step: pseudo-time step dτ, divided by max m (the relaxation's stability limit).
        max_iterations: relaxation steps at most; rtol: stop when the relative residual changes
            by less than this fraction in a step (per full step dτ, when backtracked).
        slider: boundary projection (built from the mesh when None).

    Returns:
        :class:`MoveResult`.
    """
    start = time.perf_counter()
    points, triangles = np.asarray(points, dtype=np.float64), np.asarray(triangles, dtype=np.int64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise MeshError(f"the Monge-Ampere mover needs a 2D triangle mesh; points have shape {points.shape}.")
    basis = p1_basis(points, triangles)
    recovery = _Recovery(basis)
    stiffness = laplace_form.assemble(basis)
    area = float(recovery.mass.sum())
    step_lu = splu((stiffness + 1e-8 * recovery.mass).tocsc())          # Neumann: fix the constant
    slider = slider or BoundarySlider(points, triangles)
    m_nodes, locator = monitor(points, triangles, u, beta), P1Locator(points, triangles)
    limit = _corner_limit(points, triangles, slider)
    inner = ~slider.boundary
    stiffness = stiffness.tocsr()
    inner_lu = splu(stiffness[inner][:, inner].tocsc()) if inner.any() and slider.boundary.any() else None
    coupling = stiffness[inner][:, slider.boundary]

    def evaluate(phi: np.ndarray):
        """The mesh of ``phi`` (None if invalid), its relative residual and the step's right side."""
        displacement = limit[:, None] * slider.tangential(recovery.gradient(phi))   # ∇φ·n = 0, corners fixed
        moved = slider.project(points + displacement)
        if inner_lu is not None:          # the boundary's normal correction, extended harmonically
            correction = moved[slider.boundary] - points[slider.boundary] - displacement[slider.boundary]
            displacement[slider.boundary] += correction
            displacement[inner] -= inner_lu.solve(coupling @ correction)
            moved = points + displacement
        if not is_valid(moved, triangles, points):
            return None
        jacobian = recovery.gradient(displacement)                      # D(x - ξ): H(φ) if unlimited
        det = (1 + jacobian[:, 0, 0]) * (1 + jacobian[:, 1, 1]) - jacobian[:, 0, 1] * jacobian[:, 1, 0]
        density = locator.interpolate(m_nodes, moved) * det
        theta = float((recovery.mass @ density).sum()) / area           # ∫ m det dξ / |Ω|
        residual = recovery.mass @ (density - theta)
        return moved, float(np.sqrt((density - theta) @ residual / area)) / theta, residual

    full = pseudo_step / float(m_nodes.max())
    dtau, phi = full, np.zeros(len(points))
    best, first, rhs = evaluate(phi) or (points.copy(), 0.0, np.zeros(len(points)))
    residuals = [first]
    while len(residuals) < max_iterations and residuals[-1] > 0.0:   # 0: equidistributed already
        direction = step_lu.solve(rhs)
        while (state := evaluate(phi + dtau * direction)) is None and dtau >= 1e-3 * full:
            dtau *= 0.5                                    # backtrack this step until the mesh is valid
        if state is None:
            break
        phi, step = phi + dtau * direction, dtau
        best, value, rhs = state
        residuals.append(value)
        dtau = min(full, 1.2 * dtau)
        if abs(residuals[-2] - residuals[-1]) * full / step < rtol * residuals[-1]:
            break
    moved, quality = safe_move(points, triangles, best, slider)
    return MoveResult(moved, quality, len(residuals), residuals, time.perf_counter() - start)


def _corner_limit(points: np.ndarray, triangles: np.ndarray, slider: BoundarySlider) -> np.ndarray:
    """``(N,)`` factor ``min(1, d / (CORNER_CELLS h))`` on the displacement, d the distance to the
    nearest re-entrant corner (interior angle above 180°), h the mean cell size; 1 without one."""
    angles = np.zeros(len(points))                                      # interior angle at each node
    for k, cos in enumerate(corner_cosines(points, triangles)):
        np.add.at(angles, triangles[:, k], np.arccos(np.clip(cos, -1.0, 1.0)))
    reentrant = slider.corners[angles[slider.corners] > np.pi + 1e-6]
    if not len(reentrant):
        return np.ones(len(points))
    h = float(np.sqrt(2.0 * np.abs(signed_areas(points, triangles)).mean()))
    distance, _ = cKDTree(points[reentrant]).query(points)
    return np.clip(distance / (CORNER_CELLS * h), 0.0, 1.0)


def equidistribution(points: np.ndarray, triangles: np.ndarray, m_nodes: np.ndarray,
                     moved: np.ndarray | None = None) -> float:
    """Relative standard deviation of ``m × area`` over cells (0 = perfectly equidistributed);
    m is the nodal monitor on the original ``points``, read at the cells' centroids of ``moved``."""
    moved = points if moved is None else moved
    centroids = moved[triangles].mean(axis=1)
    values = P1Locator(points, triangles).interpolate(m_nodes, centroids) * np.abs(signed_areas(moved, triangles))
    return float(values.std() / values.mean())
