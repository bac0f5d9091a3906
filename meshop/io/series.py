"""Time series files: ParaView ``.pvd`` collections and XDMF time series (meshio).

=========  ======================================================================================
format     layout
=========  ======================================================================================
``.pvd``   ``NAME.pvd`` (a ``<Collection>`` of ``<DataSet timestep=... file=...>``) and the folder
           ``NAME/`` with one ``frame_00000.vtu`` per frame (``.vtp`` for point clouds) and
           ``meshop.json`` (metadata, which fields are constant); nodes may move per frame
``.xdmf``  ``NAME.xdmf`` + ``NAME.h5`` through meshio's ``TimeSeriesWriter``/``TimeSeriesReader``,
           plus ``NAME.meshop.json``; one fixed node set
=========  ======================================================================================

Both open in ParaView. Writes are atomic: frames go to a hidden staging folder that is renamed
into place, the collection file last, so a failed or interrupted write leaves no half series.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, process_running
from ..errors import MeshError, as_path, check_parent, write_failure
from ..mesh import Mesh
from ..trajectory import Trajectory
from ._sniff import check_xdmf_data, special_file

SERIES_EXTENSIONS = (".pvd", ".xdmf", ".xmf")
#: name of the metadata file of a .pvd series (inside its frames folder)
PVD_METADATA = "meshop.json"
_MARK = "meshop-series/1"


def is_series(path) -> bool:
    """True for a path whose extension is a time-series format: ``.pvd``, or an ``.xdmf`` /
    ``.xmf`` holding a temporal collection (one without it is a single mesh, as ``meshop.write``
    and FEniCS write them, read by :func:`meshop.read`)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SERIES_EXTENSIONS:
        return False
    return ext == ".pvd" or _temporal_xdmf(path)


_TEMPORAL = re.compile(rb"""CollectionType\s*=\s*["']Temporal["']""")


def _temporal_xdmf(path: Path) -> bool:
    """True when the XDMF file declares a temporal collection (read in 1 MiB chunks: the data of a
    single mesh may be inline); also for a file that cannot be opened, so that the series reader
    says why."""
    if not path.is_file():          # missing, a folder, a named pipe or a device: never opened here
        return True
    try:
        with open(path, "rb") as handle:
            tail = b""
            while chunk := handle.read(1 << 20):
                if _TEMPORAL.search(tail + chunk):
                    return True
                tail = chunk[-64:]
    except OSError:
        return True
    return False


# ---------------------------------------------------------------------- writing
def write_series(traj: Trajectory, path, *, overwrite: bool = True) -> Path:
    """Write ``traj`` to ``path`` (``.pvd`` or ``.xdmf``), atomically; returns ``path``.

    ``overwrite=False`` refuses to replace an existing series.
    """
    if not isinstance(traj, Trajectory):
        raise TypeError(f"write_series needs a meshop.Trajectory, got {type(traj).__name__}"
                        + (" (write one mesh with meshop.write)." if isinstance(traj, Mesh) else "."))
    path = as_path(path)
    ext = series_format(path)
    check_parent(path)
    if path.exists() and not overwrite:
        raise MeshError(f"{path}: exists; pass --overwrite (overwrite=True) to replace it.")
    meta = {"format": _MARK, "constant": sorted(traj.mesh.point_data), "metadata": traj.metadata}
    try:
        if ext == ".pvd":
            _write_pvd(traj, path, meta)
        else:
            _write_xdmf(traj, path, meta)
    except OSError as err:          # an unwritable folder, a full disk: as meshop.write says it
        raise write_failure(path, f"this {ext} series", err) from None
    return path


