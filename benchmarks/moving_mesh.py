"""Moving meshes: mesh quality of the original mesh, the DMM and the classical Monge–Ampère mover,
and the one-step / 10-step rollout error of mmpde (two branches, moved mesh) vs mppde (fixed mesh).

Mesh rows: circular tanh fronts (width 0.03 of the domain size, known analytically, so the
interpolation error ``||f - Π f|| / ||f||`` of the P1 interpolant is exact) on the unit square and
on random domains with holes; per mesh the equidistribution (relative std of m × cell area), that
error, the time per mesh (each mover's set-up included; CPU and wall seconds, each the least of
``--repeats`` runs, both movers alike; the speed-up is the mean over meshes of classical / DMM), the classical mover's relaxation steps, inverted cells and the min angle.
Solver rows: burgers2d datasets (square, random domains), mppde and mmpde with parameter counts
within 10 % and the same epochs, batch size and learning rate; errors of rollouts from frame 0
of the test trajectories (relative L2 at step 1 and step 10), beside persistence (the initial
state kept: the error a stepper that learned nothing has).
Floor rows (with the mesh rows; ``--floor-trajectories 0`` skips them): how well the original
mesh, the DMM-moved and the classically moved one can represent burgers2d's *fine* solution
(solved on the mesh refined twice), the least error a solver whose answer lives on that mesh has
against the fine solve (:func:`floor_rows`).

    nice -n 10 python benchmarks/moving_mesh.py --skip-solver --seeds 3
    nice -n 10 python benchmarks/moving_mesh.py --skip-solver --seeds 0 --solver-nodes 300   # the floor rows alone
    nice -n 10 python benchmarks/moving_mesh.py --skip-mesh --solver-seeds 1 --trajectories 6 --solver-nodes 300 --epochs 6
    ... --refine 2    # the data solved on the mesh split twice (the reference resolves the fronts)
    ... --refine 2 --store fine --movers auto,classical
                      # the MM-PDE protocol: data and errors on the fine mesh, solvers on the coarse one
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine
from train_dmm import test_case

import meshop
from meshop.data.fem import l2_error
from meshop.data.generate import generate
from meshop.data.problems.burgers2d import random_mesh, refined, solve_frames
from meshop.geometry.coarse import p1_stencil
from meshop.geometry.monge_ampere import equidistribution, monge_ampere_move
from meshop.geometry.monitor import P1Locator, monitor
from meshop.geometry.moving import mesh_quality
from meshop.metrics import relative_l2_np, rollout_errors
from meshop.models.dmm import prepare
from meshop.training import train


def best_of(move, repeats: int):
    """``(result, cpu seconds, wall seconds)``: the result of ``move()`` and the fewest CPU seconds
    (of this process, all threads) and wall seconds of ``repeats`` runs; the same protocol for
    both movers. CPU time is the work itself; wall time also counts waiting for a core shared
    with other jobs."""
    cpu, wall = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = move()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return result, min(cpu), min(wall)


def mesh_rows(model, seed: int, cases: int, nodes: int, repeats: int) -> list[dict]:
    """One row per (test mesh, method): original, dmm, classical. Each mover's time per mesh
    includes its set-up (the classical one's assembly and factorizations, the DMM's graph,
    features and potential grids) and the validity check on output."""
    rng, rows = np.random.default_rng(10_000 + seed), []
    for k in range(cases):
        square = k % 3 == 0
        points, triangles, f = test_case(rng, nodes, square=square)
        values = f(points)
        norm = l2_error(points, triangles, np.zeros(len(points)), f)
        m_nodes = monitor(points, triangles, values)
        classical, classical_cpu, classical_wall = best_of(lambda: monge_ampere_move(points, triangles, values),
                                                           repeats)
        (moved, quality), dmm_cpu, dmm_wall = best_of(
            lambda: model.move(prepare(points, triangles, values, beta=model.beta)), repeats)
        for method, x, seconds, wall, q, steps in (
                ("original", points, 0.0, 0.0, mesh_quality(points, triangles), ""),
                ("dmm", moved, dmm_cpu, dmm_wall, quality, "1"),
                ("classical", classical.points, classical_cpu, classical_wall, classical.quality,
                 str(classical.iterations))):
            rows.append({"seed": seed, "domain": "square" if square else "holes", "nodes": len(points),
                         "method": method, "equi": equidistribution(points, triangles, m_nodes, x),
                         "error": l2_error(x, triangles, f(x), f) / norm, "seconds": seconds, "wall": wall,
                         "inverted": q.n_inverted, "angle": q.min_angle, "steps": steps})
    return rows


def floor_rows(model, args) -> list[dict]:
    """The representation floor on burgers2d states: each trajectory solved on its ~``solver_nodes``
    mesh refined twice (the fine truth, as ``--refine 2`` solves it); at frames 1, 5 and 11 the
    fine velocity sampled at the nodes of the original mesh, of the DMM-moved and of the
    classically moved one (each mover given the velocity at the original nodes, as mmpde's) and
    read back on the fine mesh as the P1 interpolant: ``||u - Π u|| / ||u||``, the least error any
    solver whose answer lives on that mesh can reach against the fine solve. And the one-step floor
    of a coarse solver scored on the fine nodes (``coarse=True``): the next frame's true increment
    read at the mesh's nodes and brought back to the fine nodes by its P1 interpolation, added to
    the fine state, ``||u' - (u + P Δ)|| / ||u'||`` (nodal, as the solver rows score)."""
    rng, rows = np.random.default_rng(20_000), []
    for k in range(args.floor_trajectories):
        for domain in ("square", "random"):
            mesh = random_mesh(rng, args.solver_nodes, domain)
            points, triangles, n = mesh.points[:, :2], mesh.cells["triangle"], mesh.n_points
            fine = refined(mesh, 2)
            states = solve_frames(rng, fine, args.nu, 0.01, 13, 5, "zero")   # frame 12: the step from 11
            locator = P1Locator(fine.points[:, :2], fine.cells["triangle"])
            for frame in (1, 5, 11):
                u = states[frame]

                def truth(x, c):
                    cells, bary = locator.locate(x)
                    return np.einsum("nk,nk->n", bary, u[fine.cells["triangle"][cells], c])

                moved = {"original": points,
                         "dmm": model.move(prepare(points, triangles, u[:n], beta=model.beta))[0],
                         "classical": monge_ampere_move(points, triangles, u[:n]).points}
                norm = np.hypot(*(l2_error(fine.points[:, :2], fine.cells["triangle"], np.zeros(len(u)),
                                           lambda x, c=c: truth(x, c)) for c in range(2)))
                increment = states[frame + 1] - u
                for method, x in moved.items():
                    error = np.hypot(*(l2_error(x, triangles, truth(x, c), lambda y, c=c: truth(y, c))
                                       for c in range(2)))
                    ids, weights = p1_stencil(fine.points[:, :2], fine.cells["triangle"], x)
                    at_nodes = np.einsum("nk,nkc->nc", weights, increment[ids])
                    ids, weights = p1_stencil(x, triangles, fine.points[:, :2])
                    step = u + np.einsum("nk,nkc->nc", weights, at_nodes[ids])
                    rows.append({"trajectory": k, "domain": domain, "nodes": n, "frame": frame, "method": method,
                                 "error": error / norm, "step": relative_l2_np(step, states[frame + 1]),
                                 "persistence": relative_l2_np(u, states[frame + 1])})
    return rows


def print_floor_table(rows: list[dict]) -> None:
    print("| domain | method | mean representation error | × original | × classical | one-step floor (fine nodes) | "
          "× original | persistence | frames |")
    print("|---|---|---|---|---|---|---|---|---|")
    for domain in ("square", "random"):
        of = {m: [r for r in rows if r["domain"] == domain and r["method"] == m] for m in ("original", "dmm", "classical")}
        error = {m: np.array([r["error"] for r in group]) for m, group in of.items()}
        step = {m: np.array([r["step"] for r in group]) for m, group in of.items()}
        persistence = np.mean([r["persistence"] for r in of["original"]])
        for method, values in error.items():
            print(f"| {domain} | {method} | {100 * values.mean():.2f} % | {np.mean(values / error['original']):.2f} | "
                  f"{np.mean(values / error['classical']):.2f} | {100 * step[method].mean():.2f} % | "
                  f"{np.mean(step[method] / step['original']):.2f} | {100 * persistence:.2f} % | {len(values)} |")


def warm_up(model) -> None:
    """One untimed move of each mover on a small mesh (first-call costs: imports, allocations)."""
    points, triangles, f = test_case(np.random.default_rng(0), 200, square=True)
    monge_ampere_move(points, triangles, f(points), max_iterations=5)
    model.move(prepare(points, triangles, f(points), beta=model.beta))


def solver_rows(domain: str, seed: int, args, root: Path) -> list[dict]:
    """Train mppde and mmpde on one burgers2d dataset; their rollout errors on its test split."""
    data = generate("burgers2d", args.trajectories, root / f"{domain}-{seed}", seed=seed, resolution=args.solver_nodes,
                    progress=False, domain=domain, nu=args.nu, frames=args.frames, stride=5, refine=args.refine,
                    store=args.store)
    coarse = {"coarse": True} if args.store == "fine" else {}
    rows, series = [], None
    movers = args.movers.split(",")
    runs = [("mppde", "mppde", {})] + [("mmpde", mmpde_label(mover, movers), {"mover": mover}) for mover in movers]
    for name, label, options in runs:
        start = time.perf_counter()
        result = train(data, model=name, epochs=args.epochs, batch_size=4, lr=1e-3, unroll=2, seed=seed,
                       out=root / f"{domain}-{seed}-{label.replace(' ', '_')}", progress=False, **options, **coarse)
        seconds = time.perf_counter() - start
        ckpt = meshop.checkpoint.load(result.best)
        series = series or [meshop.read_series(data / f) for f in ckpt.data["split"]["test"]]
        errors = np.array([meshop.predict(trajectory, model=ckpt, steps=args.frames - 1,
                                          write=False).errors["velocity"] for trajectory in series])
        rows.append({"domain": domain, "seed": seed, "model": label, "params": ckpt.model.n_parameters(),
                     "one": errors[:, 1].mean(), "ten": errors[:, min(10, args.frames - 1)].mean(),
                     "seconds": seconds, "test": len(series)})
    # the floor a learned stepper must beat: the state left as it is (the same error per frame)
    still = np.array([rollout_errors(np.repeat(v[:1], len(v), axis=0), v) for v in
                      (trajectory.fields["velocity"] for trajectory in series)])
    rows.append({"domain": domain, "seed": seed, "model": "persistence (u stays u₀)", "params": 0,
                 "one": still[:, 1].mean(), "ten": still[:, min(10, args.frames - 1)].mean(), "seconds": 0.0,
                 "test": len(series)})
    return rows


def mmpde_label(mover: str, movers: list[str]) -> str:
    """The solver rows' name of mmpde with ``mover`` (the mover named when several are compared)."""
    return "mmpde" if len(movers) == 1 else f"mmpde ({mover})"


def print_mesh_table(rows: list[dict]) -> None:
    print("| seed | domain | nodes | method | equidistribution | interpolation error | × original | CPU s per mesh | wall s | steps | inverted | min angle ° |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = {}
    for r in rows:
        key = (r["seed"], r["domain"], r["nodes"])
        base.setdefault(key, r["error"])
        print(f"| {r['seed']} | {r['domain']} | {r['nodes']} | {r['method']} | {r['equi']:.3f} | {r['error']:.4f} | "
              f"{r['error'] / base[key]:.2f} | {r['seconds']:.4f} | {r['wall']:.4f} | {r['steps']} | {r['inverted']} | {r['angle']:.1f} |")
    print("\n| domain | method | mean × original | mean × classical | mean CPU s | speed-up (CPU) | mean wall s | "
          "speed-up (wall) | inverted |")
    print("|---|---|---|---|---|---|---|---|---|")
    for domain in ("square", "holes"):
        group = [r for r in rows if r["domain"] == domain]
        by = {m: [r for r in group if r["method"] == m] for m in ("original", "dmm", "classical")}
        for method in ("dmm", "classical"):
            ratio = np.mean([r["error"] / o["error"] for r, o in zip(by[method], by["original"])])
            versus = np.mean([r["error"] / c["error"] for r, c in zip(by[method], by["classical"])])
            speed = {k: np.mean([c[k] / r[k] for r, c in zip(by[method], by["classical"])]) for k in ("seconds", "wall")}
            print(f"| {domain} | {method} | {ratio:.2f} | {versus:.2f} | {np.mean([r['seconds'] for r in by[method]]):.4f} | "
                  f"{speed['seconds']:.0f}× | {np.mean([r['wall'] for r in by[method]]):.4f} | {speed['wall']:.0f}× | "
                  f"{sum(r['inverted'] for r in by[method])} |")


def print_solver_table(rows: list[dict]) -> None:
    print("| domain | seed | model | parameters | 1-step rel L2 | 10-step rel L2 | training s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['domain']} | {r['seed']} | {r['model']} | {r['params']} | {100 * r['one']:.2f} % | "
              f"{100 * r['ten']:.2f} % | {r['seconds']:.0f} |")
    print("\n| domain | mmpde | mmpde / mppde 1-step | mmpde / mppde 10-step | mppde / persistence 1-step | "
          "mppde / persistence 10-step |")
    print("|---|---|---|---|---|---|")
    for domain in sorted({r["domain"] for r in rows}):
        mean = {(m, k): np.mean([r[k] for r in rows if r["domain"] == domain and r["model"] == m])
                for m in {r["model"] for r in rows} for k in ("one", "ten")}
        persistence = [m for m in {r["model"] for r in rows} if m.startswith("persistence")][0]
        for mmpde in sorted(m for m in {r["model"] for r in rows} if m.startswith("mmpde")):
            print(f"| {domain} | {mmpde} | {mean[mmpde, 'one'] / mean['mppde', 'one']:.2f} | "
                  f"{mean[mmpde, 'ten'] / mean['mppde', 'ten']:.2f} | "
                  f"{mean['mppde', 'one'] / mean[persistence, 'one']:.2f} | "
                  f"{mean['mppde', 'ten'] / mean[persistence, 'ten']:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dmm", default=None, help="DMM checkpoint (default: the bundled one)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=3, help="test meshes per seed (every third the square)")
    parser.add_argument("--nodes", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mover and mesh (the fastest counts)")
    parser.add_argument("--solver-seeds", type=int, default=1)
    parser.add_argument("--trajectories", type=int, default=12)
    parser.add_argument("--solver-nodes", type=int, default=400)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--nu", type=float, default=0.005)
    parser.add_argument("--refine", type=int, default=0,
                        help="burgers2d solved on the mesh split this many times, stored at its nodes")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--store", default="mesh", choices=["mesh", "fine"],
                        help="with --refine, the data at the mesh's nodes, or on the fine mesh with the solvers "
                             "on the mesh as its coarse mesh (errors on the fine nodes)")
    parser.add_argument("--movers", default="auto", help="mmpde's movers, comma-separated: auto, dmm, classical "
                                                         "(one mmpde row each)")
    parser.add_argument("--first-solver-seed", type=int, default=0)
    parser.add_argument("--domains", default="square,random", help="solver datasets, comma-separated")
    parser.add_argument("--skip-solver", action="store_true")
    parser.add_argument("--skip-mesh", action="store_true")
    parser.add_argument("--floor-trajectories", type=int, default=3,
                        help="burgers2d trajectories per domain of the representation floor (0: skip it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    from meshop.adaptation import BUNDLED_DMM
    from meshop.checkpoint import load

    if not args.skip_mesh:
        model = load(args.dmm or BUNDLED_DMM).model.eval()
        print(f"\nDMM {args.dmm or 'bundled'} ({model.n_parameters()} parameters)")
        if args.seeds:
            print(f"{args.seeds} seeds × {args.cases} meshes of ~{args.nodes} nodes; fronts of width 0.03 × domain "
                  f"size; time per mesh: fastest of {args.repeats} runs (CPU and wall) after one untimed warm-up move "
                  "of each mover; steps: relaxation steps (classical), forward passes (dmm)\n")
            warm_up(model)
            print_mesh_table([r for seed in range(args.seeds)
                              for r in mesh_rows(model, seed, args.cases, args.nodes, args.repeats)])
    if args.floor_trajectories and not args.skip_mesh:
        print(f"\nrepresentation floor: burgers2d ν = {args.nu} solved twice refined, {args.floor_trajectories} "
              f"trajectories per domain, meshes of ~{args.solver_nodes} nodes, frames 1, 5, 11\n")
        print_floor_table(floor_rows(model, args))
    if args.skip_solver:
        return
    print(f"\nburgers2d ν = {args.nu}: {args.trajectories} trajectories of {args.frames} frames, ~{args.solver_nodes} "
          f"nodes{f', solved {args.refine}x refined' if args.refine else ''}"
          f"{', stored and scored on the fine mesh, solvers on the coarse one' if args.store == 'fine' else ''}; "
          f"{args.epochs} epochs, batch 4, lr 1e-3, unroll 2; mmpde movers: {args.movers}; "
          f"{args.solver_seeds} seed(s)\n")
    with tempfile.TemporaryDirectory() as tmp:
        seeds = range(args.first_solver_seed, args.first_solver_seed + args.solver_seeds)
        solver = [r for seed in seeds for domain in args.domains.split(",")
                  for r in solver_rows(domain, seed, args, Path(tmp))]
    print_solver_table(solver)


if __name__ == "__main__":
    main()
