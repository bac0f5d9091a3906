"""Data-generation solvers on darcy2d families: direct vs independent Krylov vs Sorting Krylov Recycling.

For each resolution, S darcy2d systems on the same square mesh (-div(a grad u) = 1, a in {3, 12}) are
solved by
  - direct:      scipy spsolve (SuperLU), one factorization per sample;
  - amg-cg:      conjugate gradients + pyamg smoothed aggregation, independent (reference);
  - cg / rcg:    plain CG independent  vs  SKR with recycled (deflated) CG, given and sorted order;
  - gcrotmk:     scipy GCROT(m,k) independent  vs  SKR carrying its CU space, given and sorted order;
  - gmres(30):   scipy restarted GMRES, independent, the baseline of the SKR paper (on the first
                 ``--gmres-samples`` samples only: it is slow);
the Krylov rows with the same preconditioner (Jacobi by default) and the same tolerance on the true
relative residual. Every process runs single-threaded (BLAS limited to 1 thread) and the time is
the CPU time of this process, so that other load on the machine disturbs the figures less; the
load average is printed next to the figures.

    python benchmarks/datagen.py            # 85^2 x 50 samples and 255^2 x 20 samples
    python benchmarks/datagen.py --quick    # 85^2 x 12 samples
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from meshop.data.fem import solve_linear
from meshop.data.problems.darcy2d import darcy2d_family
from meshop.data.recycle import make_preconditioner, greedy_order, path_length, solve_family


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}, load average {os.getloadavg()[0]:.1f}"


def timed(function):
    """(result, CPU seconds, wall seconds) of ``function()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = function()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def gmres_row(matrices, rhs, reference, tol, preconditioner):
    """Independent restarted GMRES(30) with the Krylov rows' preconditioner and tolerance."""
    count = [0]

    def solve_all():
        solutions = []
        for matrix in matrices:
            x, info = spla.gmres(matrix, rhs, rtol=tol, atol=0.0, restart=30, maxiter=10_000,
                                 M=make_preconditioner(matrix, preconditioner), callback_type="pr_norm",
                                 callback=lambda _: count.__setitem__(0, count[0] + 1))
            assert info == 0, "GMRES(30) did not converge"
            solutions.append(x)
        return solutions

    solutions, cpu, wall = timed(solve_all)
    n = len(matrices)
    err = max(np.linalg.norm(x - r) / np.linalg.norm(r) for x, r in zip(solutions, reference))
    return (f"gmres(30), independent [{n} samples]", None, count[0] / n, cpu / n, wall / n, err)


def run_resolution(resolution: int, n_samples: int, tol: float, preconditioner: str | None,
                   seed: int, gmres_samples: int) -> list[tuple]:
    """Rows (name, group, matvecs/sample, cpu s/sample, wall s/sample, max error vs direct); the
    first row of a group is the baseline of the rows after it."""
    family = darcy2d_family(np.random.default_rng(seed), n_samples, resolution)
    matrices, rhs = family.matrices, family.rhs
    reference, cpu, wall = timed(lambda: [spla.spsolve(m.tocsc(), rhs) for m in matrices])
    rows = [("direct (spsolve)", None, 0.0, cpu / n_samples, wall / n_samples, 0.0)]

    def error(solutions):
        return max(np.linalg.norm(x - r) / np.linalg.norm(r) for x, r in zip(solutions, reference))

    results, cpu, wall = timed(lambda: [solve_linear(m, rhs, "cg", tol) for m in matrices])
    rows.append(("amg-cg, independent", None, np.mean([it for _, it in results]), cpu / n_samples,
                 wall / n_samples, error([x for x, _ in results])))
    for method, baseline in (("rcg", "cg"), ("gcrotmk", "gcrotmk")):
        for label, recycle, order in ((f"{baseline}, independent", False, "given"),
                                      (f"{method}, recycled, given order", True, "given"),
                                      (f"SKR {method}, recycled, sorted", True, "sorted")):
            (solutions, stats), cpu, wall = timed(lambda: solve_family(
                matrices, rhs, order=order, tol=tol, features=family.permeability, method=method,
                recycle=recycle, preconditioner=preconditioner))
            rows.append((label, method, stats.iterations.mean(), cpu / n_samples, wall / n_samples,
                         error(solutions)))
    if gmres_samples > 0:
        rows.append(gmres_row(matrices[:gmres_samples], rhs, reference, tol, preconditioner))
    tour = path_length(family.permeability, greedy_order(family.permeability))
    print(f"  sorted tour / given tour length (permeability fields): "
          f"{tour / path_length(family.permeability, np.arange(n_samples)):.3f}")
    return rows


def print_table(rows: list[tuple]) -> None:
    direct = rows[0][3]
    baselines: dict[str, float] = {}
    print(f"  {'solver':38s} {'matvecs':>8s} {'cpu s/sample':>12s} {'wall s/sample':>13s} "
          f"{'vs direct':>9s} {'vs indep.':>9s} {'max err':>8s}")
    for name, group, matvecs, cpu, wall, err in rows:
        baseline = baselines.setdefault(group, cpu) if group else None
        versus = f"{baseline / cpu:8.2f}x" if group else f"{'':9s}"
        print(f"  {name:38s} {matvecs:8.1f} {cpu:12.4f} {wall:13.4f} {direct / cpu:8.2f}x {versus} "
              f"{err:8.1e}")
    gmres = [row[3] for row in rows if row[0].startswith("gmres")]
    for name, _, _, cpu, _, _ in rows:
        if name.startswith("SKR") and gmres:
            print(f"  {name}: {gmres[0] / cpu:.2f}x faster than independent gmres(30)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="85^2 nodes with 12 samples only")
    parser.add_argument("--tol", type=float, default=1e-8, help="relative residual, all Krylov rows")
    parser.add_argument("--preconditioner", default="jacobi", choices=["none", "jacobi"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gmres-samples", type=int, default=5,
                        help="samples solved by the (slow) GMRES(30) reference row; 0 skips it")
    args = parser.parse_args()
    runs = [(85, 12)] if args.quick else [(85, 50), (255, 20)]
    preconditioner = None if args.preconditioner == "none" else args.preconditioner
    print(f"machine: {machine()}")
    print(f"darcy2d families, tol {args.tol:g} (true relative residual), Krylov preconditioner "
          f"{args.preconditioner}, single-threaded; speed-ups are ratios of CPU seconds per sample")
    with threadpool_limits(1):
        for resolution, n_samples in runs:
            print(f"\nresolution {resolution} ({resolution ** 2} nodes), {n_samples} samples")
            rows = run_resolution(resolution, n_samples, args.tol, preconditioner, args.seed,
                                  min(args.gmres_samples, n_samples))
            print_table(rows)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
