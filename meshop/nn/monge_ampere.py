"""Data-free losses of a Monge–Ampère mesh mover x = ξ + ∇φ(ξ), in torch.

Notation: ``H (N, 2, 2)`` Hessian of φ at the points, ``m (N,)`` monitor at the moved points,
``weights (N,)`` quadrature weights of the points (lumped nodal areas).
"""

from __future__ import annotations

import torch


def p1_at(corners: torch.Tensor, corner_values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(n,)`` P1 interpolation at ``x (n, 2)`` in known triangles ``corners (n, 3, 2)`` with
    nodal values ``corner_values (n, 3)``: linear in x, so differentiable in the moved points."""
    a = corners[:, 0]
    jacobian = torch.stack([corners[:, 1] - a, corners[:, 2] - a], dim=2)          # (n, 2, 2)
    local = torch.linalg.solve(jacobian, (x - a).unsqueeze(2)).squeeze(2)         # (n, 2)
    bary = torch.cat([1.0 - local.sum(1, keepdim=True), local], dim=1)
    return (bary * corner_values).sum(1)


def monge_ampere_residual(m: torch.Tensor, hessian: torch.Tensor, weights: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, θ)``: the weighted mean of ``((m det(I + H) - θ) / θ)²`` with θ the weighted
    mean of ``m det(I + H)`` (= ∫ m dx / |Ω| for a map onto Ω), held fixed in the gradient."""
    det = (1 + hessian[:, 0, 0]) * (1 + hessian[:, 1, 1]) - hessian[:, 0, 1] * hessian[:, 1, 0]
    density = m * det
    theta = ((weights * density).sum() / weights.sum()).detach()
    return (weights * ((density - theta) / theta) ** 2).sum() / weights.sum(), theta


def convexity_penalty(hessian: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``relu(-λ_min(I + sym H))²``: zero where |ξ|²/2 + φ is locally convex
    (the map x = ξ + ∇φ then cannot fold)."""
    a, d = 1 + hessian[:, 0, 0], 1 + hessian[:, 1, 1]
    b = 0.5 * (hessian[:, 0, 1] + hessian[:, 1, 0])
    lowest = 0.5 * (a + d) - torch.sqrt(0.25 * (a - d) ** 2 + b ** 2 + 1e-12)
    return (weights * torch.relu(-lowest) ** 2).sum() / weights.sum()


def cell_equidistribution(m_cells: torch.Tensor, moved_areas: torch.Tensor) -> torch.Tensor:
    """Squared relative spread of ``m × area`` over the moved cells (0 = equidistributed): the
    discrete form of the same condition, on the mesh that is actually produced."""
    density = m_cells * moved_areas
    return ((density - density.mean()) ** 2).mean() / density.mean().detach() ** 2
