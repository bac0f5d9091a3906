"""Random geometry: determinism, topology (holes are real holes), mesh sizes, part scales."""

from __future__ import annotations

import gmsh
import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from meshop import Mesh
from meshop.data import shapes
from meshop.data.shapes import PART_FAMILIES, part_mesh, random_domain_2d, random_part_3d


def _edges(triangles: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0)


def _boundary_loops(points: np.ndarray, triangles: np.ndarray) -> int:
    """Connected components of the edges used by exactly one triangle."""
    e = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(e, axis=0, return_counts=True)
    b = unique[counts == 1]
    graph = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(len(points),) * 2)
    labels = connected_components(graph, directed=False)[1]
    return len(np.unique(labels[np.unique(b)]))


def _min_angle_deg(points: np.ndarray, triangles: np.ndarray) -> float:
    p = points[triangles]
    angles = []
    for i in range(3):
        u, v = p[:, (i + 1) % 3] - p[:, i], p[:, (i + 2) % 3] - p[:, i]
        cos = np.einsum("md,md->m", u, v) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return float(np.min(angles))


def test_domain_2d_is_deterministic_and_seed_dependent():
    a = random_domain_2d(np.random.default_rng(7), 400)
    b = random_domain_2d(np.random.default_rng(7), 400)
    c = random_domain_2d(np.random.default_rng(8), 400)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def test_domain_2d_holes_are_real_holes_and_mesh_is_good():
    loops = []
    for seed in range(10):
        points, triangles = random_domain_2d(np.random.default_rng(seed), 400)
        assert points.shape[1] == 2 and triangles.shape[1] == 3
        assert 0.8 * 400 < len(points) < 1.3 * 400                  # target node count
        assert len(np.unique(triangles)) == len(points)               # no orphan nodes
        n_loops = _boundary_loops(points, triangles)
        # Euler characteristic of a triangulated disc with h holes is 1 - h = 2 - loops:
        # holes touching each other or the outer curve would break this identity
        euler = len(points) - len(_edges(triangles)) + len(triangles)
        assert euler == 2 - n_loops
        assert _min_angle_deg(points, triangles) > 15.0
        Mesh(points, {"triangle": triangles})                         # no degenerate cells
        loops.append(n_loops)
    assert min(loops) == 1 and max(loops) >= 3                        # 0 holes and >= 2 holes occur


def test_gmsh_state_of_caller_is_kept_and_result_unchanged():
    expected = random_domain_2d(np.random.default_rng(3), 300)
    gmsh.initialize()
    try:
        gmsh.model.add("mine")
        got = random_domain_2d(np.random.default_rng(3), 300)
        assert gmsh.isInitialized() and "mine" in gmsh.model.list()
    finally:
        gmsh.finalize()
    assert not gmsh.isInitialized()
    assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])


@pytest.mark.parametrize("family", PART_FAMILIES)
def test_each_part_family_meshes_to_one_closed_solid(family):
    params = shapes._draw_part(np.random.default_rng(0), family)
    points, tets = part_mesh(family, params, target_nodes=1500)
    # about the target, more when half the thinnest wall caps the mesh size
    assert 0.7 * 1500 < len(points) < 3 * 1500
    mesh = Mesh(points, {"tetra": tets})
    p = points[tets]
    signed = np.einsum("md,md->m", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0]) / 6
    surface = trimesh.Trimesh(points, mesh.boundary.facets[:, :3], process=True)
    surface.fix_normals()
    assert surface.is_watertight
    assert surface.body_count == 1                                    # one connected part
    # the tets fill exactly the volume enclosed by their boundary surface
    assert np.isclose(np.abs(signed).sum(), abs(surface.volume), rtol=1e-9)
    assert np.isclose(np.ptp(points, axis=0).max(), 1.0, atol=0.05)   # unit scale


def test_parts_vary_in_size_over_orders_of_magnitude_and_are_placed_randomly():
    sizes, first = [], None
    for seed in range(6):
        points, tets, info = random_part_3d(np.random.default_rng(seed), target_nodes=600)
        diagonal = np.linalg.norm(np.ptp(points, axis=0))
        # the unrotated part fits in a cube of side `size` whose longest side is `size`
        assert info["size"] * (1 - 1e-9) <= diagonal <= 3 * info["size"]
        assert 0.01 <= info["size"] <= 2.0 and info["family"] in PART_FAMILIES
        assert np.isclose(np.linalg.norm(info["rotation"]), 1.0)
        sizes.append(info["size"])
        first = first if first is not None else (points, tets)
    assert max(sizes) / min(sizes) > 10.0
    again = random_part_3d(np.random.default_rng(0), target_nodes=600)
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[1])


def test_failed_part_is_retried_with_the_next_draw(monkeypatch):
    real = shapes.part_mesh
    calls = []

    def flaky(family, params, target_nodes):
        calls.append(family)
        if len(calls) == 1:
            raise Exception("Invalid boundary mesh (overlapping facets)")   # what gmsh raises
        return real(family, params, target_nodes)

    monkeypatch.setattr(shapes, "part_mesh", flaky)
    points, _, info = random_part_3d(np.random.default_rng(0), target_nodes=600)
    assert info["tries"] == len(calls) >= 2 and info["family"] == calls[-1]
    monkeypatch.setattr(shapes, "part_mesh", real)
    undisturbed = random_part_3d(np.random.default_rng(0), target_nodes=600)
    assert undisturbed[2]["tries"] == 1 and not np.array_equal(undisturbed[0], points)
