"""What a new user meets in the first hour (issue 17): answers before torch is imported, output
names that do not collide, an overwrite policy, flags that say when they do nothing, help texts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import meshop
import meshop.cli
from meshop import Mesh, models
from meshop.cli import app
from meshop.data.generate import _split_counts
from meshop.outputs import check_output, picture_path, prediction_path
from meshop.preflight import cuda_driver_present

from conftest import box_tetrahedra, cli_runs_in_a_fresh_process

ROOT = Path(__file__).resolve().parents[1]
BRACKET = ROOT / "examples" / "parts" / "bracket.vtu"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> Path:
    """A 125-node tetrahedral unit cube, truth-free, in its own folder."""
    points, tets = box_tetrahedra(5)
    return meshop.write(Mesh(points, {"tetra": tets}), tmp_path_factory.mktemp("cube") / "cube.vtu")


# ---------------------------------------------------------------- answers before torch (item 3)
def _bad_checkpoint(folder: Path) -> Path:
    from safetensors.numpy import save_file

    path = folder / "bad.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(path), metadata={"meshop": "{not json"})
    return path


def test_user_errors_answer_without_importing_torch(tmp_path):
    """Each command runs in one fresh interpreter; after each, torch must not be loaded."""
    cloud = tmp_path / "cloud.xyz"
    np.savetxt(cloud, np.random.default_rng(0).random((200, 3)))
    particles = np.random.default_rng(1).random((30, 3))       # a 3D particle series: no bundled model
    meshop.write(Mesh(particles[:, :2], None, {"material": np.zeros(30)}), tmp_path / "p2.vtp")
    meshop.write_series(meshop.Trajectory(Mesh(particles, None, {"material": np.zeros(30)}), [0.0, 0.01],
                                          positions=np.stack([particles, particles + 0.01])), tmp_path / "p3.pvd")
    cases = [
        (["--help"], 0, "Usage: meshop"),
        (["--version"], 0, f"meshop {meshop.__version__}"),
        (["predict", "--help"], 0, "--overwrite"),
        (["train", "--help"], 0, "amg, beno, dmm, giorom, gno, gns,"),
        (["train", "--data", tmp_path, "--model", "nosuch"], 2, "available: amg, beno, dmm, giorom, gno, gns, mgno, mmpde, mppde, stepper"),
        (["predict", BRACKET, "--model", "nosuchmodel"], 2, "bundled models: dmm, heat3d"),
        (["predict", BRACKET, "--device", "gpu"], 2, "expected cpu, cuda or cuda:N"),
        (["predict", tmp_path / "missing.vtu"], 2, "no such file"),
        (["predict", BRACKET, "--model", _bad_checkpoint(tmp_path)], 2, "invalid JSON"),
        (["predict", BRACKET, "--model", tmp_path / "none.safetensors"], 2, "no such checkpoint file"),
        (["predict", cloud], 2, "a point cloud (no cells)"),
        (["predict", BRACKET, "-o", cloud], 2, "--overwrite"),
        (["predict", BRACKET, "-o", BRACKET], 2, "is the input file"),
        (["predict", tmp_path / "p3.pvd", "--steps", "2"], 2, "p3.pvd: 3D particles (no cells): meshop bundles"),
        (["predict", tmp_path / "p2.vtp"], 2, "p2.vtp: particles (a point cloud with a 'material' field)"),
    ]
    if not cuda_driver_present():
        cases.append((["predict", BRACKET, "--device", "cuda"], 2, "no NVIDIA driver"))
    runs = cli_runs_in_a_fresh_process([argv for argv, _, _ in cases], tmp_path)
    for (argv, code, needle), (got, stdout, stderr, torch_loaded) in zip(cases, runs):
        output = stdout + stderr
        assert got == code, (argv, output)
        assert needle in output, (argv, output)
        assert "Traceback" not in output
        assert not torch_loaded, f"{argv} imported torch"


# ---------------------------------------------------------------- output names and overwriting (items 5, 9; issue 18.10)
def test_prediction_names_do_not_collide():
    assert prediction_path(Path("d/bracket.vtu")) == Path("d/bracket.pred.vtu")
    assert prediction_path(Path("d/bracket.stl")) == Path("d/bracket.stl.pred.vtu")
    assert prediction_path(Path("d/bracket.msh")) == Path("d/bracket.msh.pred.vtu")
    assert prediction_path(Path("d/run.v2.vtu")) == Path("d/run.v2.pred.vtu")       # not cut at the first dot
    names = ["bracket.vtu", "bracket.stl", "bracket.vtk", "bracket.msh", "bracket.obj", "bracket.v1.vtu"]
    outputs = {prediction_path(Path(n)) for n in names}
    assert len(outputs) == len(names)
    assert picture_path(Path("bracket.stl.pred.vtu")) == Path("bracket.stl.pred.png")


def test_overwrite_policy(tmp_path):
    source = tmp_path / "part.vtu"
    source.write_text("mesh")
    check_output(tmp_path / "new.vtu")                         # nothing there
    (tmp_path / "part.pred.vtu").write_text("old result")
    check_output(tmp_path / "part.pred.vtu", source=source)    # an earlier result: replaced
    (tmp_path / "notes.vtu").write_text("mine")
    with pytest.raises(meshop.MeshError, match="--overwrite"):
        check_output(tmp_path / "notes.vtu", source=source)
    with pytest.raises(meshop.MeshError, match="is the input file"):
        check_output(source, source=source)
    check_output(source, overwrite=True, source=source)
    with pytest.raises(meshop.MeshError, match="is a folder"):
        check_output(tmp_path, overwrite=True)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not meshop's")
    with pytest.raises(meshop.MeshError, match="--overwrite"):
        check_output(tmp_path / "photo.png")


def test_pictures_and_pages_meshop_wrote_are_its_own(tmp_path):
    """A second `meshop render part.vtu` or `view --html` replaces the first one's file."""
    from meshop.viz.pictures import write_png

    write_png(np.zeros((4, 5, 3), np.uint8), tmp_path / "part.png")
    check_output(tmp_path / "part.png")
    (tmp_path / "page.html").write_text("<html><head><title>part.vtu - u | meshop</title>")
    check_output(tmp_path / "page.html")
    (tmp_path / "other.html").write_text("<html><head><title>part.vtu - u</title>")
    with pytest.raises(meshop.MeshError, match="--overwrite"):
        check_output(tmp_path / "other.html")


