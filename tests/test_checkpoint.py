"""Checkpoints: exact round trips (weights, metadata, optimizer state) and clear errors for
corrupt, foreign and incompatible files, without ever unpickling."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skfem import MeshTri

import meshop
from meshop import MeshError, checkpoint, models
from meshop.checkpoint import Checkpoint, CheckpointError
from meshop.fields import FieldSpec
from meshop.graph import GraphSettings, build_graph, decode, feature_count, feature_layout
from meshop.training.state import optimizer_from_flat, optimizer_to_flat


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mesh(n: int = 9) -> meshop.Mesh:
    square = MeshTri.init_tensor(*(np.linspace(0.0, 1.0, n),) * 2)
    x, y = square.p
    return meshop.Mesh(square.p.T, {"triangle": square.t.T}, {"a": 1 + x * y, "u": np.sin(np.pi * x) * y})


def _checkpoint(width: int = 16) -> Checkpoint:
    spec = FieldSpec(["a"], ["u"], input_defaults={"a": 1.0}, length_powers={"u": 1}, dirichlet={"u": 0.0})
    spec.fit([_mesh()])
    torch.manual_seed(0)
    model = models.get("gno", feature_count(spec, 2), 1, 2, width=width, layers=2, kernel_width=8)
    return Checkpoint(model, "gno", spec, GraphSettings(k=6), data={"dataset": "d", "sizes": {"train": 1}},
                      metrics={"test_rel_l2": 0.25}, training={"epoch": 3})


def test_a_full_disk_is_one_sentence_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    """safetensors says a full disk as its own SafetensorError: `meshop train` died in a traceback."""
    import safetensors.torch
    from safetensors import SafetensorError

    good = checkpoint.save(tmp_path / "last.safetensors", _checkpoint())
    before = good.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(MeshError, match=r"last.safetensors: could not write this checkpoint \(.*No space left on "
                                        r"device \(os error 28\)\)\.$"):
        checkpoint.save(good, _checkpoint())
    assert good.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]


def test_round_trip_identical_predictions_and_metadata(tmp_path):
    ckpt = _checkpoint()
    path = checkpoint.save(tmp_path / "model.safetensors", ckpt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temporary left
    loaded = checkpoint.load(path)
    graph = build_graph(_mesh(), ckpt.fields, ckpt.graph)
    ckpt.model.eval()
    with torch.no_grad():
        expected = decode(ckpt.model(graph), graph, ckpt.fields)
        assert torch.equal(expected, decode(loaded.model(graph), graph, loaded.fields))
    assert loaded.fields == ckpt.fields and loaded.graph == ckpt.graph and loaded.model_name == "gno"
    assert (loaded.data, loaded.metrics, loaded.training) == (ckpt.data, ckpt.metrics, ckpt.training)
    assert loaded.meshop_version == meshop.__version__ and loaded.model.config == ckpt.model.config


def test_optimizer_and_schedule_state_round_trip_exactly(tmp_path):
    ckpt = _checkpoint()
    model = ckpt.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=10)
    graph = build_graph(_mesh(), ckpt.fields, ckpt.graph)

    def step(m, opt, sched):
        opt.zero_grad()
        decode(m(graph), graph, ckpt.fields).square().mean().backward()
        opt.step()
        sched.step()

    for _ in range(3):
        step(model, optimizer, scheduler)
    tensors, meta = optimizer_to_flat(optimizer.state_dict())
    ckpt.training = {"optimizer": meta, "scheduler": scheduler.state_dict()}
    checkpoint.save(tmp_path / "last.safetensors", ckpt, optimizer_state=tensors)

    loaded, flat = checkpoint.load(tmp_path / "last.safetensors", with_optimizer=True)
    optimizer2 = torch.optim.AdamW(loaded.model.parameters(), lr=1e-2)
    scheduler2 = torch.optim.lr_scheduler.OneCycleLR(optimizer2, max_lr=1e-2, total_steps=10)
    optimizer2.load_state_dict(optimizer_from_flat(flat, loaded.training["optimizer"]))
    scheduler2.load_state_dict(loaded.training["scheduler"])
    for _ in range(2):  # both continue identically
        step(model, optimizer, scheduler)
        step(loaded.model, optimizer2, scheduler2)
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    for a, b in zip(model.parameters(), loaded.model.parameters()):
        assert torch.equal(a, b)


def _foreign_files(tmp_path, good) -> list:
    data = good.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    (tmp_path / "truncated_header.safetensors").write_bytes(data[:header // 2])
    (tmp_path / "truncated_weights.safetensors").write_bytes(data[:header + 100])
    (tmp_path / "random.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    save_file({"w": torch.zeros(3)}, tmp_path / "plain.safetensors", metadata={"source": "elsewhere"})
    meta = checkpoint.read_metadata(good)
    wide = _checkpoint(width=24).model.state_dict()
    save_file({k: v.contiguous() for k, v in wide.items()}, tmp_path / "misfit.safetensors",
              metadata={"meshop": json.dumps(meta)})
    for name, change in [("future", {"format": 99}), ("unknown_model", {"model": {**meta["model"], "name": "nope"}})]:
        save_file({"w": torch.zeros(1)}, tmp_path / f"{name}.safetensors",
                  metadata={"meshop": json.dumps({**meta, **change})})
    save_file({"w": torch.zeros(1)}, tmp_path / "bad_json.safetensors", metadata={"meshop": "{not json"})
    flipped = bytearray(good.read_bytes())
    flipped[-5] ^= 0xFF  # a byte inside the last tensor's data; the file keeps its size
    (tmp_path / "flipped.safetensors").write_bytes(bytes(flipped))
    return [
        ("truncated_header", "not a readable safetensors checkpoint"),
        ("truncated_weights", "not a readable safetensors checkpoint"),  # safetensors checks the size
        ("random", "not a readable safetensors checkpoint"),
        ("plain", "not a meshop checkpoint (no meshop metadata)"),
        ("misfit", "weights do not fit model 'gno'"),
        ("future", "checkpoint format 99 is not supported"),
        ("unknown_model", "incompatible checkpoint"),
        ("bad_json", "metadata is corrupt"),
        ("flipped", "weights are corrupt (checksum mismatch)"),
        ("missing", "no such checkpoint file"),
    ]


def test_weights_of_another_configuration_name_the_first_tensor_that_differs(tmp_path):
    """A checkpoint of the same model at another width (or another version of it) says which tensor
    differs and both shapes, not torch's bare "Error(s) in loading state_dict"."""
    good = checkpoint.save(tmp_path / "good.safetensors", _checkpoint())
    _foreign_files(tmp_path, good)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(tmp_path / "misfit.safetensors")
    message = str(info.value)
    name = next(k for k, v in _checkpoint(width=24).model.state_dict().items()
                if v.shape != _checkpoint().model.state_dict()[k].shape)
    wide, narrow = (tuple(_checkpoint(width=w).model.state_dict()[name].shape) for w in (24, 16))
    assert f"tensor '{name}' has shape {wide} in the file and {narrow} in the model" in message, message


