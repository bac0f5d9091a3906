"""A scalar potential φ(ξ) of coordinates, its gradient and Hessian by autograd (mesh movers)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .mlp import MLP


class ConditionedPotential(nn.Module):
    r"""Coordinate trunk of a mesh mover: :math:`\phi(\xi; c) = \mathrm{MLP}([\gamma(\xi), c])`.

    :math:`\gamma(\xi)` are Fourier features ``sin, cos(2^k π ξ)``, ``k < frequencies``, of
    coordinates in [-1, 1]; :math:`c` is a per-point conditioning code (a graph branch's node
    state), held fixed when φ is differentiated in ξ. GELU activations keep φ twice
    differentiable. The last layer starts at zero, so an untrained mover is the identity.

    Shapes: ``xi (N, dim)``, ``code (N, code_width)`` -> ``(N,)``.
    """

    def __init__(self, dim: int, code_width: int, width: int = 64, layers: int = 3, frequencies: int = 2):
        super().__init__()
        self.register_buffer("scales", math.pi * 2.0 ** torch.arange(frequencies, dtype=torch.get_default_dtype()))
        self.mlp = MLP([dim * (1 + 2 * frequencies) + code_width] + [width] * layers + [1])
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, xi: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        angles = (xi[:, :, None] * self.scales).flatten(1)                 # (N, dim * frequencies)
        return self.mlp(torch.cat([xi, angles.sin(), angles.cos(), code], dim=1)).squeeze(1)


def gradient_and_hessian(phi: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``∇φ (N, d)`` and ``H(φ) (N, d, d)`` at each point, when ``phi[i]`` depends on ``xi[i]``
    only (``xi`` must require grad); both stay differentiable for training."""
    gradient = torch.autograd.grad(phi.sum(), xi, create_graph=True)[0]
    rows = [torch.autograd.grad(gradient[:, k].sum(), xi, create_graph=True)[0] for k in range(xi.shape[1])]
    return gradient, torch.stack(rows, dim=1)
