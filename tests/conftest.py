"""Shared small fixtures: structured meshes known by hand, gmsh meshes of curved domains
(built once per session), and a folder of bad input files, one per defect."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from meshop import Mesh


# ---------------------------------------------------------------- structured meshes
def grid_points(n: int, dim: int) -> np.ndarray:
    """``(n**dim, dim)`` nodes of the unit square/cube, x varying slowest."""
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, n)] * dim, indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def _cube_corners(n: int) -> list[np.ndarray]:
    """Node ids of the 8 corners of every grid cube, ``corner[4 i + 2 j + k]`` at offset (i, j, k)."""
    ids = np.arange(n ** 3).reshape(n, n, n)
    return [ids[i:n - 1 + i, j:n - 1 + j, k:n - 1 + k].ravel() for i in (0, 1) for j in (0, 1) for k in (0, 1)]


def square_triangles(n: int) -> Mesh:
    """n x n nodes on the unit square, each square split into 2 triangles."""
    ids = np.arange(n * n).reshape(n, n)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel(), ids[:-1, 1:].ravel()
    return Mesh(grid_points(n, 2), {"triangle": np.concatenate([np.c_[a, b, c], np.c_[a, c, d]])})


def square_quads(n: int) -> Mesh:
    ids = np.arange(n * n).reshape(n, n)
    quads = np.c_[ids[:-1, :-1].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel(), ids[:-1, 1:].ravel()]
    return Mesh(grid_points(n, 2), {"quad": quads})


def box_hexahedra(n: int) -> Mesh:
    """n**3 nodes on the unit cube, (n-1)**3 hexahedra in VTK order."""
    c = _cube_corners(n)
    hexes = np.stack([c[0], c[4], c[6], c[2], c[1], c[5], c[7], c[3]], axis=1)
    return Mesh(grid_points(n, 3), {"hexahedron": hexes})


def box_tetrahedra(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and tetrahedra of the unit cube: each grid cube split into 6 (Kuhn)."""
    c = _cube_corners(n)
    tets = []
    for order in itertools.permutations(range(3)):
        offset, path = [0, 0, 0], [c[0]]
        for axis in order:
            offset[axis] = 1
            path.append(c[4 * offset[0] + 2 * offset[1] + offset[2]])
        tets.append(np.stack(path, axis=1))
    return grid_points(n, 3), np.concatenate(tets)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Graphs in tests are tiny: intra-op threads gain nothing, and on a loaded 2-core machine
    threads competing with other processes made fitting tests ~40x slower. Modules that train
    use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["pytorch", "compiled"])
def kernel_path(request, monkeypatch):
    """Each path the kernel layers sum their messages in: PyTorch (``MESHOP_COMPILED_KERNELS=0``)
    and the default, the compiled kernel where a C compiler builds it (PyTorch again without one)."""
    import shutil

    from meshop.nn import compiled

    monkeypatch.setattr(compiled, "_mode", "off" if request.param == "pytorch" else "auto")
    monkeypatch.setattr(compiled, "_unavailable", None)
    monkeypatch.setattr(compiled, "_library", None)        # loaded again (from the disk cache) if used
    yield request.param
    used = compiled._library is not None
    assert used == (request.param == "compiled" and shutil.which("cc") is not None)


@pytest.fixture(scope="session")
def unit_square():
    """Factory: ``unit_square(n, "triangle" | "quad")`` -> Mesh with n x n nodes."""
    return lambda n, kind="triangle": square_triangles(n) if kind == "triangle" else square_quads(n)


@pytest.fixture(scope="session")
def unit_box():
    """Factory: ``unit_box(n, "hexahedron" | "tetra")`` -> Mesh with n**3 nodes."""
    def make(n, kind="hexahedron"):
        if kind == "hexahedron":
            return box_hexahedra(n)
        points, tets = box_tetrahedra(n)
        return Mesh(points, {"tetra": tets})
    return make


# ---------------------------------------------------------------- gmsh meshes
@dataclass
class GmshMesh:
    """A gmsh mesh: the Mesh, its size parameter h, and the nodes gmsh puts on the boundary."""

    mesh: Mesh
    h: float
    boundary_nodes: np.ndarray


def _gmsh_mesh(build, dim: int, h: float, order: int = 1) -> GmshMesh:
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("fixture")
        build(gmsh.model.occ)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.MeshSizeMin", h)
        gmsh.model.mesh.generate(dim)
        if order > 1:
            gmsh.model.mesh.setOrder(order)
        tags, coords, _ = gmsh.model.mesh.getNodes()
        index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
        index[tags.astype(np.int64)] = np.arange(len(tags))
        points = coords.reshape(-1, 3)[:, :dim]
        gmsh_type = {(2, 1): 2, (3, 1): 4, (2, 2): 9, (3, 2): 11}[(dim, order)]
        name = {2: "triangle", 4: "tetra", 9: "triangle6", 11: "tetra10"}[gmsh_type]
        _, node_tags = gmsh.model.mesh.getElementsByType(gmsh_type)
        cells = index[node_tags.astype(np.int64)].reshape(-1, {2: 3, 4: 4, 9: 6, 11: 10}[gmsh_type])
        if name == "tetra10":  # gmsh numbers the last two mid-edge nodes the other way round from VTK
            cells = cells[:, [0, 1, 2, 3, 4, 5, 6, 7, 9, 8]]
        on_boundary = [gmsh.model.mesh.getNodes(d, t, includeBoundary=True)[0]
                       for d, t in gmsh.model.getEntities(dim - 1)]
        boundary = np.unique(index[np.concatenate(on_boundary).astype(np.int64)])
    finally:
        gmsh.finalize()
    return GmshMesh(Mesh(points, {name: cells}), h, boundary)


