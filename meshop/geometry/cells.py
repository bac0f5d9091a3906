"""Cell-type tables: topological dimension, corner count and facets of each meshio cell type.

Facets are listed by local corner indices. Higher-order types (``triangle6``, ``tetra10``, ...)
reuse the facets of their linear parent, so their mid-side nodes are ignored by the facet
topology; :func:`facet_nodes` adds back the mid-side nodes that lie on a boundary facet.
"""

from __future__ import annotations

import numpy as np

#: topological dimension of each supported cell type
TOPOLOGICAL_DIM = {
    "vertex": 0,
    "line": 1, "line3": 1,
    "triangle": 2, "triangle6": 2, "quad": 2, "quad8": 2, "quad9": 2,
    "tetra": 3, "tetra10": 3, "hexahedron": 3, "hexahedron20": 3, "hexahedron27": 3,
    "wedge": 3, "wedge15": 3, "pyramid": 3, "pyramid13": 3,
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


def linear_type(cell_type: str) -> str:
    """The linear parent of ``cell_type`` (itself when already linear)."""
    return LINEAR_PARENT.get(cell_type, cell_type)


def corners(cell_type: str, connectivity: np.ndarray) -> np.ndarray:
    """Corner-node connectivity ``(M, CORNERS[linear])`` of a block of cells."""
    return connectivity[:, : CORNERS[linear_type(cell_type)]]


def top_dimension(cells: dict[str, np.ndarray]) -> int:
    """Highest topological dimension among non-empty cell blocks (-1 when there are none)."""
    dims = [TOPOLOGICAL_DIM[t] for t, c in cells.items() if len(c)]
    return max(dims, default=-1)


def simplex_measure(points: np.ndarray, cell_type: str, connectivity: np.ndarray) -> np.ndarray:
    """Signed-free size of each cell: length, area or volume ``(M,)``, from its corners.

    Quads, hexahedra, wedges and pyramids are split into simplices; the measure is the sum of
    their absolute sizes, so a cell is degenerate exactly when every sub-simplex is.
    """
    lin = linear_type(cell_type)
    c = corners(cell_type, connectivity)
    splits = {
        "line": [(0, 1)], "triangle": [(0, 1, 2)], "quad": [(0, 1, 2), (0, 2, 3)],
        "tetra": [(0, 1, 2, 3)],
        "hexahedron": [(0, 1, 3, 4), (1, 2, 3, 6), (1, 4, 5, 6), (3, 4, 6, 7), (1, 3, 4, 6)],
        "wedge": [(0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5)],
        "pyramid": [(0, 1, 2, 4), (0, 2, 3, 4)],
    }[lin]
    total = np.zeros(len(c))
    for simplex in splits:
        p = points[c[:, simplex]]                       # (M, k+1, d)
        edges = p[:, 1:] - p[:, :1]                    # (M, k, d)
        gram = np.einsum("mid,mjd->mij", edges, edges)  # (M, k, k)
        k = edges.shape[1]
        total += np.sqrt(np.clip(np.linalg.det(gram), 0.0, None)) / np.prod(np.arange(1, k + 1))
    return total
