"""DDP training (2 gloo processes on the CPU, started as torchrun would start them): the weights of
one process with the same global batch for every registered model, resume under DDP, rank 0 alone
writes, and a rank that fails or hangs takes the run down with a clear message."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_time_training import TINY, _decay_dataset

from meshop import MeshError, checkpoint, models
from meshop.graph import GraphSettings
from meshop.training import EpochSampler, runner, train
from meshop.training.distributed import (Distributed, ShardedEpochSampler, _cpp_logs_kept_on_success,
                                         check_environment)

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
DARCY, POISSON = SAMPLES / "darcy2d", SAMPLES / "poisson2d"  # 2 train, 1 val, 1 test each
STEADY = dict(epochs=2, batch_size=2, lr=5e-3, graph=GraphSettings(k=8), progress=False)
SMALL = {"gno": dict(width=16, layers=2, kernel_width=16)}



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_rank(rank: int, world: int, port: int, timeout: float) -> None:
    """The environment torchrun gives rank ``rank`` of ``world`` on one host."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), MESHOP_DDP_TIMEOUT=str(timeout))
    torch.set_num_threads(1)


def _runs(decay: Path) -> dict[str, tuple[Path, dict]]:
    """Every registered model with a dataset of its kind and options: name -> (data, options)."""
    # every model trained on fields; the mesh mover (dmm) and the particle simulators (gns, giorom)
    # have their own data and step functions, covered by tests/test_dmm.py and test_particles.py;
    # of the time steppers, `stepper` stands for the family (mppde, mmpde: tests/test_mmpde.py)
    field_models = [n for n in models.available()
                    if n not in ("dmm", "gns", "giorom") and not models.model_class(n).time_dependent]
    runs = {name: (POISSON, {**STEADY, **SMALL.get(name, {})}) for name in field_models}
    runs["stepper"] = (decay, {**TINY, "epochs": 2})
    return runs


def _train_every_model(rank: int, world: int, port: int, out: str, decay: str) -> None:
    _as_rank(rank, world, port, timeout=120)
    for name, (data, options) in _runs(Path(decay)).items():
        train(data, model=name, out=Path(out) / name, **options)
    stop_after_epoch(2)
    with pytest.raises(KeyboardInterrupt):
        train(DARCY, model="gno", out=Path(out) / "resumed", **{**STEADY, "epochs": 4}, **SMALL["gno"])
    stop_after_epoch(None)
    train(DARCY, model="gno", out=Path(out) / "resumed", resume=True, **{**STEADY, "epochs": 4}, **SMALL["gno"])


def stop_after_epoch(epoch: int | None, _original=runner.Run._end_epoch) -> None:
    """Interrupt every later run of this process after ``epoch`` (None: no longer)."""
    def end_epoch(self, row):
        _original(self, row)
        if row["epoch"] == epoch:
            raise KeyboardInterrupt

    runner.Run._end_epoch = _original if epoch is None else end_epoch


def _weights(path) -> dict[str, torch.Tensor]:
    """The trained weights, but the key biases of attention layers (the middle third of
    ``in_proj_bias``) set to 0: softmax is blind to them, so their exact gradient is 0 and AdamW
    turns the ~1e-10 rounding noise of theirs into steps of up to ~lr/100 (3e-5 after 2 steps,
    the same with one process and different batch layouts); every other weight is compared."""
    weights = checkpoint.load(path).model.state_dict()
    for name, value in weights.items():
        if name.endswith("in_proj_bias"):
            third = len(value) // 3
            value[third: 2 * third] = 0.0
    return weights


def _assert_same_run(ddp: Path, single) -> None:
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.run.iterdir())
    reference = _weights(single.last)
    for key, weight in _weights(ddp / "last.safetensors").items():
        # float32 sums in another order (two ranks' all-reduce vs one batch), which AdamW's per-weight
        # normalization turns into up to 1.4e-5 on weights of ~0.25 (measured on an Intel Xeon; 1e-5
        # held on AMD EPYC); a wrong gradient average moves weights by ~lr = 5e-3 per step
        torch.testing.assert_close(weight, reference[key], rtol=0, atol=5e-5, msg=key)
    history = checkpoint.load(ddp / "last.safetensors").training["history"]
    assert len(history) == len(single.history)
    for mine, theirs in zip(history, single.history):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["val_rel_l2"] == pytest.approx(theirs["val_rel_l2"], rel=1e-5)


def test_ranks_batches_together_are_the_single_process_batches_of_every_epoch():
    single = EpochSampler(10, seed=3)
    ranks = [ShardedEpochSampler(10, seed=3, rank=r, world=2) for r in range(2)]
    for epoch in (1, 2):
        for sampler in [single, *ranks]:
            sampler.set_epoch(epoch)
        order, shards = list(single), [list(rank) for rank in ranks]
        for step in range(3):                          # global batch 4 = 2 per rank; the last has 2
            together = shards[0][2 * step: 2 * step + 2] + shards[1][2 * step: 2 * step + 2]
            assert sorted(together) == sorted(order[4 * step: 4 * step + 4])
    whole = ShardedEpochSampler(10, seed=3, rank=0, world=1)
    assert list(whole) == list(EpochSampler(10, seed=3))            # epoch 1, one process: the same order
    whole.set_epoch(2)
    assert list(whole) == order and order != list(EpochSampler(10, seed=3))   # reshuffled per epoch
    padded = [list(ShardedEpochSampler(5, seed=0, rank=r, world=2)) for r in range(2)]
    assert len(padded[0]) == len(padded[1]) == 3 and set(padded[0] + padded[1]) == set(range(5))


