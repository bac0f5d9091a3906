"""Train the data-free mesh mover briefly on burgers2d snapshots, then compare it with the
original mesh and the classical Monge–Ampère mover on sharp fronts it has not seen.

Training data: late frames of burgers2d trajectories (random domains with holes and the unit
square) and random tanh fronts (other seeds than the test's), no optimal meshes: the loss is
:func:`meshop.models.dmm.monge_ampere_step`. Test fields:
circular tanh fronts (width 0.03 of the domain size) on fresh random domains and on the square,
known analytically, so the interpolation error ``||f - Π f|| / ||f||`` (P1 interpolant on the
mesh, quadrature of degree 6) is exact. Per mesh: that error for the original mesh, the classical
mover and the DMM, the time of each mover, inverted cells and the min angle.

    nice -n 10 python benchmarks/train_dmm.py --minutes 5 --out runs/dmm.safetensors
    nice -n 10 python benchmarks/train_dmm.py --init runs/dmm.safetensors --train-seed 1 --minutes 9 \
        --select-every 500 --fronts 40 --out runs/dmm-more.safetensors     # continue, keep the best
    python benchmarks/train_dmm.py --checkpoint runs/dmm.safetensors --picture docs/images/adapt_dmm.png
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from machine import machine

from meshop.adaptation import save_mover
from meshop.data.fem import l2_error
from meshop.data.problems.burgers2d import burgers2d_sample
from meshop.data.problems.darcy2d import square_mesh
from meshop.data.shapes import random_domain_2d
from meshop.geometry.monge_ampere import monge_ampere_move
from meshop.models.dmm import DMM, monge_ampere_step, prepare


def training_samples(n: int, fronts: int, nodes: int, seed: int) -> list:
    """Two late frames of each of ``n`` burgers2d trajectories (every third on the square), and
    ``fronts`` random tanh fronts (fields only: no optimal mesh is ever computed)."""
    rng, samples = np.random.default_rng(seed), []
    for k in range(n):
        traj, _ = burgers2d_sample(rng, resolution=nodes, domain="square" if k % 3 == 0 else "random",
                                   nu=0.005, frames=9, stride=5)
        for frame in (4, 8):
            samples.append(prepare(traj.mesh.points, traj.mesh.cells["triangle"], traj.fields["velocity"][frame]))
    for k in range(fronts):
        points, triangles, f = test_case(rng, nodes, square=k % 3 == 0)
        samples.append(prepare(points, triangles, f(points)))
    return samples


def test_case(rng: np.random.Generator, nodes: int, square: bool):
    """(points, triangles, f) with f a tanh front across the domain."""
    if square:
        points, triangles = square_mesh(round(np.sqrt(nodes)))
    else:
        points, triangles = random_domain_2d(rng, target_nodes=nodes)
    size = float(np.ptp(points, axis=0).max())
    centre = points[rng.integers(len(points))]
    radius = rng.uniform(0.25, 0.45) * size

    def f(x):
        return np.tanh((np.linalg.norm(x - centre, axis=1) - radius) / (0.03 * size))
    return points, triangles, f


def train(samples: list, minutes: float, seed: int, lr: float, init: DMM | None = None,
          select_every: int = 0, nodes: int = 800) -> tuple[DMM, int, dict]:
    """Adam on :func:`monge_ampere_step` over random pairs of ``samples`` for ``minutes``, from
    ``init``'s weights when given (else a fresh DMM). ``select_every``: every that many steps the
    model is scored on validation fronts (:func:`validation_error`) and the best scoring weights
    are returned (their step count and logs) instead of the last ones."""
    torch.manual_seed(seed)
    model = init.train() if init is not None else DMM()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng, deadline, steps, logs = np.random.default_rng(seed), time.time() + 60 * minutes, 0, {}
    best = (np.inf, None, 0, {})
    while time.time() < deadline:
        optimizer.zero_grad()
        loss, logs = monge_ampere_step(model, [samples[i] for i in rng.choice(len(samples), 2, replace=False)])
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % 50 == 0:
            print(f"  step {steps}: " + ", ".join(f"{k} {v:.3f}" for k, v in logs.items()), flush=True)
        if select_every and steps % select_every == 0:
            score = validation_error(model.eval(), nodes)
            model.train()
            print(f"  step {steps}: validation error {score:.3f} x original", flush=True)
            if score < best[0]:
                best = (score, copy.deepcopy(model.state_dict()), steps, dict(logs))
    if best[1] is not None:
        model.load_state_dict(best[1])
        steps, logs = best[2], best[3]
        print(f"  kept step {steps} (validation error {best[0]:.3f} x original)")
    return model.eval(), steps, logs


def validation_error(model: DMM, nodes: int, fronts: int = 8) -> float:
    """Mean relative interpolation error (× the original mesh's) of the moved meshes of tanh
    fronts from rng seeds 20_000 + s (neither the training fields' nor the test fronts')."""
    ratios = []
    for seed in range(fronts):
        rng = np.random.default_rng(20_000 + seed)
        for k in range(3):
            points, triangles, f = test_case(rng, nodes, square=k % 3 == 0)
            moved, _ = model.move(prepare(points, triangles, f(points), beta=model.beta))
            ratios.append(l2_error(moved, triangles, f(moved), f) / l2_error(points, triangles, f(points), f))
    return float(np.mean(ratios))


def evaluate(model: DMM, cases: int, nodes: int, seed: int, picture: str | None = None) -> list[dict]:
    rng, rows = np.random.default_rng(seed + 1000), []
    for k in range(cases):
        points, triangles, f = test_case(rng, nodes, square=k % 3 == 0)
        original = l2_error(points, triangles, f(points), f)
        norm = l2_error(points, triangles, np.zeros(len(points)), f)
        classical = monge_ampere_move(points, triangles, f(points))
        start = time.perf_counter()                    # both timings include their set-up
        moved, quality = model.move(prepare(points, triangles, f(points)))
        dmm_seconds = time.perf_counter() - start
        rows.append({"domain": "square" if k % 3 == 0 else "random", "nodes": len(points),
                     "original": original / norm,
                     "classical": l2_error(classical.points, triangles, f(classical.points), f) / norm,
                     "dmm": l2_error(moved, triangles, f(moved), f) / norm,
                     "t_classical": classical.seconds, "t_dmm": dmm_seconds,
                     "inverted": quality.n_inverted + classical.quality.n_inverted,
                     "angle_dmm": quality.min_angle, "angle_classical": classical.quality.min_angle})
        if picture and k == 1:
            _picture(points, triangles, f, classical.points, moved, rows[-1], picture)
    return rows


def _picture(points, triangles, f, classical, dmm, row, path):
    from meshop import Mesh
    from meshop.viz import plot_adaptation

    meshes = [Mesh(p, {"triangle": triangles}, {"f": f(p)}) for p in (points, classical, dmm)]
    titles = tuple(f"{name}: error {row[key]:.3f}" for name, key in
                   [("original", "original"), ("classical", "classical"), ("DMM", "dmm")])
    plot_adaptation(meshes[0], meshes[1], path, field="f", titles=titles, extra=[meshes[2]])
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--trajectories", type=int, default=12)
    parser.add_argument("--fronts", type=int, default=24, help="random tanh fronts added to the training fields")
    parser.add_argument("--nodes", type=int, default=800)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="runs/dmm.safetensors")
    parser.add_argument("--picture", default=None, help="PNG: original | classical | DMM on a test domain")
    parser.add_argument("--checkpoint", default=None, help="evaluate this DMM checkpoint instead of training")
    parser.add_argument("--init", default=None, help="continue training this DMM checkpoint")
    parser.add_argument("--train-seed", type=int, default=None, help="seed of the training steps (default --seed)")
    parser.add_argument("--select-every", type=int, default=0,
                        help="keep the weights with the lowest validation error, scored every this many steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    if args.checkpoint:
        from meshop.checkpoint import load

        ckpt = load(args.checkpoint)
        model, steps = ckpt.model, ckpt.metrics.get("steps", "?")
        print(f"evaluating {args.checkpoint} ({steps} training steps)")
    else:
        start = time.time()
        samples = training_samples(args.trajectories, args.fronts, args.nodes, args.seed)
        print(f"{2 * args.trajectories} burgers2d snapshots and {args.fronts} tanh fronts of ~{args.nodes} "
              f"nodes in {time.time() - start:.0f} s; "
              f"training {args.minutes:g} min", flush=True)
        init, earlier = None, 0
        if args.init:
            from meshop.checkpoint import load

            ckpt = load(args.init)
            init, earlier = ckpt.model, int(ckpt.metrics.get("steps", 0))
        model, steps, logs = train(samples, args.minutes, args.seed if args.train_seed is None else args.train_seed,
                                   args.lr, init, args.select_every, args.nodes)
        steps += earlier
        save_mover(model, args.out, data={"problem": "burgers2d", "snapshots": 2 * args.trajectories,
                                          "fronts": args.fronts, "nodes": args.nodes},
                   metrics={"steps": steps, **logs})
        print(f"\n{steps} steps; wrote {args.out}\n")
    rows = evaluate(model, args.cases, args.nodes, args.seed, args.picture)
    print("| domain | nodes | original | classical | DMM | DMM / original | DMM / classical | classical s | DMM s | speed-up | inverted | min angle DMM / classical |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['domain']} | {r['nodes']} | {r['original']:.4f} | {r['classical']:.4f} | {r['dmm']:.4f} | "
              f"{r['dmm'] / r['original']:.2f} | {r['dmm'] / r['classical']:.2f} | {r['t_classical']:.2f} | "
              f"{r['t_dmm']:.3f} | {r['t_classical'] / r['t_dmm']:.0f}x | {r['inverted']} | "
              f"{r['angle_dmm']:.1f} / {r['angle_classical']:.1f} |")
    mean = {k: np.mean([r[k] for r in rows]) for k in ("original", "classical", "dmm")}
    print(f"\nmean relative interpolation error: original {mean['original']:.4f}, classical "
          f"{mean['classical']:.4f} ({mean['classical'] / mean['original']:.2f}x), DMM {mean['dmm']:.4f} "
          f"({mean['dmm'] / mean['original']:.2f}x original, {mean['dmm'] / mean['classical']:.2f}x classical)")


if __name__ == "__main__":
    main()
