"""Kernel-integral speed and memory against neuraloperator's GNOBlock, measured in the same run.

    python benchmarks/kernels.py                          # 100k and 1M forward, 100k backward
    python benchmarks/kernels.py --sizes 100000 --modes forward
    python benchmarks/kernels.py --sizes 100000 --modes backward --calls 3   # a later call: steady state

Three implementations compute one kernel integral over a radius graph of uniform random points in the unit
cube (mean degree ~27), ``CHANNELS`` channels, a kernel MLP with one hidden layer of ``HIDDEN``:
meshop's ``EdgeEmbedding`` + ``KernelIntegral`` (edge MLP ``(d + 1) -> HIDDEN -> CHANNELS`` with
node terms gathered, mean aggregation) in pure PyTorch (``meshop``: chunked inference; training
through the recomputing ``KernelSum``; ``MESHOP_COMPILED_KERNELS=0``), the same with the compiled
kernel (``meshop-compiled``, meshop's default where a C compiler exists, both passes in C; its
build is left out of the time) and the peer's ``GNOBlock(transform_type="linear",
pos_embedding_type=None, channel_mlp_layers=[HIDDEN], reduction="mean")`` (edge MLP
``2d -> HIDDEN -> CHANNELS``), in its fastest setup that installs here: torch-scatter's
``segment_csr`` when installed (else its ``segment_csr`` swapped for ``torch.segment_reduce``, the
same CSR reduction: its own fallback is a python loop over nodes), open3d's search when
installed (its torch ops need the torch they were built for). Without open3d the peer's own
search is a dense ``cdist`` (O(N^2)): its forward is then fed meshop's neighbours and its search
row is left out. Each case runs in a fresh process, so peak memory (max RSS, torch included) is
its own. ``forward``: inference (no autograd); ``backward``: forward + backward of a sum of
squares, as in training. ``kernel s`` is wall time, ``cpu s`` the process's CPU time (all its
threads) over the same span: on a shared machine the second says more about the work done.
GFLOP/s counts the two edge matmuls, the product and the sum (``flops`` column); ``limit`` is
that count at the fp32 matmul rate measured at start (a 2048^3 sgemm). ``--calls N`` runs the layer
N times in each case's process and times the last call (default 1: the first, which also pays for
the process's fresh memory, a page fault per 4 kB page touched first; a training loop pays that
once, a later call shows a step's cost).

neuraloperator is an optional benchmark dependency (``pip install --no-deps neuraloperator
tensorly tensorly-torch opt_einsum``): without it the peer rows say "peer not installed".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from machine import machine

CHANNELS = 32
HIDDEN = 32
DEGREE = 27
SEED = 0


def peer_setup() -> str | None:
    """The peer's setup in words, or None when neuraloperator is not installed."""
    if importlib.util.find_spec("neuralop") is None:
        return None
    scatter = ("torch-scatter" if importlib.util.find_spec("torch_scatter")
               else "its segment_csr on torch.segment_reduce (torch-scatter not installed)")
    search = "open3d search" if importlib.util.find_spec("open3d") else "meshop's neighbours (no open3d)"
    return f"{search}, {scatter}"


def edge_flops(dim: int, peer: bool) -> int:
    """Flops per edge: the two edge matmuls, the kernel-value product and the sum."""
    first = 2 * dim if peer else dim + 1
    return 2 * first * HIDDEN + 2 * HIDDEN * CHANNELS + 2 * CHANNELS


def matmul_rate() -> float:
    """fp32 GFLOP/s of a 2048^3 sgemm, best of 3."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best / 1e9


def run_case(impl: str, n: int, mode: str, threads: int, calls: int = 1) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from meshop.geometry.neighbors import radius_graph

    torch.manual_seed(SEED)
    points = np.random.default_rng(SEED).random((n, 3))
    r = (DEGREE * 3 / (4 * np.pi * n)) ** (1 / 3)
    started = time.perf_counter()
    edges = torch.from_numpy(radius_graph(points, r))
    search = time.perf_counter() - started
    pos = torch.from_numpy(points).float()
    f = torch.randn(n, CHANNELS, requires_grad=mode == "backward")
    from meshop.nn import compiled

    compiled.use_compiled(impl == "meshop-compiled")                    # "meshop": the pure-PyTorch path
    if impl == "meshop-compiled":
        compiled.library()                                              # built outside the timing
    layer = peer_layer(pos, f, edges, r) if impl == "peer" else meshop_layer(pos, f, edges, r)
    if impl == "peer" and importlib.util.find_spec("open3d") is None:
        search = None
    for _ in range(calls):                                              # the last call is timed
        f.grad = None
        started, cpu = time.perf_counter(), time.process_time()
        if mode == "forward":
            with torch.no_grad():
                layer()
        else:
            layer().square().sum().backward()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"search": search, "seconds": seconds, "cpu": cpu, "edges": edges.shape[1],
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def meshop_layer(pos, f, edges, r):
    """meshop's edge embedding and kernel integral on ``f``, as a closure."""
    from meshop.nn import EdgeEmbedding, Edges, KernelIntegral

    embedding, integral = EdgeEmbedding(3, CHANNELS, HIDDEN), KernelIntegral(CHANNELS, HIDDEN)
    return lambda: integral(f, Edges(edges, embedding.bind(pos, f, r), len(pos)))


