"""Dataset generation throughput: one process vs a Dask LocalCluster of 1 and 2 worker processes.

The baseline is ``generate(...)`` in this process, measured in the same run. For each cluster size
a LocalCluster of one-thread worker processes is started (its start-up time printed apart), its
workers warmed up by a 1-sample run each (imports; the baseline gets one too), then the same dataset is generated on it through
its scheduler address; the check column says whether the folder is byte-identical to the
baseline's.

    python benchmarks/generate_dask.py                    # poisson2d, 24 samples of ~2000 nodes
    python benchmarks/generate_dask.py --n 8 --resolution 500
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from machine import machine


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def timed_generate(out: Path, args, scheduler: str | None = None) -> float:
    from meshop.data import generate

    started = time.perf_counter()
    generate(args.problem, args.n, out, seed=0, resolution=args.resolution, progress=False, scheduler=scheduler)
    return time.perf_counter() - started


def cluster_row(workers: int, args, scratch: Path, baseline: dict, serial_seconds: float) -> str:
    from meshop.data import generate
    from meshop.data.dask_cluster import dask_client

    started = time.perf_counter()
    with dask_client(f"local:{workers}") as client:
        start_seconds = time.perf_counter() - started
        address = client.scheduler.address
        generate(args.problem, workers, scratch / f"warm-{workers}", resolution=args.resolution,
                 progress=False, scheduler=address)
        seconds = timed_generate(scratch / f"dask-{workers}", args, address)
    same = files(scratch / f"dask-{workers}") == baseline
    return (f"| Dask local:{workers} | {start_seconds:>7.1f} | {seconds:>8.1f} | {args.n / seconds:>9.2f} "
            f"| {serial_seconds / seconds:>6.2f}x | {'byte-identical' if same else 'DIFFERENT'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="poisson2d")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"dataset: {args.problem}, {args.n} samples, resolution {args.resolution}")
    print("| runner | start s | generate s | samples/s | vs one process | check |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        from meshop.data import generate

        generate(args.problem, 1, scratch / "warm", resolution=args.resolution, progress=False)   # imports
        serial_seconds = timed_generate(scratch / "serial", args)
        baseline = files(scratch / "serial")
        print(f"| one process | {0.0:>7.1f} | {serial_seconds:>8.1f} | {args.n / serial_seconds:>9.2f} | 1.00x | baseline |")
        for workers in args.workers:
            print(cluster_row(workers, args, scratch, baseline, serial_seconds), flush=True)


if __name__ == "__main__":
    main()
