"""Render the documentation gallery into docs/images/ (about a minute on 2 cores, no display).

    python viz/gallery.py [--out docs/images]

Pictures: the bundled dataset samples (datasets/samples/*), the sample part
(examples/parts/bracket.vtu), the default model's truth | prediction | error on it, its true
and estimated error on a sphere, K-D-tree decompositions
(2D and the 3D part), a multi-scale hierarchy, a training loss curve, and the HTML pages (a
mesh; a series with its time slider) as headless Chromium draws them (when chromium is installed).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import meshop
from meshop.geometry.hierarchy import hierarchy
from meshop.geometry.kdtree import decompose
from meshop.viz import export_html, plot_loss_curve, render, render_comparison
from meshop.viz.geometry_plots import categorical_colours, plot_decomposition, plot_hierarchy
from meshop.viz.pictures import _save
from meshop.viz.scene import fit_camera, new_plotter, to_pyvista

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (900, 680)


def samples(out: Path) -> None:
    """Each bundled dataset's first sample, coloured by its first target field."""
    for manifest in sorted((ROOT / "datasets" / "samples").glob("*/dataset.json")):
        info = json.loads(manifest.read_text())
        first = sorted(manifest.parent.glob("*.vtu"))[0]
        target = info["targets"][0]
        render(first, target, out / f"sample_{info['problem']}.png", window_size=WINDOW,
               title=f"{info['problem']}: {target}")


def bracket(out: Path) -> None:
    """The sample part: its mesh, and the distance to the boundary (cut open to show inside)."""
    part = meshop.read(ROOT / "examples" / "parts" / "bracket.vtu")
    render(part, out=out / "bracket_mesh.png", window_size=WINDOW, title="bracket.vtu")
    with_distance = part.with_point_data(distance_to_boundary=part.distance_to_boundary)
    render(with_distance, "distance_to_boundary", out / "bracket_distance.png", window_size=WINDOW,
           title="distance to the boundary (mm)")


def comparison(out: Path) -> None:
    """The bundled default model on the bracket (q = 1, cold surfaces) against scikit-fem."""
    from meshop.data.problems.heat3d import uniform_heating
    from meshop.prediction import Predictor

    part = meshop.read(ROOT / "examples" / "parts" / "bracket.vtu")
    truth = uniform_heating(part)
    result = Predictor().predict(part.with_point_data(temperature=truth))
    render_comparison(result.mesh, "temperature", out / "compare_bracket.png", window_size=(1500, 520))


def estimate(out: Path) -> None:
    """The default model's error on a sphere (q = 1, cold surface): true error | its estimate."""
    from meshop.data.problems.heat3d import uniform_heating
    from meshop.meshing import gmsh_session, mesh_arrays
    from meshop.prediction import Predictor
    from meshop.viz.scene import DIVERGING_CMAP, FieldStyle, add_field, kind_of

    with gmsh_session("sphere") as gmsh:
        gmsh.model.occ.addSphere(0, 0, 0, 0.3)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.6 / 28)
        gmsh.model.mesh.generate(3)
        points, tets = mesh_arrays(gmsh, 3)
    sphere = meshop.Mesh(points, {"tetra": tets})
    result = Predictor().predict(sphere.with_point_data(temperature=uniform_heating(sphere)))
    true, found = result.mesh.point_data["temperature_error"], result.estimate["temperature"]
    bound = float(np.abs(np.concatenate([true, found.error])).max())
    panels = [(f"true error: prediction - FEM ({result.metrics['temperature']['relative_l2']:.1%})", true),
              (f"estimated error ({found.relative:.1%}, from the FEM residual)", found.error)]
    grid = to_pyvista(sphere)
    plotter = new_plotter((1200, 560), shape=(1, 2))
    for column, (heading, values) in enumerate(panels):
        plotter.subplot(0, column)
        panel = grid.copy(deep=False)
        panel.point_data["error (K)"] = values
        add_field(plotter, panel, kind_of(sphere), "error (K)", FieldStyle("error (K)", (-bound, bound), DIVERGING_CMAP),
                  n_panels=2)
        plotter.add_text(heading, position="upper_edge", font_size=11, color="black")
        fit_camera(plotter, 3, grid.points)
    plotter.link_views()
    _save(plotter, "volume", out / "estimate_sphere.png")


def kdtree_2d(out: Path) -> None:
    """Density-driven K-D tree on a non-uniform 2D point set (uniform background + dense blob)."""
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.random((3000, 2)), 0.62 + 0.07 * rng.standard_normal((3000, 2))])
    subdomains = decompose(points, max_points=400, halo=0.03, criterion="density")
    plot_decomposition(points, subdomains, out / "kdtree_2d.png")


