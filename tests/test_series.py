"""Time series: Trajectory checks, .pvd and XDMF round trips, bad series, `meshop info`, animations."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy.spatial import Delaunay

import meshop
import meshop.viz
from meshop.errors import MeshError


def _square_mesh(n=6):
    g = np.linspace(0.0, 1.0, n)
    points = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
    return meshop.Mesh(points, {"triangle": Delaunay(points).simplices})


def _heat_series(frames=5):
    """Exact separable heat solution T = exp(-2π² t) sin(πx) sin(πy) with a constant input."""
    mesh = _square_mesh()
    x, y = mesh.points.T
    times = np.linspace(0.0, 0.1, frames)
    temperature = np.exp(-2 * np.pi ** 2 * times)[:, None] * (np.sin(np.pi * x) * np.sin(np.pi * y))[None]
    velocity = np.stack([np.column_stack([x * t, -y * t]) for t in times])
    return meshop.Trajectory(mesh.with_point_data(conductivity=1 + x), times,
                             {"temperature": temperature, "velocity": velocity},
                             metadata={"dt": 0.0125, "stride": 2, "state": ["temperature"]})


@pytest.mark.parametrize("suffix", [".pvd", ".xdmf"])
def test_round_trip_keeps_times_fields_constants_and_metadata(tmp_path, suffix):
    traj = _heat_series()
    path = meshop.write_series(traj, tmp_path / f"heat{suffix}")
    back = meshop.read_series(path)
    np.testing.assert_array_equal(back.times, traj.times)
    np.testing.assert_allclose(back.mesh.points, traj.mesh.points)
    for name in traj.fields:
        np.testing.assert_allclose(back.fields[name], traj.fields[name], rtol=1e-12)
    np.testing.assert_allclose(back.mesh.point_data["conductivity"], traj.mesh.point_data["conductivity"])
    assert sorted(back.fields) == ["temperature", "velocity"] and not back.moving
    assert back.metadata == traj.metadata and back.dt == pytest.approx(0.025)
    assert back.state == ["temperature"]


def test_moving_point_cloud_round_trips_through_pvd(tmp_path):
    rng = np.random.default_rng(0)
    positions = np.cumsum(rng.normal(size=(4, 50, 3)) * 0.01, axis=0) + rng.random((1, 50, 3))
    traj = meshop.Trajectory(meshop.Mesh(positions[0], point_data={"material": np.arange(50) % 3}),
                             [0.0, 0.5, 1.0, 2.0], {"velocity": rng.normal(size=(4, 50, 3))}, positions)
    back = meshop.read_series(meshop.write_series(traj, tmp_path / "particles.pvd"))
    assert back.moving and back.dt is None
    np.testing.assert_allclose(back.positions, positions)
    np.testing.assert_array_equal(back.mesh.point_data["material"], np.arange(50) % 3)
    with pytest.raises(MeshError, match="write a .pvd series instead"):
        meshop.write_series(traj, tmp_path / "particles.xdmf")


def test_pyvista_reads_the_pvd_collection_with_its_times(tmp_path):
    import pyvista as pv

    path = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    reader = pv.get_reader(str(path))
    assert reader.time_values == pytest.approx(list(np.linspace(0.0, 0.1, 5)))
    reader.set_active_time_value(0.05)
    block = reader.read()[0]
    assert {"temperature", "velocity", "conductivity"} <= set(block.point_data.keys())


def test_trajectory_refuses_inconsistent_data():
    mesh = _square_mesh()
    with pytest.raises(MeshError, match="frame times must increase, but frame 2"):
        meshop.Trajectory(mesh, [0.0, 1.0, 1.0], {})
    with pytest.raises(MeshError, match="field 'T' has shape"):
        meshop.Trajectory(mesh, [0.0, 1.0], {"T": np.zeros((2, mesh.n_points + 1))})
    with pytest.raises(MeshError, match="NaN or infinite values in frame 1"):
        meshop.Trajectory(mesh, [0.0, 1.0], {"T": np.array([np.zeros(mesh.n_points), np.full(mesh.n_points, np.nan)])})


def _edit_pvd(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def test_broken_series_get_one_clear_sentence(tmp_path):
    path = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    frames = tmp_path / "heat"

    (frames / "frame_00003.vtu").rename(tmp_path / "kept.vtu")
    with pytest.raises(MeshError, match="frame 3 file .* is missing"):
        meshop.read_series(path)
    (tmp_path / "kept.vtu").rename(frames / "frame_00003.vtu")

    _edit_pvd(path, 'timestep="0.05"', 'timestep="0.01"')
    with pytest.raises(MeshError, match="frame times must increase, but frame 2"):
        meshop.read_series(path)
    _edit_pvd(path, 'timestep="0.01"', 'timestep="0.05"')

    other = _square_mesh(7).with_point_data(temperature=np.zeros(49), velocity=np.zeros((49, 2)),
                                             conductivity=np.zeros(49))
    meshop.write(other, frames / "frame_00001.vtu", overwrite=True)
    with pytest.raises(MeshError, match="frame 1 has 49 nodes but frame 0 has 36"):
        meshop.read_series(path)

    fewer = _heat_series().frame(1)
    meshop.write(meshop.Mesh(fewer.points, fewer.cells, {"temperature": fewer.point_data["temperature"],
                                                         "conductivity": fewer.point_data["conductivity"]}),
                 frames / "frame_00001.vtu", overwrite=True)
    with pytest.raises(MeshError, match="field 'velocity' is absent from frame 1"):
        meshop.read_series(path)

    path.write_text("<VTKFile type='Collection'><Collection>")
    with pytest.raises(MeshError, match="not a valid .pvd collection"):
        meshop.read_series(path)

    (tmp_path / "folder.pvd").mkdir()        # was "no such file"
    with pytest.raises(MeshError, match="folder.pvd: is a directory, not a time series file"):
        meshop.read_series(tmp_path / "folder.pvd")


def test_later_frames_are_checked_cheaply_but_their_defects_still_named(tmp_path):
    path = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    frame = meshop.read(tmp_path / "heat" / "frame_00002.vtu")
    wrecked = frame.cells["triangle"].copy()
    wrecked[0, 0] = 99  # other cells than frame 0's: this frame is checked in full
    _raw_vtu(frame, wrecked).write(str(tmp_path / "heat" / "frame_00002.vtu"))
    with pytest.raises(MeshError, match="reference node 99 .* out of range"):
        meshop.read_series(path)
    points = frame.points.copy()
    points[5, 0] = np.nan  # frame 0's cells, but a broken coordinate
    _raw_vtu(frame, frame.cells["triangle"], points).write(str(tmp_path / "heat" / "frame_00002.vtu"))
    with pytest.raises(MeshError, match="frame_00002.vtu: 1 point\\(s\\) have NaN"):   # its own file named
        meshop.read_series(path)


def _raw_vtu(mesh, triangles, points=None):
    """A meshio mesh written as is, past meshop's checks (a corrupt frame file)."""
    import meshio

    points = mesh.points if points is None else points
    return meshio.Mesh(np.column_stack([points, np.zeros(len(points))]), [("triangle", triangles)],
                       point_data=dict(mesh.point_data))


