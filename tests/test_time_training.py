"""The time axis of training and prediction: the Trainer handed a step function, time steppers
trained with unrolled steps on trajectory datasets, rollouts, and old checkpoints."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

import meshop
from meshop import checkpoint
from meshop.errors import MeshError
from meshop.training import EpochSampler, Trainer, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FRAME_DT = 0.1
TINY = dict(processor_options={"width": 16, "levels": 2, "cycles": 1, "kernel_width": 16, "neighbors": 8},
            batch_size=4, lr=3e-3, progress=False, unroll=2)


def _decay_dataset(folder, n=4, frames=10, seed=0):
    """Trajectories of T_{k+1} = T_k exp(-rate dt): a per-node decay rate as constant input."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        g = np.linspace(0, 1, 7)
        points = np.column_stack([a.ravel() for a in np.meshgrid(g, g)]) * [1 + rng.uniform(), 1.0]
        rate = rng.uniform(0.5, 2.0) * (1 + points[:, 0])
        start = 1 + np.sin(np.pi * points[:, 1]) * rng.uniform(0.5, 1.5)
        times = np.arange(frames) * FRAME_DT
        mesh = meshop.Mesh(points, {"triangle": Delaunay(points).simplices}, {"rate": rate})
        traj = meshop.Trajectory(mesh, times, {"temperature": start * np.exp(-np.outer(times, rate))},
                                 metadata={"state": ["temperature"]})
        files.append(meshop.write_series(traj, folder / f"case_{i}.pvd").name)
    (folder / "dataset.json").write_text(json.dumps({
        "inputs": ["rate"], "targets": ["temperature"], "samples": files,
        "split": {"train": files[:-2], "val": files[-2:-1], "test": files[-1:]},
        "time": {"state": ["temperature"], "varying_inputs": [], "frame_dt": FRAME_DT}}))
    return folder


@pytest.fixture(scope="module")
def decay_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("decay")
    data = _decay_dataset(root / "data")
    return data, train(data, model="stepper", epochs=12, out=root / "run", **TINY)


def test_unrolled_training_learns_and_records_dynamics(decay_run):
    _, result = decay_run
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.3 * losses[0]
    best = checkpoint.load(result.best)
    assert best.time_dependent and best.model_name == "stepper"
    dynamics = best.dynamics
    assert dynamics["state"] == ["temperature"] and dynamics["frame_dt"] == FRAME_DT and dynamics["unroll"] == 2
    # the increment scale is the std of one frame's normalized increment, saved with the weights
    assert torch.allclose(best.model.increment_scale, torch.tensor(dynamics["increment_scale"]))
    assert best.data["time"]["state"] == ["temperature"]


def test_rollout_writes_a_series_with_errors_against_the_reference(decay_run, tmp_path):
    data, result = decay_run
    reference = meshop.read_series(data / "case_3.pvd")
    out = tmp_path / "case.pred.pvd"
    rolled = meshop.predict(reference, model=result.best, steps=9, out=out)
    traj = meshop.read_series(out)
    assert traj.n_frames == 10 and np.allclose(traj.times, np.arange(10) * FRAME_DT)
    np.testing.assert_allclose(traj.fields["temperature_pred"][0], reference.fields["temperature"][0], rtol=1e-5)
    errors = rolled.errors["temperature"]
    assert errors.shape == (10,) and errors[0] < 1e-6
    # a learned decay: far better than holding the initial state (persistence)
    persistence = np.linalg.norm(reference.fields["temperature"][9] - reference.fields["temperature"][0]) / \
        np.linalg.norm(reference.fields["temperature"][9])
    assert errors[9] < 0.5 * persistence
    # --dt thins the saved frames; it must be a multiple of the frame step
    thinned = meshop.predict(reference, model=result.best, steps=9, dt=3 * FRAME_DT, write=False)
    assert thinned.trajectory.n_frames == 4
    with pytest.raises(MeshError, match="not a multiple of the model's frame step"):
        meshop.predict(reference, model=result.best, steps=9, dt=0.25, write=False)


def test_rollout_needs_steps_and_steady_models_refuse_them(decay_run):
    data, result = decay_run
    mesh = meshop.read_series(data / "case_3.pvd").frame(0)
    with pytest.raises(MeshError, match="say how far with --steps"):
        meshop.predict(mesh, model=result.best, write=False)
    with pytest.raises(MeshError, match=r"model 'heat3d' \(a 'mgno'\) is steady"):   # as the user named it
        meshop.predict(meshop.read("examples/parts/bracket.vtu"), model="heat3d", steps=3, write=False)
    with pytest.raises(MeshError, match="initial state point field 'temperature' is missing"):
        meshop.predict(meshop.Mesh(mesh.points, mesh.cells, {"rate": mesh.point_data["rate"]}),
                       model=result.best, steps=2, write=False)


