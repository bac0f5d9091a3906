"""Trajectory datasets for time steppers: the series of each split, the field coding, and the
training windows (a frame's state and the next ``unroll`` states) on each trajectory's graph.

A trajectory dataset is a folder of ``.pvd`` (or XDMF) series with a ``dataset.json`` whose
``time`` entry names the ``state`` fields and the ``varying_inputs`` (inputs given per frame); the
other inputs are constant point fields (``meshop generate heat3d-transient`` writes one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from ..errors import MeshError
from ..fields import FieldSpec, as_columns, physical_length
from ..graph import feature_layout
from ..trajectory import Trajectory
from .data import SPLITS, _random_split

#: frames per trajectory used to fit the normalization statistics
FIT_FRAMES = 6


@dataclass
class TrajectoryData:
    """Trajectories of each split, the field coding (inputs, state as targets) and the data card."""

    trajectories: dict[str, list[Trajectory]]
    fields: FieldSpec
    card: dict
    varying: list[str]

    @property
    def dim(self) -> int:
        return self.trajectories["train"][0].dim


def is_trajectory_dataset(root) -> bool:
    """True when the folder's manifest has a ``time`` entry."""
    from ..data.dataset import read_manifest

    return "time" in read_manifest(Path(root))


def load_trajectory_data(root, seed: int = 0, max_train: int | None = None) -> TrajectoryData:
    """Read every series of the dataset folder ``root`` and fit the field coding on the training split."""
    from ..data.dataset import read_manifest
    from ..io import read_series

    root = Path(root)
    manifest = read_manifest(root)
    time = manifest["time"]
    names = [s["file"] if isinstance(s, dict) else s for s in manifest.get("samples", [])]
    split = manifest.get("split") or _random_split(names, seed)
    series = {s: [read_series(root / name) for name in split.get(s, [])] for s in SPLITS}
    listed = {s["file"]: s for s in manifest.get("samples", []) if isinstance(s, dict) and "file" in s}
    for s in SPLITS:
        for name, traj in zip(split.get(s, []), series[s]):
            _check_frames(root / name, traj, listed.get(name, {}).get("n_frames"), time.get("frame_dt"))
    if max_train is not None:
        series["train"] = series["train"][:max_train]
    for part in ("train", "val"):
        if not series[part]:
            raise MeshError(f"{root}: the {part} split is empty; training needs at least one training and "
                            f"one validation trajectory (generate more with --n).")
    varying = list(time.get("varying_inputs", []))
    # moving nodes: "position" is the series' node positions, not a point field
    state = [n for n in time["state"] if not (time.get("moving") and n == "position")]
    powers = {n: int(f.get("length_power", 0)) for n, f in manifest.get("fields", {}).items()}
    fields = FieldSpec(inputs=list(manifest["inputs"]), targets=state,
                       input_defaults={n: float(v) for n, v in manifest.get("input_defaults", {}).items()},
                       length_powers={n: p for n, p in powers.items() if p and n not in state})
    fields.fit(frame for traj in series["train"] for frame in _fit_frames(traj))
    card = {"dataset": str(root), "problem": manifest.get("problem"),
            "sizes": {s: len(series[s]) for s in SPLITS},
            "split": {s: list(split.get(s, [])) for s in SPLITS},
            "n_points": {"min": min(t.n_points for t in series["train"]),
                         "max": max(t.n_points for t in series["train"])},
            "time": dict(time)}
    return TrajectoryData(series, fields, card, varying)


def check_given_fields(root, fields: FieldSpec, inputs: list[str] | None, targets: list[str] | None,
                       model: str) -> None:
    """:class:`MeshError` when ``inputs`` / ``targets`` given for a trajectory dataset differ from
    what a time-dependent model of it reads (every input of the manifest) and predicts (the state):
    a subset of inputs or another target cannot be honoured, and must not be silently ignored."""
    for given, used, role in ((inputs, fields.inputs, "inputs"), (targets, fields.targets, "targets")):
        if given is not None and sorted(given) != sorted(used):
            what = ("reads every input the manifest names" if role == "inputs" else
                    "predicts the trajectories' state")
            raise MeshError(f"{root}: {role} {', '.join(given) or '(none)'} cannot be used: model '{model}' "
                            f"{what} ({', '.join(used) or 'none'}) on a trajectory dataset; drop --{role}.")


