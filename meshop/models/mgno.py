"""MGNO: the multipole graph neural operator (Li et al., 2020) on unstructured meshes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nn import MLP, EdgeEmbedding, KernelIntegral, KernelTransfer
from .base import NeuralOperator
from .multilevel import as_multilevel, knn_between


class MGNO(NeuralOperator):
    r"""Multipole GNO: V-cycles of kernel integrals over a nested hierarchy of node sets.

    Level 0 is the mesh (its graph is ``data.edge_index``); level ``l + 1`` is a farthest-point
    (or voxel) subset of level ``l`` with ``1 / ratio`` of its nodes and its own kNN graph, so
    its edges reach ``ratio**(l/d)`` times farther. One V-cycle, with kernel integrals
    :math:`K_l` within level ``l`` (:class:`~meshop.nn.KernelIntegral`) and transfers
    :math:`R_l` down / :math:`P_l` up between levels (:class:`~meshop.nn.KernelTransfer`):

    .. math::
        v_0 \leftarrow K_0 v_0, \qquad
        v_{l+1} \leftarrow K_{l+1} R_l(v_l \to v_{l+1}) \quad (l = 0 \dots L-2), \\
        v_l \leftarrow K_l P_l(v_{l+1} \to v_l) \quad (l = L-2 \dots 0), \qquad u = Q(v_0)

    with :math:`v_0 = P(a)` the lifted node features and a coarse node's state starting from its
    own lifted features. Each fine node exchanges with its ``transfer_k`` nearest nodes of the
    next level. With ``O(N / ratio**l)`` nodes and bounded degree per level, a cycle costs O(N)
    while information crosses the domain in ``O(levels)`` layers: the multipole idea of
    short-range kernels on fine levels and long-range ones on coarse levels.

    Args:
        width: channels of the hidden node state.
        levels: hierarchy levels including the mesh (>= 1; 1 is a plain GNO).
        ratio: node-count reduction per level.
        cycles: V-cycles (each with its own weights).
        kernel_width: hidden width of the edge embeddings.
        neighbors: kNN degree of the graphs on coarse levels.
        transfer_k: coarse neighbours of each fine node in the transfers.
        sampling: ``"fps"`` (farthest-point) or ``"voxel"`` coarse levels.
        length_unit: unit of the relative positions the level-0 kernels see, in bounding-box
            diagonals (as in :class:`~meshop.models.gno.GNO`); level ``l`` and the transfers into
            it use ``length_unit * ratio**(l/d)``, the growth of the node spacing. A fixed unit,
            not a property of the mesh: the same kernel on any resolution and in any batch.

    Graph needs (added by :meth:`prepare`): ``level<l>_nodes``, ``level<l>_edges`` and the
    transfer edges ``level<l>_to_level<l+1>_edges`` / ``level<l+1>_to_level<l>_edges``
    (see :mod:`meshop.models.multilevel`).
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, width: int = 48,
                 levels: int = 3, ratio: float = 4.0, cycles: int = 2, kernel_width: int = 32,
                 neighbors: int = 16, transfer_k: int = 4, sampling: str = "fps",
                 length_unit: float = 0.02):
        super().__init__(in_channels, out_channels, dim, width=width, levels=levels, ratio=ratio,
                         cycles=cycles, kernel_width=kernel_width, neighbors=neighbors,
                         transfer_k=transfer_k, sampling=sampling, length_unit=length_unit)
        if levels < 1 or cycles < 1:
            raise ValueError(f"MGNO needs levels >= 1 and cycles >= 1; got {levels} and {cycles}.")
        self.levels, self.ratio, self.cycles = levels, ratio, cycles
        self.neighbors, self.transfer_k, self.sampling = neighbors, transfer_k, sampling
        self.units = [length_unit * ratio ** (level / dim) for level in range(levels)]
        self.lift = MLP([in_channels, width, width])
        self.within_edges = _embeddings(levels, dim, in_channels, kernel_width)
        self.down_edges = _embeddings(levels - 1, dim, in_channels, kernel_width)
        self.up_edges = _embeddings(levels - 1, dim, in_channels, kernel_width)
        self.smooth_down = _per_cycle(KernelIntegral, cycles, levels, width, kernel_width)
        self.restrict = _per_cycle(KernelTransfer, cycles, levels - 1, width, kernel_width)
        self.prolong = _per_cycle(KernelTransfer, cycles, levels - 1, width, kernel_width)
        self.smooth_up = _per_cycle(KernelIntegral, cycles, levels - 1, width, kernel_width)
        self.project = MLP([width, 2 * width, out_channels])

    # ------------------------------------------------------------------ graph
    def prepare(self, data):
        """Add the node hierarchy: level node sets, their kNN graphs and transfer edges."""
        from ..geometry.hierarchy import hierarchy

        data = as_multilevel(data)
        pos = data.pos.double().numpy()
        levels = hierarchy(pos, self.levels, self.ratio, method=self.sampling, k=self.neighbors)
        data.level0_nodes = torch.arange(len(pos))
        for level in range(1, self.levels):
            fine, coarse = levels.indices[level - 1], levels.indices[level]
            up = knn_between(pos[coarse], pos[fine], self.transfer_k)   # coarse -> fine
            data[f"level{level}_nodes"] = torch.as_tensor(coarse)
            data[f"level{level}_edges"] = torch.as_tensor(levels.edges[level])
            data[f"level{level}_to_level{level - 1}_edges"] = torch.as_tensor(up)
            data[f"level{level - 1}_to_level{level}_edges"] = torch.as_tensor(np.flip(up, 0).copy())
        return data

    # ------------------------------------------------------------------ model
    def forward(self, data) -> torch.Tensor:
        nodes = [data[f"level{level}_nodes"] for level in range(self.levels)]
        within, down, up = self._edge_embeddings(data, nodes)
        lifted = self.lift(data.x)                                      # (N, width)
        states = [lifted] + [lifted[ids] for ids in nodes[1:]]          # (N_l, width) per level
        for cycle in range(self.cycles):
            states[0] = self.smooth_down[cycle][0](states[0], *within[0])
            for level in range(self.levels - 1):                        # restriction
                coarse = self.restrict[cycle][level](states[level], states[level + 1], *down[level])
                states[level + 1] = self.smooth_down[cycle][level + 1](coarse, *within[level + 1])
            for level in reversed(range(self.levels - 1)):              # prolongation
                fine = self.prolong[cycle][level](states[level + 1], states[level], *up[level])
                states[level] = self.smooth_up[cycle][level](fine, *within[level])
        return self.project(states[0])                                  # (N, out)

    def _edge_embeddings(self, data, nodes):
        """``(edge_index, embedding)`` per level graph and per transfer, local ids."""

        def embed(module, local, source_nodes, target_nodes, unit):
            global_edges = torch.stack([source_nodes[local[0]], target_nodes[local[1]]])
            return local, module(data.pos, data.x, global_edges, unit)

        within = [embed(self.within_edges[0], data.edge_index, nodes[0], nodes[0], self.units[0])]
        within += [embed(self.within_edges[level], data[f"level{level}_edges"], nodes[level], nodes[level],
                         self.units[level]) for level in range(1, self.levels)]
        down = [embed(self.down_edges[level], data[f"level{level}_to_level{level + 1}_edges"],
                      nodes[level], nodes[level + 1], self.units[level + 1]) for level in range(self.levels - 1)]
        up = [embed(self.up_edges[level], data[f"level{level + 1}_to_level{level}_edges"],
                    nodes[level + 1], nodes[level], self.units[level + 1]) for level in range(self.levels - 1)]
        return within, down, up


def _embeddings(count: int, dim: int, channels: int, hidden: int) -> nn.ModuleList:
    return nn.ModuleList(EdgeEmbedding(dim, channels, hidden) for _ in range(count))


def _per_cycle(layer, cycles: int, count: int, width: int, hidden: int) -> nn.ModuleList:
    """``[cycle][level]`` grid of ``layer(width, hidden)`` modules."""
    return nn.ModuleList(nn.ModuleList(layer(width, hidden) for _ in range(count)) for _ in range(cycles))
