"""Mesh + fields -> torch_geometric ``Data``, and model outputs -> physical fields.

Node features (``Data.x``, ``(N, F)``), in this order:

====================  =====  =============================================================
block                 width  meaning
====================  =====  =============================================================
position              d      ``(x - centre) / D``, D = bounding-box diagonal, on a grid of
                             ``2**-20`` (:func:`node_positions`)
distance to boundary  1      ``dist / L``, L = largest distance to the boundary
boundary flag         1      1 on boundary nodes, 0 inside
boundary normal       d      unit outward normal, 0 inside
inputs                c      each input field scaled by ``L**p`` (and the sample's amplitude)
                             and normalized
extended boundary     b      each Dirichlet input field carried inward (see below)
====================  =====  =============================================================

so the same part in millimetres and in metres gets the same features, and (graphs being built
on the gridded positions, with kNN near-ties settled by node id) the same part far from the
origin gets the same prediction as long as its coordinates keep their precision
(:func:`precision_note`).

The extended boundary value of a Dirichlet input ``g`` is the inverse-square-distance average
of ``g`` over the :data:`EXTENSION_NEIGHBOURS` nearest boundary nodes: a cheap stand-in for the
harmonic extension that tells every node, however deep, what the boundary holds near it. It is a
global feature computed on the whole mesh before any partitioning, so partitioned prediction
stays exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from .errors import MeshError
from .fields import FieldSpec, physical_length
from .values import is_finite_number, is_int


#: boundary nodes averaged by the extended-boundary-value feature
EXTENSION_NEIGHBOURS = 8
#: largest neighbour count of a graph (``k``, ``max_neighbors``)
MAX_NEIGHBOURS = 1000
#: normalized positions are multiples of ``2**-POSITION_BITS`` (see :func:`node_positions`)
POSITION_BITS = 20
#: kNN distances (in bounding-box diagonals) within this of the k-th nearest count as ties,
#: settled by node id: 16x the largest move of a snapped position, far below any mesh spacing
POSITION_TIE = 2.0 ** -16
#: coordinates rounded coarser than this fraction of the part's size (float64 spacing at the
#: largest coordinate) may change the prediction: :func:`precision_note` says so
PRECISION_LIMIT = 2.0 ** -24


@dataclass
class GraphSettings:
    """How the neighbour graph is built; stored in checkpoints.

    Attributes:
        kind: ``"knn"`` (each node receives from its ``k`` nearest nodes) or ``"radius"``.
        k: neighbours per node for ``"knn"``.
        radius: cut-off in units of L (the bounding-box diagonal) for ``"radius"``.
        max_neighbors: cap for ``"radius"`` (the nearest are kept; dropping warns).
    """

    kind: str = "knn"
    k: int = 16
    radius: float = 0.05
    max_neighbors: int = 32

    def __post_init__(self):
        if self.kind not in ("knn", "radius"):
            raise ValueError(f"unknown graph kind {self.kind!r}; expected 'knn' or 'radius'.")
        for name in ("k", "max_neighbors"):
            value = getattr(self, name)
            if not is_int(value) or not 1 <= value <= MAX_NEIGHBOURS:
                raise ValueError(f"graph {name} must be an integer in 1..{MAX_NEIGHBOURS}; got {value!r}.")
        if not is_finite_number(self.radius) or self.radius <= 0:
            raise ValueError(f"graph radius must be a finite positive number; got {self.radius!r}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GraphSettings":
        """Settings from :meth:`to_dict`'s mapping; ``TypeError`` / ``ValueError`` when malformed."""
        if not isinstance(data, dict):
            raise TypeError(f"graph settings must be a mapping, not {type(data).__name__}.")
        return cls(**data)

    def edges(self, pos: np.ndarray) -> np.ndarray:
        """``(2, E)`` edge index on normalized positions ``pos (N, d)``."""
        from .geometry.neighbors import knn_graph, radius_graph

        if self.kind == "knn":
            return knn_graph(pos, min(self.k, len(pos) - 1), tie=POSITION_TIE)
        return radius_graph(pos, self.radius, max_neighbors=self.max_neighbors)


