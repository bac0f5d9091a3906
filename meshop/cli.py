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
    kind = "point cloud" if mesh.is_point_cloud else ("surface mesh" if mesh.is_surface else f"{mesh.dim}D volume mesh")
    typer.echo(f"{file}: {kind}")
    typer.echo(f"  points      {summary['n_points']}  (dim {summary['dim']})")
    for cell_type, count in summary["cells"].items():
        typer.echo(f"  {cell_type:<11} {count}")
    typer.echo(f"  boundary    {summary['n_boundary_points']} points")
    lo, hi = summary["bounds"]
    typer.echo("  bounds      " + "  ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(lo, hi)))
    for name, field in summary["fields"].items():
        typer.echo(f"  field {name:<16} shape {tuple(field['shape'])}  range [{field['min']:.4g}, {field['max']:.4g}]")


@app.command()
def predict(
    mesh: Path = typer.Argument(..., help="Volume mesh (vtu, vtk, msh, xdmf, ...) or closed CAD surface (stl, obj, ply)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundled model name or checkpoint path [default: heat3d]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file [default: <stem>.pred.vtu beside MESH]."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    mesh_size: Optional[float] = typer.Option(None, help="Element size for surfaces, in the file's units [default: diagonal/30]."),
    max_nodes: int = typer.Option(200_000, help="Predict larger meshes sub-domain by sub-domain."),
):
    """Predict fields on a mesh with a trained model; writes <stem>.pred.vtu."""
    from .predict import predict as run_prediction

    with user_errors():
        result = run_prediction(mesh, model, out=out, device=device, mesh_size=mesh_size, max_nodes=max_nodes)
    for note in result.notes:
        typer.echo(f"meshop: {note}", err=True)
    typer.echo(f"wrote {result.path} ({result.mesh.n_points} nodes, {result.seconds:.2f} s)")
    for target, metric in result.metrics.items():
        typer.echo(f"  {target}: relative L2 {metric['relative_l2']:.4g}, max error {metric['max_error']:.4g}")


def describe(mesh) -> dict:
    """The facts `meshop info --json` prints, as a JSON-ready dict."""
    fields = {}
    for name, values in mesh.point_data.items():
        values = np.asarray(values)
        numeric = values.size and np.issubdtype(values.dtype, np.number)
        fields[name] = {"shape": list(values.shape),
                        "min": float(values.min()) if numeric else float("nan"),
                        "max": float(values.max()) if numeric else float("nan")}
    return {
        "n_points": mesh.n_points,
        "dim": mesh.dim,
        "cells": mesh.cell_counts,
        "n_boundary_points": int(mesh.boundary_mask.sum()),
        "bounds": mesh.bounds.tolist(),
        "point_data": {name: f["shape"] for name, f in fields.items()},
        "fields": fields,
    }


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="meshop")