@pytest.mark.slow
def test_predict_cli_names_pictures_and_overwrite(cube, tmp_path):
    """Stale pictures go, --overwrite replaces, and --max-nodes says it does nothing on the
    default model (the names of other formats: test_prediction_names_do_not_collide)."""
    first = invoke("predict", cube, "--render")
    assert first.exit_code == 0, first.output
    png = cube.with_name("cube.pred.png")
    assert png.is_file() and "loading torch" in first.stderr and "rendering" in first.stderr
    again = invoke("predict", cube, "--max-nodes", 50)
    assert again.exit_code == 0, again.output
    assert not png.exists() and "removed" in again.stderr                    # no stale picture
    assert "--max-nodes has no effect" in again.stderr
    assert "--max-nodes" not in first.stderr
    mine = cube.with_name("mine.vtu")
    mine.write_text("not a mesh, but mine")
    refused = invoke("predict", cube, "-o", mine)
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr
    assert mine.read_text() == "not a mesh, but mine"
    forced = invoke("predict", cube, "-o", mine, "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert "temperature_pred" in meshop.read(mine).point_data


# ---------------------------------------------------------------- interruptions
@pytest.mark.parametrize("how, code, line", [("sigint", 130, "meshop: interrupted"),
                                             ("sigterm", 143, "meshop: terminated")])
def test_interruptions_end_a_command_in_one_line(tmp_path, monkeypatch, how, code, line):
    """Ctrl-C outside a command's user_errors block (train's `loading torch ...`) ended it silently
    with 130; SIGTERM killed it on the spot: no clean-up of staging folders or temporaries (they
    stayed), no line, the worker processes of `generate --workers` left running."""
    import signal
    import time

    def interrupted(line):                 # at `meshop: loading torch ...`
        if how == "sigint":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)                     # the handler raises in here

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(meshop.cli, "say", interrupted)
    run = invoke("train", "--data", tmp_path)
    assert run.exit_code == code and run.stderr == line + "\n", run.output
    assert signal.getsignal(signal.SIGTERM) is before     # the command's handler is gone