def geometry_feature_count(dim: int) -> int:
    """Width of the geometric part of ``Data.x``: position, distance, flag, normal."""
    return 2 * dim + 2


#: the attributes :func:`node_data` sets per node (one row per node); the others are per graph
NODE_ATTRIBUTES = ("x", "pos", "boundary_mask", "dirichlet", "y", "prior")


def node_data(mesh, spec: FieldSpec, *, with_targets: bool = True) -> tuple[Data, list[str]]:
    """Node-level ``Data`` (no edges yet) for ``mesh`` and the inputs that fell back to defaults.

    Attributes set: ``x (N, F)``, ``pos (N, d)`` normalized, ``boundary_mask (N,)``,
    ``dirichlet (N, T)`` physical boundary values (NaN where a target has no Dirichlet coupling),
    ``length (1,)`` = L of the physical scaling and ``amplitude (1,)`` = A (see
    :mod:`meshop.fields`), ``y (N, T)`` physical targets when present and asked for, and with a
    prior in ``spec`` (:mod:`meshop.priors`) ``prior (N, T)`` in normalized target units, also the
    last columns of ``x``.
    """
    size = mesh.size
    if size <= 0:
        raise MeshError(f"{mesh.source or 'mesh'}: all points coincide; the part has no extent.")
    length = physical_length(mesh)
    pos = node_positions(mesh)
    blocks = [pos,
              mesh.distance_to_boundary[:, None] / length,
              mesh.boundary_mask[:, None].astype(np.float64),
              mesh.boundary_normals]
    defaulted, raw = [], {}
    for name in spec.inputs:
        raw[name], used_default = spec.input_array(mesh, name)
        if used_default:
            defaulted.append(name)
    amplitude = spec.amplitude(raw, length)
    blocks.extend(spec.encode(name, raw[name], length, amplitude) for name in spec.inputs)
    blocks.extend(spec.encode(name, extend_boundary_values(mesh, raw[name], pos), length, amplitude)
                  for name in dirichlet_inputs(spec))
    prior = _encoded_prior(mesh, spec, raw, pos, length, amplitude)
    if prior is not None:
        blocks.append(prior)
    data = Data(
        x=torch.as_tensor(np.hstack(blocks), dtype=torch.float32),
        pos=torch.as_tensor(blocks[0], dtype=torch.float32),
        boundary_mask=torch.as_tensor(mesh.boundary_mask),
        dirichlet=torch.as_tensor(_dirichlet(mesh, spec, raw), dtype=torch.float32),
        length=torch.tensor([length], dtype=torch.float64),
        amplitude=torch.tensor([amplitude], dtype=torch.float64),
    )
    if with_targets and all(t in mesh.point_data for t in spec.targets):
        y = np.hstack([np.asarray(mesh.point_data[t], np.float64).reshape(mesh.n_points, -1) for t in spec.targets])
        data.y = torch.as_tensor(y, dtype=torch.float32)
    if prior is not None:
        data.prior = torch.as_tensor(prior, dtype=torch.float32)
    return data, defaulted


def _encoded_prior(mesh, spec: FieldSpec, raw: dict, pos: np.ndarray, length: float, amplitude: float
                   ) -> np.ndarray | None:
    """``(N, T)`` the coarse prior of the targets in normalized units (solved on the node
    positions ``pos``), None without one."""
    if not spec.prior:
        return None
    from .priors import coarse_prior

    physical = coarse_prior(mesh, spec, raw, pos)
    widths = np.cumsum([0] + [len(spec.mean[t]) for t in spec.targets])
    return np.hstack([spec.encode(t, physical[:, a:b], length, amplitude)
                      for t, a, b in zip(spec.targets, widths[:-1], widths[1:])])


