"""DMM: the data-free mesh mover (Hu et al., ICLR 2024), on any 2D triangle mesh.

A graph branch (kernel integrals over the mesh edges) reads the field's gradient magnitude on
the mesh; a coordinate trunk conditioned on it gives a potential φ(ξ); nodes move to
x = ξ + ∇φ(ξ) (autograd). Training needs no optimal meshes: :func:`monge_ampere_step` is the
Monge–Ampère residual ``m(x) det(I + H(φ)) - θ`` plus a convexity penalty, the no-normal-motion
boundary condition and the discrete equidistribution of the moved cells. On output boundary
nodes slide along their boundary chains and the whole move shrinks while a cell would tangle
(:func:`meshop.geometry.moving.safe_move` with ``shrink``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MeshError
from ..geometry.monitor import BETA, P1Locator, cell_gradients, recover_to_nodes
from ..geometry.moving import BoundarySlider, MeshQuality, safe_move, signed_areas
from ..geometry.neighbors import mesh_edges
from ..nn import MLP, EdgeEmbedding, Edges, KernelIntegral
from ..nn.monge_ampere import cell_equidistribution, convexity_penalty, monge_ampere_residual, p1_at
from ..nn.heat_potential import WIDTHS, PotentialGrids, heat_potential, potential_grids
from .base import NeuralOperator

#: octaves of the Fourier features of the node positions in the node features
FEATURE_OCTAVES = 2
#: node features of :func:`prepare`: |∇u| ratio, boundary flag, γ(ξ), |∇u| ratio × γ(ξ)
FEATURES = 2 + 8 * FEATURE_OCTAVES
#: while the learned move would tangle the mesh, all of it shrinks by this factor per round (a
#: uniform back-off keeps the map's shape; halving it only around the tangle left a kink that
#: squeezed the cells there: on the one benchmark mesh where the bundled mover backs off, its
#: interpolation error went from 1.09x to 0.60x the original mesh's, min angle 0.2 -> 9.4 deg)
SHRINK = 0.8
#: weights of the loss terms of :func:`monge_ampere_step`
LOSS_WEIGHTS = {"monge_ampere": 1.0, "convexity": 1.0, "boundary": 10.0, "cells": 1.0}


@dataclass
class MoverSample:
    """One triangle mesh and field, prepared for the mover. Coordinates are normalized:
    ``pos = (points - centre) / scale`` fits [-1, 1]². Tensors are float32 unless noted.

    Attributes:
        points ``(N, 2)``, triangles ``(M, 3)``: the original mesh (numpy).
        pos ``(N, 2)``; features ``(N, FEATURES)``: g = |∇u| recovered / its mean, boundary
        flag, Fourier features γ(pos) = sin, cos(2^k π pos), and g γ(pos) (whose area-weighted
        mean is the monitor's Fourier coefficients: where the fronts are);
        edge_index ``(2, E)`` int64 mesh edges; monitor ``(N,)`` m at the nodes;
        weights ``(N,)`` lumped nodal areas (normalized, sum 1); tangents ``(N, 2)`` boundary
        tangents (0 at corners and interior nodes); boundary ``(N,)`` bool; cells ``(M, 3)`` int64.
        slider, locator: boundary projection and point location on the original mesh (the
        locator is built by the first training step that needs it).
        grids: where the potential's Gaussians sit, per scale; area: |Ω| (normalized units).
    """

    points: np.ndarray
    triangles: np.ndarray
    centre: np.ndarray
    scale: float
    pos: torch.Tensor
    features: torch.Tensor
    edge_index: torch.Tensor
    monitor: torch.Tensor
    weights: torch.Tensor
    tangents: torch.Tensor
    boundary: torch.Tensor
    cells: torch.Tensor
    slider: BoundarySlider
    locator: P1Locator | None
    grids: PotentialGrids
    area: float

    def to_original(self, x: np.ndarray) -> np.ndarray:
        return self.centre + self.scale * x


def prepare(points: np.ndarray, triangles: np.ndarray, u: np.ndarray, beta: float = BETA) -> MoverSample:
    """A :class:`MoverSample` for nodal field ``u (N,)`` or ``(N, c)`` on a 2D triangle mesh."""
    points, triangles = np.asarray(points, dtype=np.float64), np.asarray(triangles, dtype=np.int64)
    lower, upper = points.min(0), points.max(0)
    centre, scale = 0.5 * (lower + upper), 0.5 * float((upper - lower).max())
    norm = np.linalg.norm(cell_gradients(points, triangles, u).reshape(len(triangles), -1), axis=1)
    area = np.abs(signed_areas(points, triangles))
    recovered = recover_to_nodes(points, triangles, norm) / max(float((norm * area).sum() / area.sum()), 1e-300)
    slider = BoundarySlider(points, triangles)
    nodal_area = np.zeros(len(points))
    for k in range(3):
        np.add.at(nodal_area, triangles[:, k], area / 3.0)

    def tensor(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)
    return MoverSample(
        points, triangles, centre, scale, tensor((points - centre) / scale),
        tensor(_node_features((points - centre) / scale, recovered, slider.boundary)),
        tensor(mesh_edges(_Cells({"triangle": triangles}, len(points))), torch.int64),
        tensor(1.0 + recovered / beta), tensor(nodal_area / nodal_area.sum()),     # the monitor m
        tensor(slider.tangents), tensor(slider.boundary, torch.bool), tensor(triangles, torch.int64),
        slider, None, potential_grids((points - centre) / scale),
        float(area.sum()) / scale ** 2)


@dataclass
class _Cells:
    """What :func:`~meshop.geometry.neighbors.mesh_edges` reads of a mesh (a :class:`Mesh` would
    check the points again)."""

    cells: dict
    n_points: int


def _node_features(pos: np.ndarray, ratio: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """``(N, FEATURES)``, see :class:`MoverSample`."""
    angles = (pos[:, :, None] * np.pi * 2.0 ** np.arange(FEATURE_OCTAVES)).reshape(len(pos), -1)
    fourier = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return np.column_stack([ratio, boundary.astype(np.float64), fourier, ratio[:, None] * fourier])


class DMM(NeuralOperator):
    r"""Data-free mesh mover: :math:`x = \xi + \nabla_\xi \phi(\xi)` with
    :math:`\phi = \sum_s \frac{\sigma_s^2}{2} G_{\sigma_s} * \rho_s`, a multi-scale heat-kernel
    approximation of :math:`-\Delta^{-1}\rho` (:func:`~meshop.nn.heat_potential.heat_potential`;
    the linearized Monge–Ampère equation is :math:`\Delta\phi = \theta / m - 1`). The sources
    :math:`\rho_s` are per node: a head on ``layers`` kernel integrals over the mesh edges of the
    node features of :func:`prepare`, beside the area-weighted mean of those states (the global
    context, e.g. θ). φ is then a smooth function of ξ whose exact gradient and Hessian the
    nodes follow, and a front moves the nodes near it wherever it lies on the domain.
    Untrained, it is the identity. Coordinates are the normalized ``pos`` of the sample.

    Args:
        width: node-state channels of the graph branch; layers: kernel integrals.
        kernel_width: edge-embedding width; length_unit: edge length unit (normalized coordinates).
        head_width: hidden width of the source head.
        beta: monitor parameter β the mover was trained with.
    """

    uses_mesh_graph = True
    mesh_mover = True

    def __init__(self, in_channels: int = FEATURES, out_channels: int = 1, dim: int = 2, width: int = 32,
                 layers: int = 4, kernel_width: int = 32, length_unit: float = 0.05,
                 head_width: int = 64, beta: float = BETA):
        super().__init__(in_channels, out_channels, dim, width=width, layers=layers,
                         kernel_width=kernel_width, length_unit=length_unit, head_width=head_width, beta=beta)
        self.length_unit, self.beta = length_unit, beta
        self.lift = MLP([in_channels, width, width])
        self.edges = EdgeEmbedding(dim, in_channels, kernel_width)
        self.integrals = torch.nn.ModuleList(KernelIntegral(width, kernel_width) for _ in range(layers))
        self.sources = MLP([2 * width, head_width, head_width, len(WIDTHS)])
        torch.nn.init.zeros_(self.sources[-1].weight)
        torch.nn.init.zeros_(self.sources[-1].bias)

    def forward(self, sample: MoverSample, hessian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``∇φ (N, 2)`` and ``H(φ) (N, 2, 2)`` at the nodes (normalized coordinates)."""
        if not isinstance(sample, MoverSample):
            raise MeshError("dmm is a mesh mover: it takes a MoverSample from meshop.models.dmm.prepare "
                            "and trains with monge_ampere_step, not on a dataset of solved fields.")
        edges = Edges(sample.edge_index, self.edges.bind(sample.pos, sample.features, self.length_unit),
                      len(sample.pos))
        state = self.lift(sample.features)
        for integral in self.integrals:
            state = integral(state, edges)
        mean = (sample.weights[:, None] * state).sum(0)                 # area-weighted
        sources = self.sources(torch.cat([state, mean.expand(len(state), -1)], dim=1))
        _, gradient, hess = heat_potential(sample.pos, sample.grids, sources, sample.weights, sample.area,
                                           hessian=hessian)
        return gradient, hess

    def move(self, sample: MoverSample) -> tuple[np.ndarray, MeshQuality]:
        """Moved node positions ``(N, 2)`` (original units) of a valid mesh, and its quality."""
        with torch.no_grad():
            gradient, _ = self(sample, hessian=False)
        displacement = tangential(gradient.detach(), sample).numpy().astype(np.float64)
        return safe_move(sample.points, sample.triangles, sample.points + sample.scale * displacement,
                         sample.slider, shrink=SHRINK)


def tangential(displacement: torch.Tensor, sample: MoverSample) -> torch.Tensor:
    """Displacements with no normal part on the boundary and none at corners (torch twin of
    :meth:`BoundarySlider.tangential`)."""
    along = (displacement * sample.tangents).sum(1, keepdim=True) * sample.tangents
    return torch.where(sample.boundary[:, None], along, displacement)


def monge_ampere_step(model: DMM, batch, weights: dict | None = None) -> tuple[torch.Tensor, dict]:
    """Data-free training step: ``(loss, logs)`` for one :class:`MoverSample` or a list of them.

    Terms (weights :data:`LOSS_WEIGHTS`): ``monge_ampere`` the relative residual of
    ``m(x) det(I + H) = θ`` at the nodes; ``convexity`` negative eigenvalues of I + H;
    ``boundary`` (∇φ·n)² at boundary nodes and |∇φ|² at corners, in units of the mean |∇φ|²
    floor 1e-4; ``cells`` the spread of m × area over the moved cells.
    """
    weights = {**LOSS_WEIGHTS, **(weights or {})}
    samples = batch if isinstance(batch, (list, tuple)) else [batch]
    total, logs = 0.0, {name: 0.0 for name in weights}
    for sample in samples:
        terms = _loss_terms(model, sample)
        total = total + sum(weights[k] * v for k, v in terms.items()) / len(samples)
        for k, v in terms.items():
            logs[k] += float(v.detach()) / len(samples)
    logs["loss"] = float(total.detach())
    return total, logs


def _loss_terms(model: DMM, sample: MoverSample) -> dict[str, torch.Tensor]:
    gradient, hessian = model(sample)
    x = sample.pos + tangential(gradient, sample)
    m = _monitor_at(sample, x)
    residual, _ = monge_ampere_residual(m, hessian, sample.weights)
    normal = torch.stack([-sample.tangents[:, 1], sample.tangents[:, 0]], dim=1)
    corner = sample.boundary & (sample.tangents.abs().sum(1) == 0)
    off_boundary = torch.where(corner, (gradient ** 2).sum(1), (gradient * normal).sum(1) ** 2)[sample.boundary]
    corners = x[sample.cells]                                               # (M, 3, 2)
    moved_areas = 0.5 * ((corners[:, 1, 0] - corners[:, 0, 0]) * (corners[:, 2, 1] - corners[:, 0, 1])
                         - (corners[:, 1, 1] - corners[:, 0, 1]) * (corners[:, 2, 0] - corners[:, 0, 0]))
    return {"monge_ampere": residual, "convexity": convexity_penalty(hessian, sample.weights),
            "boundary": off_boundary.mean() / (gradient.detach() ** 2).sum(1).mean().clamp(min=1e-4),
            "cells": cell_equidistribution(_monitor_at(sample, corners.mean(1)), moved_areas.abs())}


def _monitor_at(sample: MoverSample, x: torch.Tensor) -> torch.Tensor:
    """``(n,)`` the monitor (P1 on the original mesh) at normalized points ``x (n, 2)``,
    differentiable in x: the cells are found without autograd, the barycentric weights with it."""
    if sample.locator is None:
        sample.locator = P1Locator(sample.points, sample.triangles)
    cells, _ = sample.locator.locate(sample.to_original(x.detach().numpy().astype(np.float64)))
    corner_ids = sample.cells[torch.as_tensor(cells)]
    return p1_at(sample.pos[corner_ids], sample.monitor[corner_ids], x)
