"""MeshDataset: committed samples, a user's own folder, and clear errors naming the sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

import meshop
from meshop import Mesh, MeshError
from meshop.data import MeshDataset

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"


def _user_folder(tmp_path: Path, n: int = 3, manifest: dict | None = None) -> Path:
    """n small triangle meshes with fields 'a' (scalar), 'b' (2 components) and 'u'."""
    rng = np.random.default_rng(0)
    points = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5]], float)
    cells = {"triangle": np.array([[0, 1, 4], [1, 3, 4], [3, 2, 4], [2, 0, 4]])}
    for i in range(n):
        fields = {"a": rng.normal(size=5), "b": rng.normal(size=(5, 2)), "u": rng.normal(size=5)}
        meshop.write(Mesh(points * (i + 1), cells, fields), tmp_path / f"case{i}.vtu")
    if manifest is not False:
        (tmp_path / "dataset.json").write_text(json.dumps(manifest or {"inputs": ["b", "a"], "targets": ["u"]}))
    return tmp_path


@pytest.mark.parametrize("problem, dim, n_in", [("poisson2d", 2, 2), ("darcy2d", 2, 1), ("heat3d", 3, 2)])
def test_committed_samples_load_with_manifest_fields(problem, dim, n_in):
    dataset = MeshDataset(SAMPLES / problem)
    manifest = json.loads((SAMPLES / problem / "dataset.json").read_text())
    assert len(dataset) == manifest["n_samples"]
    data = dataset[0]
    mesh = meshop.read(SAMPLES / problem / manifest["samples"][0]["file"])
    assert data.pos.dtype == torch.float32 and data.pos.shape == (mesh.n_points, dim)
    assert data.x.shape == (mesh.n_points, n_in) and data.y.shape == (mesh.n_points, 1)
    for column, name in enumerate(manifest["inputs"]):
        assert torch.equal(data.x[:, column], torch.from_numpy(mesh.point_data[name].astype(np.float32)))
    assert torch.equal(data.y[:, 0], torch.from_numpy(mesh.point_data[manifest["targets"][0]].astype(np.float32)))
    assert Path(data.mesh_path).name == manifest["samples"][0]["file"]
    for part in ("train", "val", "test"):
        assert [Path(d.mesh_path).name for d in MeshDataset(SAMPLES / problem, split=part)] == manifest["split"][part]


def test_user_folder_with_minimal_manifest(tmp_path):
    folder = _user_folder(tmp_path)
    dataset = MeshDataset(folder)
    assert [Path(f).name for f in dataset.files] == ["case0.vtu", "case1.vtu", "case2.vtu"]
    assert dataset.num_inputs == 3 and dataset.num_targets == 1      # b has 2 components, a 1
    mesh = meshop.read(folder / "case1.vtu")
    x = dataset[1].x.numpy()
    assert np.array_equal(x[:, :2], mesh.point_data["b"].astype(np.float32))   # manifest order
    assert np.array_equal(x[:, 2], mesh.point_data["a"].astype(np.float32))
    assert dataset.length_powers == {"b": 0, "a": 0, "u": 0}
    override = MeshDataset(folder, inputs=["a"], targets=["b"])
    assert override[0].x.shape == (5, 1) and override[0].y.shape == (5, 2)
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch.num_graphs == 3 and batch.x.shape == (15, 3)


def test_transform_each_access_pre_transform_once(tmp_path):
    folder = _user_folder(tmp_path)
    calls = []

    def pre(data):
        calls.append(1)
        data.scaled = data.pos * 2
        return data

    dataset = MeshDataset(folder, pre_transform=pre, transform=lambda d: setattr(d, "x", d.x + 1) or d)
    first, again = dataset[0], dataset[0]
    assert len(calls) == 3                                          # once per sample, at load
    assert torch.equal(first.x, again.x)                            # the cached x is not mutated
    assert torch.equal(first.scaled, first.pos * 2)
    raw = MeshDataset(folder)[0]
    assert torch.equal(first.x, raw.x + 1)


def test_missing_manifest_names_the_file_to_write(tmp_path):
    folder = _user_folder(tmp_path, manifest=False)
    with pytest.raises(MeshError, match=r"no dataset\.json manifest.*\"inputs\""):
        MeshDataset(folder)
    (folder / "dataset.json").write_text("{not json")
    with pytest.raises(MeshError, match="not a valid JSON manifest"):
        MeshDataset(folder)
    (folder / "dataset.json").write_text('{"split": {}}')
    with pytest.raises(MeshError, match="names no fields"):
        MeshDataset(folder)
    (folder / "dataset.json").write_text('{"inputs": ["a"], "targets": ["u"]}')
    with pytest.raises(MeshError, match="no 'train' split"):
        MeshDataset(folder, split="train")


def test_missing_or_inconsistent_field_names_the_sample(tmp_path):
    folder = _user_folder(tmp_path)
    mesh = meshop.read(folder / "case2.vtu")
    del mesh.point_data["a"]
    meshop.write(mesh, folder / "case2.vtu", overwrite=True)
    with pytest.raises(MeshError, match=r"case2\.vtu: point field 'a' is missing"):
        MeshDataset(folder)
    mesh.point_data["a"] = np.zeros((5, 3))
    meshop.write(mesh, folder / "case2.vtu", overwrite=True)
    with pytest.raises(MeshError, match=r"case2\.vtu: point field 'a' has 3 component\(s\) but case0\.vtu has 1"):
        MeshDataset(folder)


def test_corrupt_or_missing_sample_is_named(tmp_path):
    folder = _user_folder(tmp_path)
    (folder / "case1.vtu").write_bytes(b"<VTKFile> truncated garbage")
    with pytest.raises(MeshError, match=r"case1\.vtu"):
        MeshDataset(folder)
    (folder / "dataset.json").write_text(json.dumps({"inputs": ["a"], "targets": ["u"], "files": ["case0.vtu", "gone.vtu"]}))
    with pytest.raises(MeshError, match=r"gone\.vtu: no such file"):
        MeshDataset(folder)
