"""A potential φ = -Δ⁻¹ ρ approximated by Gaussian (heat-kernel) smoothing at a few scales.

Since ``-Δ⁻¹ = ∫₀^∞ exp(tΔ) dt`` and ``exp(tΔ)`` smooths with a Gaussian of variance ``σ² = 2t``,
a geometric ladder of widths σ_s gives ``-Δ⁻¹ ρ ≈ Σ_s (σ_s² / 2) G_σs * ρ`` (free space). Here the
sources ``ρ_s`` are per-node and per-scale (a network's output), so the potential is local where
the sources are, and its gradient and Hessian are closed forms.

Cost: the sources of scale s are first spread onto a regular grid of spacing ``SPACING × σ_s``
(bilinear cloud-in-cell weights, which keep each source's total and centre), then every node
sums the Gaussians of the grid nodes within ``CUTOFF × σ_s``: a fixed number of terms per node
(~250 per scale), so the cost is linear in the nodes however fine the mesh. Written by hand: no
library offers a Gaussian sum with its gradient and Hessian from a grid to scattered points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: widths σ_s of the Gaussians, in normalized coordinates ([-1, 1]²)
WIDTHS = (0.1, 0.2, 0.4)
#: grid nodes farther than this many σ_s from a node are left out of its sum
CUTOFF = 3.0
#: grid spacing of scale s, in units of σ_s
SPACING = 1.0 / 3.0


@dataclass
class ScaleGrid:
    """Where the sources of one scale go and which grid nodes each node reads.

    Attributes:
        corners ``(N, 4)`` int64: grid nodes of each node's grid cell; shares ``(N, 4)``: its
        bilinear weights (sum 1); nodes ``(G, 2)``: grid node positions; pairs ``(2, P)`` int64:
        (node i, grid node g) closer than ``CUTOFF × σ``.
    """

    corners: torch.Tensor
    shares: torch.Tensor
    nodes: torch.Tensor
    pairs: torch.Tensor


def potential_grids(pos: np.ndarray, widths=WIDTHS) -> list[ScaleGrid]:
    """One :class:`ScaleGrid` per width for nodes ``pos (N, 2)`` (numpy; scipy cKDTree)."""
    from scipy.spatial import cKDTree

    grids = []
    for sigma in widths:
        step = SPACING * sigma
        lower = pos.min(0)
        shape = np.floor((pos.max(0) - lower) / step).astype(int) + 2               # grid nodes per axis
        scaled = (pos - lower) / step
        cell = np.minimum(np.floor(scaled).astype(int), shape - 2)
        fx, fy = (scaled - cell).T
        cx, cy = cell.T
        corners = np.stack([cx * shape[1] + cy, (cx + 1) * shape[1] + cy,
                            cx * shape[1] + cy + 1, (cx + 1) * shape[1] + cy + 1], axis=1)
        shares = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
        used, corners = np.unique(corners, return_inverse=True)                     # only fed grid nodes
        nodes = lower + step * np.column_stack([used // shape[1], used % shape[1]])
        near = cKDTree(pos).sparse_distance_matrix(cKDTree(nodes), CUTOFF * sigma, output_type="ndarray")
        grids.append(ScaleGrid(torch.as_tensor(corners.reshape(-1, 4), dtype=torch.int64),
                               torch.as_tensor(shares, dtype=torch.float32),
                               torch.as_tensor(nodes, dtype=torch.float32),
                               torch.as_tensor(np.stack([near["i"], near["j"]]), dtype=torch.int64)))
    return grids


def heat_potential(pos: torch.Tensor, grids: list[ScaleGrid], sources: torch.Tensor, weights: torch.Tensor,
                   area: float, widths=WIDTHS, hessian: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    r"""``(φ (N,), ∇φ (N, 2), H(φ) (N, 2, 2))`` at the nodes, with

    .. math:: \phi(\xi) = \sum_s \frac{\sigma_s^2}{2} \sum_j |\Omega| w_j \rho_{js}
              \frac{e^{-|\xi - \xi_j|^2 / 2\sigma_s^2}}{2\pi\sigma_s^2}

    (the sources spread onto each scale's grid first, see the module docstring).

    Args:
        pos: ``(N, 2)`` node positions; grids: :func:`potential_grids` of ``pos``;
        sources: ``(N, S)`` ρ per node and scale; weights: ``(N,)`` quadrature weights summing to 1;
        area: |Ω| in the units of ``pos``; hessian: False leaves H out (None), to move faster.
    """
    n, dtype = len(pos), pos.dtype
    strength = (area / (4 * math.pi)) * weights[:, None] * sources      # (N, S): σ²/2 · 1/(2πσ²)
    phi, gradient = torch.zeros(n, dtype=dtype), torch.zeros(n, 2, dtype=dtype)
    second = torch.zeros(n, 3, dtype=dtype) if hessian else None        # xx, xy, yy
    for s, (sigma, grid) in enumerate(zip(widths, grids)):
        charge = torch.zeros(len(grid.nodes), dtype=dtype).index_add_(
            0, grid.corners.flatten(), (grid.shares * strength[:, s:s + 1]).flatten())
        i, g = grid.pairs
        d = pos.index_select(0, i) - grid.nodes.index_select(0, g)      # (P, 2)
        value = torch.exp(-(d ** 2).sum(1) / (2 * sigma ** 2)) * charge.index_select(0, g)
        phi.index_add_(0, i, value)
        gradient.index_add_(0, i, -d * (value / sigma ** 2)[:, None])
        if hessian:
            curvature = value / sigma ** 4
            second.index_add_(0, i, torch.stack([d[:, 0] ** 2 * curvature - value / sigma ** 2,
                                                 d[:, 0] * d[:, 1] * curvature,
                                                 d[:, 1] ** 2 * curvature - value / sigma ** 2], dim=1))
    if not hessian:
        return phi, gradient, None
    xx, xy, yy = second.unbind(1)
    return phi, gradient, torch.stack([torch.stack([xx, xy], 1), torch.stack([xy, yy], 1)], 1)
