"""Neighbour graphs on scipy's ``cKDTree``: radius, k-nearest and mesh-edge graphs.

Every graph is an edge index ``(2, E)`` int64 in PyG's convention: row 0 holds the source node,
row 1 the target node, and messages flow source -> target. Both directions of every undirected
edge are present, and edges are sorted by target, then source, so the output is deterministic
and the in-neighbours of each node form one contiguous run.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from ..errors import MeshError
from .cells import CORNERS, FACETS, TOPOLOGICAL_DIM, corners, linear_type


#: pairs from which a radius graph is assembled in the compiled library (smaller: no torch import)
COMPILED_PAIRS = 1 << 18


class NeighborCapWarning(UserWarning):
    """A neighbour cap (``max_neighbors``) dropped edges: some nodes kept only their nearest."""


def as_points(points, name: str = "points") -> np.ndarray:
    """``points`` as a C-contiguous float64 ``(N, d)`` array; :class:`MeshError` if unusable."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MeshError(f"{name} must be a non-empty (N, d) array; got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise MeshError(f"{name}: {bad} point(s) have NaN or infinite coordinates.")
    return np.ascontiguousarray(arr)


def radius_graph(points, r: float, max_neighbors: int | None = None,
                 loop: bool = False) -> np.ndarray:
    """Edges between all pairs of points at distance ``<= r``, in both directions.

    Args:
        points: ``(N, d)`` coordinates.
        r: radius, in the units of ``points``; must be positive.
        max_neighbors: keep at most this many in-neighbours per node, the nearest ones (ties
            broken by lower index). When it drops edges a :class:`NeighborCapWarning` says how
            many nodes were affected; the capped graph is no longer symmetric.
        loop: add the self loop ``i -> i`` of every node (not counted by ``max_neighbors``).

    Returns:
        ``(2, E)`` int64 edge index, sorted by target then source.
    """
    pts = as_points(points)
    if not np.isfinite(r) or r <= 0:
        raise MeshError(f"radius r must be a positive finite number; got {r}.")
    if max_neighbors is not None and (int(max_neighbors) != max_neighbors or max_neighbors < 1):
        raise MeshError(f"max_neighbors must be a positive integer or None; got {max_neighbors}.")
    n = len(pts)
    pairs = cKDTree(pts).query_pairs(r, output_type="ndarray")     # (P, 2), i < j, no repeats
    edges = _both_directions(pairs, n, loop and max_neighbors is None)
    del pairs
    if max_neighbors is not None:
        edges = _cap_in_degree(pts, edges, int(max_neighbors), r)
        if loop:
            self_loops = np.arange(n, dtype=np.int64)
            edges = sort_edges(np.concatenate([edges[0], self_loops]),
                               np.concatenate([edges[1], self_loops]), n, merge=False)
    return edges


def _both_directions(pairs: np.ndarray, n: int, loops: bool) -> np.ndarray:
    """Sorted ``(2, E)`` edge index of unique ``(P, 2)`` pairs in both directions (and self loops):
    in meshop's compiled library where it runs and the graph is large (it is built with the
    kernel sums and imports torch), else through :func:`sort_edges`."""
    if len(pairs) >= COMPILED_PAIRS:
        from ..nn import compiled

        if compiled.available():
            return compiled.pair_edges(pairs, n, loops)
    self_loops = np.arange(n if loops else 0)
    ids = _index_dtype(n, 2 * len(pairs) + len(self_loops))
    src = np.concatenate([pairs[:, 0], pairs[:, 1], self_loops], dtype=ids, casting="same_kind")
    dst = np.concatenate([pairs[:, 1], pairs[:, 0], self_loops], dtype=ids, casting="same_kind")
    return sort_edges(src, dst, n)                                   # nothing to merge: pairs are unique


def knn_graph(points, k: int, loop: bool = False, tie: float = 0.0) -> np.ndarray:
    """Edges ``j -> i`` from each of the ``k`` nearest neighbours ``j`` of every node ``i``.

    Args:
        points: ``(N, d)`` coordinates.
        k: neighbours per node, ``1 <= k < N`` (``k <= N`` with ``loop``).
        loop: count the node itself as one of its ``k`` neighbours (PyG's convention), giving
            a self loop per node.
        tie: distances within ``tie`` of the ``k``-th nearest count as equal (see
            :func:`nearest_ids`); 0 keeps the exact ``k`` nearest.

    Returns:
        ``(2, N * k)`` int64 edge index, sorted by target then source. Every node has in-degree
        exactly ``k``; the graph is not symmetric in general. Equidistant neighbours are
        chosen in the kd-tree's order (deterministic), or by lowest id with ``tie``.
    """
    pts = as_points(points)
    n = len(pts)
    limit = n if loop else n - 1
    if int(k) != k or k < 1 or k > limit:
        raise MeshError(f"k must be an integer in [1, {limit}] for {n} points"
                        f"{' with loop=True' if loop else ' (k < N)'}; got {k}.")
    k = int(k)
    others = k - 1 if loop else k
    src = _nearest_others(pts, others, tie)                  # (N, others)
    if loop:
        src = np.concatenate([src, np.arange(n, dtype=np.int64)[:, None]], axis=1)
    src.sort(axis=1)
    edges = np.empty((2, n * k), dtype=np.int64)
    edges[0] = src.reshape(-1)
    edges[1].reshape(n, k)[:] = np.arange(n)[:, None]
    return edges


