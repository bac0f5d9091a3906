"""The Mesh contract: the planar rule, validation (one MeshError per defect), lazy cached
derived geometry, and the small helpers."""

from __future__ import annotations

import numpy as np
import pytest

from meshop import Mesh, MeshError
from meshop.geometry.cells import simplex_measure

TRI = np.array([[0, 1, 2], [1, 3, 2]])
SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def test_constant_third_column_makes_a_2d_mesh():
    points = np.c_[SQUARE, np.full(4, 0.25)]
    mesh = Mesh(points, {"triangle": TRI})
    assert mesh.dim == 2 and mesh.planar_z == 0.25
    np.testing.assert_array_equal(mesh.points, SQUARE)
    assert mesh.boundary_mask.all() and mesh.boundary.measures.sum() == pytest.approx(4.0)
    tilted = Mesh(np.c_[SQUARE, [0.0, 0.0, 0.0, 1e-9]], {"triangle": TRI})
    assert tilted.dim == 3 and tilted.is_surface and tilted.planar_z is None


def test_basic_facts():
    mesh = Mesh(SQUARE * 2.0 - 1.0, {"triangle": TRI}, {"u": np.arange(4.0)})
    np.testing.assert_array_equal(mesh.bounds, [[-1, -1], [1, 1]])
    assert mesh.size == pytest.approx(2 * np.sqrt(2))
    assert mesh.cell_counts == {"triangle": 2}
    assert not mesh.is_point_cloud and not mesh.is_surface
    assert "2D mesh: 4 points, 2 triangle; u" in repr(mesh)
    cloud = Mesh(SQUARE)
    assert cloud.is_point_cloud and cloud.cell_counts == {}


def test_derived_geometry_is_computed_once():
    mesh = Mesh(SQUARE, {"triangle": TRI})
    assert mesh.boundary is mesh.boundary
    assert mesh.boundary_mask is mesh.boundary_mask
    assert mesh.boundary_normals is mesh.boundary_normals
    assert mesh.distance_to_boundary is mesh.distance_to_boundary


def test_with_point_data_shares_geometry_and_validates():
    mesh = Mesh(SQUARE, {"triangle": TRI}, {"u": np.zeros(4)})
    mask = mesh.boundary_mask
    richer = mesh.with_point_data(v=np.ones((4, 2)))
    assert richer.boundary_mask is mask
    assert set(richer.point_data) == {"u", "v"} and set(mesh.point_data) == {"u"}
    with pytest.raises(MeshError, match="wrong length"):
        mesh.with_point_data(w=np.ones(3))


def test_require_names_the_missing_field():
    mesh = Mesh(SQUARE, {"triangle": TRI}, {"u": np.zeros(4)}, source="part.vtu")
    mesh.require("u")
    with pytest.raises(MeshError, match=r"part.vtu: point field 'f' is missing \(fields present: u\)"):
        mesh.require("u", "f")


def test_vertex_cells_alone_make_a_point_cloud():
    mesh = Mesh(SQUARE, {"vertex": np.arange(4)[:, None]})
    assert mesh.is_point_cloud and mesh.cells == {}


