"""Particle trajectory datasets (``time.moving`` in the manifest, e.g. ``meshop generate mpm2d``)
for the learned simulators :class:`~meshop.models.gns.GNS` and :class:`~meshop.models.giorom.GIOROM`:
the training windows, the motion statistics and the run's set-up.

A window is one start frame ``t >= history`` of one trajectory: the positions of frames
``t - history .. t + unroll`` (the model's inputs and the next ``unroll`` frames, whose
accelerations :math:`x_{t+1} - 2 x_t + x_{t-1}` are the targets) and the material ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from .. import models
from ..errors import MeshError
from ..trajectory import Trajectory
from .data import SPLITS
from .steps import noisy_one_step, validation
from .windows import TrajectoryData, check_given_fields, load_trajectory_data

INTEGRATOR = "semi-implicit Euler, one frame per step: v += a; x += v (m, frames)"


@dataclass
class ParticleData(TrajectoryData):
    """Trajectory data with the checkpoint's dynamics section (statistics, box, radius)."""

    dynamics: dict | None = None


def is_particle_dataset(root) -> bool:
    """True when the folder's manifest says its nodes move (``time.moving``)."""
    from ..data.dataset import read_manifest

    return bool(read_manifest(root).get("time", {}).get("moving"))


def particle_windows(traj: Trajectory, history: int, every: int = 1, unroll: int = 1) -> list[Data]:
    """Training samples of one trajectory: ``positions (N, history + 1 + unroll, d)`` float32 (m;
    views of one tensor) and ``material (N,)`` for start frames ``history, history + every, ...``
    (the last one leaving ``unroll`` frames after it)."""
    positions = torch.as_tensor(traj.positions, dtype=torch.float32)                 # (T, N, d)
    material = torch.as_tensor(np.asarray(traj.mesh.point_data["material"]), dtype=torch.long)
    return [Data(positions=positions[t - history: t + 1 + unroll].transpose(0, 1), material=material,
                 num_nodes=traj.n_points) for t in range(history, traj.n_frames - unroll, every)]


def motion_statistics(trajectories: list[Trajectory], noise: float = 0.0) -> dict:
    """Mean and std per axis of frame velocities (m/frame) and accelerations (m/frame²) over all
    particles and frames; the stds are widened by the input noise as in GNS."""
    velocity = [np.diff(t.positions, axis=0).reshape(-1, t.dim) for t in trajectories]
    acceleration = [np.diff(t.positions, n=2, axis=0).reshape(-1, t.dim) for t in trajectories]
    velocity, acceleration = np.concatenate(velocity), np.concatenate(acceleration)
    if not len(acceleration):
        raise MeshError("particle trajectories need at least 3 frames to give accelerations.")
    return {"vel_mean": velocity.mean(0).tolist(), "vel_std": np.hypot(velocity.std(0), noise).tolist(),
            "acc_mean": acceleration.mean(0).tolist(), "acc_std": np.hypot(acceleration.std(0), noise).tolist()}


def setup(run):
    """Set ``run.data``, ``run.fields``, ``run.model`` and ``run.graphs`` for a particle dataset;
    return the step function (:func:`~meshop.training.steps.noisy_one_step` with ``run.noise``
    in m and ``run.unroll`` steps) and the validation (one step without noise, on the
    same windows)."""
    if not models.model_class(run.model_name).particles:
        raise MeshError(f"{run.data_path} holds particle trajectories; model '{run.model_name}' cannot learn "
                        "them: use --model gns or --model giorom.")
    data = load_trajectory_data(run.data_path, run.seed, run.max_train)
    check_given_fields(run.data_path, data.fields, run.inputs, run.targets, run.model_name)
    train, meta = data.trajectories["train"], data.trajectories["train"][0].metadata
    if "bounds" not in meta or "material" not in train[0].mesh.point_data:
        raise MeshError(f"{run.data_path}: particle trajectories need 'bounds' metadata and a 'material' point "
                        "field (meshop generate mpm2d writes both).")
    n_materials = len(meta.get("materials", {})) or int(max(t.mesh.point_data["material"].max() for t in train)) + 1
    if "radius" not in run.model_overrides and "default_connectivity_radius" not in meta:
        raise MeshError(f"{run.data_path}: the trajectories name no default_connectivity_radius; give the "
                        "model's radius in m (--model-option radius=0.02).")
    fixed = {} if "radius" in run.model_overrides else {"radius": float(meta["default_connectivity_radius"])}
    run.model = run._build_model(n_materials, data.dim, data.dim, **fixed)
    history = run.model.history
    statistics = motion_statistics(train, run.noise)
    run.model.set_statistics(bounds=meta["bounds"], **statistics)
    time = data.card["time"]
    dynamics = {"moving": True, "state": ["position", "velocity"], "frame_dt": time.get("frame_dt"),
                "solver_dt": time.get("dt"), "stride": time.get("stride"), "history": history,
                "noise": run.noise, "integrator": INTEGRATOR, "radius": run.model.radius,
                "bounds": meta["bounds"], "materials": meta.get("materials", {}), **statistics}
    run.data = ParticleData(data.trajectories, data.fields, data.card, data.varying, dynamics)
    run.fields = data.fields
    run.val_metric = "acc_mse"
    run.graphs = {split: [window for traj in data.trajectories[split]
                          for window in particle_windows(traj, history, run.window_every, run.unroll)]
                  for split in SPLITS}
    if not run.graphs["train"] or not run.graphs["val"]:
        raise MeshError(f"{run.data_path}: the trajectories are too short for history {history} and unroll "
                        f"{run.unroll}: they need at least {history + 1 + run.unroll} frames.")
    return noisy_one_step(run.noise, run.unroll), validation(noisy_one_step(0.0), run.batch_size, run.device)
