"""Kernel interpolation: a neural-operator decoder from a sparse node set to any query points."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import MLP

#: regularizes the inverse-distance weights at a query point that coincides with a node
_EPS = 1e-12
#: width (in units of the radius) of the gate that switches the learned correction off at the nodes
_GATE = 0.1


class KernelInterpolation(nn.Module):
    r"""Evaluates a field known on sparse nodes :math:`x_j` (values :math:`u_j`, latent
    :math:`z_j`) at query points :math:`y`, from the ``k`` nearest nodes of each query:

    .. math::
        u(y) = \sum_j w_j(y)\, u_j + g(y)\, W\Big(\frac{1}{k} \sum_j
               \kappa_\phi\big(\tfrac{y - x_j}{r}, \tfrac{|y - x_j|}{r}\big) \odot V z_j\Big)

    :math:`w_j \propto 1 / (|y - x_j|^2 / r^2 + \epsilon)` are normalized inverse-distance
    weights, the second term a kernel integral (as in a graph neural operator) that learns what
    the interpolation misses, and :math:`g(y) = 1 - \exp(-d_{min}^2 / (0.1 r)^2)` switches it off
    at the nodes, so a query at a node returns that node's value (to ~1e-12 relative).

    Shapes: ``queries (M, d)``, ``nodes (S, d)``, ``values (S, c)``, ``latent (S, L)``,
    ``neighbors (M, k)`` node ids -> ``(M, c)``.
    """

    def __init__(self, latent: int, channels: int, dim: int):
        super().__init__()
        self.kernel = MLP([dim + 1, latent, latent])
        self.value = nn.Linear(latent, latent, bias=False)
        self.out = MLP([latent, latent, channels])

    def forward(self, queries, nodes, values, latent, neighbors: torch.Tensor, radius: float):
        offset = (queries[:, None, :] - nodes[neighbors]) / radius                   # (M, k, d)
        distance2 = (offset ** 2).sum(dim=2, keepdim=True)                           # (M, k, 1)
        interpolated = inverse_distance(queries, nodes, values, neighbors, radius)  # (M, c)
        kernel = self.kernel(torch.cat([offset, distance2.sqrt()], dim=2))           # (M, k, L)
        correction = self.out((kernel * self.value(latent)[neighbors]).mean(dim=1))
        gate = 1.0 - torch.exp(-distance2.min(dim=1).values / _GATE ** 2)            # (M, 1)
        return interpolated + gate * correction


def inverse_distance(queries, nodes, values, neighbors: torch.Tensor, radius: float) -> torch.Tensor:
    """``(M, c)`` Shepard interpolation of ``values (S, c)`` at ``queries (M, d)`` from the
    ``neighbors (M, k)`` of each, weights :math:`1 / (|y - x_j|^2 / r^2 + \\epsilon)`."""
    distance2 = ((queries[:, None, :] - nodes[neighbors]) ** 2).sum(dim=2, keepdim=True) / radius ** 2
    weights = 1.0 / (distance2 + _EPS)
    return (weights * values[neighbors]).sum(dim=1) / weights.sum(dim=1)
