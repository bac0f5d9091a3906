"""meshop.read / meshop.write: round trips through every writable format, files written by
other tools (gmsh, PyVista, trimesh, ParaView-style CSV), one message per bad file, atomic
writes."""

from __future__ import annotations

import os
import stat
import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree

import meshop
from meshop import Mesh, MeshError
from meshop.io import READERS, WRITERS

from conftest import box_tetrahedra, square_triangles


# ---------------------------------------------------------------- round trips
def _volume() -> Mesh:
    points, tets = box_tetrahedra(4)
    return Mesh(points, {"tetra": tets}, {"u": points[:, 0] ** 2 - 0.1, "v": points[:, ::-1] * 3.0})


def _planar() -> Mesh:
    mesh = square_triangles(5)
    return Mesh(np.c_[mesh.points * 0.7, np.full(mesh.n_points, 0.5)], mesh.cells,
                {"u": np.sin(mesh.points[:, 0] * 3.0)})


def _surface() -> Mesh:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=1)
    return Mesh(sphere.vertices, {"triangle": sphere.faces}, {"u": sphere.vertices[:, 2] + 2.0})


def _cloud() -> Mesh:
    points = np.random.default_rng(0).random((50, 3))
    return Mesh(points, None, {"u": points.sum(axis=1)})


MESHES = {"volume": _volume, "planar": _planar, "surface": _surface, "cloud": _cloud}
#: formats that store point fields (.ply: scalar fields only)
KEEPS_FIELDS = {".vtu", ".vtk", ".msh", ".xdmf", ".med", ".vtp", ".csv", ".ply"}
POINT_FORMATS = {".xyz", ".csv", ".npy"}
ROUND_TRIPS = [
    *[("volume", ext) for ext in (".vtu", ".vtk", ".msh", ".xdmf", ".med", ".inp", ".mesh", ".csv")],
    *[("planar", ext) for ext in sorted(WRITERS)],
    *[("surface", ext) for ext in (".stl", ".obj", ".off", ".ply", ".vtp", ".vtu", ".msh")],
    *[("cloud", ext) for ext in (".xyz", ".csv", ".npy", ".ply", ".vtp", ".vtu", ".vtk", ".xdmf")],
]


def test_round_trips_cover_every_writable_format():
    assert {ext for _, ext in ROUND_TRIPS} == set(WRITERS)


def _cell_sets(mesh: Mesh, order: np.ndarray | None = None) -> dict[str, set]:
    """Cells as sets of sorted node tuples, node ids mapped through ``order`` when given."""
    return {t: {tuple(sorted(order[c] if order is not None else c)) for c in conn.tolist()}
            for t, conn in mesh.cells.items() if t not in ("vertex", "line")}


@pytest.mark.parametrize("kind, ext", ROUND_TRIPS)
def test_write_read_round_trip(tmp_path, recwarn, kind, ext):
    mesh = MESHES[kind]()
    path = meshop.write(mesh, tmp_path / f"{kind}{ext}")
    back = meshop.read(path)
    assert back.dim == mesh.dim and back.n_points == mesh.n_points
    assert back.planar_z == mesh.planar_z
    order = None
    if ext == ".stl":   # float32 coordinates, vertices merged in order of first use
        distance, found = cKDTree(back.points).query(mesh.points)
        assert distance.max() < 1e-6
        back_points = back.points[found]
        order = np.empty_like(found)
        order[found] = np.arange(len(found))           # back node id -> original node id
    else:
        back_points = back.points
        np.testing.assert_array_equal(back.points, mesh.points)
    np.testing.assert_allclose(back_points, mesh.points, rtol=1e-7, atol=1e-7)
    if ext in POINT_FORMATS:
        assert back.is_point_cloud
    else:
        assert _cell_sets(back, order) == _cell_sets(mesh)
    kept = {name for name, v in mesh.point_data.items() if ext in KEEPS_FIELDS
            and (ext != ".ply" or np.ndim(v) == 1)}
    assert kept <= set(back.point_data)
    for name in kept:
        np.testing.assert_array_equal(np.reshape(back.point_data[name], np.shape(mesh.point_data[name])),
                                      mesh.point_data[name])
    dropped = set(mesh.point_data) - kept
    warned = " ".join(str(w.message) for w in recwarn)
    assert all(name in warned for name in dropped) and ("cannot store" in warned) == bool(dropped)


