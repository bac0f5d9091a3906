"""GNO: the graph kernel network (Li et al., 2020) on unstructured meshes."""

from __future__ import annotations

import torch

from ..nn import MLP, EdgeEmbedding, Edges, KernelIntegral
from .base import NeuralOperator


class GNO(NeuralOperator):
    r"""Graph neural operator: lift, ``layers`` kernel integrals, project.

    .. math::
        v_0 = P(a), \quad v_{l+1} = v_l + \sigma\big(W_l v_l + \mathrm{mean}_{j}\,
        \kappa_l(h_{ij}) \odot V_l v_l(x_j)\big), \quad u = Q(v_L)

    ``a`` are the node features of :mod:`meshop.graph` (normalized position, distance to boundary,
    boundary flag and normal, input fields). The kernel sees relative positions in units of
    ``length_unit`` (a fixed fraction of the part's bounding-box diagonal, not a property of the
    mesh), so outputs do not depend on which other graphs share a batch or on partitioning.

    Args:
        width: channels of the hidden node state.
        layers: kernel integral iterations (= receptive field in graph hops).
        kernel_width: hidden width of the edge embedding feeding every kernel.
        length_unit: unit of relative positions fed to the kernel, in bounding-box diagonals.
    """

    receptive_hops = None  # set per instance from `layers`

    def __init__(self, in_channels: int, out_channels: int, dim: int, width: int = 48,
                 layers: int = 4, kernel_width: int = 32, length_unit: float = 0.02):
        super().__init__(in_channels, out_channels, dim, width=width, layers=layers,
                         kernel_width=kernel_width, length_unit=length_unit)
        self.length_unit = length_unit
        self.receptive_hops = layers
        self.lift = MLP([in_channels, width, width])
        self.edges = EdgeEmbedding(dim, in_channels, kernel_width)
        self.integrals = torch.nn.ModuleList(KernelIntegral(width, kernel_width) for _ in range(layers))
        self.project = MLP([width, 2 * width, out_channels])

    def forward(self, data) -> torch.Tensor:
        edges = Edges(data.edge_index, self.edges.bind(data.pos, data.x, self.length_unit), data.num_nodes)
        v = self.lift(data.x)                                           # (N, width)
        for integral in self.integrals:
            v = integral(v, edges)
        return self.project(v)                                          # (N, out)

