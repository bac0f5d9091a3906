"""Predictor: checkpoint + mesh -> predicted fields, whole or sub-domain by sub-domain."""

from __future__ import annotations

import importlib
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import Checkpoint, CheckpointError, load
from .errors import MeshError, as_path
from .estimate import check_tolerance, estimator_for, refinement_note
from .graph import decode, feature_count, mesh_edges, model_input, node_data, node_subset, precision_note
from .mesh import Mesh
from .metrics import relative_l2_np
from .outputs import check_output, is_meshop_result, picture_path, prediction_output
from .preflight import (DEFAULT_MODEL, bundled_models, check_torch_device, checkpoint_path, default_time_model,
                        dimension_refusal, model_label, point_cloud_refusal)
from .trajectory import Trajectory

#: sub-domain size of models with a finite receptive field when ``max_nodes`` is not given
DEFAULT_MAX_NODES = 200_000
#: what predict writes for a target ``t``: point fields ``t + suffix`` (the prediction, its error
#: against the truth, its estimated error, the refined answer) and field data ``t + suffix``
PREDICTION_POINT_FIELDS = ("_pred", "_error", "_estimated_error", "_refined")
PREDICTION_FIELD_DATA = ("_error_estimate",)

__all__ = ["DEFAULT_MODEL", "Prediction", "Predictor", "bundled_models", "predict", "resolve_model"]


def resolve_model(model: str | Path | Checkpoint | None, device: str = "cpu") -> Checkpoint:
    """A loaded checkpoint from a bundled name, a path, or an already loaded :class:`Checkpoint`."""
    if isinstance(model, Checkpoint):
        return model
    return load(checkpoint_path(model), device=device)


@dataclass
class Prediction:
    """What :meth:`Predictor.predict` returns.

    Attributes:
        mesh: the input mesh with ``<target>_pred`` (and ``<target>_error`` when the truth is
            known) point fields.
        defaults: inputs that were missing and replaced by the checkpoint's defaults.
        metrics: target -> {"relative_l2", "max_error"} when the mesh held the truth.
        n_parts: number of sub-domains used (1 = unpartitioned).
        seconds: wall time of the prediction (features, graph, model).
        timings: that time by stage, in seconds: ``features`` (node features: distance to
            boundary, normals, coded inputs), ``model`` (forward passes and decoding) and
            ``graph``, the rest (the mesh graph, the model's ``prepare``: hierarchy levels, ...,
            and sub-domains when partitioned).
        notes: what was done on the user's behalf, one sentence each (meshing, defaults).
        estimate: target -> :class:`~meshop.estimate.ErrorEstimate` of the prediction, for
            models of a PDE meshop knows (:data:`meshop.estimate.ESTIMATORS`).
        refinement: target -> :class:`~meshop.estimate.Refinement` when asked to refine.
        path, picture: the files written, when any.
    """

    mesh: Mesh
    defaults: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    n_parts: int = 1
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    estimate: dict = field(default_factory=dict)
    refinement: dict = field(default_factory=dict)
    path: Path | None = None
    picture: Path | None = None


def _load_pipeline(checkpoint: Checkpoint) -> None:
    """Load the code a prediction with ``checkpoint`` runs: the modules imported on first use (the
    boundary distances' libigl, the neighbour search, the coarse prior's scipy.ndimage: about 0.5 s
    from a cold disk) and the compiled kernel (built once per machine, then loaded), so that loading
    a model pays for them once and not its first prediction."""
    from .nn import compiled

    modules = ["igl", "meshop.geometry.neighbors"] + (["meshop.priors"] if checkpoint.fields.prior else [])
    for module in modules:
        importlib.import_module(module)
    compiled.available()