@pytest.mark.parametrize("kind, ext, phrase", [
    ("volume", ".stl", "hold triangle surfaces, not tetra cells"),
    ("volume", ".obj", "not tetra cells"),
    ("volume", ".vtp", "not tetra cells"),
    ("cloud", ".stl", "need cells and this is a point cloud"),
    ("cloud", ".msh", "need cells and this is a point cloud"),
    ("volume", ".png", "cannot write format '.png'"),
])
def test_write_refuses_what_the_format_cannot_hold(tmp_path, kind, ext, phrase):
    target = tmp_path / f"out{ext}"
    with pytest.raises(MeshError, match=phrase) as caught:
        meshop.write(MESHES[kind](), target)
    assert str(caught.value).startswith(str(target))
    assert list(tmp_path.iterdir()) == []


def test_writing_cells_to_a_point_format_warns(tmp_path):
    with pytest.warns(UserWarning) as record:
        meshop.write(_volume(), tmp_path / "points.xyz")
    messages = [str(w.message) for w in record]
    assert any("holds points only; the cells (tetra) are not written" in m for m in messages)
    assert any("cannot store point field(s) u, v" in m for m in messages)


# ---------------------------------------------------------------- files from other tools
def test_gmsh_files_of_every_version(tmp_path):
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.25)
        gmsh.model.mesh.generate(2)
        for name, version, binary in [("v41", 4.1, 0), ("v41b", 4.1, 1), ("v22", 2.2, 0)]:
            gmsh.option.setNumber("Mesh.MshFileVersion", version)
            gmsh.option.setNumber("Mesh.Binary", binary)
            gmsh.write(str(tmp_path / f"{name}.msh"))
    finally:
        gmsh.finalize()
    meshes = [meshop.read(tmp_path / f"{name}.msh") for name in ("v41", "v41b", "v22")]
    for mesh in meshes:
        assert mesh.dim == 2 and mesh.planar_z == 0.0
        assert "gmsh:dim_tags" not in mesh.point_data           # bookkeeping, not a field
        np.testing.assert_allclose(mesh.points, meshes[0].points, atol=1e-15)   # ASCII: 16 digits
        np.testing.assert_array_equal(mesh.cells["triangle"], meshes[0].cells["triangle"])
        on_side = ((mesh.points == 0) | (mesh.points == 1)).any(axis=1)
        np.testing.assert_array_equal(mesh.boundary_mask, on_side)
    # gmsh's vertex, line and triangle blocks, and a field, written back to .msh
    with_field = meshes[0].with_point_data(u=meshes[0].points[:, 0])
    back = meshop.read(meshop.write(with_field, tmp_path / "back.msh"))
    assert back.cell_counts == meshes[0].cell_counts and len(back.cell_counts) == 3
    np.testing.assert_array_equal(back.point_data["u"], with_field.point_data["u"])


def test_vtk_polydata_through_pyvista(tmp_path, capfd):
    import pyvista as pv

    sphere = pv.Sphere()
    sphere.save(tmp_path / "s.vtp")
    sphere.save(tmp_path / "s_binary.vtk", binary=True)
    sphere.save(tmp_path / "s_ascii.vtk", binary=False)
    for name in ("s.vtp", "s_binary.vtk", "s_ascii.vtk"):
        mesh = meshop.read(tmp_path / name)
        assert mesh.is_surface and mesh.n_points == sphere.n_points
        assert mesh.cell_counts == {"triangle": sphere.n_cells}
        # float32 data; the ASCII writer keeps about 6 digits
        np.testing.assert_allclose(mesh.points, sphere.points, atol=1e-6)
        np.testing.assert_allclose(mesh.point_data["Normals"], sphere.point_data["Normals"], atol=1e-6)
    assert capfd.readouterr() == ("", "")


