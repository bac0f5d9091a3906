"""Rendering, interactive plotter, HTML page (in headless Chromium) and loss curves, all without a
display: every test runs with DISPLAY unset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import skfem
from PIL import Image
from typer.testing import CliRunner

import meshop
from meshop.cli import app
from meshop.errors import MeshError
from meshop.mesh import Mesh
from meshop.viz import (export_html, interactive_plotter, plot_loss_curve, render, render_comparison,
                        to_pyvista)
from meshop.viz.scene import cut_open

SMALL = (480, 360)


@pytest.fixture(autouse=True)
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture(scope="module")
def disc() -> Mesh:
    """Unit disc, triangles; u = sin(3x)cos(2y), v = x^2 - y, a prediction and its error."""
    m = skfem.MeshTri.init_circle(3)
    x, y = m.p
    u, v = np.sin(3 * x) * np.cos(2 * y), x ** 2 - y
    pred = u + 0.1 * np.sin(7 * y)
    return Mesh(m.p.T, {"triangle": m.t.T},
                {"u": u, "v": v, "u_pred": pred, "u_error": pred - u, "vel": np.column_stack([u, v])})


@pytest.fixture(scope="module")
def cube() -> Mesh:
    m = skfem.MeshTet().refined(2)
    x, y, z = m.p
    return Mesh(m.p.T, {"tetra": m.t.T}, {"u": np.sin(3 * x) * np.cos(2 * y) * z, "T": x + y ** 2})


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int64)


def assert_drawn(img: np.ndarray, min_colours: int = 50) -> None:
    """Not blank: real spread of pixel values and many distinct colours (a colour map)."""
    assert img.std() > 20
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= min_colours


def content_runs(img: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges that hold anything but the white background (panels side by side)."""
    used = (np.abs(img - 255).sum(axis=2) > 30).any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], used.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_to_pyvista_keeps_points_cells_and_fields(disc, cube):
    grid = to_pyvista(disc)
    assert grid.n_points == disc.n_points and grid.n_cells == len(disc.cells["triangle"])
    np.testing.assert_array_equal(np.asarray(grid.points)[:, 2], 0.0)
    np.testing.assert_array_equal(grid.point_data["u"], disc.point_data["u"])
    assert to_pyvista(cube).n_cells == len(cube.cells["tetra"])
    cloud = to_pyvista(Mesh(cube.points))
    assert cloud.n_points == cube.n_points and cloud.n_cells == cube.n_points  # one vertex each


def test_render_2d_is_drawn_and_fields_differ(disc, tmp_path):
    u = pixels(render(disc, "u", tmp_path / "u.png", window_size=SMALL))
    v = pixels(render(disc, "v", tmp_path / "v.png", window_size=SMALL))
    assert u.shape == (SMALL[1], SMALL[0], 3)
    assert_drawn(u)
    assert_drawn(v)
    assert np.abs(u - v).mean() > 5
    default = pixels(render(disc, None, tmp_path / "default.png", window_size=SMALL))
    np.testing.assert_array_equal(default, u)  # the first field is the default


def test_render_3d_volume_and_vector_field(cube, disc, tmp_path):
    u = pixels(render(cube, "u", tmp_path / "u.png", window_size=SMALL))
    t = pixels(render(cube, "T", tmp_path / "t.png", window_size=SMALL))
    assert_drawn(u)
    assert np.abs(u - t).mean() > 5
    speed = pixels(render(disc, "vel", tmp_path / "vel.png", window_size=SMALL))  # |vel|
    assert_drawn(speed)


def test_render_without_fields_draws_geometry(cube, tmp_path):
    bare = Mesh(cube.points, cube.cells)
    img = pixels(render(bare, out=tmp_path / "bare.png", window_size=SMALL))
    assert (np.abs(img - 255).sum(axis=2) > 30).mean() > 0.2 and img.std() > 20
    ball = np.random.default_rng(0).normal(size=(1500, 3))
    ball /= np.linalg.norm(ball, axis=1, keepdims=True) / np.random.default_rng(1).random((1500, 1)) ** (1 / 3)
    img = pixels(render(Mesh(ball), out=tmp_path / "cloud.png", window_size=SMALL))
    red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
    assert red.sum() > 500  # boundary points marked red


