"""A potential φ = -Δ⁻¹ ρ approximated by Gaussian (heat-kernel) smoothing at a few scales.

Since ``-Δ⁻¹ = ∫₀^∞ exp(tΔ) dt`` and ``exp(tΔ)`` smooths with a Gaussian of variance ``σ² = 2t``,
a geometric ladder of widths σ_s gives ``-Δ⁻¹ ρ ≈ Σ_s (σ_s² / 2) G_σs * ρ`` (free space). Here the
sources ``ρ_s`` are per-node and per-scale (a network's output), so the potential is local where
the sources are, and its gradient and Hessian are closed forms.

Cost: the sources of scale s are first spread onto a regular grid of spacing ``SPACING × σ_s``
(bilinear cloud-in-cell weights, which keep each source's total and centre), then every node
sums the Gaussians of the grid nodes within ``CUTOFF × σ_s``: a fixed number of terms per node,
so the cost is linear in the nodes however fine the mesh. Those grid nodes lie in a square
window of k × k grid nodes around the node's grid cell (k = 2 ⌊CUTOFF / SPACING⌋ + 2 = 20), and
on a grid the Gaussian factors, ``exp(-|ξ - X|² / 2σ²) = exp(-Δx² / 2σ²) exp(-Δy² / 2σ²)``: per
node, the k column factors times the window of grid charges (masked to the disc of the cutoff)
is a small matrix product (batched over the nodes), then dotted with the k row factors. Everything
that depends on positions only (factors, masks, windows) is computed once per mesh, at its first
use by this path (:class:`PotentialGrids`). Where no gradient is taken (inference: the DMM's
move) and meshop's compiled library builds, the same sums run in C instead
(``compiled_potential.c``: each window read in place from the grid, ~10x faster on 800 nodes),
equal to this path to float64 rounding. Written by hand: no library offers a Gaussian sum with
its gradient and Hessian from a grid to scattered points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import compiled

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
        size: grid nodes (padded by ``R = ⌊CUTOFF / SPACING⌋`` nodes on every side, so that the
        window of ``k = 2R + 2`` grid nodes per axis around every node's grid cell fits), plus
        one that stays empty; corners ``(N, 4)`` int64: flat ids of the grid nodes of each
        node's grid cell; shares ``(N, 4)``: their bilinear weights (sum 1); window ``(N, k, k)``
        int32: flat ids of the grid nodes of each node's window, the empty one where farther than
        ``CUTOFF × σ``; dx, dy ``(N, k)``: ξ - X of the window's columns and rows; ex, ey
        ``(N, k)``: their Gaussian factors ``exp(-Δ² / 2σ²)``. Float tensors are float64.
    """

    size: int
    corners: torch.Tensor
    shares: torch.Tensor
    window: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    ex: torch.Tensor
    ey: torch.Tensor


class PotentialGrids:
    """The nodes ``pos (N, 2)`` (float64 numpy) the potential is evaluated at, and one
    :class:`ScaleGrid` per width, built at the first look (the compiled path needs none of them):
    a sequence of :class:`ScaleGrid`."""

    def __init__(self, pos: np.ndarray, widths=WIDTHS):
        self.pos, self.widths = np.ascontiguousarray(pos, dtype=np.float64), tuple(widths)
        self._scales: list[ScaleGrid] | None = None

    def _built(self) -> list[ScaleGrid]:
        if self._scales is None:
            self._scales = _scale_grids(self.pos, self.widths)
        return self._scales

    def __len__(self) -> int:
        return len(self.widths)

    def __getitem__(self, s: int) -> ScaleGrid:
        return self._built()[s]

    def __iter__(self):
        return iter(self._built())


def potential_grids(pos: np.ndarray, widths=WIDTHS) -> PotentialGrids:
    """The :class:`PotentialGrids` of nodes ``pos (N, 2)`` (numpy)."""
    return PotentialGrids(pos, widths)


