"""Boundary geometry on ~200k-node tetrahedral meshes: validation, boundary facets and nodes,
outward normals, distance to the boundary.

Baselines measured in the same run on the same mesh: VTK's surface extraction
(PyVista ``extract_surface``) for the boundary, and VTK's exact point-to-surface distance
(``vtkImplicitPolyDataDistance``, a cell locator) for the distance. The check column compares
the results: boundary node counts, and the largest distance difference. "(cpu s)" is the
process CPU time over all threads, the figure to trust on a shared, loaded machine.

    python benchmarks/boundary.py              # unit cube (59^3 nodes), gmsh ball (h = 0.025)
    python benchmarks/boundary.py --quick      # ~30k nodes
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from machine import machine

import meshop


def cube(side: int) -> meshop.Mesh:
    """Unit cube, side**3 nodes, each grid cube split into 6 tetrahedra."""
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, side)] * 3, indexing="ij")
    points = np.stack([a.ravel() for a in axes], axis=1)
    ids = np.arange(side ** 3).reshape(side, side, side)
    corner = [ids[i:side - 1 + i, j:side - 1 + j, k:side - 1 + k].ravel()
              for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    tets = []
    for order in itertools.permutations(range(3)):
        offset, path = [0, 0, 0], [corner[0]]
        for axis in order:
            offset[axis] = 1
            path.append(corner[4 * offset[0] + 2 * offset[1] + offset[2]])
        tets.append(np.stack(path, axis=1))
    return points, {"tetra": np.concatenate(tets)}


def ball(h: float):
    """Unit ball meshed by gmsh with element size h."""
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 2)
        gmsh.model.occ.addSphere(0, 0, 0, 1.0)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.model.mesh.generate(3)
        tags, coords, _ = gmsh.model.mesh.getNodes()
        _, nodes = gmsh.model.mesh.getElementsByType(4)
    finally:
        gmsh.finalize()
    index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
    index[tags.astype(np.int64)] = np.arange(len(tags))
    return coords.reshape(-1, 3), {"tetra": index[nodes.astype(np.int64)].reshape(-1, 4)}


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process, all threads)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def vtk_baselines(points, tets):
    import pyvista as pv
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

    grid = pv.UnstructuredGrid({pv.CellType.TETRA: tets}, points)
    surface, *t_surface = timed(lambda: grid.extract_surface(algorithm="dataset_surface"))

    def distance():
        function = vtkImplicitPolyDataDistance()
        function.SetInput(surface)
        out = numpy_to_vtk(np.zeros(len(points)), deep=True)
        function.FunctionValue(numpy_to_vtk(points, deep=True), out)
        return np.abs(vtk_to_numpy(out))

    dist, *t_dist = timed(distance)
    return surface.n_points, t_surface, dist, t_dist


def run(name: str, points: np.ndarray, cells: dict) -> None:
    mesh, *t_init = timed(lambda: meshop.Mesh(points, cells))
    facets, *t_facets = timed(lambda: (mesh.boundary, mesh.boundary_mask)[0])
    _, *t_normals = timed(lambda: mesh.boundary_normals)
    dist, *t_dist = timed(lambda: mesh.distance_to_boundary)
    n_surface, t_vtk_surface, vtk_dist, t_vtk_dist = vtk_baselines(points, cells["tetra"])
    print(f"\n{name}: {mesh.n_points:,} nodes, {len(cells['tetra']):,} tetrahedra, "
          f"{len(facets.facets):,} boundary facets")
    print(f"{'step':<26}{'meshop s':>9}{'(cpu s)':>9}{'VTK s':>8}{'(cpu s)':>9}{'VTK/meshop':>11}  check")
    rows = [("validation (Mesh(...))", t_init, None, ""),
            ("boundary facets + nodes", t_facets, t_vtk_surface,
             f"nodes {int(mesh.boundary_mask.sum()):,} vs VTK {n_surface:,}"),
            ("outward normals", t_normals, None, ""),
            ("distance to boundary", t_dist, t_vtk_dist,
             f"max |difference| {np.abs(dist - vtk_dist).max():.1e}")]
    for label, ours, vtk, check in rows:
        line = f"{label:<26}{ours[0]:>9.2f}{ours[1]:>9.2f}"
        if vtk is not None:
            line += f"{vtk[0]:>8.2f}{vtk[1]:>9.2f}{vtk[0] / ours[0]:>11.1f}  {check}"
        print(line)
    total = [sum(t[i] for _, t, _, _ in rows) for i in (0, 1)]
    print(f"{'total':<26}{total[0]:>9.2f}{total[1]:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~30k-node meshes")
    args = parser.parse_args()
    print(machine())
    side, h = (31, 0.08) if args.quick else (59, 0.025)
    run(f"unit cube, {side}^3 grid", *cube(side))
    run(f"gmsh unit ball, h = {h}", *ball(h))


if __name__ == "__main__":
    main()
