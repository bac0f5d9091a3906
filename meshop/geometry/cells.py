"""Cell-type tables: topological dimension, node counts and facets of each meshio cell type.

Node order is meshio's, which is VTK's (meshio converts gmsh and other orders on reading).
Facets are listed by local corner indices. Higher-order types (``triangle6``, ``tetra10``, ...)
reuse the facets of their linear parent; :func:`facet_nodes` adds, for each facet, the mid-edge
and mid-face nodes that lie on it, so they count as boundary nodes too.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: topological dimension of each supported cell type
TOPOLOGICAL_DIM = {
    "vertex": 0,
    "line": 1, "line3": 1,
    "triangle": 2, "triangle6": 2, "quad": 2, "quad8": 2, "quad9": 2,
    "tetra": 3, "tetra10": 3, "hexahedron": 3, "hexahedron20": 3, "hexahedron27": 3,
    "wedge": 3, "wedge15": 3, "pyramid": 3, "pyramid13": 3,
}

#: nodes per cell of each supported type
NODES_PER_CELL = {
    "vertex": 1, "line": 2, "line3": 3,
    "triangle": 3, "triangle6": 6, "quad": 4, "quad8": 8, "quad9": 9,
    "tetra": 4, "tetra10": 10, "hexahedron": 8, "hexahedron20": 20, "hexahedron27": 27,
    "wedge": 6, "wedge15": 15, "pyramid": 5, "pyramid13": 13,
}

#: the linear type whose corners come first in each higher-order type's node list
LINEAR_PARENT = {
    "line3": "line", "triangle6": "triangle", "quad8": "quad", "quad9": "quad",
    "tetra10": "tetra", "hexahedron20": "hexahedron", "hexahedron27": "hexahedron",
    "wedge15": "wedge", "pyramid13": "pyramid",
}

#: facets of linear cells, by local corner index (orientation is fixed later from geometry)
FACETS = {
    "line": [(0,), (1,)],
    "triangle": [(0, 1), (1, 2), (2, 0)],
    "quad": [(0, 1), (1, 2), (2, 3), (3, 0)],
    "tetra": [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)],
    "hexahedron": [(0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)],
    "wedge": [(0, 1, 2), (3, 4, 5), (0, 1, 4, 3), (1, 2, 5, 4), (2, 0, 3, 5)],
    "pyramid": [(0, 1, 2, 3), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)],
}

#: number of corner nodes of each linear type
CORNERS = {"vertex": 1, "line": 2, "triangle": 3, "quad": 4, "tetra": 4,
           "hexahedron": 8, "wedge": 6, "pyramid": 5}

_HEX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
              (0, 4), (1, 5), (2, 6), (3, 7)]
_QUAD_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0)]

#: for each higher-order type, the corners spanning the entity (edge, face, cell) each
#: non-corner node sits on, in node order after the corners (VTK order; checked against
#: VTK's parametric coordinates in tests/test_boundary.py)
HIGHER_ORDER_NODES = {
    "line3": [(0, 1)],
    "triangle6": [(0, 1), (1, 2), (2, 0)],
    "quad8": _QUAD_EDGES,
    "quad9": _QUAD_EDGES + [(0, 1, 2, 3)],
    "tetra10": [(0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)],
    "hexahedron20": _HEX_EDGES,
    "hexahedron27": _HEX_EDGES + [(0, 3, 7, 4), (1, 2, 6, 5), (0, 1, 5, 4), (3, 2, 6, 7),
                                  (0, 1, 2, 3), (4, 5, 6, 7), tuple(range(8))],
    "wedge15": [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3), (1, 4), (2, 5)],
    "pyramid13": [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4), (2, 4), (3, 4)],
}


def linear_type(cell_type: str) -> str:
    """The linear parent of ``cell_type`` (itself when already linear)."""
    return LINEAR_PARENT.get(cell_type, cell_type)


def corners(cell_type: str, connectivity: np.ndarray) -> np.ndarray:
    """Corner-node connectivity ``(M, CORNERS[linear])`` of a block of cells."""
    return connectivity[:, : CORNERS[linear_type(cell_type)]]


@lru_cache(maxsize=None)
def facet_nodes(cell_type: str) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Facets of ``cell_type`` as ``(corner ids, other node ids)`` pairs of local indices.

    The other nodes are the higher-order nodes lying on the facet: those whose spanning
    corners all belong to the facet (mid-edge nodes of its edges, its mid-face node).
    Empty for linear types.
    """
    lin = linear_type(cell_type)
    spans = HIGHER_ORDER_NODES.get(cell_type, [])
    first = CORNERS[lin]
    out = []
    for facet in FACETS[lin]:
        extra = tuple(first + i for i, span in enumerate(spans) if set(span) <= set(facet))
        out.append((facet, extra))
    return tuple(out)


