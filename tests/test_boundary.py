"""Boundaries checked against meshes known by hand, gmsh's own boundary nodes, analytic normals
and distances, and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from meshop import Mesh
from meshop.geometry.boundary import BoundaryFacets, distance_to_facets, point_cloud_boundary
from meshop.geometry.cells import CORNERS, HIGHER_ORDER_NODES, NODES_PER_CELL, facet_nodes, linear_type

from conftest import box_tetrahedra, grid_points


def on_box_surface(points: np.ndarray) -> np.ndarray:
    return ((points == 0.0) | (points == 1.0)).any(axis=1)


def angles_deg(normals: np.ndarray, reference: np.ndarray) -> np.ndarray:
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.einsum("nd,nd->n", normals, reference), -1.0, 1.0)))


# ---------------------------------------------------------------- counts known by hand
@pytest.mark.parametrize("kind", ["triangle", "quad"])
@pytest.mark.parametrize("n", [2, 3, 7])
def test_unit_square_boundary_is_its_4_sides(unit_square, n, kind):
    mesh = unit_square(n, kind)
    assert mesh.boundary_mask.sum() == 4 * (n - 1)
    np.testing.assert_array_equal(mesh.boundary_mask, on_box_surface(mesh.points))
    assert mesh.boundary.measures.sum() == pytest.approx(4.0)


@pytest.mark.parametrize("kind", ["hexahedron", "tetra"])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_unit_box_boundary_is_its_6_faces(unit_box, n, kind):
    mesh = unit_box(n, kind)
    assert mesh.boundary_mask.sum() == n ** 3 - (n - 2) ** 3
    np.testing.assert_array_equal(mesh.boundary_mask, on_box_surface(mesh.points))
    assert mesh.boundary.measures.sum() == pytest.approx(6.0)
    # every facet normal is the outward axis of its face
    centres = mesh.points[mesh.boundary.facets[:, :3]].mean(axis=1)
    axis = np.argmax(np.abs(mesh.boundary.normals), axis=1)
    side = np.where(centres[np.arange(len(axis)), axis] > 0.5, 1.0, -1.0)
    np.testing.assert_allclose(mesh.boundary.normals[np.arange(len(axis)), axis], side)


def test_mixed_hexahedra_and_wedges(unit_box):
    """Every other column of cubes split into two wedges by a vertical diagonal plane (whole
    columns, so the wedges' triangles meet triangles above and below)."""
    n = 4
    hexes = unit_box(n).cells["hexahedron"]
    column = np.arange(len(hexes)) // (n - 1)          # cubes are numbered z fastest
    split = (column // (n - 1) + column % (n - 1)) % 2 == 0
    h = hexes[split]
    wedges = np.concatenate([h[:, [0, 1, 2, 4, 5, 6]], h[:, [0, 2, 3, 4, 6, 7]]])
    mesh = Mesh(grid_points(n, 3), {"hexahedron": hexes[~split], "wedge": wedges})
    assert mesh.boundary_mask.sum() == n ** 3 - (n - 2) ** 3
    np.testing.assert_array_equal(mesh.boundary_mask, on_box_surface(mesh.points))
    assert mesh.boundary.measures.sum() == pytest.approx(6.0)
    assert set(np.sum(mesh.boundary.facets >= 0, axis=1)) == {3, 4}   # triangles and quads


def pyramid_box(unit_box, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and pyramids of the unit cube: each grid cube split into 6 pyramids whose bases
    are its faces and whose apex is a node at its centre."""
    box = unit_box(n)
    hexes = box.cells["hexahedron"]
    points = np.vstack([box.points, box.points[hexes].mean(axis=1)])
    apex = np.arange(len(hexes)) + n ** 3
    faces = [(0, 1, 2, 3), (4, 7, 6, 5), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
    return points, np.concatenate([np.c_[hexes[:, list(f)], apex] for f in faces])


def test_mixed_pyramids_and_tetrahedra(unit_box):
    """Pyramids whose base lies on the box surface are split into 2 tetrahedra: the surface is
    tet triangles, inside pyramid quads meet quads and tet triangles meet pyramid sides."""
    n = 3
    points, pyramids = pyramid_box(unit_box, n)
    outside = on_box_surface(points[pyramids[:, :4]].mean(axis=1))
    p = pyramids[outside]
    tets = np.concatenate([p[:, [0, 1, 2, 4]], p[:, [0, 2, 3, 4]]])
    mesh = Mesh(points, {"pyramid": pyramids[~outside], "tetra": tets})
    assert mesh.boundary_mask.sum() == n ** 3 - (n - 2) ** 3
    np.testing.assert_array_equal(mesh.boundary_mask, on_box_surface(mesh.points))
    assert mesh.boundary.measures.sum() == pytest.approx(6.0)
    assert len(mesh.boundary.facets) == 2 * 6 * (n - 1) ** 2


# ---------------------------------------------------------------- higher-order cells
def test_higher_order_node_tables_match_vtk():
    """Each higher-order node sits, under VTK's linear map of the parent cell, at the mean of
    the corners it spans (checked on random corner positions)."""
    from vtkmodules import vtkCommonDataModel as vtk

    quadratic = {"line3": "vtkQuadraticEdge", "triangle6": "vtkQuadraticTriangle",
                 "quad8": "vtkQuadraticQuad", "quad9": "vtkBiQuadraticQuad",
                 "tetra10": "vtkQuadraticTetra", "hexahedron20": "vtkQuadraticHexahedron",
                 "hexahedron27": "vtkTriQuadraticHexahedron", "wedge15": "vtkQuadraticWedge",
                 "pyramid13": "vtkQuadraticPyramid"}
    linear = {"line": "vtkLine", "triangle": "vtkTriangle", "quad": "vtkQuad", "tetra": "vtkTetra",
              "hexahedron": "vtkHexahedron", "wedge": "vtkWedge", "pyramid": "vtkPyramid"}
    assert set(quadratic) == set(HIGHER_ORDER_NODES)
    rng = np.random.default_rng(0)
    for cell_type, class_name in quadratic.items():
        cell = getattr(vtk, class_name)()
        n = cell.GetNumberOfPoints()
        assert n == NODES_PER_CELL[cell_type]
        raw = cell.GetParametricCoords()
        pcoords = np.array([raw[i] for i in range(3 * n)]).reshape(n, 3)
        parent = getattr(vtk, linear[linear_type(cell_type)])()
        first = CORNERS[linear_type(cell_type)]
        corners = rng.random((first, 3))
        for offset, span in enumerate(HIGHER_ORDER_NODES[cell_type]):
            weights = [0.0] * first
            parent.InterpolateFunctions(pcoords[first + offset].tolist(), weights)
            np.testing.assert_allclose(np.asarray(weights) @ corners, corners[list(span)].mean(axis=0),
                                       atol=1e-12, err_msg=f"{cell_type} node {first + offset}")


def test_facet_nodes_of_tetra10_face():
    # face (0, 1, 2) of a tetra10 holds mid-edge nodes 4 (0-1), 5 (1-2), 6 (0-2)
    assert facet_nodes("tetra10")[0] == ((0, 1, 2), (4, 5, 6))
    assert facet_nodes("hexahedron27")[0] == ((0, 1, 2, 3), (8, 9, 10, 11, 24))
    assert all(extra == () for _, extra in facet_nodes("tetra"))


def test_quadratic_gmsh_meshes_count_mid_edge_nodes(ball_quadratic, disk_quadratic):
    for fixture in (ball_quadratic, disk_quadratic):
        mesh = fixture.mesh
        np.testing.assert_array_equal(np.flatnonzero(mesh.boundary_mask), fixture.boundary_nodes)
        radius = np.linalg.norm(mesh.points[mesh.boundary_mask], axis=1)
        np.testing.assert_allclose(radius, 1.0, atol=1e-9)   # gmsh puts mid-edge nodes on the curve
        assert np.linalg.norm(mesh.boundary_normals[mesh.boundary_mask], axis=1) == pytest.approx(1.0)


@pytest.mark.parametrize("cell_type", ["triangle6", "quad8", "quad9", "tetra10", "hexahedron20",
                                       "hexahedron27", "wedge15", "pyramid13"])
def test_higher_order_boundary_nodes_lie_on_the_box_surface(unit_box, unit_square, cell_type):
    """Linear meshes of the unit square/cube raised to ``cell_type`` (nodes at the mean of the
    corners they span): the boundary is exactly the nodes on the square/cube surface."""
    linear = linear_type(cell_type)
    if linear in ("triangle", "quad"):
        base = unit_square(4, linear)
    elif linear == "hexahedron":
        base = unit_box(3)
    elif linear == "tetra":
        base = unit_box(3, "tetra")
    elif linear == "wedge":
        hexes = unit_box(3).cells["hexahedron"]
        cells = np.concatenate([hexes[:, [0, 1, 2, 4, 5, 6]], hexes[:, [0, 2, 3, 4, 6, 7]]])
        base = Mesh(grid_points(3, 3), {"wedge": cells})
    else:
        points, pyramids = pyramid_box(unit_box, 3)
        base = Mesh(points, {"pyramid": pyramids})
    points, conn = base.points, base.cells[linear]
    spans = HIGHER_ORDER_NODES[cell_type]
    # one node per distinct span (shared between neighbouring cells)
    keys = {}
    extra_ids = np.empty((len(conn), len(spans)), dtype=np.int64)
    new_points = [points]
    for j, span in enumerate(spans):
        for i, cell in enumerate(conn):
            key = tuple(sorted(cell[list(span)]))
            if key not in keys:
                keys[key] = len(points) + len(keys)
                new_points.append(points[list(key)].mean(axis=0, keepdims=True))
            extra_ids[i, j] = keys[key]
    mesh = Mesh(np.vstack(new_points), {cell_type: np.hstack([conn, extra_ids])})
    np.testing.assert_array_equal(mesh.boundary_mask, on_box_surface(mesh.points))
    normals = mesh.boundary_normals[mesh.boundary_mask]
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)


# ---------------------------------------------------------------- curved domains from gmsh
def test_disk_with_hole_boundary_lies_on_the_two_circles(disk_with_hole):
    mesh, h = disk_with_hole.mesh, disk_with_hole.h
    boundary = np.flatnonzero(mesh.boundary_mask)
    np.testing.assert_array_equal(boundary, disk_with_hole.boundary_nodes)
    radius = np.linalg.norm(mesh.points[boundary], axis=1)
    off_circle = np.minimum(np.abs(radius - 1.0), np.abs(radius - 0.4))
    assert off_circle.max() < 1e-6 * h
    assert 0 < (radius < 0.7).sum() < (radius > 0.7).sum()    # both circles, the outer longer
    # outward from the domain: away from the centre outside, towards it on the hole
    radial = mesh.points[boundary] * np.where(radius < 0.7, -1.0, 1.0)[:, None]
    assert angles_deg(mesh.boundary_normals[boundary], radial).max() < 1.0
    assert not mesh.boundary_normals[~mesh.boundary_mask].any()


def test_ball_normals_are_radial_within_5_degrees(ball):
    mesh = ball.mesh
    boundary = np.flatnonzero(mesh.boundary_mask)
    np.testing.assert_array_equal(boundary, ball.boundary_nodes)
    assert angles_deg(mesh.boundary_normals[boundary], mesh.points[boundary]).max() < 5.0


def test_disk_distance_is_r_minus_radius(disk):
    mesh, h = disk.mesh, disk.h
    exact = 1.0 - np.linalg.norm(mesh.points, axis=1)
    # the polygon is inscribed in the circle: its distance is smaller by at most the sagitta h^2/8
    error = exact - mesh.distance_to_boundary
    assert error.max() <= h ** 2 / 8 + 1e-12
    assert error.min() >= -1e-12
    assert mesh.distance_to_boundary[mesh.boundary_mask].max() == 0.0


def test_ball_distance_is_r_minus_radius(ball):
    mesh, h = ball.mesh, ball.h
    exact = 1.0 - np.linalg.norm(mesh.points, axis=1)
    assert np.abs(mesh.distance_to_boundary - exact).max() < h ** 2


def test_distance_matches_brute_force(ball):
    """Exact everywhere: the minimum over every facet of trimesh's closest point on a triangle."""
    import trimesh

    mesh = ball.mesh
    facets = mesh.boundary
    rng = np.random.default_rng(0)
    queries = rng.uniform(-1.1, 1.1, (300, 3))
    triangles = mesh.points[facets.facets[:, :3]]                              # (F, 3, 3)
    q = np.repeat(queries, len(triangles), axis=0)
    closest = trimesh.triangles.closest_point(np.tile(triangles, (len(queries), 1, 1)), q)
    brute = np.linalg.norm(closest - q, axis=1).reshape(len(queries), -1).min(axis=1)
    found = distance_to_facets(np.vstack([mesh.points, queries]), facets)[mesh.n_points:]
    np.testing.assert_allclose(found, brute, rtol=0, atol=1e-12)


def _one_facet(corners: list[int]) -> BoundaryFacets:
    facet = np.array([corners + [-1] * (4 - len(corners))])
    return BoundaryFacets(facet, np.zeros((1, 3)), np.ones(1))


def test_point_triangle_distance_regions():
    """Every Voronoi region of a triangle (face, edges, corners) by hand."""
    tri = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.0, 1, 0]])
    cases = {(0.2, 0.2, 0.5): 0.5, (-1, -1, 0): np.sqrt(2), (2, 0, 0): 1.0, (0.5, -1, 0): 1.0,
             (1, 1, 0): np.sqrt(0.5), (-0.5, 0.5, 1): np.sqrt(1.25)}
    queries = np.array(list(cases), dtype=float)
    got = distance_to_facets(np.vstack([tri, queries]), _one_facet([0, 1, 2]))[3:]
    np.testing.assert_allclose(got, list(cases.values()), rtol=0, atol=1e-12)