def test_vtp_cloud_with_infinite_values_names_them(tmp_path, capfd):
    """pyvista records an array's L2-norm range in .vtp files; VTK's reader fails on an infinite one
    ("Error reading InformationKey ... L2_NORM_RANGE"), which did not say the data holds inf."""
    import pyvista as pv

    points = np.random.default_rng(0).random((20, 3))
    points[3, 0] = np.inf
    pv.PolyData(points).save(tmp_path / "coords.vtp")
    for binary in (True, False):
        cloud = pv.PolyData(np.random.default_rng(1).random((20, 3)))
        velocity = np.ones((20, 3))
        velocity[2, 1] = -np.inf
        cloud.point_data["velocity"] = velocity
        cloud.save(tmp_path / f"field_{binary}.vtp", binary=binary)
    with pytest.raises(MeshError, match="coords.vtp: some point coordinates are NaN or infinite"):
        meshop.read(tmp_path / "coords.vtp")
    for binary in (True, False):
        with pytest.raises(MeshError, match=f"field_{binary}.vtp: point field 'velocity' has NaN or infinite values"):
            meshop.read(tmp_path / f"field_{binary}.vtp")
    assert capfd.readouterr() == ("", "")


def test_vtk_image_data_becomes_hexahedra_and_quads(tmp_path):
    import pyvista as pv

    pv.ImageData(dimensions=(3, 4, 5), spacing=(0.5, 1.0, 2.0)).save(tmp_path / "block.vti")
    mesh = meshop.read(tmp_path / "block.vti")
    assert mesh.cell_counts == {"hexahedron": 2 * 3 * 4}
    assert mesh.boundary_mask.sum() == 3 * 4 * 5 - 1 * 2 * 3
    assert mesh.boundary.measures.sum() == pytest.approx(2 * (1 * 3 + 1 * 8 + 3 * 8))
    pv.ImageData(dimensions=(4, 3, 1)).save(tmp_path / "sheet.vti")
    sheet = meshop.read(tmp_path / "sheet.vti")
    assert sheet.dim == 2 and sheet.cell_counts == {"quad": 6}
    assert sheet.boundary.measures.sum() == pytest.approx(10.0)


@pytest.mark.parametrize("ext", [".stl", ".obj", ".off", ".glb", ".ply"])
def test_cad_surfaces_through_trimesh(tmp_path, ext):
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.export(tmp_path / f"sphere{ext}")
    mesh = meshop.read(tmp_path / f"sphere{ext}")
    assert mesh.is_surface and mesh.cell_counts == {"triangle": len(sphere.faces)}
    assert mesh.n_points == len(sphere.vertices)                 # STL corners merged back
    assert cKDTree(mesh.points).query(sphere.vertices)[0].max() < 1e-6


def test_ascii_stl(tmp_path):
    import trimesh

    trimesh.creation.box().export(tmp_path / "box.stl", file_type="stl_ascii")
    mesh = meshop.read(tmp_path / "box.stl")
    assert mesh.n_points == 8 and mesh.cell_counts == {"triangle": 12}


def test_point_clouds_in_every_form(tmp_path):
    import trimesh

    rng = np.random.default_rng(3)
    points = rng.random((40, 3))
    trimesh.PointCloud(points).export(tmp_path / "cloud.ply")
    np.savetxt(tmp_path / "cloud.xyz", points)
    np.savetxt(tmp_path / "flat.txt", points[:, :2])
    np.save(tmp_path / "cloud.npy", points)
    np.save(tmp_path / "flat.npy", points[:, :2])
    for name, dim in [("cloud.ply", 3), ("cloud.xyz", 3), ("flat.txt", 2), ("cloud.npy", 3), ("flat.npy", 2)]:
        mesh = meshop.read(tmp_path / name)
        assert mesh.is_point_cloud and mesh.dim == dim
        precision = 1e-7 if name.endswith(".ply") else 1e-15      # trimesh writes float32 PLY
        np.testing.assert_allclose(mesh.points, points[:, :dim], rtol=precision)