def test_steady_and_time_models_refuse_the_other_kind_of_dataset(decay_run, tmp_path):
    data, _ = decay_run
    with pytest.raises(MeshError, match="use --model stepper"):
        train(data, model="gno", epochs=1, out=tmp_path / "a", progress=False)
    darcy = "datasets/samples/darcy2d"
    with pytest.raises(MeshError, match="train it on a trajectory dataset"):
        train(darcy, model="stepper", epochs=1, out=tmp_path / "b", progress=False)


def test_old_checkpoints_load_without_the_new_sections():
    from meshop.prediction import bundled_models

    meta = checkpoint.read_metadata(bundled_models()["heat3d-gno"])
    assert "dynamics" not in meta and "features" not in meta   # written before this release
    loaded = checkpoint.load(bundled_models()["heat3d-gno"])
    assert loaded.dynamics == {} and not loaded.time_dependent


def test_trainer_runs_a_physics_residual_step_without_targets():
    """A step with no target: fit u(x) = a x + b to the residual of u' = 2 with u(0) = 1."""
    model = torch.nn.Linear(1, 1)
    points = torch.linspace(0, 1, 16)[:, None]

    def residual_step(module, batch):
        x = batch.clone().requires_grad_(True)
        u = module(x)
        du = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
        loss = ((du - 2) ** 2).mean() + (module(torch.zeros(1, 1)) - 1).pow(2).mean()
        return loss.squeeze(), {"residual": ((du - 2) ** 2).mean().item()}

    loader = torch.utils.data.DataLoader(points, batch_size=4, sampler=EpochSampler(16, seed=0))
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=0.05), residual_step, loader)
    history = trainer.fit(epochs=60)
    assert history[-1]["residual"] < 1e-4 and np.isnan(history[-1]["val"])
    assert model.weight.item() == pytest.approx(2.0, abs=1e-2) and model.bias.item() == pytest.approx(1.0, abs=1e-2)


def test_epoch_sampler_order_depends_on_seed_and_epoch_only():
    first, again = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    first.set_epoch(5)
    again.set_epoch(5)
    assert list(first) == list(again) and sorted(first) == list(range(10))
    again.set_epoch(6)
    assert list(first) != list(again)


