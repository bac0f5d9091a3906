"""Why the default model's error grows with the mesh: the same part at several resolutions.

For a unit cube and a sphere (q = 1, T = 0 on the surface), at each resolution: the model's
relative L2 against FEM on that mesh; the best single scale factor s* = <u, T> / <u, u> of the
prediction u and the error left after it (an amplitude error vanishes, a shape error stays);
the prediction made on the coarsest, ~3k-node mesh of the same part (the training resolution)
and interpolated (P1, scikit-fem probes) onto the fine mesh; the FEM solution's own maximum (the
discretization error of the reference) and the surface's share of the nodes (the boundary flag
the model's restriction averages). Writes a figure with ``--plot PNG``.

    python benchmarks/resolution_study.py [--plot docs/images/resolution_study.png] [--compactness]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from machine import machine

import meshop
from meshop.data.problems.heat3d import uniform_heating
from meshop.meshing import gmsh_session, mesh_arrays
from meshop.prediction import Predictor


#: mesh sizes studied (nodes, about); the training meshes have ~3k
SIZES = (3000, 12_000, 50_000)


def cube(nodes: int) -> meshop.Mesh:
    from skfem import MeshTet

    side = round(nodes ** (1 / 3))
    m = MeshTet.init_tensor(*(np.linspace(0.0, 1.0, side),) * 3)
    return meshop.Mesh(m.p.T, {"tetra": m.t.T})


def sphere(nodes: int) -> meshop.Mesh:
    """A sphere of radius 0.3 m with about ``nodes`` nodes (gmsh)."""
    with gmsh_session("sphere") as gmsh:
        gmsh.model.occ.addSphere(0, 0, 0, 0.3)
        gmsh.model.occ.synchronize()
        size = 0.53 * (4 / 3 * np.pi * 0.3 ** 3 / nodes * 6 * np.sqrt(2)) ** (1 / 3)  # 0.53: measured
        gmsh.option.setNumber("Mesh.MeshSizeMax", size)
        gmsh.option.setNumber("Mesh.MeshSizeMin", size / 3)
        gmsh.model.mesh.generate(3)
        points, tets = mesh_arrays(gmsh, 3)
    return meshop.Mesh(points, {"tetra": tets})


def interpolate(coarse: meshop.Mesh, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of nodal ``values`` of ``coarse`` at ``points`` (scipy, on
    the Delaunay tetrahedra of the coarse nodes: the part's own on these convex parts; scikit-fem's
    probes ran out of memory at 100k points); nearest node where a point falls outside."""
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    inside = LinearNDInterpolator(coarse.points, values)(points)
    outside = np.isnan(inside)
    inside[outside] = NearestNDInterpolator(coarse.points, values)(points[outside])
    return inside


def study(predictor: Predictor, make, sizes) -> list[dict]:
    """One row per size (printed as it is measured) of the part ``make(nodes)``."""
    name = {"cube": "unit cube", "sphere": "sphere r = 0.3 m"}[make.__name__]
    coarse = make(3000)
    coarse_prediction = predictor.predict(coarse, estimate=False).mesh.point_data["temperature_pred"]
    rows = []
    for nodes in sizes:
        mesh = make(nodes)
        truth = uniform_heating(mesh, solver="direct" if mesh.n_points < 20_000 else "cg")
        u = predictor.predict(mesh, estimate=False).mesh.point_data["temperature_pred"]
        proxy = interpolate(coarse, coarse_prediction, mesh.points)
        scale = float(u @ truth / (u @ u))
        rows.append({"nodes": mesh.n_points, "error": _relative(u, truth), "scale": scale,
                     "scaled error": _relative(scale * u, truth), "from 3k": _relative(proxy, truth),
                     "max T": float(truth.max()), "max u / max T": float(u.max() / truth.max()),
                     "surface share": float(mesh.boundary_mask.mean())})
        r = rows[-1]
        print(f"| {name} | {r['nodes']} | {r['error']:.4f} | {r['scale']:.3f} | {r['scaled error']:.4f} "
              f"| {r['from 3k']:.4f} | {r['max u / max T']:.3f} | {r['max T']:.5f} | {r['surface share']:.3f} |",
              flush=True)
    return rows


def _relative(u: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(u - truth) / np.linalg.norm(truth))


def plot(results: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.8), squeeze=False)
    for ax, (part, rows) in zip(axes[0], results.items()):
        nodes = [r["nodes"] for r in rows]
        for key, style in (("error", "o-"), ("scaled error", "s--"), ("from 3k", "^:")):
            label = {"error": "model on the mesh", "scaled error": "after the best scale factor",
                     "from 3k": "model on the coarsest mesh, interpolated"}[key]
            ax.plot(nodes, [100 * r[key] for r in rows], style, label=label)
        ax.set_xscale("log")
        ax.set_xticks(nodes, [f"{n / 1000:.1f}k" for n in nodes])
        ax.minorticks_off()
        ax.set_ylim(0, None)
        ax.set_xlabel("mesh nodes")
        ax.set_ylabel("relative L2 vs FEM on the mesh (%)")
        ax.set_title(part)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def compactness(n_training: int = 30) -> None:
    """Inradius / bounding-box diagonal of ``n_training`` generator parts (by family) and of the
    parts of ``default_model.py``: how compact a part is, against the training range."""
    from default_model import unlike_parts

    from meshop.data.shapes import random_part_3d

    rng, by_family = np.random.default_rng(0), {}
    for _ in range(n_training):
        points, tets, part = random_part_3d(rng, target_nodes=1200)
        by_family.setdefault(part["family"], []).append(_compactness(meshop.Mesh(points, {"tetra": tets})))
    for family, values in by_family.items():
        print(f"training {family} ({len(values)} parts): inradius / diagonal {min(values):.3f}-{max(values):.3f}")
    for name, mesh in unlike_parts().items():
        print(f"{name}: inradius / diagonal {_compactness(mesh):.3f}")


def _compactness(mesh: meshop.Mesh) -> float:
    return float(mesh.distance_to_boundary.max() / mesh.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=None, help="write the figure here")
    parser.add_argument("--compactness", action="store_true",
                        help="also: inradius / diagonal of 30 training parts and of the benchmark's parts")
    args = parser.parse_args()
    if args.compactness:
        compactness()
    predictor = Predictor()
    print(f"model: {predictor.checkpoint.path}")
    print(f"machine: {machine()}")
    print("| part | nodes | relative L2 | best scale s* | after s* | from the 3k mesh | max u / max T "
          "| FEM max T | surface share |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    results = {"sphere r = 0.3 m": study(predictor, sphere, SIZES), "unit cube": study(predictor, cube, SIZES)}
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
