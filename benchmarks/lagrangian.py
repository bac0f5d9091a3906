"""Learned particle simulators (GNS, GIOROM) on MPM trajectories, the protocol of GNS / GIOROM.

Accuracy, per test set, each model against the constant-velocity extrapolation measured in the
same run on the same frames (rollouts start from the first ``history + 1`` frames):
- one-step MSE of the normalized accelerations (noise-free inputs);
- rollout position MSE (m²) averaged over every frame of the whole rollout;
- Chamfer distance (m, symmetric mean nearest-neighbour distance, scipy cKDTree) at the last frame.
The models roll out inside the box (a particle stops on the wall it would cross); so does the
second baseline, "constant velocity in the box" (the free flight clipped to the box), which
tells how much of a model's gain over the plain extrapolation is the walls alone.
Test sets (generated here, seeded, unless ``--data`` names folders): one per material (elastic
jelly, fluid water, sand, plasticine) of random polygons at speed 1 m/s, and an "unseen" set of
mixed materials with the shape family (discs) and initial speeds (2 m/s) that the training data
(``meshop generate mpm2d ... shapes=polygon``, see docs/models.md) does not hold.
Several checkpoints per model (``--gns A B C``: training seeds) give the mean and the spread.

Speed, per step (one frame): the MPM simulator's own time per frame beside the models'; GIOROM's
time per step when queried at 1k, 10k and 100k points (one processor step on the sparse graph +
the decoder at the points, neighbour search included); GNS against GIOROM per rollout step on
clouds of 10k (and with ``--full`` 30k) particles, for the trained models and for the published
sizes (latent 128, 10 message-passing steps, GIOROM on 1,000 sparse nodes; random weights: the
time does not depend on them).

    python benchmarks/lagrangian.py --gns RUN/best.safetensors --giorom RUN/best.safetensors
    python benchmarks/lagrangian.py ... --full     # 3 scenes per set, 30k particles too
    python benchmarks/lagrangian.py ... --plot curves.png   # and the error of every rollout frame
    python benchmarks/lagrangian.py --only queries # query scaling alone (bundled mpm2d or --giorom)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

import meshop  # noqa: E402
from meshop import models as registry  # noqa: E402
from meshop.checkpoint import load  # noqa: E402
from meshop.data.dataset import read_manifest  # noqa: E402
from meshop.models.gns import constant_velocity_rollout  # noqa: E402
from meshop.prediction import bundled_models  # noqa: E402
from meshop.training.particles import particle_windows  # noqa: E402
from meshop.training.steps import noisy_one_step  # noqa: E402

MATERIALS = ("elastic", "fluid", "sand", "plasticine")
#: test sets: name -> generator options (seeds apart from any training data's)
TEST_SETS = {**{m: {"material": m, "shapes": "polygon", "seed": 21} for m in MATERIALS},
             "unseen: discs, 2 m/s": {"material": "mixed", "shapes": "disc", "speed": 2.0, "seed": 31}}


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between clouds ``a`` and ``b`` (m)."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def generate_test_sets(root: Path, scenes: int, particles: int, frames: int) -> dict[str, Path]:
    from meshop.data.generate import generate

    folders = {}
    for k, (name, options) in enumerate(TEST_SETS.items()):
        options = dict(options)
        folders[name] = generate("mpm2d", scenes, root / f"set{k}", seed=options.pop("seed"), resolution=particles,
                                 frames=frames, split=(0.0, 0.0, 1.0), progress=False, **options)
    return folders


def read_test_set(folder: Path, scenes: int) -> list:
    split = read_manifest(folder)["split"]
    names = (split["test"] or split["val"] or split["train"])[:scenes]
    return [meshop.read_series(folder / name) for name in names]


def one_step_mse(model, trajectories) -> float:
    windows = [w for t in trajectories for w in particle_windows(t, model.history)]
    step = noisy_one_step(0.0)
    with torch.no_grad():
        losses = [step(model, batch)[0].item() * batch.num_graphs for batch in DataLoader(windows, batch_size=4)]
    return sum(losses) / len(windows)


def constant_velocity_one_step(acc_std: np.ndarray, trajectories, history: int) -> float:
    """The normalized-acceleration MSE of predicting zero acceleration."""
    errors = [((np.diff(t.positions[history - 1:], n=2, axis=0) / acc_std) ** 2).mean() for t in trajectories]
    return float(np.mean(errors))


def rollout_errors(model, traj, h: int, bounds=None) -> tuple[float, float, np.ndarray]:
    """Rollout position MSE over the whole rollout from frames 0..h, Chamfer distance at the
    last frame and the position MSE of every rolled-out frame (m²); ``model`` None: the
    constant-velocity extrapolation (in the box ``bounds``, as the models roll out, when given)."""
    steps = traj.n_frames - h - 1
    if model is None:
        predicted = constant_velocity_rollout(traj.positions[: h + 1], steps, bounds)
    else:
        data = Data(material=torch.as_tensor(traj.mesh.point_data["material"], dtype=torch.long),
                    num_nodes=traj.n_points)
        start = torch.as_tensor(traj.positions[: h + 1], dtype=torch.float32).transpose(0, 1)
        predicted = model.rollout(data, start, steps).numpy()
    per_frame = ((predicted - traj.positions[h + 1:]) ** 2).sum(axis=2).mean(axis=1)
    return float(per_frame.mean()), chamfer(predicted[-1], traj.positions[-1]), per_frame


def accuracy_rows(checkpoints: dict[str, list], sets: dict[str, list], curves: dict | None = None) -> list[str]:
    """Markdown rows: per test set, each model (mean ± spread over its checkpoints) and the
    baseline; ``curves`` (when given) gets ``{(set, label): mean position MSE per frame}``."""
    rows = ["| test set | model | seeds | one-step MSE (normalized acc.) | rollout position MSE (m²) | "
            "× better than const. velocity | × better than const. velocity in the box | Chamfer at last frame (m) |",
            "|---|---|---|---|---|---|---|---|"]
    curves = {} if curves is None else curves
    first = next(iter(checkpoints.values()))[0]
    h, bounds = first.history, first.bounds.numpy()

    def errors_of(model, name, box=None, label=None):
        """Mean rollout MSE and Chamfer over the set ``name``; its per-frame curve kept as ``label``."""
        runs = [rollout_errors(model, t, h, box) for t in sets[name]]
        if label is not None:
            curves[(name, label)] = np.mean([r[2] for r in runs], axis=0)
        return np.array([r[:2] for r in runs]).mean(axis=0)

    for name, test in sets.items():
        cv = errors_of(None, name, label="constant velocity")
        box = errors_of(None, name, bounds, label="constant velocity in the box")
        for label, models in checkpoints.items():
            scores = []
            for k, model in enumerate(models):
                errors = errors_of(model, name, label=label if k == 0 else None)
                scores.append([one_step_mse(model, test), errors[0], cv[0] / errors[0], box[0] / errors[0], errors[1]])
            mean, spread = np.mean(scores, axis=0), np.std(scores, axis=0)
            cells = [f"{m:.3g}" + (f" ± {s:.2g}" if len(scores) > 1 else "") for m, s in zip(mean, spread)]
            rows.append(f"| {name} | {label} | {len(scores)} | " + " | ".join(cells) + " |")
        zero = constant_velocity_one_step(first.acc_std.numpy(), test, h)
        rows.append(f"| {name} | constant velocity | - | {zero:.3g} | {cv[0]:.3g} | 1 | {box[0] / cv[0]:.3g} | {cv[1]:.3g} |")
        rows.append(f"| {name} | constant velocity in the box | - | {zero:.3g} | {box[0]:.3g} | {cv[0] / box[0]:.3g} | 1 "
                    f"| {box[1]:.3g} |")
    return rows


def plot_curves(curves: dict, path: Path) -> None:
    """One panel per test set: the position MSE (m², log scale) of each rollout frame, per model
    (its first checkpoint) and baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(name for name, _ in curves))
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        for (set_name, label), curve in curves.items():
            if set_name == name:
                ax.semilogy(np.arange(1, len(curve) + 1), curve, label=label,
                            linestyle="--" if label.startswith("constant") else "-")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("rollout step (frame)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("position MSE (m²)")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def cloud(n: int, dim: int, history: int, seed: int = 0):
    """``n`` particles at rest at about the training density (1k particles fill ~0.1 m²)."""
    rng = np.random.default_rng(seed)
    side = (n / 1000) ** 0.5 * 0.3
    points = 0.5 - side / 2 + side * rng.random((n, dim))
    data = Data(material=torch.zeros(n, dtype=torch.long), num_nodes=n)
    return data, torch.as_tensor(np.stack([points] * (history + 1), 1), dtype=torch.float32)


def best_of(run, repeats: int) -> float:
    """The least of ``repeats`` timings of ``run()`` (s): the machine is shared."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


@torch.no_grad()
def seconds_per_step(model, n: int, repeats: int = 3) -> float:
    """Time of one rollout step of ``model`` on ``n`` particles (GIOROM: decoded at every particle)."""
    data, start = cloud(n, model.dim, model.history)
    plan = model.rollout_plan(data, start)
    return best_of(lambda: model.step(data, start, plan), repeats)


@torch.no_grad()
def seconds_per_query_step(giorom, n: int, queries: int, repeats: int = 3) -> float:
    """One GIOROM processor step on the sparse graph of an ``n``-particle cloud, then the
    decoder queried at ``queries`` random points of the box (s)."""
    data, start = cloud(n, giorom.dim, giorom.history)
    ids = giorom.rollout_plan(data, start)[0]
    points = np.random.default_rng(1).random((queries, giorom.dim))

    def step():
        giorom.advance_sparse(start[ids], data.material[ids], n)
        giorom.query(points)

    return best_of(step, repeats)


def mpm_seconds_per_frame(particles: int, frames: int = 3) -> float:
    """The MPM simulator's own wall time per frame (warp, after compilation) on an mpm2d scene of
    ``particles`` particles (mixed materials, the generator's stride)."""
    from meshop.data.problems.mpm import simulate_scene

    simulate_scene(np.random.default_rng(0), 2, 256, "mixed", 1, "slip", 0, 0.01)          # compile
    began = time.perf_counter()
    simulate_scene(np.random.default_rng(0), 2, particles, "mixed", frames, "slip", 0, 0.01)
    return (time.perf_counter() - began) / frames


def query_row(giorom, queries: list[int], repeats: int = 3) -> str:
    """GIOROM's step + query time at each number of query points, and the ratio last / first."""
    q_times = [seconds_per_query_step(giorom, 4000, q, repeats) for q in queries]
    cells = ", ".join(f"{1e3 * t:.1f} ms at {q:,}" for q, t in zip(queries, q_times))
    return (f"GIOROM step + query on a 4,000-particle cloud ({giorom.sparse_nodes} sparse nodes): {cells} "
            f"query points ({q_times[-1] / q_times[0]:.2f}× from {queries[0]:,} to {queries[-1]:,})")


def query_rows(giorom, queries=(1000, 10000, 100000)) -> None:
    """``--only queries``: the query-scaling rows alone, for ``giorom`` and at the published size."""
    print(f"machine: {machine()}")
    print(f"{giorom.config.get('decoder', 'query')} decoder, latent {giorom.config['latent']}:")
    print(query_row(giorom, list(queries), repeats=5))
    print("published sizes (latent 128, 10 message-passing steps, 1,000 sparse nodes, query decoder), random weights:")
    print(query_row(published("giorom", giorom), list(queries), repeats=5))


def speed_rows(gns, giorom, sizes: list[int], queries: list[int], mpm: dict[int, float]) -> list[str]:
    rows = [query_row(giorom, queries)]
    for n in sizes:
        t_gns, t_giorom = seconds_per_step(gns, n, repeats=1 if n > 20000 else 2), seconds_per_step(giorom, n)
        rows.append(f"per rollout step at {n:,} particles: GNS {1e3 * t_gns:.0f} ms, GIOROM {1e3 * t_giorom:.0f} ms "
                    f"(GIOROM {t_gns / t_giorom:.1f}× faster); the MPM simulator {1e3 * mpm[n]:.0f} ms per frame")
    return rows


def published(name: str, template):
    """An untrained model of the published size with ``template``'s statistics and radius."""
    options = dict(history=template.history, latent=128, message_passing_steps=10, radius=template.radius)
    if name == "giorom":
        options["sparse_nodes"] = 1000
    model = registry.get(name, template.in_channels, template.dim, template.dim, **options).eval()
    model.load_state_dict({k: v for k, v in template.state_dict().items() if k.endswith(("_mean", "_std", "bounds"))},
                          strict=False)
    return model


def accuracy(checkpoints: dict[str, list], data: list[str] | None, scenes: int, plot: Path | None = None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folders = {Path(d).name: Path(d) for d in data} if data else \
            generate_test_sets(Path(scratch), scenes, 1000, 40)
        sets = {name: read_test_set(folder, scenes) for name, folder in folders.items()}
    counts = [t.n_points for test in sets.values() for t in test]
    print(f"test sets: {scenes} scene(s) each of {next(iter(sets.values()))[0].n_frames} frames, "
          f"{min(counts)}-{max(counts)} particles")
    for label, models in checkpoints.items():
        m = models[0]
        print(f"{label}: {m.n_parameters():,} parameters, latent {m.config['latent']}, "
              f"{m.config['message_passing_steps']} message-passing steps"
              + (f", {m.sparse_nodes} sparse nodes" if label == "giorom" else ""))
    print()
    curves = {}
    print("\n".join(accuracy_rows(checkpoints, sets, curves)))
    if plot is not None:
        plot_curves(curves, plot)


def speed(gns, giorom, full: bool) -> None:
    sizes, queries = [10000, 30000] if full else [10000], [1000, 10000, 100000]
    mpm = {n: mpm_seconds_per_frame(n) for n in [1000] + sizes}
    print(f"\nper rollout step at 1,000 particles (the test scenes): GNS {1e3 * seconds_per_step(gns, 1000):.0f} ms, "
          f"GIOROM {1e3 * seconds_per_step(giorom, 1000):.0f} ms; the MPM simulator {1e3 * mpm[1000]:.0f} ms per frame")
    print("trained models:")
    print("\n".join(speed_rows(gns, giorom, sizes, queries, mpm)))
    print("\npublished sizes (latent 128, 10 message-passing steps, GIOROM on 1,000 sparse nodes), random weights:")
    print("\n".join(speed_rows(published("gns", gns), published("giorom", giorom), sizes, queries, mpm)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gns", nargs="+", default=[], help="GNS checkpoints (one per training seed)")
    parser.add_argument("--giorom", nargs="+", default=[], help="GIOROM checkpoints (one per training seed)")
    parser.add_argument("--data", nargs="*", help="test folders (default: generated here, see TEST_SETS)")
    parser.add_argument("--full", action="store_true", help="3 scenes per test set, 30k-particle speed row")
    parser.add_argument("--plot", type=Path, help="also draw each test set's position error per rollout frame (PNG)")
    parser.add_argument("--only", choices=["accuracy", "speed", "queries"],
                        help="one half of the table, or only the query-scaling rows (GIOROM: --giorom or the bundled mpm2d)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: both models alike on a shared machine; the decoder's k-d tree "
                             "search (cKDTree) uses every core regardless)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only == "queries":
        return query_rows(load(args.giorom[0] if args.giorom else bundled_models()["mpm2d"]).model.eval())
    if not (args.gns and args.giorom) and args.only != "accuracy":
        parser.error("the speed rows need a --gns and a --giorom checkpoint (or pass --only accuracy)")
    scenes = 3 if args.full else 1
    checkpoints = {name: [load(p).model.eval() for p in paths] for name, paths in
                   (("gns", args.gns), ("giorom", args.giorom)) if paths}
    print(f"machine: {machine()}")
    if args.only != "speed":
        accuracy(checkpoints, args.data, scenes, args.plot)
    if args.only != "accuracy":
        speed(checkpoints["gns"][0], checkpoints["giorom"][0], args.full)


if __name__ == "__main__":
    main()
