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
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():  # checked before merging, which would drop them and their triangles silently
        raise MeshError(f"{path}: NaN or infinite coordinates in {int(bad.sum())} of its {len(vertices)} vertices "
                        f"(first: vertex {int(np.argmax(bad))}); the file is corrupt or was exported wrongly.")
    faces = np.asarray(getattr(loaded, "faces", np.empty((0, 3))), dtype=np.int64).reshape(-1, 3)
    if ext == ".off":
        _check_off_counts(path, len(vertices), len(faces))
    if ext == ".stl" and len(faces):
        merged = trimesh.Trimesh(vertices, faces, process=True, validate=False)
        vertices, faces = np.asarray(merged.vertices), np.asarray(merged.faces, dtype=np.int64)
    return vertices, ({"triangle": faces} if len(faces) else {}), {}, {}


def _check_off_counts(path: Path, n_vertices: int, n_faces: int) -> None:
    """An OFF header declares its vertex and face counts: fewer read means a cut file
    (trimesh splits polygons into triangles, so more faces than declared is fine)."""
    with open(path, "rb") as handle:
        tokens: list[bytes] = []
        for line in handle:
            tokens += line.split(b"#")[0].split()
            if len(tokens) >= 3:
                break
    counts = tokens[1:3] if tokens and tokens[0].endswith(b"OFF") else tokens[:2]
    declared = [int(c) for c in counts if c.isdigit()]
    if len(declared) == 2 and (n_vertices < declared[0] or n_faces < declared[1]):
        raise MeshError(f"{path}: the file is truncated (the header declares {declared[0]} vertices "
                        f"and {declared[1]} faces, {n_vertices} and {n_faces} were read).")