def series_format(path: Path) -> str:
    """The series format ``path`` names (``.pvd``, ``.xdmf``, ``.xmf``); :class:`MeshError` for
    another extension (checked before a rollout runs)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SERIES_EXTENSIONS:
        raise MeshError(f"{path}: a time series is written as .pvd (ParaView collection) or .xdmf; "
                        f"got '{ext or path.name}'.")
    return ext


def _write_pvd(traj: Trajectory, path: Path, meta: dict) -> None:
    from . import write

    frames = path.with_suffix("")
    if frames.exists() and not (frames / PVD_METADATA).is_file():
        raise MeshError(f"{path}: its frames folder {frames} exists and is not a meshop series; "
                        "move it or choose another name.")
    suffix = ".vtp" if traj.mesh.is_point_cloud else ".vtu"
    staging = _staging(path)
    try:
        entries = []
        for index in range(traj.n_frames):
            name = f"frame_{index:05d}{suffix}"
            try:
                write(traj.frame(index), staging / name)
            except MeshError as err:   # it names the hidden staging file: say it of the series
                if isinstance(err.__context__, OSError):
                    raise err.__context__ from None
                raise
            entries.append((traj.times[index], f"{frames.name}/{name}"))
        (staging / PVD_METADATA).write_text(json.dumps(meta, indent=1) + "\n")
        with atomic_path(path) as tmp:   # the collection written before the frames are swapped in,
            tmp.write_text(_collection_xml(entries))   # so a full disk leaves the old series whole
            _replace_folder(staging, frames)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _collection_xml(entries: list[tuple[float, str]]) -> str:
    lines = ['<?xml version="1.0"?>',
             '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">', "  <Collection>"]
    lines += [f'    <DataSet timestep="{float(time)!r}" group="" part="0" file="{file}"/>' for time, file in entries]
    lines += ["  </Collection>", "</VTKFile>", ""]
    return "\n".join(lines)


def _write_xdmf(traj: Trajectory, path: Path, meta: dict) -> None:
    import meshio

    if traj.moving:
        raise MeshError(f"{path}: XDMF series hold one fixed node set and these nodes move; "
                        "write a .pvd series instead.")
    staging = _staging(path)
    try:
        inner = staging / (path.stem + ".xdmf")
        cells = [(kind, conn) for kind, conn in traj.mesh.cells.items()]
        points = _points3(traj.mesh)
        # meshio writes the .h5 beside the working directory, not beside the .xdmf: write from
        # inside the staging folder (the .xdmf names the .h5 by its bare file name)
        with _working_directory(staging), meshio.xdmf.TimeSeriesWriter(inner.name) as writer:
            writer.write_points_cells(points, cells)
            for index, time in enumerate(traj.times):
                values = {**traj.mesh.point_data, **{n: v[index] for n, v in traj.fields.items()}}
                writer.write_data(float(time), point_data={n: np.ascontiguousarray(v) for n, v in values.items()})
        (staging / (path.stem + ".meshop.json")).write_text(json.dumps(meta, indent=1) + "\n")
        for produced in sorted(staging.iterdir(), key=lambda p: p.suffix == ".xdmf"):  # the .xdmf last
            os.replace(produced, path.with_name(produced.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _working_directory(folder: Path):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _points3(mesh: Mesh) -> np.ndarray:
    if mesh.dim == 3:
        return mesh.points
    z = mesh.planar_z or 0.0
    return np.column_stack([mesh.points, np.full(mesh.n_points, z)])


def _staging(path: Path) -> Path:
    """A fresh hidden folder beside ``path`` for the files of one write. The folders a writer of
    ``path`` killed mid-write (SIGKILL, a crash) left, ``.NAME.pvd.partial-<pid>`` and the frames
    being replaced, ``.NAME.old-<pid>``, are removed first."""
    for name in (f".{path.name}.partial-", f".{path.with_suffix('').name}.old-"):
        for entry in path.parent.glob(glob.escape(name) + "*"):
            pid = entry.name[len(name):]
            if pid.isdigit() and int(pid) != os.getpid() and not process_running(int(pid)) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
    staging = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved away first, then removed."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------- reading
def read_series(path) -> Trajectory:
    """Read a ``.pvd`` or XDMF time series into a :class:`~meshop.Trajectory`.

    Raises:
        MeshError: a missing or unreadable file, a missing frame file, frames with different
            node counts or cells, non-increasing times, a field absent from some frames.
    """
    path = as_path(path)
    if path.is_dir():
        raise MeshError(f"{path}: is a directory, not a time series file.")
    if not path.is_file():
        special = special_file(path)
        raise MeshError(f"{path}: is {special}, not a time series file." if special else f"{path}: no such file.")
    ext = path.suffix.lower()
    if ext == ".pvd":
        return _read_pvd(path)
    if ext in (".xdmf", ".xmf"):
        return _read_xdmf(path)
    raise MeshError(f"{path}: not a time series (known: {' '.join(SERIES_EXTENSIONS)}).")


def _read_pvd(path: Path) -> Trajectory:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise MeshError(f"{path}: not a valid .pvd collection ({err}).") from None
    entries = root.findall("./Collection/DataSet")
    if root.tag != "VTKFile" or root.get("type") != "Collection" or not entries:
        raise MeshError(f"{path}: not a ParaView collection with frames (no <Collection><DataSet> entries).")
    times, files = [], []
    for k, entry in enumerate(entries):
        try:
            times.append(float(entry.get("timestep", k)))
        except ValueError:
            raise MeshError(f"{path}: frame {k} has timestep {entry.get('timestep')!r}, not a number.") from None
        name = entry.get("file")
        if not name:
            raise MeshError(f"{path}: frame {k} names no file.")
        if os.path.isabs(name) or os.path.normpath(name).split(os.sep)[0] == os.pardir:
            raise MeshError(f"{path}: frame {k} file {name} lies outside the series' folder; a .pvd names its "
                            "frames by paths inside its own folder (move them there and list them relative to it).")
        frame = (path.parent / name)
        if not frame.is_file():
            special = "a directory" if frame.is_dir() else special_file(frame)
            raise MeshError(f"{path}: frame {k} file {frame} "
                            + (f"is {special}, not a mesh file." if special else "is missing."))
        files.append(frame)
    meta = _read_json(path.with_suffix("") / PVD_METADATA)
    return _assemble(path, _read_frames(path, files), np.asarray(times), meta)


def _read_frames(path: Path, files: list[Path]) -> list[Mesh]:
    """The frame files as meshes: frame 0 checked in full; a later frame with frame 0's cells
    only for its node count, coordinates and fields (its cells are frame 0's, checked once)."""
    from . import read_arrays

    points, cells, point_data, cell_data, field_data = read_arrays(files[0])  # frame 0's field data: the series'
    first = Mesh(points, cells, point_data, cell_data, source=files[0], field_data=field_data)
    meshes = [first]
    for k, frame in enumerate(files[1:], start=1):
        points, frame_cells, point_data, cell_data, _ = read_arrays(frame)
        if len(points) != first.n_points:
            raise MeshError(f"{path}: frame {k} has {len(points)} nodes but frame 0 has {first.n_points}; "
                            "a series needs one node set.")
        if _same_cells(frame_cells, cells):
            meshes.append(first.with_points(points, point_data, source=frame))
        else:  # other cells: checked in full, then refused by _assemble when they differ in kind
            meshes.append(Mesh(points, frame_cells, point_data, cell_data, source=frame))
    return meshes


def _same_cells(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[t], b[t]) for t in a)


