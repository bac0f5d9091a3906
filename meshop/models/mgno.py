"""MGNO: the multipole graph neural operator (Li et al., 2020) on unstructured meshes."""

from __future__ import annotations

import torch

from ..nn import MLP
from .base import NeuralOperator
from .transforms import Hierarchy
from .vcycle import VCycles


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
        finest_once: visit the mesh level only in the first restriction and the last
            prolongation; the other cycles run on the coarse levels (see
            :class:`~meshop.models.vcycle.VCycles`). With ``smooth_finest=False`` the work on the
            mesh nodes is then two transfers, whatever ``cycles`` is; with ``smooth_finest=True``
            two transfers and one kernel integral on the mesh graph, after the last prolongation.
        coarse_nodes: at most this many nodes on level 1 (``None``: ``N / ratio``). With
            ``sampling="voxel"`` a part meshed finer than the training meshes then gets the same
            coarse levels (voxels of its shape) and the same work on them; with ``finest_once``
            only the mesh-level layers grow with the mesh. Those still see the resolution (a kNN
            neighbourhood shrinks, boundary flags are averaged over more interior nodes): see
            docs/models.md, *Resolution*, for measured errors on refined meshes.
        condition_channels: size of an optional per-graph vector ``e`` passed to
            :meth:`forward`; when > 0, every update of a level's state in a cycle is followed by
            FiLM, :math:`v \leftarrow v \odot (1 + \gamma(e)) + \beta(e)` (used by
            :class:`~meshop.models.beno.BENO`, whose branches are V-cycles).
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
                 smooth_finest: bool = True, finest_once: bool = False, coarse_nodes: int | None = None,
                 condition_channels: int = 0, length_unit: float = 0.02):
        super().__init__(in_channels, out_channels, dim, width=width, levels=levels, ratio=ratio,
                         cycles=cycles, kernel_width=kernel_width, neighbors=neighbors,
                         transfer_k=transfer_k, sampling=sampling, smooth_finest=smooth_finest,
                         finest_once=finest_once, coarse_nodes=coarse_nodes,
                         condition_channels=condition_channels, length_unit=length_unit)
        self.levels, self.ratio = levels, ratio
        self.uses_mesh_graph = smooth_finest                            # K_0 runs on data.edge_index
        self.neighbors, self.transfer_k, self.sampling = neighbors, transfer_k, sampling
        self.coarse_nodes = coarse_nodes
        self.lift = MLP([in_channels, width, width])
        self.processor = VCycles(dim, in_channels, width, levels, ratio, cycles, kernel_width,
                                 smooth_finest=smooth_finest, finest_once=finest_once,
                                 condition_channels=condition_channels, length_unit=length_unit)
        self.project = MLP([width, 2 * width, out_channels])

    # ------------------------------------------------------------------ graph
    def transforms(self) -> list:
        """The node hierarchy: level node sets, their kNN graphs and transfer edges
        (:class:`~meshop.models.transforms.Hierarchy`)."""
        return [Hierarchy(self.levels, self.ratio, self.sampling, self.neighbors, self.transfer_k, self.coarse_nodes)]

    # ------------------------------------------------------------------ model
    def forward(self, data, x: torch.Tensor | None = None, condition: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``(N, out)`` on the mesh nodes. ``x (N, F)`` replaces ``data.x`` (BENO's branches see
        masked inputs); ``condition (B, condition_channels)`` is the per-graph FiLM vector."""
        x = data.x if x is None else x
        v = self.processor(data, x, self.lift(x), condition)           # (N, width)
        return self.project(v)                                          # (N, out)
