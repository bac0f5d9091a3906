"""gmsh plumbing (sessions, mesh extraction) and volume meshing of closed CAD surfaces."""

from __future__ import annotations

import math
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import MeshError
from .mesh import Mesh

_GMSH_LOCK = threading.Lock()


@contextmanager
def gmsh_session(name: str = "meshop"):
    """A fresh gmsh model with deterministic, silent, single-threaded options.

    Initializes gmsh when it is not running (and finalizes it afterwards); otherwise works in a
    new model and removes it, leaving the caller's models alone. gmsh is process-global and not
    thread-safe: sessions are serialized by a lock.
    """
    import gmsh

    with _GMSH_LOCK:
        owns = not gmsh.isInitialized()
        if owns:
            gmsh.initialize(interruptible=False)
        try:
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.option.setNumber("General.Verbosity", 0)
            gmsh.option.setNumber("General.NumThreads", 1)
            gmsh.option.setNumber("Mesh.RandomSeed", 1)
            gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
            gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
            gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
            gmsh.model.add(name)
            yield gmsh
        finally:
            if owns:
                gmsh.finalize()
            else:
                gmsh.model.remove()


def mesh_arrays(gmsh, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``(N, dim)`` and simplices ``(M, dim+1)`` of the current gmsh model, renumbered
    to the nodes the simplices use."""
    element_type = {2: 2, 3: 4}[dim]                 # gmsh: 2 = 3-node triangle, 4 = 4-node tet
    tags, coords, _ = gmsh.model.mesh.getNodes()
    coords = coords.reshape(-1, 3)
    _, node_tags = gmsh.model.mesh.getElementsByType(element_type)
    simplices = np.asarray(node_tags, dtype=np.int64).reshape(-1, dim + 1)
    if len(tags) == 0 or len(simplices) == 0:
        return np.empty((0, dim)), np.empty((0, dim + 1), dtype=np.int64)
    lookup = np.zeros(int(tags.max()) + 1, dtype=np.int64)
    lookup[tags.astype(np.int64)] = np.arange(len(tags))
    simplices = lookup[simplices]
    used, simplices = np.unique(simplices, return_inverse=True)
    points = np.ascontiguousarray(coords[used, :dim], dtype=np.float64)
    return points, simplices.reshape(-1, dim + 1).astype(np.int64)


#: default target element size, as a fraction of the bounding-box diagonal
DEFAULT_SIZE_FRACTION = 1 / 30


def default_mesh_size(surface: Mesh) -> float:
    """A mesh size giving a few thousand to a few tens of thousands of nodes for a compact part."""
    return surface.size * DEFAULT_SIZE_FRACTION


def check_closed(surface: Mesh) -> None:
    """Raise :class:`MeshError` unless the triangle surface is closed (watertight) and consistently
    wound, which volume meshing needs."""
    import trimesh

    where = f"{surface.source}: " if surface.source else ""
    triangles = surface.cells.get("triangle")
    if triangles is None or surface.cell_counts.get("quad"):
        raise MeshError(f"{where}only triangle surfaces can be tetrahedralized.")
    tm = trimesh.Trimesh(surface.points, triangles, process=False, validate=False)
    if not tm.is_watertight:
        edges, counts = np.unique(tm.edges_sorted, axis=0, return_counts=True)
        open_edges = int((counts == 1).sum())
        if open_edges:
            raise MeshError(f"{where}the surface is open ({open_edges} edges belong to a single triangle); "
                            "close it in your CAD tool before predicting.")
        shared = edges[counts > 2]
        ends = sorted(surface.points[shared[0]].tolist())          # lexicographic: the file's node order aside
        a, b = (", ".join(f"{c:.6g}" for c in end) for end in ends)
        raise MeshError(f"{where}the surface is not manifold: {len(shared)} edge(s) belong to more than two "
                        f"triangles (first: the edge from ({a}) to ({b}), shared by {int(counts[counts > 2][0])}), "
                        "as where two bodies touch along an edge; separate or merge the bodies in your CAD tool "
                        "before predicting.")
    if pinch := _pinched_vertex(triangles, surface.n_points):
        node, fans = pinch
        at = ", ".join(f"{c:.6g}" for c in surface.points[node])
        raise MeshError(f"{where}the surface is not manifold: {fans} separate sheets of triangles meet at point {node} "
                        f"({at}) alone, as where two bodies touch at a corner; separate or merge the bodies "
                        "in your CAD tool before predicting.")
    if not tm.is_winding_consistent:
        raise MeshError(f"{where}the surface's triangles are not consistently oriented.")


def _pinched_vertex(triangles: np.ndarray, n_points: int) -> tuple[int, int] | None:
    """``(node, fans)`` for the first node of a closed, edge-manifold triangle surface around which
    the triangles form more than one fan (connected through edges at the node): two sheets touching
    at one point, which gmsh cannot fill with tetrahedra. None when every node has one fan."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    corner = np.arange(3 * len(triangles)).reshape(-1, 3)          # corner (triangle t, local k)
    keys, rows = [], []
    for k in range(3):                                              # the edge from corner k to k + 1
        a, b = triangles[:, k], triangles[:, (k + 1) % 3]
        keys.append(np.minimum(a, b).astype(np.int64) * n_points + np.maximum(a, b))
        rows.append(np.stack([corner[:, k], corner[:, (k + 1) % 3], a, b], 1))
    rows = np.concatenate(rows)[np.argsort(np.concatenate(keys), kind="stable")]
    first, second = rows[0::2], rows[1::2]                          # the two triangles of each edge
    # join the corners of the two triangles at each end of their shared edge
    at_a = np.where(second[:, 2] == first[:, 2], second[:, 0], second[:, 1])
    at_b = np.where(second[:, 2] == first[:, 2], second[:, 1], second[:, 0])
    size = 3 * len(triangles)
    graph = coo_matrix((np.ones(2 * len(first)), (np.r_[first[:, 0], first[:, 1]], np.r_[at_a, at_b])),
                       shape=(size, size))
    _, fan = connected_components(graph, directed=False)
    node_of = triangles.ravel()
    fans = np.bincount(np.unique(np.stack([node_of, fan], 1), axis=0)[:, 0], minlength=n_points)
    if not np.any(fans > 1):
        return None
    node = int(np.argmax(fans > 1))
    return node, int(fans[node])


def tetrahedralize(surface: Mesh, mesh_size: float | None = None) -> Mesh:
    """Fill a closed triangle surface with tetrahedra (gmsh), re-meshing the surface at ``mesh_size``.

    Args:
        surface: a closed surface mesh (``surface.is_surface``).
        mesh_size: target edge length in the surface's units; default :func:`default_mesh_size`.

    Raises:
        MeshError: open, inconsistently wound or self-intersecting surfaces, and gmsh failures.
    """
    where = f"{surface.source}: " if surface.source else ""
    check_closed(surface)
    size = float(mesh_size) if mesh_size else default_mesh_size(surface)
    if size <= 0:
        raise MeshError(f"{where}--mesh-size must be positive.")
    # gmsh meshes the part centred on its bounding box: 1e6 from the origin, the float32 STL
    # handed to it and gmsh's own geometry tolerances would have no digits left for the part
    centre = surface.bounds.mean(axis=0)
    fd, stl = tempfile.mkstemp(suffix=".stl")
    os.close(fd)
    try:
        _write_stl(surface, Path(stl), centre)
        with gmsh_session("meshop-tetrahedralize") as gmsh:
            gmsh.merge(stl)
            # split the triangulation into smooth patches, then rebuild parametrizable surfaces
            gmsh.model.mesh.classifySurfaces(40 * math.pi / 180, True, True, math.pi)
            gmsh.model.mesh.createGeometry()
            surfaces = [tag for _, tag in gmsh.model.getEntities(2)]
            gmsh.model.geo.addVolume([gmsh.model.geo.addSurfaceLoop(surfaces)])
            gmsh.model.geo.synchronize()
            gmsh.option.setNumber("Mesh.MeshSizeMax", size)
            gmsh.option.setNumber("Mesh.MeshSizeMin", size / 4)
            gmsh.option.setNumber("Mesh.Algorithm3D", 1)
            gmsh.model.mesh.generate(3)
            points, tets = mesh_arrays(gmsh, 3)
    except Exception as err:
        raise MeshError(f"{where}gmsh could not fill the surface with tetrahedra "
                        f"(self-intersecting or invalid surface?): {str(err).splitlines()[0][:160]}") from None
    finally:
        Path(stl).unlink(missing_ok=True)
    if len(tets) == 0:
        bodies = separate_bodies(surface)
        if bodies > 1:
            raise MeshError(f"{where}the surface is {bodies} separate closed bodies; meshop fills one body (with "
                            "its inner cavities) with tetrahedra: predict each body from its own file, or give a "
                            "volume mesh of them all (.msh, .vtu).")
        raise MeshError(f"{where}gmsh produced no tetrahedra (is the surface closed and non-self-intersecting?).")
    return Mesh(points + centre, {"tetra": tets}, source=surface.source)


def separate_bodies(surface: Mesh) -> int:
    """How many connected shells of the triangle surface lie outside every other one (by bounding
    box): side-by-side bodies count one each, a cavity's shell inside its body none."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    triangles = surface.cells["triangle"]
    rows = np.repeat(np.arange(len(triangles)), 3)
    graph = coo_matrix((np.ones(len(rows)), (rows, triangles.ravel())),
                       shape=(len(triangles), surface.n_points)).tocsr()
    count, label = connected_components(graph @ graph.T, directed=False)  # triangles sharing a node
    boxes = [(surface.points[np.unique(triangles[label == k])].min(axis=0),
              surface.points[np.unique(triangles[label == k])].max(axis=0)) for k in range(count)]
    inside = [any(j != k and (lo_j <= lo).all() and (hi <= hi_j).all() for j, (lo_j, hi_j) in enumerate(boxes))
              for k, (lo, hi) in enumerate(boxes)]
    return count - sum(inside)


#: 80-byte header of the binary STL handed to gmsh. gmsh decides ASCII or binary from the first
#: line that is not blank (its ``fgets0``): with trimesh's all-zero header it skips "lines" that
#: start with NUL or whitespace, and a file whose every line does -- a 12-triangle box, whose
#: count byte is 12, a form feed -- is read to its end and refused. A printable first byte ends
#: the first line at once.
_STL_HEADER = b"binary STL written by meshop for gmsh".ljust(80, b" ")


def _write_stl(surface: Mesh, path: Path, centre=0.0) -> None:
    """``surface``'s triangles, moved by ``-centre``, as a binary STL whose header gmsh reads as binary."""
    import trimesh

    data = trimesh.exchange.stl.export_stl(trimesh.Trimesh(surface.points - centre, surface.cells["triangle"],
                                                           process=False))
    path.write_bytes(_STL_HEADER + data[80:])