def test_cli_predict_steps_writes_series_animation_and_error_curve(decay_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from meshop.cli import app

    data, result = decay_run
    for name in ("case_3.pvd", "case_3"):
        (shutil.copytree if name == "case_3" else shutil.copy)(data / name, tmp_path / name)
    run = CliRunner().invoke(app, ["predict", str(tmp_path / "case_3.pvd"), "--model", str(result.best),
                                   "--steps", "4", "--render"])
    assert run.exit_code == 0, run.stderr
    assert "5 frames" in run.stdout and "relative L2 against the reference series" in run.stdout
    for produced in ("case_3.pred.pvd", "case_3.pred.gif", "case_3.pred.errors.png"):
        assert (tmp_path / produced).is_file(), produced
    assert meshop.read_series(tmp_path / "case_3.pred.pvd").n_frames == 5
    bad = CliRunner().invoke(app, ["predict", str(tmp_path / "case_3.pvd"), "--model", str(result.best),
                                   "--steps", "0"])
    assert bad.exit_code == 2 and "--steps must be a positive integer" in bad.stderr


def test_bundled_transient_model_cools_the_bracket_with_its_surfaces_held():
    """`meshop predict bracket.vtu --steps N` out of the box: the part starts 1 K above a 0 K
    ambient with its surfaces held (the defaults), so surface nodes stay at 0, the interior cools
    on average, and every frame follows the FEM (BDF2, 2 steps per frame) of the same quench
    within 2.5 % relative L2 (the consistent-mass FEM itself overshoots 1 K by up to 15 % next
    to the quenched surface, so no maximum principle is asserted)."""
    from meshop.data.fem_transient import HeatSimulation

    mesh = meshop.read("examples/parts/bracket.vtu")
    result = meshop.predict(mesh, steps=20, write=False)
    traj = result.trajectory
    temperature = traj.fields["temperature_pred"]
    assert traj.n_frames == 21 and result.defaults["temperature"] == 1.0
    surface = traj.mesh.boundary_mask
    assert (temperature[:, surface] == 0.0).all()              # T∞ = 0 exactly, not through float32 coding
    means = temperature[:, ~surface].mean(axis=1)
    assert means[0] == pytest.approx(1.0) and (np.diff(means) < 0).all() and means[-1] < 0.8
    fem = HeatSimulation(mesh, 0.005, {"dirichlet_mask": surface.astype(float)}).run(np.ones(mesh.n_points), 20, 2)
    reference = fem.fields["temperature"]
    errors = np.linalg.norm(temperature - reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert errors.max() < 0.025, errors


def _small_part(tmp_path, **fields):
    """A 4x4x4-cell tetrahedral cube (m) for the bundled heat3d-transient stepper."""
    from skfem import MeshTet

    tets = MeshTet.init_tensor(*(np.linspace(0, 0.1, 5),) * 3)
    mesh = meshop.Mesh(tets.p.T, {"tetra": tets.t.T})
    return mesh.with_point_data(**{n: f(mesh.points) for n, f in fields.items()})


def test_cli_rollout_refuses_a_field_with_the_wrong_number_of_components(tmp_path):
    """A vector where the model reads a scalar (an input, or the initial state) was a matmul
    traceback; now one sentence naming the field, exit code 2, and no output."""
    from typer.testing import CliRunner

    from meshop.cli import app

    for name in ("source", "temperature"):
        part = meshop.write(_small_part(tmp_path, **{name: lambda x: np.ones((len(x), 2))}), tmp_path / f"{name}.vtu")
        run = CliRunner().invoke(app, ["predict", str(part), "--steps", "2"])
        assert run.exit_code == 2 and "Traceback" not in run.output, run.output
        assert f"{name}.vtu: point field '{name}' has 2 component(s) per point but the model reads 1" in run.stderr
        assert not list(tmp_path.glob(f"{name}.pred*"))


def test_cli_rollout_against_a_one_frame_reference_series(tmp_path):
    """A reference series of one frame has nothing after the initial state to compare with: the
    rollout is written, no error line (it was an IndexError after the series was written)."""
    from typer.testing import CliRunner

    from meshop.cli import app

    part = _small_part(tmp_path)
    series = meshop.write_series(meshop.Trajectory(part, [0.0], {"temperature": np.ones((1, part.n_points))}),
                                 tmp_path / "start.pvd")
    run = CliRunner().invoke(app, ["predict", str(series), "--steps", "2"])
    assert run.exit_code == 0, run.output
    assert "Traceback" not in run.output and "against the reference series" not in run.stdout
    assert meshop.read_series(tmp_path / "start.pred.pvd").n_frames == 3
    assert meshop.predict(series, steps=2, write=False).errors == {}


def _cli(*args):
    from typer.testing import CliRunner

    from meshop.cli import app

    run = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in run.output, run.output
    return run


def test_cli_steady_model_with_steps_is_named_as_given(tmp_path):
    """`predict --model heat3d --steps 3` named the architecture alone ("model 'mgno' is steady")."""
    import shutil

    part = shutil.copy("examples/parts/bracket.vtu", tmp_path / "bracket.vtu")
    run = _cli("predict", part, "--model", "heat3d", "--steps", "3")
    assert run.exit_code == 2 and "model 'heat3d' (a 'mgno') is steady" in run.stderr, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bracket.vtu"]


def test_cli_train_refuses_a_series_with_a_frame_missing_or_too_short(tmp_path):
    """A series with a frame left out of its .pvd trained silently on a wrong time step (or, when
    truncated, on fewer frames than the manifest lists); series too short for the unrolled window
    were a ZeroDivisionError in validation or a scheduler ValueError. One sentence, exit 2, no run."""
    gap = _decay_dataset(tmp_path / "gap", n=3, frames=4)
    pvd = gap / "case_1.pvd"
    pvd.write_text("\n".join(line for line in pvd.read_text().splitlines() if "frame_00001" not in line))
    truncated = _decay_dataset(tmp_path / "truncated", n=3, frames=4)
    manifest = json.loads((truncated / "dataset.json").read_text())
    manifest["samples"] = [{"file": name, "n_frames": 4} for name in manifest["samples"]]
    (truncated / "dataset.json").write_text(json.dumps(manifest))
    pvd = truncated / "case_1.pvd"
    pvd.write_text("\n".join(line for line in pvd.read_text().splitlines() if "frame_00003" not in line))
    short = _decay_dataset(tmp_path / "short", n=3, frames=2)
    for data, phrase in [(gap, "case_1.pvd: frame 1 is at t = 0.2, 0.2 after frame 0, but the dataset's frames "
                               "are 0.1 apart"),
                         (truncated, "case_1.pvd: the series has 3 frame(s) but dataset.json lists 4 for it"),
                         (short, "the train trajectories are too short for unroll 2: they need at least 3 frames")]:
        run = _cli("train", "--quiet", "--data", data, "--model", "mppde", "--epochs", "1", "--out", tmp_path / "run")
        assert run.exit_code == 2 and phrase in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_cli_train_stops_when_validation_is_not_finite(tmp_path, monkeypatch):
    """A model whose validation error was NaN in every epoch (inputs of the validation split far
    outside the training split's) never wrote best.safetensors and ended "best.safetensors: no such
    checkpoint file", leaving last.safetensors and metrics.csv behind."""
    from meshop.training import runner

    monkeypatch.setattr(runner, "validation", lambda *args: (lambda model, graphs: float("nan")))
    data = _decay_dataset(tmp_path / "data", n=3, frames=4)
    run = _cli("train", "--quiet", "--data", data, "--model", "mppde", "--epochs", "1", "--model-option", "latent=8",
               "--out", tmp_path / "run")
    assert run.exit_code == 2, run.stderr
    assert "validation diverged in epoch 1 (validation rel_l2 nan)" in run.stderr and "no such" not in run.stderr
    assert not (tmp_path / "run").exists()


def test_fixed_node_stepper_refuses_moving_particles(decay_run):
    """A stepper of fields on fixed nodes rolled a particle series out as if its nodes stood still."""
    _, result = decay_run
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 1, (30, 2))
    positions = start + np.arange(4)[:, None, None] * 0.01
    particles = meshop.Trajectory(meshop.Mesh(start, None, {"rate": np.ones(30)}), np.arange(4) * FRAME_DT,
                                  {"temperature": np.ones((4, 30))}, positions=positions, source="cloud.pvd")
    with pytest.raises(MeshError, match="cloud.pvd: the nodes move from frame to frame .* model 'stepper' steps "
                                        "fields on fixed nodes"):
        meshop.predict(particles, model=result.best, steps=2, write=False)


def test_trajectory_runs_refuse_inputs_and_targets_they_would_ignore(decay_run, tmp_path):
    """--inputs / --targets on a trajectory dataset were silently ignored: the stepper read every
    input of the manifest and predicted the state whatever was asked."""
    data, _ = decay_run
    for given, phrase in [({"inputs": ["temperature"]}, "inputs temperature cannot be used: model 'stepper' reads "
                                                        "every input the manifest names (rate) on a trajectory dataset; drop --inputs."),
                          ({"targets": "rate"}, "targets rate cannot be used: model 'stepper' predicts the trajectories' "
                                                "state (temperature) on a trajectory dataset; drop --targets."),
                          ({"inputs": []}, "inputs (none) cannot be used")]:
        with pytest.raises(MeshError, match=re.escape(f"{data}: {phrase}")):
            train(data, model="stepper", epochs=1, out=tmp_path / "run", **given, **TINY)
    assert not (tmp_path / "run").exists()
    same = train(data, model="stepper", epochs=1, out=tmp_path / "same", inputs="rate", targets=["temperature"], **TINY)
    assert meshop.checkpoint.load(same.best).fields.inputs == ["rate"]


def test_cli_mover_on_trajectories_takes_one_state_field_and_no_inputs(decay_run, tmp_path):
    from typer.testing import CliRunner

    from meshop.cli import app

    data, _ = decay_run
    for args, phrase in [(["--targets", "rate"], f"{data}: targets rate cannot be used: the mesh mover adapts to one "
                                                 "state field of the trajectories (temperature); give one of them or drop --targets."),
                         (["--inputs", "rate"], "inputs rate cannot be used: the mesh mover 'dmm' reads no input field, "
                                                "only the field it adapts to (--targets chooses it); drop --inputs.")]:
        result = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "dmm", *args, "--epochs", "1",
                                          "--out", str(tmp_path / "run"), "--quiet"])
        assert result.exit_code == 2 and result.stderr.strip() == f"meshop: error: {phrase}", result.output
    assert not (tmp_path / "run").exists()
