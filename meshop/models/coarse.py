"""Solving on the coarse mesh a fine mesh carries, answering on the fine mesh (the MM-PDE protocol).

The data live on a fine mesh whose field data hold a coarse triangle mesh over a subset of its
nodes (:mod:`meshop.geometry.coarse`). A coarse solver reads the fine state at the coarse nodes,
runs its processor on the coarse mesh, and its increment reaches every fine node by the P1
interpolation of the coarse mesh (the prolongation ``P``): ``s_fine + σ P Δ_coarse``. The loss and
the errors are then taken on the fine nodes, where a mesh that resolves the fronts better can
show it (on the coarse nodes themselves every mesh represents the state exactly).

Every coarse structure is stored with *fine* node ids (keys named ``*_index``), so PyG batching
offsets them like ``edge_index``; :func:`coarse_view` turns them into ids among the coarse nodes
of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry.coarse import coarse_mesh


def attach_coarse(data, mesh):
    """``data`` (one mesh's graph, normalized ``pos (N, d)``) with the coarse mesh ``mesh`` carries:
    ``coarse_index (C,)`` the fine ids of the coarse nodes, ``coarse_face_index (3, T)`` the coarse
    triangles, ``coarse_edge_index (2, E)`` their edges both ways, and the prolongation
    ``prolong_index (3, N)`` (the corners of the coarse triangle holding each fine node) with
    ``prolong_weight (N, 3)`` (its barycentric coordinates)."""
    triangles, ids, weights = coarse_mesh(mesh)        # P1 weights: the same in data's normalized coordinates
    pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.unique(np.concatenate([pairs, pairs[:, ::-1]]), axis=0)
    data = data.clone()
    data.coarse_index = torch.as_tensor(np.unique(triangles), dtype=torch.int64)
    data.coarse_face_index = torch.as_tensor(np.ascontiguousarray(triangles.T), dtype=torch.int64)
    data.coarse_edge_index = torch.as_tensor(np.ascontiguousarray(edges.T), dtype=torch.int64)
    data.prolong_index = torch.as_tensor(np.ascontiguousarray(ids.T), dtype=torch.int64)
    data.prolong_weight = torch.as_tensor(weights, dtype=data.pos.dtype)
    return data


@dataclass
class CoarseView:
    """What a processor reads of the coarse nodes of a (batched) graph: ``pos (C, d)``,
    ``boundary_mask (C,)``, ``edge_index (2, E)`` and ``face (3, T)`` in coarse ids, ``local
    (N,)`` the coarse id of each fine node (-1 off the coarse mesh) and ``index (C,)`` the fine
    ids of the coarse nodes."""

    pos: torch.Tensor
    boundary_mask: torch.Tensor
    edge_index: torch.Tensor
    face: torch.Tensor
    local: torch.Tensor
    index: torch.Tensor


def coarse_view(data) -> CoarseView:
    """The :class:`CoarseView` of ``data`` (after :func:`attach_coarse`, batched or not)."""
    index = data.coarse_index
    local = torch.full((data.pos.shape[0],), -1, dtype=torch.int64, device=index.device)
    local[index] = torch.arange(len(index), device=index.device)
    return CoarseView(data.pos[index], data.boundary_mask[index], local[data.coarse_edge_index],
                      local[data.coarse_face_index], local, index)


def prolong(values: torch.Tensor, local: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(N, c)`` at the fine nodes: the P1 interpolation of coarse ``values (C, c)`` by the
    stencil ``index (3, N)`` (fine ids of coarse nodes) and ``weight (N, 3)``."""
    return torch.einsum("kn,knc->nc", weight.T, values[local[index]])


class CoarseProcessor(torch.nn.Module):
    """A processor ``F(data, x)`` run on the coarse mesh, its output prolonged to the fine nodes:
    ``P F(coarse view, x at the coarse nodes)``. Shapes: ``x (N, F)`` -> ``(N, c)``."""

    def __init__(self, processor: torch.nn.Module):
        super().__init__()
        self.processor = processor

    def forward(self, data, x: torch.Tensor) -> torch.Tensor:
        view = coarse_view(data)
        return prolong(self.processor(view, x[view.index]), view.local, data.prolong_index, data.prolong_weight)
