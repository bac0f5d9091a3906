"""Distributed data-parallel training (DDP) under ``torchrun``: one process per device, gloo on CPU,
NCCL on CUDA.

``torchrun --nproc-per-node N -m meshop train --config run.yaml`` starts N copies of the command
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set (across
hosts, torchrun's ``--nnodes`` / ``--rdzv-endpoint`` flags set them); :meth:`Distributed.from_env`
joins the process group from them, and the runner asks it for

- the training sampler: rank ``r`` of ``W`` takes every ``W``-th sample, from ``r``, of the same
  per-epoch order a single process uses (:class:`~meshop.training.EpochSampler`), with per-rank
  batches of ``batch_size / W``; so each step's ranks together see exactly the batch a single
  process would, and the averaged gradients equal its gradient (the padding of
  ``DistributedSampler`` repeats a few samples only when the training split is not a multiple
  of ``W``);
- the model wrapped with its step function in ``DistributedDataParallel``, so any step function
  (steady, unrolled in time, multi-level batches) has its gradients averaged across ranks;
- reductions: the training loss and the validation and test errors are computed on each rank's
  shard and summed across ranks.

Only rank 0 writes checkpoints, metrics and pictures; every rank reads ``last.safetensors`` to
resume. Every collective has a timeout (``MESHOP_DDP_TIMEOUT`` seconds, default 300): a rank that
fails makes torchrun stop the others, and a rank left waiting on one that hangs stops with a
message instead of hanging. :func:`check_environment` reads torchrun's variables before any rank
joins, so a misconfigured launch is one sentence instead of an error inside torch or a wait that
cannot end.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..errors import MeshError

#: seconds a collective waits for the other ranks (``MESHOP_DDP_TIMEOUT`` overrides)
DEFAULT_TIMEOUT_S = 300


def timeout_s() -> float:
    """``MESHOP_DDP_TIMEOUT`` (default :data:`DEFAULT_TIMEOUT_S`), checked: a positive number."""
    raw = os.environ.get("MESHOP_DDP_TIMEOUT")
    if raw is None:
        return float(DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise MeshError(f"MESHOP_DDP_TIMEOUT={raw!r}: expected the seconds a rank waits for the others, "
                        f"a positive number (default {DEFAULT_TIMEOUT_S}).")
    return seconds


class ShardedEpochSampler(DistributedSampler):
    """Rank ``rank``'s share of the order :class:`~meshop.training.EpochSampler` gives a single
    process: positions ``rank, rank + W, ...`` of it (padded to a multiple of ``W`` as
    ``DistributedSampler`` pads). ``set_epoch`` reshuffles; with ``W = 1`` it is the single order."""

    def __init__(self, n: int, seed: int, rank: int, world: int):
        super().__init__(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.epoch = 1            # as EpochSampler's: epochs count from 1

    def __iter__(self):
        from .trainer import EpochSampler

        single = EpochSampler(len(self.dataset), self.seed)
        single.set_epoch(self.epoch)
        order = list(single)
        while len(order) < self.total_size:
            order += order[: self.total_size - len(order)]
        return iter(order[self.rank: self.total_size: self.num_replicas])


class StepModule(torch.nn.Module):
    """``model`` and its step function as one module, ``forward(batch) -> (loss, logs)``, so that
    DistributedDataParallel averages the gradients of whatever the step function computes."""

    def __init__(self, model: torch.nn.Module, step):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, batch):
        return self.step(self.model, batch)


def check_environment(batch_size: int) -> None:
    """Check the variables torchrun sets (and ``MESHOP_DDP_TIMEOUT``) before joining the other
    ranks, so that a misconfigured environment gets one sentence naming the variable, not an
    error from inside torch.distributed or a wait on a rendezvous that cannot happen."""
    env = os.environ

    def integer(name: str, low: int, high: int | None, expected: str) -> int:
        raw = env[name]
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise MeshError(f"{name}={raw!r}: expected {expected}.")
        return value

    if "WORLD_SIZE" not in env:
        return
    world = integer("WORLD_SIZE", 1, None, "the number of training processes, an integer >= 1 (torchrun sets it)")
    if world == 1:
        return
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise MeshError(f"WORLD_SIZE={world} but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                        f"set: start distributed training with torchrun (torchrun --nproc-per-node {world} -m meshop "
                        "train ...), which sets RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, or unset WORLD_SIZE.")
    integer("RANK", 0, world - 1, f"this process's rank, an integer from 0 to {world - 1} (WORLD_SIZE={world})")
    if "LOCAL_RANK" in env:
        integer("LOCAL_RANK", 0, None, "this process's rank on its host, an integer >= 0")
    integer("MASTER_PORT", 1, 65535, "the TCP port of rank 0, an integer from 1 to 65535")
    timeout_s()
    if batch_size % world:
        raise MeshError(f"--batch-size {batch_size} is the global batch and must be a multiple of the {world} "
                        f"processes (WORLD_SIZE), e.g. {world * max(1, batch_size // world)}.")


@dataclass
class Distributed:
    """This process's place in a DDP run (see the module docstring)."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def from_env(cls, device: str | torch.device) -> Distributed | None:
        """Join the process group torchrun describes in the environment; None outside torchrun."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(device)
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():   # once per process; later runs in it reuse the group
            try:
                with _cpp_logs_kept_on_success():
                    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                            timeout=timedelta(seconds=timeout_s()))
            except (RuntimeError, ValueError) as err:
                raise MeshError(_join_failure(rank, world, err)) from None
            atexit.register(_leave)
        return cls(rank, world, device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, batch_size: int) -> int:
        """Samples per rank and step for a global ``batch_size`` (a multiple of the world size:
        :func:`check_environment` refused it before joining otherwise)."""
        return batch_size // self.world

    def sampler(self, n: int, seed: int) -> ShardedEpochSampler:
        return ShardedEpochSampler(n, seed, self.rank, self.world)

    def wrap(self, model: torch.nn.Module, step):
        """(DDP module, step function for the Trainer) training ``model`` with ``step``."""
        module = DistributedDataParallel(StepModule(model, step),
                                         device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return module, lambda ddp, batch: ddp(batch)

    def reduced(self, validate):
        """``validate(model, items) -> mean`` run on this rank's share of the items (every
        ``W``-th, from ``rank``) and averaged over all items of all ranks. It is handed the
        plain model, also when the Trainer passes its DDP module."""

        def run(model, items: list) -> float:
            if isinstance(model, DistributedDataParallel):
                model = model.module.model
            share = items[self.rank::self.world]
            total, count = self.sum(validate(model, share) * len(share) if share else 0.0, len(share))
            return total / count

        return run

    def mean_logs(self, row: dict, keys) -> None:
        """Average the entries ``keys`` of an epoch's history row over the ranks, in place."""
        keys = [k for k in keys if k in row]
        for key, value in zip(keys, self.sum(*(row[k] for k in keys))):
            row[key] = value / self.world

    def sum(self, *values: float) -> list[float]:
        """The sums over all ranks of ``values`` (one all-reduce)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        dist.barrier()

    def abandon(self) -> None:
        """This rank stops before the end of the run (an error, Ctrl-C, SIGTERM): at exit it leaves
        the group at once, without waiting for ranks that may be gone."""
        global _failed
        _failed = True

    def explain(self, err: Exception) -> Exception:
        """A failure on this rank as one clear sentence naming the rank (other errors unchanged)."""
        self.abandon()                  # the other ranks may be gone: leave without waiting for them
        if isinstance(err, MeshError):
            return MeshError(f"rank {self.rank} of {self.world}: {err}")
        if not (isinstance(err, dist.DistError) or "gloo" in str(err) or "NCCL" in str(err)):
            return err
        return MeshError(f"rank {self.rank} of {self.world}: lost the other ranks ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); one of them failed or stopped "
                         f"answering within {timeout_s():g} s (MESHOP_DDP_TIMEOUT); see its message.")


def _join_failure(rank: int, world: int, err: Exception) -> str:
    """One sentence for a failed ``init_process_group``: rank 0 not reached (no process listens at
    ``MASTER_ADDR:MASTER_PORT``, or an address nothing answers at), or another failure to join."""
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, dist.DistNetworkError) and rank != 0:
        return (f"rank {rank} of {world}: could not reach the rank-0 process at {where} within {timeout_s():g} s "
                f"(MASTER_ADDR / MASTER_PORT; torch: {reason}); start rank 0 too (torchrun starts every rank), check "
                "that MASTER_ADDR and MASTER_PORT name its host and port, or wait longer with MESHOP_DDP_TIMEOUT.")
    return f"rank {rank} of {world}: could not join the other ranks at {where} ({reason})."


@contextmanager
def _cpp_logs_kept_on_success():
    """Hold back what torch's C++ side writes to stderr (file descriptor 2) in the block: joining a
    rank 0 that does not answer makes c10d log every retry with a C++ stack trace, which the one
    sentence of :func:`_join_failure` replaces. Written out after all when the block succeeds."""
    sys.stderr.flush()
    saved = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    ok = False
    try:
        yield
        ok = True
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if ok:
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            sys.stderr.flush()
        held.close()


#: set when a run of this process failed, so that :func:`_leave` does not wait for the other ranks
_failed = False


def _leave() -> None:
    """Leave the process group at exit. After a clean run every rank first waits for the others,
    so that all of them tear down gloo together: a rank still inside a collective or its teardown
    when another (rank 0 hosts the rendezvous store) has exited can abort (seen once in CI:
    ``terminate called without an active exception``). After a failure the group is left at once."""
    if not dist.is_initialized():
        return
    if not _failed:
        try:
            dist.barrier()
        except Exception:       # a rank that died without a Python error: nothing to wait for
            pass
    dist.destroy_process_group()
