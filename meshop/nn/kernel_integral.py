"""Kernel integral layer of the graph neural operator (GNO)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from .edges import Edges, kernel_mean


class KernelIntegral(MessagePassing):
    r"""One GNO iteration, a Monte-Carlo kernel integral over each node's neighbourhood:

    .. math::
        v'(x_i) = v(x_i) + \sigma\Big(W v(x_i) + \frac{1}{|N(i)|}
                  \sum_{j \in N(i)} \kappa_\phi(h_{ij}) \odot V v(x_j)\Big)

    :math:`h_{ij}` is the edge embedding (:class:`~meshop.nn.EdgeEmbedding`) of relative
    position, distance and the inputs at both ends; :math:`\kappa_\phi` maps it to a channel-wise
    (diagonal) kernel, a low-rank form of the full ``width x width`` kernel matrix that keeps the
    cost O(E * width). Mean aggregation makes the layer a quadrature of the integral, so the same
    weights apply on any discretization. The sum runs over :meth:`Edges.chunks`, so inference on a
    big mesh holds one chunk of messages at a time.

    ``linear=True`` drops :math:`\sigma` and the bias of :math:`W`: the layer is then linear in
    the state (the kernel still depends nonlinearly on the edge embedding), as BENO's
    superposition branches need.

    Shapes: ``v (N, width)``, ``edges`` with ``E`` edges among the ``N`` nodes -> ``(N, width)``.
    """

    def __init__(self, width: int, hidden: int, linear: bool = False):
        super().__init__(aggr="sum")                   # divided by the in-degree in kernel_mean
        self.linear = linear
        self.kernel = nn.Linear(hidden, width)
        self.value = nn.Linear(width, width, bias=False)
        self.self_weight = nn.Linear(width, width, bias=not linear)

    def forward(self, v: torch.Tensor, edges: Edges) -> torch.Tensor:
        value = self.value(v)
        integral = kernel_mean(edges, lambda index, embedding, n_targets: self.propagate(
            index, u=value, edge_embedding=embedding, size=(len(value), n_targets)))  # (N, width)
        return self.update_node(v, integral)

    def message(self, u_j: torch.Tensor, edge_embedding: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel(edge_embedding)                            # (E, width)
        # without autograd the kernel is not kept for a backward pass: multiply in place, one
        # (E, width) buffer fewer on the hot path of inference
        return kernel * u_j if torch.is_grad_enabled() else kernel.mul_(u_j)

    def update_node(self, v: torch.Tensor, integral: torch.Tensor) -> torch.Tensor:
        update = self.self_weight(v) + integral
        return v + (update if self.linear else nn.functional.gelu(update))