@pytest.fixture(scope="session")
def disk_with_hole() -> GmshMesh:
    """Annulus 0.4 < |x| < 1 in triangles of size 0.08 (about 800 nodes)."""
    def build(occ):
        outer, inner = occ.addDisk(0, 0, 0, 1.0, 1.0), occ.addDisk(0, 0, 0, 0.4, 0.4)
        occ.cut([(2, outer)], [(2, inner)])
    return _gmsh_mesh(build, dim=2, h=0.08)


@pytest.fixture(scope="session")
def disk() -> GmshMesh:
    """Unit disk in triangles of size 0.05 (about 1,400 nodes)."""
    return _gmsh_mesh(lambda occ: occ.addDisk(0, 0, 0, 1.0, 1.0), dim=2, h=0.05)


@pytest.fixture(scope="session")
def ball() -> GmshMesh:
    """Unit ball in tetrahedra of size 0.2 (about 1,000 nodes)."""
    return _gmsh_mesh(lambda occ: occ.addSphere(0, 0, 0, 1.0), dim=3, h=0.2)


@pytest.fixture(scope="session")
def ball_quadratic() -> GmshMesh:
    """Unit ball in second-order tetrahedra (tetra10), mid-edge nodes placed on the sphere."""
    return _gmsh_mesh(lambda occ: occ.addSphere(0, 0, 0, 1.0), dim=3, h=0.4, order=2)


@pytest.fixture(scope="session")
def disk_quadratic() -> GmshMesh:
    """Unit disk in second-order triangles (triangle6)."""
    return _gmsh_mesh(lambda occ: occ.addDisk(0, 0, 0, 1.0, 1.0), dim=2, h=0.2, order=2)


# ---------------------------------------------------------------- bad files
#: runs each argv of ``sys.argv[1]`` (JSON) through meshop's CLI in this one process and prints, per
#: argv, [exit code, stdout, stderr, whether torch had been imported by then]
_CLI_RUNS = """
import contextlib, io, json, sys
from meshop.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
    results.append([code, out.getvalue(), err.getvalue(), "torch" in sys.modules])
print(json.dumps(results))
"""


