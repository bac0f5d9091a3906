"""``MeshDataset``: a folder of mesh files with named point fields and a ``dataset.json`` manifest.

A folder made by ``meshop generate`` works as is. For your own solved cases, put the mesh files
(any format :func:`meshop.read` reads) in one folder with a manifest naming the fields::

    {"inputs": ["source", "boundary_value"], "targets": ["u"]}

Optional keys: ``"files"`` (the samples, in order; default: every mesh file of the folder, sorted
by name), ``"split"`` (``{"train": [...], "val": [...], "test": [...]}`` lists of file names),
``"fields"`` (name -> ``{"length_power": p}``, see :mod:`meshop.fields`) and ``"dirichlet"``
(target -> input field holding its boundary values).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from ..errors import MeshError, as_path
from ..mesh import Mesh
from .generate import MANIFEST

MINIMAL_MANIFEST = '{"inputs": ["<input field>", ...], "targets": ["<target field>", ...]}'


class MeshDataset(Dataset):
    """Samples of a dataset folder as torch_geometric ``Data``.

    Every sample is read and checked once, when the dataset is created, and kept in memory:
    each must have every input and target point field, with the same number of components and
    the same spatial dimension as the first sample. ``Data`` carries:

    - ``pos`` ``(N, d)`` float32 node coordinates (file units);
    - ``x`` ``(N, n_in)`` float32: the input fields concatenated in manifest order;
    - ``y`` ``(N, n_out)`` float32: the target fields, likewise;
    - ``mesh_path``: the sample's file.

    Args:
        root: dataset folder holding ``dataset.json``.
        inputs, targets: field names overriding the manifest's.
        split: ``"train"``, ``"val"`` or ``"test"`` (from the manifest's split), or None for all.
        transform: called on a shallow copy of each ``Data`` at every access (e.g. graph
            building with random augmentation).
        pre_transform: called once per sample when loading; its result is what is cached
            (e.g. deterministic graph building).
        need_target: refuse a dataset that names no target (training), before reading a sample.

    Raises:
        MeshError: no or unreadable manifest, an unknown split, a missing or corrupt sample, a
            sample lacking a field or with an inconsistent one; the message names the sample.
    """

    def __init__(self, root: str | os.PathLike, inputs: list[str] | None = None,
                 targets: list[str] | None = None, split: str | None = None,
                 transform: Callable[[Data], Data] | None = None,
                 pre_transform: Callable[[Data], Data] | None = None, need_target: bool = False):
        from ..io import read

        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        inputs, targets = field_names(inputs, "inputs"), field_names(targets, "targets")
        self.inputs = list(inputs if inputs is not None else self.manifest.get("inputs", []))
        self.targets = list(targets if targets is not None else self.manifest.get("targets", []))
        if inputs is None and targets is None and not ("inputs" in self.manifest or "targets" in self.manifest):
            raise MeshError(f"{self.root / MANIFEST}: names no fields; add "
                            f"{MINIMAL_MANIFEST}.")
        check_roles(self.inputs, self.targets, self.root / MANIFEST if inputs is None and targets is None else None,
                    need_target=need_target)
        self.split = split
        self.files = _sample_files(self.root, self.manifest, split)
        self.transform = transform
        self.meshes: list[Mesh] = [read(path) for path in self.files]
        self.channels = _check_fields(self.meshes, self.inputs + self.targets)
        self._data = [self._to_data(mesh) for mesh in self.meshes]
        if pre_transform is not None:
            self._data = [pre_transform(data) for data in self._data]

    # ------------------------------------------------------------------ manifest facts
    @property
    def length_powers(self) -> dict[str, int]:
        """Field -> length power from the manifest's ``fields`` (0 when not given)."""
        fields = self.manifest.get("fields", {})
        return {n: int(fields.get(n, {}).get("length_power", 0)) for n in self.inputs + self.targets}

    @property
    def dirichlet(self) -> dict[str, str | float]:
        return dict(self.manifest.get("dirichlet", {}))

    @property
    def input_defaults(self) -> dict[str, float]:
        """Input -> value a mesh lacking it most likely means (manifest ``input_defaults``)."""
        return dict(self.manifest.get("input_defaults", {}))

    @property
    def linear_inputs(self) -> list[str]:
        """Inputs on which the targets depend linearly, together (manifest ``linear_inputs``)."""
        return list(self.manifest.get("linear_inputs", []))

    @property
    def num_inputs(self) -> int:
        """Columns of ``x``."""
        return sum(self.channels[n] for n in self.inputs)

    @property
    def num_targets(self) -> int:
        """Columns of ``y``."""
        return sum(self.channels[n] for n in self.targets)

    # ------------------------------------------------------------------ sequence protocol
    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> Data:
        data = copy.copy(self._data[index])
        return self.transform(data) if self.transform is not None else data

    def mesh(self, index: int) -> Mesh:
        """The :class:`~meshop.Mesh` of sample ``index`` (cells, boundary, all fields)."""
        return self.meshes[index]

    def __repr__(self) -> str:
        part = f", split={self.split!r}" if self.split else ""
        return (f"MeshDataset({str(self.root)!r}{part}: {len(self)} samples, "
                f"inputs={self.inputs}, targets={self.targets})")

    def _to_data(self, mesh: Mesh) -> Data:
        def stack(names: list[str]) -> torch.Tensor:
            columns = [np.asarray(mesh.point_data[n], dtype=np.float32).reshape(mesh.n_points, -1)
                       for n in names]
            return torch.from_numpy(np.concatenate(columns, axis=1) if columns
                                    else np.zeros((mesh.n_points, 0), np.float32))

        return Data(pos=torch.from_numpy(mesh.points.astype(np.float32)), x=stack(self.inputs),
                    y=stack(self.targets), mesh_path=str(mesh.source))


def field_names(value, what: str) -> list[str] | None:
    """``inputs`` / ``targets`` as given by a user: None (the manifest's), a list of point-field
    names, or one comma-separated string of them (``"a,b"``, as on the command line)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(n, str) and n.strip() for n in value):
        raise MeshError(f"{what} must be a list of point-field names like ['u'], got {value!r:.80}.")
    return list(value)


def check_roles(inputs: list[str], targets: list[str], where=None, need_target: bool = True) -> None:
    """:class:`MeshError` when a name is used twice (an input that is also a target, or a field
    listed twice) or, with ``need_target``, no target is named; ``where``: the manifest, when the
    names are its."""
    prefix = f"{where}: " if where is not None else ""
    names = list(inputs) + list(targets)
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        role = "both an input and a target" if twice in inputs and twice in targets else "listed twice"
        raise MeshError(f"{prefix}field '{twice}' is {role}; inputs and targets must be distinct fields.")
    if need_target and not targets:
        raise MeshError(f"{prefix}no target field: targets is empty; name at least one field to learn.")


def read_manifest(root: Path) -> dict:
    """The parsed ``dataset.json`` of ``root``; :class:`MeshError` when missing or invalid."""
    root = as_path(root, "the dataset folder")
    if not root.is_dir():
        raise MeshError(f"{root}: no such dataset folder.")
    path = root / MANIFEST
    if not path.is_file():
        raise MeshError(f"{root}: no {MANIFEST} manifest; write one naming the fields, at least "
                        f"{MINIMAL_MANIFEST}.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MeshError(f"{path}: not a valid JSON manifest ({err}).") from None
    if not isinstance(manifest, dict):
        raise MeshError(f"{path}: the manifest must be a JSON object like {MINIMAL_MANIFEST}.")
    for key in ("inputs", "targets"):
        names = manifest.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MeshError(f"{path}: '{key}' must be a list of point-field names.")
    return manifest


def _sample_files(root: Path, manifest: dict, split: str | None) -> list[Path]:
    from ..io import READERS

    if split is not None:
        splits = manifest.get("split", {})
        if split not in splits:
            raise MeshError(f"{root / MANIFEST}: no '{split}' split (splits: "
                            f"{', '.join(splits) or 'none'}).")
        names = splits[split]
    elif "samples" in manifest:
        names = [s["file"] if isinstance(s, dict) else s for s in manifest["samples"]]
    elif "files" in manifest:
        names = manifest["files"]
    else:
        names = sorted(p.name for p in root.iterdir()
                       if p.is_file() and p.name != MANIFEST and p.suffix.lower() in READERS)
    if not names:
        raise MeshError(f"{root}: the dataset{f' split {split!r}' if split else ''} has no samples.")
    return [root / name for name in names]


def _check_fields(meshes: list[Mesh], names: list[str]) -> dict[str, int]:
    """Components of each field; :class:`MeshError` naming the first inconsistent sample."""
    first = meshes[0]
    channels = {}
    for mesh in meshes:
        mesh.require(*names)
        if mesh.dim != first.dim:
            raise MeshError(f"{mesh.source}: the sample is {mesh.dim}D but {first.source.name} "
                            f"is {first.dim}D.")
        for name in names:
            values = np.asarray(mesh.point_data[name])
            if not np.issubdtype(values.dtype, np.number):
                raise MeshError(f"{mesh.source}: point field '{name}' is not numeric.")
            count = int(np.prod(values.shape[1:], dtype=int))
            if channels.setdefault(name, count) != count:
                raise MeshError(f"{mesh.source}: point field '{name}' has {count} component(s) "
                                f"but {first.source.name} has {channels[name]}.")
    return channels
