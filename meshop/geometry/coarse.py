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
    """``(T, 3)`` int64 coarse triangles ``mesh`` carries (ids of its nodes), checked as
    :func:`coarse_mesh` checks them."""
    return coarse_mesh(mesh)[0]


def coarse_mesh(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coarse triangles ``(T, 3)`` ``mesh`` carries (ids of its nodes) and the prolongation to
    its nodes, the :func:`p1_stencil` ``ids (N, 3)``, ``weights (N, 3)`` of every node of ``mesh``
    in them. Checked: a planar mesh, whole ids in range, no triangle of zero area, no two
    triangles on the same side of an edge (overlapping), and every node of ``mesh`` but its
    boundary nodes (which may lie off the chords of a curved boundary) inside a coarse triangle."""
    where = f"{mesh.source}: " if mesh.source else ""
    if mesh.dim != 2:
        raise MeshError(f"{where}a coarse mesh (field data '{COARSE_TRIANGLES}') is made of triangles of a planar "
                        f"mesh; this mesh is {mesh.dim}D.")
    flat = mesh.field_data.get(COARSE_TRIANGLES)
    if flat is None:
        xdmf = mesh.source is not None and mesh.source.suffix.lower() in (".xdmf", ".xmf")
        hint = ("XDMF keeps no field data, so write the series as .pvd" if xdmf else
                "write the data with one, e.g. burgers2d(refine=2, store='fine')")
        raise MeshError(f"{where}the mesh carries no coarse mesh (field data '{COARSE_TRIANGLES}'), which this model "
                        f"solves on; {hint}.")
    flat = np.asarray(flat)
    if len(flat) == 0 or len(flat) % 3 or not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)):
        raise MeshError(f"{where}field data '{COARSE_TRIANGLES}' must hold whole node ids, 3 per triangle; "
                        f"got {len(flat)} values.")
    outside = (flat < 0) | (flat >= mesh.n_points)          # checked before the cast, which would wrap 1e300
    if outside.any():
        raise MeshError(f"{where}field data '{COARSE_TRIANGLES}' names node {flat[np.argmax(outside)]:.12g}; "
                        f"the mesh has nodes 0 to {mesh.n_points - 1}.")
    triangles = flat.astype(np.int64).reshape(-1, 3)
    points = mesh.points[:, :2]
    areas = signed_areas(points, triangles)
    flat_cells = areas == 0
    if flat_cells.any():
        raise MeshError(f"{where}{int(flat_cells.sum())} coarse triangle(s) of field data '{COARSE_TRIANGLES}' "
                        f"have zero area (first: {int(np.argmax(flat_cells))}).")
    # turned counter-clockwise, the triangles of a valid mesh run along each edge at most once each way
    ccw = np.where((areas < 0)[:, None], triangles[:, [0, 2, 1]], triangles)
    edges, counts = np.unique(np.concatenate([ccw[:, [0, 1]], ccw[:, [1, 2]], ccw[:, [2, 0]]]), axis=0,
                              return_counts=True)
    if (counts > 1).any():
        a, b = edges[np.argmax(counts > 1)]
        raise MeshError(f"{where}coarse triangles of field data '{COARSE_TRIANGLES}' overlap: {int(counts.max())} "
                        f"of them lie on the same side of the edge between nodes {a} and {b}.")
    try:
        ids, weights = p1_stencil(points, triangles, points)
    except MeshError:
        raise MeshError(f"{where}coarse triangles of field data '{COARSE_TRIANGLES}' do not form a valid triangle "
                        "mesh (two of them cross, or two of their nodes coincide).") from None
    off = np.linalg.norm(np.einsum("mk,mkd->md", weights, points[ids]) - points, axis=1)
    off = (off > 1e-9 * np.ptp(points, axis=0).max()) & ~mesh.boundary_mask
    if off.any():
        first = int(np.argmax(off))
        raise MeshError(f"{where}coarse triangles of field data '{COARSE_TRIANGLES}' cover only part of the mesh: "
                        f"{int(off.sum())} of its {mesh.n_points} nodes lie outside all of them (first: node {first} "
                        f"at ({points[first, 0]:.6g}, {points[first, 1]:.6g})).")
    return triangles, ids, weights


def p1_stencil(points: np.ndarray, triangles: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The P1 interpolation from a triangle mesh (``points (N, 2)``, ``triangles (T, 3)``) to
    ``queries (M, 2)``: ``ids (M, 3)`` node ids and ``weights (M, 3)`` (barycentric, summing to
    1), so that ``u(queries) = (weights * u[ids]).sum(1)``. A query outside the mesh takes the
    value at the nearest point of a triangle near it (``P1Locator.locate(clip=True)``)."""
    used, local = np.unique(triangles, return_inverse=True)    # matplotlib's locator: no unused nodes
    local = local.reshape(triangles.shape)
    cells, weights = P1Locator(points[used], local).locate(np.asarray(queries, dtype=np.float64), clip=True)
    return used[local[cells]], weights
