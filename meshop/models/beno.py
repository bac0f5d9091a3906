"""BENO: the boundary-embedded neural operator (Wang et al., ICLR 2024) on arbitrary meshes."""

from __future__ import annotations

import torch
from torch import nn

from ..graph import layout_columns, positional_layout
from ..nn import MLP, BoundaryEncoder
from .base import NeuralOperator
from .mgno import MGNO
from .multilevel import num_graphs, set_batch
from .transforms import BoundaryTokens, Hierarchy
from .vcycle import VCycles


class BENO(NeuralOperator):
    r"""Boundary-embedded neural operator for elliptic problems :math:`Lu = f` in Ω, :math:`u = g`
    on ∂Ω, built on Green's-function superposition :math:`u = G_Ω[f, 0] + G_Ω[0, g]`:

    .. math::
        u = Q_1\big(\Phi_1(a_{f}; e_0)\big) + Q_2\big(\Phi_2(a_{g}; e_g)\big)

    * :math:`a_f`: the node features with the boundary-value columns zeroed (branch 1 sees the
      source, not the boundary values); :math:`a_g`: the source columns zeroed (branch 2 sees the
      boundary values, not the source). Other inputs (coefficients) and the geometry features
      (position, distance to the real boundary, boundary flag and normal) reach both branches.
      Inputs are normalized, so zeroing a column is the same as the branch not having it.
    * :math:`e_g = \mathrm{BoundaryEncoder}(\{x_k, n_k, g_k\})`: a Transformer over the boundary
      nodes of each graph (position, outward normal, boundary value), mean-pooled into one
      vector (:class:`~meshop.nn.BoundaryEncoder`); :math:`e_0` encodes the same nodes with the
      values zeroed. It depends on the boundary as a set, not on node order.
    * :math:`\Phi_b`: V-cycles (:class:`~meshop.models.vcycle.VCycles`, MGNO's processor:
      kernel integrals within and between the levels of a node hierarchy), every state update
      followed by FiLM conditioning on the branch's boundary vector. A Green's function couples
      every point of the domain to every other; the coarse levels carry that coupling at O(N)
      cost, where a single-level GNO of a few layers only sees a few mesh hops.
    * ``linear=True`` (default): a branch with signal columns is *linear in its signal*
      :math:`s_b` (the source, or the boundary values), as the Green's-function terms are, and
      nonlinear in the geometry and coefficients :math:`c` (the inputs with both signals zeroed):

      .. math::
          v_0 = \phi(c) \odot W s_b, \qquad
          v \leftarrow \mathrm{FiLM}_\gamma(K v) \text{ (no activation, no bias)}, \qquad
          Q_b(v) = R\,\big(v \odot \psi(c)\big) + r

      with kernels :math:`\kappa(h_{ij})` embedded from :math:`c` only, FiLM by a factor
      :math:`1 + \gamma(e)`, and a constant :math:`r` (the targets are normalized by subtracting
      their mean). Branch 1 is then exactly linear in f; branch 2 is linear in g given the
      boundary vector :math:`e_g`. ``linear=False``, or a branch without signal columns (e.g.
      ``darcy2d``, which has neither), uses nonlinear V-cycles as an MGNO with FiLM
      :math:`v \odot (1 + \gamma(e)) + \beta(e)` and MLP lift and projection. Measured on
      ``poisson2d`` in ``docs/benchmarks.md``.

    The published model runs on axis-aligned grids only; here boundary nodes, normals and
    distances come from the real mesh, so any domain works.

    Args:
        width, levels, ratio, cycles, kernel_width, neighbors, transfer_k, sampling: the
            per-branch V-cycles (see :class:`~meshop.models.mgno.MGNO`; both branches share the
            node hierarchy).
        linear: branches linear in their signal (see above).
        d_model, heads, encoder_layers: boundary Transformer size.
        source: names of the node features holding the source (:func:`meshop.graph.feature_layout`
            names, e.g. ``["source"]``); default ``["source"]`` when the data has an input of
            that name, else none.
        boundary: names of the features holding boundary values; the first is the value the
            boundary Transformer reads on boundary nodes. Default: every input holding a target's
            Dirichlet values with its carried-inward copy (``["g", "extended:g"]``); none for
            homogeneous boundary values. The defaults fit ``poisson2d``, ``heat3d`` and ``darcy2d``.
        features: the layout of ``Data.x`` (name -> columns) the model is built for; given by
            :func:`meshop.models.get` from the data or the checkpoint, not a hyper-parameter.
        max_boundary_tokens: at most this many boundary nodes enter the Transformer, a
            farthest-point subset that does not depend on node order; attention then costs at most
            ``max_boundary_tokens**2`` per graph however fine the mesh.
        length_unit: unit of the relative positions the kernels see, in bounding-box diagonals
            (as in :class:`~meshop.models.gno.GNO`).

    Graph needs (added by :meth:`prepare`): ``boundary_nodes``, the mesh-node ids of the tokens.
    """

    reads_features = True

    def __init__(self, in_channels: int, out_channels: int, dim: int, width: int = 48,
                 levels: int = 3, ratio: float = 4.0, cycles: int = 1, kernel_width: int = 32,
                 neighbors: int = 16, transfer_k: int = 4, sampling: str = "fps", linear: bool = True,
                 d_model: int = 48, heads: int = 4, encoder_layers: int = 2,
                 source: tuple[str, ...] | None = None, boundary: tuple[str, ...] | None = None,
                 max_boundary_tokens: int = 256, length_unit: float = 0.02, *, features: dict | None = None):
        cycle = dict(width=width, levels=levels, ratio=ratio, cycles=cycles, kernel_width=kernel_width,
                     neighbors=neighbors, transfer_k=transfer_k, sampling=sampling, length_unit=length_unit)
        super().__init__(in_channels, out_channels, dim, **cycle, linear=linear, d_model=d_model, heads=heads,
                         encoder_layers=encoder_layers, source=None if source is None else list(source),
                         boundary=None if boundary is None else list(boundary),
                         max_boundary_tokens=max_boundary_tokens)
        layout = features if features is not None else positional_layout(in_channels, dim)
        source, boundary = _signal_features(layout, source, boundary)
        if max_boundary_tokens < 1:
            raise ValueError(f"max_boundary_tokens must be >= 1; got {max_boundary_tokens}.")
        self.normal_columns = layout_columns(layout, ["normal"], "BENO")
        self.source_columns = layout_columns(layout, source, "BENO (source)")
        self.boundary_columns = layout_columns(layout, boundary, "BENO (boundary)")
        self.max_boundary_tokens = max_boundary_tokens
        token_channels = 2 * dim + bool(self.boundary_columns)          # position, normal, value
        self.boundary = BoundaryEncoder(token_channels, d_model, heads, encoder_layers)
        self.hierarchy = dict(levels=levels, ratio=ratio, sampling=sampling, neighbors=neighbors,
                              transfer_k=transfer_k)                   # shared by both branches
        self.branches = nn.ModuleList(
            _LinearBranch(in_channels, out_channels, dim, columns, cycle, d_model) if linear and columns
            else MGNO(in_channels, out_channels, dim, **cycle, condition_channels=d_model)
            for columns in (self.source_columns, self.boundary_columns))

    def transforms(self) -> list:
        """The branches' node hierarchy (as MGNO's) and ``boundary_nodes``: the boundary nodes,
        at most ``max_boundary_tokens`` of them."""
        return [Hierarchy(**self.hierarchy), BoundaryTokens(self.max_boundary_tokens)]

    def forward(self, data) -> torch.Tensor:
        size = num_graphs(data)
        source_free = _zero_columns(data.x, self.source_columns)       # branch 2 input
        boundary_free = _zero_columns(data.x, self.boundary_columns)    # branch 1 input
        tokens = self._boundary_tokens(data)                            # (K, 2d [+1])
        token_batch = set_batch(data, "boundary")
        values = [tokens.shape[1] - 1] if self.boundary_columns else []
        zero_g = self.boundary(_zero_columns(tokens, values), token_batch, size)  # (B, d_model)
        true_g = self.boundary(tokens, token_batch, size) if values else zero_g
        out = self.branches[0](data, x=boundary_free, condition=zero_g)
        return out + self.branches[1](data, x=source_free, condition=true_g)

    def _boundary_tokens(self, data) -> torch.Tensor:
        nodes = data.boundary_nodes
        normal = data.x[nodes][:, self.normal_columns]
        columns = [data.pos[nodes], normal]
        if self.boundary_columns:
            value = self.boundary_columns[0]
            columns.append(data.x[nodes, value: value + 1])
        return torch.cat(columns, dim=1)


