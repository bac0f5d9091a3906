"""Regression tests of issue 18 (what 574 attempts to break meshop found): each defect, reproduced
with a file or value the test builds, gets a clear refusal or the right answer."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from safetensors import safe_open
from safetensors.torch import save_file

import meshop
from meshop import checkpoint, models
from meshop.checkpoint import CheckpointError
from meshop.errors import MeshError
from meshop.prediction import Predictor, bundled_models

from conftest import box_tetrahedra, write_ascii_vtu

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GNO = bundled_models()["heat3d-gno"]
DARCY = Path(__file__).resolve().parents[1] / "datasets" / "samples" / "darcy2d"


def _edited_checkpoint(tmp_path: Path, name: str, edit, tensors=None) -> Path:
    """The bundled GNO checkpoint with its metadata passed through ``edit`` (and other weights)."""
    meta = checkpoint.read_metadata(GNO)
    if tensors is None:
        with safe_open(str(GNO), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, path, metadata={"meshop": json.dumps(edit(meta))})
    return path


def _with_model(**changes):
    def edit(meta):
        meta["model"] = {**meta["model"], **changes}
        return meta
    return edit


def _with_config(**changes):
    def edit(meta):
        meta["model"]["config"] = {**meta["model"]["config"], **changes}
        return meta
    return edit


def _cube_mesh(n: int = 5) -> meshop.Mesh:
    points, tets = box_tetrahedra(n)
    return meshop.Mesh(points, {"tetra": tets})


# ------------------------------------------------------------------ 1. bad hyper-parameters
@pytest.mark.parametrize("name, edit, phrase", [
    ("negative_width", _with_config(width=-5), "width must be an integer in 1..100000; got -5"),
    ("huge_width", _with_config(width=10 ** 9), "got 1000000000"),
    ("wide_enough_to_be_absurd", _with_config(width=20_000), "more than meshop builds"),
    ("negative_in_channels", _with_model(in_channels=-3), "in_channels must be an integer"),
    ("boolean_layers", _with_config(layers=True), "layers must be an integer"),
    ("nan_length_unit", _with_config(length_unit=float("nan")), "length_unit must be a finite positive"),
    ("list_metadata", lambda meta: [meta], "metadata is corrupt (a JSON array"),
    ("null_metadata", lambda meta: None, "metadata is corrupt (a JSON null"),
    ("null_fields", lambda meta: {**meta, "fields": None}, "fields must be a mapping"),
    ("negative_k", lambda meta: {**meta, "graph": {**meta["graph"], "k": -3}}, "graph k must be"),
    ("zero_std", lambda meta: {**meta, "fields": {**meta["fields"], "std": {}}}, "statistics of"),
])
def test_bad_checkpoint_values_refused_before_building(tmp_path, name, edit, phrase):
    path = _edited_checkpoint(tmp_path, name, edit)
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert phrase in str(info.value) and str(path) in str(info.value), str(info.value)
    assert time.perf_counter() - started < 10  # nothing of 44 GB was allocated first


def test_model_size_is_counted_without_allocating():
    from meshop.models.hyper import MAX_PARAMETERS, parameter_count

    small = models.get("gno", 11, 1, 3, width=8, layers=1, kernel_width=4)
    assert parameter_count(type(small), 11, 1, 3, small.config) == small.n_parameters()
    with pytest.raises(ValueError, match="more than meshop builds"):
        models.get("mgno", 11, 1, 3, width=30_000)          # ~1e10 weights, counted on 'meta'
    assert parameter_count(models.model_class("gno"), 11, 1, 3, {"width": 30_000}) > MAX_PARAMETERS


def test_train_with_a_negative_width_is_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from meshop.cli import app

    result = CliRunner().invoke(app, ["train", "--data", str(DARCY), "--model-option", "width=-4",
                                      "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "width must be an integer in 1..100000; got -4" in lines[0], result.stderr


# ------------------------------------------------------------------ 2. unreferenced points
def test_unreferenced_points_are_left_out_and_change_nothing_else():
    clean = _cube_mesh()
    stray = np.array([[10.0, 10.0, 10.0], [0.5, 0.5, 0.5]])     # far away, and inside the part
    dirty = meshop.Mesh(np.vstack([clean.points, stray]), clean.cells)
    predictor = Predictor()
    expected = predictor.predict(clean).mesh.point_data["temperature_pred"]
    result = predictor.predict(dirty)
    assert result.mesh.n_points == clean.n_points
    np.testing.assert_array_equal(result.mesh.points, clean.points)
    np.testing.assert_array_equal(result.mesh.point_data["temperature_pred"], expected)
    assert result.notes[0].startswith(f"left 2 point(s) that no cell uses (first: point {clean.n_points} "
                                      "at (10, 10, 10))")


def test_point_subset_renumbers_cells_and_keeps_fields():
    square = meshop.Mesh([[0, 0], [9, 9], [1, 0], [0, 1], [1, 1]], {"triangle": [[0, 2, 3], [2, 4, 3]]},
                         {"u": np.arange(5.0)}, {"c": {"triangle": np.array([7.0, 8.0])}})
    assert square.unreferenced.tolist() == [False, True, False, False, False]
    kept = square.point_subset(~square.unreferenced)
    assert kept.cells["triangle"].tolist() == [[0, 1, 2], [1, 3, 2]]
    assert kept.point_data["u"].tolist() == [0, 2, 3, 4] and kept.cell_data["c"]["triangle"].tolist() == [7, 8]


# ------------------------------------------------------------------ 3. coarse CAD surfaces
def _wedge() -> trimesh.Trimesh:
    """A right triangular prism of 8 large flat triangles, volume 1/2."""
    vertices = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]]
    faces = [[0, 2, 1], [3, 4, 5], [0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [2, 0, 3], [2, 3, 5]]
    return trimesh.Trimesh(vertices, faces)


@pytest.mark.parametrize("name, surface, volume", [
    ("unit_box", trimesh.creation.box(extents=(1, 1, 1)), 1.0),     # 12 triangles
    ("plate", trimesh.creation.box(extents=(4, 2, 0.5)), 4.0),
    ("wedge", _wedge(), 0.5),
])
def test_coarse_closed_surfaces_are_filled_with_tetrahedra(tmp_path, name, surface, volume):
    from meshop.geometry.cells import simplex_measure
    from meshop.meshing import tetrahedralize

    path = tmp_path / f"{name}.stl"
    surface.export(path)                       # binary STL, trimesh's all-zero header
    assert path.read_bytes()[:80] == bytes(80)
    part = meshop.read(path)
    tets = tetrahedralize(part, part.size / 8)
    assert tets.n_points > 30
    assert abs(np.abs(simplex_measure(tets.points, "tetra", tets.cells["tetra"])).sum() - volume) < 1e-9 * volume


def test_a_closed_surface_far_from_the_origin_is_filled_like_one_near_it(tmp_path):
    """gmsh got the surface in absolute coordinates as a float32 STL: 1e6 from the origin its
    vertices snapped to a 0.0625 grid (a ball of radius 1 went jagged by 5 %, a part with a hole
    failed: "Singular matrix 3x3"); it now meshes the part centred and moves the nodes back."""
    from meshop.meshing import tetrahedralize

    centre = np.array([1e6, 1e6, 1e6])
    ball = trimesh.creation.icosphere(subdivisions=3)
    ball.apply_translation(centre)
    path = tmp_path / "far.stl"
    ball.export(path, file_type="stl_ascii")              # float64 digits, as an ASCII STL keeps them
    tets = tetrahedralize(meshop.read(path), 0.25)
    radius = np.linalg.norm(tets.points[tets.boundary_mask] - centre, axis=1)
    assert radius.max() < 1 + 1e-6 and radius.min() > 0.99


def test_two_separate_bodies_in_one_surface_are_named_and_a_cavity_is_kept(tmp_path):
    from meshop.meshing import separate_bodies, tetrahedralize

    box = trimesh.creation.box(extents=(1, 1, 1))
    two = trimesh.util.concatenate([box, box.copy().apply_translation([2, 0, 0])])
    two.export(tmp_path / "two.stl")
    with pytest.raises(MeshError, match="the surface is 2 separate closed bodies"):
        tetrahedralize(meshop.read(tmp_path / "two.stl"), 0.25)
    inner = trimesh.creation.box(extents=(0.4, 0.4, 0.4))
    inner.invert()
    trimesh.util.concatenate([box, inner]).export(tmp_path / "hollow.stl")
    assert separate_bodies(meshop.read(tmp_path / "hollow.stl")) == 1


# ------------------------------------------------------------------ 4. allocation bounded by file size
def test_corrupt_msh_with_a_huge_node_tag_is_refused_fast_in_bounded_memory(tmp_path):
    tags = [1, 2, 3, 800_000_000]          # a sparse tag: meshio sizes a lookup table by the largest
    corners = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    nodes = [f"{t} {x} {y} {z}" for t, (x, y, z) in zip(tags, corners)]
    text = ["$MeshFormat", "2.2 0 8", "$EndMeshFormat", "$Nodes", "4", *nodes, "$EndNodes",
            "$Elements", "1", "1 4 2 0 1 1 2 3 800000000", "$EndElements"]
    path = tmp_path / "huge_tag.msh"
    path.write_text("\n".join(text) + "\n")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss      # KiB
    started = time.perf_counter()
    with pytest.raises(MeshError, match="the file is corrupt: reading it would take more than"):
        meshop.read(path)
    assert time.perf_counter() - started < 5
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown < 600 * 1024, f"peak memory grew by {grown / 1024:.0f} MiB"   # unbounded: 3.2 GB


def test_bounded_memory_refuses_and_then_lifts(tmp_path):
    from meshop.io._limits import bounded_memory

    with pytest.raises(MemoryError), bounded_memory(32 << 20):
        np.ones(1 << 28, dtype=np.uint8)
    assert np.ones(1 << 26, dtype=np.uint8).sum() == 1 << 26             # the bound is gone


# ------------------------------------------------------------------ 5. NaN vertices in an STL
def test_nan_vertex_in_a_binary_stl_is_named(tmp_path):
    path = tmp_path / "nan_box.stl"
    trimesh.creation.box().export(path)
    data = bytearray(path.read_bytes())
    data[84 + 12: 84 + 16] = np.float32(np.nan).tobytes()       # x of the first triangle's first corner
    path.write_bytes(bytes(data))
    with pytest.raises(MeshError, match="NaN or infinite coordinates in 1 of its 36 vertices"):
        meshop.read(path)


# ------------------------------------------------------------------ 6. the real cause named
def test_nan_weights_are_named_on_load(tmp_path):
    with safe_open(str(GNO), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")

    def with_checksum(meta):
        meta["sha256"] = checkpoint.digest(tensors)   # a diverged run saves NaN with a valid checksum
        return meta
    path = _edited_checkpoint(tmp_path, "nan_weights", with_checksum, tensors)
    with pytest.raises(CheckpointError, match=f"weights hold NaN or infinite values \\(tensor '{name}'\\)"):
        checkpoint.load(path)


def test_duplicated_cells_and_far_coordinates_are_named(tmp_path):
    points, tets = box_tetrahedra(3)
    doubled = write_ascii_vtu(tmp_path / "doubled.vtu", points, {"tetra": np.vstack([tets, tets[5:6, ::-1]])})
    with pytest.raises(MeshError, match=r"1 duplicated tetra cell\(s\) \(first: cells 5 and 48"):
        meshop.read(doubled)
    far = write_ascii_vtu(tmp_path / "far.vtu", np.where(points == 1, 1e30, points), {"tetra": tets})
    with pytest.raises(MeshError, match="coordinates reach 1e\\+30, beyond the 1e\\+15 meshop accepts"):
        meshop.read(far)


# ------------------------------------------------------------------ 7. the checksum cannot be skipped
def test_checkpoint_without_checksum_is_refused_unless_asked_for(tmp_path):
    def drop(meta):
        del meta["sha256"]
        return meta
    path = _edited_checkpoint(tmp_path, "no_checksum", drop)
    with pytest.raises(CheckpointError, match="has no sha256 checksum"):
        checkpoint.load(path)
    loaded = checkpoint.load(path, allow_unverified=True)
    resaved = checkpoint.save(tmp_path / "resaved.safetensors", loaded)
    assert "sha256" in checkpoint.read_metadata(resaved) and checkpoint.load(resaved).model_name == "gno"


def test_bundled_models_carry_their_checksum():
    for path in bundled_models().values():
        assert len(checkpoint.read_metadata(path)["sha256"]) == 64
        checkpoint.load(path)


# ------------------------------------------------------------------ 8. large offsets
@pytest.mark.parametrize("offset", [1e6, 1e9])
def test_far_part_loses_only_what_its_coordinates_lost(offset):
    """Derived geometry is computed on float64 coordinates centred on the part: the distance to
    the boundary of a part at 1e9 errs by at most the rounding of its input coordinates (half a
    unit in the last place of the offset per coordinate: sqrt(3)/2 ulp for a node, as much for
    the facet it is measured to), and the node features agree to float32 rounding, but for the
    positions, on a 2**-20 grid, which differ by at most one step, and the default's coarse
    prior solved on those positions, which moves by far less than its range (the predictions
    agree: tests/test_translation.py)."""
    from meshop.graph import feature_layout, node_data

    mesh = meshop.read(Path(__file__).resolve().parents[1] / "examples" / "parts" / "bracket.vtu")
    far = meshop.Mesh(mesh.points + offset, mesh.cells)
    ulp = np.spacing(offset)
    assert np.abs(far.distance_to_boundary - mesh.distance_to_boundary).max() <= np.sqrt(3) * ulp
    assert np.abs(far.centred_points - mesh.centred_points).max() <= ulp / 2
    spec = Predictor().spec
    near_x, far_x = node_data(mesh, spec)[0].x, node_data(far, spec)[0].x
    prior = slice(*feature_layout(spec, 3)["prior:temperature"])
    assert prior.stop == near_x.shape[1]
    assert (far_x - near_x)[:, 3:prior.start].abs().max() <= 2 * torch.finfo(torch.float32).eps
    assert (far_x - near_x)[:, :3].abs().max() <= 2.0 ** -20
    assert (far_x - near_x)[:, prior].abs().max() <= 1e-5 * near_x[:, prior].abs().max()


# ------------------------------------------------------------------ 9. temporaries of killed writers
_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from meshop.atomic import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a mesh")
        print(tmp, flush=True)
        time.sleep(60)
""")


def test_temporary_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(meshop.__file__).resolve().parents[1])}
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "out.vtu")],
                              stdout=subprocess.PIPE, text=True, env=env)
    stale = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert stale.exists() and stale.name.startswith(f".out.vtu.meshop-tmp-{writer.pid}-")
    alive = tmp_path / f".other.vtu.meshop-tmp-{os.getpid()}-abc.vtu"     # a writer still running
    alive.write_bytes(b"in progress")
    meshop.write(_cube_mesh(3), tmp_path / "next.vtu")
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "next.vtu"]
