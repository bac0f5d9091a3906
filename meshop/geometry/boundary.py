"""Boundaries of meshes and point clouds: facets, nodes, outward normals, distance to boundary.

A volume mesh's boundary is made of the facets used by exactly one cell of the highest
topological dimension (mixed meshes included; the mid-edge / mid-face nodes of higher-order
cells on those facets are boundary nodes too). A surface mesh (3D points, only 2D cells) *is*
a boundary: all its nodes are boundary nodes. A point cloud's boundary is estimated
(see :func:`point_cloud_boundary`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .cells import TOPOLOGICAL_DIM, corners, facet_nodes


@dataclass(frozen=True)
class BoundaryFacets:
    """Boundary facets of a mesh.

    Attributes:
        facets: ``(F, 4)`` corner node ids padded with -1 (segments use 2 columns, triangles
            3, quads 4).
        normals: ``(F, d)`` unit outward normal of each facet.
        measures: ``(F,)`` length or area of each facet.
        extra_nodes: ``(F, e)`` higher-order nodes (mid-edge, mid-face) on each facet, padded
            with -1; ``e == 0`` for linear meshes.
    """

    facets: np.ndarray
    normals: np.ndarray
    measures: np.ndarray
    extra_nodes: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.extra_nodes is None:
            object.__setattr__(self, "extra_nodes", np.empty((len(self.facets), 0), np.int64))

    def all_nodes(self) -> np.ndarray:
        """``(F, 4 + e)`` every node on each facet (corners, then higher-order), -1 padded."""
        return np.hstack([self.facets, self.extra_nodes])

    def nodes(self) -> np.ndarray:
        """Sorted unique node ids on the boundary, higher-order nodes included."""
        ids = self.all_nodes()
        return np.unique(ids[ids >= 0])


def boundary_facets(points: np.ndarray, cells: dict[str, np.ndarray]) -> BoundaryFacets:
    """Facets used by exactly one top-dimensional cell, with outward normals.

    Args:
        points: ``(N, d)`` coordinates, d in {2, 3}.
        cells: cell type -> ``(M, k)`` connectivity; only blocks whose topological dimension
            equals d are used (the lines and triangles gmsh stores along with tetrahedra are
            ignored).

    The facets' corners are ordered so that the right-hand rule gives the outward normal
    (segments in 2D: the outward normal is the tangent turned clockwise).
    """
    dim = points.shape[1]
    # facets grouped by corner count; each facet is (block, local facet) x cell
    groups: dict[int, list[tuple[str, int, list[int]]]] = {}
    for cell_type, conn in cells.items():
        if TOPOLOGICAL_DIM.get(cell_type) == dim and len(conn):
            for j, (local, _) in enumerate(facet_nodes(cell_type)):
                groups.setdefault(len(local), []).append((cell_type, j, list(local)))
    narrow = len(points) < 2 ** 31          # ids as int32: half the memory of the facet columns
    rows, extras, owners = [], [], []
    for size, parts in groups.items():
        once = _used_once([_sorted_columns(cells[t][:, local], narrow) for t, _, local in parts])
        start = 0
        for cell_type, j, local in parts:
            conn = cells[cell_type]
            hit = np.flatnonzero(once[start:start + len(conn)])
            start += len(conn)
            owning = conn[hit]                  # the cells of the boundary facets, gathered once
            row = np.full((len(hit), 4), -1, dtype=np.int64)
            row[:, :size] = owning[:, local]
            rows.append(row)
            extras.append(owning[:, list(facet_nodes(cell_type)[j][1])])
            owners.append(points[corners(cell_type, owning)].mean(axis=1))
    if not rows:
        return BoundaryFacets(np.empty((0, 4), np.int64), np.empty((0, dim)), np.empty(0))
    width = max(e.shape[1] for e in extras)
    extras = np.concatenate([np.pad(e, ((0, 0), (0, width - e.shape[1])), constant_values=-1)
                             for e in extras])
    facets, owners = np.concatenate(rows), np.concatenate(owners)
    normals, measures = _facet_normals(points, facets)
    # orient outward: away from the centroid of the single cell that owns the facet
    flip = np.einsum("fd,fd->f", normals, _facet_centres(points, facets) - owners) < 0
    normals[flip] *= -1
    corner_count = (facets >= 0).sum(axis=1)
    for count in np.unique(corner_count[flip]):
        rows_to_flip = np.flatnonzero(flip & (corner_count == count))
        facets[rows_to_flip, :count] = facets[rows_to_flip, count - 1::-1]
    return BoundaryFacets(facets, normals, measures, extras)


def _sorted_columns(ids: np.ndarray, narrow: bool = False) -> list[np.ndarray]:
    """The columns of ``ids (M, c)``, c <= 4, sorted across each row by a min/max network
    (several times faster than ``np.sort(axis=1)`` on millions of short rows); ``narrow``: as
    int32 (the ids must fit)."""
    cols = [ids[:, i].astype(np.int32) if narrow else ids[:, i] for i in range(ids.shape[1])]
    network = {1: [], 2: [(0, 1)], 3: [(0, 1), (1, 2), (0, 1)],
               4: [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]}[len(cols)]
    for i, j in network:
        cols[i], cols[j] = np.minimum(cols[i], cols[j]), np.maximum(cols[i], cols[j])
    return cols


def _used_once(parts: list[list[np.ndarray]], key_bits: int = 62) -> np.ndarray:
    """``(F,)`` bool: which facets occur exactly once, the facets given as blocks of sorted
    id columns (concatenated in order).

    Each facet is packed into one int64 key (a 1D sort is several times faster than sorting
    rows). Where the ids are too many for one key (c columns of n ids need n^c < 2^key_bits:
    1.6M nodes for triangles), the facets are bucketed by their smallest id, which a facet's
    copies share, and keyed within each bucket (a 10M-node tetrahedral mesh: ~220 buckets).
    Measured on a 2.5M-node cube (14.8M tetrahedra): 11.5 s and a 3.1 GiB process peak, where
    sorting the facets' rows took 19.7 s and 7.7 GiB. Rows are still sorted where not even the
    columns after the first fit a key (quadrilateral facets of > 1.6M nodes).
    """
    columns = [np.concatenate(c) for c in zip(*parts)]
    n = max(int(c.max()) for c in columns) + 1
    rest = n ** (len(columns) - 1)                      # key range of the columns after the first
    per_bucket = 2 ** key_bits // rest                  # first-column ids per bucket
    if per_bucket >= n:
        return _once_in(_facet_keys(columns, n, 0, slice(None)))
    if per_bucket == 0:                                 # not even one id's keys fit: sort the rows
        return _rows_once(columns)
    bucket = (columns[0] // per_bucket).astype(np.int32)
    order = np.argsort(bucket, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(bucket))]
    del bucket
    once = np.empty(len(columns[0]), dtype=bool)
    for b in range(len(bounds) - 1):
        rows = order[bounds[b]:bounds[b + 1]]
        once[rows] = _once_in(_facet_keys(columns, n, b * per_bucket, rows))
    return once


def _rows_once(columns: list[np.ndarray]) -> np.ndarray:
    """:func:`_used_once` by a lexicographic sort of the facets' id rows (no key needed)."""
    order = np.lexsort(columns[::-1])
    rows = np.stack(columns, axis=1)[order]
    starts = np.r_[True, (rows[1:] != rows[:-1]).any(axis=1)]
    group = np.cumsum(starts) - 1
    once = np.empty(len(rows), dtype=bool)
    once[order] = np.bincount(group)[group] == 1
    return once