def dirichlet_inputs(spec: FieldSpec) -> list[str]:
    """Input fields that hold boundary values of some target, in ``spec.inputs`` order."""
    named = {v for v in spec.dirichlet.values() if isinstance(v, str)}
    return [name for name in spec.inputs if name in named]


def node_positions(mesh) -> np.ndarray:
    """``(N, d)`` float64 node positions ``(x - centre) / D`` rounded to multiples of
    ``2**-POSITION_BITS`` (exact in float32): the position feature and every graph's points.

    Why: graphs are discrete choices (k nearest neighbours, voxel of a point, nearest point to
    a voxel's centroid, ...) and meshes are full of exact and near ties, which rounding noise
    then settles. The same part shifted by 1e9 has its coordinates rounded to ~1e-7 in its
    file (float64), so its centred positions differ from the unshifted part's by ~1e-9 of its
    size (1e-16 of the offset, relative to the part), and in float32 by ~1 unit in the last
    place; that alone picked other kNN neighbours and changed the default prediction by 0.25 %
    (bracket) and 2.4 % (ball, relative L2). Rounded to this grid, both copies give the very
    same float32 positions unless a coordinate lies within that noise of a half-grid point
    (a fraction ~ noise / grid of them, ~1 % of a unit ball's coordinates at 1e9); such a
    position moves by one grid step (1e-6 of the size), and the kNN graphs absorb that by
    counting distances within :data:`POSITION_TIE` of the k-th as ties (settled by id). Voxel
    and farthest-point levels, radius graphs and sub-domains rely on the grid alone: measured,
    their node and edge sets are identical for the bracket, a ball and a lattice of cubes
    shifted up to the :data:`PRECISION_LIMIT`.
    """
    scale = 2.0 ** POSITION_BITS
    return np.round(mesh.centred_points / mesh.size * scale) / scale


def precision_note(mesh) -> str | None:
    """One sentence when the coordinates' magnitude leaves them too coarse for the part's size
    (float64 spacing at the largest coordinate above :data:`PRECISION_LIMIT` of the bounding-box
    diagonal): there the same part near the origin may get another prediction. None otherwise."""
    largest = float(np.abs(mesh.points).max())
    rounding = float(np.spacing(largest))
    if rounding <= PRECISION_LIMIT * mesh.size:
        return None
    return (f"coordinates reach {largest:.3g}, where float64 rounds them to {rounding:.2g}, "
            f"{rounding / mesh.size:.1e} of the part's size {mesh.size:.3g}: precision is lost and the "
            f"prediction may differ from that of the part near the origin (move it there).")


def extend_boundary_values(mesh, values: np.ndarray, pos: np.ndarray | None = None,
                           k: int = EXTENSION_NEIGHBOURS) -> np.ndarray:
    """``(N, c)`` inverse-square-distance average of boundary-node ``values`` over the ``k``
    nearest boundary nodes (on :func:`node_positions`, or ``pos`` when given); exact on the
    boundary."""
    from .geometry.neighbors import nearest_ids

    boundary = np.flatnonzero(mesh.boundary_mask)
    if len(boundary) == 0:
        return np.zeros_like(values)
    on_boundary = values[boundary]
    if np.all(on_boundary == on_boundary[:1]):          # uniform (e.g. a default): the average is exact
        return np.broadcast_to(on_boundary[:1], values.shape).copy()
    pos = node_positions(mesh) if pos is None else pos
    nearest = nearest_ids(pos[boundary], pos, min(k, len(boundary)), POSITION_TIE)    # (N, k)
    dist = np.linalg.norm(pos[boundary][nearest] - pos[:, None], axis=2)
    weights = 1.0 / np.maximum(dist, 1e-12) ** 2                             # (N, k)
    weights /= weights.sum(axis=1, keepdims=True)
    extended = np.einsum("nk,nkc->nc", weights, values[boundary][nearest])
    extended[boundary] = values[boundary]
    return extended