def test_quad_and_segment_distances():
    """A unit square quad measured as two triangles; a 2D segment, inside and past its ends."""
    square = np.array([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1, 0], [0.0, 1, 0]])
    queries = np.array([[0.9, 0.9, 2.0], [0.1, 0.9, -1.0], [2.0, 0.5, 0.0]])
    got = distance_to_facets(np.vstack([square, queries]), _one_facet([0, 1, 2, 3]))[4:]
    np.testing.assert_allclose(got, [2.0, 1.0, 1.0], atol=1e-12)
    segment = np.array([[0.0, 0.0], [1.0, 0.0]])
    queries = np.array([[0.5, 0.3], [-3.0, 4.0], [1.0, -2.0]])
    got = distance_to_facets(np.vstack([segment, queries]), _one_facet([0, 1]))[2:]
    np.testing.assert_allclose(got, [0.3, 5.0, 2.0], atol=1e-12)


# ---------------------------------------------------------------- surfaces
@pytest.mark.parametrize("flip", [False, True])
def test_stl_sphere_normals_are_radial_and_outward(tmp_path, flip):
    import trimesh

    import meshop

    sphere = trimesh.creation.icosphere(subdivisions=3)
    faces = sphere.faces[:, ::-1] if flip else sphere.faces     # inward-wound file
    path = tmp_path / "sphere.stl"
    trimesh.Trimesh(sphere.vertices, faces, process=False).export(path)
    mesh = meshop.read(path)
    assert mesh.is_surface and mesh.boundary_mask.all()
    assert angles_deg(mesh.boundary_normals, mesh.points).max() < 5.0


# ---------------------------------------------------------------- point clouds
def _uniform_disk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    radius, angle = np.sqrt(rng.random(n)), rng.random(n) * 2 * np.pi
    return np.c_[radius * np.cos(angle), radius * np.sin(angle)]


def test_point_cloud_boundary_of_a_uniform_disk():
    points = _uniform_disk(20_000)
    spacing = np.sqrt(np.pi / len(points))
    depth = (1.0 - np.linalg.norm(points, axis=1)) / spacing
    mask, normals = point_cloud_boundary(points)
    rim, interior = depth < 0.5, depth > 3.0
    assert mask[rim].mean() > 0.97                  # measured 1.00
    assert mask[interior].mean() < 0.05             # measured 0.02
    assert np.median(angles_deg(normals[mask & rim], points[mask & rim])) < 15.0


def test_point_cloud_boundary_of_a_uniform_ball():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(20_000, 3))
    points *= (rng.random(len(points)) ** (1 / 3) / np.linalg.norm(points, axis=1))[:, None]
    spacing = (4 / 3 * np.pi / len(points)) ** (1 / 3)
    depth = (1.0 - np.linalg.norm(points, axis=1)) / spacing
    mask, normals = point_cloud_boundary(points)
    assert mask[depth < 0.5].mean() > 0.95          # measured 0.99
    assert mask[depth > 2.0].mean() < 0.02          # measured 0.00
    assert np.mean(angles_deg(normals[mask], points[mask]) < 20.0) > 0.95


def test_point_cloud_mesh_uses_a_given_mask_and_measures_distance_to_it():
    points = _uniform_disk(2000, seed=2)
    rim = np.linalg.norm(points, axis=1) > 0.95
    mesh = Mesh(points, boundary_mask=rim)
    assert not mesh.boundary_is_estimated
    np.testing.assert_array_equal(mesh.boundary_mask, rim)
    assert not mesh.boundary_normals[~rim].any()
    np.testing.assert_allclose(np.linalg.norm(mesh.boundary_normals[rim], axis=1), 1.0)
    assert np.median(angles_deg(mesh.boundary_normals[rim], points[rim])) < 15.0
    brute = np.linalg.norm(points[:, None] - points[rim][None], axis=2).min(axis=1)
    np.testing.assert_allclose(mesh.distance_to_boundary, brute)
    estimated = Mesh(points)
    assert estimated.boundary_is_estimated and estimated.boundary_mask.any()


def test_tet_box_distance_is_distance_to_the_nearest_face():
    points, tets = box_tetrahedra(8)
    mesh = Mesh(points, {"tetra": tets})
    np.testing.assert_allclose(mesh.distance_to_boundary, np.minimum(points, 1 - points).min(axis=1),
                               atol=1e-12)
