"""Learned particle simulators (GNS, GIOROM) on MPM trajectories, the protocol of GNS / GIOROM.

Rows, on the test split of a particle dataset (``meshop generate mpm2d``), each model against the
constant-velocity extrapolation measured in the same run:
- one-step MSE of the normalized accelerations (noise-free inputs);
- rollout position MSE (m²) averaged over the whole rollout from the first ``history + 1`` frames;
- Chamfer distance (m, symmetric mean nearest-neighbour distance, scipy cKDTree) at the last frame.
Speed: GIOROM's time per step when its decoder is queried at 1k and at 100k points, and GNS
against GIOROM per rollout step on a 10k-particle cloud.

    python benchmarks/lagrangian.py --data D --gns RUN/best.safetensors --giorom RUN/best.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine
from scipy.spatial import cKDTree
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

import meshop
from meshop.checkpoint import load
from meshop.data.dataset import read_manifest
from meshop.models.gns import constant_velocity_rollout
from meshop.training.particles import particle_windows
from meshop.training.steps import noisy_one_step


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between clouds ``a`` and ``b`` (m)."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def one_step_mse(model, trajectories) -> float:
    windows = [w for t in trajectories for w in particle_windows(t, model.history)]
    step = noisy_one_step(0.0)
    with torch.no_grad():
        losses = [step(model, batch)[0].item() * batch.num_graphs for batch in DataLoader(windows, batch_size=4)]
    return sum(losses) / len(windows)


def constant_velocity_one_step(model, trajectories) -> float:
    """The normalized-acceleration MSE of predicting zero acceleration."""
    errors = []
    for t in trajectories:
        acceleration = np.diff(t.positions[model.history - 1:], n=2, axis=0)
        errors.append(((acceleration / model.acc_std.numpy()) ** 2).mean())
    return float(np.mean(errors))


def rollout_errors(model, traj, h: int) -> tuple[float, float]:
    """Rollout position MSE over the whole rollout from frames 0..h and Chamfer distance at the
    last frame; ``model`` None: the constant-velocity extrapolation."""
    steps = traj.n_frames - h - 1
    data = Data(material=torch.as_tensor(traj.mesh.point_data["material"], dtype=torch.long), num_nodes=traj.n_points)
    start = torch.as_tensor(traj.positions[: h + 1], dtype=torch.float32).transpose(0, 1)
    predicted = model.rollout(data, start, steps).numpy() if model is not None else \
        constant_velocity_rollout(traj.positions[: h + 1], steps)
    truth = traj.positions[h + 1:]
    return float(((predicted - truth) ** 2).sum(axis=2).mean()), chamfer(predicted[-1], truth[-1])


def seconds_per_step(model, n: int, steps: int = 3, queries: int | None = None) -> float:
    """Time per rollout step of ``model`` on ``n`` random particles (queried at ``queries`` points)."""
    rng = np.random.default_rng(0)
    side = (n / 1000) ** 0.5 * 0.3                      # about the training density
    cloud = 0.5 - side / 2 + side * rng.random((n, model.dim))
    data = Data(material=torch.zeros(n, dtype=torch.long), num_nodes=n)
    start = torch.as_tensor(np.stack([cloud] * (model.history + 1), 1), dtype=torch.float32)
    points = rng.random((queries, model.dim)) if queries else None
    with torch.no_grad():
        plan = model.rollout_plan(data, start)
        began = time.perf_counter()
        for _ in range(steps):
            if points is not None:
                model.advance_sparse(start[plan[0]], data.material[plan[0]], n)
                model.query(points)
            else:
                model.step(data, start, plan)
    return (time.perf_counter() - began) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--gns", required=True)
    parser.add_argument("--giorom", required=True)
    parser.add_argument("--particles", type=int, default=10000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = read_manifest(Path(args.data))
    split = manifest["split"]
    test = [meshop.read_series(f"{args.data}/{name}") for name in split["test"] or split["val"]]
    models = {"gns": load(args.gns).model, "giorom": load(args.giorom).model}
    print(f"machine: {machine()}")
    print(f"data: {args.data}, {len(test)} test trajectories of {test[0].n_frames} frames, "
          f"{min(t.n_points for t in test)}-{max(t.n_points for t in test)} particles")
    h = models["gns"].history
    cv = np.array([rollout_errors(None, t, h) for t in test])
    print("| model | parameters | one-step MSE (normalized acc.) | rollout position MSE (m²) | "
          "× better than const. velocity | Chamfer at last frame (m) |")
    print("|---|---|---|---|---|---|")
    for name, model in models.items():
        model.eval()
        one = one_step_mse(model, test)
        errors = np.array([rollout_errors(model, t, h) for t in test])
        print(f"| {name} | {model.n_parameters():,} | {one:.3g} | {errors[:, 0].mean():.3g} | "
              f"{cv[:, 0].mean() / errors[:, 0].mean():.2f} | {errors[:, 1].mean():.3g} |")
    print(f"| constant velocity | 0 | {constant_velocity_one_step(models['gns'], test):.3g} | "
          f"{cv[:, 0].mean():.3g} | 1 | {cv[:, 1].mean():.3g} |")
    giorom, gns = models["giorom"], models["gns"]
    small, large = seconds_per_step(giorom, 4000, queries=1000), seconds_per_step(giorom, 4000, queries=100000)
    print(f"\nGIOROM step + query, 4,000 particles ({giorom.sparse_nodes} sparse nodes): "
          f"{1e3 * small:.1f} ms at 1k query points, {1e3 * large:.1f} ms at 100k ({large / small:.2f}×)")
    t_gns, t_giorom = seconds_per_step(gns, args.particles), seconds_per_step(giorom, args.particles)
    print(f"per rollout step at {args.particles:,} particles: GNS {1e3 * t_gns:.0f} ms, GIOROM "
          f"{1e3 * t_giorom:.0f} ms (GIOROM {t_gns / t_giorom:.1f}× faster)")


if __name__ == "__main__":
    main()