def test_csv_headers_name_coordinates_and_fields(tmp_path):
    paraview = tmp_path / "paraview.csv"
    paraview.write_text('"T","Points:0","Points:1","Points:2","U:0","U:1","U:2"\n'
                        "300,0,0,1,1,2,3\n301,1,0,1,4,5,6\n302,0,1,1,7,8,9\n")
    mesh = meshop.read(paraview)
    assert mesh.dim == 2 and mesh.planar_z == 1.0       # constant z: planar
    np.testing.assert_array_equal(mesh.point_data["T"], [300, 301, 302])
    np.testing.assert_array_equal(mesh.point_data["U"], [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    plain = tmp_path / "plain.csv"
    plain.write_text("# comment line\nX,Y,pressure\n0,0,1.5\n1,0,2.5\n0,1,3.5\n")
    mesh = meshop.read(plain)
    np.testing.assert_array_equal(mesh.points, [[0, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(mesh.point_data["pressure"], [1.5, 2.5, 3.5])


def test_unsupported_extension_lists_the_known_ones(tmp_path):
    (tmp_path / "part.step").write_text("ISO-10303-21;")
    with pytest.raises(MeshError, match=r"unknown mesh format '.step' \(known: .* \.vtu"):
        meshop.read(tmp_path / "part.step")
    assert {".vtu", ".vtp", ".msh", ".stl", ".obj", ".ply", ".off", ".glb", ".xyz", ".csv",
            ".npy", ".inp", ".xdmf", ".med"} <= set(READERS)


# ---------------------------------------------------------------- bad files
def test_every_listed_defect_has_a_case(bad_files):
    assert len(bad_files) >= 20


def test_bad_file_messages(bad_files, capfd):
    """Each bad file raises MeshError (nothing else) with its phrase and the file name, on one
    line, and no reader prints anything (VTK's C++ logging included: capfd reads the fds)."""
    for case, bad in bad_files.items():
        with pytest.raises(MeshError) as caught:
            meshop.read(bad.path)
        message = str(caught.value)
        assert bad.phrase in message, case
        assert message.startswith(f"{bad.path}: "), case
        assert "\n" not in message, case
    assert capfd.readouterr() == ("", "")


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    """One small valid file per reader path."""
    import meshio
    import pyvista as pv
    import trimesh

    folder = tmp_path_factory.mktemp("good")
    volume = _volume()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # fields and cells the formats drop
        for ext in (".vtu", ".vtk", ".msh", ".xdmf", ".med", ".inp", ".csv", ".npy"):
            meshop.write(volume, folder / f"volume{ext}")
    meshio.write(folder / "ascii.vtu", meshio.Mesh(volume.points, [("tetra", volume.cells["tetra"])]),
                 binary=False)
    sphere = trimesh.creation.icosphere(subdivisions=2)
    for ext in (".stl", ".obj", ".off", ".ply", ".glb"):
        sphere.export(folder / f"sphere{ext}")
    pv.Sphere().save(folder / "sphere.vtp")
    pv.Sphere().save(folder / "sphere.vtk")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".h5")


def test_cut_files_raise_mesh_error_silently(good_files, tmp_path, capfd):
    """Every reader path on files cut at 1/4, 1/2 and 3/4: a MeshError or (a text file cut at
    a line end) a valid Mesh; never another exception, a crash, or output."""
    failures = 0
    for source in good_files:
        data = source.read_bytes()
        for fraction in (0.25, 0.5, 0.75):
            cut = tmp_path / f"cut_{int(fraction * 100)}_{source.name}"
            cut.write_bytes(data[: int(len(data) * fraction)])
            try:
                meshop.read(cut)
            except MeshError as err:
                failures += 1
                assert str(cut) in str(err) and "\n" not in str(err)
    assert failures >= 3 * len(good_files) - 4      # measured: .obj and .inp, twice each
    assert capfd.readouterr() == ("", "")


# ---------------------------------------------------------------- atomic writes
def test_a_reader_missing_its_optional_package_names_it(tmp_path, monkeypatch):
    """meshio's Exodus reader needs netCDF4: a valid .exo was called "corrupt" when it is absent."""
    import meshop.io._meshio as meshio_module

    def needs_netcdf(path):
        raise ModuleNotFoundError("No module named 'netCDF4'", name="netCDF4")

    monkeypatch.setitem(meshio_module.reader_map, "exodus", needs_netcdf)
    path = tmp_path / "part.exo"
    path.write_bytes(b"CDF\x01" + bytes(60))
    with pytest.raises(MeshError, match=r"part.exo: reading .exo files needs the Python package 'netCDF4', which "
                                        r"is not installed \(pip install netCDF4\)"):
        meshop.read(path)


def test_write_refuses_to_overwrite_its_input(tmp_path):
    path = meshop.write(_volume(), tmp_path / "part.vtu")
    mesh = meshop.read(path)
    before = path.read_bytes()
    with pytest.raises(MeshError, match=r"refusing to overwrite the mesh's input file; write elsewhere \(-o\) or pass --overwrite"):
        meshop.write(mesh.with_point_data(w=np.zeros(mesh.n_points)), path)
    os.link(path, tmp_path / "hard_link.vtu")
    with pytest.raises(MeshError, match="refusing to overwrite"):
        meshop.write(mesh, tmp_path / "hard_link.vtu")
    assert path.read_bytes() == before
    meshop.write(mesh.with_point_data(w=np.ones(mesh.n_points)), path, overwrite=True)
    assert meshop.read(path).point_data["w"].sum() == mesh.n_points


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import meshio

    path = meshop.write(_volume(), tmp_path / "part.vtu")
    before = path.read_bytes()

    def half_write(filename, *args, **kwargs):
        with open(filename, "wb") as handle:
            handle.write(b"<?xml half")
        raise OSError("disk full")

    monkeypatch.setattr(meshio, "write", half_write)
    with pytest.raises(MeshError, match=r"part.vtu: could not write this .vtu file \(disk full\)"):
        meshop.write(_volume(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["part.vtu"]


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = meshop.write(_volume(), tmp_path / "part.vtu")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_into_a_missing_folder(tmp_path):
    with pytest.raises(MeshError, match="does not exist"):
        meshop.write(_volume(), tmp_path / "nope" / "part.vtu")


def test_os_errors_become_mesh_errors(tmp_path, monkeypatch):
    from meshop.io import _sniff

    path = meshop.write(_volume(), tmp_path / "part.vtu")

    def denied(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_sniff, "check", denied)
    with pytest.raises(MeshError, match=r"part.vtu: cannot be read \(Permission denied\)"):
        meshop.read(path)


def test_wrong_argument_types_name_the_argument(tmp_path):
    """read / write / read_series / write_series with something not a path or not a Mesh:
    a TypeError naming what is expected, not pathlib's or an AttributeError; a folder as the
    output is named as a folder, not as an unknown format."""
    mesh = square_triangles(3)
    for call in (lambda: meshop.read(123), lambda: meshop.read_series(None), lambda: meshop.write(mesh, 5)):
        with pytest.raises(TypeError, match=r"path must be a file path \(str or os.PathLike\), got"):
            call()
    with pytest.raises(TypeError, match="write needs a meshop.Mesh to write, got ndarray"):
        meshop.write(mesh.points, tmp_path / "a.vtu")
    with pytest.raises(TypeError, match="write needs a meshop.Mesh to write, got str"):
        meshop.write(str(tmp_path / "b.vtu"), mesh)            # arguments swapped
    with pytest.raises(MeshError, match="is a folder; give a file name"):
        meshop.write(mesh, tmp_path)
    with pytest.raises(TypeError, match="write_series needs a meshop.Trajectory, got Mesh"):
        meshop.write_series(mesh, tmp_path / "c.pvd")
    assert list(tmp_path.iterdir()) == []


def test_vtk_xml_writers_say_a_full_disk_in_one_sentence_and_leave_no_file(tmp_path, monkeypatch):
    """VTK's own file output aborts the process on a full disk; the .vtu with field data and the
    .vtp are encoded by VTK and written by Python, whose OSError is one sentence."""
    import errno
    from pathlib import Path

    written = _volume().with_field_data(score=0.5)
    meshop.write(written, tmp_path / "ok.vtu")                     # the bytes Python wrote read back
    assert meshop.read(tmp_path / "ok.vtu").field_data["score"][0] == 0.5
    cloud = Mesh(np.random.default_rng(0).random((50, 2)), None, {"material": np.zeros(50)})
    np.testing.assert_array_equal(meshop.read(meshop.write(cloud, tmp_path / "ok.vtp")).points[:, :2], cloud.points)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    for mesh, name in ((written, "a.vtu"), (cloud, "c.vtp")):
        with pytest.raises(MeshError, match=rf"{name}: could not write this \.v\w\w file \(\[Errno 28\] No space"):
            meshop.write(mesh, tmp_path / name)
        assert not (tmp_path / name).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.vtp", "ok.vtu"]     # no temporaries either
