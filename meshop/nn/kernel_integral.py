"""Kernel integral layer of the graph neural operator (GNO)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing


class KernelIntegral(MessagePassing):
    r"""One GNO iteration, a Monte-Carlo kernel integral over each node's neighbourhood:

    .. math::
        v'(x_i) = v(x_i) + \sigma\Big(W v(x_i) + \frac{1}{|N(i)|}
                  \sum_{j \in N(i)} \kappa_\phi(h_{ij}) \odot V v(x_j)\Big)

    :math:`h_{ij}` is the edge embedding (:class:`~meshop.nn.EdgeEmbedding`) of relative
    position, distance and the inputs at both ends; :math:`\kappa_\phi` maps it to a channel-wise
    (diagonal) kernel, a low-rank form of the full ``width x width`` kernel matrix that keeps the
    cost O(E * width). Mean aggregation makes the layer a quadrature of the integral, so the same
    weights apply on any discretization.

    Shapes: ``v (N, width)``, ``edge_embedding (E, hidden)``, ``edge_index (2, E)`` -> ``(N, width)``.
    """

    def __init__(self, width: int, hidden: int):
        super().__init__(aggr="mean")
        self.kernel = nn.Linear(hidden, width)
        self.value = nn.Linear(width, width, bias=False)
        self.self_weight = nn.Linear(width, width)

    def forward(self, v: torch.Tensor, edge_index: torch.Tensor, edge_embedding: torch.Tensor) -> torch.Tensor:
        integral = self.propagate(edge_index, v=self.value(v), edge_embedding=edge_embedding)
        return self.update_node(v, integral)

    def message(self, v_j: torch.Tensor, edge_embedding: torch.Tensor) -> torch.Tensor:
        return self.kernel(edge_embedding) * v_j                       # (E, width)

    def update_node(self, v: torch.Tensor, integral: torch.Tensor) -> torch.Tensor:
        return v + nn.functional.gelu(self.self_weight(v) + integral)