def _check_frames(path: Path, traj: Trajectory, n_frames, frame_dt) -> None:
    """:class:`MeshError` for a series with fewer or more frames than the manifest lists for it, or
    whose frames are not ``frame_dt`` (the manifest's ``time.frame_dt``) apart: a truncated series,
    or one with a frame left out, would teach the model other dynamics."""
    if isinstance(n_frames, int) and not isinstance(n_frames, bool) and traj.n_frames != n_frames:
        raise MeshError(f"{path}: the series has {traj.n_frames} frame(s) but dataset.json lists {n_frames} for it; "
                        "it is truncated or a frame is missing: generate or copy it again.")
    if isinstance(frame_dt, (int, float)) and not isinstance(frame_dt, bool) and frame_dt > 0 and traj.n_frames > 1:
        steps = np.diff(np.asarray(traj.times, dtype=np.float64))
        off = np.flatnonzero(~np.isclose(steps, frame_dt, rtol=1e-4, atol=0))
        if len(off):
            k = int(off[0]) + 1
            raise MeshError(f"{path}: frame {k} is at t = {traj.times[k]:.6g}, {steps[k - 1]:.6g} after frame {k - 1}, "
                            f"but the dataset's frames are {frame_dt:.6g} apart (dataset.json time.frame_dt); a frame "
                            "is missing from the series: generate or copy it again.")


def _fit_frames(traj: Trajectory):
    for index in np.unique(np.linspace(0, traj.n_frames - 1, FIT_FRAMES).round().astype(int)):
        yield traj.frame(int(index))


def encode_series(traj: Trajectory, fields: FieldSpec, names: list[str]) -> torch.Tensor:
    """``(T, N, C)`` float32 normalized values of the time-varying fields ``names``."""
    length = physical_length(traj.mesh)
    columns = [np.stack([fields.encode(n, as_columns(traj.fields[n][k]), length) for k in range(traj.n_frames)])
               for n in names]
    return torch.as_tensor(np.concatenate(columns, axis=2), dtype=torch.float32)


def windows(traj: Trajectory, base: Data, fields: FieldSpec, varying: list[str], unroll: int,
            every: int = 1, *, attach) -> list[Data]:
    """Training samples of one trajectory: for start frames ``0, every, 2 every, ...`` the
    normalized ``state (N, S)``, the next ``future (N, S, unroll)`` states and the varying inputs
    ``varying (N, V, unroll)`` of those steps, sharing ``base``'s tensors, each passed through
    ``attach(sample, mesh, state, unroll, drive)``, the model's
    :meth:`~meshop.models.stepper.TimeStepper.attach_window` (``drive``: the varying inputs of
    the window's steps, name -> ``(unroll, N, ...)`` physical)."""
    states = encode_series(traj, fields, fields.targets)                       # (T, N, S)
    drive = encode_series(traj, fields, varying) if varying else None          # (T, N, V)
    samples = []
    for start in range(0, traj.n_frames - unroll, every):
        sample = type(base)(**base.to_dict())             # the same Data class: its batching rules
        sample.state = states[start]
        sample.future = states[start + 1: start + 1 + unroll].permute(1, 2, 0)
        if drive is not None:
            sample.varying = drive[start: start + unroll].permute(1, 2, 0)
        physical = {name: traj.fields[name][start: start + unroll] for name in varying}
        samples.append(attach(sample, traj.mesh, sample.state, unroll, physical))
    return samples


def varying_columns(fields: FieldSpec, dim: int, varying: list[str]) -> list[int]:
    """Columns of ``Data.x`` holding the inputs that vary per frame."""
    layout = feature_layout(fields, dim)
    return [c for name in varying for c in range(*layout[name])]


def increment_scale(trajectories: list[Trajectory], fields: FieldSpec) -> torch.Tensor:
    """``(S,)`` standard deviation of one frame's normalized state increment over ``trajectories``."""
    increments = [np.diff(encode_series(t, fields, fields.targets).numpy(), axis=0) for t in trajectories]
    values = np.concatenate([i.reshape(-1, i.shape[-1]) for i in increments])
    return torch.as_tensor(np.maximum(values.std(axis=0), 1e-8), dtype=torch.float32)