def _facet_keys(columns: list[np.ndarray], n: int, first: int, rows) -> np.ndarray:
    """int64 keys of the facets ``rows``: their sorted ids in base ``n``, the first less ``first``."""
    key = columns[0][rows].astype(np.int64) - first
    for column in columns[1:]:
        key = key * n + column[rows]
    return key


def _once_in(key: np.ndarray) -> np.ndarray:
    """``(F,)`` bool: which of the ``key`` values occur exactly once."""
    unique, counts = np.unique(key, return_counts=True)
    single = unique[counts == 1]
    if not len(single):
        return np.zeros(len(key), dtype=bool)
    return single[np.minimum(np.searchsorted(single, key), len(single) - 1)] == key


def enclosed_measure(points: np.ndarray, boundary: BoundaryFacets) -> float:
    """Volume (area in 2D) of the part whose closed boundary is ``boundary``, by the divergence
    theorem: ``(1/d) sum_f (x_f . n_f) |f|`` over the facets (centre x_f, outward normal n_f);
    O(facets), where summing the cells would be O(cells). Best with centred ``points``."""
    centres = _facet_centres(points, boundary.facets)
    flux = np.einsum("fd,fd->f", centres, boundary.normals) * boundary.measures
    return float(flux.sum() / points.shape[1])


