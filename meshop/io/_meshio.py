"""Volume and general formats through meshio.

meshio's own ``read`` prints the error of a failed reader and calls ``sys.exit`` (and picks
the first of several formats sharing an extension when writing: ``.msh`` would be ANSYS), so
readers and writers are called by explicit format name, with their output silenced.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import meshio
import numpy as np
from meshio._helpers import reader_map  # the per-format readers, without meshio's sys.exit

from ..errors import MeshError
from . import _sniff
from ._limits import bounded_memory, reader_budget

#: extension -> meshio format names to try, in order (gmsh before ANSYS for .msh); the CAD
#: surface formats go to trimesh instead, and .svg is a drawing
READ_FORMATS = {ext: (["gmsh", "ansys"] if ext == ".msh" else names)
                for ext, names in meshio.extension_to_filetypes.items()
                if ext not in (".stl", ".obj", ".off", ".svg")}
READ_EXTENSIONS = list(READ_FORMATS)

#: extension -> (meshio format, writer options, cell types it holds or None for all,
#:               whether it stores point fields)
WRITE_FORMATS = {
    ".vtu": ("vtu", {"binary": True, "compression": "zlib"}, None, True),
    ".vtk": ("vtk", {"binary": True}, None, True),
    # gmsh 2.2 binary: meshio's 4.1 writer refuses several cell types without gmsh's entity
    # tags, and its ASCII variants write point data its own reader rejects
    ".msh": ("gmsh22", {"binary": True}, None, True),
    ".xdmf": ("xdmf", {"data_format": "XML"}, None, True),  # one file, no .h5 beside it
    ".med": ("med", {}, None, True),
    ".inp": ("abaqus", {}, None, False),
    ".mesh": ("medit", {}, None, False),
    ".stl": ("stl", {"binary": True}, {"triangle"}, False),
    ".obj": ("obj", {}, {"triangle", "quad"}, False),
    ".off": ("off", {}, {"triangle"}, False),
    ".ply": ("ply", {"binary": True}, {"triangle", "quad"}, True),
}
WRITE_EXTENSIONS = list(WRITE_FORMATS)
#: formats whose data may be compressed, so legitimately much larger in memory than on disk:
#: their readers run without the memory bound of :mod:`meshop.io._limits`
_COMPRESSIBLE = {".vtu", ".xdmf", ".xmf", ".h5m", ".med", ".e", ".exo", ".ex2", ".cgns", ".hmf"}
#: meshio bookkeeping arrays that are not physical fields
_META_POINT_DATA = {"gmsh:dim_tags"}


def read(path: Path, ext: str):
    """``(points, cells, point_data, cell_data)`` of a file meshio reads; ``.vtk`` polydata,
    and ``.vtu`` / ``.vtk`` files meshio rejects, go to VTK's reader; ``.ply`` that meshio
    rejects to trimesh."""
    if ext == ".vtk" and _legacy_dataset(path) not in (b"UNSTRUCTURED_GRID", b"STRUCTURED_POINTS",
                                                        b"STRUCTURED_GRID", b"RECTILINEAR_GRID"):
        from . import _vtk

        return _vtk.read(path, ext)
    first_error = None
    size = path.stat().st_size
    budget = reader_budget(size) if ext not in _COMPRESSIBLE else None
    for file_format in READ_FORMATS[ext]:
        try:
            with _quiet(), (bounded_memory(budget) if budget else contextlib.nullcontext()):
                return from_meshio(reader_map[file_format](str(path)))
        except (Exception, SystemExit) as err:  # noqa: PERF203 - a bad file may raise anything
            first_error = first_error or err
    if isinstance(first_error, MemoryError) and budget:
        raise MeshError(f"{path}: the file is corrupt: reading it would take more than {budget >> 20} MiB, "
                        f"far more than {size} bytes of {ext} can describe (a count or index is wrong).")
    short = re.search(r'len\(points\) = (\d+), but len\(point_data\["(.+?)"\]\) = (\d+)', str(first_error))
    if short:  # meshio's own check, worded as Mesh words it
        raise MeshError(f"{path}: point field '{short[2]}' has {short[3]} values but the mesh has "
                        f"{short[1]} points (wrong length).")
    fallback = {".vtu": "_vtk", ".vtk": "_vtk", ".ply": "_trimesh"}.get(ext)
    if fallback:
        module = importlib.import_module(f".{fallback}", __package__)
        try:
            return module.read(path, ext)
        except MeshError as err:
            if "truncated" in str(err):  # the fallback reader says more than "Expected newline"
                raise
    raise _sniff.reader_failure(path, ext, first_error)


def _legacy_dataset(path: Path) -> bytes:
    """The DATASET keyword of a legacy VTK file's header (b"" when absent)."""
    with open(path, "rb") as handle:
        for _ in range(6):
            line = handle.readline()
            if line.upper().startswith(b"DATASET"):
                return line.split()[1].upper() if len(line.split()) > 1 else b""
    return b""


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
    point_data = {k: np.asarray(v) for k, v in m.point_data.items() if k not in _META_POINT_DATA}
    return np.asarray(m.points), cells, point_data, cell_data, dict(m.field_data)


def xyz(mesh) -> np.ndarray:
    """``(N, 3)`` coordinates to write: 2D meshes get back their constant z (0 if none)."""
    if mesh.dim == 3:
        return mesh.points
    z = np.full((mesh.n_points, 1), mesh.planar_z or 0.0)
    return np.hstack([mesh.points, z])


def to_meshio(mesh, cell_types=None) -> meshio.Mesh:
    """A meshio.Mesh of ``mesh`` (only ``cell_types`` when given)."""
    blocks = [(t, c) for t, c in mesh.cells.items() if cell_types is None or t in cell_types]
    cell_data = {}
    for name, by_type in mesh.cell_data.items():
        if blocks and all(t in by_type for t, _ in blocks):
            cell_data[name] = [np.asarray(by_type[t]) for t, _ in blocks]
    return meshio.Mesh(xyz(mesh), blocks, point_data=dict(mesh.point_data), cell_data=cell_data)


def write(mesh, path: Path, ext: str) -> None:
    file_format, options, holds, _ = WRITE_FORMATS[ext]
    if ext == ".vtu" and mesh.field_data:
        _write_vtu_with_field_data(mesh, path)
        return
    with _quiet():
        meshio.write(path, to_meshio(mesh, holds), file_format=file_format, **options)


def _write_vtu_with_field_data(mesh, path: Path) -> None:
    """meshio's VTU writer drops field data (its reader keeps it); VTK's writes it."""
    import pyvista as pv

    from ._vtk import save_xml

    grid = pv.from_meshio(to_meshio(mesh))
    for name, values in mesh.field_data.items():
        grid.field_data[name] = values
    save_xml(grid, path)


def _quiet():
    """meshio prints warnings and errors to stdout; keep them off the user's screen."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack
