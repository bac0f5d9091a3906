"""Regenerate the bundled sample parts: ``bracket.vtu`` (tetrahedral mesh) and ``bracket.stl``
(its closed outer surface).

An L-bracket with a gusset, three holes in the base and two in the wall, 80 mm long, in
millimetre coordinates, meshed by gmsh with about 4000 nodes. Run from anywhere:

    python examples/parts/make_parts.py
"""

from __future__ import annotations

from pathlib import Path

import trimesh

import meshop
from meshop.data.shapes import part_mesh

HERE = Path(__file__).resolve().parent
LENGTH_MM = 80.0

BRACKET = {                       # unit-scale l_bracket parameters (see meshop.data.shapes)
    "length": 1.0, "width": 0.6, "thickness": 0.1, "height": 0.7, "wall": 0.1, "gusset": 0.25,
    "base_holes": [[0.45, 0.15, 0.06], [0.8, 0.15, 0.06], [0.8, 0.45, 0.06]],
    "wall_holes": [[0.13, 0.5, 0.06], [0.47, 0.5, 0.06]],
}


def main() -> None:
    points, tets = part_mesh("l_bracket", BRACKET, target_nodes=4000)
    mesh = meshop.Mesh(points * LENGTH_MM, {"tetra": tets})
    meshop.write(mesh, HERE / "bracket.vtu")
    surface = trimesh.Trimesh(mesh.points, mesh.boundary.facets[:, :3], process=True)
    surface.fix_normals()
    if not surface.is_watertight:
        raise RuntimeError("the bracket surface is not closed")
    surface.export(HERE / "bracket.stl")
    print(f"bracket: {mesh.n_points} nodes, {len(tets)} tets, {len(surface.faces)} surface "
          f"triangles, {surface.volume:.0f} mm^3")


if __name__ == "__main__":
    main()