def test_frames_of_fixed_nodes_share_their_geometry_and_moving_frames_have_their_own():
    traj = _heat_series()
    a, b = traj.frame(1), traj.frame(4)
    assert b.distance_to_boundary is a.distance_to_boundary  # computed once for all frames
    fresh = meshop.Mesh(traj.mesh.points, traj.mesh.cells)
    np.testing.assert_array_equal(a.boundary_mask, fresh.boundary_mask)
    np.testing.assert_allclose(a.distance_to_boundary, fresh.distance_to_boundary, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(b.point_data["temperature"], traj.fields["temperature"][4])
    moved = traj.mesh.points[None] * np.array([1.0, 2.0, 3.0])[:, None, None]  # stretched in x and y
    moving = meshop.Trajectory(traj.mesh, [0.0, 1.0, 2.0], positions=moved)
    for k in range(3):  # nodes of the unit square lie at most 0.4 from its sides; x (k + 1) stretched
        assert moving.frame(k).distance_to_boundary.max() == pytest.approx(0.4 * (k + 1), rel=1e-12)
        np.testing.assert_allclose(moving.frame(k).points, moved[k])


def test_a_failed_write_leaves_no_half_series(tmp_path, monkeypatch):
    from meshop.io import series

    good = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    before = good.read_text()
    calls = {"n": 0}
    real_write = meshop.io.write

    def failing_write(mesh, path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_write(mesh, path, **kwargs)

    monkeypatch.setattr(meshop.io, "write", failing_write)
    with pytest.raises(MeshError, match="heat.pvd: could not write this .pvd series \\(disk full\\)"):
        series.write_series(_heat_series(frames=7), good)
    assert good.read_text() == before and len(meshop.read_series(good).times) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat", "heat.pvd"]


def test_a_full_disk_names_the_series_and_leaves_the_old_one_whole(tmp_path, monkeypatch):
    """A full disk while writing a frame was said of the hidden staging file; while writing the
    collection, after the new frames were swapped in, it left the old .pvd naming frames that were
    gone (or other frames than its own)."""
    import errno

    from meshop.io import series

    good = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    before = meshop.read_series(good)
    real_write = meshop.io.write

    def full_disk(mesh, path, **kwargs):    # as meshop.write says a full disk
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise meshop.errors.write_failure(path, "this .vtu file", err) from None

    monkeypatch.setattr(meshop.io, "write", full_disk)
    with pytest.raises(MeshError, match=r"^\S*heat.pvd: could not write this .pvd series \(\[Errno 28\] No space"):
        series.write_series(_heat_series(frames=3), good)
    monkeypatch.setattr(meshop.io, "write", real_write)

    def full_at_the_collection(entries):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(series, "_collection_xml", full_at_the_collection)
    with pytest.raises(MeshError, match="heat.pvd: could not write this .pvd series .*No space left"):
        series.write_series(_heat_series(frames=3), good)
    back = meshop.read_series(good)      # the old series, frames and all
    assert back.n_frames == 5 and np.array_equal(back.fields["temperature"], before.fields["temperature"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat", "heat.pvd"]


def test_staging_folders_of_killed_writers_are_removed(tmp_path):
    """A writer killed mid-write (SIGKILL, a crash) left its hidden staging folder for good."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (f".heat.pvd.partial-{dead.pid}", f".heat.old-{dead.pid}", f".heat.pvd.partial-{os.getppid()}",
                 ".heat.pvd.partial-notapid", f".other.pvd.partial-{dead.pid}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "frame_00000.vtu").write_text("half")
    meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    assert sorted(p.name for p in tmp_path.iterdir()) == [   # a running writer's and others' are kept
        f".heat.pvd.partial-{os.getppid()}", ".heat.pvd.partial-notapid", f".other.pvd.partial-{dead.pid}",
        "heat", "heat.pvd"]


def test_cli_rollout_into_an_unwritable_folder_is_one_sentence(tmp_path, monkeypatch):
    """A folder the series cannot be written to (read-only, full) was a PermissionError traceback."""
    from typer.testing import CliRunner

    from meshop.cli import app
    from meshop.io import series

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path.parent / f".{path.name}.partial"))

    monkeypatch.setattr(series, "_staging", read_only)
    frames = np.random.default_rng(0).uniform(0.3, 0.7, (1, 40, 2))
    scene = meshop.write(meshop.Mesh(frames[0], None, {"material": np.zeros(40, int), "velocity": np.zeros((40, 2))}),
                         tmp_path / "scene.vtp")
    run = CliRunner().invoke(app, ["predict", str(scene), "--steps", "1"])
    assert run.exit_code == 2 and "Traceback" not in run.output, run.output
    assert "scene.vtp.pred.pvd: could not write this .pvd series ([Errno 13] Permission denied" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.vtp"]


def test_cli_info_on_a_series(tmp_path):
    from typer.testing import CliRunner

    from meshop.cli import app

    path = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_frames"] == 5 and summary["time_range"] == [0.0, 0.1] and not summary["moving"]
    assert summary["dt"] == pytest.approx(0.025) and set(summary["fields"]) == {"temperature", "velocity"}
    text = CliRunner().invoke(app, ["info", str(path)]).stdout
    assert "5 frames" in text and "fixed" in text and "constant    conductivity" in text
    (tmp_path / "heat" / "frame_00002.vtu").unlink()
    bad = CliRunner().invoke(app, ["info", str(path)])
    assert bad.exit_code == 2 and "frame 2 file" in bad.stderr and "Traceback" not in bad.stderr


def test_a_single_mesh_xdmf_is_a_mesh_not_a_series(tmp_path):
    """An .xdmf of one mesh (meshop.write, meshio, FEniCS) goes to meshop.read: `info` and `predict`
    took it for a time series and refused it ("Couldn't find the mesh grid")."""
    from typer.testing import CliRunner

    from meshop.cli import app
    from meshop.io.series import is_series

    single = meshop.write(_square_mesh(), tmp_path / "square.xdmf")
    series = meshop.write_series(_heat_series(), tmp_path / "heat.xdmf")
    assert not is_series(single) and is_series(series) and is_series(tmp_path / "missing.xdmf")
    result = CliRunner().invoke(app, ["info", str(single), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["n_points"] == 36


def test_animation_gif_has_one_image_per_frame(tmp_path):
    from PIL import Image

    gif = meshop.viz.animate(_heat_series(), tmp_path / "heat.gif", "temperature", window_size=(320, 240))
    with Image.open(gif) as image:
        assert image.n_frames == 5 and image.size == (320, 240)
        image.seek(0)
        first = np.asarray(image.convert("RGB"), dtype=float)
        image.seek(4)
        last = np.asarray(image.convert("RGB"), dtype=float)
    assert np.abs(first - last).mean() > 1.0      # the field decays: the colours change


def test_render_bare_gif_flag_writes_the_animation_beside_the_series(tmp_path):
    from PIL import Image

    from meshop.cli import _bare_animation_flags, main

    assert _bare_animation_flags(["render", "a.pvd", "--gif"]) == ["render", "a.pvd", "--gif", "."]
    assert _bare_animation_flags(["render", "a.pvd", "--gif", "b.gif"]) == ["render", "a.pvd", "--gif", "b.gif"]
    assert _bare_animation_flags(["render", "--gif", "a.pvd"]) == ["render", "--gif", ".", "a.pvd"]
    series = meshop.write_series(_heat_series(), tmp_path / "heat.pvd")
    with pytest.raises(SystemExit) as done:
        main(["render", str(series), "--gif", "--fps", "5"])
    assert done.value.code == 0
    with Image.open(tmp_path / "heat.gif") as image:
        assert image.n_frames == 5


@pytest.mark.parametrize("kwargs, error, message", [
    ({"mesh": np.zeros((4, 2))}, TypeError, "Trajectory needs a meshop.Mesh"),
    ({"times": "abc"}, MeshError, "times must be a 1D array of real frame times"),
    ({"times": None}, TypeError, "times must be a 1D array"),
    ({"times": [[0, 1], [2, 3]]}, MeshError, r"got shape \(2, 2\)"),
    ({"fields": [np.zeros((2, 4))]}, TypeError, "fields must be a dict, got list"),
    ({"fields": {1: np.zeros((2, 4))}}, TypeError, "field names must be strings"),
    ({"fields": {"T": np.full((2, 4), "a")}}, MeshError, "field 'T' must be real numbers"),
    ({"positions": "x"}, MeshError, r"positions must be a \(2, 4, 2\) array"),
])
def test_trajectory_arguments_of_the_wrong_type_are_named(kwargs, error, message):
    mesh = meshop.Mesh(np.array([[0, 0], [1, 0], [0, 1], [1, 1.0]]), {"triangle": np.array([[0, 1, 2], [1, 3, 2]])})
    with pytest.raises(error, match=message):
        meshop.Trajectory(**{"mesh": mesh, "times": [0.0, 1.0], **kwargs})