def mesh_edges(mesh) -> np.ndarray:
    """Unique edges of a mesh's cells (corner nodes only), in both directions.

    Args:
        mesh: a :class:`meshop.Mesh` (anything with ``cells`` type -> ``(M, k)`` and
            ``n_points``); cell blocks of every dimension contribute: the 3 edges of a triangle,
            4 of a quad, 6 of a tetra, 12 of a hexahedron, 9 of a wedge, 8 of a pyramid, 1 of
            a line. Mid-side nodes of higher-order cells are ignored. A point cloud has none.

    Returns:
        ``(2, 2 * E_unique)`` int64 edge index, sorted by target then source.
    """
    n = int(mesh.n_points)
    blocks = []
    for cell_type, conn in mesh.cells.items():
        if cell_type not in TOPOLOGICAL_DIM:
            raise MeshError(f"mesh_edges: cell type '{cell_type}' is not supported.")
        if len(conn) == 0 or TOPOLOGICAL_DIM[cell_type] == 0:
            continue
        c = corners(cell_type, np.asarray(conn, dtype=np.int64))
        local = np.asarray(local_edges(linear_type(cell_type)))      # (e, 2)
        blocks.append(c[:, local].reshape(-1, 2))
    if not blocks:
        return np.empty((2, 0), dtype=np.int64)
    pairs = np.concatenate(blocks)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]                           # collapsed corners
    both = np.concatenate([pairs, pairs[:, ::-1]])
    return sort_edges(both[:, 0], both[:, 1], n)                         # merges shared edges


def sort_edges(src: np.ndarray, dst: np.ndarray, n: int, merge: bool = True) -> np.ndarray:
    """Edge index ``(2, E)`` of edges ``src -> dst`` (node ids < ``n``), sorted by target then
    source; ``merge``: merge duplicate edges (``False`` keeps them).

    Merging, with at least as many edges as nodes: scipy's COO -> CSR conversion (a counting
    sort by target in C++, duplicates summed, each row's sources sorted), in 32-bit indices
    where they fit; at 15M edges on 1M nodes 1.5-2.5x faster than the sort of keys below,
    whose memory does not grow with ``n``: one in-place sort of int64 keys
    ``target << b | source`` (numpy's SIMD sort), then a split.
    """
    if merge and 0 < n <= len(src):
        return _csr_sorted(src, dst, n)
    bits = _key_bits(n)
    key = np.left_shift(dst, bits, dtype=np.int64)
    key |= src
    key.sort()
    if merge and len(key):
        key = key[np.r_[True, key[1:] != key[:-1]]]
    out = np.empty((2, len(key)), dtype=np.int64)
    np.bitwise_and(key, (1 << bits) - 1, out=out[0])
    np.right_shift(key, bits, out=out[1])
    return out