@pytest.mark.slow
def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(tmp_path, one_torch_thread):
    decay = _decay_dataset(tmp_path / "decay")
    mp.spawn(_train_every_model, args=(2, _free_port(), str(tmp_path / "ddp"), str(decay)), nprocs=2)
    for name, (data, options) in _runs(decay).items():
        _assert_same_run(tmp_path / "ddp" / name, train(data, model=name, out=tmp_path / "one" / name, **options))
    uninterrupted = train(DARCY, model="gno", out=tmp_path / "one" / "4 epochs", **{**STEADY, "epochs": 4},
                          **SMALL["gno"])
    _assert_same_run(tmp_path / "ddp" / "resumed", uninterrupted)


def _rank_1_fails(rank: int, world: int, port: int, out: str, hang: bool) -> None:
    _as_rank(rank, world, port, timeout=5)
    if rank == 1:
        def broken(*args, **kwargs):
            if hang:
                time.sleep(120)
            raise MeshError("cannot read the data")

        runner.load_training_data = broken
    try:
        train(DARCY, model="gno", out=Path(out), **STEADY, **SMALL["gno"])
    except MeshError as err:      # each rank's own sentence: spawn reports whichever rank died first
        (Path(out).parent / f"rank{rank}.txt").write_text(str(err))
        raise


@pytest.mark.slow
@pytest.mark.parametrize("hang, rank, message", [(False, 1, "rank 1 of 2: cannot read the data"),
                                                 (True, 0, "rank 0 of 2: lost the other ranks")])
def test_a_rank_that_fails_or_hangs_takes_the_run_down(tmp_path, hang, rank, message):
    started = time.perf_counter()
    with pytest.raises(mp.ProcessRaisedException, match=r"rank \d of 2: "):
        mp.spawn(_rank_1_fails, args=(2, _free_port(), str(tmp_path / "run"), hang), nprocs=2)
    assert (tmp_path / f"rank{rank}.txt").read_text().startswith(message)
    assert time.perf_counter() - started < 100          # not the 120 s the hanging rank sleeps
    assert not (tmp_path / "run" / "last.safetensors").exists()


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2"}, "RANK and MASTER_ADDR and MASTER_PORT are not set: start distributed training with torchrun"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "29500"}, "MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc': expected the number of training processes"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0'"),
    ({"RANK": "5"}, "RANK='5': expected this process's rank, an integer from 0 to 1"),
    ({"MASTER_PORT": "abc"}, "MASTER_PORT='abc': expected the TCP port of rank 0"),
    ({"MASTER_PORT": "99999"}, "MASTER_PORT='99999'"),
    ({"MESHOP_DDP_TIMEOUT": "x"}, "MESHOP_DDP_TIMEOUT='x': expected the seconds"),
    ({"MESHOP_DDP_TIMEOUT": "-5"}, "MESHOP_DDP_TIMEOUT='-5'"),
    ({"BATCH": 3}, "--batch-size 3 is the global batch and must be a multiple of the 2 processes"),
])
def test_a_misconfigured_torchrun_environment_is_one_sentence_before_joining(monkeypatch, env, message):
    """Checked before torch.distributed is touched: no KeyError/ValueError from inside it, no wait
    on a rendezvous that cannot happen (RANK=5 of 2 used to hang), no C++ stack on stderr."""
    env = dict(env)
    batch = env.pop("BATCH", 4)
    base = {} if "WORLD_SIZE" in env else {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
                                           "MASTER_PORT": "29500"}   # a case naming WORLD_SIZE sets it all
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "MESHOP_DDP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(MeshError, match=message.replace("(", r"\(").replace("+", r"\+")):
        check_environment(batch)


def test_a_single_process_environment_passes_the_check(monkeypatch):
    for name, value in {"WORLD_SIZE": "1", "MESHOP_DDP_TIMEOUT": "x"}.items():
        monkeypatch.setenv(name, value)
    check_environment(3)          # WORLD_SIZE=1: torchrun's variables are not read


def test_an_unreachable_rank_0_is_one_sentence_without_the_cpp_stack(monkeypatch, capfd):
    """A rank whose MASTER_ADDR:MASTER_PORT nothing listens at: c10d logged each connection retry
    with a C++ stack trace to stderr around meshop's sentence; now the sentence alone."""
    port = _free_port()
    for name, value in dict(WORLD_SIZE="2", RANK="1", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=str(port), MESHOP_DDP_TIMEOUT="1").items():
        monkeypatch.setenv(name, value)
    started = time.perf_counter()
    with pytest.raises(MeshError) as raised:
        Distributed.from_env("cpu")
    assert str(raised.value).startswith(f"rank 1 of 2: could not reach the rank-0 process at 127.0.0.1:{port} "
                                        "within 1 s (MASTER_ADDR / MASTER_PORT; torch: ")
    assert "MESHOP_DDP_TIMEOUT" in str(raised.value) and "\n" not in str(raised.value)
    out, err = capfd.readouterr()
    assert out == err == "", err[:500]                  # was: [c10d] ... frame #0: c10::Error::Error ...
    assert time.perf_counter() - started < 20
    assert not torch.distributed.is_initialized()


def test_what_joining_writes_to_stderr_is_kept_when_it_succeeds(capfd):
    with _cpp_logs_kept_on_success():
        os.write(2, b"a note from C++\n")
    assert capfd.readouterr().err == "a note from C++\n"
    with pytest.raises(RuntimeError), _cpp_logs_kept_on_success():
        os.write(2, b"retrying ... frame #0\n")
        raise RuntimeError("no rank 0")
    assert capfd.readouterr().err == ""
