"""Plain point clouds: .xyz / .txt (whitespace), .csv (comma), .npy.

Text files hold 2 or 3 coordinate columns, or any columns under a header line of names:
the coordinates are the columns named x, y (and z) -- or ParaView's Points:0, Points:1,
Points:2 -- and every other column is a point field; columns named ``name:0``, ``name:1``, ...
form one vector field ``name`` (ParaView's convention). Lines starting with # are comments.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import MeshError
from . import _sniff

READ_EXTENSIONS = [".xyz", ".txt", ".csv", ".npy"]
WRITE_EXTENSIONS = [".xyz", ".csv", ".npy"]
_COORDINATE_NAMES = (("x", "y", "z"), ("points:0", "points:1", "points:2"))


def read(path: Path, ext: str):
    if ext == ".npy":
        names, table = None, _load_npy(path)
    else:
        names, table = _load_text(path, "," if ext == ".csv" else None)
    if len(table) == 0:
        raise MeshError(f"{path}: the file holds no points.")
    points, point_data = _split_columns(path, names, table)
    return points, {}, point_data, {}


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise MeshError(f"{path}: the array holds Python objects (pickled data), which meshop "
                            "never loads; save a float array of shape (N, 2) or (N, 3).") from None
        raise _sniff.reader_failure(path, ".npy", err) from None
    except Exception as err:  # noqa: BLE001 - numpy raises several types on bad files
        raise _sniff.reader_failure(path, ".npy", err) from None
    if array.ndim != 2 or array.shape[1] not in (2, 3) or not np.issubdtype(array.dtype, np.number):
        raise MeshError(f"{path}: a .npy point cloud must be a numeric (N, 2) or (N, 3) array; "
                        f"this one is {array.dtype} {array.shape}.")
    return array.astype(np.float64)


def _load_text(path: Path, delimiter: str | None) -> tuple[list[str] | None, np.ndarray]:
    """Column names (None without a header line) and the ``(N, c)`` numbers."""
    names, skip = None, 0
    try:
        with open(path, encoding="utf-8") as handle:
            for skip, line in enumerate(handle, start=1):
                if line.strip() and not line.lstrip().startswith("#"):
                    tokens = [t.strip().strip('"').strip("'") for t in line.strip().split(delimiter)]
                    if not all(_is_number(t) for t in tokens):
                        names = tokens
                    else:
                        skip -= 1
                    break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on files without data rows
            table = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, comments="#",
                               dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - loadtxt raises several types on bad rows
        raise _sniff.reader_failure(path, path.suffix.lower(), err) from None
    if names is not None and table.size and len(names) != table.shape[1]:
        raise MeshError(f"{path}: the header names {len(names)} columns but the rows have "
                        f"{table.shape[1]}.")
    return names, table


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _split_columns(path: Path, names: list[str] | None, table: np.ndarray):
    """``(points (N, 2|3), point_data)`` from the columns."""
    if names is None:
        if table.shape[1] not in (2, 3):
            raise MeshError(f"{path}: {table.shape[1]} columns and no header line; a point cloud "
                            "needs 2 or 3 coordinate columns, or a header naming them x, y, z.")
        return table, {}
    lower = [n.lower() for n in names]
    for candidates in _COORDINATE_NAMES:
        if candidates[0] in lower and candidates[1] in lower:
            coords = [lower.index(c) for c in candidates if c in lower]
            break
    else:
        if table.shape[1] not in (2, 3):
            raise MeshError(f"{path}: no columns named x, y (and z) among {', '.join(names)}.")
        coords = list(range(table.shape[1]))
    point_data: dict[str, np.ndarray] = {}
    components: dict[str, list[tuple[int, np.ndarray]]] = {}
    for column, name in enumerate(names):
        if column in coords:
            continue
        match = re.fullmatch(r"(.+):(\d+)", name)
        if match:
            components.setdefault(match[1], []).append((int(match[2]), table[:, column]))
        else:
            point_data[name] = table[:, column]
    for name, parts in components.items():
        point_data[name] = np.stack([values for _, values in sorted(parts, key=lambda p: p[0])], axis=1)
    return table[:, coords], point_data


def write(mesh, path: Path, ext: str) -> None:
    """Coordinates (the constant z of a planar mesh included); .csv adds every point field."""
    from ._meshio import xyz

    points = xyz(mesh) if mesh.planar_z is not None else mesh.points
    if ext == ".npy":
        with open(path, "wb") as handle:
            np.save(handle, points)
        return
    if ext == ".xyz":
        np.savetxt(path, points, fmt="%.17g")
        return
    names = ["x", "y", "z"][: points.shape[1]]
    columns = [points]
    for name, values in mesh.point_data.items():
        values = np.asarray(values, dtype=np.float64).reshape(mesh.n_points, -1)
        names += [name] if values.shape[1] == 1 and np.ndim(mesh.point_data[name]) == 1 else \
            [f"{name}:{i}" for i in range(values.shape[1])]
        columns.append(values)
    np.savetxt(path, np.hstack(columns), fmt="%.17g", delimiter=",", header=",".join(names), comments="")
