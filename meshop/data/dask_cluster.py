"""Run sample tasks on a Dask distributed cluster: ``local:N`` (a LocalCluster) or a scheduler address.

Each sample is one Dask task that writes its own files into the shared staging folder
(:mod:`meshop.data.staging`) and returns only its small manifest entry. Resilience is Dask's: a
task whose worker dies is rescheduled on another worker by the scheduler (up to its
``distributed.scheduler.allowed-failures`` setting, 3 by default), so a killed worker costs at
most the sample it was solving; samples already written stay done.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import partial
from itertools import islice
from typing import Callable, Iterator

from ..errors import MeshError
from .staging import SampleTask, load_entry

INSTALL = "pip install 'meshop[dask]'"
CONNECT_TIMEOUT = "20s"
#: tasks kept submitted per worker thread
IN_FLIGHT_PER_THREAD = 4


def import_distributed():
    """The ``distributed`` package, or a MeshError naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise MeshError(f"--scheduler needs Dask distributed, which is not installed: {INSTALL}.") from None
    return distributed


def parse_scheduler(scheduler: str) -> int | str:
    """``"local:N"`` -> N local worker processes; an address like ``tcp://host:8786`` -> itself."""
    if scheduler.startswith("local:"):
        count = scheduler.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise MeshError(f"--scheduler {scheduler!r}: expected local:N with N >= 1 worker processes.")
        return int(count)
    if "://" not in scheduler:
        raise MeshError(f"--scheduler {scheduler!r}: expected local:N or a scheduler address like "
                        "tcp://host:8786.")
    return scheduler


@contextmanager
def dask_client(scheduler: str) -> Iterator:
    """A connected ``distributed.Client``; a LocalCluster of one-thread worker processes for local:N."""
    distributed = import_distributed()
    target = parse_scheduler(scheduler)
    if isinstance(target, int):
        # one thread per process: gmsh is process-global (meshop.meshing serializes it anyway)
        with distributed.LocalCluster(n_workers=target, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(target, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise MeshError(f"could not reach the Dask scheduler at {target} ({err}).") from None
    with client:
        yield client


def run_on_dask(tasks: list[SampleTask], scheduler: str, make_sample: Callable[[SampleTask], dict],
                bar) -> dict[int, dict]:
    """Index -> manifest entry of every task, each run as one Dask task; ``bar`` counts them.

    At most :data:`IN_FLIGHT_PER_THREAD` tasks per worker thread are submitted at a time (a new
    one as each finishes), so a million-sample run keeps the scheduler's memory small."""
    distributed = import_distributed()
    import dask

    results: dict[int, dict] = {}
    if not tasks:
        return results
    pending, index = iter(tasks), {}
    solve = partial(_made_once, make_sample)

    def submit_up_to_window() -> list:
        """New futures, so that IN_FLIGHT_PER_THREAD per worker thread (workers may join) are running."""
        window = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
        futures = []
        for task in islice(pending, max(0, window - len(index))):
            futures.append(client.submit(solve, task, pure=False))
            index[futures[-1].key] = task.index
        return futures

    with dask_client(scheduler) as client:
        running = distributed.as_completed(submit_up_to_window())
        try:
            for future in running:
                results[index.pop(future.key)] = future.result()
                future.release()            # the entry is here; let the cluster forget it
                bar.update()
                running.update(submit_up_to_window())
        except distributed.KilledWorker as err:
            allowed = int(dask.config.get("distributed.scheduler.allowed-failures")) + 1
            raise RuntimeError(f"sample {index.get(err.task, err.task)} killed its Dask worker all {allowed} "
                               "times it ran (out of memory?); see the workers' logs.") from None
    return results


def _made_once(make_sample: Callable[[SampleTask], dict], task: SampleTask) -> dict:
    """The sample's stored entry when it is already written (Dask reruns a finished task whose
    result died with its worker), else ``make_sample(task)``."""
    stored = load_entry(task.path)
    return stored if stored is not None else make_sample(task)
