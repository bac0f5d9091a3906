"""The time-stepper hooks: a model family defined outside meshop (here, in the test) gets its
dataset options, its statistics, its mesh and each window's state and per-step inputs from the
runner and the rollout, with nothing family-specific in either."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

import meshop
from meshop import models
from meshop.checkpoint import Checkpoint
from meshop.models.stepper import TimeStepper
from meshop.rollout import rollout
from meshop.training import Run
from meshop.training.windows import encode_series

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FRAME_DT, FRAMES, UNROLL = 0.25, 6, 2


class Recording(TimeStepper):
    """A stepper that records what its hooks are handed, and attaches the mesh's node count and
    the sum of each window's per-step ``pulse`` (physical) for the step to read."""

    calls: list

    def __init__(self, in_channels: int, out_channels: int, dim: int, varying_columns: list[int] | None = None,
                 frame_step: float | None = None):
        super().__init__(in_channels, out_channels, dim, processor="mgno", varying_columns=varying_columns,
                         processor_options={"width": 4, "levels": 2, "cycles": 1, "kernel_width": 4,
                                            "neighbors": 4})
        self.config["frame_step"] = frame_step
        self.calls = []

    @classmethod
    def dataset_options(cls, time: dict, options: dict) -> dict:
        return {"frame_step": time["frame_dt"]}

    def attach_mesh(self, data, mesh):
        self.calls.append(("mesh", mesh.n_points))
        data.mesh_nodes = torch.tensor([mesh.n_points])
        return data

    def attach_window(self, data, mesh, state, steps, drive):
        self.calls.append(("window", state.clone(), steps, {n: np.array(v) for n, v in drive.items()}))
        data.pulse_sum = torch.as_tensor(np.sum(drive["pulse"], axis=0), dtype=torch.float32)   # (N,)
        return data


def _pulse_dataset(folder, n=3):
    """Trajectories on 5x5-node squares of a decaying state with a per-frame input ``pulse``."""
    folder.mkdir(parents=True)
    files = []
    for i in range(n):
        g = np.linspace(0, 1, 5)
        points = np.column_stack([a.ravel() for a in np.meshgrid(g, g)]) * (1 + 0.2 * i)
        times = np.arange(FRAMES) * FRAME_DT
        pulse = np.outer(np.arange(FRAMES) % 2, 1 + points[:, 0])                    # (T, N)
        state = np.exp(-np.outer(times, 1 + points[:, 1]))
        mesh = meshop.Mesh(points, {"triangle": Delaunay(points).simplices})
        traj = meshop.Trajectory(mesh, times, {"u": state, "pulse": pulse}, metadata={"state": ["u"]})
        files.append(meshop.write_series(traj, folder / f"case_{i}.pvd").name)
    (folder / "dataset.json").write_text(json.dumps({
        "inputs": ["pulse"], "targets": ["u"], "samples": files,
        "split": {"train": files[:1], "val": files[1:2], "test": files[2:]},
        "time": {"state": ["u"], "varying_inputs": ["pulse"], "frame_dt": FRAME_DT}}))
    return folder


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setitem(models._REGISTRY, "recording", Recording)


def test_runner_hands_a_family_its_options_statistics_mesh_and_windows(recording, tmp_path):
    data = _pulse_dataset(tmp_path / "data")
    run = Run(data, model="recording", out=tmp_path / "run", progress=False, unroll=UNROLL)
    run.setup()
    model = run.model
    assert model.config["frame_step"] == FRAME_DT                     # from the dataset's time entry
    traj = run.data.trajectories["train"][0]
    states = encode_series(traj, run.fields, ["u"])
    increments = np.diff(states.numpy(), axis=0).reshape(-1, 1)
    np.testing.assert_allclose(model.increment_scale.numpy(), increments.std(axis=0), rtol=1e-6)
    # attach_mesh once per trajectory (3), before its windows; attach_window once per window
    kinds = [call[0] for call in model.calls]
    per_traj = ["mesh"] + ["window"] * (FRAMES - UNROLL)
    assert kinds == per_traj * 3
    windows = [call for call in model.calls if call[0] == "window"][: FRAMES - UNROLL]
    for start, (_, state, steps, drive) in enumerate(windows):
        assert steps == UNROLL and list(drive) == ["pulse"]
        torch.testing.assert_close(state, states[start], rtol=0, atol=0)
        np.testing.assert_array_equal(drive["pulse"], traj.fields["pulse"][start: start + UNROLL])
    sample = run.graphs["train"][1]
    assert int(sample.mesh_nodes) == traj.n_points
    np.testing.assert_allclose(sample.pulse_sum.numpy(), traj.fields["pulse"][1:3].sum(axis=0), rtol=1e-6)


def test_rollout_hands_a_family_its_mesh_initial_state_and_inputs_per_step(recording, tmp_path):
    data = _pulse_dataset(tmp_path / "data")
    run = Run(data, model="recording", out=tmp_path / "run", progress=False, unroll=UNROLL)
    run.setup()
    ckpt = Checkpoint(run.model, "recording", run.fields, run.graph, run.data.card, dynamics=run.dynamics)
    reference = meshop.read_series(data / "case_2.pvd")
    run.model.calls.clear()
    steps = 4
    rollout(ckpt, reference, steps)
    (mesh_call, window_call) = run.model.calls
    assert mesh_call == ("mesh", reference.n_points)
    _, state, handed_steps, drive = window_call
    assert handed_steps == steps
    torch.testing.assert_close(state, encode_series(reference, run.fields, ["u"])[0], rtol=0, atol=0)
    np.testing.assert_array_equal(drive["pulse"], reference.fields["pulse"][:steps])   # the reference's frames


def test_heat_physics_hooks_refuse_triangles_and_attach_the_source_per_step():
    from torch_geometric.data import Data

    from meshop.errors import MeshError

    stepper = models.get("stepper", 9, 1, 3, physics="heat", frame_dt=0.01,
                         processor_options={"width": 4, "levels": 2, "cycles": 1, "kernel_width": 4, "neighbors": 4})
    g = np.linspace(0, 1, 3)
    points = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
    square = meshop.Mesh(points, {"triangle": Delaunay(points).simplices})
    with pytest.raises(MeshError, match="heat equation on tetrahedra; the mesh has triangle"):
        stepper.attach_mesh(Data(), square)
    on = np.array([[0.0] * 9, [0.5] * 9, [1.0] * 9])                                  # (steps, N)
    window = stepper.attach_window(Data(), square, torch.zeros(9, 1), 3, {"source_on": on})
    np.testing.assert_array_equal(window.heat_on.numpy(), on.T)
    off = stepper.attach_window(Data(), square, torch.zeros(9, 1), 3, {})
    assert off.heat_on.shape == (9, 3) and not off.heat_on.any()                        # no source_on: off
