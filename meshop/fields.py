"""Which fields a model reads and writes, their physical scaling and normalization.

A :class:`FieldSpec` is the part of a checkpoint that lets ``meshop predict`` work from the
checkpoint and the mesh alone: field names, defaults for optional inputs, the physical scaling
that makes the model scale-free, Dirichlet couplings, and normalization statistics.

Physical scaling: a field with length power ``p`` is multiplied by ``L**p`` before normalization
(inputs) or after decoding (targets), with ``L`` the part's bounding-box diagonal. For
``-ΔT = q`` in coordinates scaled by ``L``, ``-Δ'T = q L²``: feeding ``q L²`` (power 2) and
predicting ``T`` (power 0) gives the same answer for the same part in millimetres or metres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import MeshError


@dataclass
class FieldSpec:
    """Inputs, targets and how they are coded.

    Attributes:
        inputs: point-field names fed to the model, in order.
        targets: point-field names predicted, in order.
        input_defaults: value used for an input a mesh lacks (e.g. ``{"source": 1.0}``).
        length_powers: field -> ``p``; the field is scaled by ``L**p`` (see module docstring).
        dirichlet: target -> input field (or a constant) that holds its value on boundary nodes;
            predictions there are replaced by it exactly.
        mean, std: per-channel normalization statistics of the scaled inputs and targets.
    """

    inputs: list[str]
    targets: list[str]
    input_defaults: dict[str, float] = field(default_factory=dict)
    length_powers: dict[str, int] = field(default_factory=dict)
    dirichlet: dict[str, str | float] = field(default_factory=dict)
    mean: dict[str, list[float]] = field(default_factory=dict)
    std: dict[str, list[float]] = field(default_factory=dict)

    # -------------------------------------------------------------- (de)serialization
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FieldSpec":
        return cls(**data)

    # -------------------------------------------------------------- field access
    def input_array(self, mesh, name: str) -> tuple[np.ndarray, bool]:
        """``(N, c)`` values of input ``name`` on ``mesh`` and whether the default was used."""
        if name in mesh.point_data:
            return _as_columns(mesh.point_data[name]), False
        if name in self.input_defaults:
            return np.full((mesh.n_points, 1), float(self.input_defaults[name])), True
        mesh.require(name)  # raises MeshError naming the field
        raise AssertionError("unreachable")

    def scaled(self, name: str, values: np.ndarray, length: float) -> np.ndarray:
        return values * length ** self.length_powers.get(name, 0)

    # -------------------------------------------------------------- statistics
    def fit(self, meshes) -> "FieldSpec":
        """Compute normalization statistics over ``meshes`` (an iterable of :class:`Mesh`)."""
        sums: dict[str, list] = {n: [] for n in self.inputs + self.targets}
        for mesh in meshes:
            length = mesh.size
            for name in self.inputs:
                sums[name].append(self.scaled(name, self.input_array(mesh, name)[0], length))
            for name in self.targets:
                mesh.require(name)
                sums[name].append(self.scaled(name, _as_columns(mesh.point_data[name]), length))
        for name, chunks in sums.items():
            if not chunks:
                raise MeshError("cannot fit normalization statistics on an empty dataset.")
            values = np.concatenate(chunks)
            self.mean[name] = values.mean(axis=0).tolist()
            self.std[name] = np.maximum(values.std(axis=0), 1e-12 * max(1.0, np.abs(values).max())).tolist()
        return self

    def encode(self, name: str, values: np.ndarray, length: float) -> np.ndarray:
        """Physical ``(N, c)`` -> normalized model units."""
        return (self.scaled(name, values, length) - np.asarray(self.mean[name])) / np.asarray(self.std[name])

    def channels(self, names: list[str]) -> int:
        return sum(len(self.mean[n]) for n in names)


def _as_columns(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[:, None] if values.ndim == 1 else values.reshape(len(values), -1)
