"""MP-PDE and the two-branch moving-mesh solver MM-PDE on tiny burgers2d trajectories."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

import meshop
from meshop import checkpoint, models
from meshop.data.fem import l2_error
from meshop.data.generate import generate
from meshop.data.problems.darcy2d import square_mesh
from meshop.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = dict(epochs=15, batch_size=2, lr=1e-2, progress=False, unroll=1, latent=16)


@pytest.fixture(scope="module")
def burgers(tmp_path_factory):
    root = tmp_path_factory.mktemp("burgers")
    data = generate("burgers2d", 4, root / "data", seed=0, resolution=64, progress=False,
                    split=(0.5, 0.25, 0.25), domain="square", frames=5, stride=2, nu=0.01)
    runs = {name: train(data, model=name, out=root / name, **TINY, **extra)
            for name, extra in (("mppde", {"layers": 2}), ("mmpde", {"layers": 1, "mover": "classical"}))}
    return data, runs


def test_equal_parameter_counts_at_the_defaults():
    plain, moving = models.get("mppde", 4, 2, 2), models.get("mmpde", 4, 2, 2)
    assert abs(moving.n_parameters() / plain.n_parameters() - 1) < 0.1


@pytest.mark.parametrize("name", ["mppde", "mmpde"])
def test_training_lowers_the_loss_and_the_checkpoint_round_trips(burgers, name):
    data, runs = burgers
    losses = [row["train_loss"] for row in runs[name].history]
    assert losses[-1] < 0.7 * losses[0], losses
    first, second = checkpoint.load(runs[name].best), checkpoint.load(runs[name].best)
    assert first.time_dependent and first.model_name == name
    reference = meshop.read_series(next(data.glob("*.pvd")))
    one = meshop.predict(reference, model=first, steps=3, write=False)
    two = meshop.predict(reference, model=second, steps=3, write=False)
    field = one.trajectory.fields["velocity_pred"]
    assert field.shape == (4, reference.n_points, 2) and np.isfinite(field).all()
    np.testing.assert_array_equal(field, two.trajectory.fields["velocity_pred"])
    np.testing.assert_allclose(field[0], reference.fields["velocity"][0], rtol=1e-5, atol=1e-6)
    assert one.errors["velocity"][1] < 1.0


@pytest.mark.parametrize("name", ["mppde", "mmpde"])
def test_rollouts_hold_the_boundary_at_its_initial_velocity(burgers, name):
    """burgers2d keeps every boundary node at its initial velocity (the solver's Dirichlet rule,
    stored in the dataset as its held boundary): a rollout holds it there exactly (the physical
    value written back, not the coded state decoded), and moves the interior."""
    data, runs = burgers
    assert json.loads((data / "dataset.json").read_text())["time"]["held_boundary"]["value"] is None
    reference = meshop.read_series(sorted(data.glob("*.pvd"))[-1])
    field = meshop.predict(reference, model=checkpoint.load(runs[name].best), steps=4,
                           write=False).trajectory.fields["velocity_pred"]
    wall = reference.mesh.boundary_mask
    initial = reference.fields["velocity"][0]
    scale = float(np.abs(initial).max())
    np.testing.assert_array_equal(field[:, wall], np.broadcast_to(initial[wall], field[:, wall].shape))
    assert np.abs(field[-1, ~wall] - initial[~wall]).max() > 1e-3 * scale


def test_moved_mesh_and_interpolation_lists(burgers):
    data, runs = burgers
    ckpt = checkpoint.load(runs["mmpde"].best)
    reference = meshop.read_series(next(data.glob("*.pvd")))
    mesh = reference.frame(2)
    from meshop.graph import build_graph

    graph = build_graph(mesh, ckpt.fields, ckpt.graph, with_targets=False)
    state = torch.as_tensor(mesh.point_data["velocity"], dtype=torch.float32)
    moved = ckpt.model.attach_moved(graph, mesh, state)
    shift = (moved.moved_pos - moved.pos).norm(dim=1)
    assert 0 < float(shift.max()) < 0.2                       # the nodes moved, a fraction of the size
    assert moved.to_moved_index.shape == (3, mesh.n_points)
    # a batch of two offsets the neighbour lists like edge_index
    batch = next(iter(DataLoader([moved, moved], batch_size=2)))
    assert int(batch.to_moved_index[:, mesh.n_points:].min()) >= mesh.n_points
    with pytest.raises(ValueError, match="needs the moved mesh"):
        ckpt.model.step(graph, state)



def test_rollout_moves_the_mesh_to_the_state_before_every_step(burgers, monkeypatch):
    """As in the paper, step k of a rollout runs on the mesh moved to the state it starts from
    (the first on attach_window's, moved to the initial state)."""
    from meshop.graph import build_graph

    data, runs = burgers
    ckpt = checkpoint.load(runs["mmpde"].best)
    reference = meshop.read_series(next(data.glob("*.pvd")))
    seen, step = [], type(ckpt.model).step

    def spy(model, graph, state, k=0, operators=None):
        seen.append((graph.moved_pos.clone(), state.clone()))
        return step(model, graph, state, k, operators)

    monkeypatch.setattr(type(ckpt.model), "step", spy)
    meshop.predict(reference, model=ckpt, steps=3, write=False)
    mesh = reference.frame(0)
    graph = build_graph(mesh, ckpt.fields, ckpt.graph, with_targets=False)
    assert len(seen) == 3
    for moved_pos, state in seen:
        torch.testing.assert_close(moved_pos, ckpt.model.attach_moved(graph, mesh, state).moved_pos, atol=1e-6, rtol=0)
    assert float((seen[2][0] - seen[0][0]).abs().max()) > 1e-4          # the mesh followed the state

def _front_dataset(folder, n=4):
    """Square meshes carrying tanh fronts (field ``u``) at different places: a steady dataset."""
    folder.mkdir(parents=True)
    points, triangles = square_mesh(13)
    files = []
    for k in range(n):
        centre = [0.2 + 0.2 * k, 0.3]
        u = np.tanh((np.linalg.norm(points - centre, axis=1) - 0.4) / 0.05)
        files.append(meshop.write(meshop.Mesh(points, {"triangle": triangles}, {"u": u}), folder / f"f{k}.vtu").name)
    (folder / "dataset.json").write_text(json.dumps({
        "inputs": [], "targets": ["u"], "samples": files,
        "split": {"train": files[:2], "val": files[2:3], "test": files[3:]}}))
    return folder, points, triangles


def test_dmm_trains_through_meshop_train_with_the_monge_ampere_step(tmp_path):
    data, points, triangles = _front_dataset(tmp_path / "fronts")
    result = train(data, model="dmm", epochs=40, batch_size=2, lr=1e-2, schedule="cosine", progress=False,
                   out=tmp_path / "dmm", width=8, layers=1, head_width=16)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.9 * losses[0], losses                          # measured 2.49 -> 2.05
    assert result.metrics["validation"] == "ma_loss" and "val_ma_loss" in result.history[0]
    assert (result.run / "loss.png").is_file()
    ckpt = checkpoint.load(result.best)
    assert ckpt.model_name == "dmm" and ckpt.fields.inputs == ["u"]
    mesh = meshop.read(data / "f0.vtu")
    moved = meshop.adapt(mesh, "u", model=result.best)
    assert moved.method == "dmm" and moved.quality.n_inverted == 0
    x = moved.mesh.points[:, :2]

    def front(y):
        return np.tanh((np.linalg.norm(y - [0.2, 0.3], axis=1) - 0.4) / 0.05)
    ratio = l2_error(x, triangles, front(x), front) / l2_error(points, triangles, front(points), front)
    assert ratio < 0.95, ratio


def test_a_mesh_mover_fine_tunes_on_a_field_of_another_name(tmp_path, burgers):
    """A mover reads whichever field it is given: the bundled DMM (trained on fields named 'field')
    fine-tunes on burgers2d's 'velocity'; at a vanishing learning rate its weights stay its own.
    Another model still needs the same fields (tests/test_train.py)."""
    from meshop.adaptation import BUNDLED_DMM

    data, _ = burgers
    result = train(data, model="dmm", init=BUNDLED_DMM, epochs=1, batch_size=2, lr=1e-12, progress=False,
                   out=tmp_path / "tuned")
    tuned, bundled = checkpoint.load(result.last).model, checkpoint.load(BUNDLED_DMM).model
    assert checkpoint.load(result.last).fields.inputs == ["velocity"] != checkpoint.load(BUNDLED_DMM).fields.inputs
    for (name, weight), reference in zip(tuned.named_parameters(), bundled.parameters()):
        torch.testing.assert_close(weight, reference, atol=1e-9, rtol=0, msg=name)
