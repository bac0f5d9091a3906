"""Rollouts of a learned particle simulator (GNS, GIOROM): positions stepped frame after frame.

:func:`rollout_particles` is what ``meshop predict scene.pvd --steps N`` runs for a checkpoint
whose dynamics say the nodes move. The initial state is the first ``history + 1`` frames of a
particle series (whose later frames then give the per-step position error), or a point cloud
with a ``velocity`` point field (m/s), whose past frames are taken at that constant velocity.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch_geometric.data import Data

from .errors import MeshError
from .mesh import Mesh
from .progress import progress_bar
from .trajectory import Trajectory


def rollout_particles(checkpoint, source: Mesh | Trajectory, steps: int, *, every: int = 1,
                      device: str = "cpu", progress: bool = False):
    """Step ``checkpoint``'s particle model ``steps`` frames; a :class:`~meshop.rollout.RolloutPrediction`
    whose trajectory has the positions and ``velocity_pred`` (m/s) of every kept frame and, with a
    reference series, ``errors["position_mse"]`` (m², per kept frame; frame 0 is given: 0)."""
    from .rollout import RolloutPrediction

    model, dynamics = checkpoint.model, checkpoint.dynamics
    frame_dt = float(dynamics.get("frame_dt") or 1.0)
    started = time.perf_counter()
    history, material, notes = initial_frames(source, model.history, frame_dt)
    where = f"{source.source}: " if source.source else ""
    if history.shape[2] != model.dim:
        raise MeshError(f"{where}the particles are {history.shape[2]}D but the model was trained in {model.dim}D.")
    if material.min() < 0 or material.max() >= model.in_channels:
        raise MeshError(f"{where}material ids must lie in 0..{model.in_channels - 1} (the model's materials "
                        f"{dynamics.get('materials', {})}); found {int(material.min())}..{int(material.max())}.")
    _check_in_box(history, model.bounds.detach().cpu().numpy().astype(np.float64), frame_dt, where)
    data = Data(material=torch.as_tensor(material, dtype=torch.long, device=device), num_nodes=len(material))
    positions = torch.as_tensor(history, dtype=torch.float32, device=device).transpose(0, 1)
    bar = progress_bar(steps, "rollout", "step", progress)
    began = time.perf_counter()
    frames = model.rollout(data, positions, steps, callback=lambda k: bar.update(1)).cpu().numpy()
    model_seconds = time.perf_counter() - began
    bar.close()
    moved = np.concatenate([history[-2:], frames.astype(np.float64)])                # (steps + 2, N, d)
    velocity = np.diff(moved, axis=0) / frame_dt                                     # (steps + 1, N, d)
    kept = np.arange(0, steps + 1, every)
    traj = Trajectory(Mesh(moved[1], None, {"material": material}, source=source.source), kept * frame_dt,
                      {"velocity_pred": velocity[kept]}, moved[1:][kept],
                      metadata={"dt": frame_dt * every, "state": ["position", "velocity_pred"],
                                "model": checkpoint.model_name, "bounds": dynamics.get("bounds")})
    result = RolloutPrediction(traj, seconds=time.perf_counter() - started, seconds_per_step=model_seconds / steps,
                               notes=notes)
    if isinstance(source, Trajectory):
        reference = source.positions[model.history:][::every]
        count = min(len(reference), len(kept))
        if count > 1:       # frame 0 is given; a series of just the initial frames gives no error to measure
            result.errors = {"position_mse": ((traj.positions[:count] - reference[:count]) ** 2).sum(axis=2).mean(axis=1)}
    return result


def _check_in_box(history: np.ndarray, bounds: np.ndarray, frame_dt: float, where: str) -> None:
    """Refuse particles the model cannot simulate: outside its box ``bounds (d, 2)`` (m) at the
    first frame (its rollout would put them on the wall in one step), or moving more than the box's
    width in one frame (a velocity not in m/s, or corrupt)."""
    extent = float(np.min(bounds[:, 1] - bounds[:, 0]))
    now = history[-1]
    outside = ((now < bounds[:, 0] - 1e-6 * extent) | (now > bounds[:, 1] + 1e-6 * extent)).any(axis=1)
    if outside.any():
        first = int(np.argmax(outside))
        box = " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in bounds)
        at = ", ".join(f"{c:.6g}" for c in now[first])
        raise MeshError(f"{where}{int(outside.sum())} particle(s) lie outside the model's box {box} (m), the only "
                        f"place it simulates (first: particle {first} at ({at})); move or scale the scene into it.")
    step = float(np.linalg.norm(history[-1] - history[-2], axis=1).max()) if len(history) > 1 else 0.0
    if step > extent:
        raise MeshError(f"{where}particles move up to {step:.3g} m in one frame of {frame_dt:g} s ({step / frame_dt:.3g} "
                        f"m/s), more than the model's whole box ({extent:g} m); give 'velocity' in m/s.")


def initial_frames(source: Mesh | Trajectory, history: int, frame_dt: float):
    """``(history + 1, N, d)`` initial positions (m), ``(N,)`` material ids and notes, from a
    particle series or a point cloud with a ``velocity`` point field (m/s)."""
    where = f"{source.source}: " if source.source else ""
    mesh = source.mesh if isinstance(source, Trajectory) else source
    if "material" not in mesh.point_data:
        raise MeshError(f"{where}the particles need a 'material' point field (integer ids) for this model.")
    material = np.asarray(mesh.point_data["material"])
    if material.ndim > 1 and material.shape[1:] != (1,):
        raise MeshError(f"{where}the 'material' point field has shape {material.shape}; expected one integer "
                        f"id per particle, ({mesh.n_points},).")
    material = material.reshape(-1)
    if not np.issubdtype(material.dtype, np.integer):
        fractional = material != np.round(material)
        if fractional.any():
            first = int(np.argmax(fractional))
            raise MeshError(f"{where}material ids must be integers; particle {first} has {float(material[first])!r}.")
    material = material.astype(np.int64)
    if isinstance(source, Trajectory):
        if not source.moving or source.n_frames < history + 1:
            raise MeshError(f"{where}a particle rollout starts from {history + 1} frames of moving particles; "
                            f"the series has {source.n_frames} frame(s){'' if source.moving else ' of fixed nodes'}.")
        return source.positions[: history + 1], material, []
    if "velocity" not in mesh.point_data:
        raise MeshError(f"{where}a particle rollout from a point cloud needs a 'velocity' point field (m/s), "
                        f"or start from a series of {history + 1} frames.")
    velocity = np.asarray(mesh.point_data["velocity"], dtype=np.float64).reshape(mesh.n_points, -1)
    if velocity.shape[1] == 3 and mesh.dim == 2 and not velocity[:, 2].any():
        velocity = velocity[:, :2]          # a planar cloud's vectors as VTK stores them: z = 0
    if velocity.shape[1] != mesh.dim:
        raise MeshError(f"{where}the 'velocity' point field has {velocity.shape[1]} component(s) per particle; "
                        f"expected {mesh.dim} (m/s along each axis of the {mesh.dim}D particles).")
    past = mesh.points[None] - np.arange(history, -1, -1)[:, None, None] * velocity[None] * frame_dt
    return past, material, [f"the {history} frames before the first were taken at the given constant velocity."]
