"""The VTK family through PyVista: .vtp polydata, and legacy .vtk files meshio rejects."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeshError

READ_EXTENSIONS = [".vtp", ".vtk"]

# VTK cell type id -> meshio name, for the linear cells we support
_VTK_TYPES = {1: "vertex", 3: "line", 5: "triangle", 9: "quad", 10: "tetra", 12: "hexahedron",
              13: "wedge", 14: "pyramid", 22: "triangle6", 24: "tetra10"}


def read(path: Path, ext: str):
    import pyvista as pv

    try:
        data = pv.read(path)
    except Exception as err:
        raise MeshError(f"{path}: could not be read as {ext} ({str(err).splitlines()[0][:200]}).") from None
    if data is None or data.n_points == 0:
        raise MeshError(f"{path}: the mesh has no points (empty or truncated file).")
    if isinstance(data, pv.PolyData):
        data = data.triangulate()
    grid = data.cast_to_unstructured_grid()
    cells: dict[str, np.ndarray] = {}
    for vtk_type, conn in grid.cells_dict.items():
        name = _VTK_TYPES.get(int(vtk_type))
        if name is None:
            raise MeshError(f"{path}: VTK cell type {int(vtk_type)} is not supported.")
        cells[name] = np.asarray(conn, dtype=np.int64)
    point_data = {k: np.asarray(v) for k, v in grid.point_data.items() if not k.startswith("vtk")}
    return np.asarray(grid.points, dtype=np.float64), cells, point_data, {}
