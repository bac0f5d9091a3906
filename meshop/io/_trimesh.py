"""CAD surface formats through trimesh: .stl .obj .off .glb .gltf (and .ply meshio rejects)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import MeshError
from . import _sniff

READ_EXTENSIONS = [".stl", ".obj", ".off", ".glb", ".gltf"]


def read(path: Path, ext: str):
    """``(points, cells, point_data, cell_data)``; a .ply without faces is a point cloud.

    STL stores each triangle's corners separately; they are merged by position so the surface
    is connected. Other formats keep their vertices as stored.
    """
    import trimesh

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = trimesh.load(str(path), process=False, force=None)
            if isinstance(loaded, trimesh.Scene):
                geometries = [g for g in loaded.dump() if isinstance(g, (trimesh.Trimesh, trimesh.PointCloud))]
                loaded = trimesh.util.concatenate(geometries) if geometries else None
    except Exception as err:  # noqa: BLE001 - trimesh raises many types on bad files
        raise _sniff.reader_failure(path, ext, err) from None
    vertices = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float64)
    if len(vertices) == 0:
        raise MeshError(f"{path}: no vertices found in this {ext} file (empty, truncated, or not "
                        f"a {ext} file).")
    faces = np.asarray(getattr(loaded, "faces", np.empty((0, 3))), dtype=np.int64).reshape(-1, 3)
    if ext == ".stl" and len(faces):
        merged = trimesh.Trimesh(vertices, faces, process=True, validate=False)
        vertices, faces = np.asarray(merged.vertices), np.asarray(merged.faces, dtype=np.int64)
    return vertices, ({"triangle": faces} if len(faces) else {}), {}, {}
