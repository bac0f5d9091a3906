"""A coarse triangle mesh carried by a fine one, and the P1 maps between them.

A solver that runs on a coarse mesh and answers on a fine one (the MM-PDE protocol: data on a
fine mesh, solvers on a coarse one, errors on the fine one) needs the coarse mesh beside the fine
data. It travels as the fine mesh's field data ``coarse_triangles``: the coarse triangles,
flattened, as ids of *fine* nodes, so the coarse nodes are a subset of the fine ones (a mesh
refined by splitting keeps its own nodes: ``burgers2d(refine=K, store="fine")`` writes one).
"""

from __future__ import annotations

import numpy as np

from ..errors import MeshError
from ..mesh import Mesh
from .monitor import P1Locator
from .moving import signed_areas

#: the field data name of the coarse triangles (flattened fine-node ids, 3 per triangle)
COARSE_TRIANGLES = "coarse_triangles"


def with_coarse(mesh: Mesh, triangles: np.ndarray) -> Mesh:
    """``mesh`` carrying the coarse triangles ``(T, 3)`` (ids of ``mesh``'s nodes)."""
    return mesh.with_field_data(**{COARSE_TRIANGLES: np.asarray(triangles, dtype=np.int64).ravel()})


def coarse_triangles(mesh: Mesh) -> np.ndarray:
    """``(T, 3)`` int64 coarse triangles ``mesh`` carries (ids of its nodes), checked: whole ids in
    range, no triangle of zero area."""
    where = f"{mesh.source}: " if mesh.source else ""
    flat = mesh.field_data.get(COARSE_TRIANGLES)
    if flat is None:
        raise MeshError(f"{where}the mesh carries no coarse mesh (field data '{COARSE_TRIANGLES}'), which this model "
                        "solves on; write the data with one, e.g. burgers2d(refine=2, store='fine').")
    flat = np.asarray(flat)
    if len(flat) == 0 or len(flat) % 3 or not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)):
        raise MeshError(f"{where}field data '{COARSE_TRIANGLES}' must hold whole node ids, 3 per triangle; "
                        f"got {len(flat)} values.")
    triangles = flat.astype(np.int64).reshape(-1, 3)
    if triangles.min() < 0 or triangles.max() >= mesh.n_points:
        raise MeshError(f"{where}field data '{COARSE_TRIANGLES}' names node {int(triangles.max())} or "
                        f"{int(triangles.min())}; the mesh has nodes 0 to {mesh.n_points - 1}.")
    flat_cells = signed_areas(mesh.points[:, :2], triangles) == 0
    if flat_cells.any():
        raise MeshError(f"{where}{int(flat_cells.sum())} coarse triangle(s) of field data '{COARSE_TRIANGLES}' "
                        f"have zero area (first: {int(np.argmax(flat_cells))}).")
    return triangles


def p1_stencil(points: np.ndarray, triangles: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The P1 interpolation from a triangle mesh (``points (N, 2)``, ``triangles (T, 3)``) to
    ``queries (M, 2)``: ``ids (M, 3)`` node ids and ``weights (M, 3)`` (barycentric, summing to
    1), so that ``u(queries) = (weights * u[ids]).sum(1)``. A query outside the mesh takes the
    value at the nearest point of a triangle near it (``P1Locator.locate(clip=True)``)."""
    used, local = np.unique(triangles, return_inverse=True)    # matplotlib's locator: no unused nodes
    local = local.reshape(triangles.shape)
    cells, weights = P1Locator(points[used], local).locate(np.asarray(queries, dtype=np.float64), clip=True)
    return used[local[cells]], weights
