"""Speed of meshop's graph builders against the obvious alternative, measured in the same run.

    python benchmarks/graphs.py                 # 1,000,000 points; FPS on 100,000
    python benchmarks/graphs.py --size 100000   # smaller: FPS on size / 10

Rows: radius graph (~16 neighbours per node) and kNN graph (k=16) vs a bare scipy ``cKDTree``
query of the same pairs (tree build + ``query_pairs(output_type="ndarray")``, tree build +
``query(k=17, workers=-1)``): the ratio is what meshop's sorting and conversion cost on top;
farthest-point sampling (N/10 -> N/40 points), exact and fast (``exact=False``, fpsample's
QuickFPS; its covering radius relative to the exact one's in the note), the exact one also
against fpsample's exact QuickFPS (N/10 -> N/40 and N -> N/100), and a 3-level FPS hierarchy vs
the plain numpy FPS loop; K-D-tree decomposition into <= 50,000-point sub-domains
with halos, density criterion vs median splits. Times are wall-clock seconds, the best of
``--repeat`` runs (meshop and baseline alternate); ratio = baseline seconds / meshop seconds
(> 1: meshop is faster). The cpu columns add up the CPU time of all this process's threads
(``time.process_time``): on a shared machine they show what the wall times would be without the
other load (for one-thread code).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy
from machine import machine
from scipy.spatial import cKDTree

from meshop.geometry.hierarchy import farthest_point_sampling, hierarchy
from meshop.geometry.neighbors import knn_graph, radius_graph

NEIGHBORS = 16
LOOP_SAMPLES = 2500        # the plain FPS loop runs this many picks and is extrapolated linearly


class Timing:
    """Wall and CPU seconds of one call; ``scaled`` extrapolates both linearly."""

    def __init__(self, wall: float, cpu: float):
        self.wall, self.cpu = wall, cpu

    def scaled(self, factor: float) -> "Timing":
        return Timing(self.wall * factor, self.cpu * factor)


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def best_of(repeat: int, ours, base):
    """``(our result, our best Timing, base result, base best Timing)`` over ``repeat``
    alternating runs of the two zero-argument callables."""
    runs = [(timed(ours), timed(base)) for _ in range(repeat)]
    fastest = lambda timings: min(timings, key=lambda t: t.wall)         # noqa: E731
    return (runs[0][0][0], fastest([r[0][1] for r in runs]), runs[0][1][0],
            fastest([r[1][1] for r in runs]))


def numpy_fps_loop(points: np.ndarray, n_samples: int) -> np.ndarray:
    """The obvious FPS: per pick, distances from the newest sample to every point."""
    dist = np.full(len(points), np.inf)
    picks = [0]
    for _ in range(n_samples - 1):
        dist = np.minimum(dist, ((points - points[picks[-1]]) ** 2).sum(axis=1))
        picks.append(int(np.argmax(dist)))
    return np.array(picks)


def bench_radius(points: np.ndarray, repeat: int):
    n = len(points)
    r = (NEIGHBORS * 3 / (4 * np.pi * n)) ** (1 / 3)        # ~16 neighbours in the unit cube
    edges, ours, pairs, base = best_of(
        repeat, lambda: radius_graph(points, r),
        lambda: cKDTree(points).query_pairs(r, output_type="ndarray"))
    assert 2 * len(pairs) == edges.shape[1], "radius graph differs from cKDTree's pairs"
    return (f"radius_graph r={r:.4g} ({edges.shape[1] / n:.1f} nbrs/node)", f"{n:,}", ours,
            "cKDTree + query_pairs", base, "")


def bench_knn(points: np.ndarray, repeat: int):
    n = len(points)
    edges, ours, (_, found), base = best_of(
        repeat, lambda: knn_graph(points, NEIGHBORS),
        lambda: cKDTree(points).query(points, k=NEIGHBORS + 1, workers=-1))
    assert found.size == edges.shape[1] + n
    return (f"knn_graph k={NEIGHBORS}", f"{n:,}", ours, "cKDTree + query k+1", base, "")


def bench_fast_fps(points: np.ndarray, repeat: int):
    n, m = len(points), len(points) // 4
    fast, ours, exact, base = best_of(repeat, lambda: farthest_point_sampling(points, m, exact=False),
                                      lambda: farthest_point_sampling(points, m))
    covering = [cKDTree(points[s]).query(points, workers=-1)[0].max() for s in (fast, exact)]
    return ("farthest_point_sampling exact=False", f"{n:,} -> {m:,}", ours, "exact FPS (meshop)",
            base, f"covering radius {covering[0] / covering[1]:.4f}x the exact one's")


def bench_fps(points: np.ndarray):
    n, m = len(points), len(points) // 4
    sample, ours = timed(farthest_point_sampling, points, m)
    steps = min(m, LOOP_SAMPLES)
    loop, base = timed(numpy_fps_loop, points, steps)
    assert np.array_equal(loop, sample[:steps]), "FPS differs from the plain loop"
    note = f"loop timed on {steps:,} picks, x{m / steps:g} (linear)" if steps < m else ""
    return ("farthest_point_sampling", f"{n:,} -> {m:,}", ours, "numpy FPS loop",
            base.scaled(m / steps), note)


def bench_fps_against_fpsample(points: np.ndarray, samples: int, repeat: int):
    """Exact FPS against fpsample's exact QuickFPS (bucket k-d tree, float64 input) from the same
    start: the same covering radius (note), not always the same order (fpsample starts where it
    chooses and breaks near-ties in float32)."""
    import fpsample

    ours_ids, ours, theirs_ids, base = best_of(
        repeat, lambda: farthest_point_sampling(points, samples),
        lambda: fpsample.bucket_fps_kdtree_sampling(points, samples, start_idx=0))
    covering = [cKDTree(points[s]).query(points, workers=-1)[0].max() for s in (ours_ids, theirs_ids)]
    return ("farthest_point_sampling (exact)", f"{len(points):,} -> {samples:,}", ours,
            "fpsample QuickFPS (exact)", base, f"covering radius {covering[0] / covering[1]:.4f}x fpsample's")


def bench_hierarchy(points: np.ndarray, fps_loop: Timing):
    h, ours = timed(hierarchy, points, levels=3, ratio=4, method="fps")
    sizes = " -> ".join(f"{len(i):,}" for i in h.indices)
    return ("hierarchy 3 levels fps + radius graphs + pool", sizes, ours, "numpy FPS loop only",
            fps_loop, "baseline = sampling alone, no graphs")


def bench_decompose(points: np.ndarray):
    try:
        from meshop.geometry.kdtree import decompose
    except ImportError as exc:
        print(f"skipping decompose: {exc}")
        return None
    n = len(points)
    halo = (NEIGHBORS * 3 / (4 * np.pi * n)) ** (1 / 3)
    parts, ours = timed(decompose, points, max_points=50_000, halo=halo, criterion="density")
    median, base = timed(decompose, points, max_points=50_000, halo=halo, criterion="median")
    halo_mean = np.mean([len(p.halo) for p in parts])
    return (f"decompose density, halo={halo:.3g}", f"{n:,} -> {len(parts)} parts", ours,
            f"median K-D tree ({len(median)} parts)", base, f"mean halo {halo_mean:,.0f} pts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000,
                        help="points for the radius/kNN/decompose rows (FPS uses size / 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per graph row (best kept)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    points = rng.random((args.size, 3))
    fps_points = rng.random((args.size // 10, 3))
    print(f"machine: {machine()}; numpy {np.__version__}, scipy {scipy.__version__}")
    print(f"data: uniform random points in the unit cube, seed {args.seed}")
    rows = [bench_radius(points, args.repeat), bench_knn(points, args.repeat)]
    rows.append(bench_fps(fps_points))
    rows.append(bench_fast_fps(fps_points, args.repeat))
    rows.append(bench_fps_against_fpsample(fps_points, len(fps_points) // 4, args.repeat))
    rows.append(bench_fps_against_fpsample(points, args.size // 100, args.repeat))
    rows.append(bench_hierarchy(fps_points, rows[2][4]))
    rows.append(bench_decompose(points))
    header = ("task", "size", "meshop s", "cpu s", "baseline", "baseline s", "cpu s", "ratio",
              "note")
    table = [header]
    for task, size, ours, baseline, base, note in filter(None, rows):
        table.append((task, size, f"{ours.wall:.2f}", f"{ours.cpu:.2f}", baseline,
                      f"{base.wall:.2f}", f"{base.cpu:.2f}", f"{base.wall / ours.wall:.1f}x", note))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
