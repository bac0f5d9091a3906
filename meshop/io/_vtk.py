"""The VTK family through VTK's own readers, wrapped by PyVista: .vtp polydata, the structured
XML grids (.vti .vtr .vts), legacy .vtk polydata, and .vtu / .vtk files meshio cannot parse.

VTK reports problems through its output window and logger (printed to stderr) and may crash
on the data of a failed read, so every read runs with both silenced and captured, and any
reported error or warning becomes a :class:`MeshError` before the data is touched.
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import numpy as np

from ..errors import MeshError
from . import _sniff

READ_EXTENSIONS = [".vtp", ".vti", ".vtr", ".vts"]
WRITE_EXTENSIONS = [".vtp"]

# VTK cell type id -> (meshio name, node permutation or None)
_VTK_TYPES = {
    1: ("vertex", None), 3: ("line", None), 21: ("line3", None),
    5: ("triangle", None), 22: ("triangle6", None),
    9: ("quad", None), 23: ("quad8", None), 28: ("quad9", None), 8: ("quad", [0, 1, 3, 2]),
    10: ("tetra", None), 24: ("tetra10", None),
    12: ("hexahedron", None), 25: ("hexahedron20", None), 29: ("hexahedron27", None),
    11: ("hexahedron", [0, 1, 3, 2, 4, 5, 7, 6]),
    13: ("wedge", None), 26: ("wedge15", None), 14: ("pyramid", None), 27: ("pyramid13", None),
}
_POLY_ONLY = {2, 4}  # poly-vertex and poly-line cells of polydata: no area, dropped
_POLYGONS = (6, 7)  # triangle strips and general polygons of polydata: triangulated


def read(path: Path, ext: str):
    """``(points, cells, point_data, cell_data, field_data)`` of a VTK file, by VTK's reader."""
    import pyvista as pv

    data = pv.wrap(_run_reader(path, ext))
    try:
        return _arrays(path, data)
    except (ValueError, IndexError, TypeError) as err:  # cells VTK read but cannot be tabled
        raise _sniff.reader_failure(path, ext, err) from None


def _arrays(path: Path, data):
    """``(points, cells, point_data, cell_data, field_data)`` of a PyVista data set."""
    import pyvista as pv

    grid = data.cast_to_unstructured_grid()
    if isinstance(data, pv.PolyData) and np.isin(grid.celltypes, _POLYGONS).any():
        grid = data.triangulate().cast_to_unstructured_grid()
    types = np.asarray(grid.celltypes)
    cells: dict[str, np.ndarray] = {}
    cell_data: dict[str, dict[str, np.ndarray]] = {}
    for vtk_type, conn in grid.cells_dict.items():
        vtk_type = int(vtk_type)
        if vtk_type in _POLY_ONLY:
            continue
        if vtk_type not in _VTK_TYPES:
            raise MeshError(f"{path}: VTK cell type {vtk_type} is not supported "
                            f"(supported: {sorted(_VTK_TYPES)}).")
        name, order = _VTK_TYPES[vtk_type]
        conn = np.asarray(conn, dtype=np.int64)
        conn = conn[:, order] if order else conn
        cells[name] = np.concatenate([cells[name], conn]) if name in cells else conn
        for key, values in grid.cell_data.items():
            if not key.startswith("vtk"):
                by_type = cell_data.setdefault(key, {})
                part = np.asarray(values)[types == vtk_type]
                by_type[name] = np.concatenate([by_type[name], part]) if name in by_type else part
    point_data = {k: np.asarray(v) for k, v in grid.point_data.items() if not k.startswith("vtk")}
    field_data = {k: np.asarray(v) for k, v in data.field_data.items() if not k.startswith("vtk")}
    return np.asarray(grid.points, dtype=np.float64), cells, point_data, cell_data, field_data


