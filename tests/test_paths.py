"""Paths and outputs: what a careless user or a crafted file gives the CLI and the Python API where
meshop reads and writes files (named pipes and devices, names too long for the file system, series
frames outside their folder, outputs of the wrong format or clobbering one another, absurd picture
settings). Each gets one sentence naming the cause and exit code 2, before any work, and nothing
written or replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import meshop
from meshop import Mesh
from meshop.cli import app
from meshop.errors import MeshError
from meshop.outputs import check_output

from conftest import box_tetrahedra, square_triangles

LONG = "a" * 260


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, *phrases) -> str:
    """The refusal: exit code 2, one stderr line with every phrase, no traceback; returns it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meshop: error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def square(tmp_path) -> Path:
    """A 2D triangle mesh with a front-like field f, alone in its folder."""
    mesh = square_triangles(6)
    return meshop.write(mesh.with_point_data(f=np.tanh(10 * (mesh.points[:, 0] - 0.5))), tmp_path / "sq.vtu")


@pytest.fixture()
def series(square) -> Path:
    mesh = meshop.read(square)
    values = np.stack([mesh.point_data["f"] * k for k in range(3)])
    traj = meshop.Trajectory(Mesh(mesh.points, mesh.cells), [0.0, 0.1, 0.2], {"f": values})
    return meshop.write_series(traj, square.with_name("s.pvd"))


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------- named pipes and devices
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipes_and_devices_are_named_not_read(tmp_path, series):
    """`meshop info pipe.xdmf` waited forever for a writer, and a link to /dev/zero named .xdmf read
    it forever (the temporal-collection sniff opened them); pipe.vtu was 'empty', pipe.pvd and a
    .pvd frame that is a pipe 'missing'. A real process, so that a hang is a failure, not a stall."""
    for name in ("pipe.xdmf", "pipe.vtu", "pipe.pvd", "pipe.safetensors"):
        os.mkfifo(tmp_path / name)
    (tmp_path / "zero.xdmf").symlink_to("/dev/zero")
    (tmp_path / "zero.vtu").symlink_to("/dev/zero")
    frames = series.read_text()
    (tmp_path / "frame_is_pipe.pvd").write_text(frames.replace("s/frame_00000.vtu", "pipe.vtu"))
    (tmp_path / "frame_is_folder.pvd").write_text(frames.replace("s/frame_00000.vtu", "s"))
    cases = [(["info", "pipe.xdmf"], "pipe.xdmf: is a named pipe (FIFO), not a time series file."),
             (["info", "zero.xdmf"], "zero.xdmf: is a character device, not a time series file."),
             (["info", "pipe.pvd"], "pipe.pvd: is a named pipe (FIFO), not a time series file."),
             (["info", "pipe.vtu"], "pipe.vtu: is a named pipe (FIFO), not a mesh file."),
             (["info", "zero.vtu"], "zero.vtu: is a character device, not a mesh file."),
             (["info", "frame_is_pipe.pvd"], "frame_is_pipe.pvd: frame 0 file pipe.vtu is a named pipe (FIFO), not a mesh file."),
             (["info", "frame_is_folder.pvd"], "frame_is_folder.pvd: frame 0 file s is a directory, not a mesh file."),
             (["predict", "sq.vtu", "-m", "pipe.safetensors"], "pipe.safetensors: is a named pipe (FIFO), not a checkpoint file.")]
    for args, phrase in cases:
        run = subprocess.run([sys.executable, "-m", "meshop", *args], cwd=tmp_path, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 2, (args, run.stderr)
        assert run.stderr.strip().splitlines() == [f"meshop: error: {phrase}"], (args, run.stderr)
    with pytest.raises(MeshError, match="is a character device"):
        meshop.read(tmp_path / "zero.vtu")


# ---------------------------------------------------------------- names too long for the file system
def test_a_name_too_long_for_the_file_system_is_one_sentence(square, series):
    """Python's stat raised OSError ENAMETOOLONG out of every command given such a name."""
    folder = square.parent
    points, tets = box_tetrahedra(4)
    cube = meshop.write(Mesh(points, {"tetra": tets}), folder / "cube.vtu")
    before = _files(folder)
    for args in (["info", folder / f"{LONG}.vtu"], ["info", folder / f"{LONG}.pvd"],
                 ["render", square, "-o", folder / f"{LONG}.png"], ["view", square, "--html", folder / f"{LONG}.html"],
                 ["adapt", square, "-f", "f", "-o", folder / f"{LONG}.vtu"], ["predict", square, "-m", LONG],
                 ["predict", cube, "-o", folder / f"{LONG}.vtu"], ["generate", "poisson2d", "--n", "1", "--out", folder / LONG],
                 ["train", "-q", "--data", folder / LONG], ["train", "-q", "--data", folder, "--out", folder / LONG]):
        one_line_error(invoke(*args), "the path is too long (a name of", "at most 255 bytes per name")
    assert _files(folder) == before
    for call in (lambda: meshop.read(LONG + ".vtu"), lambda: meshop.write(meshop.read(square), LONG + ".vtu"),
                 lambda: meshop.read_series(LONG + ".pvd"), lambda: check_output(Path(LONG + ".png"))):
        with pytest.raises(MeshError, match="the path is too long"):
            call()


# ---------------------------------------------------------------- series frames outside their folder
def test_pvd_frames_outside_the_series_folder_are_refused(series):
    """A .pvd naming ../../etc/passwd or an absolute path had meshop open files anywhere (and tell
    which exist: 'unknown mesh format' against 'missing')."""
    text = series.read_text()
    for name in ("../../../../etc/passwd", str(series.parent / "s" / "frame_00000.vtu"), "s/../../x.vtu"):
        crafted = series.with_name("crafted.pvd")
        crafted.write_text(text.replace("s/frame_00000.vtu", name))
        with pytest.raises(MeshError, match=f"frame 0 file {name} lies outside the series' folder"):
            meshop.read_series(crafted)
        one_line_error(invoke("info", crafted), "lies outside the series' folder")
    inside = series.with_name("inside.pvd")
    inside.write_text(text.replace("s/frame_00000.vtu", "./s/../s/frame_00000.vtu"))
    assert meshop.read_series(inside).n_frames == 3


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_xdmf_heavy_data_outside_its_folder_or_in_a_pipe_is_refused(series):
    """An XDMF file's HDF5 data item naming /etc/passwd had meshio open it; one naming a named pipe
    hung `meshop info` (meshio's reader waited for a writer). A real process: a hang fails."""
    folder = series.parent
    traj = meshop.read_series(series)
    good = meshop.write_series(traj, folder / "x.xdmf")
    text = good.read_text()
    assert "x.h5:" in text and meshop.read_series(good).n_frames == 3
    os.mkfifo(folder / "pipe.h5")
    cases = {"abs.xdmf": ("/etc/passwd:", "its data file /etc/passwd lies outside the XDMF file's folder"),
             "up.xdmf": ("../x.h5:", "its data file ../x.h5 lies outside the XDMF file's folder"),
             "fifo.xdmf": ("pipe.h5:", "its data file pipe.h5 is a named pipe (FIFO), not a data file."),
             "gone.xdmf": ("gone.h5:", "its data file gone.h5 is missing")}
    for name, (data, phrase) in cases.items():
        (folder / name).write_text(text.replace("x.h5:", data))
        run = subprocess.run([sys.executable, "-m", "meshop", "info", name], cwd=folder, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert phrase in run.stderr, run.stderr


# ---------------------------------------------------------------- outputs of the wrong format, clobbered outputs
def test_predict_refuses_an_output_format_before_loading_torch(tmp_path):
    points, tets = box_tetrahedra(4)
    cube = meshop.write(Mesh(points, {"tetra": tets}), tmp_path / "cube.vtu")
    for out, phrase in [("out.txt", "cannot write format '.txt'"), ("out.png", "cannot write format '.png'"),
                        ("out.pvd", "cannot write format '.pvd'")]:
        result = invoke("predict", cube, "-o", tmp_path / out)
        one_line_error(result, f"{out}: {phrase}")       # the one line: no "loading torch" before it
    result = invoke("predict", cube, "--steps", "2", "-o", tmp_path / "x.vtu")
    one_line_error(result, "x.vtu: a time series is written as .pvd")
    assert _files(tmp_path) == ["cube.vtu"]


@pytest.mark.slow
def test_a_rollout_does_not_replace_an_error_plot_it_did_not_write(tmp_path):
    """`predict SERIES --steps N -o run.pvd --render` wrote run.errors.png over the user's file of
    that name (only the series and its GIF were checked)."""
    points, tets = box_tetrahedra(4)
    cooling = np.stack([np.exp(-t) * (1 - points[:, 0]) for t in (0.0, 0.01, 0.02)])
    reference = meshop.write_series(meshop.Trajectory(Mesh(points, {"tetra": tets}), [0.0, 0.01, 0.02],
                                                      {"temperature": cooling}), tmp_path / "cube.pvd")
    mine = tmp_path / "run.errors.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n the user's own plot")
    before = _files(tmp_path)
    result = invoke("predict", reference, "--steps", "2", "-o", tmp_path / "run.pvd", "--render")
    assert result.exit_code == 2 and "run.errors.png: exists" in result.stderr, result.output
    assert mine.read_bytes() == b"\x89PNG\r\n\x1a\n the user's own plot" and _files(tmp_path) == before


def test_adapt_checks_its_picture_and_output_before_moving_nodes(square):
    """--picture equal to -o wrote the picture over the moved mesh (and said it wrote a mesh);
    --picture x.jpg wrote a PNG named .jpg, --picture nodir/x.png made the folder, and -o x.txt was
    refused only after the nodes were moved."""
    folder, original = square.parent, square.read_bytes()
    before = _files(folder)
    for args, phrase in [(["-o", folder / "a.vtu", "--picture", folder / "a.vtu"],
                          "a.vtu: adapt writes .png files, not '.vtu'; give --picture a .png name."),
                         (["-o", folder / "b.vtu", "--picture", folder / "b.jpg"], "b.jpg: adapt writes .png files"),
                         (["-o", folder / "c.vtu", "--picture", folder / "nodir" / "c.png"], "folder"),
                         (["-o", folder / "d.txt"], "d.txt: cannot write format '.txt'")]:
        result = invoke("adapt", square, "-f", "f", *args)
        one_line_error(result, phrase)
        assert "moved" not in result.stdout
    assert _files(folder) == before and square.read_bytes() == original


def test_view_writes_pages_only_under_a_page_name_into_an_existing_folder(square):
    """`view --html page.png` wrote HTML under a picture's name; `--html nodir/p.html` made the folder."""
    folder = square.parent
    one_line_error(invoke("view", square, "--html", folder / "page.png"),
                   "page.png: view writes .html or .htm files, not '.png'; give --html a .html or .htm name.")
    one_line_error(invoke("view", square, "--html", folder / "nodir" / "p.html"), "does not exist")
    assert _files(folder) == ["sq.vtu"]


# ---------------------------------------------------------------- animations and pictures
def test_render_refuses_frame_rates_and_flag_pairs_before_drawing(series):
    """--fps 0, -1 or nan ended in a traceback after every frame was drawn (1000 / fps), --fps 1e-9
    in one from the GIF writer, and --gif with --mp4 dropped the MP4 without a word."""
    folder = series.parent
    before = _files(folder)
    for fps, phrase in [("0", "expected a positive number of frames per second"), ("-1", "expected a positive"),
                        ("nan", "expected a positive"), ("inf", "expected a positive"),
                        ("1e-9", "a GIF shows a frame for at most 655.35 s")]:
        result = invoke("render", series, "--fps", fps)
        one_line_error(result, "--fps ", phrase)
        assert "frame/s" not in result.stderr                 # refused before drawing
    one_line_error(invoke("render", series, "--gif", folder / "g.gif", "--mp4", folder / "g.mp4"),
                   "--gif and --mp4 both given")
    with pytest.raises(MeshError, match="expected a positive number"):
        meshop.viz.animate(series, folder / "a.gif", fps=0)
    assert _files(folder) == before


def test_animations_and_plots_meshop_wrote_are_replaced_by_the_next_run(series, square, tmp_path):
    """A second `meshop render s.pvd` was refused: meshop's GIF (and its adaptation and error-growth
    PNGs) were not marked as its own, so they read as the user's files."""
    from meshop.viz import animate, plot_adaptation, plot_rollout_errors

    gif = animate(series, series.with_suffix(".gif"), window_size=(64, 48))
    check_output(gif)                                     # its own: replaced without --overwrite
    mesh = meshop.read(square)
    check_output(plot_adaptation(mesh, mesh, tmp_path / "adapt.png"))
    check_output(plot_rollout_errors({"u": np.array([0.0, 0.1, 0.2])}, tmp_path / "errors.png"))
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "mine.gif")
    with pytest.raises(MeshError, match="--overwrite"):
        check_output(tmp_path / "mine.gif")