class Predictor:
    """Apply a trained model to meshes.

    Args:
        model: bundled model name, checkpoint path, or a loaded :class:`Checkpoint`; None for the
            bundled default (steady heat conduction in 3D parts).
        device: ``"cpu"`` or ``"cuda"``.
        max_nodes: with a model of finite receptive field (``gno``), meshes with more nodes are
            predicted sub-domain by sub-domain (K-D tree decomposition with halos covering the
            receptive field); the result equals the unpartitioned one. Models with a global
            reach (``mgno``, ``beno``, ``amg``: the default) run whole and ignore it, with a
            note when it was given; without autograd every kernel layer bounds its memory by
            summing messages in edge chunks (:class:`meshop.nn.Edges`). None: 200,000.
    """

    def __init__(self, model=None, device: str = "cpu", max_nodes: int | None = None):
        check_torch_device(device)
        self.checkpoint = resolve_model(model, device)
        self.device = device
        self.label = model_label(model, self.checkpoint.model_name)
        if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer))):
            raise MeshError(f"--max-nodes must be an integer, got {max_nodes!r}.")
        self.max_nodes_given = max_nodes is not None
        self.max_nodes = DEFAULT_MAX_NODES if max_nodes is None else max_nodes
        if self.max_nodes < 2:
            raise MeshError(f"--max-nodes {self.max_nodes}: expected at least 2 nodes per sub-domain.")
        ckpt = self.checkpoint
        if getattr(ckpt.model, "mesh_mover", False):
            name = model if isinstance(model, (str, Path)) else ckpt.path or ckpt.model_name
            raise CheckpointError(f"{name}: a '{ckpt.model_name}' checkpoint, a mesh mover: it moves the nodes of "
                                  "a 2D mesh and predicts no fields; use `meshop adapt MESH --field FIELD "
                                  f"--model {name}` (meshop.adapt in Python).")
        expected = feature_count(ckpt.fields, ckpt.model.dim)
        if ckpt.model.in_channels != expected and not ckpt.dynamics.get("moving"):   # particles: material ids
            raise CheckpointError(
                f"{ckpt.path or 'checkpoint'}: the model reads {ckpt.model.in_channels} node features but this "
                f"meshop builds {expected} for its fields (written by meshop {ckpt.meshop_version or '?'}); re-train it.")
        _load_pipeline(ckpt)

    @property
    def spec(self):
        return self.checkpoint.fields

    @torch.no_grad()
    def predict(self, mesh: Mesh, *, estimate: bool = True, refine: float | None = None) -> Prediction:
        """Predict the checkpoint's targets on ``mesh`` (a volume mesh of the model's dimension).

        ``estimate``: also estimate the prediction's error from its finite-element residual
        (models of a known PDE); ``refine``: continue it to this relative FEM residual
        (``<target>_refined``). Neither counts in ``seconds``.
        """
        ckpt, spec = self.checkpoint, self.checkpoint.fields
        where = f"{mesh.source}: " if mesh.source else ""
        if refine is not None:
            check_tolerance(refine)
        if mesh.is_point_cloud:
            raise MeshError(f"{where}{point_cloud_refusal(mesh)}")
        if mesh.is_surface:
            raise MeshError(f"{where}Predictor.predict needs a volume mesh; meshop.predict (and the "
                            "command line) fill closed surfaces with tetrahedra first.")
        if reason := dimension_refusal(mesh, self.label, ckpt.model.dim):
            raise MeshError(f"{where}{reason}")
        if mesh.unreferenced.any():
            return self._predict_referenced(mesh, estimate, refine)
        timings = dict.fromkeys(("features", "graph", "model"), 0.0)
        started = time.perf_counter()
        with _timed(timings, "features"):
            data, defaulted = node_data(mesh, spec, with_targets=False)
        edges = mesh_edges(data, ckpt.graph, ckpt.model.uses_mesh_graph)
        hops = ckpt.model.receptive_hops
        if mesh.n_points > self.max_nodes and hops is not None:
            out, n_parts = self._partitioned(data, edges, hops, timings)
        else:
            out, n_parts = self._run(data, edges, timings), 1
        with _timed(timings, "model"):
            physical = decode(out, data, spec).numpy()
        seconds = time.perf_counter() - started
        timings["graph"] = seconds - timings["features"] - timings["model"]   # graphs, prepare, parts
        result = self._result(mesh, physical, {n: spec.input_defaults[n] for n in defaulted}, n_parts, seconds)
        result.timings = timings
        for note in (precision_note(mesh), self._interior_note(mesh), self._coarse_note(mesh)):
            if note:
                result.notes.append(note)
        if self.max_nodes_given and hops is None:
            result.notes.append(f"--max-nodes has no effect with this {ckpt.model_name} model: it reaches across the "
                                "whole part, so it runs whole (its layers sum messages in edge chunks to bound "
                                "memory); only gno models are split into sub-domains.")
        if estimate or refine is not None:
            self._estimate(result, refine)
        return result

    def _coarse_note(self, mesh: Mesh) -> str | None:
        """A note when ``mesh`` has fewer nodes than any mesh the model was trained on (the
        checkpoint's data card): its answers degrade there (the bundled default: estimated 67 % at
        459 nodes, 6 % at 1,219; its training meshes had 935-18,335 nodes)."""
        fewest = (self.checkpoint.data.get("n_points") or {}).get("min")
        if not isinstance(fewest, int) or mesh.n_points >= fewest:
            return None
        return (f"note: the mesh has {mesh.n_points} nodes, fewer than any of the model's training meshes "
                f"({fewest:,}-{self.checkpoint.data['n_points'].get('max', fewest):,} nodes); expect a larger "
                "error (the estimate below says how large): mesh the part finer (--mesh-size) for a better answer.")

    def _interior_note(self, mesh: Mesh) -> str | None:
        """A warning when no node of ``mesh`` is inside the part: the mesh does not resolve its
        thickness (a thin plate meshed coarser than it is thick), so a model sees nothing but
        surface nodes, and those of a Dirichlet target carry the boundary values alone; the finite-
        element answer of that mesh is the same, so the error estimate cannot tell (it says 0)."""
        if (~mesh.boundary_mask).any():
            return None
        thin = float(np.ptp(mesh.points, axis=0).min())
        held = "; ".join(f"{t}_pred is just {self.spec.dirichlet[t]} there" for t in self.spec.targets
                         if t in self.spec.dirichlet)
        return (f"warning: every one of the {mesh.n_points} nodes is on the part's surface, none inside"
                f"{', so ' + held if held else ''}: the mesh does not resolve the part's thickness (the thinnest "
                f"side of its bounding box is {thin:.3g}); mesh it finer through the thickness (for a surface, "
                "--mesh-size below that).")

    def _estimate(self, result: Prediction, refine: float | None) -> None:
        """Add the error estimate (and refinement) of ``result``'s prediction to it, in place."""
        problem = self.checkpoint.data.get("problem")
        estimator = estimator_for(problem)
        mesh = result.mesh
        reason = estimator.unsupported(mesh, self.spec.targets) if estimator else \
            f"meshop knows no PDE for problem '{problem or 'unknown'}'"
        if reason:
            result.notes.append(f"no error estimate: {reason}.")
            return
        system = estimator.system(mesh, {n: self.spec.input_array(mesh, n)[0] for n in self.spec.inputs})
        predicted = mesh.point_data[f"{estimator.target}_pred"]
        found = system.estimate(predicted)
        result.estimate[estimator.target] = found
        fields = {f"{estimator.target}_estimated_error": found.error}
        if refine is not None:
            # from the prediction corrected by the estimate: 2-3 fewer iterations than from the
            # prediction alone, whose rough nodal error costs as many as a start from zero
            refined = result.refinement[estimator.target] = system.refine(predicted - found.error, refine)
            fields[f"{estimator.target}_refined"] = refined.values
            result.notes.append(refinement_note(estimator.target, refined))
        result.mesh = mesh.with_point_data(**fields).with_field_data(
            **{f"{estimator.target}_error_estimate": found.relative})

    def _predict_referenced(self, mesh: Mesh, estimate: bool, refine: float | None) -> Prediction:
        """Points no cell uses are not part of the domain: their distance to the boundary, their
        normal and their place in the graphs would be meaningless and would shift every other
        node's features. They are left out of the prediction and of the output mesh."""
        unused = mesh.unreferenced
        first = int(np.argmax(unused))
        result = self.predict(mesh.point_subset(~unused), estimate=estimate, refine=refine)
        where = ", ".join(f"{c:.6g}" for c in mesh.points[first])
        result.notes.insert(0, f"left {int(unused.sum())} point(s) that no cell uses (first: point {first} at "
                               f"({where})) out of the prediction and of the output mesh.")
        return result

    def _run(self, data, edges: torch.Tensor, timings: dict[str, float]) -> torch.Tensor:
        data = model_input(data, edges, self.checkpoint.model.prepare).to(self.device)
        with _timed(timings, "model"):
            return self.checkpoint.model(data).cpu()

    def _partitioned(self, data, edges: torch.Tensor, hops: int, timings: dict[str, float]
                     ) -> tuple[torch.Tensor, int]:
        """Sub-domain by sub-domain: each core is predicted with a halo of every node within
        ``hops`` graph hops (``hops`` times the longest edge), so core outputs are exact."""
        from .geometry.kdtree import decompose

        source, target = edges
        longest = float((data.pos[source] - data.pos[target]).norm(dim=1).max()) if edges.numel() else 0.0
        parts = decompose(data.pos.double().numpy(), max_points=self.max_nodes // 2,
                          halo=hops * longest * (1 + 1e-6) + 1e-12, criterion="median")
        out = torch.empty(data.num_nodes, self.checkpoint.model.out_channels)
        local = torch.full((data.num_nodes,), -1, dtype=torch.long)
        for part in parts:
            nodes = torch.as_tensor(np.concatenate([part.core, part.halo]), dtype=torch.long)
            local[nodes] = torch.arange(len(nodes))
            keep = (local[source] >= 0) & (local[target] >= 0)
            sub = node_subset(data, nodes)
            out[torch.as_tensor(part.core)] = self._run(sub, local[edges[:, keep]], timings)[: len(part.core)]
            local[nodes] = -1
        return out, len(parts)

    def _result(self, mesh: Mesh, physical: np.ndarray, defaults: dict, n_parts: int, seconds: float) -> Prediction:
        fields, metrics, column = {}, {}, 0
        for target in self.spec.targets:
            width = len(self.spec.mean[target])
            pred = physical[:, column: column + width]
            column += width
            pred = pred[:, 0] if width == 1 else pred
            fields[f"{target}_pred"] = pred
            if target in mesh.point_data:
                truth = self.spec.point_columns(mesh, target).reshape(pred.shape)
                error = pred - truth
                fields[f"{target}_error"] = error
                metrics[target] = {
                    "relative_l2": relative_l2_np(pred, truth),
                    "max_error": float(np.abs(error).max()),
                }
        notes = [f"input '{name}' is missing; used the model's default {name} = {value:g}."
                 for name, value in defaults.items()]
        if n_parts > 1:
            notes.append(f"predicted in {n_parts} sub-domains ({mesh.n_points} nodes).")
        mesh, earlier = _without_earlier_prediction(mesh, self.spec)
        if earlier:
            notes.append(f"the mesh holds an earlier prediction: left its {', '.join(earlier)} out of this one.")
        return Prediction(mesh.with_point_data(**fields), defaults, metrics, n_parts, seconds, notes=notes)


