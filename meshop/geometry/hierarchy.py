"""Multi-scale node hierarchies: farthest-point and voxel sampling, graphs within and between
levels.

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
from .neighbors import as_points, knn_graph, radius_graph, sort_edges

#: in-neighbours per node that the default per-level radius aims at
DEFAULT_NEIGHBORS = 16
#: points x picks from which exact farthest-point sampling runs in meshop's compiled library
#: (the same picks; smaller samples stay in numpy and need no torch import)
COMPILED_FPS_WORK = 1 << 24


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
        radii = ("kNN" if all(r is None for r in self.radii)
                 else "[" + ", ".join("-" if r is None else f"{r:.3g}" for r in self.radii) + "]")
        return (f"Hierarchy(n_levels={self.n_levels}, method={self.method!r}, nodes={nodes}, "
                f"edges={edges}, radii={radii})")


def farthest_point_sampling(points, n_samples: int, start: int = 0, exact: bool = True) -> np.ndarray:
    """Greedy farthest-point order: each pick maximizes its distance to those already picked.

    ``exact=True``: exact and deterministic, equal to the plain O(N * n_samples) loop in float64
    (ties go to the lowest index), but points are grouped into spatially compact blocks with
    bounding boxes, and a block is updated only when the new sample can be closer to one of its
    points than their current distance; from ``COMPILED_FPS_WORK`` points x picks the same loop
    runs in meshop's compiled library where it builds (the same picks; 100k -> 25k 0.24 s
    instead of 2.1 s, fpsample's QuickFPS 0.35-0.44 s). Hand-written: ``fpsample`` computes
    in float32 and starts where it chooses, so at near-ties it picks other points than this
    float64 order.

    ``exact=False``: ``fpsample``'s bucket FPS on a k-d line (QuickFPS, float32), 5-15x faster
    than the numpy loop from 100k points (1.7x the compiled one): a farthest-point sample whose covering radius matches the exact one's to
    ~1 %, but not the same points; deterministic for a given ``start``, which seeds its
    search but is not always its first pick.
    For samplers whose points need not be reproduced exactly (fresh graphs, new models).

    Args:
        points: ``(N, d)`` coordinates.
        n_samples: number of picks, ``1 <= n_samples <= N``.
        start: index of the first pick (``exact=False``: of the seed of the search).
        exact: the exact float64 order (models that must see the same sample) or the fast one.

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
    if not exact:
        fast = _bucket_fps(pts, int(n_samples), int(start))
        if fast is not None:
            return fast
    ids, coords = _spatial_blocks(pts, block=128)               # (nb, B), (nb, d, B)
    nb, block = ids.shape
    slot = np.empty(n, dtype=np.int64)                          # flat position of each point
    slot[ids.reshape(-1)[:n]] = np.arange(n)
    if n * n_samples >= COMPILED_FPS_WORK:
        from ..nn import compiled                                # imports torch: large samples only

        if compiled.available():
            return compiled.farthest_point_blocks(pts, ids, coords, slot, int(n_samples), int(start))
    lo, hi = coords.min(axis=2).T, coords.max(axis=2).T         # (d, nb) block bounding boxes
    dist = np.full((nb, block), np.inf)                         # squared distance to the sample
    dist.reshape(-1)[n:] = -np.inf                              # padding is never picked
    block_max = dist.max(axis=1)
    out = np.empty(int(n_samples), dtype=np.int64)
    out[0] = start
    for m in range(1, len(out)):
        p = pts[out[m - 1]][:, None]                            # (d, 1)
        gap = np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0)
        # a block changes only if the sample may be nearer than its farthest point is now
        near = np.flatnonzero((gap ** 2).sum(axis=0) < block_max)
        sub = np.minimum(dist[near], ((coords[near] - p) ** 2).sum(axis=1))
        dist[near] = sub
        block_max[near] = sub.max(axis=1)
        picked = divmod(slot[out[m - 1]], block)                # never pick a point twice
        dist[picked] = -np.inf
        block_max[picked[0]] = dist[picked[0]].max()
        out[m] = _argmax_lowest_id(dist, block_max, ids)
    return out


