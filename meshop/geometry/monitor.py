"""The mesh-density monitor of Monge–Ampère r-adaptation, and P1 fields evaluated at moved points.

``m = 1 + |∇u| / (β · mean|∇u|)``: |∇u| (Frobenius norm for a vector field) is constant per
triangle for a P1 field; it is recovered to the nodes as the area-weighted mean of the
surrounding cells (the lumped L2 projection) and read at any point as a P1 field.
"""

from __future__ import annotations

import numpy as np
from matplotlib.tri import Triangulation, TrapezoidMapTriFinder
from scipy.spatial import cKDTree

from ..errors import MeshError
from .moving import signed_areas

#: default β: the gradient term of the monitor averages 1/β
BETA = 0.2
#: nearest nodes whose triangles a point outside every triangle is placed in (P1Locator)
CANDIDATE_NODES = 3


def cell_gradients(points: np.ndarray, triangles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``(M, 2, c)`` gradient of the P1 interpolant of nodal ``values (N,)`` or ``(N, c)`` per cell."""
    values = np.asarray(values, dtype=np.float64).reshape(len(points), -1)
    a, b, c = (points[triangles[:, k]] for k in range(3))
    jacobian = np.stack([b - a, c - a], axis=2)                         # (M, 2, 2): columns e1, e2
    differences = np.stack([values[triangles[:, 1]] - values[triangles[:, 0]],
                            values[triangles[:, 2]] - values[triangles[:, 0]]], axis=1)  # (M, 2, c)
    return np.linalg.solve(np.transpose(jacobian, (0, 2, 1)), differences)


def recover_to_nodes(points: np.ndarray, triangles: np.ndarray, cell_values: np.ndarray) -> np.ndarray:
    """Area-weighted mean of ``cell_values (M, ...)`` over the cells around each node: ``(N, ...)``."""
    area = np.abs(signed_areas(points, triangles))
    weighted = (area.reshape(-1, *[1] * (cell_values.ndim - 1)) * cell_values)
    total = np.zeros((len(points),) + cell_values.shape[1:])
    weight = np.zeros(len(points))
    for k in range(3):
        np.add.at(total, triangles[:, k], weighted)
        np.add.at(weight, triangles[:, k], area)
    return total / np.maximum(weight, 1e-300).reshape(-1, *[1] * (cell_values.ndim - 1))


def monitor(points: np.ndarray, triangles: np.ndarray, u: np.ndarray, beta: float = BETA) -> np.ndarray:
    """``(N,)`` nodal monitor ``1 + |∇u| / (β · mean|∇u|)`` (the mean area-weighted over cells);
    1 everywhere for a constant field."""
    norm = np.linalg.norm(cell_gradients(points, triangles, u).reshape(len(triangles), -1), axis=1)
    area = np.abs(signed_areas(points, triangles))
    mean = float((norm * area).sum() / area.sum())
    if mean <= 0.0:
        return np.ones(len(points))
    return 1.0 + recover_to_nodes(points, triangles, norm) / (beta * mean)


class P1Locator:
    """Finds the triangle and barycentric coordinates of query points in a fixed triangle mesh.

    matplotlib's trapezoid-map point location (O(log M) per point, any valid triangulation, holes
    included). A point outside every triangle (a boundary node a rounding error outside, a
    point on an edge the finder misses) takes, by default, the corner of its nearest node in one
    of that node's triangles (what the classical mover was tuned with); with ``clip=True`` the
    triangle, among those around its :data:`CANDIDATE_NODES` nearest nodes, it is least outside
    of, its barycentric coordinates clipped to that triangle: on an edge, the edge's interpolation.
    """

    def __init__(self, points: np.ndarray, triangles: np.ndarray):
        self.points, self.triangles = np.asarray(points, dtype=np.float64), np.asarray(triangles)
        try:
            self._finder = TrapezoidMapTriFinder(Triangulation(self.points[:, 0], self.points[:, 1], self.triangles))
        except (RuntimeError, ValueError) as err:
            raise MeshError(f"cannot locate points in this triangle mesh ({err}).") from None
        self._tree = cKDTree(self.points)
        # the triangles around each node, padded with -1: (N, most triangles at a node)
        corners = self.triangles.ravel()
        order = np.argsort(corners, kind="stable")
        counts = np.bincount(corners, minlength=len(self.points))
        slot = np.arange(len(corners)) - np.repeat(np.cumsum(counts) - counts, counts)
        self._cells_of_node = np.full((len(self.points), max(int(counts.max()), 1)), -1, dtype=np.int64)
        self._cells_of_node[corners[order], slot] = order // 3
        self._last_cell_of_node = self._cells_of_node[np.arange(len(self.points)), np.maximum(counts - 1, 0)]

    def locate(self, x: np.ndarray, clip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``cells (n,)`` and barycentric coordinates ``(n, 3)`` of points ``x (n, 2)`` (``clip``:
        how a point outside every triangle is placed, see the class)."""
        cells = np.asarray(self._finder(x[:, 0], x[:, 1]), dtype=np.int64)
        bary = np.empty((len(x), 3))
        inside = cells >= 0
        bary[inside] = barycentric(self.points[self.triangles[cells[inside]]], x[inside])
        if not inside.all():
            place = self._nearest_cells if clip else self._nearest_corner
            cells[~inside], bary[~inside] = place(x[~inside])
        return cells, bary

    def _nearest_corner(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For points ``x (n, 2)`` outside every triangle: the last triangle of their nearest node,
        and that node's corner."""
        nearest = self._tree.query(x)[1]
        cells = self._last_cell_of_node[nearest]
        return cells, (self.triangles[cells] == nearest[:, None]).astype(np.float64)

    def _nearest_cells(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For points ``x (n, 2)`` outside every triangle: the triangle around their nearest nodes
        whose smallest barycentric coordinate is largest, and those coordinates clipped to it."""
        k = min(CANDIDATE_NODES, len(self.points))
        nearest = self._tree.query(x, k=k)[1].reshape(len(x), k)
        candidates = self._cells_of_node[nearest].reshape(len(x), -1)                # (n, c), -1 padded
        corners = self.points[self.triangles[np.maximum(candidates, 0)]]           # (n, c, 3, 2)
        n, c = candidates.shape
        bary = barycentric(corners.reshape(n * c, 3, 2), np.repeat(x, c, axis=0)).reshape(n, c, 3)
        score = np.where(candidates >= 0, bary.min(axis=2), -np.inf)
        best = np.argmax(score, axis=1)
        chosen = np.clip(bary[np.arange(n), best], 0.0, None)
        return candidates[np.arange(n), best], chosen / chosen.sum(axis=1, keepdims=True)

    def interpolate(self, values: np.ndarray, x: np.ndarray) -> np.ndarray:
        """P1 interpolant of nodal ``values (N, ...)`` at ``x (n, 2)``."""
        cells, bary = self.locate(x)
        return np.einsum("nk,nk...->n...", bary, values[self.triangles[cells]])


def barycentric(corners: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(n, 3)`` barycentric coordinates of ``x (n, 2)`` in triangles ``corners (n, 3, 2)``."""
    a = corners[:, 0]
    jacobian = np.stack([corners[:, 1] - a, corners[:, 2] - a], axis=2)
    local = np.linalg.solve(jacobian, (x - a)[..., None])[..., 0]        # (n, 2)
    return np.concatenate([1.0 - local.sum(1, keepdims=True), local], axis=1)
