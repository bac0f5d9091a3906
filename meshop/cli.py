"""The `meshop` command: a thin skin over the Python API.

Every command runs its body inside :func:`user_errors`, so bad input (a :class:`MeshError`)
becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .errors import MeshError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Geometry-aware neural operators on meshes and point clouds.")


@app.callback()
def _root():
    """Geometry-aware neural operators on meshes and point clouds."""


@contextmanager
def user_errors():
    """Turn user mistakes into one clear line on stderr and exit code 2."""
    try:
        yield
    except MeshError as err:
        typer.echo(f"meshop: error: {err}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("meshop: interrupted", err=True)
        raise typer.Exit(130) from None


@app.command()
def info(
    file: Path = typer.Argument(..., help="Mesh, surface or point cloud file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Points, dimension, cells, boundary and fields of a mesh file."""
    from .io import read

    with user_errors():
        mesh = read(file)
        summary = describe(mesh)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    plane = f", planar at z = {mesh.planar_z:.6g}" if mesh.planar_z is not None else ""
    typer.echo(f"{file}: {summary['kind']}{plane}")
    typer.echo(f"  points      {summary['n_points']}  (dim {summary['dim']})")
    for cell_type, count in summary["cells"].items():
        typer.echo(f"  {cell_type:<11} {count}")
    estimated = "  (estimated from the point distribution)" if summary["boundary_estimated"] else ""
    typer.echo(f"  boundary    {summary['n_boundary_points']} points{estimated}")
    lo, hi = summary["bounds"]
    typer.echo("  bounds      " + "  ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi)))
    for name, field in summary["fields"].items():
        span = (f"  range [{field['min']:.6g}, {field['max']:.6g}]" if field["min"] is not None else "")
        typer.echo(f"  point field {name:<16} shape {tuple(field['shape'])}{span}")
    for name, by_type in summary["cell_data"].items():
        shapes = ", ".join(f"{t} {tuple(shape)}" for t, shape in by_type.items())
        typer.echo(f"  cell field  {name:<16} {shapes}")


@app.command()
def predict(
    mesh: Path = typer.Argument(..., help="Volume mesh (vtu, vtk, msh, xdmf, ...) or closed CAD surface (stl, obj, ply)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundled model name or checkpoint path (default: heat3d)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: <stem>.pred.vtu beside MESH)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    mesh_size: Optional[float] = typer.Option(None, help="Element size for surfaces, in the file's units (default: diagonal/30)."),
    max_nodes: int = typer.Option(200_000, help="Predict larger meshes sub-domain by sub-domain (models with a finite receptive field)."),
    render: bool = typer.Option(False, "--render", help="Also write a picture: truth | prediction | error."),
):
    """Predict fields on a mesh with a trained model; writes <stem>.pred.vtu."""
    from .prediction import predict as run_prediction

    with user_errors():
        result = run_prediction(mesh, model, out=out, device=device, mesh_size=mesh_size, max_nodes=max_nodes,
                                render=render)
    for note in result.notes:
        typer.echo(f"meshop: {note}", err=True)
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in result.timings.items())
    typer.echo(f"wrote {result.path} ({result.mesh.n_points} nodes, {result.seconds:.2f} s: {stages})")
    if result.picture:
        typer.echo(f"wrote {result.picture}")
    for target, metric in result.metrics.items():
        typer.echo(f"  {target}: relative L2 {metric['relative_l2']:.4g}, max error {metric['max_error']:.4g}")


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder with dataset.json (or 'data:' in --config)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name: gno, ... (default: gno)."),
    inputs: Optional[str] = typer.Option(None, help="Input fields, comma-separated (default: the manifest's)."),
    targets: Optional[str] = typer.Option(None, help="Target fields, comma-separated (default: the manifest's)."),
    epochs: Optional[int] = typer.Option(None, help="Passes over the training split (default: 50)."),
    batch_size: Optional[int] = typer.Option(None, help="Meshes per batch (default: 4)."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate of AdamW (default: 1e-3)."),
    schedule: Optional[str] = typer.Option(None, help="onecycle or cosine (default: onecycle)."),
    seed: Optional[int] = typer.Option(None, help="Seed of weights and shuffling (default: 0)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cpu)."),
    model_option: Optional[list[str]] = typer.Option(None, "--model-option", help="Model hyper-parameter KEY=VALUE, repeatable (e.g. width=64)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of the same options; flags override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.safetensors."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<dataset>-<model>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Train a model on a dataset folder; writes best.safetensors, last.safetensors, metrics.csv, loss.png."""
    from .training import merge_options
    from .training import train as run_training

    with user_errors():
        options = merge_options(config, model_option, data=data, model=model, inputs=inputs, targets=targets,
                                epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, seed=seed,
                                device=device, out=out, resume=resume or None, progress=False if quiet else None)
        result = run_training(**options)
    metrics = result.metrics
    typer.echo(f"wrote {result.best} (epoch {metrics['best_epoch']}, validation relative L2 "
               f"{metrics['best_val_rel_l2']:.4g}) and {result.last}")
    if metrics["test_rel_l2"] is not None:
        typer.echo(f"  test relative L2 {metrics['test_rel_l2']:.4g}")
    typer.echo(f"  {metrics['epochs']} epochs in {metrics['seconds']:.1f} s; curves in "
               f"{result.run / 'metrics.csv'} and {result.run / 'loss.png'}")


@app.command()
def render(
    file: Path = typer.Argument(..., help="Mesh file with point fields (vtu, vtk, msh, ...)."),
    field: Optional[str] = typer.Option(None, "--field", "-f", help="Point field to colour by (default: the first)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG path (default: <stem>.png beside FILE)."),
    compare: bool = typer.Option(False, "--compare", help="Three panels: FIELD | FIELD_pred | FIELD_error."),
):
    """Render a field to a PNG, off screen (3D volumes cut open to show the inside)."""
    from .viz import render as render_png

    suffix = ".compare.png" if compare else ".png"
    with user_errors():
        path = render_png(file, field, out or file.with_name(file.stem + suffix), compare=compare)
    typer.echo(f"wrote {path}")


@app.command()
def view(
    file: Path = typer.Argument(..., help="Mesh file with point fields."),
    field: Optional[str] = typer.Option(None, "--field", "-f", help="Field shown first (default: the first)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained interactive page instead of opening a window."),
):
    """Interactive 3D view (drag the clip plane, n/p switch fields), or a browser page with --html."""
    import os

    from . import viz

    if html is not None:
        with user_errors():
            path = viz.export_html(file, html, field=field)
        typer.echo(f"wrote {path}")
        return
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        typer.echo("meshop: error: no display for an interactive window; use `meshop view FILE --html OUT.html` "
                   "or `meshop render FILE`.", err=True)
        raise typer.Exit(2)
    with user_errors():
        viz.view(file, field=field)


@app.command()
def generate(
    problem: str = typer.Argument(..., help="poisson2d, darcy2d or heat3d."),
    n: int = typer.Option(..., "--n", help="Number of samples."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (sample_00000.vtu, ..., dataset.json)."),
    seed: int = typer.Option(0, help="Master seed; the same seed gives the same data bit for bit."),
    resolution: Optional[int] = typer.Option(None, help="Target nodes (poisson2d, heat3d) or nodes per side (darcy2d) (default: the problem's)."),
    workers: int = typer.Option(1, help="Parallel worker processes."),
    scheduler: Optional[str] = typer.Option(None, help="Dask distributed instead of --workers: local:N (a LocalCluster of N processes) or a scheduler address like tcp://host:8786 (needs the dask extra)."),
    domain: Optional[str] = typer.Option(None, help="darcy2d only: square or random."),
    solver: Optional[str] = typer.Option(None, help="Linear solver: direct, cg, amg, or recycle (Krylov recycling; darcy2d on the square) (default: direct)."),
    split: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty folder that is not a meshop dataset."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Generate a dataset of solved PDE samples with a dataset.json manifest."""
    from .data.generate import generate as generate_dataset

    options = {k: v for k, v in {"domain": domain, "solver": solver}.items() if v is not None}
    with user_errors():
        try:
            fractions = tuple(float(f) for f in split.split(","))
        except ValueError:
            raise MeshError(f"--split {split!r}: expected three fractions like 0.8,0.1,0.1.") from None
        path = generate_dataset(problem, n, out, seed=seed, resolution=resolution, workers=workers,
                                split=fractions, progress=not quiet, overwrite=overwrite, scheduler=scheduler,
                                **options)
    typer.echo(f"wrote {n} {problem} samples and dataset.json to {path}")


def describe(mesh) -> dict:
    """The facts `meshop info --json` prints, as a JSON-ready dict.

    Keys: ``kind`` ("volume mesh", "surface mesh" or "point cloud"), ``n_points``, ``dim``,
    ``cells`` (type -> count), ``n_boundary_points``, ``boundary_estimated`` (True for point
    clouds without a given mask), ``bounds`` ([min corner, max corner]), ``point_data``
    (name -> shape), ``fields`` (name -> shape, min, max; None for non-numeric data) and
    ``cell_data`` (name -> {cell type -> shape}).
    """
    fields = {}
    for name, values in mesh.point_data.items():
        values = np.asarray(values)
        numeric = values.size > 0 and np.issubdtype(values.dtype, np.number)
        fields[name] = {"shape": list(values.shape),
                        "min": float(values.min()) if numeric else None,
                        "max": float(values.max()) if numeric else None}
    kind = "point cloud" if mesh.is_point_cloud else ("surface mesh" if mesh.is_surface else "volume mesh")
    return {
        "kind": kind,
        "n_points": mesh.n_points,
        "dim": mesh.dim,
        "cells": mesh.cell_counts,
        "n_boundary_points": int(mesh.boundary_mask.sum()),
        "boundary_estimated": bool(mesh.is_point_cloud and mesh.boundary_is_estimated),
        "bounds": mesh.bounds.tolist(),
        "point_data": {name: f["shape"] for name, f in fields.items()},
        "fields": fields,
        "cell_data": {name: {t: list(np.shape(v)) for t, v in by_type.items()}
                      for name, by_type in mesh.cell_data.items()},
    }


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="meshop")