def _bucket_fps(pts: np.ndarray, n_samples: int, start: int) -> np.ndarray | None:
    """fpsample's QuickFPS sample in pick order, or None where it repeats a point (it does so
    once the distinct points run out, when points coincide)."""
    import fpsample

    height = int(np.clip(np.log2(len(pts)) - 10, 3, 9))        # buckets of 2**height points
    picks = fpsample.bucket_fps_kdline_sampling(pts, n_samples, h=height, start_idx=start)
    return picks.astype(np.int64) if len(np.unique(picks)) == n_samples else None


def _spatial_blocks(pts: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Point ids in kd-tree order cut into blocks of ``block`` (last one padded with point 0's
    id), and their coordinates: neighbours in the order are near in space, so boxes are small."""
    order = cKDTree(pts, leafsize=block // 2).indices.astype(np.int64)
    nb = -(-len(pts) // block)
    ids = np.concatenate([order, np.full(nb * block - len(pts), order[0])]).reshape(nb, block)
    return ids, pts[ids].transpose(0, 2, 1).copy()          # coordinates as (nb, d, B)


def _argmax_lowest_id(dist: np.ndarray, block_max: np.ndarray, ids: np.ndarray) -> int:
    """Id of the farthest point; among equal distances the lowest id, as ``np.argmax`` would."""
    top = block_max.max()
    blocks = np.flatnonzero(block_max == top)
    return int(ids[blocks][dist[blocks] == top].min())


def voxel_sampling(points, voxel_size: float) -> np.ndarray:
    """One point per occupied voxel: the one nearest the centroid of the voxel's points.

    Voxels are cubes of side ``voxel_size`` anchored at the points' minimum corner. Ties go to
    the lowest index, so the result is deterministic.

    Returns:
        ``(M,)`` int64 sorted point ids, one per occupied voxel.
    """
    pts = as_points(points)
    if not np.isfinite(voxel_size) or voxel_size <= 0:
        raise MeshError(f"voxel_size must be a positive finite number; got {voxel_size}.")
    voxel, counts = _voxel_of(pts, voxel_size)
    centroids = np.stack([np.bincount(voxel, weights=c) for c in pts.T], axis=1) / counts[:, None]
    dist2 = ((pts - centroids[voxel]) ** 2).sum(axis=1)
    order = np.lexsort((dist2, voxel))                   # stable: equal distances keep id order
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.sort(order[first])


def _voxel_of(pts: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel number of each point ``(N,)`` and point count of each occupied voxel ``(V,)``."""
    shifted = pts - pts.min(axis=0)
    cell, dims = _voxel_cells(shifted, shifted.max(axis=0), voxel_size)
    if np.prod(dims.astype(float)) < 2.0 ** 62:
        _, voxel, counts = np.unique(np.ravel_multi_index(cell.T, dims), return_inverse=True,
                                     return_counts=True)
    else:                                                # too many voxels for one int64 key
        _, voxel, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    return voxel.reshape(-1), counts


def _voxel_cells(shifted: np.ndarray, span: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer voxel coordinates ``(N, d)`` of points given from their minimum corner, and the
    shape ``(d,)`` of the voxel grid (``span``: the largest coordinate along each axis)."""
    cell = np.floor(shifted / voxel_size).astype(np.int64)
    return cell, np.floor(span / voxel_size).astype(np.int64) + 1


def hierarchy(points, levels: int, ratio: float = 4.0, method: str = "fps",
              radius: float | None = None, k: int | None = None, finest_graph: bool = True,
              pooling: bool = True, coarse_nodes: int | None = None, tie: float = 0.0) -> Hierarchy:
    """Nested multi-scale node sets with a graph per level and pool/unpool edges between levels.

    Args:
        points: ``(N, d)`` coordinates.
        levels: number of levels including level 0 (all nodes), ``>= 1``.
        ratio: node-count reduction per level, ``> 1``: level ``l + 1`` has about
            ``len(level l) / ratio`` nodes.
        method: ``"fps"``: one farthest-point order of all nodes, level ``l`` its first
            ``round(N / ratio**l)`` entries (kept in FPS order); ``"bucket-fps"``: the same
            with the fast, not exact, FPS (``exact=False``); ``"voxel"``: voxel sampling
            of level ``l`` with the voxel size found by bisection to give about that count
            (ids sorted).
        radius: radius of the level-0 graph; level ``l`` uses ``radius * ratio**(l / d)``, the
            growth of the node spacing. Default: per level, the mean distance from a node to its
            16th nearest neighbour, so nodes have ~16 neighbours on average.
        k: build kNN graphs with ``k`` neighbours instead of radius graphs (``min(k, n_l - 1)``
            on small levels). Give at most one of ``radius`` and ``k``.
        finest_graph: build the level-0 graph; ``False`` leaves ``edges[0]`` empty, for callers
            that have their own graph on the mesh (MGNO uses the model's) — the largest graph,
            so the most expensive to build.
        pooling: build the ``down`` / ``up`` pooling edges; ``False`` leaves them empty, for
            callers with their own transfers between levels (MGNO).
        coarse_nodes: at most this many nodes on level 1 (the levels below still divide by
            ``ratio``). With voxel sampling the coarse levels of a finely meshed part then depend
            on its shape, not on its mesh: the same ~``coarse_nodes`` voxels at any resolution.
        tie: kNN graphs count distances within ``tie`` of the ``k``-th as equal (lowest level-
            local id wins, :func:`~meshop.geometry.neighbors.nearest_ids`); 0: exact kNN.

    Returns:
        a :class:`Hierarchy`; see the module docstring for its index conventions.
    """
    pts = as_points(points)
    _check_hierarchy_args(levels, ratio, method, radius, k, coarse_nodes)
    sizes = [len(pts)]
    for level in range(1, levels):
        size = max(1, round(sizes[-1] / ratio))
        sizes.append(min(size, int(coarse_nodes)) if level == 1 and coarse_nodes is not None else size)
    indices = [np.arange(len(pts), dtype=np.int64)]
    coarse_in_fine = []
    if method in ("fps", "bucket-fps") and levels > 1:
        order = farthest_point_sampling(pts, sizes[1], exact=method == "fps")
        coarse_in_fine = [order] + [np.arange(s, dtype=np.int64) for s in sizes[2:]]
    for level in range(1, levels):
        if method == "voxel":
            fine = pts[indices[-1]]
            coarse_in_fine.append(voxel_sampling(fine, _voxel_size_for(fine, sizes[level])))
        indices.append(indices[-1][coarse_in_fine[level - 1]])
    graphs = [_level_graph(pts[ids], level, ratio, radius, k, tie) if level or finest_graph
              else (np.empty((2, 0), dtype=np.int64), None) for level, ids in enumerate(indices)]
    if pooling:
        down, up = _pooling_edges(pts, indices, coarse_in_fine)
    else:
        down, up = ([np.empty((2, 0), dtype=np.int64) for _ in range(levels - 1)] for _ in range(2))
    return Hierarchy(indices, [g for g, _ in graphs], down, up, coarse_in_fine,
                     [r for _, r in graphs], method)


def _pooling_edges(pts: np.ndarray, indices: list[np.ndarray], coarse_in_fine: list[np.ndarray]
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``down`` and ``up`` edges between consecutive levels: every fine node pools into its
    nearest coarse node (see the module docstring)."""
    down, up = [], []
    for level in range(len(indices) - 1):
        fine = np.arange(len(indices[level]), dtype=np.int64)
        coarse = _nearest_coarse(pts[indices[level]], pts[indices[level + 1]], coarse_in_fine[level])
        down.append(sort_edges(fine, coarse, len(fine)))
        up.append(np.stack([coarse, fine]))              # already sorted by target
    return down, up


def _level_graph(pts: np.ndarray, level: int, ratio: float, radius: float | None,
                 k: int | None, tie: float = 0.0) -> tuple[np.ndarray, float | None]:
    """The graph within one level (level-local ids) and its radius (None for kNN)."""
    none = np.empty((2, 0), dtype=np.int64)
    if k is not None:
        return (knn_graph(pts, min(k, len(pts) - 1), tie=tie) if len(pts) > 1 else none), None
    r = radius * ratio ** (level / pts.shape[1]) if radius is not None else _spacing(pts)
    return (radius_graph(pts, r) if r > 0 else none), float(r)


def _check_hierarchy_args(levels, ratio, method, radius, k, coarse_nodes) -> None:
    if int(levels) != levels or levels < 1:
        raise MeshError(f"levels must be a positive integer; got {levels}.")
    if not np.isfinite(ratio) or ratio <= 1:
        raise MeshError(f"ratio must be a finite number > 1; got {ratio}.")
    if method not in ("fps", "bucket-fps", "voxel"):
        raise MeshError(f"method must be 'fps', 'bucket-fps' or 'voxel'; got {method!r}.")
    if radius is not None and k is not None:
        raise MeshError("give at most one of radius and k.")
    if radius is not None and (not np.isfinite(radius) or radius <= 0):
        raise MeshError(f"radius must be a positive finite number; got {radius}.")
    if k is not None and (int(k) != k or k < 1):
        raise MeshError(f"k must be a positive integer; got {k}.")
    if coarse_nodes is not None and (int(coarse_nodes) != coarse_nodes or coarse_nodes < 1):
        raise MeshError(f"coarse_nodes must be a positive integer; got {coarse_nodes}.")


def _spacing(pts: np.ndarray, samples: int = 2000) -> float:
    """Mean distance to the 16th nearest neighbour over an evenly strided subset of nodes
    (0 for a single node)."""
    k = min(DEFAULT_NEIGHBORS, len(pts) - 1)
    if k < 1:
        return 0.0
    probe = pts[:: max(1, len(pts) // samples)]
    dist, _ = cKDTree(pts).query(probe, k=k + 1, workers=-1)
    return float(dist[:, k].mean())


def _voxel_size_for(pts: np.ndarray, target: int, tol: float = 0.05) -> float:
    """Voxel size giving about ``target`` occupied voxels, by geometric bisection; where the count
    jumps past the target (points on a grid: 343 then 512 voxels), the size whose count came
    closest, once the bracket is 0.1 % wide."""
    shifted = pts - pts.min(axis=0)
    span = shifted.max(axis=0)
    extent = float(span.max()) or 1.0
    lo, hi = extent * 1e-9, extent * 1.001               # ~all points vs. a single voxel
    best = (np.inf, hi)
    while hi > 1.001 * lo:
        mid = np.sqrt(lo * hi)
        count = _occupied_voxels(shifted, span, mid)
        best = min(best, (abs(count - target), mid))
        if abs(count - target) <= tol * target:
            break
        lo, hi = (mid, hi) if count > target else (lo, mid)
    return best[1]


def _occupied_voxels(shifted: np.ndarray, span: np.ndarray, voxel_size: float) -> int:
    """Number of voxels of side ``voxel_size`` holding some of the points ``shifted (N, d)``
    (coordinates from their minimum corner, largest ``span``); as ``len(_voxel_of(...)[1])``,
    by a bincount instead of a sort when the grid is small."""
    cell, dims = _voxel_cells(shifted, span, voxel_size)
    if np.prod(dims.astype(float)) >= 2.0 ** 62:         # too many voxels for one int64 key
        return len(np.unique(cell, axis=0))
    keys = np.ravel_multi_index(cell.T, dims)
    if dims.prod() <= 8 * len(keys):
        return int(np.count_nonzero(np.bincount(keys, minlength=int(dims.prod()))))
    return len(np.unique(keys))


def _nearest_coarse(fine: np.ndarray, coarse: np.ndarray, coarse_in_fine: np.ndarray) -> np.ndarray:
    """``(n_fine,)`` level-local id of the coarse node nearest to each fine node."""
    _, nearest = cKDTree(coarse).query(fine, k=1, workers=-1)
    nearest = nearest.astype(np.int64)
    nearest[coarse_in_fine] = np.arange(len(coarse))     # a coarse node pools into itself
    return nearest
