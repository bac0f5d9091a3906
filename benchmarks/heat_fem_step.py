"""Cost of the transient-heat FEM (the reference of neural rollouts) per time step, by mesh size.

For each size, one heat3d part (``--seed``; meshed by gmsh to about that many nodes) runs the
heat3d-transient heating scenario with convective surfaces (Biot 2, every node free: the largest
system) through :class:`meshop.data.fem_transient.HeatSimulation` with BDF2 at the generator's
step, with each solver: SuperLU (the baseline, factorized once), CG preconditioned by the
diagonal ("cg") and CG preconditioned by one pyamg smoothed-aggregation hierarchy ("amg"), both
warm-started from the extrapolated state to relative residual 1e-8.

Columns: assembly (mass, stiffness, Robin boundary mass, wall s), setup (factorizations or
preconditioners of both BDF2 matrices, wall s), the CPU time of assembly and setup together, the
mean wall and CPU time of one step after that (right-hand side included), the speed-up over the
baseline (the first of ``--solvers``) in CPU time, steadier than wall time on a shared machine
(every solver here runs on one thread), and the relative L2 (nodal) difference from the
baseline's state after the last step. A model stepping frame to frame replaces ``stride`` = 4
of these steps.

    python benchmarks/heat_fem_step.py                 # 10k and 100k nodes, 20 steps
    python benchmarks/heat_fem_step.py --sizes 3000 --steps 10
    python benchmarks/heat_fem_step.py --sizes 100000 --solvers cg amg    # no SuperLU (minutes, GBs)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from machine import machine
from meshop import Mesh
from meshop.data.fem_transient import SOLVERS, HeatSimulation
from meshop.data.shapes import random_part_3d

DT = 0.0025          # heat3d-transient's solver step (frame_dt 0.01, stride 4), units d²/α


def part(nodes: int, seed: int) -> tuple[Mesh, str]:
    """heat3d part ``seed`` meshed to about ``nodes`` nodes."""
    points, tets, description = random_part_3d(np.random.default_rng(seed), target_nodes=nodes)
    return Mesh(points, {"tetra": tets}), description["family"]


def run(mesh: Mesh, solver: str, steps: int, d: float) -> dict:
    surface = mesh.boundary_mask.astype(float)
    inputs = {"source": np.full(mesh.n_points, 2.0 / d ** 2), "heat_transfer": 2.0 / d * surface}
    start, cpu = time.perf_counter(), time.process_time()
    simulation = HeatSimulation(mesh, DT, inputs, length_scale=d, solver=solver, tol=1e-8)
    setup, setup_cpu = time.perf_counter() - start, time.process_time() - cpu
    cpu = time.process_time()
    final = simulation.run(np.zeros(mesh.n_points), 1, stride=steps).fields["temperature"][-1]
    factor = simulation.stepper.factor_seconds
    return {"assembly": setup - factor, "factor": factor, "setup_cpu": setup_cpu,
            "step": simulation.stepper.step_seconds,
            "cpu": (time.process_time() - cpu) / steps, "final": final}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS),
                        help="the first is the baseline (default: direct cg amg)")
    parser.add_argument("--seed", type=int, default=4, help="which heat3d part (default 4: a flange)")
    args = parser.parse_args()
    print(machine(), flush=True)
    print(f"BDF2 heating, Robin Bi = 2, dt = {DT} d²/α, {args.steps} steps, mean of the steps after setup")
    print(f"{'nodes':>8} {'solver':>7} {'assembly s':>10} {'setup s':>8} {'both CPU s':>10} {'step ms':>8} "
          f"{'CPU ms':>7} {'speed-up':>8} {'rel L2 vs ' + args.solvers[0]:>18}")
    for size in args.sizes:
        mesh, family = part(size, args.seed)
        d = float(mesh.distance_to_boundary.max())
        print(f"# {family}, inradius d = {d:.3g} m", flush=True)
        base = run(mesh, args.solvers[0], args.steps, d)
        for solver in args.solvers:
            row = base if solver == args.solvers[0] else run(mesh, solver, args.steps, d)
            error = np.linalg.norm(row["final"] - base["final"]) / np.linalg.norm(base["final"])
            print(f"{mesh.n_points:>8} {solver:>7} {row['assembly']:>10.2f} {row['factor']:>8.2f} {row['setup_cpu']:>10.2f} "
                  f"{1e3 * row['step']:>8.2f} {1e3 * row['cpu']:>7.2f} {base['cpu'] / row['cpu']:>8.2f} {error:>18.1e}",
                  flush=True)


if __name__ == "__main__":
    main()
