"""Multi-scale node hierarchies: farthest-point and voxel sampling, graphs within and between levels.

Index conventions (used by MGNO, AMG and GIOROM):

* ``indices[l]`` holds the **global** node ids (rows of ``points``) of level ``l``; level 0 is
  every node in its original order, ``indices[0] == arange(N)``. Levels are nested: every node of
  level ``l + 1`` is a node of level ``l``.
* Every edge index of a :class:`Hierarchy` uses **level-local** ids, i.e. positions into
  ``indices[l]``: node ``j`` of level ``l`` is global node ``indices[l][j]``.
* ``coarse_in_fine[l][j]`` is the level-``l`` position of node ``j`` of level ``l + 1``, so
  ``indices[l][coarse_in_fine[l]] == indices[l + 1]``.
* ``edges[l]``: ``(2, E)`` graph within level ``l`` (row 0 source, row 1 target, level-``l`` ids).
* ``down[l]``: ``(2, n_l)`` pooling edges, source = level-``l`` node, target = its nearest level-
  ``l + 1`` node; every fine node has exactly one. ``up[l]`` is ``down[l]`` reversed (unpooling:
  source in level ``l + 1``, target in level ``l``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import MeshError
from .neighbors import as_points, knn_graph, radius_graph

#: in-neighbours per node that the default per-level radius aims at
DEFAULT_NEIGHBORS = 16


@dataclass
class Hierarchy:
    """Nested node subsets with a graph in each level and pool/unpool edges between levels.

    See the module docstring for the index conventions. ``radii[l]`` is the radius of
    ``edges[l]`` (None for kNN graphs).
    """

    indices: list[np.ndarray]
    edges: list[np.ndarray]
    down: list[np.ndarray]
    up: list[np.ndarray]
    coarse_in_fine: list[np.ndarray]
    radii: list[float | None]
    method: str

    @property
    def n_levels(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        nodes = [len(i) for i in self.indices]
        edges = [e.shape[1] for e in self.edges]
        radii = "kNN" if self.radii[0] is None else "[" + ", ".join(f"{r:.3g}" for r in self.radii) + "]"
        return (f"Hierarchy(n_levels={self.n_levels}, method={self.method!r}, nodes={nodes}, "
                f"edges={edges}, radii={radii})")


def farthest_point_sampling(points, n_samples: int, start: int = 0) -> np.ndarray:
    """Greedy farthest-point order: each pick maximizes its distance to those already picked.

    Exact and deterministic: equal to the plain O(N * n_samples) loop (ties go to the lowest
    index), but points are grouped into spatially compact blocks with bounding boxes, and a block
    is updated only when the new sample can be closer to one of its points than their current
    distance. Hand-written: no library in our dependencies offers FPS (PyG's needs torch-cluster).

    Args:
        points: ``(N, d)`` coordinates.
        n_samples: number of picks, ``1 <= n_samples <= N``.
        start: index of the first pick.

    Returns:
        ``(n_samples,)`` int64 point ids in pick order; any prefix is itself an FPS sample.
        Points that coincide are picked only after all distinct ones.
    """
    pts = as_points(points)
    n = len(pts)
    if int(n_samples) != n_samples or not 1 <= n_samples <= n:
        raise MeshError(f"n_samples must be an integer in [1, {n}]; got {n_samples}.")
    if int(start) != start or not 0 <= start < n:
        raise MeshError(f"start must be a point index in [0, {n - 1}]; got {start}.")
    ids, coords = _spatial_blocks(pts, block=256)               # (nb, B), (nb, B, d)
    nb, block = ids.shape
    slot = np.empty(n, dtype=np.int64)                          # flat position of each point
    slot[ids.reshape(-1)[:n]] = np.arange(n)
    lo, hi = coords.min(axis=1), coords.max(axis=1)             # block bounding boxes
    dist = np.full((nb, block), np.inf)                         # squared distance to the sample
    dist.reshape(-1)[n:] = -np.inf                              # padding is never picked
    block_max = dist.max(axis=1)
    out = np.empty(int(n_samples), dtype=np.int64)
    out[0] = start
    for m in range(1, len(out)):
        p = pts[out[m - 1]]
        gap = np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0)
        # a block changes only if the sample may be nearer than its farthest point is now
        near = np.flatnonzero((gap ** 2).sum(axis=1) < block_max)
        sub = np.minimum(dist[near], ((coords[near] - p) ** 2).sum(axis=2))
        dist[near] = sub
        block_max[near] = sub.max(axis=1)
        picked = divmod(slot[out[m - 1]], block)                # never pick a point twice
        dist[picked] = -np.inf
        block_max[picked[0]] = dist[picked[0]].max()
        out[m] = _argmax_lowest_id(dist, block_max, ids)
    return out


def _spatial_blocks(pts: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Point ids in kd-tree order cut into blocks of ``block`` (last one padded with point 0's
    id), and their coordinates: neighbours in the order are near in space, so boxes are small."""
    order = cKDTree(pts, leafsize=block // 2).indices.astype(np.int64)
    nb = -(-len(pts) // block)
    ids = np.concatenate([order, np.full(nb * block - len(pts), order[0])]).reshape(nb, block)
    return ids, pts[ids]


def _argmax_lowest_id(dist: np.ndarray, block_max: np.ndarray, ids: np.ndarray) -> int:
    """Id of the farthest point; among equal distances the lowest id, as ``np.argmax`` would."""
    top = block_max.max()
    blocks = np.flatnonzero(block_max == top)
    return int(ids[blocks][dist[blocks] == top].min())
