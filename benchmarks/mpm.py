"""MLS-MPM engine speed: warp kernels (meshop.data.mpm) against a vectorized numpy reference.

The scene is a 2D neo-Hookean jelly block of N particles (4 per cell) falling under gravity in the
unit box, on a grid of 1/dx cells per side. Both engines start from the same state and take the
same substeps; the error column is the largest particle-position difference after the timed
substeps (warp runs in float32, numpy in float64) relative to dx. Time per frame assumes the
generator's default 0.01 s frames (its stride is printed).

    python benchmarks/mpm.py                 # 8,192 particles, 128^2 grid
    python benchmarks/mpm.py --quick         # 2,048 particles, 64^2 grid
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

from meshop.data.mpm.kernels import PAD  # noqa: E402
from meshop.data.mpm.solver import ELASTIC, MaterialParameters, MPMSolver  # noqa: E402


class NumpyMPM:
    """Vectorized numpy MLS-MPM, neo-Hookean only, slip walls: the baseline (by hand, as a reference)."""

    def __init__(self, solver: MPMSolver):
        self.x = solver.x.numpy().astype(np.float64)
        self.v, self.C = solver.velocities, np.zeros((solver.n, 2, 2))
        self.F = np.broadcast_to(np.eye(2), (solver.n, 2, 2)).copy()
        self.m, self.vol = solver.masses, solver.volume.numpy().astype(np.float64)
        self.mu, self.lam = solver.mu.numpy().astype(np.float64), solver.lam.numpy().astype(np.float64)
        self.dx, self.dt, self.shape, self.g = solver.dx, solver.dt, solver.shape[:2], solver.gravity
        self.offsets = np.array([(i, j) for i in range(3) for j in range(3)])

    def step(self):
        inv_dx, nx, ny = 1 / self.dx, *self.shape
        base = (self.x * inv_dx - 0.5).astype(int)
        fx = self.x * inv_dx - base
        w = np.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2], axis=1)
        weight = w[:, self.offsets[:, 0], 0] * w[:, self.offsets[:, 1], 1]                 # (N, 9)
        dpos = (self.offsets[None] - fx[:, None]) * self.dx                                # (N, 9, 2)
        nodes = (base[:, None, 0] + self.offsets[None, :, 0]) * ny + base[:, None, 1] + self.offsets[None, :, 1]
        J = np.linalg.det(self.F)
        tau = self.mu[:, None, None] * (self.F @ self.F.transpose(0, 2, 1) - np.eye(2)) \
            + (self.lam * np.log(J))[:, None, None] * np.eye(2)
        affine = -self.dt * self.vol[:, None, None] * 4 * inv_dx ** 2 * tau + self.m[:, None, None] * self.C
        contribution = weight[..., None] * (self.m[:, None, None] * self.v[:, None] + np.einsum("nij,nkj->nki", affine, dpos))
        mv = np.stack([np.bincount(nodes.ravel(), contribution[..., a].ravel(), nx * ny) for a in range(2)], 1)
        m = np.bincount(nodes.ravel(), (weight * self.m[:, None]).ravel(), nx * ny)
        grid_v = np.where(m[:, None] > 0, mv / np.maximum(m, 1e-30)[:, None] + self.dt * self.g, 0.0)
        index = np.stack(np.divmod(np.arange(nx * ny), ny), 1)
        low, high = index <= PAD, index >= np.array([nx, ny]) - 1 - PAD
        grid_v[(low & (grid_v < 0)) | (high & (grid_v > 0))] = 0.0
        gv = grid_v[nodes]                                                                  # (N, 9, 2)
        self.v = np.einsum("nk,nka->na", weight, gv)
        self.C = 4 * inv_dx ** 2 * np.einsum("nk,nka,nkb->nab", weight, gv, dpos)
        self.x = np.clip(self.x + self.dt * self.v, self.dx, (np.array([nx, ny]) - 2) * self.dx)
        self.F = (np.eye(2) + self.dt * self.C) @ self.F


def scene(particles: int, cells: int) -> MPMSolver:
    dx = 1.0 / cells
    side = int(round(np.sqrt(particles)))
    ticks = (np.arange(side) + 0.5) * dx / 2
    x = 0.5 - side * dx / 4 + np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)
    dt = 0.35 * dx / MaterialParameters().wave_speed(ELASTIC)
    return MPMSolver(x, np.zeros_like(x), np.full(len(x), ELASTIC), np.full(len(x), (dx / 2) ** 2),
                     [0, 0], [1, 1], dx, dt, gravity=[0, -9.81], walls="slip", device="cpu")


def seconds_per_step(step, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call of ``step``; the CPU time of this process is what other load on
    a shared machine disturbs least."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    particles, cells = (2048, 64) if args.quick else (8192, 128)
    print(machine())
    start = time.perf_counter()
    solver = scene(particles, cells)
    reference = NumpyMPM(solver)
    solver.step(1)                                   # JIT (or cache load)
    print(f"warp kernel build/load + first step: {time.perf_counter() - start:.1f} s")
    reference.step()
    stride = int(np.ceil(0.01 / solver.dt))
    rows = [("numpy (float64)", seconds_per_step(reference.step, max(args.steps // 10, 5))),
            ("warp CPU (float32)", seconds_per_step(solver.step, args.steps))]
    for _ in range(args.steps - max(args.steps // 10, 5)):
        reference.step()                             # catch up: both have taken 1 + steps substeps
    error = np.abs(solver.positions - solver.origin - reference.x).max() / solver.dx
    print(f"\n2D neo-Hookean block, {solver.n} particles, {cells}^2 grid, dt {solver.dt:.2e} s, "
          f"{stride} substeps per 0.01 s frame")
    print(f"{'engine':<20}{'ms/substep':>12}{'CPU ms/substep':>16}{'ms/frame':>10}{'speed-up (CPU)':>16}")
    for name, (wall, cpu) in rows:
        print(f"{name:<20}{1e3 * wall:>12.2f}{1e3 * cpu:>16.2f}{1e3 * wall * stride:>10.1f}"
              f"{rows[0][1][1] / cpu:>15.1f}x")
    print(f"max position difference after {args.steps + 1} substeps: {error:.2e} dx")


if __name__ == "__main__":
    main()
