"""Render the MPM pictures of docs/datasets.md into docs/images/ (a few minutes on 2 cores).

    python viz/mpm_gallery.py [--out docs/images] [--skip-validation]

- ``mpm2d.gif`` and ``mpm2d_frames.png``: one ``mpm2d`` scene (mixed materials), also written as a
  ParaView collection (``.pvd``) through ``meshop.write_series`` and read back for the pictures;
- ``mpm3d_frames.png``: one ``mpm3d`` scene (mechanical parts and balls);
- ``mpm_dam_break.png``: surge front against Martin & Moyce (1952);
- ``mpm_column_collapse.png``: run-out against the aspect ratio, Lube et al. (2005) and
  Lajeunesse et al. (2005) laws, and the deposits.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

import meshop  # noqa: E402
from meshop.data.mpm.experiments import MARTIN_MOYCE, column_collapse, dam_break, lube_runout  # noqa: E402
from meshop.data.problems import get_problem  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: elastic, fluid, sand, plasticine
COLOURS = np.array(["#d62728", "#1f77b4", "#e0b050", "#2ca02c"])


def scene(out: Path, seed: int = 7) -> None:
    traj, info = get_problem("mpm2d").sample_with_info(np.random.default_rng(seed), resolution=4096,
                                                       frames=100, material="mixed", bodies=3, progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        meshop.write_series(traj, Path(tmp) / "scene.pvd")
        traj = meshop.read_series(Path(tmp) / "scene.pvd")
    colours = COLOURS[np.asarray(traj.mesh.point_data["material"]).astype(int)]
    names = [f"{b['material']} {b['shape']}" for b in info["bodies"]]
    fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=100)
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[])
    dots = ax.scatter(*traj.positions[0].T, s=1.5, c=colours, linewidths=0)
    title = ax.set_title("")

    def draw(k):
        dots.set_offsets(traj.positions[k])
        title.set_text(f"mpm2d: {', '.join(names)}   t = {traj.times[k]:.2f} s")
        title.set_fontsize(7)
        return dots, title

    FuncAnimation(fig, draw, frames=range(0, traj.n_frames, 2)).save(out / "mpm2d.gif",
                                                                   writer=PillowWriter(fps=15))
    plt.close(fig)
    shown = [0, 25, 50, 100]
    fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3.1), dpi=100)
    for ax, k in zip(axes, shown):
        ax.scatter(*traj.positions[k].T, s=0.6, c=colours, linewidths=0)
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[], title=f"t = {traj.times[k]:.2f} s")
    fig.suptitle(f"mpm2d seed {seed}: {', '.join(names)} ({traj.n_points} particles)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "mpm2d_frames.png")
    plt.close(fig)


def scene_3d(out: Path, seed: int = 5) -> None:
    """Four frames of one mpm3d scene (matplotlib 3D scatter)."""
    traj, info = get_problem("mpm3d").sample_with_info(np.random.default_rng(seed), resolution=8192, frames=40,
                                                       material="mixed", progress=True)
    colours = COLOURS[np.asarray(traj.mesh.point_data["material"]).astype(int)]
    shown = [0, 15, 25, 40]
    fig = plt.figure(figsize=(3 * len(shown), 3.2), dpi=100)
    for n, k in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), n + 1, projection="3d")
        ax.scatter(*traj.positions[k].T, s=0.3, c=colours, linewidths=0)
        ax.set(xlim=(0, 1), ylim=(0, 1), zlim=(0, 1), xticks=[], yticks=[], zticks=[],
               title=f"t = {traj.times[k]:.2f} s")
    names = [f"{b['material']} {b['shape']}" for b in info["bodies"]]
    fig.suptitle(f"mpm3d seed {seed}: {', '.join(names)} ({traj.n_points} particles)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "mpm3d_frames.png")
    plt.close(fig)


def validation(out: Path) -> None:
    fronts = dam_break(a=0.25, cells=24)
    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=110)
    ax.plot(*MARTIN_MOYCE.T, "ko", label="Martin & Moyce (1952)")
    ax.plot(MARTIN_MOYCE[:, 0], fronts, "b.-", label="MPM, 24 cells per a")
    ax.set(xlabel=r"$T = t\sqrt{2g/a}$", ylabel="front $z/a$", title="Dam break, square water column")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "mpm_dam_break.png")
    plt.close(fig)

    ratios = [0.5, 1.0, 2.0]
    runs = [column_collapse(ratio=r, cells=20 if r < 2 else 16) for r in ratios]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
    a = np.linspace(0.3, 2.5, 100)
    left.plot(a, [lube_runout(r) for r in a], "k-", label="Lube et al. (2005)")
    left.plot(a, np.where(a < 3, 1.2 * a, 1.9 * a ** (2 / 3)), "k--", label="Lajeunesse et al. (2005)")
    left.plot(ratios, [r for r, _ in runs], "ro", label="MPM, sand φ = 30°")
    left.set(xlabel="aspect ratio a = H/L0", ylabel="run-out (L_f - L0)/L0", title="Granular column collapse")
    left.legend(fontsize=8)
    for ratio, (_, deposit) in zip(ratios, runs):
        right.scatter(*(deposit / 0.15).T, s=0.3, label=f"a = {ratio:g}")
    right.set(xlabel="x / L0", ylabel="y / L0", aspect="equal", title="Deposits")
    right.legend(markerscale=10, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "mpm_column_collapse.png")
    plt.close(fig)
    print("dam break z/a:", np.round(fronts, 2).tolist())
    print("run-out:", {r: round(x, 2) for r, (x, _) in zip(ratios, runs)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--skip-validation", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scene(args.out)
    scene_3d(args.out)
    if not args.skip_validation:
        validation(args.out)


if __name__ == "__main__":
    main()