def feature_layout(spec: FieldSpec, dim: int) -> dict[str, list[int]]:
    """Where each named block of ``Data.x`` lies: name -> ``[start, stop)`` columns.

    Names: ``position``, ``distance``, ``boundary_flag``, ``normal``, each input field by its
    name, ``extended:<input>`` for the carried-inward boundary values (module docstring) and
    ``prior:<target>`` for the coarse solve of a model trained with a prior.
    Models read features by these names, never by a hard-coded column.
    """
    widths = [("position", dim), ("distance", 1), ("boundary_flag", 1), ("normal", dim)]
    widths += [(name, len(spec.mean[name])) for name in spec.inputs]
    widths += [(f"extended:{name}", len(spec.mean[name])) for name in dirichlet_inputs(spec)]
    widths += [(f"prior:{name}", len(spec.mean[name])) for name in spec.targets if spec.prior]
    layout, start = {}, 0
    for name, width in widths:
        layout[name] = [start, start + width]
        start += width
    return layout


#: names of the geometry blocks that open ``Data.x``, in order
GEOMETRY_FEATURES = ("position", "distance", "boundary_flag", "normal")


def positional_layout(in_channels: int, dim: int) -> dict[str, list[int]]:
    """The layout of a model built without data: the geometry blocks, then one unnamed
    ``input:<k>`` column per remaining feature."""
    layout = dict(zip(GEOMETRY_FEATURES, ([0, dim], [dim, dim + 1], [dim + 1, dim + 2], [dim + 2, 2 * dim + 2])))
    layout.update({f"input:{k}": [c, c + 1] for k, c in enumerate(range(2 * dim + 2, in_channels))})
    return layout


def check_layout(layout, in_channels: int, dim: int) -> dict[str, list[int]]:
    """``layout`` checked against a model of ``in_channels`` features: a mapping name ->
    ``[start, stop)`` whose blocks tile ``0..in_channels`` and open with the geometry blocks.
    Raises ``ValueError`` naming the defect."""
    if not isinstance(layout, dict) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and len(v) == 2 and all(is_int(c) for c in v)
            for k, v in layout.items()):
        raise ValueError("the feature layout must map names to [start, stop) column pairs")
    blocks = sorted((list(v), k) for k, v in layout.items())
    edges = [0] + [stop for (_, stop), _ in blocks]
    if any(start != edge or stop <= start for ((start, stop), _), edge in zip(blocks, edges)) or edges[-1] != in_channels:
        raise ValueError(f"the feature layout {dict(layout)} does not cover the model's {in_channels} node "
                         "features column by column")
    missing = [name for name in GEOMETRY_FEATURES if name not in layout]
    if missing or layout["normal"] != [dim + 2, 2 * dim + 2]:
        raise ValueError(f"the feature layout lacks the geometry block '{(missing or ['normal'])[0]}' in its place")
    return {k: list(v) for k, v in layout.items()}


def layout_columns(layout: dict[str, list[int]], names, reader: str) -> list[int]:
    """The ``Data.x`` columns of the named blocks, in the order named; ``ValueError`` naming the
    first name the layout lacks (``reader`` says who wanted it)."""
    columns = []
    for name in names:
        if name not in layout:
            raise ValueError(f"{reader} reads node feature '{name}', which these node features lack "
                             f"(they hold {', '.join(layout)})")
        columns.extend(range(*layout[name]))
    return columns


def feature_count(spec: FieldSpec, dim: int) -> int:
    """Width of ``Data.x`` for meshes of dimension ``dim`` coded by ``spec``."""
    extended = dirichlet_inputs(spec)
    prior = spec.targets if spec.prior else []
    return geometry_feature_count(dim) + spec.channels(spec.inputs) + spec.channels(extended) + spec.channels(prior)


