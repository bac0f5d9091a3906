"""Learned particle simulators: GNS, GIOROM (sparse stepper + kernel-integral decoder), their
training windows and step function, and particle rollouts in the product."""

import re

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from meshop import models
from meshop.checkpoint import Checkpoint, read_metadata
from meshop.errors import MeshError
from meshop.fields import FieldSpec
from meshop.graph import GraphSettings
from meshop.mesh import Mesh
from meshop.models.gns import constant_velocity_rollout
from meshop.rollout import rollout
from meshop.training.particles import motion_statistics, particle_windows
from meshop.training.steps import noisy_one_step, random_walk_noise
from meshop.trajectory import Trajectory

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(history=2, latent=16, message_passing_steps=2, radius=0.12)


def small_model(name, **extra):
    torch.manual_seed(0)
    options = {**SMALL, **({"sparse_nodes": 40} if name == "giorom" else {}), **extra}
    return models.get(name, 4, 2, 2, **options)


def free_flight(n=120, frames=6, seed=0):
    """``(frames, n, 2)`` particles in the unit box moving at constant velocities (m/frame)."""
    rng = np.random.default_rng(seed)
    start, velocity = rng.uniform(0.3, 0.7, (n, 2)), rng.normal(0, 0.004, (n, 2))
    return start + np.arange(frames)[:, None, None] * velocity, rng.integers(0, 4, n)


def without_acceleration(model):
    """The model with a zero acceleration decoder: it must move particles at constant velocity."""
    last = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    if hasattr(model, "interpolation"):
        last = [m for m in model.interpolation.out.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    return model


@pytest.fixture(scope="module")
def mpm_data(tmp_path_factory):
    from meshop.data.generate import generate

    root = tmp_path_factory.mktemp("mpm") / "data"
    generate("mpm2d", 3, root, seed=1, resolution=300, frames=14, progress=False, split=(0.67, 0.33, 0.0))
    return root


def test_constant_velocity_baseline_is_exact():
    positions = np.array([[[0.0, 1.0]], [[0.5, 0.75]]])               # one particle, two frames
    expected = np.array([[[1.0, 0.5]], [[1.5, 0.25]], [[2.0, 0.0]]])
    np.testing.assert_array_equal(constant_velocity_rollout(positions, 3), expected)


@pytest.mark.parametrize("name", ["gns", "giorom"])
def test_zero_acceleration_model_rolls_out_free_flight(name):
    frames, material = free_flight()
    model = without_acceleration(small_model(name)).eval()
    data = Data(material=torch.as_tensor(material), num_nodes=len(material))
    start = torch.as_tensor(frames[:3], dtype=torch.float32).transpose(0, 1)
    out = model.rollout(data, start, 8)
    assert out.shape == (8, len(material), 2)
    np.testing.assert_allclose(out.numpy(), constant_velocity_rollout(frames[:3], 8), atol=2e-6)


@pytest.mark.parametrize("name", ["gns", "giorom"])
def test_rollouts_stay_in_the_box_and_slide_along_its_walls(name):
    """Particles flying at the floor and the right wall stop on them; their motion along the wall
    goes on at the velocity they had (zero acceleration), so every position is the free flight
    projected into the box, and free flight alone would have left it."""
    rng = np.random.default_rng(4)
    start = rng.uniform(0.7, 0.9, (60, 2)) * [1.0, 0.2]                 # near the right wall, low
    velocity = np.column_stack([rng.uniform(0.01, 0.03, 60), rng.uniform(-0.03, -0.01, 60)])
    frames = start + np.arange(3)[:, None, None] * velocity
    model = without_acceleration(small_model(name)).eval()
    data = Data(material=torch.as_tensor(rng.integers(0, 4, 60)), num_nodes=60)
    out = model.rollout(data, torch.as_tensor(frames, dtype=torch.float32).transpose(0, 1), 12).numpy()
    free = constant_velocity_rollout(frames, 12)
    assert (free < 0).any() and (free > 1).any()
    np.testing.assert_allclose(out, np.clip(free, 0.0, 1.0), atol=2e-6)
    np.testing.assert_allclose(out, constant_velocity_rollout(frames, 12, model.bounds.numpy()), atol=2e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_gns_is_translation_invariant():
    frames, material = free_flight(frames=3)
    frames[-1] += np.random.default_rng(3).normal(0, 0.002, frames[-1].shape)     # not all straight lines
    model = small_model("gns").eval()
    data = Data(material=torch.as_tensor(material), num_nodes=len(material))
    positions = torch.as_tensor(frames, dtype=torch.float32).transpose(0, 1)
    before = model.accelerations(data, positions)
    shift = torch.tensor([0.25, -0.125])
    model.bounds += shift[:, None]
    after = model.accelerations(data, positions + shift)
    assert before.abs().max() > 1e-2
    torch.testing.assert_close(after, before, atol=2e-4, rtol=0)


@pytest.mark.parametrize("decoder", ["query", "kernel"])
def test_giorom_query_reproduces_sparse_state_and_is_mesh_free(decoder):
    frames, material = free_flight(n=300, frames=3)
    model = small_model("giorom", decoder=decoder).eval()
    data = Data(material=torch.as_tensor(material), num_nodes=len(material))
    with torch.no_grad():
        dense = model.accelerations(data, torch.as_tensor(frames, dtype=torch.float32).transpose(0, 1))
    state = model.sparse_state
    assert dense.shape == (300, 2) and state.points.shape == (40, 2)
    assert state.radius == pytest.approx(0.12 * (300 / 40) ** 0.5)
    at_nodes = model.query(state.points.numpy())
    acceleration = state.acceleration * model.acc_std + model.acc_mean
    torch.testing.assert_close(at_nodes["acceleration"], acceleration, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(at_nodes["velocity"], state.velocity, atol=1e-6, rtol=1e-5)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 50), np.linspace(0, 1, 40)), -1).reshape(-1, 2)
    assert model.query(grid)["velocity"].shape == (2000, 2)


