"""Read and write meshes and point clouds: one `read`/`write` pair, one small module per family.

Routing by file extension:

=====================  ============================================================
family                 extensions
=====================  ============================================================
meshio (volume)        .vtu .msh .xdmf .xmf .med .inp .mesh .e .exo .su2 .bdf ...
VTK via PyVista        .vtp, and legacy .vtk when meshio cannot read it
trimesh (CAD surface)  .stl .obj .off .glb .gltf, and .ply with faces
point clouds           .xyz .csv .txt .npy, and .ply without faces
=====================  ============================================================
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import MeshError
from ..mesh import Mesh
from . import _meshio, _points, _trimesh, _vtk

READERS = {}
for _module in (_meshio, _vtk, _trimesh, _points):
    for _ext in _module.READ_EXTENSIONS:
        READERS.setdefault(_ext, _module)
WRITERS = {}
for _module in (_points, _meshio):
    for _ext in _module.WRITE_EXTENSIONS:
        WRITERS.setdefault(_ext, _module)


def _extension(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in (".gz",):
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def read(path: str | os.PathLike, *, boundary_mask=None) -> Mesh:
    """Read a mesh, surface or point cloud from ``path`` into a validated :class:`Mesh`.

    Raises:
        MeshError: missing file, a directory, an unknown or mismatched format, an empty or
            truncated file, and every defect :class:`Mesh` checks (NaN coordinates, indices out of
            range, degenerate cells, ...). The message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise MeshError(f"{path}: no such file.")
    if path.is_dir():
        raise MeshError(f"{path}: is a directory, not a mesh file.")
    ext = _extension(path)
    reader = READERS.get(ext)
    if reader is None:
        known = " ".join(sorted(READERS))
        raise MeshError(f"{path}: unknown mesh format '{ext or path.name}' (known: {known}).")
    if path.stat().st_size == 0:
        raise MeshError(f"{path}: the file is empty.")
    points, cells, point_data, cell_data = reader.read(path, ext)
    return Mesh(points, cells, point_data, cell_data, boundary_mask=boundary_mask, source=path)


def write(mesh: Mesh, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``mesh`` to ``path``, format by extension, atomically.

    The file is written to a temporary name in the same folder and renamed into place, so an
    interrupted write never leaves a half-written file. Writing over the file the mesh was read
    from is refused unless ``overwrite=True``.
    """
    path = Path(path)
    ext = _extension(path)
    writer = WRITERS.get(ext)
    if writer is None:
        known = " ".join(sorted(WRITERS))
        raise MeshError(f"{path}: cannot write format '{ext or path.name}' (known: {known}).")
    if (not overwrite and mesh.source is not None and path.exists()
            and path.resolve() == mesh.source.resolve()):
        raise MeshError(f"{path}: refusing to overwrite the input mesh; pass overwrite=True.")
    if not path.parent.exists():
        raise MeshError(f"{path}: folder {path.parent} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=ext, dir=path.parent)
    os.close(fd)
    try:
        writer.write(mesh, Path(tmp), ext)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
