"""Which fields a model reads and writes, their physical scaling and normalization.

A :class:`FieldSpec` is the part of a checkpoint that lets ``meshop predict`` work from the
checkpoint and the mesh alone: field names, defaults for optional inputs, the physical scaling
that makes the model scale-free, Dirichlet couplings, and normalization statistics.

Physical scaling: a field with length power ``p`` is multiplied by ``L**p`` before normalization
(inputs) or after decoding (targets), with ``L`` the part's *inradius*, its largest distance
to the boundary (:func:`physical_length`). For ``-ΔT = q`` in coordinates scaled by ``L``,
``-Δ'T = q L²``: feeding ``q L²`` (power 2) and predicting ``T`` (power 0) gives the same answer
for the same part in millimetres or metres. The inradius, not the bounding-box size, is the
length over which heat flows to the boundary: a uniformly heated plate warms like ``q L²/2``
with ``L`` its half-thickness, so ``T / (q L²)`` stays O(1) for slender and compact parts alike.

Amplitude: for a linear problem the targets depend linearly on the ``linear_inputs`` taken
together (``T(αqL², αg) = αT(qL², g)``). Each sample is then divided by its amplitude ``A``, the
root-mean-square of those scaled inputs, and the decoded targets multiplied by it, so the model
answers exactly proportionally however strong the source or hot the boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import MeshError
from .values import is_finite_number


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
        linear_inputs: inputs on which the targets depend linearly and jointly; samples are
            normalized by their amplitude (see module docstring). Empty: no amplitude scaling.
        mean, std: per-channel normalization statistics of the scaled inputs and targets.
        prior: target -> the coarse physics solve the model reads as an input and adds to its
            output (it learns the difference): ``{"pde": "poisson", "source": <input or
            None>, "boundary": <input or None>, "voxels": n}``, the problem -Δu = source,
            u = boundary on a voxel grid (:func:`~meshop.priors.coarse_prior`). Empty: none,
            the model predicts the targets outright. A prior covers every target or none.
    """

    inputs: list[str]
    targets: list[str]
    input_defaults: dict[str, float] = field(default_factory=dict)
    length_powers: dict[str, int] = field(default_factory=dict)
    dirichlet: dict[str, str | float] = field(default_factory=dict)
    linear_inputs: list[str] = field(default_factory=list)
    mean: dict[str, list[float]] = field(default_factory=dict)
    std: dict[str, list[float]] = field(default_factory=dict)
    prior: dict[str, dict] = field(default_factory=dict)

    # -------------------------------------------------------------- (de)serialization
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FieldSpec":
        """A fitted spec from :meth:`to_dict`'s mapping (a checkpoint's ``fields``); ``TypeError``
        / ``ValueError`` naming the first malformed entry."""
        if not isinstance(data, dict):
            raise TypeError(f"fields must be a mapping, not {type(data).__name__}.")
        spec = cls(**data)
        _check_fitted(spec)
        return spec

    # -------------------------------------------------------------- field access
    def input_array(self, mesh, name: str) -> tuple[np.ndarray, bool]:
        """``(N, c)`` values of input ``name`` on ``mesh`` and whether the default was used."""
        if name in mesh.point_data:
            return self.point_columns(mesh, name), False
        if name in self.input_defaults:
            return np.full((mesh.n_points, 1), float(self.input_defaults[name])), True
        mesh.require(name)  # raises MeshError naming the field
        raise AssertionError("unreachable")

    def point_columns(self, mesh, name: str) -> np.ndarray:
        """``(N, c)`` values of the point field ``name`` of ``mesh``, refused when a fitted spec
        knows another number of channels ``c`` for it (a vector where the model reads a scalar)."""
        values = as_columns(mesh.point_data[name])
        width = len(self.mean.get(name, ()))
        if width and values.shape[1] != width:
            where = f"{mesh.source}: " if mesh.source else ""
            raise MeshError(f"{where}point field '{name}' has {values.shape[1]} component(s) per point but the "
                            f"model reads {width}; give it {width} value(s) per point.")
        return values

    def scaled(self, name: str, values: np.ndarray, length: float, amplitude: float = 1.0) -> np.ndarray:
        """``values * L**p / A`` (``A`` only for linear inputs and targets)."""
        linear = name in self.linear_inputs or name in self.targets
        return values * length ** self.length_powers.get(name, 0) / (amplitude if linear else 1.0)

    def amplitude(self, inputs: dict[str, np.ndarray], length: float) -> float:
        """Root-mean-square of the scaled linear inputs of one sample (1 when there are none or
        they all vanish)."""
        if not self.linear_inputs:
            return 1.0
        squares = [np.mean(self.scaled(n, inputs[n], length) ** 2) * inputs[n].shape[1] for n in self.linear_inputs]
        rms = float(np.sqrt(np.sum(squares)))
        return rms if rms > 0 else 1.0

    # -------------------------------------------------------------- statistics
    def fit(self, meshes) -> "FieldSpec":
        """Compute normalization statistics over ``meshes`` (an iterable of :class:`Mesh`)."""
        sums: dict[str, list] = {n: [] for n in self.inputs + self.targets}
        for mesh in meshes:
            length = physical_length(mesh)
            inputs = {name: self.input_array(mesh, name)[0] for name in self.inputs}
            amplitude = self.amplitude(inputs, length)
            for name in self.inputs:
                sums[name].append(self.scaled(name, inputs[name], length, amplitude))
            for name in self.targets:
                mesh.require(name)
                sums[name].append(self.scaled(name, as_columns(mesh.point_data[name]), length, amplitude))
        for name, chunks in sums.items():
            if not chunks:
                raise MeshError("cannot fit normalization statistics on an empty dataset.")
            values = np.concatenate(chunks)
            mean, std = values.mean(axis=0), values.std(axis=0)
            # a (nearly) constant field is divided by its magnitude instead of a vanishing std
            constant = std <= 1e-6 * np.maximum(np.abs(mean), 1e-300)
            self.mean[name] = mean.tolist()
            self.std[name] = np.where(constant, np.maximum(np.abs(mean), 1.0), std).tolist()
        return self

    def encode(self, name: str, values: np.ndarray, length: float, amplitude: float = 1.0) -> np.ndarray:
        """Physical ``(N, c)`` -> normalized model units."""
        scaled = self.scaled(name, values, length, amplitude)
        return (scaled - np.asarray(self.mean[name])) / np.asarray(self.std[name])

    def channels(self, names: list[str]) -> int:
        return sum(len(self.mean[n]) for n in names)