def kdtree_bracket(out: Path) -> None:
    """The bracket split into sub-domains of at most 300 nodes: surface triangles coloured by
    the K-D-tree box holding their centre, the boxes outlined."""
    import pyvista as pv

    part = meshop.read(ROOT / "examples" / "parts" / "bracket.vtu")
    subdomains = decompose(part.points, max_points=300, halo=4.0)
    surface = to_pyvista(part).extract_surface(algorithm="dataset_surface")
    centres = np.asarray(surface.cell_centers().points)
    unclaimed = np.ones(len(centres), dtype=bool)  # a centre on a shared box face goes to one box
    plotter = new_plotter(WINDOW)
    for sub, colour in zip(subdomains, categorical_colours(len(subdomains))):
        inside = unclaimed & ((centres >= sub.box[0]) & (centres <= sub.box[1])).all(axis=1)
        unclaimed &= ~inside
        if inside.any():
            plotter.add_mesh(surface.extract_cells(np.flatnonzero(inside)), color=colour, ambient=0.3)
        plotter.add_mesh(pv.Box(sub.box.T.ravel()).outline(), color="#707070", line_width=1)
    plotter.add_text(f"K-D tree: {len(subdomains)} sub-domains of at most 300 of {part.n_points} nodes",
                     position="upper_left", font_size=12, color="black")
    fit_camera(plotter, 3, part.points, bottom=0.04)
    plotter.enable_anti_aliasing("ssaa")
    plotter.screenshot(str(out / "kdtree_bracket.png"))
    plotter.close()


def multiscale(out: Path) -> None:
    """Three levels (ratio 4, 6-nearest-neighbour graphs) of a farthest-point hierarchy on a
    Poisson sample's nodes."""
    path = sorted((ROOT / "datasets" / "samples" / "poisson2d").glob("*.vtu"))[0]
    points = meshop.read(path).points
    plot_hierarchy(points, hierarchy(points, levels=3, ratio=4.0, k=6), out / "hierarchy.png")


def loss_curve(out: Path) -> None:
    """The default model's training run when present (runs/heat3d-default, from its recipe), else
    another real run under runs/, else a synthetic metrics.csv."""
    default = ROOT / "runs" / "heat3d-default" / "metrics.csv"
    runs = [default] if default.is_file() else sorted((ROOT / "runs").glob("*/metrics.csv"))
    if runs:
        plot_loss_curve(runs[-1], out / "loss_curve.png")
        return
    epochs = np.arange(1, 101)
    rng = np.random.default_rng(0)
    train = 0.5 * epochs ** -0.8 * np.exp(0.05 * rng.standard_normal(len(epochs)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "train_loss", "val_rel_l2"])
            for e, loss in zip(epochs, train):
                writer.writerow([e, f"{loss:.5g}", f"{0.6 * loss ** 0.5 + 0.02:.5g}" if e % 5 == 0 else ""])
        plot_loss_curve(path, out / "loss_curve.png", title="synthetic metrics.csv (layout demo)")


def html_page(out: Path) -> None:
    """The `meshop view --html` page of the heat3d sample, screenshotted by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("  chromium not found: html_page.png skipped")
        return
    sample = sorted((ROOT / "datasets" / "samples" / "heat3d").glob("*.vtu"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        page = export_html(sample, Path(tmp) / "page.html", field="temperature")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                        f"--user-data-dir={tmp}/profile", f"--screenshot={out / 'html_page.png'}",
                        "--window-size=900,600", "--virtual-time-budget=5000", page.as_uri()],
                       check=True, capture_output=True, timeout=120)


def series_page(out: Path) -> None:
    """The `meshop view SERIES` page (time slider) of the bundled heat3d-transient rollout on the
    bracket, at frame 10 of 20, screenshotted by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("  chromium not found: series_page.png skipped")
        return
    bracket = meshop.read(ROOT / "examples" / "parts" / "bracket.vtu")
    rollout = meshop.predict(bracket, steps=20, write=False).trajectory
    with tempfile.TemporaryDirectory() as tmp:
        page = export_html(rollout, Path(tmp) / "page.html")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                        f"--user-data-dir={tmp}/profile", f"--screenshot={out / 'series_page.png'}",
                        "--window-size=900,600", "--virtual-time-budget=6000", page.as_uri() + "#frame=10"],
                       check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = (samples, bracket, comparison, estimate, kdtree_2d, kdtree_bracket, multiscale, loss_curve, html_page,
             series_page)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--only", nargs="+", choices=[step.__name__ for step in steps],
                        help="make these pictures only (default: all)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for step in steps:
        if args.only and step.__name__ not in args.only:
            continue
        print(f"{step.__name__}: {step.__doc__.splitlines()[0]}")
        step(out)
    for image in sorted(out.glob("*.png")):
        shrink(image)
        print(f"  {image.name:28s} {image.stat().st_size / 1024:6.0f} KB")


def shrink(image: Path, max_kb: int = 250) -> None:
    """Keep documentation pictures small: a PNG over ``max_kb`` is re-saved with a 256-colour
    palette (no visible loss on these smooth colour maps and flat backgrounds)."""
    from PIL import Image

    if image.stat().st_size <= max_kb * 1024:
        return
    with Image.open(image) as picture:
        palette = picture.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                  dither=Image.Dither.FLOYDSTEINBERG)
    palette.save(image, optimize=True)


if __name__ == "__main__":
    main()