def _dirichlet(mesh, spec: FieldSpec, raw: dict[str, np.ndarray]) -> np.ndarray:
    columns = []
    for target in spec.targets:
        width = len(spec.mean[target])
        source = spec.dirichlet.get(target)
        if source is None:
            columns.append(np.full((mesh.n_points, width), np.nan))
        elif isinstance(source, str):
            columns.append(np.broadcast_to(raw[source], (mesh.n_points, width)))
        else:
            columns.append(np.full((mesh.n_points, width), float(source)))
    return np.hstack(columns)


def build_graph(mesh, spec: FieldSpec, settings: GraphSettings, *, with_targets: bool = True,
                prepare=None, mesh_graph: bool = True) -> Data:
    """The model input for ``mesh``, the one path training, rollouts and prediction share:
    node data (:func:`node_data`), then the transforms (:mod:`meshop.models.transforms`) of the
    neighbour graph (``MeshGraph``; empty with ``mesh_graph=False``, for models that do not read
    it) and of the model (``prepare``: its ``transforms()`` composed, e.g. hierarchy levels).
    Prediction runs the same steps with sub-domains (:func:`node_subset`) before ``prepare``
    (:func:`model_input`)."""
    from .models.transforms import Compose, MeshGraph

    data, _ = node_data(mesh, spec, with_targets=with_targets)
    return Compose([MeshGraph(settings, mesh_graph), *([prepare] if prepare is not None else [])])(data)


def model_input(data: Data, edges: torch.Tensor, prepare=None) -> Data:
    """Node data and its ``(2, E)`` edges as the model reads them: a new ``Data`` sharing the
    node tensors (no copy), passed through the model's ``prepare`` hook when given."""
    data = Data(**data.to_dict(), edge_index=edges)
    return prepare(data) if prepare is not None else data


def node_subset(data: Data, nodes: torch.Tensor) -> Data:
    """The node attributes (:data:`NODE_ATTRIBUTES`) of node data restricted to ``nodes`` (in
    that order); per-graph ones (``length``, ``amplitude``) shared."""
    return Data(**{key: value[nodes] if key in NODE_ATTRIBUTES else value for key, value in data.to_dict().items()})


def mesh_edges(data, settings: GraphSettings, needed: bool = True) -> torch.Tensor:
    """``(2, E)`` neighbour graph on the normalized node positions of ``data``; ``(2, 0)`` when
    the model does not read it (``needed=False``)."""
    if not needed:
        return torch.empty((2, 0), dtype=torch.long)
    return torch.as_tensor(settings.edges(data.pos.double().numpy()), dtype=torch.long)


def decode(out: torch.Tensor, data, spec: FieldSpec) -> torch.Tensor:
    """Model output ``(N, T)`` in normalized units -> physical targets ``(N, T)``.

    Adds the prior first when the spec has one (the model predicts the difference), undoes the
    normalization, the amplitude and the ``L**p`` scaling per graph of a batch, then imposes the
    Dirichlet values on boundary nodes exactly.
    """
    if spec.prior:
        out = out + data.prior.to(out)
    mean = torch.cat([torch.as_tensor(spec.mean[t]) for t in spec.targets]).to(out)
    std = torch.cat([torch.as_tensor(spec.std[t]) for t in spec.targets]).to(out)
    powers = torch.cat([torch.full((len(spec.mean[t]),), float(spec.length_powers.get(t, 0)))
                        for t in spec.targets]).to(out)
    batch = getattr(data, "batch", None)
    per_graph = torch.stack([data.length, data.amplitude], dim=1).to(out)     # (G, 2)
    per_node = per_graph[batch] if batch is not None else per_graph.expand(out.shape[0], 2)
    length, amplitude = per_node[:, :1], per_node[:, 1:]
    physical = (out * std + mean) * amplitude / length ** powers
    fixed = data.boundary_mask[:, None] & ~torch.isnan(data.dirichlet)
    return torch.where(fixed, torch.nan_to_num(data.dirichlet), physical)
