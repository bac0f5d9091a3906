"""Render a learned particle simulator's rollout beside the MPM truth into docs/images/.

    python viz/particle_gallery.py [--model mpm2d] [--seed 4] [--out docs/images]

One ``mpm2d`` scene drawn like the training data (mixed materials, random polygons, 1,000
particles, 40 frames of 0.01 s), written as a ParaView series, rolled out by
``meshop.predict(series, model, steps=35)`` (the product path of ``meshop predict scene.pvd
--steps 35``) from its first 6 frames, and drawn side by side, coloured by material:
``mpm2d_prediction.gif`` and ``mpm2d_prediction_frames.png`` (four frames, for a quick look).
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
from meshop.data.problems import get_problem  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: elastic, fluid, sand, plasticine
COLOURS = np.array(["#d62728", "#1f77b4", "#e0b050", "#2ca02c"])


def rollout(model: str, seed: int):
    """``(truth, prediction, names)``: the MPM series and the model's rollout from its first frames."""
    traj, info = get_problem("mpm2d").sample_with_info(np.random.default_rng(seed), resolution=1000, frames=40,
                                                       material="mixed", shapes="polygon")
    with tempfile.TemporaryDirectory() as tmp:
        meshop.write_series(traj, Path(tmp) / "scene.pvd")
        truth = meshop.read_series(Path(tmp) / "scene.pvd")
        history = truth.n_frames - 1 - 35
        prediction = meshop.predict(Path(tmp) / "scene.pvd", model=model, steps=35,
                                    out=Path(tmp) / "scene.pred.pvd")
    names = [f"{b['material']} {b['shape']}" for b in info["bodies"]]
    return truth.positions[history:], prediction, names


def draw(truth: np.ndarray, prediction, names: list[str], material: np.ndarray, out: Path, model: str) -> None:
    predicted = prediction.trajectory.positions
    errors = prediction.errors["position_mse"]
    colours = COLOURS[material.astype(int)]
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.5), dpi=100)
    dots = []
    for ax, label, frames in zip(axes, ("MPM (truth)", f"{model} (prediction)"), (truth, predicted)):
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[], title=label)
        dots.append(ax.scatter(*frames[0].T, s=1.5, c=colours, linewidths=0))
    title = fig.suptitle("", fontsize=8)

    def frame(k):
        dots[0].set_offsets(truth[k])
        dots[1].set_offsets(predicted[k])
        title.set_text(f"{', '.join(names)}; step {k}, position MSE {errors[k]:.2e} m²")
        return (*dots, title)

    steps = min(len(truth), len(predicted))
    FuncAnimation(fig, frame, frames=range(steps)).save(out / "mpm2d_prediction.gif", writer=PillowWriter(fps=10))
    plt.close(fig)
    shown = [0, steps // 3, 2 * steps // 3, steps - 1]
    fig, axes = plt.subplots(2, len(shown), figsize=(2.6 * len(shown), 5.4), dpi=100)
    for row, (label, frames) in enumerate((("MPM", truth), (model, predicted))):
        for ax, k in zip(axes[row], shown):
            ax.scatter(*frames[k].T, s=0.8, c=colours, linewidths=0)
            ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[], title=f"{label}, step {k}")
    fig.suptitle(f"{', '.join(names)} ({len(material)} particles)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "mpm2d_prediction_frames.png")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mpm2d", help="bundled name or checkpoint path")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    truth, prediction, names = rollout(args.model, args.seed)
    material = np.asarray(prediction.trajectory.mesh.point_data["material"])
    draw(truth, prediction, names, material, args.out, Path(args.model).stem)
    print(f"wrote {args.out / 'mpm2d_prediction.gif'}; rollout MSE over the steps "
          f"{prediction.errors['position_mse'][1:].mean():.3g} m²")


if __name__ == "__main__":
    main()