def volume(grid) -> float:
    return float(np.abs(grid.compute_cell_sizes(length=False, area=False).cell_data["Volume"]).sum())


def test_cut_open_removes_exactly_an_octant_or_a_half(cube):
    kept, skin = cut_open(to_pyvista(cube))
    assert volume(kept) == pytest.approx(7 / 8, rel=1e-9)   # unit cube minus its +++ octant
    assert skin.area == pytest.approx(3 * 0.25, rel=1e-9)  # the octant's three outer faces
    # An L-shaped prism (all but a 0.25-thick floor and wall removed) has an empty +++ octant, so
    # the half above the centre plane with the largest cross-section (y = 0.5) is cut instead.
    ticks = np.linspace(0.0, 1.0, 5)
    m = skfem.MeshTet.init_tensor(ticks, ticks, ticks)
    centres = m.p[:, m.t].mean(axis=1)
    keep = ~((centres[0] > 0.25) & (centres[2] > 0.25))
    used, tets = np.unique(m.t[:, keep], return_inverse=True)
    ell = to_pyvista(Mesh(m.p[:, used].T, {"tetra": tets.reshape(4, -1).T}))
    kept, skin = cut_open(ell)
    assert volume(ell) == pytest.approx(1 - 0.75 ** 2)
    assert volume(kept) == pytest.approx((1 - 0.75 ** 2) / 2, rel=1e-9)
    assert kept.bounds[3] == pytest.approx(0.5)  # y <= 0.5 kept
    assert skin.n_cells > 0


