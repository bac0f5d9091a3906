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
(:mod:`meshop.geometry.moving`); a relaxation step that would tangle the mesh is halved (and
dτ with it), and after ten halvings the relaxation ends at the last valid iterate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import splu
from skfem import Basis, BilinearForm

from ..data.fem import laplace_form, mass_form, p1_basis
from ..errors import MeshError
from .monitor import BETA, P1Locator, monitor
from .moving import BoundarySlider, MeshQuality, is_valid, safe_move, signed_areas


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
            by less than this fraction in a step.
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
    dtau = pseudo_step / float(m_nodes.max())
    phi, previous, best, residuals = np.zeros(len(points)), np.zeros(len(points)), points.copy(), []
    for _ in range(max_iterations):
        gradient = slider.tangential(recovery.gradient(phi))            # ∇φ·n = 0, corners fixed
        moved = slider.project(points + gradient)
        if not is_valid(moved, triangles, points):       # back off: halve the last step and dτ
            if dtau < 1e-3 * pseudo_step / float(m_nodes.max()):
                break
            phi, dtau = 0.5 * (previous + phi), 0.5 * dtau
            continue
        best = moved
        hessian = recovery.hessian(gradient)
        det = (1 + hessian[:, 0, 0]) * (1 + hessian[:, 1, 1]) - hessian[:, 0, 1] ** 2
        density = locator.interpolate(m_nodes, moved) * det
        theta = float((recovery.mass @ density).sum()) / area           # ∫ m det dξ / |Ω|
        residual = density - theta
        residuals.append(float(np.sqrt(residual @ (recovery.mass @ residual) / area)) / theta)
        if len(residuals) > 1 and abs(residuals[-2] - residuals[-1]) < rtol * residuals[-1]:
            break
        previous, phi = phi, phi + dtau * step_lu.solve(recovery.mass @ residual)
    moved, quality = safe_move(points, triangles, best, slider)
    return MoveResult(moved, quality, len(residuals), residuals, time.perf_counter() - start)


def equidistribution(points: np.ndarray, triangles: np.ndarray, m_nodes: np.ndarray,
                     moved: np.ndarray | None = None) -> float:
    """Relative standard deviation of ``m × area`` over cells (0 = perfectly equidistributed);
    m is the nodal monitor on the original ``points``, read at the cells' centroids of ``moved``."""
    moved = points if moved is None else moved
    centroids = moved[triangles].mean(axis=1)
    values = P1Locator(points, triangles).interpolate(m_nodes, centroids) * np.abs(signed_areas(moved, triangles))
    return float(values.std() / values.mean())
