"""Boundary geometry on ~200k-node tetrahedral meshes: validation, boundary facets and nodes,
outward normals, distance to the boundary.

Baselines measured in the same run on the same mesh: VTK's surface extraction
(PyVista ``extract_surface``) for the boundary, and VTK's exact point-to-surface distance
(``vtkImplicitPolyDataDistance``, a cell locator) for the distance. The check column compares
the results: boundary node counts, and the largest distance difference.

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
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def vtk_baselines(points, tets):
    import pyvista as pv
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

    grid = pv.UnstructuredGrid({pv.CellType.TETRA: tets}, points)
    surface, t_surface = timed(lambda: grid.extract_surface(algorithm="dataset_surface"))

    def distance():
        function = vtkImplicitPolyDataDistance()
        function.SetInput(surface)
        out = numpy_to_vtk(np.zeros(len(points)), deep=True)
        function.FunctionValue(numpy_to_vtk(points, deep=True), out)
        return np.abs(vtk_to_numpy(out))

    dist, t_dist = timed(distance)
    return surface.n_points, t_surface, dist, t_dist


def run(name: str, points: np.ndarray, cells: dict) -> None:
    mesh, t_init = timed(lambda: meshop.Mesh(points, cells))
    facets, t_facets = timed(lambda: mesh.boundary)
    mask, t_mask = timed(lambda: mesh.boundary_mask)
    _, t_normals = timed(lambda: mesh.boundary_normals)
    dist, t_dist = timed(lambda: mesh.distance_to_boundary)
    n_surface, t_vtk_surface, vtk_dist, t_vtk_dist = vtk_baselines(points, cells["tetra"])
    print(f"\n{name}: {mesh.n_points:,} nodes, {len(cells['tetra']):,} tetrahedra, "
          f"{len(facets.facets):,} boundary facets")
    print(f"{'step':<34}{'meshop s':>10}{'VTK s':>10}{'VTK/us':>8}  check")
    print(f"{'validation (Mesh(...))':<34}{t_init:>10.2f}{'':>10}{'':>8}")
    print(f"{'boundary facets + nodes':<34}{t_facets + t_mask:>10.2f}{t_vtk_surface:>10.2f}"
          f"{t_vtk_surface / (t_facets + t_mask):>8.1f}  nodes {int(mask.sum()):,} vs VTK {n_surface:,}")
    print(f"{'outward normals':<34}{t_normals:>10.2f}")
    print(f"{'distance to boundary':<34}{t_dist:>10.2f}{t_vtk_dist:>10.2f}{t_vtk_dist / t_dist:>8.1f}"
          f"  max |difference| {np.abs(dist - vtk_dist).max():.2e}")
    total = t_init + t_facets + t_mask + t_normals + t_dist
    print(f"{'total':<34}{total:>10.2f}")


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