# ---------------------------------------------------------------- render --compare --reference (item 7)
@pytest.mark.slow
def test_render_compare_needs_the_truth(cube, tmp_path):
    from meshop.data.problems.heat3d import uniform_heating

    truth = meshop.read(cube)
    truth = truth.with_point_data(temperature=uniform_heating(truth))
    reference = meshop.write(truth, tmp_path / "truth.vtu")
    pred = meshop.predict(meshop.read(reference), out=tmp_path / "cube.pred.vtu").mesh
    lone = meshop.write(Mesh(pred.points, pred.cells, {"temperature_pred": pred.point_data["temperature_pred"]}),
                        tmp_path / "lone.pred.vtu")
    refused = invoke("render", lone, "--compare")
    assert refused.exit_code == 2 and "--reference" in refused.stderr and "'temperature'" in refused.stderr
    done = invoke("render", lone, "--compare", "--reference", reference)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "lone.pred.compare.png").stat().st_size > 10_000
    other = meshop.write(Mesh(truth.points[:-1] * 1.0, {}), tmp_path / "other.vtu")
    wrong = invoke("render", lone, "--compare", "--reference", other)
    assert wrong.exit_code == 2 and "the mesh the prediction was made on" in wrong.stderr


def test_with_reference_copies_the_truth_onto_the_same_nodes():
    from meshop.viz.pictures import with_reference

    points, tets = box_tetrahedra(3)
    pred = Mesh(points, {"tetra": tets}, {"u_pred": points[:, 0]})
    truth = Mesh(points + 1e-12, {"tetra": tets}, {"u": points[:, 1], "u_pred": points[:, 2]})
    merged = with_reference(pred, truth)
    np.testing.assert_array_equal(merged.point_data["u"], points[:, 1])
    np.testing.assert_array_equal(merged.point_data["u_pred"], points[:, 0])   # the prediction's own kept
    with pytest.raises(meshop.MeshError, match="not the 27 nodes"):
        with_reference(pred, Mesh(points[::-1] * 2, {}))


def test_a_reference_without_the_truth_is_named_not_asked_for_again(tmp_path):
    points, tets = box_tetrahedra(3)
    lone = meshop.write(Mesh(points, {"tetra": tets}, {"u_pred": points[:, 0]}), tmp_path / "lone.pred.vtu")
    bare = meshop.write(Mesh(points, {"tetra": tets}, {"v": points[:, 1]}), tmp_path / "bare.vtu")
    for extra in ([], ["--field", "u"]):
        refused = invoke("render", lone, "--compare", "--reference", bare, *extra)
        assert refused.exit_code == 2
        assert "bare.vtu: --reference holds no true 'u'" in refused.stderr and "fields present: v" in refused.stderr
    assert not (tmp_path / "lone.pred.compare.png").exists()


# ---------------------------------------------------------------- small datasets (item 2)
@pytest.mark.parametrize("n", range(1, 12))
def test_small_datasets_keep_a_validation_sample(n):
    sizes = _split_counts(n, (0.8, 0.1, 0.1))
    assert sum(sizes.values()) == n and min(sizes.values()) >= 0
    assert sizes["train"] >= 1
    assert sizes["val"] == (0 if n == 1 else 1)          # round(0.1 n) <= 1 here, and at least 1
    assert sizes["test"] == (1 if n >= 4 else 0)
    assert _split_counts(n, (1.0, 0.0, 0.0)) == {"train": n, "val": 0, "test": 0}   # asked for: none


@pytest.mark.slow
def test_generate_warns_and_train_names_the_flags(tmp_path):
    made = invoke("generate", "poisson2d", "--n", 1, "--out", tmp_path / "d", "--resolution", 200, "--quiet")
    assert made.exit_code == 0, made.output
    assert "(train 1, val 0, test 0)" in made.stdout and "--n 3" in made.stderr
    trained = invoke("train", "--data", tmp_path / "d", "--epochs", 1, "--quiet", "--out", tmp_path / "run")
    assert trained.exit_code == 2
    assert "val split is empty" in trained.stderr and "--n" in trained.stderr and "--split" in trained.stderr


