"""Volume and general formats through meshio."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import meshio
import numpy as np

from ..errors import MeshError

READ_EXTENSIONS = [
    ".vtu", ".vtk", ".msh", ".xdmf", ".xmf", ".med", ".inp", ".mesh", ".meshb", ".e", ".exo",
    ".su2", ".bdf", ".fem", ".nas", ".f3grid", ".h5m", ".dat", ".tec", ".ugrid", ".wkt", ".node",
    ".ele", ".avs", ".post", ".dato", ".post.gz", ".dato.gz", ".am", ".hmf",
]
WRITE_EXTENSIONS = [
    ".vtu", ".vtk", ".msh", ".xdmf", ".med", ".inp", ".mesh", ".su2", ".bdf", ".obj", ".stl",
    ".ply", ".off",
]


def read(path: Path, ext: str):
    """``(points, cells, point_data, cell_data)`` from meshio; legacy .vtk that meshio cannot
    parse (polydata) falls back to PyVista."""
    try:
        with _quiet():
            m = meshio.read(path)
    except (Exception, SystemExit) as err:  # meshio calls SystemExit on some legacy VTK files
        if ext == ".vtk":
            from . import _vtk

            return _vtk.read(path, ext)
        raise MeshError(f"{path}: could not be read as {ext} ({_reason(err)}).") from None
    return from_meshio(m)


def from_meshio(m: meshio.Mesh):
    cells: dict[str, np.ndarray] = {}
    cell_data: dict[str, dict[str, np.ndarray]] = {}
    for i, block in enumerate(m.cells):
        data = np.asarray(block.data)
        cells[block.type] = np.concatenate([cells[block.type], data]) if block.type in cells else data
        for name, per_block in m.cell_data.items():
            values = np.asarray(per_block[i])
            by_type = cell_data.setdefault(name, {})
            by_type[block.type] = (np.concatenate([by_type[block.type], values])
                                   if block.type in by_type else values)
    return np.asarray(m.points), cells, dict(m.point_data), cell_data


def to_meshio(mesh) -> meshio.Mesh:
    points = mesh.points
    if mesh.dim == 2:
        z = np.full((mesh.n_points, 1), mesh.planar_z or 0.0)
        points = np.hstack([points, z])
    blocks = list(mesh.cells.items())
    cell_data = {}
    for name, by_type in mesh.cell_data.items():
        if all(t in by_type for t, _ in blocks):
            cell_data[name] = [np.asarray(by_type[t]) for t, _ in blocks]
    return meshio.Mesh(points, blocks, point_data=dict(mesh.point_data), cell_data=cell_data)


def write(mesh, path: Path, ext: str) -> None:
    kwargs = {"data_format": "XML"} if ext in (".xdmf",) else {}
    if ext == ".vtu":
        kwargs = {"compression": "zlib", "binary": True}
    meshio.write(path, to_meshio(mesh), **kwargs)


def _quiet():
    """meshio prints to stdout/stderr on the files it rejects; keep that off the user's screen."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]
