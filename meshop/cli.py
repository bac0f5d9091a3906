"""The `meshop` command: a thin skin over the Python API.

Every command runs its body inside :func:`user_errors`, so bad input (a :class:`MeshError`)
becomes one line on stderr and exit code 2, never a traceback; Ctrl-C (SIGINT) and SIGTERM end a
command with one line and exit code 130 or 143, after the clean-up of what it was writing.
Arguments, files and checkpoint metadata are checked before torch is imported (several seconds),
and slow steps say what they do on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperCommand

from . import models
from .errors import MeshError, check_parent


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it cleans up as after Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated


class _Command(TyperCommand):
    """Usage lines with plain upper-case argument names (``meshop info FILE``); interruptions
    answered in one line."""

    def invoke(self, ctx: click.Context):
        """Run the command; Ctrl-C or SIGTERM anywhere in it (the imports included) unwinds it,
        so staging folders and temporaries are removed, then prints one line and exits 130 / 143."""
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as err:
            terminated = isinstance(err, Terminated)
            typer.echo(f"meshop: {'terminated' if terminated else 'interrupted'}", err=True)
            raise typer.Exit(143 if terminated else 130) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.name.upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Geometry-aware neural operators on meshes and point clouds.")
command = app.command(cls=_Command)


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"meshop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="Print meshop's version and exit.")):
    """Geometry-aware neural operators on meshes and point clouds."""
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Library warnings as the CLI's other lines: ``meshop: warning: ...``, no source line."""
    return f"meshop: warning: {message}\n"


def say(line: str) -> None:
    """A progress line on stderr (results go to stdout)."""
    typer.echo(f"meshop: {line}", err=True)


@contextmanager
def user_errors():
    """Turn user mistakes into one clear line on stderr and exit code 2."""
    try:
        yield
    except MeshError as err:
        typer.echo(f"meshop: error: {err}", err=True)
        raise typer.Exit(2) from None