def test_corrupt_foreign_and_incompatible_checkpoints_get_specific_errors(tmp_path):
    good = checkpoint.save(tmp_path / "good.safetensors", _checkpoint())
    for name, phrase in _foreign_files(tmp_path, good):
        path = tmp_path / f"{name}.safetensors"
        with pytest.raises(CheckpointError) as info:
            checkpoint.load(path)
        message = str(info.value)
        assert phrase in message and str(path) in message, (name, message)
        assert "\n" not in message


class _Payload:
    """Unpickling this creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        checkpoint.load(path)
    assert not marker.exists()


# ---------------------------------------------------------------- features by name (BENO, AMG)
def _poisson_like(n: int = 9) -> tuple[meshop.Mesh, FieldSpec]:
    """x = [geometry, source, g, extended g] with u = g on the boundary."""
    mesh = _mesh(n)
    x, y = mesh.points.T
    u = np.sin(np.pi * x) * y + x
    mesh = mesh.with_point_data(source=np.cos(3 * y), g=np.where(mesh.boundary_mask, u, 0.0), u=u)
    return mesh, FieldSpec(["source", "g"], ["u"], dirichlet={"u": "g"}).fit([mesh])


def _briefly_trained(name: str, mesh, spec, **config) -> Checkpoint:
    torch.manual_seed(0)
    model = models.get(name, feature_count(spec, 2), 1, 2, features=feature_layout(spec, 2), width=16, **config)
    graph = build_graph(mesh, spec, GraphSettings(k=6), prepare=model.prepare, mesh_graph=model.uses_mesh_graph)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        loss = (decode(model(graph), graph, spec) - graph.y).square().mean()
        loss.backward()
        optimizer.step()
    return Checkpoint(model.eval(), name, spec, GraphSettings(k=6))


def _outputs(model, mesh, spec) -> torch.Tensor:
    graph = build_graph(mesh, spec, GraphSettings(k=6), prepare=model.prepare, mesh_graph=model.uses_mesh_graph)
    with torch.no_grad():
        return model.eval()(graph)


def _rewrite(path, out, edit) -> None:
    """Save ``path``'s tensors again with its metadata changed by ``edit(meta)``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["meshop"])
    edit(meta)
    save_file(load_file(str(path)), str(out), metadata={"meshop": json.dumps(meta)})


@pytest.mark.parametrize("name,config", [("beno", {"d_model": 16, "encoder_layers": 1, "levels": 2}),
                                         ("amg", {"blocks": 1})])