def physical_length(mesh) -> float:
    """``L`` of the physical scaling: the largest distance from a node to the boundary.

    Falls back to the bounding-box diagonal when the boundary is not known (a point cloud
    whose estimated boundary is empty).
    """
    inradius = float(np.max(mesh.distance_to_boundary))
    return inradius if np.isfinite(inradius) and inradius > 0 else mesh.size


def as_columns(values) -> np.ndarray:
    """``(N, c)`` float64 columns of a point field given as ``(N,)`` or ``(N, ...)``."""
    values = np.asarray(values, dtype=np.float64)
    return values[:, None] if values.ndim == 1 else values.reshape(len(values), -1)


def _check_fitted(spec: FieldSpec) -> None:
    """Names are strings, every field has finite statistics (``std > 0``), couplings name inputs."""
    for key in ("inputs", "targets", "linear_inputs", "input_defaults", "length_powers", "dirichlet", "mean", "std",
                "prior"):
        expected = list if key in ("inputs", "targets", "linear_inputs") else dict
        if not isinstance(getattr(spec, key), expected):
            raise ValueError(f"fields: {key} must be a {'list' if expected is list else 'mapping'}.")
    names = spec.inputs + spec.targets
    if not spec.targets or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ValueError("fields: inputs and targets must be distinct names, with at least one target.")
    for name in names:
        if name not in spec.mean and name not in spec.std:
            continue   # not fed through meshop's node features (the mesh mover reads its field raw)
        mean, std = spec.mean.get(name), spec.std.get(name)
        if not (_finite_list(mean) and _finite_list(std) and len(mean) == len(std) and min(std) > 0):
            raise ValueError(f"fields: the statistics of '{name}' must be lists of finite numbers of one "
                             f"length, std > 0; got mean {mean!r}, std {std!r}.")
    numbers = [*spec.input_defaults.values(), *spec.length_powers.values()]
    if (numbers and not _finite_list(numbers)) or not set(spec.linear_inputs) <= set(spec.inputs):
        raise ValueError("fields: input defaults and length powers must be finite numbers and linear "
                         "inputs must be inputs.")
    for target, source in spec.dirichlet.items():
        if target not in spec.targets or not (source in spec.inputs or _finite_list([source])):
            raise ValueError(f"fields: dirichlet couples '{target}' to {source!r}, not a target and an "
                             "input or a number.")
    _check_prior(spec)


def _check_prior(spec: FieldSpec) -> None:
    """A prior covers every target (or none), each a scalar field, with a known PDE, input names
    and a voxel count."""
    if not spec.prior:
        return
    if sorted(spec.prior) != sorted(spec.targets):
        raise ValueError(f"fields: the prior covers {sorted(spec.prior)}; it must cover every target "
                         f"({', '.join(spec.targets)}) or none.")
    for target, prior in spec.prior.items():
        ok = (isinstance(prior, dict) and prior.get("pde") == "poisson"
              and all(prior.get(k) is None or prior.get(k) in spec.inputs for k in ("source", "boundary"))
              and isinstance(prior.get("voxels"), int) and not isinstance(prior.get("voxels"), bool)
              and 64 <= prior["voxels"] <= 2 ** 24 and len(spec.mean.get(target, [0.0])) == 1)
        if not ok:
            raise ValueError(f"fields: the prior of '{target}' (a scalar field) must be {{'pde': 'poisson', "
                             f"'source': <input>, 'boundary': <input>, 'voxels': 64..2**24}}; got {prior!r}.")


def _finite_list(values) -> bool:
    """A non-empty list of finite real numbers (booleans excluded)."""
    return isinstance(values, list) and len(values) > 0 and all(is_finite_number(v) for v in values)