def _run_reader(path: Path, ext: str):
    """The reader's output data set; MeshError on any error or warning VTK reports."""
    import pyvista as pv
    from vtkmodules.vtkCommonDataModel import vtkDataSet

    if ext == ".vtk":
        from vtkmodules.vtkIOLegacy import vtkDataSetReader

        reader = vtkDataSetReader()
        for flag in ("Scalars", "Vectors", "Normals", "Tensors", "ColorScalars", "TCoords", "Fields"):
            getattr(reader, f"ReadAll{flag}On")()
    else:
        from vtkmodules.vtkIOXML import vtkXMLGenericDataObjectReader

        reader = vtkXMLGenericDataObjectReader()
    reader.SetFileName(str(path))
    with pv.vtk_verbosity("off"), pv.VtkErrorCatcher(send_to_logging=False) as caught:
        reader.Update()
    if caught.events:
        text = _event_text(caught.events[0])
        if "InformationKey" in text:       # VTK cannot parse the inf/nan range its writer recorded
            _refuse_nonfinite_ranges(path)
        raise _sniff.reader_failure(path, ext, RuntimeError(text))
    output = reader.GetOutput() if ext == ".vtk" else reader.GetOutputDataObject(0)
    if output is None or not isinstance(output, vtkDataSet):
        kind = type(output).__name__ if output is not None else "nothing"
        raise MeshError(f"{path}: VTK read {kind} from this {ext} file, not a mesh.")
    if output.GetNumberOfPoints() == 0:
        raise MeshError(f"{path}: the mesh has no points.")
    return output


#: the opening tags of a VTK XML file's sections and arrays, in file order
_XML_TAG = re.compile(rb"<(Points|PointData|CellData|FieldData|Cells|Verts|Lines|Strips|Polys|DataArray)\b([^>]*)>")
_NONFINITE_RANGE = re.compile(rb'\bRange(?:Min|Max)="\s*[+-]?(?:inf|infinity|nan)\s*"', re.IGNORECASE)


def _refuse_nonfinite_ranges(path: Path) -> None:
    """:class:`MeshError` naming the coordinates or point field whose value range the VTK XML file
    records as infinite or NaN (its writer's ``RangeMin``/``RangeMax`` of that array): VTK's own
    reader then fails on the array's L2-norm information key, which does not say why."""
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            end = data.find(b"<AppendedData")                   # raw appended bytes hold no tags
            section = None
            for match in _XML_TAG.finditer(data, 0, end if end >= 0 else len(data)):
                tag, attributes = match[1].decode(), match[2]
                if tag != "DataArray":
                    section = tag
                elif _NONFINITE_RANGE.search(attributes):
                    name = re.search(rb'\bName="([^"]*)"', attributes)
                    name = name[1].decode("utf-8", "replace") if name else "?"
                    break
            else:
                return
    except (OSError, ValueError):
        return
    if section == "Points":
        raise MeshError(f"{path}: some point coordinates are NaN or infinite (the file records the range of "
                        f"its '{name}' array as non-finite).")
    where = {"PointData": "point field", "CellData": "cell field"}.get(section, "data array")
    raise MeshError(f"{path}: {where} '{name}' has NaN or infinite values (the file records its range as "
                    "non-finite).")


def _event_text(event) -> str:
    alert = str(getattr(event, "alert", event)).strip()
    return alert.splitlines()[-1] if alert else "VTK reported an error"


def write(mesh, path: Path, ext: str) -> None:
    """A surface or point cloud as binary VTK XML polydata."""
    import pyvista as pv

    from ._meshio import xyz

    faces = []
    for cell_type, conn in mesh.cells.items():
        if cell_type in ("triangle", "quad"):
            faces.append(np.hstack([np.full((len(conn), 1), conn.shape[1]), conn]).ravel())
    poly = pv.PolyData(xyz(mesh), np.concatenate(faces) if faces else None)
    for name, values in mesh.point_data.items():
        poly.point_data[name] = values
    save_xml(poly, path)


def save_xml(data, path: Path) -> None:
    """A PyVista data set as binary, zlib-compressed VTK XML (``.vtp`` for polydata, else
    ``.vtu``), the bytes written by Python: VTK's own file output aborts the whole process on a
    full disk (``free(): invalid pointer``, exit 134, measured), where Python's raises the
    ``OSError`` that :func:`meshop.write` says in one sentence."""
    import pyvista as pv
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter, vtkXMLUnstructuredGridWriter

    writer = vtkXMLPolyDataWriter() if isinstance(data, pv.PolyData) else vtkXMLUnstructuredGridWriter()
    writer.SetInputData(data)
    writer.SetDataModeToBinary()
    writer.SetCompressorTypeToZLib()
    writer.WriteToOutputStringOn()
    if not writer.Write():
        raise OSError(f"VTK could not encode the {Path(path).suffix} file")
    Path(path).write_bytes(writer.GetOutputString().encode("latin-1"))