def _facet_centres(points: np.ndarray, facets: np.ndarray) -> np.ndarray:
    valid = facets >= 0
    p = points[np.where(valid, facets, 0)] * valid[..., None]
    return p.sum(axis=1) / valid.sum(axis=1, keepdims=True)


def _facet_normals(points: np.ndarray, facets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals ``(F, d)`` (sign follows the corner order) and measures ``(F,)`` of
    segments (2D) or triangles/quads (3D)."""
    if points.shape[1] == 2:
        tangent = points[facets[:, 1]] - points[facets[:, 0]]
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        length = np.linalg.norm(normal, axis=1)
        return normal / np.maximum(length, 1e-300)[:, None], length
    a, b, c = (points[facets[:, i]] for i in range(3))
    is_quad = facets[:, 3] >= 0
    d = points[np.where(is_quad, facets[:, 3], facets[:, 2])]
    # triangle: (b-a) x (c-a); quad: diagonals (c-a) x (d-b); both have norm 2 * area
    cross = np.where(is_quad[:, None], np.cross(c - a, d - b), np.cross(b - a, c - a))
    double_area = np.linalg.norm(cross, axis=1)
    return cross / np.maximum(double_area, 1e-300)[:, None], double_area / 2


def node_normals(n_points: int, facets: np.ndarray, facet_normals: np.ndarray,
                 facet_measures: np.ndarray) -> np.ndarray:
    """Measure-weighted average of the normals of the facets around each node, unit length.

    Nodes on no facet get a zero vector. Shapes: ``facets (F, k)`` node ids padded with -1
    (pass :meth:`BoundaryFacets.all_nodes` to include higher-order nodes), result
    ``(n_points, d)``.
    """
    dim = facet_normals.shape[1]
    acc = np.zeros((n_points, dim))
    weighted = facet_normals * facet_measures[:, None]
    for column in facets.T:
        ok = column >= 0
        for axis in range(dim):
            acc[:, axis] += np.bincount(column[ok], weighted[ok, axis], minlength=n_points)
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.divide(acc, norm, out=np.zeros_like(acc), where=norm > 0)


def surface_facets(points: np.ndarray, cells: dict[str, np.ndarray]) -> BoundaryFacets:
    """All triangles/quads of a surface mesh, normals oriented outward when the surface is closed.

    Orientation follows the cells' winding, flipped as a whole when the enclosed signed volume
    is negative (inward-wound files). Inconsistent winding is not repaired here.
    """
    rows, extras = [], []
    for cell_type, conn in cells.items():
        if TOPOLOGICAL_DIM[cell_type] != 2 or not len(conn):
            continue
        f = np.full((len(conn), 4), -1, dtype=np.int64)
        c = corners(cell_type, conn)
        f[:, : c.shape[1]] = c
        rows.append(f)
        extras.append(conn[:, c.shape[1]:])
    facets = np.concatenate(rows)
    width = max(e.shape[1] for e in extras)
    extra = np.full((len(facets), width), -1, dtype=np.int64)
    start = 0
    for e in extras:
        extra[start:start + len(e), : e.shape[1]] = e
        start += len(e)
    normals, measures = _facet_normals(points, facets)
    a = points[facets[:, 0]]
    signed_volume = np.einsum("fd,fd,f->", a, normals, measures) / 3.0
    if signed_volume < 0:
        normals = -normals
    return BoundaryFacets(facets, normals, measures, extra)


def facet_simplices(boundary: BoundaryFacets, dim: int) -> np.ndarray:
    """``(F', d)`` int64 boundary simplices, corners in the facets' outward order: the segments
    in 2D; in 3D the triangles, and each quad as its two triangles (0, 1, 2) and (0, 2, 3)."""
    facets = boundary.facets
    if dim == 2:
        simplices = facets[:, :2]
    else:
        quads = facets[:, 3] >= 0
        simplices = np.vstack([facets[:, :3], facets[quads][:, [0, 2, 3]]])
    return np.ascontiguousarray(simplices, dtype=np.int64)


def distance_to_facets(points: np.ndarray, boundary: BoundaryFacets, chunk: int = 1 << 20) -> np.ndarray:
    """Exact Euclidean distance ``(N,)`` from each point to the nearest boundary facet.

    Facets are segments (2D) or triangles and quads (3D; a quad is measured as its two
    triangles (0, 1, 2) and (0, 2, 3)). libigl's AABB tree
    (``igl.point_mesh_squared_distance``) finds the closest point on the facets; ``chunk``
    bounds the points queried at a time (each returns its closest point and facet).
    """
    import igl

    if len(boundary.facets) == 0:
        return np.full(len(points), np.inf)
    vertices = np.ascontiguousarray(points, dtype=np.float64)
    elements = facet_simplices(boundary, points.shape[1])
    squared = np.concatenate([igl.point_mesh_squared_distance(vertices[start:start + chunk], vertices, elements)[0]
                              for start in range(0, len(points), chunk)])
    return np.sqrt(squared)


def point_cloud_boundary(points: np.ndarray, k: int | None = None, threshold: float = 0.25,
                         mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Estimated boundary mask ``(N,)`` and outward normals ``(N, d)`` of a point cloud.

    Centroid-shift test (hand-written: no library offers it). The ``k`` nearest neighbours
    of an interior point surround it, so their centroid nearly coincides with it; at the
    boundary they lie on one side and the centroid moves inward by about 0.4 of the
    neighbourhood radius r_k (the distance to the k-th neighbour): 4/(3 pi) for a half-disk,
    3/8 for a half-ball. A point is on the boundary when ``|x - centroid| > threshold * r_k``.
    Random sampling makes interior centroids wander by ~ r_k / sqrt(k), hence the default
    ``k``: 32 in 2D, 48 in 3D. Its normal is the sum of the shifts ``x - centroid`` of the
    boundary points among its neighbours, normalised.

    Measured on uniform random samples (tests/test_boundary.py): a 20,000-point disk flags
    every point within half a spacing of the rim and about 2 % of those deeper than three
    spacings. Meant for clouds that fill an area (2D) or a volume (3D) with roughly uniform
    density; pass your own mask to :class:`meshop.Mesh` when it is known (``mask`` here: the
    test is skipped and only the normals are estimated, for the given boundary points).
    """
    dim = points.shape[1]
    k = min(k or (32 if dim == 2 else 48), len(points) - 1)
    if k < 1:
        return (np.ones(len(points), bool) if mask is None else mask), np.zeros_like(points)
    dist, idx = cKDTree(points).query(points, k=k + 1, workers=-1)
    # neighbour by neighbour, so memory stays O(N d) on million-point clouds
    centroid = np.zeros_like(points)
    for column in idx[:, 1:].T:
        centroid += points[column]
    shift = points - centroid / k                                      # (N, d)
    if mask is None:
        mask = np.linalg.norm(shift, axis=1) > threshold * dist[:, -1]
    boundary_shift = np.where(mask[:, None], shift, 0.0)
    summed = np.zeros_like(points)
    for column in idx.T:
        summed += boundary_shift[column]
    norm = np.linalg.norm(summed, axis=1, keepdims=True)
    normals = np.divide(summed, norm, out=np.zeros_like(summed), where=mask[:, None] & (norm > 0))
    return mask, normals
