"""Boundaries of meshes and point clouds: facets, nodes, outward normals, distance to boundary.

A volume mesh's boundary is made of the facets used by exactly one cell of the highest
topological dimension (mixed meshes included). A surface mesh (3D points, only 2D cells)
*is* a boundary: all its nodes are boundary nodes. A point cloud's boundary is estimated
(see :func:`point_cloud_boundary`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .cells import FACETS, TOPOLOGICAL_DIM, corners, linear_type


@dataclass(frozen=True)
class BoundaryFacets:
    """Boundary facets of a volume mesh.

    ``facets`` holds corner node ids ``(F, 4)`` padded with -1 (segments use 2 columns, triangles
    3, quads 4); ``normals`` the unit outward normal of each facet ``(F, d)``; ``measures`` its
    length or area ``(F,)``.
    """

    facets: np.ndarray
    normals: np.ndarray
    measures: np.ndarray

    def nodes(self) -> np.ndarray:
        """Sorted unique node ids on the boundary."""
        ids = self.facets[self.facets >= 0]
        return np.unique(ids)


def boundary_facets(points: np.ndarray, cells: dict[str, np.ndarray]) -> BoundaryFacets:
    """Facets used by exactly one top-dimensional cell, with outward normals.

    Args:
        points: ``(N, d)`` coordinates, d in {2, 3}.
        cells: cell type -> ``(M, k)`` connectivity; only blocks of the top dimension are used.
    """
    dim = points.shape[1]
    rows, owners_centroid = [], []
    for cell_type, conn in cells.items():
        if TOPOLOGICAL_DIM.get(cell_type) != dim or not len(conn):
            continue
        c = corners(cell_type, conn)
        centroid = points[c].mean(axis=1)                            # (M, d)
        for local in FACETS[linear_type(cell_type)]:
            f = np.full((len(c), 4), -1, dtype=np.int64)
            f[:, : len(local)] = c[:, local]
            rows.append(f)
            owners_centroid.append(centroid)
    if not rows:
        return BoundaryFacets(np.empty((0, 4), np.int64), np.empty((0, dim)), np.empty(0))
    facets = np.concatenate(rows)
    centroids = np.concatenate(owners_centroid)
    # a facet is identified by its sorted corner set, whatever the owning cell's orientation
    key = np.sort(np.where(facets < 0, np.iinfo(np.int64).max, facets), axis=1)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    once = first[counts == 1]
    facets, centroids = facets[once], centroids[once]
    normals, measures = _facet_normals(points, facets)
    # orient outward: away from the single cell that owns the facet
    centre = _facet_centres(points, facets)
    flip = np.einsum("fd,fd->f", normals, centre - centroids) < 0
    normals[flip] *= -1
    return BoundaryFacets(facets, normals, measures)


def _facet_centres(points: np.ndarray, facets: np.ndarray) -> np.ndarray:
    valid = facets >= 0
    p = points[np.where(valid, facets, 0)] * valid[..., None]
    return p.sum(axis=1) / valid.sum(axis=1, keepdims=True)


def _facet_normals(points: np.ndarray, facets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals ``(F, d)`` (arbitrary sign) and measures ``(F,)`` of segments/triangles/quads."""
    dim = points.shape[1]
    if dim == 2:
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

    Nodes on no facet get a zero vector. Shapes: ``facets (F, 4)``, result ``(n_points, d)``.
    """
    dim = facet_normals.shape[1]
    acc = np.zeros((n_points, dim))
    weighted = facet_normals * facet_measures[:, None]
    for column in range(facets.shape[1]):
        ids = facets[:, column]
        ok = ids >= 0
        np.add.at(acc, ids[ok], weighted[ok])
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.divide(acc, norm, out=np.zeros_like(acc), where=norm > 0)


def surface_facets(points: np.ndarray, cells: dict[str, np.ndarray]) -> BoundaryFacets:
    """All triangles/quads of a surface mesh, normals oriented outward when the surface is closed.

    Orientation follows the cells' winding, flipped as a whole when the enclosed signed volume
    is negative (inward-wound files). Inconsistent winding is not repaired here.
    """
    rows = []
    for cell_type, conn in cells.items():
        lin = linear_type(cell_type)
        if lin in ("triangle", "quad") and len(conn):
            f = np.full((len(conn), 4), -1, dtype=np.int64)
            f[:, : 3 if lin == "triangle" else 4] = corners(cell_type, conn)
            rows.append(f)
    facets = np.concatenate(rows)
    a, b, c = (points[facets[:, i]] for i in range(3))
    is_quad = facets[:, 3] >= 0
    d = points[np.where(is_quad, facets[:, 3], facets[:, 2])]
    cross = np.where(is_quad[:, None], np.cross(c - a, d - b), np.cross(b - a, c - a))
    double_area = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(double_area, 1e-300)[:, None]
    signed_volume = np.einsum("fd,fd->", a, cross) / 6.0
    if signed_volume < 0:
        normals = -normals
    return BoundaryFacets(facets, normals, double_area / 2)


def distance_to_facets(points: np.ndarray, boundary: BoundaryFacets, candidates: int = 8) -> np.ndarray:
    """Euclidean distance ``(N,)`` from each point to the boundary facets.

    Exact for each point's nearest facets: the facets touching its ``candidates`` nearest
    boundary nodes are searched with point-segment / point-triangle distances (quads split in
    two triangles). Found with scipy's cKDTree, so the cost is O(N log N).
    """
    nodes = boundary.nodes()
    if len(nodes) == 0:
        return np.full(len(points), np.inf)
    k = min(candidates, len(nodes))
    _, nearest = cKDTree(points[nodes]).query(points, k=k, workers=-1)
    nearest = nodes[nearest.reshape(len(points), k)]                 # (N, k) node ids
    # facets incident to each node, as a CSR table
    facets = boundary.facets
    flat = facets.ravel()
    owner = np.repeat(np.arange(len(facets)), facets.shape[1])[flat >= 0]
    flat = flat[flat >= 0]
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(len(points) + 1))
    best = np.full(len(points), np.inf)
    counts = starts[nearest + 1] - starts[nearest]                    # (N, k)
    for slot in range(int(counts.max())):
        has = counts > slot                                           # (N, k)
        q, j = np.nonzero(has)
        facet = owner[order[starts[nearest[q, j]] + slot]]
        dist = _point_facet_distance(points[q], points, facets[facet])
        np.minimum.at(best, q, dist)
    return best


def _point_facet_distance(q: np.ndarray, points: np.ndarray, facets: np.ndarray) -> np.ndarray:
    """Distance ``(M,)`` from points ``q (M, d)`` to facets ``(M, 4)`` (segments, triangles, quads)."""
    if points.shape[1] == 2:
        return _point_segment(q, points[facets[:, 0]], points[facets[:, 1]])
    a, b, c = (points[facets[:, i]] for i in range(3))
    dist = _point_triangle(q, a, b, c)
    is_quad = facets[:, 3] >= 0
    if is_quad.any():
        d = points[np.where(is_quad, facets[:, 3], facets[:, 2])]
        dist = np.where(is_quad, np.minimum(dist, _point_triangle(q, a, c, d)), dist)
    return dist


def _point_segment(q, a, b):
    ab = b - a
    t = np.einsum("md,md->m", q - a, ab) / np.maximum(np.einsum("md,md->m", ab, ab), 1e-300)
    closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return np.linalg.norm(q - closest, axis=1)


def _point_triangle(q, a, b, c):
    """Point-triangle distance: the plane distance when the projection falls inside, else the
    nearest edge."""
    n = np.cross(b - a, c - a)
    n_norm = np.linalg.norm(n, axis=1)
    n_unit = n / np.maximum(n_norm, 1e-300)[:, None]
    height = np.einsum("md,md->m", q - a, n_unit)
    proj = q - height[:, None] * n_unit
    inside = np.ones(len(q), dtype=bool)
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("md,md->m", np.cross(v - u, proj - u), n) >= 0
    edges = np.minimum(np.minimum(_point_segment(q, a, b), _point_segment(q, b, c)), _point_segment(q, c, a))
    return np.where(inside & (n_norm > 0), np.abs(height), edges)


def point_cloud_boundary(points: np.ndarray, k: int = 16, threshold: float = 0.25
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Estimated boundary mask ``(N,)`` and outward normals ``(N, d)`` of a point cloud.

    Centroid-shift test: for an interior point its ``k`` nearest neighbours surround it and
    their centroid nearly coincides with it; at the boundary they lie on one side, so the
    centroid shifts inward by a sizeable fraction of the neighbourhood radius. A point is on
    the boundary when ``|centroid - x| > threshold * (mean neighbour distance)``; its normal
    is the unit vector from the centroid to the point. Sampling density should be roughly
    uniform; pass your own mask to :class:`meshop.Mesh` when it is known.
    """
    k = min(k, len(points) - 1)
    if k < 1:
        return np.ones(len(points), bool), np.zeros_like(points)
    dist, idx = cKDTree(points).query(points, k=k + 1, workers=-1)
    neighbours = points[idx[:, 1:]]                                   # (N, k, d)
    shift = points - neighbours.mean(axis=1)                          # (N, d)
    shift_norm = np.linalg.norm(shift, axis=1)
    scale = dist[:, 1:].mean(axis=1)
    mask = shift_norm > threshold * scale
    normals = np.where(mask[:, None], shift / np.maximum(shift_norm, 1e-300)[:, None], 0.0)
    return mask, normals