def _csr_sorted(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """:func:`sort_edges` with ``merge`` through a CSR matrix whose row ``i`` lists ``i``'s sources."""
    ids = _index_dtype(n, len(src))
    matrix = sparse.csr_array((np.ones(len(src), dtype=bool), (dst.astype(ids, copy=False),
                                                              src.astype(ids, copy=False))), shape=(n, n))
    matrix.sort_indices()                                   # a no-op: the conversion sorted them
    out = np.empty((2, matrix.nnz), dtype=np.int64)
    out[0] = matrix.indices
    out[1] = np.repeat(np.arange(n, dtype=np.int64), np.diff(matrix.indptr))
    return out


def _index_dtype(n: int, n_edges: int) -> type:
    """int32 where node ids and edge counts fit, else int64."""
    return np.int32 if max(n, n_edges) < 2**31 else np.int64


def local_edges(cell_type: str) -> list[tuple[int, int]]:
    """Edges of a linear cell type as sorted local corner pairs, derived from its facets.

    A 2D cell's edges are the sides of its polygon; a 3D cell's are the sides of its facets.
    """
    tdim = TOPOLOGICAL_DIM[cell_type]
    if tdim == 1:
        return [(0, 1)]
    polygons = [tuple(range(CORNERS[cell_type]))] if tdim == 2 else FACETS[cell_type]
    sides = {tuple(sorted((f[i], f[(i + 1) % len(f)]))) for f in polygons for i in range(len(f))}
    return sorted(sides)


# --------------------------------------------------------------------------- helpers
def _key_bits(n: int) -> int:
    """Bits of a node id below ``n`` in an edge key; two must fit in an int64."""
    bits = max(int(n - 1).bit_length(), 1)
    if 2 * bits > 62:
        raise MeshError(f"{n} nodes are too many for an edge index (at most 2**31).")
    return bits


def _cap_in_degree(pts: np.ndarray, edges: np.ndarray, cap: int, r: float) -> np.ndarray:
    """Keep the ``cap`` nearest in-neighbours of every node; warn when anything is dropped."""
    src, dst = edges
    degree = np.bincount(dst, minlength=len(pts))
    over = degree > cap
    if not over.any():
        return edges
    # only the over-full nodes' edges need distances; edges are in (target, source) order and
    # lexsort is stable, so this orders them by (target, distance, source)
    pos = np.flatnonzero(over[dst])
    dist2 = ((pts[src[pos]] - pts[dst[pos]]) ** 2).sum(axis=1)
    order = pos[np.lexsort((dist2, dst[pos]))]
    starts = np.searchsorted(dst[order], dst[order], side="left")
    rank = np.arange(len(order)) - starts
    keep = np.ones(len(src), dtype=bool)
    keep[order[rank >= cap]] = False                     # a mask keeps the (target, source) order
    warnings.warn(
        f"radius_graph: {int(over.sum())} of {len(pts)} nodes have more than {cap} neighbours "
        f"within r={r:g} (up to {int(degree.max())}); kept the {cap} nearest of each. Raise "
        f"max_neighbors or lower r to keep them all.", NeighborCapWarning, stacklevel=3)
    return edges[:, keep]


def _nearest_others(pts: np.ndarray, k: int, tie: float = 0.0) -> np.ndarray:
    """``(N, k)`` ids of the ``k`` nearest points of each point, excluding the point itself."""
    n = len(pts)
    if k == 0:
        return np.empty((n, 0), dtype=np.int64)
    if tie > 0:
        return nearest_ids(pts, pts, k, tie, exclude_self=True)
    tree = cKDTree(pts)
    # queries in the tree's own point order are cache-friendly, far cheaper than input order
    _, found = _candidates(tree, pts, tree.indices, k, exclude_self=True)
    out = np.empty((n, k), dtype=np.int64)
    out[tree.indices] = found
    return out


def nearest_ids(source: np.ndarray, query: np.ndarray, k: int, tie: float,
                exclude_self: bool = False) -> np.ndarray:
    """``(n_query, k)`` ids of ``k`` nearest ``source (n, d)`` points of each ``query`` point,
    where distances within ``tie`` of the ``k``-th nearest count as equal and the lowest ids win.

    Why: meshes are full of exact and near ties (equal distances on regular surface meshes and
    symmetric parts). A plain k-nearest query settles them by rounding noise, so the same part
    shifted far away (coordinates rounded differently by ~1e-16 of the offset) picks other
    neighbours. Here the neighbours nearer than ``d_k - tie`` are kept and the rest are filled
    from the band ``|d - d_k| <= tie`` by id: the choice changes only when a distance moves
    across ``d_k +- tie``, i.e. for gaps of about ``tie``, which are rare where gaps cluster at 0.
    ``exclude_self``: ``query`` is ``source``; a point is not its own neighbour (ids compared).
    """
    tree = cKDTree(source)
    # one candidate beyond k tells which rows have a tie at the k-th; only those look further
    order = tree.indices if exclude_self else np.arange(len(query))   # tree order: cache-friendly
    dist, ids = _candidates(tree, query, order, k + 1, exclude_self)
    out = np.empty((len(query), k), dtype=np.int64)
    out[order] = ids[:, :k]
    tied = order[dist[:, k] <= dist[:, k - 1] + tie] if dist.shape[1] > k else order[:0]
    extra = max(4, k // 2)
    while len(tied):
        dist, ids = _candidates(tree, query, tied, k + 1 + extra, exclude_self)
        kth = dist[:, k - 1: k]
        cls = np.where(dist < kth - tie, 0, np.where(dist <= kth + tie, 1, 2))
        key = cls * len(source) + np.where(cls == 1, ids, 0)      # sure first, then band by id
        out[tied] = np.take_along_axis(ids, np.argsort(key, axis=1, kind="stable")[:, :k], axis=1)
        # rows whose band may continue past the last candidate ask again for more
        tied = tied[(dist[:, -1] <= kth[:, 0] + tie) & (dist.shape[1] < len(source) - exclude_self)]
        extra *= 2
    return out


def _candidates(tree: cKDTree, query: np.ndarray, rows: np.ndarray, m: int, exclude_self: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Distances and ids ``(len(rows), <= m)`` of the nearest tree points of ``query[rows]``,
    nearest first, without the query point itself with ``exclude_self``."""
    m = min(m + int(exclude_self), tree.n)
    dist, ids = tree.query(query[rows], k=m, workers=-1)
    dist, ids = dist.reshape(len(rows), m), ids.reshape(len(rows), m).astype(np.int64)
    return _without_self(dist, ids, rows) if exclude_self else (dist, ids)


def _without_self(dist: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lists ``(n, m - 1)`` without the query point itself (the farthest candidate
    goes where the point is missing: duplicate points may push it out of its own list)."""
    others = ids != rows[:, None]
    others[others.all(axis=1), -1] = False
    shape = (len(ids), ids.shape[1] - 1)
    return dist[others].reshape(shape), ids[others].reshape(shape)
