"""Read and write meshes and point clouds: one `read`/`write` pair, one small module per family.

Routing by file extension (see docs/io.md for what each format keeps):

=====================  ============================================================
family                 extensions
=====================  ============================================================
meshio (volume)        .vtu .vtk .msh .xdmf .xmf .med .inp .mesh .e .exo .su2 .bdf .ply ...
VTK via PyVista        .vtp .vti .vtr .vts; legacy .vtk polydata; .vtu/.vtk meshio rejects
trimesh (CAD surface)  .stl .obj .off .glb .gltf; .ply meshio rejects
point clouds           .xyz .txt .csv .npy (and .ply / .vtp / .vtu without cells)
=====================  ============================================================
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..atomic import atomic_path
from ..errors import MeshError, as_path, check_parent, write_failure
from ..mesh import Mesh, field_data_array
from . import _meshio, _points, _sniff, _trimesh, _vtk

READERS = {}
for _module in (_points, _trimesh, _vtk, _meshio):
    for _ext in _module.READ_EXTENSIONS:
        READERS.setdefault(_ext, _module)
WRITERS = {}
for _module in (_points, _vtk, _meshio):
    for _ext in _module.WRITE_EXTENSIONS:
        WRITERS.setdefault(_ext, _module)

from .series import read_series, write_series  # noqa: E402 - needs read/write defined below at call time

__all__ = ["read", "read_arrays", "write", "read_series", "write_series", "READERS", "WRITERS"]


def _extension(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def read(path: str | os.PathLike, *, boundary_mask=None) -> Mesh:
    """Read a mesh, surface or point cloud from ``path`` into a validated :class:`Mesh`.

    Args:
        path: the file; its extension picks the reader (see :data:`READERS`).
        boundary_mask: optional ``(N,)`` bool boundary of a point cloud, used instead of the
            estimate.

    Raises:
        MeshError: missing file, a directory, an unknown or mismatched format, an empty or
            truncated file, and every defect :class:`Mesh` checks (no points, NaN coordinates,
            indices out of range, degenerate cells, ...). The message names the file.
    """
    path = as_path(path)
    points, cells, point_data, cell_data, field_data = read_arrays(path)
    return Mesh(points, cells, point_data, cell_data, boundary_mask=boundary_mask, source=path,
                field_data=field_data)


def read_arrays(path: str | os.PathLike) -> tuple:
    """``(points, cells, point_data, cell_data, field_data)`` of a mesh file as its reader gives
    them, not yet checked as a :class:`Mesh` (the frames of a series share frame 0's checked
    cells). ``field_data``: the file's numeric 1-D whole-mesh arrays (VTK field data, which
    meshop writes into .vtu files; readers of formats without it give 4 items). Raises :class:`MeshError` for a missing, unknown, empty or unreadable file."""
    path = Path(path)
    if not path.exists():
        raise MeshError(f"{path}: no such file.")
    if path.is_dir():
        raise MeshError(f"{path}: is a directory, not a mesh file.")
    special = _sniff.special_file(path)
    if special:
        raise MeshError(f"{path}: is {special}, not a mesh file.")
    ext = _extension(path)
    reader = READERS.get(ext)
    if reader is None and ext == ".pvd":
        raise MeshError(f"{path}: a time series, not one mesh: pass one of the frame files it lists, or read "
                        "it with meshop.read_series (a frame: .frame(k)).")
    if reader is None:
        known = " ".join(sorted(READERS))
        raise MeshError(f"{path}: unknown mesh format '{ext or path.name}' (known: {known}).")
    try:
        if path.stat().st_size == 0:
            raise MeshError(f"{path}: the file is empty.")
        _sniff.check(path, ext)
        points, cells, point_data, cell_data, *field_data = reader.read(path, ext)
    except OSError as err:
        raise MeshError(f"{path}: cannot be read ({err.strerror or err}).") from None
    if len(points) == 0:
        raise MeshError(f"{path}: no points found in this {ext} file (the mesh has no points).")
    return points, cells, point_data, cell_data, _numeric(field_data[0] if field_data else {})


def _numeric(field_data: dict) -> dict:
    """The entries of a file's field data that :class:`Mesh` holds: numbers and 1-D numeric
    arrays (other tools' string or table entries are left out)."""
    arrays = {name: field_data_array(values) for name, values in field_data.items()}
    return {name: array for name, array in arrays.items() if array is not None}


def write(mesh: Mesh, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``mesh`` to ``path``, format by extension, atomically.

    The file is written to a temporary name in the same folder and renamed into place, so an
    interrupted or failed write never leaves a half-written file. Writing over the file the
    mesh was read from is refused unless ``overwrite=True``. Point fields the format cannot
    store are dropped with a warning naming them.

    Returns:
        the path written.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"write needs a meshop.Mesh to write, got {type(mesh).__name__} "
                        "(build one with meshop.Mesh(points, cells, point_data)).")
    path = as_path(path)
    if path.is_dir():
        raise MeshError(f"{path}: is a folder; give a file name to write.")
    writer, ext = writer_of(path), _extension(path)
    if not overwrite and mesh.source is not None and _same_file(path, mesh.source):
        raise MeshError(f"{path}: refusing to overwrite the mesh's input file; write elsewhere (-o) or pass "
                        "--overwrite (overwrite=True in Python).")
    check_parent(path)
    _check_writable(mesh, path, ext)
    try:
        with atomic_path(path) as tmp:
            writer.write(mesh, tmp, ext)
    except BaseException as err:
        if isinstance(err, (MeshError, KeyboardInterrupt, SystemExit)):
            raise
        raise write_failure(path, f"this {ext} file", err) from None
    return path


def writer_of(path: Path):
    """The module that writes ``path``'s format (by extension); :class:`MeshError` naming the
    formats meshop writes when it is none of them (checked before a command does its work)."""
    ext = _extension(Path(path))
    writer = WRITERS.get(ext)
    if writer is None:
        known = " ".join(sorted(WRITERS))
        raise MeshError(f"{path}: cannot write format '{ext or Path(path).name}' (known: {known}).")
    return writer


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


#: cell types each surface format holds (lines and vertices are left out silently)
_SURFACE_FORMATS = {".stl": {"triangle"}, ".off": {"triangle"}, ".obj": {"triangle", "quad"},
                    ".ply": {"triangle", "quad"}, ".vtp": {"triangle", "quad"}}
_POINT_FORMATS = (".xyz", ".csv", ".npy")


def _check_writable(mesh: Mesh, path: Path, ext: str) -> None:
    """Refuse cells the format cannot hold; warn about point fields or cells it drops."""
    kept = [t for t in mesh.cells if t not in ("vertex", "line", "line3")]
    holds = _SURFACE_FORMATS.get(ext)
    if holds is not None and set(kept) - holds:
        raise MeshError(f"{path}: {ext} files hold {' and '.join(sorted(holds))} surfaces, not "
                        f"{', '.join(sorted(set(kept) - holds))} cells; write .vtu, .vtk or .msh instead.")
    if mesh.is_point_cloud and ext in (".stl", ".off", ".obj", ".msh"):
        raise MeshError(f"{path}: {ext} files need cells and this is a point cloud; write .ply, "
                        ".vtp, .vtu, .csv, .xyz or .npy instead.")
    if ext in _POINT_FORMATS and kept:
        warnings.warn(f"{path}: {ext} holds points only; the cells ({', '.join(kept)}) are not "
                      "written.", stacklevel=3)
    if mesh.field_data and ext != ".vtu":
        warnings.warn(f"{path}: field data ({', '.join(mesh.field_data)}) is written to .vtu files only; "
                      "not written.", stacklevel=3)
    dropped = _unstorable_fields(mesh, ext)
    if dropped:
        warnings.warn(f"{path}: {ext} cannot store point field(s) {', '.join(dropped)}; not "
                      "written.", stacklevel=3)


def _unstorable_fields(mesh: Mesh, ext: str) -> list[str]:
    if ext in (".csv", ".vtp"):
        return []
    if ext in (".xyz", ".npy"):
        return list(mesh.point_data)
    _, _, _, stores = _meshio.WRITE_FORMATS[ext]
    if not stores:
        return list(mesh.point_data)
    if ext == ".ply":  # meshio's PLY writer takes scalar fields only
        return [name for name, values in mesh.point_data.items() if values.ndim > 1]
    return []