def peer_layer(pos, f, edges, r):
    """neuraloperator's GNOBlock integral transform on ``f`` over the same neighbours."""
    import torch
    from neuralop.layers.gno_block import GNOBlock

    block = GNOBlock(CHANNELS, CHANNELS, 3, r, transform_type="linear", pos_embedding_type=None,
                     channel_mlp_layers=[HIDDEN], reduction="mean",
                     use_torch_scatter_reduce=importlib.util.find_spec("torch_scatter") is not None,
                     use_open3d_neighbor_search=importlib.util.find_spec("open3d") is not None)
    if importlib.util.find_spec("torch_scatter") is None:   # its fallback is a python loop
        import neuralop.layers.integral_transform as transform

        transform.segment_csr = lambda src, indptr, reduction, use_scatter=True: torch.segment_reduce(
            src, reduction, offsets=indptr, axis=src.ndim - 2)
    if importlib.util.find_spec("open3d") is not None:
        neighbors = block.neighbor_search(data=pos, queries=pos, radius=r)
    else:
        splits = torch.zeros(len(pos) + 1, dtype=torch.int64)
        splits[1:] = torch.bincount(edges[1], minlength=len(pos)).cumsum(0)
        neighbors = {"neighbors_index": edges[0], "neighbors_row_splits": splits}
    return lambda: block.integral_transform(y=pos, x=pos, neighbors=neighbors, f_y=f)


def case_in_subprocess(impl: str, n: int, mode: str, threads: int, timeout: float, calls: int) -> dict | str:
    command = [sys.executable, __file__, "--case", impl, str(n), mode, "--threads", str(threads),
               "--calls", str(calls)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"over {timeout:.0f} s"
    if done.returncode:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:80]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--modes", nargs="+", default=["forward", "backward"])
    parser.add_argument("--backward-max", type=int, default=100_000, help="largest backward case")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per case")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in every case (default: torch's); on a loaded machine "
                             "1 avoids OpenMP threads waiting on each other")
    parser.add_argument("--calls", type=int, default=1,
                        help="calls of the layer per case, the last one timed (default 1: the first)")
    parser.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.case[2], args.threads, args.calls)))
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    peer, rate = peer_setup(), matmul_rate()
    print(f"machine: {machine()}; fp32 sgemm {rate:.0f} GFLOP/s")
    print(f"peer: {'neuraloperator GNOBlock, ' + peer if peer else 'peer not installed'}")
    if args.calls > 1:
        print(f"timed: call {args.calls} of {args.calls} in each case's process")
    header = ("mode", "points", "edges", "impl", "search s", "kernel s", "cpu s", "GFLOP/s",
              "x limit", "peak GiB", "peer/this time", "peer/this memory")
    rows = [header]
    for mode in args.modes:
        for n in args.sizes:
            if mode == "backward" and n > args.backward_max:
                continue
            impls = ["meshop", "meshop-compiled"]
            ours = {impl: case_in_subprocess(impl, n, mode, args.threads, args.timeout, args.calls)
                    for impl in impls}
            theirs = (case_in_subprocess("peer", n, mode, args.threads, args.timeout, args.calls) if peer
                      else "peer not installed")
            rows += table_rows(mode, n, ours, theirs, rate)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def table_rows(mode: str, n: int, ours: dict, theirs: dict | str, rate: float) -> list[tuple]:
    """The rows of one case, ``ours`` by implementation; ``rate``: the sgemm GFLOP/s (``x limit``
    = how many times slower than the flops at that rate; backward counts 3x the forward's flops);
    the ratios compare the peer to each meshop row (> 1: meshop faster / smaller)."""
    rows = []
    for impl, case in (*ours.items(), ("peer", theirs)):
        if isinstance(case, str):
            rows.append((mode, f"{n:,}", "", impl, "", case, "", "", "", "", "", ""))
            continue
        flops = case["edges"] * edge_flops(3, impl == "peer") * (3 if mode == "backward" else 1)
        gflops = flops / case["seconds"] / 1e9
        ratio_t = ratio_m = ""
        if impl != "peer" and isinstance(theirs, dict):
            ratio_t = f"{theirs['seconds'] / case['seconds']:.1f}x"
            ratio_m = f"{theirs['peak_gib'] / case['peak_gib']:.1f}x"
        search = "" if case["search"] is None else f"{case['search']:.2f}"
        rows.append((mode, f"{n:,}", f"{case['edges']:,}", impl, search, f"{case['seconds']:.2f}",
                     f"{case['cpu']:.2f}", f"{gflops:.1f}", f"{rate / gflops:.1f}",
                     f"{case['peak_gib']:.2f}", ratio_t, ratio_m))
    return rows


if __name__ == "__main__":
    main()
