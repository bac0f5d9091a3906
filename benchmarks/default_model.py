"""Accuracy of a heat model (default: the bundled one) on the heat3d test split and on unlike parts,
with its error estimate and the cost of refining its answer to the FEM solution.

Unlike parts are shapes none of the training families (plates, blocks, L-brackets, flanges,
shafts) makes: a sphere, a torus, a hollow square section, a cone, a star prism, a T-beam, and
compact or scanned-like parts: a hex nut in millimetres far from the origin and a pebble
tetrahedralized from a wavy closed surface (STL-like); then the unit cube (a block, the simplest
part) and the bundled bracket (an L-bracket like the training family, kept as the quick start's
part). Each is solved with the default model's use case (uniform source q = 1, surfaces held at
T = 0) by scikit-fem, the ground truth, and predicted; the table gives relative L2, the
a-posteriori estimate of it and their ratio, the speed-up over the solve, and `--refine 1e-8`:
CG iterations (AMG-preconditioned) from the prediction against the same solver from zero. For a
model trained with a coarse physics prior (`meshop train --prior`) the error of the prior alone
is printed beside the model's. On meshes of up to ``P2_MAX_NODES`` nodes the model is also
measured against quadratic (P2) elements on the same mesh, a reference an order more accurate
than the P1 truth (on a coarse curved part P1 itself is up to ~13 % off it: the columns
``vs P2 FEM`` and ``P1 FEM vs P2``).

    python benchmarks/default_model.py [--model CKPT] [--data data/heat3d-default] [--resolution]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine import machine

import meshop
from meshop.data.problems.heat3d import uniform_heating
from meshop.meshing import gmsh_session, mesh_arrays
from meshop.prediction import Predictor
from meshop.priors import coarse_prior

HERE = Path(__file__).resolve().parent
#: the largest mesh whose P2 reference is solved (~8 unknowns per node: 120k nodes ~1M, AMG-CG)
P2_MAX_NODES = 120_000


def unlike_parts(mesh_size_fraction: float = 1 / 28, refine: float = 1.0, only: list[str] | None = None
                 ) -> dict[str, meshop.Mesh]:
    """Tetrahedral meshes of shapes outside the heat3d families, at assorted sizes (metres).

    Mesh size: ``mesh_size_fraction`` of the bounding-box diagonal, capped at half the part's
    thinnest wall — the rule of the training meshes (two elements across every wall), without
    which a thin web is one element thick and neither FEM nor the model resolves it — and then
    divided by ``refine`` (2: about 8x the nodes). ``only``: these parts (by name), without the
    bracket."""
    builders = {                                       # name: (build, thinnest wall in m)
        "sphere r=0.3": (lambda occ: occ.addSphere(0, 0, 0, 0.3), 0.6),
        "torus R=1 r=0.25": (lambda occ: occ.addTorus(0, 0, 0, 1.0, 0.25), 0.5),
        "hollow square section": (lambda occ: occ.cut([(3, occ.addBox(0, 0, 0, 0.3, 0.3, 0.5))],
                                                      [(3, occ.addBox(0.07, 0.07, -0.1, 0.16, 0.16, 0.7))]), 0.07),
        "cone 2 m": (lambda occ: occ.addCone(0, 0, 0, 0, 0, 2.0, 0.8, 0.1), 0.2),
        "star prism": (_star_prism, 0.12),
        "T-beam": (lambda occ: occ.fuse([(3, occ.addBox(-0.5, -0.05, 0, 1.0, 0.1, 0.08))],
                                        [(3, occ.addBox(-0.5, -0.015, -0.3, 1.0, 0.03, 0.3))]), 0.03),
    }
    builders["hex nut M24 (mm, far from origin)"] = (_hex_nut, 6.0)
    parts = {}
    for name, (build, thinnest) in builders.items():
        if only is not None and name not in only:
            continue
        with gmsh_session(name) as gmsh:
            build(gmsh.model.occ)
            gmsh.model.occ.synchronize()
            lo = np.array(gmsh.model.getBoundingBox(-1, -1)[:3])
            hi = np.array(gmsh.model.getBoundingBox(-1, -1)[3:])
            size = min(np.linalg.norm(hi - lo) * mesh_size_fraction, thinnest / 2) / refine
            gmsh.option.setNumber("Mesh.MeshSizeMax", size)
            gmsh.option.setNumber("Mesh.MeshSizeMin", size / 3)
            gmsh.model.mesh.generate(3)
            points, tets = mesh_arrays(gmsh, 3)
        parts[name] = meshop.Mesh(points, {"tetra": tets})
    if only is not None:
        return parts
    parts["scanned pebble (mm)"] = _pebble()
    parts["unit cube"] = _unit_cube()
    bracket = meshop.read(HERE.parent / "examples" / "parts" / "bracket.vtu")
    parts["bundled bracket (mm)"] = meshop.Mesh(bracket.points, bracket.cells)
    return parts


def _hex_nut(occ):
    """An M24 nut (36 mm across flats, 21.5 mm thick, 24 mm bore) in millimetres, 1.6 m from the origin."""
    angles = np.arange(6) * np.pi / 3
    corner = 18.0 / np.cos(np.pi / 6)
    points = [occ.addPoint(corner * np.cos(a), corner * np.sin(a), 0) for a in angles]
    lines = [occ.addLine(points[i], points[(i + 1) % 6]) for i in range(6)]
    prism = occ.extrude([(2, occ.addPlaneSurface([occ.addCurveLoop(lines)]))], 0, 0, 21.5)
    nut = occ.cut([e for e in prism if e[0] == 3], [(3, occ.addCylinder(0, 0, -1, 0, 0, 23.5, 12.0))])[0]
    occ.translate(nut, 1500.0, -600.0, 250.0)


def _pebble(nodes: int = 6000) -> meshop.Mesh:
    """A 40 mm pebble: an icosphere with a smooth random radial wave, as a scan's closed STL
    surface, filled with tetrahedra by gmsh (``meshop.meshing.tetrahedralize``)."""
    import trimesh

    from meshop.meshing import tetrahedralize

    sphere = trimesh.creation.icosphere(4)
    v = sphere.vertices
    radius = 1 + 0.15 * np.sin(2 * v[:, 0] + 1) * np.cos(3 * v[:, 1]) + 0.1 * np.sin(4 * v[:, 2] + v[:, 0])
    points = v * radius[:, None] * np.array([20.0, 14.0, 11.0]) + np.array([-300.0, 80.0, 40.0])
    surface = meshop.Mesh(points, {"triangle": sphere.faces})
    volume = tetrahedralize(surface, mesh_size=(4 * 20 * 14 * 11 / nodes) ** (1 / 3) * 1.6)
    return meshop.Mesh(volume.points, volume.cells)


def _unit_cube(nodes: int = 10_000) -> meshop.Mesh:
    from skfem import MeshTet

    side = round(nodes ** (1 / 3))
    cube = MeshTet.init_tensor(*(np.linspace(0.0, 1.0, side),) * 3)
    return meshop.Mesh(cube.p.T, {"tetra": cube.t.T})


def _star_prism(occ):
    angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    radii = np.where(np.arange(14) % 2 == 0, 0.2, 0.09)
    points = [occ.addPoint(r * np.cos(a), r * np.sin(a), 0) for r, a in zip(radii, angles)]
    lines = [occ.addLine(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
    surface = occ.addPlaneSurface([occ.addCurveLoop(lines)])
    occ.extrude([(2, surface)], 0, 0, 0.12)


def solve_heating(mesh: meshop.Mesh) -> tuple[np.ndarray, float]:
    """FEM temperature for q = 1, T = 0 on the surface, and the solve's seconds (direct below 50k
    nodes, AMG-preconditioned CG to relative residual 1e-10 above)."""
    started = time.perf_counter()
    truth = uniform_heating(mesh, solver="direct" if mesh.n_points < 50_000 else "cg")
    return truth, time.perf_counter() - started


def p2_errors(mesh: meshop.Mesh, predicted: np.ndarray, truth: np.ndarray) -> tuple[str, str]:
    """The relative L2 of ``predicted`` and of the P1 ``truth`` against the P2 solution on the same
    mesh, as text ("-" above :data:`P2_MAX_NODES` nodes)."""
    if mesh.n_points > P2_MAX_NODES:
        return "-", "-"
    reference = uniform_heating(mesh, solver="direct" if mesh.n_points < 10_000 else "cg", degree=2)
    return tuple(f"{np.linalg.norm(field - reference) / np.linalg.norm(reference):.4f}" for field in (predicted, truth))


def test_split_error(predictor: Predictor, data: Path) -> list[float]:
    manifest = json.loads((data / "dataset.json").read_text())
    errors = []
    for name in manifest["split"]["test"]:
        result = predictor.predict(meshop.read(data / name))
        errors.append(result.metrics["temperature"]["relative_l2"])
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint [default: the bundled heat3d model]")
    parser.add_argument("--data", type=Path, default=None, help="a heat3d dataset folder for the test split")
    parser.add_argument("--resolution", action="store_true",
                        help="also: three unlike parts meshed 2x and 4x finer (8x, 64x the nodes)")
    args = parser.parse_args()
    predictor = Predictor(args.model)
    print(f"model: {predictor.checkpoint.path} ({predictor.checkpoint.model_name}, "
          f"{predictor.checkpoint.model.n_parameters()} parameters)")
    print(f"machine: {machine()}")
    if args.data:
        errors = test_split_error(predictor, args.data)
        print(f"heat3d test split ({len(errors)} samples, own q and g): relative L2 "
              f"mean {np.mean(errors):.4f}, median {np.median(errors):.4f}, max {np.max(errors):.4f}")
    print("| part | nodes | relative L2 | vs P2 FEM | P1 FEM vs P2 | prior alone | estimate | estimate / true "
          "| max error / max T | predict s | estimate s | FEM s | speed-up | --refine 1e-8: CG its (s) "
          "| from zero: its (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    errors, unlike_vs_p2, ratios, unrefined = [], [], [], {}
    for name, mesh in unlike_parts().items():
        rel, max_error, result, fem_seconds, prior, truth = compare(predictor, mesh, refine=1e-8)
        unrefined[name] = (mesh, truth, rel, result, prior)
        against_p2 = p2_errors(mesh, result.mesh.point_data["temperature_pred"], truth)
        if not name.startswith(("bundled", "unit cube")):  # an L-bracket and a block: not unlike
            errors.append(rel)
            unlike_vs_p2.append(float(against_p2[0]))
        found, refined = result.estimate["temperature"], result.refinement["temperature"]
        ratios.append(found.relative / rel)
        print(f"| {name} | {mesh.n_points} | {rel:.4f} | {against_p2[0]} | {against_p2[1]} | {prior} "
              f"| {found.relative:.4f} | {found.relative / rel:.2f} "
              f"| {max_error:.4f} | {result.seconds:.2f} | {found.seconds:.2f} | {fem_seconds:.2f} "
              f"| {fem_seconds / result.seconds:.1f}x | {refined.iterations} ({refined.seconds:.2f}) "
              f"| {refined.cold_iterations} ({refined.cold_seconds:.2f}) |")
    print(f"unlike parts (bracket and cube excluded): relative L2 mean {np.mean(errors):.4f}, max {np.max(errors):.4f}; "
          f"against P2 on the same mesh mean {np.mean(unlike_vs_p2):.4f}, max {np.max(unlike_vs_p2):.4f}")
    print(f"estimate / true error over all rows: min {np.min(ratios):.2f}, max {np.max(ratios):.2f}")
    if args.resolution:
        resolution_table(predictor, unrefined)


def compare(predictor: Predictor, mesh: meshop.Mesh, refine: float | None = None):
    """``(relative L2, max error / max T, prediction, FEM seconds, prior alone, FEM solution)`` of the model on
    ``mesh`` against the FEM solution for q = 1, T = 0 on the surface (the prediction carries its
    error estimate, and its refinement to ``refine`` when given; ``prior alone``: the relative L2
    of the model's coarse prior, as text, "-" without one)."""
    truth, fem_seconds = solve_heating(mesh)
    result = predictor.predict(mesh, refine=refine)
    pred = result.mesh.point_data["temperature_pred"]
    rel = np.linalg.norm(pred - truth) / np.linalg.norm(truth)
    return (rel, np.abs(pred - truth).max() / truth.max(), result, fem_seconds, prior_error(predictor, mesh, truth),
            truth)


def prior_error(predictor: Predictor, mesh: meshop.Mesh, truth: np.ndarray) -> str:
    """Relative L2 of the checkpoint's coarse prior alone for q = 1, T = 0 ("-" without one)."""
    fields = predictor.checkpoint.fields
    if not fields.prior:
        return "-"
    raw = {name: fields.input_array(mesh, name)[0] for name in fields.inputs}   # the defaults: q = 1, T = 0
    prior = coarse_prior(mesh, fields, raw)[:, 0]
    return f"{np.linalg.norm(prior - truth) / np.linalg.norm(truth):.4f}"


def resolution_table(predictor: Predictor, unrefined: dict,
                     names=("torus R=1 r=0.25", "star prism", "T-beam", "hex nut M24 (mm, far from origin)")) -> None:
    """The same parts meshed finer: a discretization-independent model keeps its error.
    ``unrefined``: name -> (mesh, truth, relative L2, prediction, prior alone) of the parts as
    first meshed. For the coarser meshes of a part, two more columns compare with the FEM on its
    4x mesh (sampled at their nodes), the nearest to the exact solution there is: the model's
    error against it and the FEM's own discretization error on the coarser mesh."""
    print("| part | refinement | nodes | relative L2 | vs P2 FEM | prior alone | estimate / true | vs 4x FEM "
          "| FEM vs 4x FEM | predict s | nodes/s | estimate s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = {name: {1: unrefined[name]} for name in names}
    for refine in (2, 4):
        for name, mesh in unlike_parts(refine=refine, only=list(names)).items():
            rel, _, result, _, prior, truth = compare(predictor, mesh)
            rows[name][refine] = (mesh, truth, rel, result, prior)
    rows["unit cube"] = {1: unrefined["unit cube"]}
    for refine, nodes in ((2, 100_000), (4, 1_000_000)):     # 10.6k, 97k, 1M nodes
        mesh = _unit_cube(nodes)
        rel, _, result, _, prior, truth = compare(predictor, mesh)
        rows["unit cube"][refine] = (mesh, truth, rel, result, prior)
    for name, by_refinement in rows.items():
        finest_mesh, finest_truth = by_refinement[4][:2]
        for refine, (mesh, truth, rel, result, prior) in by_refinement.items():
            converged = ("-", "-")
            if refine < 4:
                reference = sampled(finest_mesh, finest_truth, mesh.points)
                converged = tuple(f"{np.linalg.norm(field - reference) / np.linalg.norm(reference):.4f}"
                                  for field in (result.mesh.point_data["temperature_pred"], truth))
            found = result.estimate["temperature"]
            against_p2 = p2_errors(mesh, result.mesh.point_data["temperature_pred"], truth)[0]
            print(f"| {name} | {refine}x | {mesh.n_points} | {rel:.4f} | {against_p2} | {prior} | {found.relative / rel:.2f} "
                  f"| {converged[0]} | {converged[1]} | {result.seconds:.2f} | {mesh.n_points / result.seconds:.0f} "
                  f"| {found.seconds:.2f} |", flush=True)


def sampled(mesh: meshop.Mesh, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``values`` (one per node of ``mesh``) interpolated linearly at ``points`` (VTK's probe);
    points outside the mesh (a coarser mesh's chords cut across a curved surface) take the
    nearest node's value."""
    import pyvista as pv
    from scipy.spatial import cKDTree

    from meshop.viz.scene import to_pyvista

    grid = to_pyvista(mesh)
    grid.point_data["values"] = values
    probed = pv.PolyData(points).sample(grid)
    found = np.asarray(probed.point_data["vtkValidPointMask"], dtype=bool)
    out = np.asarray(probed.point_data["values"], dtype=np.float64)
    out[~found] = values[cKDTree(mesh.points).query(points[~found])[1]]
    return out


if __name__ == "__main__":
    main()