def test_compare_has_three_panels_with_shared_limits(disc, tmp_path):
    out = render(disc, "u", tmp_path / "cmp.png", compare=True, window_size=(900, 320))
    img = pixels(out)
    assert img.shape == (320, 900, 3)
    runs = content_runs(img)
    assert len(runs) == 3
    assert [(a + b) / 2 // 300 for a, b in runs] == [0, 1, 2]  # one per third of the width
    band = slice(60, 240)  # below the titles, above the colour bars

    def panels(mesh, name):
        im = pixels(render_comparison(mesh, "u", tmp_path / name, window_size=(900, 320)))
        return im[band, :300], im[band, 300:600]

    truth, same = panels(disc.with_point_data(u_pred=disc.point_data["u"]), "same.png")
    np.testing.assert_array_equal(truth, same)
    truth, half = panels(disc.with_point_data(u_pred=0.5 * disc.point_data["u"]), "half.png")
    assert np.abs(truth - half).mean() > 5  # shared limits: half the values look different


def test_compare_computes_missing_error_field(disc, tmp_path):
    no_error = Mesh(disc.points, disc.cells, {k: disc.point_data[k] for k in ("u", "u_pred")})
    with_error = pixels(render_comparison(disc, None, tmp_path / "a.png", window_size=(900, 320)))
    computed = pixels(render_comparison(no_error, None, tmp_path / "b.png", window_size=(900, 320)))
    band = slice(60, 240)  # the error pictures match; only the colour-bar titles differ
    np.testing.assert_array_equal(with_error[band], computed[band])


def test_missing_field_and_bad_file_raise_mesh_error(disc, tmp_path):
    with pytest.raises(MeshError, match="'pressure' is missing"):
        render(disc, "pressure", tmp_path / "x.png")
    with pytest.raises(MeshError, match="'T' is missing"):
        render(disc, "T", tmp_path / "x.png", compare=True)
    with pytest.raises(MeshError, match="_pred"):
        render(Mesh(disc.points, disc.cells, {"v": disc.point_data["v"]}), out=tmp_path / "x.png", compare=True)
    bad = tmp_path / "bad.vtu"
    bad.write_text("not a mesh")
    with pytest.raises(MeshError, match="bad.vtu"):
        render(bad, out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_cli_render_and_errors(disc, tmp_path):
    path = tmp_path / "disc.vtu"
    meshop.write(disc, path)
    runner = CliRunner()
    result = runner.invoke(app, ["render", str(path), "--field", "v"])
    assert result.exit_code == 0, result.stderr
    assert_drawn(pixels(tmp_path / "disc.png"))
    result = runner.invoke(app, ["render", str(path), "--compare", "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 0 and (tmp_path / "c.png").is_file()
    result = runner.invoke(app, ["render", str(path), "--field", "nope"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "'nope' is missing" in result.stderr
    result = runner.invoke(app, ["view", str(path)])  # no display here
    assert result.exit_code == 2 and "--html" in result.stderr


def test_cli_render_into_an_unwritable_folder_is_one_sentence(disc, tmp_path, monkeypatch):
    """A picture or animation that cannot be written (read-only folder, full disk) was a
    FileNotFoundError / PermissionError traceback."""
    from meshop.viz import scene

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(scene, "atomic_path", read_only)
    path = meshop.write(disc, tmp_path / "disc.vtu")
    result = CliRunner().invoke(app, ["render", str(path), "--field", "v"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "disc.png: could not write this .png file ([Errno 13] Permission denied" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disc.vtu"]


def test_cli_render_refuses_a_missing_folder_and_a_format_it_cannot_write(disc, tmp_path):
    """render made missing folders (-o nodir/x.png, --gif nodir/x.gif) and wrote a PNG named x.abc,
    where predict and adapt refuse a missing output folder."""
    path = meshop.write(disc, tmp_path / "disc.vtu")
    series = meshop.write_series(meshop.Trajectory(disc, [0.0, 1.0], {"w": np.stack([disc.point_data["u"]] * 2)}),
                                 tmp_path / "disc.pvd")
    missing = f"folder {tmp_path / 'nodir'} does not exist."
    for flag, name, phrase in [("-o", "nodir/x.png", missing), ("--gif", "nodir/x.gif", missing),
                               ("--mp4", "nodir/x.mp4", missing),
                               ("-o", "x.abc", "x.abc: render writes .png files, not '.abc'; give -o a .png name.")]:
        source = series if flag in ("--gif", "--mp4") else path
        result = CliRunner().invoke(app, ["render", str(source), flag, str(tmp_path / name)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"{name}: " in result.stderr and phrase in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disc", "disc.pvd", "disc.vtu"]


def test_interactive_plotter_builds_off_screen_and_switches_fields(cube, disc):
    for mesh in (cube, disc):
        plotter = interactive_plotter(mesh, "u", off_screen=True, window_size=SMALL)
        try:
            before = plotter.screenshot()
            assert list(plotter.scalar_bars.keys()) == ["u"]
            plotter.iren.interactor.SetKeySym("n")
            plotter.iren.interactor.InvokeEvent("KeyPressEvent")
            after = plotter.screenshot()
            assert list(plotter.scalar_bars.keys()) == [list(mesh.point_data)[1]]
            assert_drawn(after.astype(np.int64))
            assert np.abs(before.astype(np.int64) - after).mean() > 2
            assert len(plotter.widgets.plane_widgets) == (1 if mesh is cube else 0)
        finally:
            plotter.close()
    with pytest.raises(MeshError, match="'nope' is missing"):
        interactive_plotter(cube, "nope", off_screen=True)


def chromium() -> str:
    """The browser's path; skips the test where none is installed, except in CI (which installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    reason = "headless Chromium is needed to open the HTML page: apt-get install chromium (make test does, as root)"
    if os.environ.get("CI"):
        raise AssertionError(reason)
    pytest.skip(reason)


def page_requests(net_log) -> list[str]:
    """URLs the page itself requested (the browser's own housekeeping has no initiator)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"] if e["type"] == start and "url" in e["params"]
            and e["params"].get("initiator") != "not an origin"]


def screenshot(url: str, tmp_path, net_log=None) -> np.ndarray:
    """Pixels of ``url`` drawn by headless Chromium in an 800 x 600 window (5 s of page time)."""
    shot = tmp_path / "shot.png"
    log = [f"--log-net-log={net_log}"] if net_log else []
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", *log,
                    "--window-size=800,600", "--virtual-time-budget=5000", url],
                   check=True, capture_output=True, timeout=120)
    return pixels(shot)


@pytest.mark.parametrize("which", ["cube", "disc"])
def test_html_page_draws_in_headless_chromium_offline(which, request, tmp_path):
    mesh = request.getfixturevalue(which)
    page = export_html(mesh, tmp_path / "page.html", field="u")
    assert "<script" in page.read_text() and "kitware.github.io/vtk-js/icon" not in page.read_text()
    net_log = tmp_path / "net.json"
    img = screenshot(page.as_uri(), tmp_path, net_log)
    assert_drawn(img)
    assert (img[:, :600] != 255).any(axis=2).mean() > 0.15  # the mesh fills part of the canvas
    assert not [u for u in page_requests(net_log) if not u.startswith(("file:", "data:", "blob:"))]


def test_cli_view_html(cube, tmp_path):
    path = tmp_path / "cube.vtu"
    meshop.write(cube, path)
    result = CliRunner().invoke(app, ["view", str(path), "--field", "T", "--html", str(tmp_path / "p.html")])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "p.html").stat().st_size > 100_000  # the viewer and the scene, inline
    assert "<title>cube.vtu - T | meshop</title>" in (tmp_path / "p.html").read_text()
    (tmp_path / "mine.html").write_text("<html><title>my notes</title></html>")
    refused = CliRunner().invoke(app, ["view", str(path), "--html", str(tmp_path / "mine.html")])
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr
    assert (tmp_path / "mine.html").read_text() == "<html><title>my notes</title></html>"


def test_plot_loss_curve(tmp_path):
    csv = tmp_path / "run" / "metrics.csv"
    csv.parent.mkdir()
    epochs = np.arange(1, 31)
    lines = ["epoch,train_loss,val_rel_l2"] + [
        f"{e},{1.0 / e:.6g},{(0.5 / np.sqrt(e) if e % 5 == 0 else '')}" for e in epochs]
    csv.write_text("\n".join(lines) + "\n")
    img = pixels(plot_loss_curve(csv, tmp_path / "loss.png"))
    assert_drawn(img, min_colours=20)
    assert img.shape[1] > 2 * img.shape[0]  # two panels side by side
    no_val = tmp_path / "train_only.csv"
    no_val.write_text("epoch,train_loss\n1,0.5\n2,0.25\n")
    assert plot_loss_curve(no_val, tmp_path / "b.png").is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("step,loss\n1,0.5\n")
    with pytest.raises(MeshError, match="train_loss|epoch"):
        plot_loss_curve(bad, tmp_path / "c.png")


def test_plot_rollout_errors_draws_particle_mse_in_square_metres(tmp_path, monkeypatch):
    """A particle rollout's ``position_mse`` (m², ~1e-9 in its first steps) was drawn as a relative
    error in percent floored at 1e-6: every good rollout came out as the same flat line."""
    from matplotlib.axes import Axes

    from meshop.viz import plot_rollout_errors

    labels = []
    monkeypatch.setattr(Axes, "set_ylabel", lambda self, text, *a, **k: labels.append(text))
    small = pixels(plot_rollout_errors({"position_mse": np.array([0.0, 1e-9, 1e-8, 4e-8])}, tmp_path / "a.png"))
    large = pixels(plot_rollout_errors({"position_mse": np.array([0.0, 1e-9, 1e-7, 1e-6])}, tmp_path / "b.png"))
    assert not np.array_equal(small, large)
    plot_rollout_errors({"temperature": np.array([0.0, 1e-3, 2e-3])}, tmp_path / "c.png")
    assert labels == ["mean squared position error (m²)"] * 2 + ["relative L2 error (%)"]


# ---------------------------------------------------------------- series page: a time slider
def _moving_front(cube_mesh: Mesh, frames: int = 6):
    """A cube whose field is a front sweeping along x: T = tanh(8 (x - t)), t in [0, 1]."""
    times = np.linspace(0.0, 1.0, frames)
    x = cube_mesh.points[:, 0]
    return meshop.Trajectory(Mesh(cube_mesh.points, cube_mesh.cells), times,
                             {"T": np.tanh(8 * (x[None] - times[:, None]))})


def _page_frames(page) -> dict:
    text = page.read_text()
    start = text.index("const FRAMES = ") + len("const FRAMES = ")
    return json.loads(text[start:text.index(";\n", start)])


@pytest.mark.slow
def test_series_page_slider_redraws_each_frame_in_headless_chromium(cube, tmp_path):
    path = meshop.write_series(_moving_front(cube), tmp_path / "front.pvd")
    result = CliRunner().invoke(app, ["view", str(path)])  # a series always gets the page
    page = tmp_path / "front.html"
    assert result.exit_code == 0, result.stderr
    assert "<title>front.pvd - T | meshop</title>" in page.read_text()
    net_log = tmp_path / "net.json"
    first = screenshot(page.as_uri() + "#frame=0", tmp_path, net_log)
    last = screenshot(page.as_uri() + "#frame=5", tmp_path)
    assert_drawn(first) and assert_drawn(last)
    scene_first, scene_last = first[40:, :700], last[40:, :700]  # under the slider, left of the bar
    assert np.abs(scene_first - scene_last).mean() > 5  # the front has swept across the cube
    assert np.abs(screenshot(page.as_uri(), tmp_path)[40:, :700] - scene_first).mean() < 0.5  # opens at 0
    assert not [u for u in page_requests(net_log) if not u.startswith(("file:", "data:", "blob:"))]


@pytest.mark.slow
def test_series_page_moves_the_nodes_of_a_moving_mesh(disc, tmp_path):
    times = np.linspace(0.0, 1.0, 4)
    positions = disc.points[None] + np.array([3.0, 0.0]) * times[:, None, None]  # 3 radii to the right
    traj = meshop.Trajectory(Mesh(disc.points, disc.cells), times, {"u": np.repeat(disc.point_data["u"][None], 4, 0)},
                             positions)
    page = export_html(traj, tmp_path / "moving.html")
    columns = []
    for k in (0, 3):
        drawn = (np.abs(screenshot(page.as_uri() + f"#frame={k}", tmp_path)[40:, :700] - 255).sum(axis=2) > 30)
        columns.append(np.flatnonzero(drawn.any(axis=0)))
    width = columns[0].max() - columns[0].min()          # the disc's diameter in pixels
    shift = columns[1].mean() - columns[0].mean()
    assert shift == pytest.approx(1.5 * width, rel=0.1)  # moved by 3 radii = 1.5 diameters


def test_series_page_frames_decode_to_the_series_and_long_series_are_thinned(disc, tmp_path):
    times = np.linspace(0.0, 2.0, 43)
    u = np.sin(3 * disc.points[:, 0])[None] * np.cos(times)[:, None]
    traj = meshop.Trajectory(Mesh(disc.points, disc.cells), times, {"u": u})
    from meshop.viz.series_page import export_series_html

    frames = _page_frames(export_series_html(traj, tmp_path / "all.html"))
    (entry,) = frames["actors"]
    q = np.frombuffer(__import__("base64").b64decode(entry["values"]), dtype="<u2").reshape(43, -1)
    lo, hi = frames["clim"]
    np.testing.assert_allclose(lo + q / 65535 * (hi - lo), u, atol=(hi - lo) / 131070 * 1.001)
    budget = 43 * 2 * disc.n_points / 1e6 / 3.5  # 1 / 3.5 of what all frames need: every 4th
    thin = _page_frames(export_series_html(traj, tmp_path / "thin.html", max_mb=budget))
    assert thin["indices"] == [*range(0, 43, 4), 42] and thin["n_frames"] == 43  # the last kept
    np.testing.assert_allclose(thin["times"], times[thin["indices"]])
    with pytest.raises(MeshError, match="no field 'nope'"):
        export_series_html(traj, tmp_path / "bad.html", field="nope")
    assert not (tmp_path / "bad.html").exists()