def test_absurd_picture_sizes_are_refused_before_allocating(square, tmp_path):
    from meshop.viz import render

    for size in [(100_000, 100_000), (0, 10), (-5, 10), (10.5, 10), (10,), "big", (np.nan, 10)]:
        with pytest.raises(MeshError, match="window_size .*expected \\(width, height\\) in pixels"):
            render(square, "f", tmp_path / "x.png", window_size=size)
    assert not (tmp_path / "x.png").exists()


def test_an_output_below_a_file_names_the_file_not_a_missing_folder(square, series):
    """`-o sq.vtu/x.png` said 'folder sq.vtu does not exist' (it does, as a file) from each of the
    four copies of that check; `train -o sq.vtu/run` trained, then failed writing its checkpoint."""
    folder = square.parent
    points, tets = box_tetrahedra(3)
    cube = meshop.write(Mesh(points, {"tetra": tets}), folder / "cube.vtu")
    before = _files(folder)
    inside = square / "x"
    is_file = f"{square} is a file, not a folder."
    for args in (["render", square, "-o", inside / "p.png"], ["view", square, "--html", square / "p.html"],
                 ["adapt", square, "-f", "f", "-o", inside / "m.vtu"], ["predict", cube, "-o", square / "p.pred.vtu"],
                 ["render", series, "--gif", square / "a.gif"]):
        one_line_error(invoke(*args), is_file)
    for call in (lambda: meshop.write(meshop.read(square), inside / "m.vtu"),
                 lambda: meshop.write_series(meshop.read_series(series), square / "s.pvd")):
        with pytest.raises(MeshError, match=r"is a file, not a folder\.$"):
            call()
    with pytest.raises(MeshError, match="folder .*nodir does not exist"):      # a folder that is not there
        meshop.write(meshop.read(square), folder / "nodir" / "m.vtu")
    from meshop.training import train

    data = Path(__file__).parent / "data" / "darcy2d"
    for out in (square, inside):
        with pytest.raises(MeshError, match=f"{square} is a file, not a folder; choose another run folder"):
            train(data, model="gno", epochs=1, out=out, progress=False)
    assert _files(folder) == before