class _LinearBranch(nn.Module):
    """A BENO branch linear in its signal columns, nonlinear in the other inputs (see BENO)."""

    def __init__(self, in_channels: int, out_channels: int, dim: int, signal_columns: list[int],
                 cycle: dict, condition_channels: int):
        super().__init__()
        width = cycle["width"]
        self.signal_columns = signal_columns
        self.lift_context = MLP([in_channels, width, width])
        self.lift_signal = nn.Linear(len(signal_columns), width, bias=False)
        self.processor = VCycles(dim, in_channels, width, cycle["levels"], cycle["ratio"], cycle["cycles"],
                                 cycle["kernel_width"], condition_channels=condition_channels, linear=True,
                                 length_unit=cycle["length_unit"])
        self.read_context = MLP([in_channels, width, width])
        self.readout = nn.Linear(width, out_channels)

    def forward(self, data, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``x (N, F)`` node features (the other branch's signal already zeroed) -> ``(N, out)``."""
        context = _zero_columns(x, self.signal_columns)                 # geometry, coefficients
        lifted = self.lift_context(context) * self.lift_signal(x[:, self.signal_columns])  # (N, width)
        v = self.processor(data, context, lifted, condition)            # linear in lifted
        return self.readout(v * self.read_context(context))             # (N, out)


def _zero_columns(x: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """``x`` with ``columns`` set to 0."""
    if not columns:
        return x
    mask = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    mask[columns] = 0
    return x * mask


def _signal_features(layout: dict, source, boundary) -> tuple[list[str], list[str]]:
    """The source and boundary-value feature names (defaults from ``layout``, see BENO);
    ``ValueError`` when a feature is both."""
    if source is None:
        source = ["source"] if "source" in layout else []
    if boundary is None:
        extended = [name for name in layout if name.startswith("extended:")]
        boundary = [name for e in extended for name in (e.removeprefix("extended:"), e)]
    shared = sorted(set(source) & set(boundary))
    if shared:
        raise ValueError(f"BENO source and boundary share feature(s) {shared}.")
    return list(source), list(boundary)
