"""Volume meshing of closed CAD surfaces with gmsh."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import MeshError
from .mesh import Mesh

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
        open_edges = int((trimesh.grouping.group_rows(tm.edges_sorted, require_count=1)).shape[0])
        raise MeshError(f"{where}the surface is open ({open_edges} edges belong to a single triangle); "
                        "close it in your CAD tool before predicting.")
    if not tm.is_winding_consistent:
        raise MeshError(f"{where}the surface's triangles are not consistently oriented.")


def tetrahedralize(surface: Mesh, mesh_size: float | None = None) -> Mesh:
    """Fill a closed triangle surface with tetrahedra (gmsh), re-meshing the surface at ``mesh_size``.

    Args:
        surface: a closed surface mesh (``surface.is_surface``).
        mesh_size: target edge length in the surface's units; default :func:`default_mesh_size`.

    Raises:
        MeshError: open, inconsistently wound or self-intersecting surfaces, and gmsh failures.
    """
    import gmsh

    where = f"{surface.source}: " if surface.source else ""
    check_closed(surface)
    size = float(mesh_size) if mesh_size else default_mesh_size(surface)
    if size <= 0:
        raise MeshError(f"{where}--mesh-size must be positive.")
    fd, stl = tempfile.mkstemp(suffix=".stl")
    os.close(fd)
    started = not gmsh.isInitialized()
    try:
        _write_stl(surface, Path(stl))
        if started:
            gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("meshop-tetrahedralize")
        gmsh.merge(stl)
        # split the triangulation into smooth patches, then rebuild parametrizable surfaces
        gmsh.model.mesh.classifySurfaces(40 * math.pi / 180, True, True, math.pi)
        gmsh.model.mesh.createGeometry()
        surfaces = [tag for _, tag in gmsh.model.getEntities(2)]
        loop = gmsh.model.geo.addSurfaceLoop(surfaces)
        gmsh.model.geo.addVolume([loop])
        gmsh.model.geo.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", size)
        gmsh.option.setNumber("Mesh.MeshSizeMin", size / 4)
        gmsh.option.setNumber("Mesh.Algorithm3D", 1)
        gmsh.model.mesh.generate(3)
        node_tags, coords, _ = gmsh.model.mesh.getNodes()
        _, element_nodes = gmsh.model.mesh.getElementsByType(4)  # 4-node tetrahedra
    except Exception as err:
        raise MeshError(f"{where}gmsh could not fill the surface with tetrahedra "
                        f"(self-intersecting or invalid surface?): {str(err).splitlines()[0][:160]}") from None
    finally:
        Path(stl).unlink(missing_ok=True)
        if gmsh.isInitialized():
            gmsh.model.remove()
            if started:
                gmsh.finalize()
    if len(element_nodes) == 0:
        raise MeshError(f"{where}gmsh produced no tetrahedra (is the surface closed and non-self-intersecting?).")
    points = coords.reshape(-1, 3)
    index = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
    index[node_tags.astype(np.int64)] = np.arange(len(node_tags))
    tets = index[element_nodes.astype(np.int64).reshape(-1, 4)]
    used = np.unique(tets)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Mesh(points[used], {"tetra": remap[tets]}, source=surface.source)


def _write_stl(surface: Mesh, path: Path) -> None:
    import trimesh

    trimesh.Trimesh(surface.points, surface.cells["triangle"], process=False).export(path)
