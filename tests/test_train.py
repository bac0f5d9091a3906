"""Trainer: the loop really learns, resume equals an uninterrupted run, seeds repeat, outputs and
configs, and the `meshop train` command's errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from meshop import checkpoint
from meshop.errors import MeshError
from meshop.graph import GraphSettings, build_graph, decode
from meshop.prediction import Predictor
from meshop.training import Run, Trainer, evaluate, load_config, merge_options, train

from conftest import cli_runs_in_a_fresh_process

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
DARCY = SAMPLES / "darcy2d"  # 4 samples of 17 x 17 nodes: 2 train, 1 val, 1 test
SMALL = dict(graph=GraphSettings(k=8), width=16, layers=2, kernel_width=16, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """One darcy2d sample overfit: 300 steps of a small GNO."""
    trainer = Run(DARCY, "gno", epochs=300, batch_size=1, lr=2e-2, max_train=1, save_every=100,
                      graph=GraphSettings(k=8), width=32, layers=3, kernel_width=32,
                      out=tmp_path_factory.mktemp("runs") / "overfit", progress=False)
    return trainer, trainer.fit()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """Six epochs on the two darcy2d training samples, one sample per batch (12 steps)."""
    out = tmp_path_factory.mktemp("runs") / "short"
    return train(DARCY, epochs=6, batch_size=1, lr=5e-3, out=out, **SMALL)


def _weights(path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path).model.state_dict()


def test_overfits_a_tiny_dataset_below_one_percent(overfit):
    trainer, result = overfit
    final = checkpoint.load(result.last)
    train_error = evaluate(final.model, trainer.graphs["train"], final.fields)
    assert result.history[0]["train_loss"] > 0.2      # it starts far off ...
    assert train_error < 0.01                         # ... and memorizes the sample
    assert result.history[-1]["train_loss"] < 0.01


def test_run_outputs_metrics_csv_loss_png_and_data_card(overfit):
    trainer, result = overfit
    with open(result.run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "train_loss", "val_rel_l2", "lr", "seconds"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, 301))
    val = np.array([float(r["val_rel_l2"]) for r in rows])
    lr = np.array([float(r["lr"]) for r in rows])
    seconds = np.array([float(r["seconds"]) for r in rows])
    assert (np.diff(seconds) > 0).all()
    # one-cycle: warm-up to the peak (2e-2) at 30 % of the steps, then anneal to ~0
    assert abs(int(np.argmax(lr)) - 90) <= 1 and lr.max() == pytest.approx(2e-2, rel=1e-3)
    assert lr[-1] < 1e-6 and lr[0] < 2e-3
    assert (result.run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = result.metrics
    assert metrics["best_val_rel_l2"] == pytest.approx(val.min(), rel=1e-6)
    assert metrics["best_epoch"] == int(np.argmin(val)) + 1 and metrics["epochs"] == 300
    best = checkpoint.load(result.best)
    assert best.metrics == metrics
    assert best.metrics["test_rel_l2"] == pytest.approx(
        evaluate(best.model, trainer.graphs["test"], best.fields), rel=1e-6)
    assert best.metrics["best_val_rel_l2"] == pytest.approx(
        evaluate(best.model, trainer.graphs["val"], best.fields), rel=1e-5)
    card = best.data
    assert card["problem"] == "darcy2d" and card["dataset"] == str(DARCY)
    assert card["sizes"] == {"train": 1, "val": 1, "test": 1}
    assert card["split"]["val"] == ["sample_00002.vtu"] and card["split"]["test"] == ["sample_00003.vtu"]
    assert best.fields.dirichlet == {"u": 0.0} and best.fields.inputs == ["permeability"]


def test_checkpoint_round_trip_gives_identical_predictions(overfit):
    trainer, result = overfit
    loaded = checkpoint.load(result.last)
    mesh = trainer.data.meshes["test"][0]
    graph = build_graph(mesh, trainer.fields, trainer.graph, prepare=trainer.model.prepare)
    trainer.model.eval()
    with torch.no_grad():
        expected = decode(trainer.model(graph), graph, trainer.fields)
        got = decode(loaded.model(graph), graph, loaded.fields)
    assert torch.equal(expected, got)
    # and through the Predictor, from the file and the bare mesh alone
    field = Predictor(result.last).predict(mesh).mesh.point_data["u_pred"]
    np.testing.assert_allclose(field, expected[:, 0].numpy(), rtol=1e-5, atol=1e-7)


def test_same_seed_same_result_other_seed_differs(short_run, tmp_path):
    again = train(DARCY, epochs=6, batch_size=1, lr=5e-3, out=tmp_path / "again", **SMALL)
    assert again.history == [dict(row, seconds=a["seconds"]) for row, a in zip(short_run.history, again.history)]
    first, second = _weights(short_run.last), _weights(again.last)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = train(DARCY, epochs=1, batch_size=1, lr=5e-3, seed=1, out=tmp_path / "other", **SMALL)
    assert other.history[0]["train_loss"] != short_run.history[0]["train_loss"]


def test_resume_after_interruption_matches_uninterrupted_run(short_run, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    original = Trainer.train_epoch

    def interrupt_at_epoch_4(self, epoch, bar=None):
        if epoch == 4:
            raise KeyboardInterrupt
        return original(self, epoch, bar)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_at_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        train(DARCY, epochs=6, batch_size=1, lr=5e-3, out=out, **SMALL)
    assert checkpoint.load(out / "last.safetensors").training["epoch"] == 3
    monkeypatch.setattr(Trainer, "train_epoch", original)

    resumed = train(DARCY, epochs=6, batch_size=1, lr=5e-3, out=out, resume=True, **SMALL)
    assert [r["epoch"] for r in resumed.history] == list(range(1, 7))
    for mine, reference in zip(resumed.history, short_run.history):
        assert mine["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-6, abs=1e-7)
        assert mine["val_rel_l2"] == pytest.approx(reference["val_rel_l2"], rel=1e-6, abs=1e-7)
        assert mine["lr"] == pytest.approx(reference["lr"], rel=1e-9)
    mine, reference = _weights(resumed.last), _weights(short_run.last)
    for key in reference:
        torch.testing.assert_close(mine[key], reference[key], rtol=1e-5, atol=1e-6)
    assert resumed.metrics["test_rel_l2"] == pytest.approx(short_run.metrics["test_rel_l2"], rel=1e-5)


def test_resume_refuses_changed_options_and_missing_run(short_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(short_run.run, out)
    with pytest.raises(MeshError, match="the run used epochs=6, not 9"):
        train(DARCY, epochs=9, batch_size=1, lr=5e-3, out=out, resume=True, **SMALL)
    with pytest.raises(MeshError, match="already holds a training run"):
        train(DARCY, epochs=6, batch_size=1, lr=5e-3, out=out, **SMALL)
    with pytest.raises(MeshError, match="nothing to resume"):
        train(DARCY, epochs=6, out=tmp_path / "empty", resume=True, **SMALL)


def test_init_fine_tunes_from_a_checkpoint_and_refuses_another_model(short_run, tmp_path):
    # at a vanishing learning rate one epoch leaves the weights as loaded: the checkpoint's weights
    # and validation error, where a random start has other weights
    tuned = train(DARCY, epochs=1, batch_size=1, lr=1e-12, out=tmp_path / "tuned", init=short_run.last, **SMALL)
    assert tuned.history[0]["val_rel_l2"] == pytest.approx(short_run.history[-1]["val_rel_l2"], rel=1e-5)
    fresh = train(DARCY, epochs=1, batch_size=1, lr=1e-12, out=tmp_path / "fresh", **SMALL)
    reference, mine, other = _weights(short_run.last), _weights(tuned.last), _weights(fresh.last)
    for key in reference:
        torch.testing.assert_close(mine[key], reference[key], rtol=1e-6, atol=1e-9)
    assert max((other[key] - reference[key]).abs().max().item() for key in reference) > 0.01
    assert checkpoint.load(tuned.last).training["options"]["init"] == str(short_run.last)
    with pytest.raises(MeshError, match="width=16 where this run's has 32"):
        train(DARCY, epochs=1, out=tmp_path / "wide", init=short_run.last, **{**SMALL, "width": 32})
    with pytest.raises(MeshError, match="holds a 'gno' model; this run trains 'mgno'"):
        train(DARCY, "mgno", epochs=1, out=tmp_path / "other", init=short_run.last, progress=False)
    with pytest.raises(MeshError, match="its model learned from inputs permeability, this run's are u; "
                                        "fine-tuning needs the same fields"):
        train(DARCY, epochs=1, out=tmp_path / "swapped", init=short_run.last, inputs=["u"],
              targets=["permeability"], **SMALL)
    with pytest.raises(MeshError, match="init must be the path of a checkpoint"):
        train(DARCY, epochs=1, out=tmp_path / "bad", init=3, **SMALL)


def test_user_folder_without_split_gets_a_seeded_random_split(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for path in sorted(DARCY.glob("*.vtu")):
        shutil.copy(path, folder / f"case_{path.stem[-1]}.vtu")
    (folder / "dataset.json").write_text(json.dumps({"inputs": ["permeability"], "targets": ["u"]}))
    result = train(folder, epochs=1, out=tmp_path / "run", **SMALL)
    card = checkpoint.load(result.best).data
    assert card["problem"] is None and card["sizes"] == {"train": 3, "val": 1, "test": 0}
    names = sorted(card["split"]["train"] + card["split"]["val"])
    assert names == [f"case_{i}.vtu" for i in range(4)]
    assert result.metrics["test_rel_l2"] is None
    # a user folder has no problem facts: no Dirichlet coupling is assumed
    assert checkpoint.load(result.best).fields.dirichlet == {}


def test_config_file_and_flag_precedence(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"data: {DARCY}\nepochs: 7\nschedule: cosine\ngraph: {{k: 8}}\n"
                      "model_options: {width: 24, layers: 2}\n")
    options = load_config(config)
    assert options["graph"] == GraphSettings(k=8) and options["width"] == 24 and options["schedule"] == "cosine"
    merged = merge_options(config, ["width=12", "kernel_width=8"], epochs=2, inputs="permeability", lr=None)
    assert merged["epochs"] == 2 and merged["width"] == 12 and merged["kernel_width"] == 8
    assert merged["inputs"] == ["permeability"] and "lr" not in merged and merged["layers"] == 2
    for text, phrase in [("epoch: 3\n", "unknown option 'epoch'"), ("[1, 2]\n", "YAML mapping"),
                         ("graph: {k: 8, radius_m: 1}\n", "bad graph settings"), ("a: [\n", "not a valid YAML")]:
        config.write_text(text)
        with pytest.raises(MeshError, match=phrase):
            load_config(config)
    with pytest.raises(MeshError, match="no dataset given"):
        merge_options(None, None, epochs=2)


def _cli(*args):
    from typer.testing import CliRunner

    from meshop.cli import app

    result = CliRunner().invoke(app, ["train", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_cli_trains_from_config_with_overrides(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"data: {DARCY}\nepochs: 5\nbatch_size: 2\ngraph: {{k: 8}}\n"
                      "model_options: {width: 16, layers: 2, kernel_width: 16}\n")
    code, out, err = _cli("--config", config, "--epochs", "2", "--model-option", "width=8", "--out",
                          tmp_path / "run", "--quiet")
    assert code == 0, err
    assert "test relative L2" in out and "best.safetensors" in out
    best = checkpoint.load(tmp_path / "run" / "best.safetensors")
    assert best.metrics["epochs"] == 2 and best.model.config["width"] == 8 and best.model.config["layers"] == 2
    assert best.graph.k == 8


def test_cli_bad_input_exit_code_2_one_line(tmp_path):
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("epochs: [\n")
    typed = {}     # options of the wrong type in a config file were TypeError / ValueError tracebacks
    for name, text in [("seed", "seed: 1.5"), ("negseed", "seed: -1"), ("data", f"data: [{DARCY}]"),
                       ("max_train", "max_train: two"), ("resume", "resume: 'yes'")]:
        typed[name] = tmp_path / f"{name}.yaml"
        typed[name].write_text(("" if name == "data" else f"data: {DARCY}\n") + text + "\n")
    cases = [
        (["--config", typed["seed"]], "seed must be a non-negative integer, got 1.5"),
        (["--config", typed["negseed"]], "seed must be a non-negative integer, got -1"),
        (["--config", typed["data"]], "data must be the path of a dataset folder"),
        (["--config", typed["max_train"]], "max_train must be a positive integer, got 'two'"),
        (["--config", typed["resume"]], "resume must be true or false, got 'yes'"),
        (["--data", tmp_path / "nowhere"], "no such dataset folder"),
        (["--data", DARCY, "--model", "fno9"], "unknown model 'fno9'"),
        (["--data", DARCY, "--inputs", "conductivity"], "point field 'conductivity' is missing"),
        (["--data", DARCY, "--model-option", "depth=3"], "has no hyper-parameter(s) ['depth']"),
        (["--data", DARCY, "--epochs", "0"], "epochs must be a positive integer"),
        (["--config", bad_config], "not a valid YAML file"),
        (["--epochs", "3"], "no dataset given"),
        (["--data", DARCY, "--resume"], "nothing to resume"),
        (["--data", DARCY, "--prior"], "a prior needs a problem whose PDE meshop knows"),
        (["--data", DARCY, "--lr", "1e30", "--batch-size", "1", "--model-option", "width=8"], "training diverged"),
    ]
    _assert_each_fails_in_one_line(cases, tmp_path / "run")


def _assert_each_fails_in_one_line(cases, out, *extra):
    """Each ``(args, phrase)`` of ``meshop train`` (plus ``extra``) exits 2 with one line holding
    ``phrase``, no traceback, and no run folder ``out`` left behind."""
    for args, phrase in cases:
        code, _, err = _cli(*args, *extra, "--out", out, "--quiet")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (args, err)
        assert phrase in lines[0], (phrase, lines[0])
        assert not out.exists(), "a failed run left a folder behind"


def test_cli_bad_field_names_and_init_paths_are_one_sentence_before_training(tmp_path):
    """Overlapping or repeated fields trained a whole run and failed writing its checkpoint
    (leaving the run folder), an integer list of inputs was a TypeError traceback, an empty target
    list read as a model error, and an --init folder as a missing file."""
    configs = {}
    for name, text in [("int", "inputs: 5"), ("overlap", "inputs: [u]"), ("twice", "inputs: [permeability, permeability]"),
                       ("swap", "targets: [permeability]"), ("none", "targets: []")]:
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(f"data: {DARCY}\n{text}\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "best.safetensors").write_bytes(b"")
    cases = [
        (["--config", configs["int"]], "inputs must be a list of point-field names like ['u'], got 5."),
        (["--config", configs["overlap"]], "field 'u' is both an input and a target; inputs and targets must be distinct fields."),
        (["--config", configs["twice"]], "field 'permeability' is listed twice; inputs and targets must be distinct fields."),
        (["--config", configs["swap"]], "field 'permeability' is both an input and a target"),
        (["--config", configs["none"]], "no target field: targets is empty; name at least one field to learn."),
        (["--data", DARCY, "--init", tmp_path / "runs"],
         f"{tmp_path / 'runs'}: is a folder, not a checkpoint file; give a .safetensors file such as "
         f"{tmp_path / 'runs' / 'best.safetensors'}."),
    ]
    _assert_each_fails_in_one_line(cases, tmp_path / "run", "--epochs", "1")


def test_field_roles_are_checked_once_before_any_sample_is_read(monkeypatch):
    """load_training_data checked the roles again after MeshDataset had (which skipped the empty
    target list), so a run naming no target read every sample before being refused."""
    import meshop.data.dataset as dataset
    import meshop.io
    from meshop.training.data import load_training_data

    checks, reads = [], []
    check_roles, read = dataset.check_roles, meshop.io.read
    monkeypatch.setattr(dataset, "check_roles", lambda *a, **k: checks.append(a) or check_roles(*a, **k))
    monkeypatch.setattr(meshop.io, "read", lambda *a, **k: reads.append(a) or read(*a, **k))
    with pytest.raises(MeshError, match=r"no target field: targets is empty; name at least one field to learn\.$"):
        load_training_data(DARCY, targets=[])
    assert reads == [] and len(checks) == 1
    checks.clear()
    assert load_training_data(DARCY).fields.targets == ["u"] and len(checks) == 1 and len(reads) == 4


def test_inputs_and_targets_may_be_one_comma_separated_string(tmp_path):
    run = Run(DARCY, inputs="permeability", targets=" u ", out=tmp_path / "run", **SMALL)
    assert run.inputs == ["permeability"] and run.targets == ["u"]
    with pytest.raises(MeshError, match=r"targets must be a list of point-field names like \['u'\], got \[1, 2\]"):
        Run(DARCY, targets=[1, 2], out=tmp_path / "run", **SMALL)


def test_cli_option_errors_come_before_loading_torch_in_one_line(tmp_path):
    """Each was two lines, 'meshop: loading torch ...' (a few seconds) then the error: the flags
    are now checked before torch is imported (meshop.training imports it only on first use)."""
    cases = [(["--epochs", "0"], "epochs must be a positive integer, got 0."),
             (["--batch-size", "0"], "batch_size must be a positive integer, got 0."),
             (["--lr", "-1"], "lr must be a positive number, got -1.0."),
             (["--schedule", "sgd"], "unknown schedule 'sgd'"),
             (["--seed", "-1"], "seed must be a non-negative integer, got -1."),
             (["--model-option", "width"], "--model-option 'width': expected KEY=VALUE"),
             ([], "no dataset given")]
    argvs = [["train", *(["--data", str(DARCY)] if args else []), *args, "--out", str(tmp_path / "run")]
             for args, _ in cases]
    runs = cli_runs_in_a_fresh_process(argvs, tmp_path)
    for (args, phrase), (code, _, err, torch_loaded) in zip(cases, runs):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and phrase in lines[0], (args, err)
        assert not torch_loaded, f"{args} imported torch"
    assert not (tmp_path / "run").exists()
