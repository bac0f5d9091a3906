"""Prediction speed and peak memory at 10k, 100k and 1M nodes.

Each case runs in a fresh process so its peak resident memory is its own. The baseline is the
finite-element solve the surrogate replaces (scikit-fem assembly + pyamg, the same PDE and mesh),
measured in the same run. Above ``--max-nodes``, a model with a finite receptive field (``gno``) is
run both partitioned and whole; a model with global reach (the default ``mgno``) always runs whole,
its kernel layers summing messages over edge chunks to bound memory.
Both timings start from a mesh in memory whose boundary has been found (the FEM needs it too):
prediction time is then node features (distance to boundary, extended boundary values), the
graphs (mesh graph when the model reads it, hierarchy levels) and the model, each also printed
alone; FEM time is assembly and solve. Imports and checkpoint loading are left out (a Predictor loads
the modules and the compiled kernel its predictions run when it is constructed). Each row
also gives the prediction's relative L2 error against that FEM solution (nodal norm): a speed
is only worth quoting at a resolution where the model is still right.

    python benchmarks/predict.py                        # the default model at 10k, 100k, 1M
    python benchmarks/predict.py --model heat3d-gno     # the local GNO, partitioned at 1M
    python benchmarks/predict.py --sizes 10000          # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from machine import machine


def cube(n_nodes: int):
    """A unit-cube tetrahedral mesh with about ``n_nodes`` nodes (scikit-fem), in millimetres."""
    import meshop
    from skfem import MeshTet

    side = max(3, round(n_nodes ** (1 / 3)))
    m = MeshTet.init_tensor(*(np.linspace(0.0, 100.0, side),) * 3)
    return meshop.Mesh(m.p.T, {"tetra": m.t.T})


def run_case(n_nodes: int, mode: str, model: str | None, max_nodes: int, save: str) -> dict:
    mesh = cube(n_nodes)
    mesh.boundary_mask  # found once, before either timing
    if mode == "fem":
        from meshop.data.fem import solve_poisson

        started = time.perf_counter()
        boundary = np.flatnonzero(mesh.boundary_mask)
        field = solve_poisson(mesh.points, mesh.cells["tetra"], np.ones(mesh.n_points), boundary,
                              np.zeros(len(boundary)), solver="amg", tol=1e-8).u
    else:
        from meshop.prediction import Predictor

        # imports and checkpoint loading happen once per session, outside the timed region
        predictor = Predictor(model, max_nodes=max_nodes if mode == "partitioned" else 10**12)
        started = time.perf_counter()
        result = predictor.predict(mesh, estimate=False)   # the model alone; the estimate: default_model.py
    seconds = time.perf_counter() - started
    if mode != "fem":
        field = result.mesh.point_data[f"{predictor.checkpoint.fields.targets[0]}_pred"]
    np.save(save, np.asarray(field, dtype=np.float64).ravel())  # for the error, outside the timing
    stages = {} if mode == "fem" else result.timings
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    parts = 1 if mode == "fem" else result.n_parts
    return {"nodes": mesh.n_points, "mode": mode if parts == 1 else f"{parts} parts",
            "seconds": seconds, "stages": stages, "peak_gib": peak_kib / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--model", default=None, help="checkpoint or bundled name [default model]")
    parser.add_argument("--max-nodes", type=int, default=200_000, help="partition above this many nodes")
    parser.add_argument("--case", nargs=3, metavar=("N", "MODE", "SAVE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(int(args.case[0]), args.case[1], args.model, args.max_nodes, args.case[2])))
        return

    from meshop.prediction import Predictor

    model = Predictor(args.model).checkpoint
    local = model.model.receptive_hops is not None
    print(f"machine: {machine()}")
    print(f"model: {args.model or 'bundled default'} ({model.model_name}, {model.model.n_parameters():,} parameters; "
          + (f"receptive field {model.model.receptive_hops} hops: partitioned above {args.max_nodes:,} nodes)"
             if local else "global reach: always whole, messages summed in edge chunks)"))
    header = (f"| {'nodes':>9} | {'mode':<13} | {'seconds':>8} | {'features s':>10} | {'graph s':>7} | {'model s':>7} "
              f"| {'nodes/s':>9} | {'peak GiB':>8} | {'FEM s':>7} | {'speed-up vs FEM':>15} | {'error vs FEM':>12} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    with tempfile.TemporaryDirectory() as fields:
        for size in args.sizes:
            modes = ["whole"] if size <= args.max_nodes or not local else ["partitioned", "whole"]
            fem = _spawn(size, "fem", args, fields)
            for mode in modes:
                row = _spawn(size, mode, args, fields)
                if row is None:
                    print(f"| {size:>9} | {mode:<13} | {'failed (reason above)':>77} |")
                    continue
                speedup = f"{fem['seconds'] / row['seconds']:.1f}x" if fem else "n/a"
                error = _relative_l2(row["field"], fem["field"]) if fem else float("nan")
                stages = row["stages"]
                print(f"| {row['nodes']:>9} | {row['mode']:<13} | {row['seconds']:>8.2f} | {stages['features']:>10.2f} "
                      f"| {stages['graph']:>7.2f} | {stages['model']:>7.2f} | {row['nodes'] / row['seconds']:>9.0f} "
                      f"| {row['peak_gib']:>8.2f} | {fem['seconds'] if fem else float('nan'):>7.2f} | {speedup:>15} "
                      f"| {100 * error:>11.1f}% |")


def _relative_l2(predicted: str, reference: str) -> float:
    predicted, reference = np.load(predicted), np.load(reference)
    return float(np.linalg.norm(predicted - reference) / np.linalg.norm(reference))


def _spawn(size: int, mode: str, args, fields: str) -> dict | None:
    """Run one case in a fresh process; its field is saved under ``fields`` (path in ``"field"``)."""
    save = os.path.join(fields, f"{size}-{mode}.npy")
    command = [sys.executable, __file__, "--case", str(size), mode, save, "--max-nodes", str(args.max_nodes)]
    if args.model:
        command += ["--model", args.model]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"  ({mode} at {size} nodes failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode})")
        return None
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "field": save}


if __name__ == "__main__":
    main()
