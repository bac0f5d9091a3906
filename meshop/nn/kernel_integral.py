"""Kernel integral layer of the graph neural operator (GNO)."""

from __future__ import annotations

import torch

from .edges import Edges
from .kernel_transfer import KernelTransfer


class KernelIntegral(KernelTransfer):
    r"""One GNO iteration, a Monte-Carlo kernel integral over each node's neighbourhood:

    .. math::
        v'(x_i) = v(x_i) + \sigma\Big(W v(x_i) + \frac{1}{|N(i)|}
                  \sum_{j \in N(i)} \kappa_\phi(h_{ij}) \odot V v(x_j)\Big)

    :math:`h_{ij}` is the edge embedding (:class:`~meshop.nn.EdgeEmbedding`) of relative
    position, distance and the inputs at both ends; :math:`\kappa_\phi` maps it to a channel-wise
    (diagonal) kernel, a low-rank form of the full ``width x width`` kernel matrix that keeps the
    cost O(E * width). Mean aggregation makes the layer a quadrature of the integral, so the same
    weights apply on any discretization whose neighbourhoods keep their extent (a kNN graph's
    shrink as the mesh is refined, and the integral with them). The sum runs over
    :meth:`Edges.chunks`, so inference on a big mesh holds one chunk of messages at a time.

    ``linear=True`` drops :math:`\sigma` and the bias of :math:`W`: the layer is then linear in
    the state (the kernel still depends nonlinearly on the edge embedding), as BENO's
    superposition branches need.

    The one-set case of :class:`~meshop.nn.KernelTransfer` (source and target are the same
    nodes), whose weights, messages and update it uses.

    Shapes: ``v (N, width)``, ``edges`` with ``E`` edges among the ``N`` nodes -> ``(N, width)``.
    """

    def forward(self, v: torch.Tensor, edges: Edges) -> torch.Tensor:
        return super().forward(v, v, edges)                             # (N, width)