def test_giorom_rejects_an_unknown_decoder():
    with pytest.raises(ValueError, match="decoder must be 'query' or 'kernel'"):
        small_model("giorom", decoder="mlp")


def test_random_walk_noise_has_the_published_statistics():
    torch.manual_seed(0)
    noise = random_walk_noise(torch.zeros(20000, 6, 2), 0.01)
    assert noise[:, 0].abs().max() == 0
    last_velocity = noise[:, -1] - noise[:, -2]
    assert last_velocity.std().item() == pytest.approx(0.01 / 5 ** 0.5, rel=0.03)
    assert noise[:, -1].std().item() == pytest.approx(0.01, rel=0.03)     # a walk of 5 steps


def test_windows_targets_and_a_few_steps_lower_the_loss(mpm_data):
    from meshop import read_series

    traj = read_series(mpm_data / "sample_00000.pvd")
    windows = particle_windows(traj, history=2)
    assert len(windows) == traj.n_frames - 3
    np.testing.assert_allclose(windows[0].positions.transpose(0, 1).numpy(), traj.positions[0:4], atol=1e-6)
    model = small_model("gns", radius=traj.metadata["default_connectivity_radius"])
    stats = motion_statistics([traj])
    model.set_statistics(bounds=traj.metadata["bounds"], **stats)
    step, batch = noisy_one_step(0.0), next(iter(DataLoader(windows[:4], batch_size=4)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss, _ = step(model, batch)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0] and min(losses) == losses[-1]


@pytest.mark.parametrize("name", ["gns", "giorom"])
def test_unrolled_loss_is_the_rollouts_position_error_in_units_of_acc_std(mpm_data, name):
    from meshop import read_series

    traj = read_series(mpm_data / "sample_00000.pvd")
    history, unroll = 2, 3
    windows = particle_windows(traj, history=history, unroll=unroll)
    assert len(windows) == traj.n_frames - history - unroll
    np.testing.assert_allclose(windows[1].positions.transpose(0, 1).numpy(), traj.positions[1:7], atol=1e-6)
    model = small_model(name, radius=traj.metadata["default_connectivity_radius"]).eval()
    model.set_statistics(bounds=traj.metadata["bounds"], **motion_statistics([traj]))
    batch = next(iter(DataLoader(windows[2:3], batch_size=1)))
    with torch.no_grad():
        loss, logs = noisy_one_step(0.0, unroll)(model, batch)
        single, _ = noisy_one_step(0.0)(model, batch)
        start = batch.positions[:, : history + 1]
        rolled = model.rollout(Data(material=batch.material, num_nodes=batch.num_nodes), start, unroll)
    truth = batch.positions[:, history + 1:].transpose(0, 1)                       # (K, N, d)
    expected = (((rolled - truth) / model.acc_std) ** 2).mean(dim=(1, 2))
    # float32 positions (~0.5 m) against errors of ~1e-4 m: agreement to ~1e-3
    np.testing.assert_allclose([logs[f"step{k + 1}"] for k in range(unroll)], expected.numpy(), rtol=3e-3)
    assert loss.item() == pytest.approx(expected.mean().item(), rel=3e-3)
    assert logs["step1"] == pytest.approx(single.item(), rel=1e-6)                 # step 1 is the one-step loss
    assert expected[2] > expected[0]                                               # the drift grows


def test_particle_runs_train_one_step_unless_told_to_unroll(mpm_data, tmp_path):
    from meshop.training import Run

    options = dict(model="gns", epochs=1, batch_size=2, progress=False, history=2, latent=8, message_passing_steps=1)
    default, unrolled = Run(mpm_data, out=tmp_path / "a", **options), Run(mpm_data, out=tmp_path / "b", unroll=3, **options)
    default.setup(), unrolled.setup()
    assert default.unroll == 1 and default.options["unroll"] == 1 and unrolled.options["unroll"] == 3
    assert default.graphs["train"][0].positions.shape[1] == 2 + 2                    # history + 1 inputs, 1 target
    assert unrolled.graphs["train"][0].positions.shape[1] == 2 + 4                   # history + 1 inputs, 3 targets
    assert len(unrolled.graphs["train"]) == len(default.graphs["train"]) - 2 * len(default.data.trajectories["train"])
    _, logs = unrolled.trainer.step(unrolled.model, next(iter(DataLoader(unrolled.graphs["train"][:2], batch_size=2))))
    assert sorted(logs) == ["step1", "step2", "step3"]


@pytest.mark.slow
def test_train_and_predict_a_particle_series(mpm_data, tmp_path):
    from meshop import predict
    from meshop.training import train

    result = train(mpm_data, model="giorom", epochs=1, batch_size=4, out=tmp_path / "run", progress=False,
                   noise=3e-4, history=2, latent=16, message_passing_steps=2, sparse_nodes=100)
    header = (result.run / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,val_acc_mse,lr,seconds"          # an MSE, not a relative L2
    assert result.metrics["validation"] == "acc_mse" and result.metrics["best_val_acc_mse"] > 0
    dynamics = read_metadata(result.best)["dynamics"]
    assert dynamics["moving"] and dynamics["history"] == 2 and dynamics["noise"] == 3e-4
    assert len(dynamics["acc_std"]) == 2 and dynamics["bounds"] == [[0.0, 1.0], [0.0, 1.0]]
    series = mpm_data / "sample_00002.pvd"
    prediction = predict(series, model=result.best, steps=5, out=tmp_path / "scene.pred.pvd")
    assert prediction.trajectory.positions.shape[:2] == (6, prediction.trajectory.n_points)
    errors = prediction.errors["position_mse"]
    assert errors[0] == pytest.approx(0.0, abs=1e-12) and np.isfinite(errors).all()


def particle_checkpoint(model):
    spec = FieldSpec(inputs=["material"], targets=["velocity"])
    return Checkpoint(model, "gns", spec, GraphSettings(), dynamics={"moving": True, "frame_dt": 0.01})


def test_rollout_from_a_point_cloud_with_velocities():
    frames, material = free_flight(frames=1)
    velocity = np.random.default_rng(1).normal(0, 0.3, frames[0].shape)               # m/s
    cloud = Mesh(frames[0], None, {"material": material, "velocity": velocity})
    result = rollout(particle_checkpoint(without_acceleration(small_model("gns")).eval()), cloud, 4)
    expected = frames[0] + np.arange(5)[:, None, None] * velocity * 0.01
    np.testing.assert_allclose(result.trajectory.positions, expected, atol=2e-6)
    np.testing.assert_allclose(result.trajectory.fields["velocity_pred"], np.broadcast_to(velocity, (5, 120, 2)),
                               atol=5e-4)


def test_rollout_refuses_particles_without_materials():
    frames, _ = free_flight(frames=1)
    with pytest.raises(MeshError, match="'material' point field"):
        rollout(particle_checkpoint(small_model("gns")), Mesh(frames[0], None, {}), 3)
    series = Trajectory(Mesh(frames[0], None, {"material": np.zeros(120, int)}), [0.0], positions=frames)
    with pytest.raises(MeshError, match="starts from 3 frames"):
        rollout(particle_checkpoint(small_model("gns")), series, 3)


def test_bundled_mpm2d_model_rolls_out_a_point_cloud(tmp_path):
    from meshop import predict
    from meshop.prediction import bundled_models

    assert read_metadata(bundled_models()["mpm2d"])["dynamics"]["moving"]
    frames, material = free_flight(n=200, frames=1)
    cloud = Mesh(frames[0], None, {"material": material, "velocity": np.zeros((200, 2))})
    result = predict(cloud, model="mpm2d", steps=3, out=tmp_path / "cloud.pred.pvd")
    positions = result.trajectory.positions
    assert positions.shape == (4, 200, 2) and np.isfinite(positions).all()
    fall = positions[-1, :, 1] - positions[0, :, 1]
    assert fall.mean() < 0     # at rest under gravity, the particles start to fall


def test_query_decoder_matches_a_brute_force_reference(monkeypatch):
    from meshop.nn import query_decoder
    from meshop.nn.query_decoder import QueryDecoder, QueryStencil

    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    nodes, queries = torch.as_tensor(rng.random((30, 2))), torch.as_tensor(rng.random((200, 2)))
    values, latent, radius, k = torch.randn(30, 2, dtype=torch.float64), torch.randn(30, 8, dtype=torch.float64), 0.3, 4
    decoder = QueryDecoder(8, 2, 2, width=6).double()
    stencil = QueryStencil.build(queries, nodes, k, radius)
    nearest = np.argsort(((queries[:, None] - nodes[None]) ** 2).sum(-1).numpy(), axis=1)[:, :k]
    np.testing.assert_array_equal(np.sort(stencil.neighbors.numpy(), axis=1), np.sort(nearest, axis=1))
    with torch.no_grad():
        out = decoder(stencil, values, latent)
        expected = []
        for y, ids in zip(queries, nearest):        # the formula of QueryDecoder, one query at a time
            offset = (y - nodes[ids]) / radius
            d2 = (offset ** 2).sum(1, keepdim=True)
            w = 1 / (d2 + 1e-12)
            kernel = decoder.kernel(torch.cat([offset, d2.sqrt()], 1))
            correction = decoder.out((kernel * decoder.project(latent[ids])).mean(0))
            expected.append((w * values[ids]).sum(0) / w.sum() + (1 - torch.exp(-d2.min() / 0.01)) * correction)
    torch.testing.assert_close(out, torch.stack(expected), atol=1e-10, rtol=1e-10)
    monkeypatch.setattr(query_decoder, "CHUNK", 7)                  # decoded 7 queries at a time
    with torch.no_grad():       # the same sums; matrix products of other row counts may round 1 ulp apart
        torch.testing.assert_close(decoder(stencil, values, latent), out, atol=1e-15, rtol=1e-14)


def test_cli_predicts_200_steps_of_a_particle_cloud_and_renders_a_gif(tmp_path):
    from typer.testing import CliRunner

    import meshop
    from meshop.cli import app

    frames, material = free_flight(n=100, frames=1)
    scene = meshop.write(Mesh(frames[0], None, {"material": material, "velocity": np.zeros((100, 2))}),
                         tmp_path / "scene.vtp")
    runner = CliRunner()
    done = runner.invoke(app, ["predict", str(scene), "--model", "mpm2d", "--steps", "200", "--dt", "0.2"])
    assert done.exit_code == 0, done.output
    series = meshop.read_series(tmp_path / "scene.vtp.pred.pvd")  # every 20th of the 200 frames kept
    assert series.n_frames == 11 and series.times[-1] == pytest.approx(2.0) and np.isfinite(series.positions).all()
    assert series.positions[-1, :, 1].mean() < series.positions[0, :, 1].mean()             # fell under gravity
    done = runner.invoke(app, ["render", str(tmp_path / "scene.vtp.pred.pvd")])      # a series: a GIF
    assert done.exit_code == 0, done.output
    gif = tmp_path / "scene.vtp.pred.gif"
    assert gif.is_file() and gif.read_bytes()[:6] == b"GIF89a"


def test_query_stencil_neighbours_do_not_depend_on_the_query_order():
    """Queries are searched in grid-cell order; each gets the k-d tree's own k nearest, in the
    caller's order, and an empty query set gives an empty stencil."""
    from scipy.spatial import cKDTree

    from meshop.nn.query_decoder import QueryStencil

    rng = np.random.default_rng(3)
    nodes, queries = torch.as_tensor(rng.random((200, 2))), torch.as_tensor(rng.random((5000, 2)) * [3.0, 0.5])
    stencil = QueryStencil.build(queries, nodes, 6, 0.1)
    np.testing.assert_array_equal(stencil.neighbors.numpy(), cKDTree(nodes.numpy()).query(queries.numpy(), k=6)[1])
    assert len(QueryStencil.build(queries[:0], nodes, 6, 0.1)) == 0
    single = QueryStencil.build(queries.float(), nodes.float(), 6, 0.1)       # float32 positions
    brute = np.argsort(((queries[:, None] - nodes[None]) ** 2).sum(-1).numpy(), axis=1)[:, :6]
    assert (np.sort(single.neighbors.numpy(), axis=1) == np.sort(brute, axis=1)).all(axis=1).mean() > 0.999
    queries[17, 1] = float("nan")
    with pytest.raises(ValueError, match="query points must be finite: 1 of 5000 have NaN"):
        QueryStencil.build(queries, nodes, 6, 0.1)


def _bad_cloud(case, n=50):
    """A 2D particle cloud (.vtp fields) with one defect, for the bundled mpm2d model."""
    frames, material = free_flight(n=n, frames=1)
    points, fields = frames[0], {"material": material, "velocity": np.zeros((n, 2))}
    if case == "fractional material":
        fields["material"] = material + 0.5
    elif case == "material vectors":
        fields["material"] = np.column_stack([material, material])
    elif case == "scalar velocity":
        fields["velocity"] = np.zeros(n)
    elif case == "3D velocity of 2D particles":
        fields["velocity"] = np.column_stack([np.zeros((n, 2)), np.ones(n)])
    elif case == "outside the box":
        points = points + 50.0
    elif case == "absurd velocity":
        fields["velocity"] = np.full((n, 2), 1e30)
    return Mesh(points, None, fields)


@pytest.mark.parametrize("case, extra, phrase", [
    ("fractional material", [], "material ids must be integers; particle 0 has"),
    ("material vectors", [], "the 'material' point field has shape (50, 2); expected one integer id per particle"),
    ("scalar velocity", [], "the 'velocity' point field has 1 component(s) per particle; expected 2"),
    ("3D velocity of 2D particles", [], "the 'velocity' point field has 3 component(s) per particle; expected 2"),
    ("outside the box", [], "50 particle(s) lie outside the model's box [0, 1] x [0, 1] (m)"),
    ("absurd velocity", [], "more than the model's whole box (1 m); give 'velocity' in m/s"),
    ("good", ["--dt", "nan"], "--dt nan: expected a positive time between saved frames"),
])
def test_cli_refuses_a_bad_particle_cloud_in_one_sentence(tmp_path, case, extra, phrase):
    """Each once a traceback, a silent cast or a silent teleport onto the wall: now exit code 2,
    one sentence naming the cause, and no output."""
    from typer.testing import CliRunner

    import meshop
    from meshop.cli import app

    scene = meshop.write(_bad_cloud(case), tmp_path / "scene.vtp")
    done = CliRunner().invoke(app, ["predict", str(scene), "--model", "mpm2d", "--steps", "2", *extra])
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output and phrase in done.stderr, done.stderr
    assert done.stderr.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.vtp"]


def test_planar_cloud_velocity_with_a_zero_z_column_is_read_as_2d():
    """VTK stores vectors with three components: a planar cloud's z velocity of 0 is dropped."""
    frames, material = free_flight(frames=1)
    velocity = np.random.default_rng(1).normal(0, 0.3, frames[0].shape)
    cloud = Mesh(frames[0], None, {"material": material, "velocity": np.column_stack([velocity, np.zeros(120)])})
    result = rollout(particle_checkpoint(without_acceleration(small_model("gns")).eval()), cloud, 2)
    expected = frames[0] + np.arange(3)[:, None, None] * velocity * 0.01
    np.testing.assert_allclose(result.trajectory.positions, expected, atol=2e-6)


def test_cli_rolls_out_a_series_of_just_the_initial_frames(tmp_path):
    """A series of exactly history + 1 frames leaves no later frame to compare with: the rollout is
    written and no error line printed (it was an IndexError after the series was written)."""
    from typer.testing import CliRunner

    import meshop
    from meshop.cli import app

    frames, material = free_flight(n=60, frames=6)          # mpm2d's history is 5: 6 initial frames
    series = meshop.write_series(Trajectory(Mesh(frames[0], None, {"material": material}), np.arange(6) * 0.01,
                                            positions=frames), tmp_path / "scene.pvd")
    done = CliRunner().invoke(app, ["predict", str(series), "--steps", "2"])
    assert done.exit_code == 0, done.output
    assert "Traceback" not in done.output and "against the reference series" not in done.stdout
    assert meshop.read_series(tmp_path / "scene.pred.pvd").n_frames == 3


def test_particle_models_refuse_steady_data_naming_it(tmp_path):
    """Steady samples given to gns / giorom said "a particle model predicts a 2D acceleration;
    out_channels must be 2" (the model was built before the data's kind was checked)."""
    from meshop.training import train

    for name in ("gns", "giorom"):
        with pytest.raises(MeshError, match=f"model '{name}' moves particles and datasets/samples/darcy2d holds "
                                            "steady samples; train it on a trajectory dataset"):
            train("datasets/samples/darcy2d", model=name, epochs=1, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_particle_runs_refuse_inputs_and_targets_they_cannot_use(mpm_data, tmp_path):
    """--inputs / --targets on a particle dataset were silently ignored."""
    from meshop.training import Run

    options = dict(model="gns", epochs=1, batch_size=2, progress=False, history=2, latent=8, message_passing_steps=1)
    for given, phrase in [({"inputs": ["velocity"]}, "inputs velocity cannot be used: model 'gns' reads every "
                                                     "input the manifest names (material) on a trajectory dataset; drop --inputs."),
                          ({"targets": ["position"]}, "targets position cannot be used: model 'gns' predicts the "
                                                      "trajectories' state (velocity) on a trajectory dataset; drop --targets.")]:
        with pytest.raises(MeshError, match=re.escape(f"{mpm_data}: {phrase}")):
            Run(mpm_data, out=tmp_path / "run", **given, **options).setup()
    run = Run(mpm_data, out=tmp_path / "run", inputs=["material"], targets="velocity", **options)
    run.setup()                                   # what the model uses anyway: accepted
    assert run.fields.inputs == ["material"] and run.fields.targets == ["velocity"]
    assert not (tmp_path / "run").exists()
