"""AMG: the multi-graph neural operator (a GraphFormer) on unstructured meshes."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv

from ..graph import GEOMETRY_FEATURES, layout_columns, positional_layout
from ..nn import MLP, PhysicsAttention
from .base import NeuralOperator
from .multilevel import node_batch, num_graphs
from .transforms import SalientGraphs

_GRAPHS = ("local", "global")


class AMG(NeuralOperator):
    r"""Multi-graph neural operator: ``blocks`` GraphFormer blocks over three graphs.

    Each block updates the node state :math:`h` (pre-LayerNorm residuals):

    .. math::
        h_{\mathcal L} &\mathrel{+}= \mathrm{GATv2}_{\mathcal L}(\mathrm{LN}(h)) \quad
            \text{on the local graph}, \\
        h_{\mathcal G} &\mathrel{+}= \mathrm{GATv2}_{\mathcal G}(\mathrm{LN}(h)) \quad
            \text{on the global graph}, \\
        h &\mathrel{+}= \mathrm{PhysicsAttention}(\mathrm{LN}(h)), \qquad
        h \mathrel{+}= \mathrm{MLP}(\mathrm{LN}(h))

    * local graph :math:`\mathcal L`: kNN graph over the ``hf_fraction`` of nodes with the most
      high-frequency content, :math:`s_i = \lVert a_i - \tilde a_i \rVert^2`, where
      :math:`\tilde a` interpolates the input fields back from the coarse FPS nodes (inverse
      distance weights of the 3 nearest); fine detail (interfaces, sources) gets dedicated
      attention there.
    * global graph :math:`\mathcal G`: kNN graph over ``1/global_ratio`` of the nodes chosen by
      farthest-point sampling; its edges span the domain in a few hops.
    * physics graph: each node softly assigned to ``tokens`` learned slices, the slice tokens
      attend to each other, the result is broadcast back (:class:`~meshop.nn.PhysicsAttention`),
      a global interaction at O(N) cost.

    GATv2 attention sees the relative position and distance of each edge, in units of
    ``length_unit`` times the node-spacing growth of the graph's node set (``hf_fraction**(-1/d)``
    local, ``global_ratio**(1/d)`` global): fixed units, so the same weights mean the same on any
    resolution and in any batch. Batches need no loop over graphs.

    Args:
        width: channels of the node state (divisible by ``heads``).
        blocks: GraphFormer blocks.
        heads: attention heads (graph and token attention).
        tokens: learned physics tokens M.
        global_ratio: one global (FPS) node per ``global_ratio`` mesh nodes.
        hf_fraction: fraction of nodes in the local high-frequency graph.
        neighbors: kNN degree of the local and global graphs.
        length_unit: unit of relative positions on the mesh, in bounding-box diagonals.
        features: the layout of ``Data.x`` (name -> columns) the model is built for; the
            high-frequency score reads every block but the geometry ones (given by
            :func:`meshop.models.get`, not a hyper-parameter).

    Graph needs (added by :meth:`prepare`): ``local_nodes``, ``local_edges``, ``global_nodes``,
    ``global_edges`` (see :mod:`meshop.models.multilevel`); not the mesh graph.
    """

    uses_mesh_graph = False
    reads_features = True

    def __init__(self, in_channels: int, out_channels: int, dim: int, width: int = 48,
                 blocks: int = 3, heads: int = 4, tokens: int = 16, global_ratio: float = 8.0,
                 hf_fraction: float = 0.25, neighbors: int = 8, length_unit: float = 0.02, *,
                 features: dict | None = None):
        super().__init__(in_channels, out_channels, dim, width=width, blocks=blocks, heads=heads,
                         tokens=tokens, global_ratio=global_ratio, hf_fraction=hf_fraction,
                         neighbors=neighbors, length_unit=length_unit)
        if width % heads:
            raise ValueError(f"AMG width ({width}) must be divisible by heads ({heads}).")
        if not 0 < hf_fraction <= 1 or global_ratio < 1:
            raise ValueError(f"AMG needs 0 < hf_fraction <= 1 and global_ratio >= 1; "
                             f"got {hf_fraction} and {global_ratio}.")
        self.global_ratio, self.hf_fraction, self.neighbors = global_ratio, hf_fraction, neighbors
        layout = features if features is not None else positional_layout(in_channels, dim)
        inputs = [name for name in layout if name not in GEOMETRY_FEATURES]
        self.input_columns = sorted(layout_columns(layout, inputs, "AMG"))
        self.units = {"local": length_unit * hf_fraction ** (-1 / dim),
                      "global": length_unit * global_ratio ** (1 / dim)}
        self.lift = MLP([in_channels, width, width])
        self.blocks = nn.ModuleList(_GraphFormerBlock(width, dim, heads, tokens) for _ in range(blocks))
        self.project = MLP([width, 2 * width, out_channels])
        self.norm = nn.LayerNorm(width)

    # ------------------------------------------------------------------ graph
    def transforms(self) -> list:
        """The local (high-frequency) and global (FPS) node sets and their kNN graphs."""
        return [SalientGraphs(self.global_ratio, self.hf_fraction, self.neighbors, self.input_columns)]

    # ------------------------------------------------------------------ model
    def forward(self, data) -> torch.Tensor:
        batch, size = node_batch(data), num_graphs(data)
        graphs = []
        for name in _GRAPHS:
            nodes, edges = data[f"{name}_nodes"], data[f"{name}_edges"]
            pos = data.pos[nodes]
            rel = (pos[edges[0]] - pos[edges[1]]) / self.units[name]    # (E, d)
            graphs.append((nodes, edges, torch.cat([rel, rel.norm(dim=1, keepdim=True)], dim=1)))
        h = self.lift(data.x)                                           # (N, width)
        for block in self.blocks:
            h = block(h, graphs, batch, size)
        return self.project(self.norm(h))                               # (N, out)


class _GraphFormerBlock(nn.Module):
    """Local GATv2, global GATv2, physics attention, MLP; each a pre-LayerNorm residual."""

    def __init__(self, width: int, dim: int, heads: int, tokens: int):
        super().__init__()
        self.attentions = nn.ModuleList(
            GATv2Conv(width, width // heads, heads=heads, edge_dim=dim + 1) for _ in _GRAPHS)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(len(_GRAPHS) + 2))
        self.physics = PhysicsAttention(width, tokens, heads)
        self.mlp = MLP([width, 2 * width, width])

    def forward(self, h, graphs, batch, size) -> torch.Tensor:
        """``h (N, width)``; ``graphs``: ``(nodes (N_S,), edges (2, E) set-local, edge_attr (E, d+1))``."""
        for attention, norm, (nodes, edges, edge_attr) in zip(self.attentions, self.norms, graphs):
            h = h.index_add(0, nodes, attention(norm(h)[nodes], edges, edge_attr))
        h = h + self.physics(self.norms[-2](h), batch, size)
        return h + self.mlp(self.norms[-1](h))