def cli_runs_in_a_fresh_process(argvs: list[list], cwd: Path) -> list[tuple[int, str, str, bool]]:
    """``(exit code, stdout, stderr, torch imported)`` of each CLI call of ``argvs``, one after the
    other in a new Python process (whose imports the tests inspect), this checkout's meshop first."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", _CLI_RUNS, json.dumps([[str(a) for a in argv] for argv in argvs])],
                         capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    assert run.returncode == 0, run.stderr[-2000:]
    return [tuple(result) for result in json.loads(run.stdout)]


def write_ascii_vtu(path: Path, points, cells: dict, point_data: dict | None = None) -> Path:
    """A hand-written ASCII .vtu with no validation at all, to hold defects meshio refuses to write."""
    vtk_ids = {"vertex": 1, "line": 3, "triangle": 5, "quad": 9, "tetra": 10, "hexahedron": 12}
    points = np.asarray(points, dtype=float)
    points = np.hstack([points, np.zeros((len(points), 3 - points.shape[1]))])
    conn = np.concatenate([np.asarray(c).ravel() for c in cells.values()]) if cells else np.empty(0, int)
    offsets = np.cumsum([np.shape(c)[1] for c in cells.values() for _ in range(len(c))], dtype=int)
    types = [vtk_ids[t] for t, c in cells.items() for _ in range(len(c))]
    n_cells = len(types)

    def array(name, values, kind="Float64", components=1):
        text = " ".join(repr(float(v)) if kind == "Float64" else str(int(v)) for v in np.ravel(values))
        return (f'<DataArray type="{kind}" Name="{name}" NumberOfComponents="{components}" '
                f'format="ascii">{text}</DataArray>')

    fields = "".join(array(name, values) for name, values in (point_data or {}).items())
    path.write_text(
        '<?xml version="1.0"?>\n<VTKFile type="UnstructuredGrid" version="0.1" byte_order="LittleEndian">'
        f'<UnstructuredGrid><Piece NumberOfPoints="{len(points)}" NumberOfCells="{n_cells}">'
        f'<Points>{array("Points", points, components=3)}</Points>'
        f'<Cells>{array("connectivity", conn, "Int64")}{array("offsets", offsets, "Int64")}'
        f'{array("types", types, "UInt8")}</Cells>'
        f'<PointData>{fields}</PointData></Piece></UnstructuredGrid></VTKFile>\n')
    return path


@dataclass
class BadFile:
    """A bad input file and a phrase its MeshError message must contain."""

    path: Path
    phrase: str


def _half(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _make_bad_files(folder: Path) -> dict[str, BadFile]:
    import meshio
    import pyvista as pv
    import trimesh

    tri = np.array([[0, 1, 2], [1, 3, 2]])
    square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    points, tets = box_tetrahedra(3)
    good_vtu = folder / "good.vtu"
    meshio.write(good_vtu, meshio.Mesh(points, [("tetra", tets)], point_data={"u": points[:, 0]}))
    good_msh = folder / "good.msh"
    meshio.write(good_msh, meshio.Mesh(points, [("tetra", tets)]), file_format="gmsh", binary=True)
    good_stl = folder / "good.stl"
    trimesh.creation.icosphere(2).export(good_stl)
    good_vtk = folder / "good_polydata.vtk"
    pv.Sphere().save(good_vtk, binary=True)
    good_npy = folder / "good.npy"
    np.save(good_npy, np.random.default_rng(0).random((500, 3)))

    (folder / "a_folder.vtu").mkdir()
    (folder / "empty.vtu").write_bytes(b"")
    (folder / "garbage.vtu").write_text("this is not a mesh\n1 2 3\n")
    (folder / "xml.stl").write_text('<?xml version="1.0"?>\n<root><a/></root>\n')
    (folder / "mesh.foo").write_text("1 2 3\n")
    (folder / "header_only.csv").write_text("x,y,z\n")
    (folder / "nan.xyz").write_text("0 0 0\n1 0 0\nnan 1 0\n")
    (folder / "five_columns.xyz").write_text("0 0 0 1 2\n1 0 0 1 2\n0 1 0 1 2\n")
    np.save(folder / "four_columns.npy", np.zeros((5, 4)))
    np.save(folder / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = {
        "missing file": BadFile(folder / "missing.vtu", "no such file"),
        "directory": BadFile(folder / "a_folder.vtu", "is a directory"),
        "unknown format": BadFile(folder / "mesh.foo", "unknown mesh format"),
        "empty file": BadFile(folder / "empty.vtu", "is empty"),
        "garbage text in .vtu": BadFile(folder / "garbage.vtu", "not a valid .vtu file"),
        "XML in .stl": BadFile(folder / "xml.stl", "not a valid .stl file"),
        "truncated .vtu": BadFile(_half(good_vtu, folder / "half.vtu"), "truncated"),
        "truncated .msh": BadFile(_half(good_msh, folder / "half.msh"), "truncated"),
        "truncated .stl": BadFile(_half(good_stl, folder / "half.stl"), "truncated"),
        "truncated .vtk polydata": BadFile(_half(good_vtk, folder / "half.vtk"), "truncated"),
        "truncated .npy": BadFile(_half(good_npy, folder / "half.npy"), "truncated"),
        "no points": BadFile(folder / "header_only.csv", "no points"),
        "NaN coordinates": BadFile(folder / "nan.xyz", "NaN or infinite coordinates"),
        "infinite coordinates": BadFile(
            write_ascii_vtu(folder / "inf.vtu", [[0, 0], [1, 0], [np.inf, 1], [1, 1]], {"triangle": tri}),
            "NaN or infinite coordinates"),
        "cell index out of range": BadFile(
            write_ascii_vtu(folder / "out_of_range.vtu", square, {"triangle": [[0, 1, 2], [1, 3, 7]]}),
            "out of range"),
        "degenerate cell": BadFile(
            write_ascii_vtu(folder / "degenerate.vtu", [[0, 0], [1, 0], [2, 0], [1, 1]],
                            {"triangle": [[0, 1, 2], [0, 1, 3]]}), "degenerate triangle"),
        "only line cells": BadFile(
            write_ascii_vtu(folder / "lines.vtu", square, {"line": [[0, 1], [1, 3]], "vertex": [[0]]}),
            "only line/vertex cells"),
        "point data of wrong length": BadFile(
            write_ascii_vtu(folder / "short_field.vtu", square, {"triangle": tri}, {"u": [1.0, 2.0, 3.0]}),
            "wrong length"),
        "point data with NaN": BadFile(
            write_ascii_vtu(folder / "nan_field.vtu", square, {"triangle": tri}, {"u": [1.0, np.nan, 3.0, 4.0]}),
            "NaN or infinite values"),
        "pickled .npy": BadFile(folder / "pickled.npy", "pickled"),
        "four columns in .npy": BadFile(folder / "four_columns.npy", "(N, 2) or (N, 3)"),
        "five columns, no header": BadFile(folder / "five_columns.xyz", "no header"),
    }
    return cases


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, BadFile]:
    """Defect name -> bad file and the phrase its error message must contain."""
    return _make_bad_files(tmp_path_factory.mktemp("bad"))


# ---------------------------------------------------------------- device markers
def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run where a CUDA device is present and skip, saying why, elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device in this session (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