def _without_earlier_prediction(mesh: Mesh, spec) -> tuple[Mesh, list[str]]:
    """``mesh`` without what an earlier prediction wrote into it (a ``.pred.vtu`` given to predict
    again), and those names: for the targets of ``spec`` and every ``X`` of an ``X_pred`` field, the
    point fields and field data of :data:`PREDICTION_POINT_FIELDS` and :data:`PREDICTION_FIELD_DATA`.
    They described the earlier prediction (its estimate, its refinement, another model's target)
    and would read as this one's; the new prediction writes its own. Other fields (the truth, the
    model's inputs, the user's own data) are kept."""
    predicted = [*spec.targets, *(n[: -len("_pred")] for n in mesh.point_data if n.endswith("_pred"))]
    stale = [n for n in dict.fromkeys(t + s for t in predicted for s in PREDICTION_POINT_FIELDS)
             if n in mesh.point_data and n not in spec.inputs]
    stale += [n for n in dict.fromkeys(t + s for t in predicted for s in PREDICTION_FIELD_DATA)
              if n in mesh.field_data]
    return (mesh.without(*stale) if stale else mesh), stale


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    """Add the wall time of the ``with`` block to ``timings[stage]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] += time.perf_counter() - started


def predict(mesh, model=None, *, out=None, device: str = "cpu", mesh_size: float | None = None,
            max_nodes: int | None = None, write: bool = True, render: bool = False, overwrite: bool = False,
            progress: Callable[[str], None] | None = None, steps: int | None = None, dt: float | None = None,
            estimate: bool = True, refine: float | None = None):
    """Predict on a mesh or mesh file and (by default) write the result beside it.

    The output defaults to ``part.pred.vtu`` for ``part.vtu`` and ``bracket.stl.pred.vtu`` for
    ``bracket.stl`` (see :mod:`meshop.outputs`); an existing file not named ``*.pred.*``, or the
    input itself, is replaced only with ``overwrite=True``. A closed CAD surface (stl, obj, ply,
    ...) is first filled with tetrahedra by gmsh at ``mesh_size`` (default: 1/30 of the
    bounding-box diagonal). ``render=True`` also writes a picture beside the output (``.png``
    instead of ``.vtu``): truth | prediction | error when the mesh held the truth, else the
    prediction alone; without it, a picture left there by an earlier run is removed (it would
    show another prediction). ``progress`` receives a short line before each slow step.
    ``estimate``, ``refine``: see :meth:`Predictor.predict`.

    A time-dependent model (default with ``steps``: the bundled ``heat3d-transient`` on a mesh,
    ``mpm2d`` on 2D particles) is rolled out ``steps`` frames from the state the mesh holds (or from
    the first frame of a ``.pvd`` / ``.xdmf`` series, whose later frames then give per-step
    errors) and returns a :class:`~meshop.rollout.RolloutPrediction` whose trajectory is written
    to ``<stem>.pred.pvd``; ``dt`` (a multiple of the model's frame step) thins the saved frames,
    ``render=True`` writes an animated GIF (and the error growth against a reference series).
    """
    from . import io
    from .io.series import is_series
    from .meshing import default_mesh_size, tetrahedralize

    if not isinstance(mesh, (Mesh, Trajectory, str, os.PathLike)):
        raise TypeError(f"predict needs a meshop.Mesh, a Trajectory or a mesh file path, got {type(mesh).__name__} "
                        "(build a mesh with meshop.Mesh(points, cells)).")
    if out is not None:
        as_path(out, "out")
    for name, value in (("mesh_size", mesh_size), ("dt", dt), ("refine", refine)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
            raise MeshError(f"--{name.replace('_', '-')} must be a number, got {value!r}.")
    say = progress or (lambda _: None)
    source = mesh if isinstance(mesh, (Mesh, Trajectory)) else (
        io.read_series(mesh) if is_series(mesh) else io.read(mesh))
    if model is None and (steps is not None or isinstance(source, Trajectory)):
        model = default_time_model(source)
    say(f"loading model {_model_label(model)} ...")
    predictor = Predictor(model, device=device, max_nodes=max_nodes)
    if predictor.checkpoint.time_dependent or steps is not None or isinstance(source, Trajectory):
        return _predict_series(predictor, source, steps, dt, out if write else None, write, render, overwrite, say,
                               label=_model_label(model))
    if write:
        out = prediction_output(source.source, out, render=render, overwrite=overwrite)
    volume = source
    if source.is_surface:
        say(f"filling the closed surface with tetrahedra (gmsh, {source.n_points} surface nodes) ...")
        volume = tetrahedralize(source, mesh_size)
    say(f"predicting on {volume.n_points} nodes ...")
    result = predictor.predict(volume, estimate=estimate, refine=refine)
    if volume is not source:
        size = mesh_size or default_mesh_size(source)
        result.notes.insert(0, f"filled the closed surface with {volume.n_points} nodes of tetrahedra "
                               f"(gmsh, mesh size {size:.4g}).")
    if write:
        result.path = io.write(result.mesh, out, overwrite=True)   # checked by prediction_output
        picture = picture_path(Path(result.path))
        if render:
            picture.unlink(missing_ok=True)    # an earlier prediction's: not left beside this one
            say(f"rendering {picture} ...")    # when drawing fails or is interrupted
            result.picture = _render(result, picture)
        elif picture.exists() and is_meshop_result(picture):
            picture.unlink()
            result.notes.append(f"removed {picture}, the picture of an earlier prediction (--render draws a new one).")
    return result


def _predict_series(predictor: Predictor, source, steps, dt, out, write: bool, render: bool, overwrite: bool, say,
                    label: str | None = None):
    """Roll a time-dependent checkpoint out (see :func:`predict`); write the series and a GIF."""
    from . import io
    from .rollout import rollout

    ckpt = predictor.checkpoint
    # the model as the user named it, and its architecture when that differs ("heat3d" is an mgno)
    named = f"'{label}'" + (f" (a '{ckpt.model_name}')" if label and label != ckpt.model_name else "") \
        if label else f"'{ckpt.model_name}'"
    if not ckpt.time_dependent:
        raise MeshError(f"model {named} is steady: it predicts one state, not a series; "
                        "drop --steps, or use a time-dependent model (e.g. --model heat3d-transient).")
    if steps is None:
        raise MeshError(f"model {named} steps a state in time; say how far with --steps N.")
    frame_dt = float(ckpt.dynamics.get("frame_dt") or 1.0)
    every = 1
    if dt is not None:
        if not np.isfinite(dt) or dt <= 0:
            raise MeshError(f"--dt {dt:g}: expected a positive time between saved frames, a multiple of the "
                            f"model's frame step {frame_dt:g}.")
        every = int(round(dt / frame_dt))
        if every < 1 or not np.isclose(every * frame_dt, dt, rtol=1e-6):
            raise MeshError(f"--dt {dt:g} is not a multiple of the model's frame step {frame_dt:g}.")
    if write:
        out = prediction_output(source.source, out, render=render, overwrite=overwrite, series=True)
        if render and isinstance(source, Trajectory) and source.n_frames > 1:   # may plot its error growth
            check_output(out.with_suffix(".errors.png"), overwrite, source=source.source)
    say(f"rolling out {steps} steps on {source.n_points} nodes ...")
    result = rollout(ckpt, source, steps, every=every, device=predictor.device, progress=True)
    if write:
        result.path = io.write_series(result.trajectory, out)
        if render:
            from .viz import animate, plot_rollout_errors

            errors_png = out.with_suffix(".errors.png")
            out.with_suffix(".gif").unlink(missing_ok=True)   # an earlier rollout's pictures: not left
            if errors_png.exists() and is_meshop_result(errors_png):   # beside this one if drawing fails
                errors_png.unlink()
            say(f"rendering {out.with_suffix('.gif')} ...")
            result.picture = animate(result.trajectory, out.with_suffix(".gif"))
            if result.errors:
                result.error_plot = plot_rollout_errors(result.errors, out.with_suffix(".errors.png"),
                                                        frame_dt=frame_dt * every)
    return result


def _model_label(model) -> str:
    if isinstance(model, Checkpoint):
        return model.model_name
    return DEFAULT_MODEL if model is None else str(model)


def _render(result: Prediction, out_png: Path) -> Path:
    from . import viz

    target = next(name[: -len("_pred")] for name in result.mesh.point_data if name.endswith("_pred"))
    if target in result.metrics:
        return viz.render_comparison(result.mesh, target, out_png)
    return viz.render(result.mesh, f"{target}_pred", out_png)
