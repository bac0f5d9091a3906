"""`meshop info FILE [--json]`: the facts of good files, and exit code 2 with one line on
stderr for every bad one."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import meshop
from meshop import Mesh
from meshop.cli import app

from conftest import box_tetrahedra

JSON_KEYS = {"n_points", "dim", "cells", "n_boundary_points", "n_unused_points", "bounds", "point_data"}


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def files(tmp_path_factory, disk_with_hole):
    folder = tmp_path_factory.mktemp("info")
    points, tets = box_tetrahedra(4)
    volume = Mesh(points, {"tetra": tets}, {"u": points[:, 0] * 2 - 1, "v": points * 3})
    annulus = disk_with_hole.mesh.with_point_data(r=np.linalg.norm(disk_with_hole.mesh.points, axis=1))
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.export(folder / "sphere.stl")
    np.savetxt(folder / "cloud.xyz", np.random.default_rng(0).random((300, 3)))
    return {"volume": meshop.write(volume, folder / "box.vtu"),
            "annulus": meshop.write(annulus, folder / "annulus.msh"),
            "surface": folder / "sphere.stl",
            "cloud": folder / "cloud.xyz"}


def invoke(*args):
    return CliRunner().invoke(app, ["info", *map(str, args)])


def test_info_json_facts(files):
    result = invoke(files["volume"], "--json")
    assert result.exit_code == 0, result.stderr
    facts = _strict_json(result.stdout)
    assert JSON_KEYS <= set(facts)
    assert facts["n_points"] == 64 and facts["dim"] == 3
    assert facts["cells"] == {"tetra": 6 * 27}
    assert facts["n_boundary_points"] == 64 - 8
    assert facts["bounds"] == [[0, 0, 0], [1, 1, 1]]
    assert facts["point_data"] == {"u": [64], "v": [64, 3]}
    assert facts["fields"]["u"]["min"] == -1.0 and facts["fields"]["u"]["max"] == 1.0
    assert facts["kind"] == "volume mesh" and facts["boundary_estimated"] is False


def test_info_json_planar_surface_and_cloud(files, disk_with_hole):
    annulus = _strict_json(invoke(files["annulus"], "--json").stdout)
    assert annulus["dim"] == 2 and annulus["n_points"] == disk_with_hole.mesh.n_points
    assert annulus["n_boundary_points"] == len(disk_with_hole.boundary_nodes)
    assert annulus["point_data"] == {"r": [disk_with_hole.mesh.n_points]}   # .msh keeps fields
    surface = _strict_json(invoke(files["surface"], "--json").stdout)
    assert surface["kind"] == "surface mesh" and surface["n_boundary_points"] == surface["n_points"] == 162
    cloud = _strict_json(invoke(files["cloud"], "--json").stdout)
    assert cloud["kind"] == "point cloud" and cloud["cells"] == {} and cloud["boundary_estimated"]
    assert 0 < cloud["n_boundary_points"] < 300


def test_info_human_output(files):
    result = invoke(files["volume"])
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{files['volume']}: volume mesh"
    assert lines[1].split() == ["points", "64", "(dim", "3)"]
    assert any(line.split() == ["tetra", "162"] for line in lines)
    assert any(line.split()[:3] == ["boundary", "56", "points"] for line in lines)
    assert any("[0, 1]  [0, 1]  [0, 1]" in line for line in lines)
    assert any("point field v" in line and "shape (64, 3)" in line and "range [0, 3]" in line for line in lines)
    planar = invoke(files["annulus"]).stdout
    assert "volume mesh, planar at z = 0" in planar.splitlines()[0]
    assert "(estimated from the point distribution)" in invoke(files["cloud"]).stdout
    assert "unused points" not in result.stdout


def test_info_names_points_no_cell_uses(tmp_path):
    """A stray point (left by an edit, a gmsh geometry point) stretched the bounds without a word."""
    points, tets = box_tetrahedra(3)
    path = meshop.write(Mesh(np.vstack([points, [[5.0, 5.0, 5.0]]]), {"tetra": tets}), tmp_path / "stray.vtu")
    result = invoke(path)
    assert result.exit_code == 0, result.output
    assert any(line.split()[:3] == ["unused", "points", "1"] and "first: point 27 at (5, 5, 5)" in line
               for line in result.stdout.splitlines()), result.stdout
    assert _strict_json(invoke(path, "--json").stdout)["n_unused_points"] == 1


def test_info_lists_field_data_of_a_mesh_and_of_a_series(tmp_path):
    """Field data (a prediction's error estimate, a fine mesh's coarse triangles) were read and kept
    but never shown: a user could not see what a file carried beside its fields."""
    points, tets = box_tetrahedra(3)
    mesh = Mesh(points, {"tetra": tets}).with_field_data(error_estimate=0.25, ids=[3, 1, 2])
    path = meshop.write(mesh, tmp_path / "with_data.vtu")
    lines = invoke(path).stdout.splitlines()
    assert any(line.split() == ["field", "data", "error_estimate", "0.25"] for line in lines), lines
    assert any(line.split() == ["field", "data", "ids", "3", "values,", "range", "[1,", "3]"] for line in lines), lines
    assert _strict_json(invoke(path, "--json").stdout)["field_data"]["ids"] == {"size": 3, "min": 1.0, "max": 3.0}
    series = meshop.write_series(meshop.Trajectory(mesh, [0.0, 1.0], {"u": np.zeros((2, mesh.n_points))}),
                                 tmp_path / "with_data.pvd")
    assert "  field data  ids  (3 values)" in invoke(series).stdout.splitlines()
    assert _strict_json(invoke(series, "--json").stdout)["field_data"] == {"error_estimate": 1, "ids": 3}


def test_info_exit_code_2_and_one_line_on_every_bad_file(bad_files):
    for case, bad in bad_files.items():
        result = invoke(bad.path)
        assert result.exit_code == 2, case
        assert result.stdout == "", case
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (case, result.stderr)
        assert lines[0].startswith(f"meshop: error: {bad.path}: ") and bad.phrase in lines[0], case
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", ["truncated .vtk polydata", "XML in .stl", "point data with NaN"])
def test_info_in_a_real_process_on_bad_files(bad_files, case):
    """``python -m meshop``: nothing but one line on stderr, not even VTK's C++ logging."""
    bad = bad_files[case]
    done = subprocess.run([sys.executable, "-m", "meshop", "info", str(bad.path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"meshop: error: {bad.path}: ")
    assert bad.phrase in lines[0]


def test_info_in_a_real_process_on_a_good_file(files):
    done = subprocess.run([sys.executable, "-m", "meshop", "info", str(files["surface"]), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert _strict_json(done.stdout)["n_points"] == 162
