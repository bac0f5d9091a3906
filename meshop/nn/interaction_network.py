"""Interaction network: one message-passing layer of GNS's processor."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import MLP


class InteractionNetwork(nn.Module):
    r"""One residual interaction-network layer (Battaglia et al. 2016, as in GNS) on a directed
    graph with edges :math:`j \to i`:

    .. math::
        e'_{ij} = e_{ij} + \phi_e([e_{ij}, v_i, v_j]), \qquad
        v'_i = v_i + \phi_v\Big([v_i, \sum_{j \in N(i)} e'_{ij}]\Big)

    :math:`\phi_e, \phi_v` are MLPs with two hidden layers and a LayerNorm on the output.

    Shapes: ``nodes (N, L)``, ``edges (E, L)``, ``edge_index (2, E)`` (row 0 the source ``j``,
    row 1 the target ``i``) -> ``(nodes (N, L), edges (E, L))``.
    """

    def __init__(self, latent: int):
        super().__init__()
        self.edge_mlp = MLP([3 * latent, latent, latent, latent], layer_norm=True)
        self.node_mlp = MLP([2 * latent, latent, latent, latent], layer_norm=True)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, edge_index: torch.Tensor):
        source, target = edge_index
        edges = edges + self.edge_mlp(torch.cat([edges, nodes[target], nodes[source]], dim=1))
        received = torch.zeros_like(nodes).index_add_(0, target, edges)              # (N, L)
        nodes = nodes + self.node_mlp(torch.cat([nodes, received], dim=1))
        return nodes, edges