def _read_xdmf(path: Path) -> Trajectory:
    import meshio

    check_xdmf_data(path)
    try:
        with meshio.xdmf.TimeSeriesReader(str(path)) as reader:
            points, cells = reader.read_points_cells()
            frames = [reader.read_data(k) for k in range(reader.num_steps)]
    except Exception as err:  # noqa: BLE001 - meshio raises anything on a bad file
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise MeshError(f"{path}: not a readable XDMF time series ({reason}).") from None
    if not frames:
        raise MeshError(f"{path}: the XDMF file holds no time steps.")
    cells = {block.type: block.data for block in cells}
    first = Mesh(points, cells, frames[0][1], source=path)  # one node set: checked once
    meshes = [first, *(first.with_points(points, point_data) for _, point_data, _ in frames[1:])]
    meta = _read_json(path.with_name(path.stem + ".meshop.json"))
    return _assemble(path, meshes, np.asarray([t for t, _, _ in frames]), meta)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise MeshError(f"{path}: the series metadata is not valid JSON.") from None
    return meta if isinstance(meta, dict) and meta.get("format") == _MARK else {}


def _assemble(path: Path, meshes: list[Mesh], times: np.ndarray, meta: dict) -> Trajectory:
    """One :class:`Trajectory` from frame meshes, after checking they form one series."""
    first = meshes[0]
    names = set(first.point_data)
    for k, mesh in enumerate(meshes[1:], start=1):
        if mesh.n_points != first.n_points:
            raise MeshError(f"{path}: frame {k} has {mesh.n_points} nodes but frame 0 has {first.n_points}; "
                            "a series needs one node set.")
        if mesh.cell_counts != first.cell_counts:
            raise MeshError(f"{path}: frame {k} has other cells than frame 0 ({mesh.cell_counts} vs "
                            f"{first.cell_counts}).")
        if set(mesh.point_data) != names:
            missing = sorted(names ^ set(mesh.point_data))[0]
            absent = k if missing in names else 0
            raise MeshError(f"{path}: field '{missing}' is absent from frame {absent}; every frame must hold "
                            "the same fields.")
    constant = [n for n in meta.get("constant", []) if n in names]
    moving = any(not np.array_equal(m.points, first.points) for m in meshes[1:])
    mesh = Mesh(first.points, first.cells, {n: first.point_data[n] for n in constant}, first.cell_data,
                source=path, field_data=first.field_data)
    fields = {n: np.stack([m.point_data[n] for m in meshes]) for n in first.point_data if n not in constant}
    positions = np.stack([m.points for m in meshes]) if moving else None
    return Trajectory(mesh, times, fields, positions, dict(meta.get("metadata", {})), source=path)