@command
def info(
    file: Path = typer.Argument(..., help="Mesh, surface or point cloud file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Points, dimension, cells, boundary and fields of a mesh file."""
    from .io import read
    from .io.series import is_series

    if is_series(file):
        return _info_series(file, as_json)
    with user_errors():
        mesh = read(file)
        summary = describe(mesh)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    plane = f", planar at z = {mesh.planar_z:.6g}" if mesh.planar_z is not None else ""
    typer.echo(f"{file}: {summary['kind']}{plane}")
    rows = [("points", f"{summary['n_points']}  (dim {summary['dim']})")]
    rows += [(cell_type, str(count)) for cell_type, count in summary["cells"].items()]
    estimated = "  (estimated from the point distribution)" if summary["boundary_estimated"] else ""
    rows.append(("boundary", f"{summary['n_boundary_points']} points{estimated}"))
    if summary["n_unused_points"]:          # stray points: they stretch the bounds below
        first = int(mesh.unreferenced.argmax())
        rows.append(("unused points", f"{summary['n_unused_points']}  (no cell uses them; first: point {first} at "
                                      f"({', '.join(f'{c:.6g}' for c in mesh.points[first])}))"))
    lo, hi = summary["bounds"]
    rows.append(("bounds", "  ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi))))
    for name, field in summary["fields"].items():
        span = (f"  range [{field['min']:.6g}, {field['max']:.6g}]" if field["min"] is not None else "")
        rows.append((f"point field {name}", f"shape {tuple(field['shape'])}{span}"))
    for name, by_type in summary["cell_data"].items():
        rows.append((f"cell field {name}", ", ".join(f"{t} {tuple(shape)}" for t, shape in by_type.items())))
    for name, data in summary["field_data"].items():
        value = (f"{data['min']:.6g}" if data["size"] == 1 else
                 f"{data['size']} values, range [{data['min']:.6g}, {data['max']:.6g}]")
        rows.append((f"field data {name}", value))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"  {label:<{width}}  {value}")


def _info_series(file: Path, as_json: bool) -> None:
    """`meshop info` of a time series: frames, time range, dt, fields, moving or fixed nodes."""
    from .io import read_series

    with user_errors():
        summary = read_series(file).summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    t0, t1 = summary["time_range"]
    dt = f"dt {summary['dt']:.6g}" if summary["dt"] is not None else "non-uniform dt"
    typer.echo(f"{file}: time series, {summary['n_frames']} frames, t = {t0:.6g} .. {t1:.6g} ({dt})")
    motion = "moving (positions per frame)" if summary["moving"] else "fixed"
    typer.echo(f"  points      {summary['n_points']}  (dim {summary['dim']}), {motion}")
    for cell_type, count in summary["cells"].items():
        typer.echo(f"  {cell_type:<11} {count}")
    for name, shape in summary["fields"].items():
        typer.echo(f"  per frame   {name}  shape (frames, {summary['n_points']}{''.join(f', {c}' for c in shape)})")
    for name in summary["constant_fields"]:
        typer.echo(f"  constant    {name}")
    for name, size in summary["field_data"].items():
        typer.echo(f"  field data  {name}  ({size} value{'s' if size != 1 else ''})")


@command
def predict(
    mesh: Path = typer.Argument(..., help="Volume mesh (vtu, vtk, msh, xdmf, ...) or closed CAD surface (stl, obj, ply)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundled model name or checkpoint path (default: heat3d)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: part.pred.vtu for part.vtu, bracket.stl.pred.vtu for bracket.stl, beside MESH)."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    mesh_size: Optional[float] = typer.Option(None, help="Element size for surfaces, in the file's units (default: diagonal/30)."),
    max_nodes: Optional[int] = typer.Option(None, help="gno models only: predict meshes with more nodes sub-domain by sub-domain (default: 200000). Models of global reach, the default included, run whole."),
    render: bool = typer.Option(False, "--render", help="Also write a picture beside the output (.png): truth | prediction | error, or the prediction; with --steps an animated GIF."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output not named *.pred.*, even the input file."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Time-dependent models: frames to roll out from the state MESH holds; writes <stem>.pred.pvd."),
    dt: Optional[float] = typer.Option(None, "--dt", help="With --steps: time between saved frames, a multiple of the model's frame step (default: every frame)."),
    refine: Optional[float] = typer.Option(None, "--refine", help="Continue the prediction by multigrid-preconditioned CG to this relative finite-element residual (e.g. 1e-8); writes <target>_refined."),
    estimate: bool = typer.Option(True, "--estimate/--no-estimate", help="Estimate the prediction's error from its finite-element residual (bundled models of a known PDE; costs about one FEM assembly)."),
):
    """Predict fields on a mesh with a trained model; writes <stem>.pred.vtu (a .pvd series with --steps)."""
    from .io import read
    from .io.series import is_series
    from .estimate import check_tolerance, warning
    from .outputs import prediction_output
    from .checkpoint import read_metadata
    from .preflight import check_device, checkpoint_path, dimension_refusal, model_label, point_cloud_refusal

    if steps is not None or is_series(mesh):
        return _predict_series(mesh, model, out, device, render, overwrite, steps, dt)
    with user_errors():   # everything a user can get wrong, before torch is imported
        check_device(device)
        if refine is not None:
            check_tolerance(refine)
        spec = read_metadata(checkpoint_path(model)).get("model")   # a bundled name or a file, its metadata readable
        source = read(mesh)
        if source.is_point_cloud:
            raise MeshError(f"{mesh}: {point_cloud_refusal(source)}")
        if isinstance(spec, dict) and isinstance(spec.get("dim"), int) and spec["dim"] > source.dim:
            # a flat mesh for a 3D model (a 3D mesh for a 2D one, maybe a mesh mover, is the Predictor's)
            raise MeshError(f"{mesh}: {dimension_refusal(source, model_label(model, spec.get('name')), spec['dim'])}")
        target = prediction_output(mesh, out, render=render, overwrite=overwrite)
        say("loading torch ...")
        from .prediction import predict as run_prediction

        result = run_prediction(source, model, out=target, device=device, mesh_size=mesh_size,
                                max_nodes=max_nodes, render=render, overwrite=overwrite, progress=say,
                                estimate=estimate, refine=refine)
    for note in result.notes:
        typer.echo(f"meshop: {note}", err=True)
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in result.timings.items())
    typer.echo(f"wrote {result.path} ({result.mesh.n_points} nodes, {result.seconds:.2f} s: {stages})")
    if result.picture:
        typer.echo(f"wrote {result.picture}")
    for target, metric in result.metrics.items():
        typer.echo(f"  {target}: relative L2 {metric['relative_l2']:.4g}, max error {metric['max_error']:.4g}")
    for target, found in result.estimate.items():
        typer.echo(f"  {target}: estimated relative error {found.relative:.4g} (finite-element residual "
                   f"{found.residual:.3g}, {found.seconds:.2f} s)")
        message = warning(target, found, result.mesh) if refine is None else None
        if message:
            typer.echo(f"meshop: warning: {message}", err=True)


def _predict_series(mesh: Path, model, out, device: str, render: bool, overwrite: bool, steps, dt) -> None:
    """`meshop predict --steps`: a rollout of a time-dependent model, written as a .pvd series."""
    from .io import read, read_series
    from .io.series import is_series
    from .outputs import prediction_output
    from .preflight import check_device, checkpoint_path, default_time_model

    with user_errors():
        check_device(device)
        source = read_series(mesh) if is_series(mesh) else read(mesh)
        model = model or default_time_model(source)        # by what the input is
        checkpoint_path(model)
        prediction_output(source.source, out, render=render, overwrite=overwrite, series=True)
        say("loading torch ...")
        from .prediction import predict as run_prediction

        result = run_prediction(source, model, out=out, device=device, render=render, overwrite=overwrite,
                                progress=say, steps=steps, dt=dt)
    for note in result.notes:
        typer.echo(f"meshop: {note}", err=True)
    traj = result.trajectory
    typer.echo(f"wrote {result.path} ({traj.n_frames} frames to t = {traj.times[-1]:.4g}, {traj.n_points} nodes, "
               f"{result.seconds:.2f} s, {1000 * result.seconds_per_step:.1f} ms per step)")
    for extra in (result.picture, result.error_plot):
        if extra:
            typer.echo(f"wrote {extra}")
    for name, errors in result.errors.items():
        marks = ", ".join(f"step {k}: {errors[k]:.3g}" for k in sorted({1, len(errors) // 2, len(errors) - 1}) if k)
        measure = "mean squared error (m²)" if name.endswith("_mse") else "relative L2"
        typer.echo(f"  {name}: {measure} against the reference series, {marks}")


@command
def train(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder with dataset.json (or 'data:' in --config)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=f"Model name: {', '.join(models.available())} (default: gno)."),
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
    prior: bool = typer.Option(False, "--prior", help="Start from a coarse voxel solve of the problem's PDE and learn the difference (heat3d, poisson2d; see docs/models.md)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Fine-tune: start from the weights of this checkpoint (same model and hyper-parameters)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<dataset>-<model>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or progress lines."),
):
    """Train a model on a dataset folder; writes best.safetensors, last.safetensors, metrics.csv, loss.png."""
    from .preflight import check_device

    with user_errors():   # before torch
        if model is not None and model not in models.available():
            raise MeshError(f"--model: unknown model '{model}'; available: {', '.join(models.available())}.")
        if device is not None:
            check_device(device)
        flags = dict(data=data, model=model, inputs=inputs, targets=targets, epochs=epochs, batch_size=batch_size,
                     lr=lr, schedule=schedule, seed=seed, device=device, out=out, resume=resume or None,
                     prior=prior or None, init=init, progress=False if quiet else None)
        if config is None:        # a config file's keys are checked against the run's (with torch)
            from .training.config import merge_options
            from .training.options import check_given

            check_given(merge_options(None, model_option, **flags))
    if not quiet:
        say("loading torch ...")
    from .training import merge_options
    from .training import train as run_training

    with user_errors():
        options = merge_options(config, model_option, **flags)
        result = run_training(**options)
    if int(os.environ.get("RANK", "0")) != 0:       # under torchrun, rank 0 alone reports
        return
    metrics, measure = result.metrics, result.metrics["validation"]
    from .viz.plots import VALIDATION_MEASURES

    label = VALIDATION_MEASURES[measure]
    typer.echo(f"wrote {result.best} (epoch {metrics['best_epoch']}, validation {label} "
               f"{metrics[f'best_val_{measure}']:.4g}) and {result.last}")
    if metrics[f"test_{measure}"] is not None:
        typer.echo(f"  test {label} {metrics[f'test_{measure}']:.4g}")
    typer.echo(f"  {metrics['epochs']} epochs in {metrics['seconds']:.1f} s; curves in "
               f"{result.run / 'metrics.csv'} and {result.run / 'loss.png'}")


@command
def render(
    file: Path = typer.Argument(..., help="Mesh file with point fields (vtu, vtk, msh, ...)."),
    field: Optional[str] = typer.Option(None, "--field", "-f", help="Point field to colour by (default: the first)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG path (default: <stem>.png, or <stem>.compare.png, beside FILE)."),
    compare: bool = typer.Option(False, "--compare", help="Three panels: FIELD | FIELD_pred | error; needs the true FIELD in FILE or in --reference."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="With --compare: the mesh the prediction was made on, holding the true field (e.g. a solved sample)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing PNG not named *.pred.* or *.compare.png."),
    gif: Optional[Path] = typer.Option(None, "--gif", help="Time series (.pvd, .xdmf): write an animated GIF here; bare --gif, or a series without --mp4: <stem>.gif beside it."),
    mp4: Optional[Path] = typer.Option(None, "--mp4", help="Time series: write an MP4 here; bare --mp4: <stem>.mp4 beside it (needs imageio[ffmpeg])."),
    fps: float = typer.Option(10.0, "--fps", help="Frames per second of --gif / --mp4."),
):
    """Render a field to a PNG, off screen (3D volumes cut open to show the inside); a time series to a GIF or MP4."""
    from .io.series import is_series
    from .outputs import check_output

    if gif is not None and mp4 is not None:
        typer.echo("meshop: error: --gif and --mp4 both given; render writes one animation, give one of them.",
                   err=True)
        raise typer.Exit(2)
    if gif is not None or mp4 is not None or is_series(file):
        target = gif or mp4 or file.with_suffix(".gif")
        if str(target) == _BESIDE_SERIES:
            target = file.with_suffix(".mp4" if gif is None else ".gif")
        with user_errors():
            check_output(target, overwrite, source=file)
            _check_picture_path(target, (".gif", ".mp4"), "--mp4" if mp4 is not None and gif is None else "--gif")
            from .viz import animate

            path = animate(file, target, field, fps=fps, progress=True)
        typer.echo(f"wrote {path}")
        return
    if reference is not None and not compare:
        typer.echo("meshop: error: --reference is used by --compare; add --compare.", err=True)
        raise typer.Exit(2)
    target = out or file.with_name(file.stem + (".compare.png" if compare else ".png"))
    with user_errors():
        check_output(target, overwrite, source=file)
        _check_picture_path(target, (".png",), "-o")
        from .viz import render as render_png

        path = render_png(file, field, target, compare=compare, reference=reference)
    typer.echo(f"wrote {path}")


def _check_picture_path(target: Path, suffixes: tuple[str, ...], flag: str, command: str = "render") -> None:
    """Refuse a picture, animation or page path ``command`` cannot write: another format, a missing
    folder (the writers would make it)."""
    if target.suffix.lower() not in suffixes:
        raise MeshError(f"{target}: {command} writes {' or '.join(suffixes)} files, not "
                        f"'{target.suffix or target.name}'; give {flag} a {' or '.join(suffixes)} name.")
    check_parent(target)


@command
def view(
    file: Path = typer.Argument(..., help="Mesh file with point fields."),
    field: Optional[str] = typer.Option(None, "--field", "-f", help="Field shown first (default: the first)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained interactive page instead of opening a window (a series: default <stem>.html)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="With --html: replace an existing file."),
):
    """Interactive 3D view (drag the clip plane, n/p switch fields), or a browser page with --html;
    a time series (.pvd, .xdmf) always gets the page, with a time slider."""
    import os

    from . import viz
    from .io.series import is_series
    from .outputs import check_output

    if html is None and is_series(file):
        html = file.with_suffix(".html")
    if html is not None:
        with user_errors():
            check_output(html, overwrite, source=file)
            _check_picture_path(html, (".html", ".htm"), "--html", "view")
            path = viz.export_html(file, html, field=field)
        typer.echo(f"wrote {path}")
        return
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        typer.echo("meshop: error: no display for an interactive window; use `meshop view FILE --html OUT.html` "
                   "or `meshop render FILE`.", err=True)
        raise typer.Exit(2)
    with user_errors():
        viz.view(file, field=field)


def _resolution(text: str | None) -> int | tuple[int, int] | None:
    """``--resolution``: ``"3000"`` -> 3000, ``"1000:12000"`` -> (1000, 12000)."""
    if text is None:
        return None
    try:
        counts = tuple(int(part) for part in text.split(":"))
    except ValueError:
        counts = ()
    if len(counts) not in (1, 2):
        raise MeshError(f"--resolution {text!r}: expected a count like 3000 or a range LOW:HIGH like 1000:12000.")
    return counts[0] if len(counts) == 1 else counts


@command
def generate(
    problem: str = typer.Argument(..., help="poisson2d, darcy2d, heat3d, heat3d-transient, burgers2d, mpm2d or mpm3d."),
    n: int = typer.Option(..., "--n", help="Number of samples."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (sample_00000.vtu, ..., dataset.json)."),
    seed: int = typer.Option(0, help="Master seed; the same seed gives the same data bit for bit."),
    resolution: Optional[str] = typer.Option(None, help="Target nodes (poisson2d, heat3d), nodes per side (darcy2d) or particles (mpm2d, mpm3d) (default: the problem's); LOW:HIGH spreads the samples log-uniformly over a range, e.g. 1000:12000 for a model that works on coarse and fine meshes alike."),
    workers: int = typer.Option(1, help="Parallel worker processes."),
    scheduler: Optional[str] = typer.Option(None, help="Dask distributed instead of --workers: local:N (a LocalCluster of N processes) or a scheduler address like tcp://host:8786 (needs the dask extra)."),
    domain: Optional[str] = typer.Option(None, help="darcy2d only: square or random."),
    solver: Optional[str] = typer.Option(None, help="Linear solver: direct, cg, amg, or recycle (Krylov recycling; darcy2d on the square) (default: direct)."),
    material: Optional[str] = typer.Option(None, help="mpm2d/mpm3d only: elastic, fluid, sand, plasticine or mixed (default: mixed)."),
    frames: Optional[int] = typer.Option(None, help="Time series: mpm2d/mpm3d frames of 0.01 s after the initial one (default 100); heat3d-transient (101) and burgers2d (21) count the initial frame."),
    walls: Optional[str] = typer.Option(None, help="mpm2d/mpm3d only: sticky or slip box walls (default: slip)."),
    shapes: Optional[str] = typer.Option(None, help="mpm2d/mpm3d only: body shapes, mixed or one family (2D: disc, polygon; 3D: ball, part) (default: mixed)."),
    speed: Optional[float] = typer.Option(None, help="mpm2d/mpm3d only: standard deviation of the bodies' initial velocity per axis, m/s (default: 1)."),
    split: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty folder that is not a meshop dataset."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Generate a dataset of solved PDE samples with a dataset.json manifest."""
    from .data.generate import generate as generate_dataset

    options = {k: v for k, v in {"domain": domain, "solver": solver, "material": material, "frames": frames,
                                 "walls": walls, "shapes": shapes, "speed": speed}.items() if v is not None}
    with user_errors():
        try:
            fractions = tuple(float(f) for f in split.split(","))
        except ValueError:
            raise MeshError(f"--split {split!r}: expected three fractions like 0.8,0.1,0.1.") from None
        path = generate_dataset(problem, n, out, seed=seed, resolution=_resolution(resolution), workers=workers,
                                split=fractions, progress=not quiet, overwrite=overwrite, scheduler=scheduler,
                                **options)
    sizes = {part: len(files) for part, files in json.loads((path / "dataset.json").read_text())["split"].items()}
    typer.echo(f"wrote {n} {problem} samples and dataset.json to {path} "
               f"(train {sizes['train']}, val {sizes['val']}, test {sizes['test']})")
    if not sizes["val"] or not sizes["train"]:
        typer.echo("meshop: warning: `meshop train` needs at least one training and one validation sample; "
                   "generate more (--n 3 or more) or change --split.", err=True)


@command
def adapt(
    mesh: Path = typer.Argument(..., help="2D triangle mesh carrying the field (vtu, vtk, msh, ...)."),
    field: str = typer.Option(..., "--field", "-f", help="Point field whose fronts the nodes move to."),
    out: Path = typer.Option(..., "--out", "-o", help="Moved mesh file (same cells, new points, fields re-sampled)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="DMM checkpoint (default: the bundled one, if any)."),
    method: Optional[str] = typer.Option(None, "--method", help="dmm or classical (default: dmm with a checkpoint, else classical)."),
    picture: Optional[Path] = typer.Option(None, "--picture", help="Also write a PNG: original | moved mesh."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output, even the input mesh."),
):
    """Move the nodes of a 2D mesh towards a field's fronts (Monge-Ampere r-adaptation)."""
    from .adaptation import adapt as run_adapt
    from .io import read, write, writer_of
    from .outputs import check_output

    with user_errors():
        for target in (out, picture) if picture is not None else (out,):
            check_output(target, overwrite, source=mesh)
        writer_of(out)                                      # a format meshop writes, before the work
        if picture is not None:
            _check_picture_path(picture, (".png",), "--picture", "adapt")
        original = read(mesh)
        result = run_adapt(original, field, model=model, method=method)
        path = write(result.mesh, out, overwrite=True)     # checked above
        if picture is not None:
            from .viz import plot_adaptation

            try:
                plot_adaptation(original, result.mesh, picture, field=field)
            except BaseException:
                path.unlink(missing_ok=True)                # no moved mesh without the picture asked for
                raise
    for note in result.notes:
        typer.echo(f"meshop: {note}", err=True)
    if result.mesh.point_data["displacement"].any():
        typer.echo(f"wrote {path} ({result.mesh.n_points} nodes moved by the {result.method} mover in "
                   f"{result.seconds:.2f} s)")
    else:
        typer.echo(f"wrote {path} ({result.mesh.n_points} nodes, none moved)")
    for line in result.quality.lines():
        typer.echo(f"  {line}")
    if picture is not None:
        typer.echo(f"wrote {picture}")


def describe(mesh) -> dict:
    """The facts `meshop info --json` prints, as a JSON-ready dict.

    Keys: ``kind`` ("volume mesh", "surface mesh" or "point cloud"), ``n_points``, ``dim``,
    ``cells`` (type -> count), ``n_boundary_points``, ``n_unused_points`` (points no cell uses; 0
    for a point cloud), ``boundary_estimated`` (True for point
    clouds without a given mask), ``bounds`` ([min corner, max corner]), ``point_data``
    (name -> shape), ``fields`` (name -> shape, min, max; None for non-numeric data) and
    ``cell_data`` (name -> {cell type -> shape}) and ``field_data`` (name -> size, min, max: the
    whole-mesh arrays of VTK field data, e.g. a prediction's error estimate).
    """
    import numpy as np

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
        "n_unused_points": int(mesh.unreferenced.sum()),
        "boundary_estimated": bool(mesh.is_point_cloud and mesh.boundary_is_estimated),
        "bounds": mesh.bounds.tolist(),
        "point_data": {name: f["shape"] for name, f in fields.items()},
        "fields": fields,
        "cell_data": {name: {t: list(np.shape(v)) for t, v in by_type.items()}
                      for name, by_type in mesh.cell_data.items()},
        "field_data": {name: {"size": int(np.size(v)), "min": float(np.min(v)), "max": float(np.max(v))}
                       for name, v in mesh.field_data.items() if np.size(v)},
    }


#: what a bare ``--gif`` / ``--mp4`` stands for: the animation beside the series, ``<stem>.gif``
_BESIDE_SERIES = "."


def _bare_animation_flags(args: list[str]) -> list[str]:
    """``render x.pvd --gif`` with no path: click options take a value, so a ``--gif`` / ``--mp4``
    not followed by a path of that format is given the placeholder meaning "beside the series"."""
    args = list(args)
    for i in range(len(args) - 1, -1, -1):
        flag = args[i]
        if flag in ("--gif", "--mp4"):
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or not following.lower().endswith("." + flag[2:]):
                args.insert(i + 1, _BESIDE_SERIES)
    return args


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["render"]:
        args = _bare_animation_flags(args)
    app(args=args, prog_name="meshop")
