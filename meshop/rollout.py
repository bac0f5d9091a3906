"""Rollouts: a time-dependent checkpoint stepped from an initial state, frame after frame.

:func:`rollout` is what ``meshop predict part.vtu --steps N`` and ``meshop.predict(..., steps=N)``
run for a time stepper. The initial state comes from the mesh's state fields (or the first frame
of a reference series, whose later frames then give per-step errors and the inputs that vary
per frame); inputs the mesh lacks get the checkpoint's defaults, as in steady prediction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import MeshError
from .fields import as_columns, physical_length
from .graph import build_graph, precision_note
from .metrics import rollout_errors
from .progress import progress_bar
from .mesh import Mesh
from .trajectory import Trajectory


@dataclass
class RolloutPrediction:
    """What a rollout returns.

    Attributes:
        trajectory: the predicted series: frame 0 the initial state, then one frame per step,
            fields ``<state>_pred`` (and the constant inputs used as point fields).
        errors: state -> ``(steps + 1,)`` relative L2 error per frame against the reference
            series, when one was given (frame 0 is the given initial state: 0); particle models:
            ``position_mse``, the mean squared position error (m²) per frame.
        defaults: inputs (or initial states) that were missing and replaced by defaults.
        seconds: wall time; ``seconds_per_step``: the model's time per step alone.
        notes: what was done on the user's behalf, one sentence each.
        path, picture, error_plot: the series, the animation and the error-growth PNG written.
    """

    trajectory: Trajectory
    errors: dict[str, np.ndarray] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    notes: list[str] = field(default_factory=list)
    path: object = None
    picture: object = None
    error_plot: object = None


def rollout(checkpoint, source: Mesh | Trajectory, steps: int, *, every: int = 1, device: str = "cpu",
            progress: bool = False) -> RolloutPrediction:
    """Step ``checkpoint``'s model ``steps`` frames from the state held by ``source`` (particle
    models: :func:`~meshop.particle_rollout.rollout_particles`).

    Args:
        checkpoint: a loaded time-dependent :class:`~meshop.checkpoint.Checkpoint`.
        source: a mesh with the constant inputs and the initial state as point fields (missing
            ones take the checkpoint's defaults), or a reference series whose first frame is the
            initial state and whose next frames are compared with the prediction.
        steps: model steps (frames of the checkpoint's ``frame_dt``).
        every: keep every ``every``-th frame in the output series (``--dt`` = every × frame_dt).
        progress: a progress bar over steps (stderr).
    """
    spec, dynamics, model = checkpoint.fields, checkpoint.dynamics, checkpoint.model
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise MeshError(f"--steps must be a positive integer, got {steps!r}.")
    if dynamics.get("moving"):
        from .particle_rollout import rollout_particles

        return rollout_particles(checkpoint, source, steps, every=every, device=device, progress=progress)
    reference = source if isinstance(source, Trajectory) else None
    mesh = reference.frame(0) if reference is not None else source
    where = f"{mesh.source}: " if mesh.source else ""
    if reference is not None and reference.moving:
        where = f"{reference.source}: " if reference.source else where
        raise MeshError(f"{where}the nodes move from frame to frame (particles) and model '{checkpoint.model_name}' "
                        "steps fields on fixed nodes; roll particles out with a particle simulator (--model "
                        "mpm2d, or your own gns / giorom checkpoint).")
    if mesh.dim != model.dim:
        raise MeshError(f"{where}the mesh is {mesh.dim}D but the model was trained on {model.dim}D meshes.")
    started = time.perf_counter()
    mesh, defaults = _with_defaults(mesh, spec, dynamics)
    data = build_graph(mesh, spec, checkpoint.graph, with_targets=False, prepare=model.prepare,
                       mesh_graph=model.uses_mesh_graph)
    data = model.attach_mesh(data, mesh).to(device)
    varying = dynamics.get("varying_inputs", [])
    drive = _drive(mesh, reference, varying, steps)                    # name -> (steps, N, ...) physical
    length = physical_length(mesh)
    state = torch.as_tensor(np.hstack([spec.encode(n, spec.point_columns(mesh, n), length) for n in spec.targets]),
                            dtype=torch.float32, device=device)
    if varying:
        coded = np.stack([np.hstack([spec.encode(n, as_columns(drive[n][k]), length) for n in varying])
                          for k in range(steps)], axis=2)                # (N, V, steps)
        data.varying = torch.as_tensor(coded, dtype=torch.float32, device=device)
    state = _hold(data, state, mesh, spec, dynamics.get("held_boundary"), length)
    data = model.attach_window(data, mesh, state, steps, drive)
    bar = progress_bar(steps, "rollout", "step", progress)
    began = time.perf_counter()
    states = model.rollout(data, state, steps, callback=lambda k: bar.update(1)).cpu().numpy()
    model_seconds = time.perf_counter() - began
    bar.close()
    frames = np.concatenate([state.cpu().numpy()[None], states])[::every]            # (F, N, S)
    fields = _held_exactly(_decode_states(frames, spec, length), data, mesh, dynamics.get("held_boundary"))
    frame_dt = float(dynamics.get("frame_dt") or 1.0)
    times = np.arange(0, steps + 1, every) * frame_dt
    constant = {n: mesh.point_data[n] for n in spec.inputs if n in mesh.point_data}
    traj = Trajectory(Mesh(mesh.points, mesh.cells, constant, source=mesh.source), times,
                      {f"{n}_pred": v for n, v in fields.items()},
                      metadata={"dt": frame_dt * every, "state": [f"{n}_pred" for n in fields],
                                "model": checkpoint.model_name})
    result = RolloutPrediction(traj, defaults=defaults, seconds=time.perf_counter() - started,
                               seconds_per_step=model_seconds / steps)
    result.notes = [f"input '{n}' is missing; used the model's default {n} = {v:g}." for n, v in defaults.items()]
    result.notes += [note] if (note := precision_note(mesh)) else []
    if reference is not None:
        result.errors = _compare(reference, traj, fields, every)
    return result


def _hold(data, state, mesh: Mesh, spec, held: dict | None, length: float):
    """Give ``data`` the nodes whose state is known (``held_mask``, ``held_value``, normalized) from
    the checkpoint's ``held_boundary`` rule (:attr:`Problem.held_boundary
    <meshop.data.problems.Problem.held_boundary>`); the initial state with them imposed."""
    if not held:
        return state
    mask = mesh.boundary_mask.copy()
    if held.get("mask") is not None:
        mask &= np.asarray(mesh.point_data[held["mask"]]).reshape(-1) > 0.5
    data.held_mask = torch.as_tensor(mask, device=state.device)
    if held.get("value") is None:                                    # the boundary keeps its initial state
        data.held_value = state.clone()
        return state
    value = spec.encode(held["state"], as_columns(mesh.point_data[held["value"]]), length)
    data.held_value = torch.as_tensor(value, dtype=torch.float32, device=state.device)
    return torch.where(data.held_mask[:, None], data.held_value, state)


def _held_exactly(fields: dict[str, np.ndarray], data, mesh: Mesh, held: dict | None) -> dict[str, np.ndarray]:
    """``fields`` with the held nodes (:func:`_hold`) at their physical value exactly, not that value
    through float32 coding and back (a held 0 K came out as -3.7e-9)."""
    if not held or not hasattr(data, "held_mask"):
        return fields
    mask = data.held_mask.cpu().numpy()
    value = mesh.point_data[held["value"] if held.get("value") is not None else held["state"]]
    field = fields[held["state"]]                                        # (F, N) or (F, N, c)
    field[:, mask] = np.asarray(value, dtype=field.dtype).reshape(field.shape[1:])[mask]
    return fields


def _drive(mesh: Mesh, reference: Trajectory | None, names: list[str], steps: int) -> dict[str, np.ndarray]:
    """The inputs given per frame, ``(steps, N, ...)`` each: step k reads frame k of the reference
    series where it has the field (its last frame beyond its end), else the mesh's value throughout."""
    drive = {}
    for name in names:
        if reference is not None and name in reference.fields:
            frames = reference.fields[name]
            drive[name] = frames[np.minimum(np.arange(steps), len(frames) - 1)]
        else:
            drive[name] = np.broadcast_to(np.asarray(mesh.point_data[name]), (steps, *np.shape(mesh.point_data[name])))
    return drive


def _with_defaults(mesh: Mesh, spec, dynamics: dict) -> tuple[Mesh, dict]:
    """The mesh with every input and initial state present (defaults filled in)."""
    defaults = {**spec.input_defaults, **dynamics.get("initial_defaults", {})}
    missing = {}
    for name in [*spec.inputs, *spec.targets]:
        if name in mesh.point_data:
            continue
        if name not in defaults:
            kind = "initial state" if name in spec.targets else "input"
            raise MeshError(f"{mesh.source or 'mesh'}: the {kind} point field '{name}' is missing and the "
                            f"model has no default for it; add it to the mesh.")
        missing[name] = float(defaults[name])
    filled = {n: np.full(mesh.n_points, v) for n, v in missing.items()}
    return (mesh.with_point_data(**filled) if filled else mesh), missing


def _decode_states(frames: np.ndarray, spec, length: float) -> dict[str, np.ndarray]:
    """Normalized ``(F, N, S)`` states -> physical fields by name (``(F, N)`` or ``(F, N, c)``)."""
    fields, column = {}, 0
    for name in spec.targets:
        width = len(spec.mean[name])
        values = frames[:, :, column: column + width] * np.asarray(spec.std[name]) + np.asarray(spec.mean[name])
        values = values / length ** spec.length_powers.get(name, 0)
        fields[name] = values[:, :, 0] if width == 1 else values
        column += width
    return fields


def _compare(reference: Trajectory, traj: Trajectory, fields: dict, every: int) -> dict[str, np.ndarray]:
    count = min(traj.n_frames, (reference.n_frames - 1) // every + 1)
    if count < 2:       # frame 0 is given: a one-frame reference has no error to measure
        return {}
    return {name: rollout_errors(values[:count], reference.fields[name][::every][:count])
            for name, values in fields.items() if name in reference.fields}
