"""MGNO: the multipole graph neural operator (Li et al., 2020) on unstructured meshes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nn import MLP, EdgeEmbedding, KernelIntegral, KernelTransfer
from .base import NeuralOperator
from .multilevel import as_multilevel, knn_between, node_batch


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
        smooth_finest: apply the kernel integrals :math:`K_0` on the mesh itself. ``False`` skips
            them: level 0 then only talks to level 1 through the transfers, the mesh graph is not
            needed, and a cycle costs about a quarter of the edge work (for speed on large meshes;
            the output still reads each node's own features through the residual path).
        condition_channels: size of an optional per-graph vector ``e`` passed to
            :meth:`forward`; when > 0, every update of a level's state in a cycle is followed by
            FiLM, :math:`v \leftarrow v \odot (1 + \gamma(e)) + \beta(e)` (used by
            :class:`~meshop.models.beno.BENO`, whose branches are MGNO V-cycles).
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
                 smooth_finest: bool = True, condition_channels: int = 0, length_unit: float = 0.02):
        super().__init__(in_channels, out_channels, dim, width=width, levels=levels, ratio=ratio,
                         cycles=cycles, kernel_width=kernel_width, neighbors=neighbors,
                         transfer_k=transfer_k, sampling=sampling, smooth_finest=smooth_finest,
                         condition_channels=condition_channels, length_unit=length_unit)
        if levels < 1 or cycles < 1:
            raise ValueError(f"MGNO needs levels >= 1 and cycles >= 1; got {levels} and {cycles}.")
        if levels == 1 and not smooth_finest:
            raise ValueError("MGNO with one level needs smooth_finest=True: it would have no kernel integral.")
        self.levels, self.ratio, self.cycles = levels, ratio, cycles
        self.neighbors, self.transfer_k, self.sampling = neighbors, transfer_k, sampling
        self.smooth_finest = smooth_finest
        self.units = [length_unit * ratio ** (level / dim) for level in range(levels)]
        self.lift = MLP([in_channels, width, width])
        smoothed = range(0 if smooth_finest else 1, levels)             # levels with kernel integrals
        self.within_edges = _embeddings(smoothed, dim, in_channels, kernel_width)
        self.down_edges = _embeddings(range(levels - 1), dim, in_channels, kernel_width)
        self.up_edges = _embeddings(range(levels - 1), dim, in_channels, kernel_width)
        self.smooth_down = _per_cycle(KernelIntegral, cycles, smoothed, width, kernel_width)
        self.restrict = _per_cycle(KernelTransfer, cycles, range(levels - 1), width, kernel_width)
        self.prolong = _per_cycle(KernelTransfer, cycles, range(levels - 1), width, kernel_width)
        self.smooth_up = _per_cycle(KernelIntegral, cycles, smoothed[:levels - 1], width, kernel_width)
        self.films = nn.ModuleList(nn.ModuleList(nn.Linear(condition_channels, 2 * width) for _ in range(levels))
                                   for _ in range(cycles if condition_channels > 0 else 0))
        self.project = MLP([width, 2 * width, out_channels])

    # ------------------------------------------------------------------ graph
    def prepare(self, data):
        """Add the node hierarchy: level node sets, their kNN graphs and transfer edges."""
        from ..geometry.hierarchy import hierarchy

        data = as_multilevel(data)
        pos = data.pos.double().numpy()
        # built on the nodes sorted by coordinates, so farthest-point sampling starts at the same
        # point whatever the mesh's node order: a renumbered mesh gets the same prediction
        order = np.lexsort(pos.T[::-1])
        levels = hierarchy(pos[order], self.levels, self.ratio, method=self.sampling, k=self.neighbors)
        ids = [np.arange(len(pos))] + [order[level_ids] for level_ids in levels.indices[1:]]
        data.level0_nodes = torch.arange(len(pos))
        for level in range(1, self.levels):
            fine, coarse = ids[level - 1], ids[level]
            up = knn_between(pos[coarse], pos[fine], self.transfer_k)   # coarse -> fine
            data[f"level{level}_nodes"] = torch.as_tensor(coarse)
            data[f"level{level}_edges"] = torch.as_tensor(levels.edges[level])
            data[f"level{level}_to_level{level - 1}_edges"] = torch.as_tensor(up)
            data[f"level{level - 1}_to_level{level}_edges"] = torch.as_tensor(np.flip(up, 0).copy())
        return data

    # ------------------------------------------------------------------ model
    def forward(self, data, x: torch.Tensor | None = None, condition: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``(N, out)`` on the mesh nodes. ``x (N, F)`` replaces ``data.x`` (BENO's branches see
        masked inputs); ``condition (B, condition_channels)`` is the per-graph FiLM vector."""
        x = data.x if x is None else x
        nodes = [data[f"level{level}_nodes"] for level in range(self.levels)]
        within, down, up = self._edge_embeddings(data, x, nodes)
        film = self._film(data, nodes, condition)
        lifted = self.lift(x)                                           # (N, width)
        states = [lifted] + [lifted[ids] for ids in nodes[1:]]          # (N_l, width) per level
        for cycle in range(self.cycles):
            smooth_down, smooth_up = self.smooth_down[cycle], self.smooth_up[cycle]
            if self.smooth_finest:
                states[0] = film(cycle, 0, smooth_down["0"](states[0], *within[0]))
            for level in range(self.levels - 1):                        # restriction
                coarse = self.restrict[cycle][str(level)](states[level], states[level + 1], *down[level])
                states[level + 1] = film(cycle, level + 1, smooth_down[str(level + 1)](coarse, *within[level + 1]))
            for level in reversed(range(self.levels - 1)):              # prolongation
                fine = self.prolong[cycle][str(level)](states[level + 1], states[level], *up[level])
                smooth = smooth_up[str(level)] if str(level) in smooth_up else None
                states[level] = film(cycle, level, smooth(fine, *within[level]) if smooth else fine)
        return self.project(states[0])                                  # (N, out)

    def _film(self, data, nodes, condition):
        """``film(cycle, level, v)``: FiLM of a level's state by ``condition``, or the identity."""
        if not len(self.films):
            return lambda cycle, level, v: v
        if condition is None:
            raise ValueError("this MGNO was built with condition_channels > 0; pass condition=.")
        batches = [node_batch(data)[ids] for ids in nodes]              # graph of each level node

        def film(cycle, level, v):
            gamma, beta = self.films[cycle][level](condition)[batches[level]].chunk(2, dim=1)
            return v * (1 + gamma) + beta
        return film

    def _edge_embeddings(self, data, x, nodes):
        """``(edge_index, embedding)`` per level graph and per transfer, local ids."""

        def embed(module, local, source_nodes, target_nodes, unit):
            global_edges = torch.stack([source_nodes[local[0]], target_nodes[local[1]]])
            return local, module(data.pos, x, global_edges, unit)

        within = [embed(self.within_edges["0"], data.edge_index, nodes[0], nodes[0], self.units[0])
                  if self.smooth_finest else None]
        within += [embed(self.within_edges[str(level)], data[f"level{level}_edges"], nodes[level],
                         nodes[level], self.units[level]) for level in range(1, self.levels)]
        down = [embed(self.down_edges[str(level)], data[f"level{level}_to_level{level + 1}_edges"],
                      nodes[level], nodes[level + 1], self.units[level + 1]) for level in range(self.levels - 1)]
        up = [embed(self.up_edges[str(level)], data[f"level{level + 1}_to_level{level}_edges"],
                    nodes[level + 1], nodes[level], self.units[level + 1]) for level in range(self.levels - 1)]
        return within, down, up


def _embeddings(levels: range, dim: int, channels: int, hidden: int) -> nn.ModuleDict:
    """One edge embedding per level in ``levels``, keyed by the level number."""
    return nn.ModuleDict({str(level): EdgeEmbedding(dim, channels, hidden) for level in levels})


def _per_cycle(layer, cycles: int, levels: range, width: int, hidden: int) -> nn.ModuleList:
    """``[cycle][str(level)]`` grid of ``layer(width, hidden)`` modules for ``levels``."""
    return nn.ModuleList(nn.ModuleDict({str(level): layer(width, hidden) for level in levels})
                         for _ in range(cycles))
