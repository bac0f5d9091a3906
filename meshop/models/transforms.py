"""Graph building as composable transforms (PyG style): each adds one structure to node data.

A model lists what it needs in :meth:`~meshop.models.base.NeuralOperator.transforms`; its
``prepare`` is their :class:`~torch_geometric.transforms.Compose`, and
:func:`~meshop.graph.build_graph` runs :class:`MeshGraph` and then them. The same composition
rebuilds the graphs of nodes that have moved: apply it to data with new ``pos``.

>>> Compose([MeshGraph(GraphSettings(k=16)), Hierarchy(levels=3, ratio=4.0)])(data)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.transforms import BaseTransform, Compose

from ..geometry.neighbors import knn_graph
from .multilevel import add_hierarchy, as_multilevel, farthest_subset

__all__ = ["BoundaryTokens", "Compose", "Hierarchy", "MeshGraph", "SalientGraphs"]


class MeshGraph(BaseTransform):
    """``edge_index``: the neighbour graph of the checkpoint's :class:`~meshop.graph.GraphSettings`
    on the normalized node positions; ``(2, 0)`` with ``needed=False`` (models that do not read it)."""

    def __init__(self, settings, needed: bool = True):
        self.settings, self.needed = settings, needed

    def forward(self, data):
        from ..graph import mesh_edges

        data.edge_index = mesh_edges(data, self.settings, self.needed)
        return data


class Hierarchy(BaseTransform):
    """The V-cycle node hierarchy: level node sets, their kNN graphs and transfer edges
    (:func:`~meshop.models.multilevel.add_hierarchy`; the data becomes ``MultiLevelData``)."""

    def __init__(self, levels: int, ratio: float, sampling: str = "fps", neighbors: int = 16,
                 transfer_k: int = 4, coarse_nodes: int | None = None):
        self.options = dict(levels=levels, ratio=ratio, sampling=sampling, neighbors=neighbors,
                            transfer_k=transfer_k, coarse_nodes=coarse_nodes)

    def forward(self, data):
        return add_hierarchy(data, **self.options)


class BoundaryTokens(BaseTransform):
    """``boundary_nodes``: the boundary nodes, at most ``max_tokens`` of them, a farthest-point
    subset that does not depend on node order (BENO's boundary Transformer reads them)."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens

    def forward(self, data):
        nodes = torch.nonzero(data.boundary_mask).flatten()
        if len(nodes) > self.max_tokens:
            subset = farthest_subset(data.pos[nodes].double().numpy(), self.max_tokens)
            nodes = nodes[torch.as_tensor(subset)].sort().values
        data.boundary_nodes = nodes
        return data


class SalientGraphs(BaseTransform):
    """AMG's two node sets and their kNN graphs: ``global_nodes`` (one farthest-point sample per
    ``global_ratio`` nodes) and ``local_nodes`` (the ``hf_fraction`` of nodes whose input columns
    ``input_columns`` of ``x`` have the most high-frequency content), with ``*_edges``."""

    def __init__(self, global_ratio: float, hf_fraction: float, neighbors: int, input_columns: list[int]):
        self.global_ratio, self.hf_fraction, self.neighbors = global_ratio, hf_fraction, neighbors
        self.input_columns = list(input_columns)

    def forward(self, data):
        data = as_multilevel(data)
        pos = data.pos.double().numpy()
        n = len(pos)
        coarse = np.sort(farthest_subset(pos, max(1, math.ceil(n / self.global_ratio))))
        score = high_frequency_score(pos, data.x[:, self.input_columns].double().numpy(), coarse)
        local = np.sort(np.argsort(-score, kind="stable")[: max(1, math.ceil(self.hf_fraction * n))])
        for name, nodes in (("local", local), ("global", coarse)):
            data[f"{name}_nodes"] = torch.as_tensor(nodes)
            data[f"{name}_edges"] = torch.as_tensor(_knn_or_empty(pos[nodes], self.neighbors))
        return data


def high_frequency_score(pos: np.ndarray, inputs: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """``(N,)`` squared difference between the input fields ``inputs (N, c)`` and their
    interpolant from the ``coarse`` nodes (inverse-distance weights of the 3 nearest; exact at
    the coarse nodes). Zero everywhere when there are no input fields."""
    if inputs.shape[1] == 0:
        return np.zeros(len(pos))
    k = min(3, len(coarse))
    dist, nearest = cKDTree(pos[coarse]).query(pos, k=k)
    dist, nearest = dist.reshape(len(pos), k), nearest.reshape(len(pos), k)
    weights = 1.0 / np.maximum(dist, 1e-12) ** 2
    weights /= weights.sum(axis=1, keepdims=True)
    smooth = np.einsum("nk,nkc->nc", weights, inputs[coarse][nearest])
    return ((inputs - smooth) ** 2).sum(axis=1)


def _knn_or_empty(points: np.ndarray, k: int) -> np.ndarray:
    """kNN graph with ``min(k, n - 1)`` neighbours, or no edges for a single node."""
    if len(points) < 2:
        return np.empty((2, 0), dtype=np.int64)
    return knn_graph(points, min(k, len(points) - 1))