def test_feature_reading_models_round_trip_and_old_checkpoints_load(name, config, tmp_path):
    mesh, spec = _poisson_like()
    ckpt = _briefly_trained(name, mesh, spec, **config)
    path = checkpoint.save(tmp_path / "m.safetensors", ckpt)
    assert checkpoint.read_metadata(path)["features"] == {
        "position": [0, 2], "distance": [2, 3], "boundary_flag": [3, 4], "normal": [4, 6],
        "source": [6, 7], "g": [7, 8], "extended:g": [8, 9]}
    expected = _outputs(ckpt.model, mesh, spec)
    assert torch.equal(_outputs(checkpoint.load(path).model, mesh, spec), expected)

    def as_before_names(meta):  # written before the features section and (BENO) named features
        del meta["features"]
        if name == "beno":
            meta["model"]["config"].update(source_columns=[0], boundary_columns=[1, 2])
            del meta["model"]["config"]["source"], meta["model"]["config"]["boundary"]

    _rewrite(path, tmp_path / "old.safetensors", as_before_names)
    old = checkpoint.load(tmp_path / "old.safetensors").model
    assert torch.equal(_outputs(old, mesh, spec), expected)
    if name == "beno":
        assert old.config["source"] == ["source"] and old.config["boundary"] == ["g", "extended:g"]


def test_a_layout_without_a_feature_the_model_reads_is_one_sentence(tmp_path):
    mesh, spec = _poisson_like()
    path = checkpoint.save(tmp_path / "m.safetensors",
                           _briefly_trained("beno", mesh, spec, d_model=16, encoder_layers=1, levels=2,
                                            source=["source"]))

    def rename_source(meta):
        meta["features"]["heat"] = meta["features"].pop("source")

    _rewrite(path, tmp_path / "bad.safetensors", rename_source)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(tmp_path / "bad.safetensors")
    assert str(err.value) == (f"{tmp_path / 'bad.safetensors'}: incompatible checkpoint (BENO (source) reads node "
                              "feature 'source', which these node features lack (they hold position, distance, "
                              "boundary_flag, normal, g, extended:g, heat)).")


def test_time_dependent_checkpoints_without_a_usable_dynamics_section_are_refused(tmp_path):
    """A time stepper's checkpoint with its dynamics section removed rolled out with a frame step
    of 1 s (mppde), or failed on a symptom: "the model reads 4 node features but this meshop
    builds 7" (giorom), "the initial state 'temperature' is missing" (heat stepper); a frame_dt
    of "fast" was a ValueError traceback."""
    import shutil

    from typer.testing import CliRunner

    from meshop.cli import app
    from meshop.prediction import bundled_models

    bundled = bundled_models()
    cases = [("mpm2d", lambda meta: meta.pop("dynamics"), "model 'giorom' steps in time but the metadata has no "
                                                          "'dynamics' section"),
             ("mpm2d", lambda meta: meta["dynamics"].pop("moving"), "particle model 'giorom' but its 'dynamics' "
                                                                    "section does not say the nodes move"),
             ("heat3d-transient", lambda meta: meta.pop("dynamics"), "model 'stepper' steps in time but the "
                                                                     "metadata has no 'dynamics' section"),
             ("heat3d-transient", lambda meta: meta["dynamics"].update(frame_dt="fast"),
              "dynamics 'frame_dt' must be a positive number of seconds, got 'fast'")]
    for k, (name, edit, phrase) in enumerate(cases):
        _rewrite(bundled[name], tmp_path / f"{k}.safetensors", edit)
        with pytest.raises(CheckpointError, match="incompatible checkpoint"):
            checkpoint.load(tmp_path / f"{k}.safetensors")
    part = shutil.copy("examples/parts/bracket.vtu", tmp_path / "bracket.vtu")
    for k, (_, _, phrase) in enumerate(cases):
        result = CliRunner().invoke(app, ["predict", str(part), "--model", str(tmp_path / f"{k}.safetensors"),
                                          "--steps", "2"])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert phrase in result.stderr, result.stderr
    assert not list(tmp_path.glob("bracket.pred*"))


@pytest.mark.parametrize("device, error, message", [
    ("tpu", MeshError, "--device 'tpu': expected cpu, cuda or cuda:N"),
    (5, TypeError, "device must be a string"),
    ("cuda:99", MeshError, "cuda:99"),
])
def test_a_wrong_device_is_not_called_corrupt_weights(device, error, message):
    """checkpoint.load used to blame the file ("the checkpoint's weights are corrupt (device tpu
    is invalid)") for a device name it could not use."""
    with pytest.raises(error, match=message) as caught:
        checkpoint.load(Path(meshop.__file__).parent / "assets" / "models" / "heat3d.safetensors",
                        device=device)
    assert "corrupt" not in str(caught.value)
    with pytest.raises(TypeError, match="path must be a file path"):
        checkpoint.load(123)
