"""Graph building and field coding: invariances and exact round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfem import MeshTri

import meshop
from meshop.fields import FieldSpec
from meshop.graph import (NODE_ATTRIBUTES, GraphSettings, build_graph, decode, extend_boundary_values, feature_count,
                          feature_layout, node_data, node_subset)
from meshop.metrics import relative_l2


def _square(n=9, scale=1.0, shift=(0.0, 0.0)):
    m = MeshTri.init_sqsymmetric().refined(int(np.log2(n - 1)))
    x, y = m.p
    g = np.where((x == 0) | (x == 1) | (y == 0) | (y == 1), 1.0 + x - 2 * y, 0.0)
    return meshop.Mesh(m.p.T * scale + np.asarray(shift), {"triangle": m.t.T},
                       {"source": np.sin(3 * x) + y, "boundary_value": g, "u": x * (1 - x) * y * (1 - y) + g})


def _spec(prior: bool = False):
    return FieldSpec(["source", "boundary_value"], ["u"], length_powers={"source": 2},
                     dirichlet={"u": "boundary_value"}, linear_inputs=["source", "boundary_value"],
                     prior={"u": {"pde": "poisson", "source": "source", "boundary": "boundary_value", "voxels": 1024}}
                     if prior else {})


@pytest.mark.parametrize("prior", [False, True])
def test_features_do_not_depend_on_units_or_placement(prior):
    spec = _spec(prior).fit([_square()])
    a = build_graph(_square(), spec, GraphSettings(k=6))
    # the same square in millimetres, shifted; source in K/mm² = K/m² / 1e6 keeps q L² fixed
    mm = _square(scale=1000.0, shift=(-30.0, 7.0))
    mm = mm.with_point_data(source=mm.point_data["source"] / 1e6)
    b = build_graph(mm, spec, GraphSettings(k=6))
    assert a.x.shape[1] == feature_count(spec, 2) == 2 * 2 + 2 + 2 + 1 + prior
    torch.testing.assert_close(a.x, b.x, rtol=1e-5, atol=1e-5)
    if prior:                                   # the coarse solve too: the last column, as data.prior
        torch.testing.assert_close(a.prior, a.x[:, -1:])
        assert feature_layout(spec, 2)["prior:u"] == [9, 10]
    assert torch.equal(a.edge_index, b.edge_index)


def test_encode_decode_round_trip_and_dirichlet():
    meshes = [_square(9), _square(17, scale=3.0)]
    spec = _spec().fit(meshes)
    for mesh in meshes:
        data = build_graph(mesh, spec, GraphSettings(k=6))
        length, amplitude = float(data.length), float(data.amplitude)
        coded = spec.encode("u", mesh.point_data["u"][:, None], length, amplitude)
        physical = decode(torch.as_tensor(coded, dtype=torch.float32), data, spec)
        torch.testing.assert_close(physical, data.y, rtol=1e-5, atol=1e-5)
        # whatever the model says, boundary nodes get the boundary value exactly
        noise = decode(torch.randn(mesh.n_points, 1), data, spec)
        g = torch.as_tensor(mesh.point_data["boundary_value"], dtype=torch.float32)
        torch.testing.assert_close(noise[data.boundary_mask, 0], g[data.boundary_mask])
        assert float(relative_l2(physical, data.y)) < 1e-5


def test_extended_boundary_values():
    mesh = _square(17)
    g = mesh.point_data["boundary_value"][:, None]
    extended = extend_boundary_values(mesh, g)
    np.testing.assert_array_equal(extended[mesh.boundary_mask], g[mesh.boundary_mask])
    # a constant boundary value extends to the same constant; values stay within the boundary's range
    np.testing.assert_allclose(extend_boundary_values(mesh, np.full_like(g, 2.5)), 2.5)
    inside = g[mesh.boundary_mask]
    assert extended.min() >= inside.min() - 1e-12 and extended.max() <= inside.max() + 1e-12


def test_node_attributes_are_every_per_node_row_and_subsets_keep_them_aligned():
    mesh = _square(9)
    data, _ = node_data(mesh, _spec(prior=True).fit([mesh]))  # with targets and a prior: y and prior too
    per_node = {key for key, value in data.to_dict().items() if value.dim() and value.shape[0] == mesh.n_points}
    assert per_node == set(NODE_ATTRIBUTES)         # a node attribute node_data adds must be listed
    nodes = torch.tensor([7, 0, 3, 3])
    sub = node_subset(data, nodes)
    for key in NODE_ATTRIBUTES:
        assert torch.equal(sub[key], data[key][nodes])
    assert torch.equal(sub.length, data.length) and torch.equal(sub.amplitude, data.amplitude)