# ---------------------------------------------------------------- help, version, info (item 10)
def test_help_texts_are_plain():
    top = invoke("--help")
    assert top.exit_code == 0 and "--version" in top.stdout and "<bool>" not in top.stdout
    for name in ("predict", "render", "info", "generate", "view", "train", "adapt"):
        text = invoke(name, "--help").stdout
        assert "<bool>" not in text and "{" not in text.splitlines()[0], text
    assert "predict [OPTIONS] MESH\n" in invoke("predict", "--help").stdout
    assert "adapt [OPTIONS] MESH\n" in invoke("adapt", "--help").stdout
    listed = invoke("train", "--help").stdout
    assert all(name in listed for name in models.available())
    assert invoke("--version").stdout == f"meshop {meshop.__version__}\n"


def test_info_json_ends_with_a_newline_and_columns_align(tmp_path):
    points, tets = box_tetrahedra(3)
    long = "a_rather_long_field_name_from_a_solver"
    path = meshop.write(Mesh(points, {"tetra": tets}, {long: points[:, 0], "u": points[:, 1]}), tmp_path / "f.vtu")
    as_json = invoke("info", path, "--json").stdout
    assert as_json.endswith("}\n") and json.loads(as_json)["n_points"] == 27
    rows = invoke("info", path).stdout.splitlines()[1:]
    column = 2 + len(f"point field {long}") + 2            # labels padded to the longest, then two spaces
    values = {row[2:column].strip(): row[column:] for row in rows}
    assert values["points"].startswith("27  (dim 3)") and values["tetra"] == "48"
    assert values[f"point field {long}"].startswith("shape (27,)")
    assert values["point field u"].startswith("shape (27,)")
    assert all(row[column - 1] == " " and row[column] != " " for row in rows)


def test_flat_validation_curve_has_distinct_ticks():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from meshop.viz.plots import _log_curve

    figure = Figure()
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    _log_curve(ax, np.array([1.0, 2.0]), np.array([68.7258, 68.7258]), "red", "validation")
    figure.canvas.draw()
    low, high = ax.get_ylim()
    labels = [t.get_text() for t in ax.yaxis.get_majorticklabels() + ax.yaxis.get_minorticklabels()
              if low <= t.get_position()[1] <= high and t.get_text()]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels


def test_a_folder_named_meshop_does_not_shadow_the_package(tmp_path):
    """A clone named `meshop` beside a user's script: the checkout's root on sys.path (as the
    editable install's .pth puts it, package-dir = {"" = "."}) still imports the package."""
    (tmp_path / "meshop" / "meshop").mkdir(parents=True)       # a clone: no __init__.py at its top
    (tmp_path / "meshop" / "README.md").write_text("a clone")
    run = subprocess.run([sys.executable, "-c", "import meshop; print(meshop.__file__, callable(meshop.read))"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(ROOT / "meshop" / "__init__.py"), "True"]
    assert 'package-dir = {"" = "."}' in (ROOT / "pyproject.toml").read_text()


def test_the_default_time_model_follows_the_input():
    """--steps without --model: heat3d-transient on a 3D mesh, mpm2d on 2D particles; for a 2D
    mesh and for 3D particles none is bundled, and the message says what to train."""
    from meshop.errors import MeshError
    from meshop.preflight import default_time_model

    points, tets = box_tetrahedra(3)
    assert default_time_model(Mesh(points, {"tetra": tets})) == "heat3d-transient"
    assert default_time_model(Mesh(np.random.default_rng(0).random((9, 2)), None)) == "mpm2d"
    square = Mesh(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), {"triangle": np.array([[0, 1, 2]])},
                  source="flow.vtu")
    with pytest.raises(MeshError, match="flow.vtu: a 2D mesh: .* --model mppde"):
        default_time_model(square)
    with pytest.raises(MeshError, match="3D particles .* --model giorom"):
        default_time_model(Mesh(points, None))


def test_a_series_given_where_one_mesh_is_read_is_named_as_such(tmp_path):
    traj = meshop.Trajectory(Mesh(np.random.default_rng(0).random((5, 2)), None), [0.0, 1.0],
                             positions=np.zeros((2, 5, 2)))
    path = meshop.write_series(traj, tmp_path / "s.pvd")
    with pytest.raises(meshop.MeshError, match="s.pvd: a time series, not one mesh: .* meshop.read_series"):
        meshop.read(path)
