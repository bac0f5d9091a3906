"""Fuzzing: byte-flipped mutants of every reader's formats and of a checkpoint get a clear
``MeshError`` (``CheckpointError``) or a valid result, never another exception; and the CLI's exit
codes on a corpus of bad files: 2 and one line, never 1 or a traceback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import meshio
import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import meshop
from meshop import checkpoint
from meshop.checkpoint import CheckpointError
from meshop.cli import app
from meshop.errors import MeshError
from meshop.prediction import bundled_models

from conftest import box_tetrahedra, write_ascii_vtu

#: mutants per format: small, so the whole module stays well under a minute
EXAMPLES = 12
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _seeds(folder: Path) -> dict[str, bytes]:
    """A small valid file of every format family, as bytes."""
    points, tets = box_tetrahedra(3)
    volume = meshio.Mesh(points, [("tetra", tets)], point_data={"u": points[:, 0]})
    sphere = trimesh.creation.icosphere(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meshio.write(folder / "seed.vtu", volume, binary=False)
        meshio.write(folder / "seed.msh", volume, file_format="gmsh22", binary=True)
        meshio.write(folder / "seed.vtk", volume, binary=True)
    sphere.export(folder / "seed.stl")
    sphere.export(folder / "seed.obj")
    sphere.export(folder / "seed.ply")
    return {ext: (folder / f"seed{ext}").read_bytes() for ext in (".vtu", ".msh", ".vtk", ".stl", ".obj", ".ply")}


_SEEDS: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory) -> None:
    """Fill ``_SEEDS`` (a module global, so hypothesis's reports do not print every file)."""
    _SEEDS.update(_seeds(tmp_path_factory.mktemp("seeds")))


def _mutant(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """``data`` with byte ``position % len`` XOR-ed by ``mask`` for each flip."""
    out = bytearray(data)
    for position, mask in flips:
        out[position % len(out)] ^= mask
    return bytes(out)


FLIPS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=1, max_size=4)


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".vtu", ".msh", ".vtk", ".stl", ".obj", ".ply"])
@FUZZ
@given(flips=FLIPS)
def test_byte_flipped_meshes_are_read_or_refused_clearly(seed_files, tmp_path, ext, flips):
    path = tmp_path / f"mutant{ext}"
    path.write_bytes(_mutant(_SEEDS[ext], flips))
    try:
        mesh = meshop.read(path)
    except MeshError as err:
        assert str(path) in str(err) and "\n" not in str(err), str(err)
        return
    assert np.isfinite(mesh.points).all() and mesh.n_points > 0


@pytest.mark.slow
@FUZZ
@given(flips=FLIPS, in_header=st.booleans())
def test_byte_flipped_checkpoints_load_or_are_refused_clearly(tmp_path, flips, in_header):
    checkpoint_bytes = bundled_models()["heat3d-gno"].read_bytes()
    header = 8 + int.from_bytes(checkpoint_bytes[:8], "little")
    if in_header:   # most mutants of the JSON metadata, the rest anywhere in the weights
        flips = [(8 + position % (header - 8), mask) for position, mask in flips]
    path = tmp_path / "mutant.safetensors"
    path.write_bytes(_mutant(checkpoint_bytes, flips))
    try:
        checkpoint.load(path)
    except CheckpointError as err:
        assert str(path) in str(err) and "\n" not in str(err), str(err)


# ------------------------------------------------------------------ the CLI on bad files
def _bad_checkpoints(folder: Path) -> dict[str, Path]:
    """Checkpoints the suite builds: bad values, shapes and checksums."""
    good = bundled_models()["heat3d-gno"]
    meta = checkpoint.read_metadata(good)
    data = good.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")

    def edited(name, new_meta):
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(good), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        save_file(tensors, folder / name, metadata={"meshop": json.dumps(new_meta)})
        return folder / name

    (folder / "truncated.safetensors").write_bytes(data[: header + 50])
    (folder / "flipped.safetensors").write_bytes(_mutant(data, [(len(data) - 7, 0x40)]))
    return {
        "truncated checkpoint": folder / "truncated.safetensors",
        "flipped weight byte": folder / "flipped.safetensors",
        "negative width": edited("width.safetensors", {**meta, "model": {**meta["model"], "config": {
            **meta["model"]["config"], "width": -5}}}),
        "metadata is a list": edited("list.safetensors", [meta]),
        "no checksum": edited("nosha.safetensors", {k: v for k, v in meta.items() if k != "sha256"}),
        "string channels": edited("channels.safetensors", {**meta, "model": {**meta["model"], "in_channels": "11"}}),
    }


def _bad_meshes(folder: Path) -> dict[str, Path]:
    """Meshes with the defects of issue 18, on top of the shared bad-file corpus."""
    points, tets = box_tetrahedra(3)
    stl = folder / "nan.stl"
    trimesh.creation.box().export(stl)
    data = bytearray(stl.read_bytes())
    data[96:100] = np.float32(np.inf).tobytes()
    stl.write_bytes(bytes(data))
    msh = folder / "huge_tag.msh"
    msh.write_text("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n4\n1 0 0 0\n2 1 0 0\n3 0 1 0\n"
                   "900000000 0 0 1\n$EndNodes\n$Elements\n1\n1 4 2 0 1 1 2 3 900000000\n$EndElements\n")
    return {
        "infinite STL vertex": stl,
        "huge node tag": msh,
        "duplicated cells": write_ascii_vtu(folder / "doubled.vtu", points, {"tetra": np.vstack([tets, tets[:1]])}),
        "coordinates of 1e30": write_ascii_vtu(folder / "far.vtu", points * 1e30, {"tetra": tets}),
    }


def _exit_code_and_lines(args: list[str]) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    lines = [line for line in result.stderr.strip().splitlines() if not line.endswith(" ...")]   # progress lines
    return result.exit_code, lines, result.stderr


def test_cli_exit_code_2_and_one_line_on_every_bad_file(bad_files, tmp_path):
    new_defects = _bad_meshes(tmp_path)
    meshes = {**{case: bad.path for case, bad in bad_files.items()}, **new_defects}
    for case, path in meshes.items():
        commands = [["info", path]] + ([["predict", path, "--out", tmp_path / "out.vtu"]] if case in new_defects else [])
        for command in commands:
            code, lines, stderr = _exit_code_and_lines(command)
            assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, (case, command[0], stderr)
            assert lines[0].startswith("meshop: error: "), (case, lines)
    good = tmp_path / "good.vtu"
    meshop.write(meshop.Mesh(*box_tetrahedra(4)[:1], {"tetra": box_tetrahedra(4)[1]}), good)
    for case, path in _bad_checkpoints(tmp_path).items():
        code, lines, stderr = _exit_code_and_lines(["predict", good, "--model", path, "--out", tmp_path / "p.vtu"])
        assert code == 2 and len(lines) == 1 and str(path) in lines[0], (case, stderr)
    assert not (tmp_path / "out.vtu").exists() and not (tmp_path / "p.vtu").exists()
