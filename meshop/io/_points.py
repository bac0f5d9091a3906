"""Plain point clouds: .xyz/.txt (whitespace), .csv (comma, optional header), .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeshError

READ_EXTENSIONS = [".xyz", ".txt", ".csv", ".npy"]
WRITE_EXTENSIONS = [".xyz", ".csv", ".npy"]


def read(path: Path, ext: str):
    try:
        if ext == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            delimiter = "," if ext == ".csv" else None
            array = _load_text(path, delimiter)
    except MeshError:
        raise
    except Exception as err:
        raise MeshError(f"{path}: could not be read as a {ext} point cloud ({str(err).splitlines()[0][:200]}).") from None
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise MeshError(f"{path}: a point cloud needs 2 or 3 coordinate columns; got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.number):
        raise MeshError(f"{path}: point coordinates are not numbers.")
    return array.astype(np.float64), {}, {}, {}


def _load_text(path: Path, delimiter):
    with open(path) as handle:
        first = handle.readline()
    # skip a header line made of names
    skip = 1 if any(c.isalpha() and c not in "eE" for c in first) else 0
    array = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
    if array.size == 0:
        raise MeshError(f"{path}: the file holds no points.")
    return array[:, :3] if array.shape[1] > 3 else array


def write(mesh, path: Path, ext: str) -> None:
    if ext == ".npy":
        with open(path, "wb") as handle:
            np.save(handle, mesh.points)
    else:
        delimiter = "," if ext == ".csv" else " "
        np.savetxt(path, mesh.points, delimiter=delimiter)