def top_dimension(cells: dict[str, np.ndarray]) -> int:
    """Highest topological dimension among non-empty cell blocks (-1 when there are none)."""
    dims = [TOPOLOGICAL_DIM[t] for t, c in cells.items() if len(c)]
    return max(dims, default=-1)


#: split of each linear type into simplices, by local corner index
_SIMPLICES = {
    "line": [(0, 1)], "triangle": [(0, 1, 2)], "quad": [(0, 1, 2), (0, 2, 3)],
    "tetra": [(0, 1, 2, 3)],
    "hexahedron": [(0, 1, 3, 4), (1, 2, 3, 6), (1, 4, 5, 6), (3, 4, 6, 7), (1, 3, 4, 6)],
    "wedge": [(0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5)],
    "pyramid": [(0, 1, 2, 4), (0, 2, 3, 4)],
}


def simplex_measure(points: np.ndarray, cell_type: str, connectivity: np.ndarray) -> np.ndarray:
    """Unsigned size of each cell: length, area or volume ``(M,)``, from its corners.

    Quads, hexahedra, wedges and pyramids are split into simplices; the measure is the sum of
    their absolute sizes, so a cell is degenerate exactly when every sub-simplex is.
    Higher-order cells are measured by their corners (straight-sided).
    """
    return _measure_and_extent(points, cell_type, connectivity)[0]


def degenerate_cells(points: np.ndarray, cell_type: str, connectivity: np.ndarray,
                     rtol: float = 1e-12) -> np.ndarray:
    """``(M,)`` bool: cells whose measure is below ``rtol * extent**dim``, the extent being
    the longest edge from the first corner of its simplices (at least half the cell's
    diameter), so tiny cells in large meshes are judged by their own size."""
    measure, extent = _measure_and_extent(points, cell_type, connectivity)
    return measure <= rtol * extent ** TOPOLOGICAL_DIM[cell_type]


def _measure_and_extent(points: np.ndarray, cell_type: str, connectivity: np.ndarray):
    c = corners(cell_type, connectivity)
    total, extent = np.zeros(len(c)), np.zeros(len(c))
    for simplex in _SIMPLICES[linear_type(cell_type)]:
        base = points[c[:, simplex[0]]]
        edges = [points[c[:, v]] - base for v in simplex[1:]]             # k x (M, d)
        total += _simplex_size(edges)
        for edge in edges:
            np.maximum(extent, np.sqrt(np.einsum("md,md->m", edge, edge)), out=extent)
    return total, extent


def _simplex_size(edges: list[np.ndarray]) -> np.ndarray:
    """Size ``(M,)`` of simplices spanned by k edge vectors ``(M, d)``: |det| / k! when k == d
    (closed forms, fast on millions of cells), else sqrt(det(Gram)) / k!."""
    k, d = len(edges), edges[0].shape[1]
    if k == d == 2:
        (ax, ay), (bx, by) = edges[0].T, edges[1].T
        return np.abs(ax * by - ay * bx) / 2
    if k == d == 3:
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = (e.T for e in edges)
        return np.abs(ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx)) / 6
    stacked = np.stack(edges, axis=1)                                   # (M, k, d)
    gram = np.einsum("mid,mjd->mij", stacked, stacked)
    return np.sqrt(np.clip(np.linalg.det(gram), 0.0, None)) / np.prod(np.arange(1, k + 1))