BAD = {
    "no points": (dict(points=np.empty((0, 3))), "has no points"),
    "4 coordinates": (dict(points=np.zeros((3, 4))), "4 coordinates; expected 2 or 3"),
    "NaN coordinate": (dict(points=[[0, 0], [1, np.nan], [0, 1]]), r"1 point\(s\) have NaN or infinite"),
    "infinite coordinate": (dict(points=[[0, 0], [np.inf, 0], [0, 1]]), "NaN or infinite coordinates"),
    "index too large": (dict(points=SQUARE, cells={"triangle": [[0, 1, 4]]}), "node 4 .* out of range"),
    "negative index": (dict(points=SQUARE, cells={"triangle": [[0, -1, 2]]}), "node -1 .* out of range"),
    "float indices": (dict(points=SQUARE, cells={"triangle": [[0.0, 1.0, 2.0]]}), "non-integer"),
    "wrong width": (dict(points=SQUARE, cells={"tetra": [[0, 1, 2]]}), r"shape \(1, 3\); expected \(M, 4\)"),
    "unknown type": (dict(points=SQUARE, cells={"polygon": [[0, 1, 3, 2]]}), "'polygon' is not supported"),
    "collinear triangle": (dict(points=[[0, 0], [1, 0], [2, 0]], cells={"triangle": [[0, 1, 2]]}),
                           "1 degenerate triangle cell"),
    "repeated node": (dict(points=SQUARE, cells={"triangle": [[0, 1, 2], [1, 1, 3]]}),
                      r"degenerate triangle cell\(s\) with zero area \(first: cell 1"),
    "flat tetra": (dict(points=np.c_[SQUARE, [0, 0, 0, 1e-30]], cells={"tetra": [[0, 1, 2, 3]]}),
                   "degenerate tetra cell.* zero volume"),
    "flat hexahedron": (dict(points=np.r_[np.c_[SQUARE, np.zeros(4)], np.c_[SQUARE, np.ones(4)]],
                             cells={"hexahedron": [[0, 1, 3, 2, 4, 5, 7, 6], [0, 1, 3, 2, 0, 1, 3, 2]]}),
                        "1 degenerate hexahedron cell.* zero volume"),
    "only lines": (dict(points=SQUARE, cells={"line": [[0, 1], [1, 3]]}), "only line/vertex cells"),
    "tets in a plane": (dict(points=np.c_[SQUARE, np.zeros(4)], cells={"tetra": [[0, 1, 2, 3]]}),
                        "3D cells but its points are 2D"),
    "short field": (dict(points=SQUARE, point_data={"u": np.zeros(3)}), "'u' has 3 values but the mesh has 4"),
    "NaN field": (dict(points=SQUARE, point_data={"u": [0, 1, np.nan, 0]}), "'u' has NaN or infinite values at 1"),
    "short cell field": (dict(points=SQUARE, cells={"triangle": TRI}, cell_data={"k": {"triangle": [1]}}),
                         "cell field 'k' has 1 values for 2 triangle cells"),
    "mask on a mesh": (dict(points=SQUARE, cells={"triangle": TRI}, boundary_mask=np.ones(4, bool)),
                       "boundary_mask is for point clouds"),
    "mask of wrong shape": (dict(points=SQUARE, boundary_mask=np.ones(3, bool)), r"shape \(3,\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_defect_raises_its_message(case):
    kwargs, phrase = dict(BAD[case][0]), BAD[case][1]
    points = kwargs.pop("points")
    with pytest.raises(MeshError, match=phrase) as caught:
        Mesh(points, source="part.vtu", **kwargs)
    assert str(caught.value).startswith("part.vtu: ")
    assert "\n" not in str(caught.value)


def test_small_cells_in_a_large_mesh_are_not_degenerate():
    """Degeneracy is judged against each cell's own size, not the mesh's."""
    points = np.array([[0, 0], [1e-7, 0], [0, 1e-7], [1e3, 0], [0, 1e3]])
    mesh = Mesh(points, {"triangle": [[0, 1, 2], [0, 3, 4]]})
    assert mesh.cell_counts == {"triangle": 2}


def test_cell_measures():
    cube = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                     [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float) * [2.0, 3.0, 4.0]
    assert simplex_measure(cube, "hexahedron", np.arange(8)[None])[0] == pytest.approx(24.0)
    assert simplex_measure(cube, "wedge", np.array([[0, 1, 2, 4, 5, 6]]))[0] == pytest.approx(12.0)
    assert simplex_measure(cube, "pyramid", np.array([[0, 1, 2, 3, 6]]))[0] == pytest.approx(8.0)
    assert simplex_measure(cube, "tetra", np.array([[0, 1, 3, 4]]))[0] == pytest.approx(4.0)
    assert simplex_measure(cube, "quad", np.array([[0, 1, 5, 4]]))[0] == pytest.approx(8.0)
    assert simplex_measure(cube, "triangle", np.array([[0, 1, 2]]))[0] == pytest.approx(3.0)


@pytest.mark.parametrize("key_bits", [62, 20, 16, 10])
def test_facets_used_once_whatever_the_key_width(key_bits):
    """The boundary's facet count: one int64 key per facet, or (too many ids for one key) keys
    within buckets of the smallest id (10 and 216 buckets here), or (not even two ids fit a key)
    sorted rows, against a brute-force count of each facet's sorted ids; a tetrahedral cube's
    boundary facets are its 2 (n-1)^2 x 6 triangles."""
    from collections import Counter

    from conftest import box_tetrahedra
    from meshop.geometry.boundary import _sorted_columns, _used_once

    points, tets = box_tetrahedra(6)
    local = [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    parts = [_sorted_columns(tets[:, f], narrow=True) for f in local]
    once = _used_once(parts, key_bits=key_bits)
    facets = [tuple(sorted(t[f])) for f in local for t in tets]
    counts = Counter(facets)
    np.testing.assert_array_equal(once, [counts[f] == 1 for f in facets])
    assert once.sum() == 2 * 5 ** 2 * 6


@pytest.mark.parametrize("points, cells, point_data, error, message", [
    (SQUARE + 1j, {"triangle": TRI}, None, MeshError, "points must be real numbers, got complex numbers"),
    ([["a", "b"]] * 4, {"triangle": TRI}, None, MeshError, "points must be real numbers, got dtype <U1"),
    ([[0, 0], [1, 0, 0]], None, None, MeshError, r"points must be a rectangular array .*different lengths"),
    (np.arange(6.0), None, None, MeshError, r"points must be an \(N, 2\) or \(N, 3\) array .*shape \(6,\)"),
    (None, None, None, TypeError, "points must be an"),
    (SQUARE, [[0, 1, 2]], None, TypeError, "cells must be a dict .*got list"),
    (SQUARE, TRI, None, TypeError, "cells must be a dict .*got ndarray"),
    (SQUARE, {"triangle": [[0, 1, 2], [1, 3]]}, None, MeshError, "triangle cells have rows of different lengths"),
    (SQUARE, {"triangle": np.array([[0, 1, 2**63]], np.uint64)}, None, MeshError, "reference node 9223372036854775808"),
    (SQUARE, {"triangle": TRI}, [np.zeros(4)], TypeError, "point_data must be a dict"),
    (SQUARE, {"triangle": TRI}, {5: np.zeros(4)}, TypeError, "point_data keys must be strings, got 5"),
    (SQUARE, {"triangle": TRI}, {"u": np.zeros(4) + 1j}, MeshError, "point field 'u' must be real numbers"),
    (SQUARE, {"triangle": TRI}, {"u": list("abcd")}, MeshError, "point field 'u' must be real numbers"),
    (SQUARE, {"triangle": TRI}, {"u": [[1], [1, 2], [1], [1]]}, MeshError, "point field 'u' must be a rectangular"),
])
def test_wrong_types_and_shapes_are_one_sentence(points, cells, point_data, error, message):
    """Python callers get the argument named, not numpy's conversion error or an AttributeError;
    complex coordinates are refused, not silently cut to their real part."""
    with pytest.raises(error, match=message):
        Mesh(points, cells, point_data)


def test_lists_and_bool_fields_are_still_taken():
    mesh = Mesh(SQUARE.tolist(), {"triangle": TRI.tolist()}, {"flag": np.ones(4, bool), "u": [1, 2, 3, 4]})
    assert mesh.point_data["flag"].dtype == bool and mesh.cells["triangle"].dtype == np.int64
