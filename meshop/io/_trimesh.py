"""CAD surface formats through trimesh (a .ply without faces is a point cloud)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeshError

READ_EXTENSIONS = [".stl", ".obj", ".off", ".glb", ".gltf", ".ply"]


def read(path: Path, ext: str):
    import trimesh

    try:
        loaded = trimesh.load(path, process=False, force=None)
    except Exception as err:
        raise MeshError(f"{path}: could not be read as {ext} ({str(err).splitlines()[0][:200] or type(err).__name__}).") from None
    if isinstance(loaded, trimesh.Scene):
        geometries = [g for g in loaded.dump() if isinstance(g, (trimesh.Trimesh, trimesh.PointCloud))]
        if not geometries:
            raise MeshError(f"{path}: the scene holds no mesh.")
        loaded = trimesh.util.concatenate(geometries)
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    if len(vertices) == 0:
        raise MeshError(f"{path}: the mesh has no points (empty or truncated file).")
    faces = np.asarray(getattr(loaded, "faces", np.empty((0, 3))), dtype=np.int64)
    cells = {"triangle": faces} if len(faces) else {}
    if isinstance(loaded, trimesh.Trimesh):
        # merge the duplicated vertices STL stores per triangle, so the surface is connected
        merged = trimesh.Trimesh(vertices, faces, process=True, validate=False)
        vertices, cells = np.asarray(merged.vertices), {"triangle": np.asarray(merged.faces, np.int64)}
    return vertices, cells, {}, {}
