"""Kernel integral from one node set to another: restriction and prolongation in MGNO."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing


class KernelTransfer(MessagePassing):
    r"""Moves a hidden state between two node sets (e.g. a fine and a coarse level) by a kernel
    integral over bipartite edges :math:`j \to i`, :math:`j` in the source set, :math:`i` in the
    target set:

    .. math::
        v'(y_i) = v(y_i) + \sigma\Big(W v(y_i) + \frac{1}{|N(i)|}
                  \sum_{j \in N(i)} \kappa_\phi(h_{ij}) \odot V u(x_j)\Big)

    :math:`u` is the source state, :math:`v` the target's own state, :math:`h_{ij}` the edge
    embedding (:class:`~meshop.nn.EdgeEmbedding`) and :math:`\kappa_\phi` a channel-wise kernel, as
    in :class:`~meshop.nn.KernelIntegral`, of which this is the two-set form. A target node
    without incoming edges keeps ``v + σ(W v)``.

    Shapes: ``source (N_s, width)``, ``target (N_t, width)``, ``edge_index (2, E)`` (row 0 indexes
    the source set, row 1 the target set), ``edge_embedding (E, hidden)`` -> ``(N_t, width)``.
    """

    def __init__(self, width: int, hidden: int):
        super().__init__(aggr="mean")
        self.kernel = nn.Linear(hidden, width)
        self.value = nn.Linear(width, width, bias=False)
        self.self_weight = nn.Linear(width, width)

    def forward(self, source: torch.Tensor, target: torch.Tensor, edge_index: torch.Tensor,
                edge_embedding: torch.Tensor) -> torch.Tensor:
        size = (source.shape[0], target.shape[0])
        integral = self.propagate(edge_index, u=self.value(source), edge_embedding=edge_embedding,
                                  size=size)                            # (N_t, width)
        return self.update_node(target, integral)

    def message(self, u_j: torch.Tensor, edge_embedding: torch.Tensor) -> torch.Tensor:
        return self.kernel(edge_embedding) * u_j                        # (E, width)

    def update_node(self, v: torch.Tensor, integral: torch.Tensor) -> torch.Tensor:
        return v + nn.functional.gelu(self.self_weight(v) + integral)