def _scale_grids(pos: np.ndarray, widths) -> list[ScaleGrid]:
    """One :class:`ScaleGrid` per width for nodes ``pos (N, 2)`` (float64 numpy)."""
    reach = _reach()
    offsets = np.arange(-reach, reach + 2)                              # window: cell corner - R .. + R + 1
    grids = []
    for sigma in widths:
        step = SPACING * sigma
        lower = pos.min(0)
        shape = np.floor((pos.max(0) - lower) / step).astype(int) + 2               # grid nodes per axis
        scaled = (pos - lower) / step
        cell = np.minimum(np.floor(scaled).astype(int), shape - 2)
        fx, fy = (scaled - cell).T
        rows = shape[1] + 2 * reach                                     # padded grid: (shape + 2R) nodes
        cx, cy = (cell + reach).T
        corners = np.stack([cx * rows + cy, (cx + 1) * rows + cy, cx * rows + cy + 1, (cx + 1) * rows + cy + 1], axis=1)
        shares = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
        dx = pos[:, :1] - (lower[0] + step * (cell[:, :1] + offsets))   # (N, k)
        dy = pos[:, 1:] - (lower[1] + step * (cell[:, 1:] + offsets))
        size = int((shape[0] + 2 * reach) * rows)
        window = (cell[:, 0] * rows + cell[:, 1]).astype(np.int32)[:, None, None] \
            + (rows * offsets[:, None] + offsets + reach * (rows + 1)).astype(np.int32)   # (N, k, k)
        window[dy[:, None, :] ** 2 > (CUTOFF * sigma) ** 2 - dx[:, :, None] ** 2] = size    # outside the cutoff
        ex, ey = np.exp(-dx ** 2 / (2 * sigma ** 2)), np.exp(-dy ** 2 / (2 * sigma ** 2))
        grids.append(ScaleGrid(size, *(torch.as_tensor(a) for a in (corners, shares, window, dx, dy, ex, ey))))
    return grids


def heat_potential(pos: torch.Tensor, grids: PotentialGrids, sources: torch.Tensor, weights: torch.Tensor,
                   area: float, hessian: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    r"""``(φ (N,), ∇φ (N, 2), H(φ) (N, 2, 2))`` at the nodes, with

    .. math:: \phi(\xi) = \sum_s \frac{\sigma_s^2}{2} \sum_j |\Omega| w_j \rho_{js}
              \frac{e^{-|\xi - \xi_j|^2 / 2\sigma_s^2}}{2\pi\sigma_s^2}

    (the sources spread onto each scale's grid first, see the module docstring). Summed in
    float64, returned in the dtype of ``pos``.

    Args:
        pos: ``(N, 2)`` node positions; grids: :func:`potential_grids` of ``pos`` (its widths σ_s);
        sources: ``(N, S)`` ρ per node and scale; weights: ``(N,)`` quadrature weights summing to 1;
        area: |Ω| in the units of ``pos``; hessian: False leaves H out (None), to move faster.
    """
    strength = ((area / (4 * math.pi)) * weights[:, None] * sources).to(torch.float64)  # σ²/2 · 1/(2πσ²)
    if not (torch.is_grad_enabled() and strength.requires_grad) and pos.device.type == "cpu" and compiled.available():
        sums = compiled.heat_potential(grids.pos, grids.widths, strength, SPACING, CUTOFF, _reach(), hessian)
        return _split(sums.to(pos.dtype), hessian)
    phi, gradient, second = 0.0, 0.0, 0.0                               # second: xx, xy, yy
    for s, (sigma, grid) in enumerate(zip(grids.widths, grids)):
        charge = strength.new_zeros(grid.size + 1).index_add_(
            0, grid.corners.flatten(), (grid.shares * strength[:, s:s + 1]).flatten())
        near = charge.index_select(0, grid.window.flatten()).view(grid.window.shape)  # (N, k, k)
        columns = [grid.ex, grid.ex * grid.dx] + ([grid.ex * (grid.dx ** 2 / sigma ** 2 - 1.0)] if hessian else [])
        by_row = torch.bmm(torch.stack(columns, 1), near).unbind(1)     # (N, k) each: Σ over the columns
        ey_dy = grid.ey * grid.dy
        phi = phi + (by_row[0] * grid.ey).sum(1)
        gradient = gradient - torch.stack([(by_row[1] * grid.ey).sum(1), (by_row[0] * ey_dy).sum(1)], 1) / sigma ** 2
        if hessian:
            second = second + torch.stack([(by_row[2] * grid.ey).sum(1), (by_row[1] * ey_dy).sum(1) / sigma ** 2,
                                           (by_row[0] * grid.ey * (grid.dy ** 2 / sigma ** 2 - 1.0)).sum(1)], 1) / sigma ** 2
    sums = torch.cat([phi[:, None], gradient] + ([second] if hessian else []), 1)
    return _split(sums.to(pos.dtype), hessian)


def _reach() -> int:
    """R: grid nodes within the cutoff along an axis (windows are 2R + 2 grid nodes wide)."""
    return int(math.floor(CUTOFF / SPACING + 1e-9))


def _split(sums: torch.Tensor, hessian: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(φ, ∇φ, H or None)`` from the columns φ, ∂x, ∂y[, xx, xy, yy] of ``sums (N, 3 or 6)``."""
    if not hessian:
        return sums[:, 0], sums[:, 1:3], None
    xx, xy, yy = sums[:, 3:6].unbind(1)
    return sums[:, 0], sums[:, 1:3], torch.stack([torch.stack([xx, xy], 1), torch.stack([xy, yy], 1)], 1)
