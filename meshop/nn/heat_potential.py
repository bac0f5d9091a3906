"""A potential φ = -Δ⁻¹ ρ approximated by Gaussian (heat-kernel) smoothing at a few scales.

Since ``-Δ⁻¹ = ∫₀^∞ exp(tΔ) dt`` and ``exp(tΔ)`` smooths with a Gaussian of variance ``σ² = 2t``,
a geometric ladder of widths σ_s gives ``-Δ⁻¹ ρ ≈ Σ_s (σ_s² / 2) G_σs * ρ`` (free space). Here the
sources ``ρ_s`` are per-node and per-scale (a network's output), so the potential is local where
the sources are, and its gradient and Hessian are exact closed forms (no autograd through the
sum, written by hand: no library offers a Gaussian sum with its derivatives over a sparse pair list).
"""

from __future__ import annotations

import math

import torch

#: widths σ_s of the Gaussians, in normalized coordinates ([-1, 1]²)
WIDTHS = (0.1, 0.2, 0.4)
#: pairs farther apart than this many of the widest σ are left out
CUTOFF = 2.5


def heat_potential(pos: torch.Tensor, pairs: torch.Tensor, sources: torch.Tensor, weights: torch.Tensor,
                   area: float, widths=WIDTHS, hessian: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    r"""``(φ (N,), ∇φ (N, 2), H(φ) (N, 2, 2))`` at the nodes, with

    .. math:: \phi(\xi_i) = \sum_s \frac{\sigma_s^2}{2} \sum_j |\Omega| w_j \rho_{js}
              \frac{e^{-|\xi_i - \xi_j|^2 / 2\sigma_s^2}}{2\pi\sigma_s^2}

    Args:
        pos: ``(N, 2)`` node positions; pairs: ``(2, P)`` int64 (target i, source j), every
            ordered pair closer than ``CUTOFF * max(widths)``, self pairs included;
        sources: ``(N, S)`` ρ per node and scale; weights: ``(N,)`` quadrature weights summing to 1;
        area: |Ω| in the units of ``pos``; hessian: False leaves H out (None), to move faster.
    """
    i, j = pairs
    d = pos.index_select(0, i) - pos.index_select(0, j)                  # (P, 2)
    r2 = (d ** 2).sum(1, keepdim=True)                                   # (P, 1)
    sigma2 = torch.tensor(widths, dtype=pos.dtype) ** 2                  # (S,)
    strength = (area / (4 * math.pi)) * weights[:, None] * sources      # (N, S): σ²/2 · 1/(2πσ²)
    weighted = torch.exp(-r2 / (2 * sigma2)) * strength.index_select(0, j)   # (P, S)
    n = len(pos)
    phi = torch.zeros(n, dtype=pos.dtype).index_add_(0, i, weighted.sum(1))
    by_scale = weighted / sigma2                                         # (P, S)
    first = by_scale.sum(1, keepdim=True)                                # (P, 1)
    gradient = torch.zeros(n, 2, dtype=pos.dtype).index_add_(0, i, -d * first)
    if not hessian:
        return phi, gradient, None
    second = (by_scale / sigma2).sum(1)                                  # (P,)
    terms = torch.stack([d[:, 0] ** 2 * second - first[:, 0], d[:, 0] * d[:, 1] * second,
                         d[:, 1] ** 2 * second - first[:, 0]], dim=1)    # (P, 3): xx, xy, yy
    xx, xy, yy = torch.zeros(n, 3, dtype=pos.dtype).index_add_(0, i, terms).unbind(1)
    return phi, gradient, torch.stack([torch.stack([xx, xy], 1), torch.stack([xy, yy], 1)], 1)


def potential_pairs(pos, widths=WIDTHS):
    """``(2, P)`` int64 ordered pairs (self pairs included) closer than ``CUTOFF * max(widths)``
    (scipy cKDTree), for :func:`heat_potential`. ``pos`` is a numpy ``(N, 2)`` array."""
    import numpy as np
    from scipy.spatial import cKDTree

    pairs = cKDTree(pos).query_pairs(CUTOFF * max(widths), output_type="ndarray")
    selves = np.repeat(np.arange(len(pos))[:, None], 2, axis=1)
    both = np.concatenate([pairs, pairs[:, ::-1], selves]).T
    return torch.as_tensor(np.ascontiguousarray(both), dtype=torch.int64)
