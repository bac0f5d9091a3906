"""BENO: the boundary-embedded neural operator (Wang et al., ICLR 2024) on arbitrary meshes."""

from __future__ import annotations

import torch
from torch import nn

from ..graph import geometry_feature_count
from ..nn import MLP, BoundaryEncoder, EdgeEmbedding, KernelIntegral
from .base import NeuralOperator
from .multilevel import as_multilevel, farthest_subset, graph_edge_scale, node_batch, num_graphs, set_batch


class BENO(NeuralOperator):
    r"""Boundary-embedded neural operator for elliptic problems :math:`Lu = f` in Ω, :math:`u = g`
    on ∂Ω, built on Green's-function superposition :math:`u = G_Ω[f, 0] + G_Ω[0, g]`:

    .. math::
        u = Q_1\big(\Phi_1(a_{f}; e_0)\big) + Q_2\big(\Phi_2(a_{g}; e_g)\big)

    * :math:`a_f`: the node features with the boundary-value input zeroed (branch 1 sees the
      source, not the boundary values); :math:`a_g`: the source input zeroed (branch 2 sees the
      boundary values, not the source). Other inputs (coefficients) and the geometry features
      (position, distance to the real boundary, boundary flag and normal) reach both branches.
      Inputs are normalized, so zeroing a column is the same as the branch not having it.
    * :math:`e_g = \mathrm{BoundaryEncoder}(\{x_k, n_k, g_k\})`: a Transformer over the boundary
      nodes of each graph (position, outward normal, boundary value), mean-pooled into one
      vector (:class:`~meshop.nn.BoundaryEncoder`); :math:`e_0` encodes the same nodes with the
      values zeroed. It depends on the boundary as a set, not on node order.
    * :math:`\Phi_b`: ``layers`` GNO kernel integrals (:class:`~meshop.nn.KernelIntegral`), each
      followed by FiLM conditioning on the branch's boundary vector,
      :math:`v \leftarrow v \odot (1 + \gamma(e)) + \beta(e)`.

    The published model runs on axis-aligned grids only; here boundary nodes, normals and
    distances come from the real mesh, so any domain works.

    Args:
        width, layers, kernel_width: per-branch GNO width, depth and edge-embedding width.
        d_model, heads, encoder_layers: boundary Transformer size.
        source_input: position of the source field among the model's input fields
            (``FieldSpec.inputs`` order), or None when the problem has no source input.
        boundary_input: position of the boundary-value field, or None for homogeneous boundary
            values. Defaults fit ``poisson2d`` ([source, boundary_value]) and ``heat3d``
            ([source, boundary_temperature]).
        max_boundary_tokens: at most this many boundary nodes enter the Transformer, a
            farthest-point subset that does not depend on node order; attention then costs at most
            ``max_boundary_tokens**2`` per graph however fine the mesh.

    Graph needs (added by :meth:`prepare`): ``boundary_nodes``, the mesh-node ids of the tokens.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, width: int = 48,
                 layers: int = 4, kernel_width: int = 32, d_model: int = 48, heads: int = 4,
                 encoder_layers: int = 2, source_input: int | None = 0,
                 boundary_input: int | None = 1, max_boundary_tokens: int = 256):
        super().__init__(in_channels, out_channels, dim, width=width, layers=layers,
                         kernel_width=kernel_width, d_model=d_model, heads=heads,
                         encoder_layers=encoder_layers, source_input=source_input,
                         boundary_input=boundary_input, max_boundary_tokens=max_boundary_tokens)
        geometry = geometry_feature_count(dim)
        n_inputs = in_channels - geometry
        for name, index in (("source_input", source_input), ("boundary_input", boundary_input)):
            if index is not None and not 0 <= index < n_inputs:
                raise ValueError(f"BENO {name}={index} is not an input field position: the data has "
                                 f"{n_inputs} input field(s); pass {name}=None if the problem has none.")
        if source_input is not None and source_input == boundary_input:
            raise ValueError(f"BENO source_input and boundary_input must differ; both are {source_input}.")
        if max_boundary_tokens < 1:
            raise ValueError(f"max_boundary_tokens must be >= 1; got {max_boundary_tokens}.")
        self.source_column = None if source_input is None else geometry + source_input
        self.boundary_column = None if boundary_input is None else geometry + boundary_input
        self.max_boundary_tokens = max_boundary_tokens
        token_channels = 2 * dim + (boundary_input is not None)        # position, normal, value
        self.boundary = BoundaryEncoder(token_channels, d_model, heads, encoder_layers)
        self.branches = nn.ModuleList(
            _Branch(in_channels, out_channels, dim, width, layers, kernel_width, d_model) for _ in range(2))

    def prepare(self, data):
        """Add ``boundary_nodes``: the boundary nodes, at most ``max_boundary_tokens`` of them."""
        data = as_multilevel(data)
        nodes = torch.nonzero(data.boundary_mask).flatten()
        if len(nodes) > self.max_boundary_tokens:
            subset = farthest_subset(data.pos[nodes].double().numpy(), self.max_boundary_tokens)
            nodes = nodes[torch.as_tensor(subset)].sort().values
        data.boundary_nodes = nodes
        return data

    def forward(self, data) -> torch.Tensor:
        batch, size = node_batch(data), num_graphs(data)
        scale = graph_edge_scale(data.pos, data.edge_index, batch, size)  # (E, 1)
        source_free = _zero_column(data.x, self.source_column)         # branch 2 input
        boundary_free = _zero_column(data.x, self.boundary_column)      # branch 1 input
        tokens = self._boundary_tokens(data)                            # (K, 2d [+1])
        token_batch = set_batch(data, "boundary")
        values_free = _zero_column(tokens, tokens.shape[1] - 1 if self.boundary_column is not None else None)
        zero_g = self.boundary(values_free, token_batch, size)          # (B, d_model)
        true_g = self.boundary(tokens, token_batch, size) if self.boundary_column is not None else zero_g
        out = self.branches[0](data.pos, boundary_free, data.edge_index, scale, zero_g, batch)
        return out + self.branches[1](data.pos, source_free, data.edge_index, scale, true_g, batch)

    def _boundary_tokens(self, data) -> torch.Tensor:
        nodes = data.boundary_nodes
        normal = data.x[nodes, self.dim + 2: 2 * self.dim + 2]
        columns = [data.pos[nodes], normal]
        if self.boundary_column is not None:
            columns.append(data.x[nodes, self.boundary_column: self.boundary_column + 1])
        return torch.cat(columns, dim=1)


class _Branch(nn.Module):
    """One BENO branch: lift, FiLM-conditioned GNO kernel integrals, project."""

    def __init__(self, in_channels: int, out_channels: int, dim: int, width: int, layers: int,
                 kernel_width: int, d_model: int):
        super().__init__()
        self.lift = MLP([in_channels, width, width])
        self.edges = EdgeEmbedding(dim, in_channels, kernel_width)
        self.integrals = nn.ModuleList(KernelIntegral(width, kernel_width) for _ in range(layers))
        self.films = nn.ModuleList(nn.Linear(d_model, 2 * width) for _ in range(layers))
        self.project = MLP([width, 2 * width, out_channels])

    def forward(self, pos, a, edge_index, scale, condition, batch) -> torch.Tensor:
        """``a (N, F)`` node features, ``condition (B, d_model)`` boundary vector per graph."""
        embedding = self.edges(pos, a, edge_index, scale)               # (E, kernel_width)
        v = self.lift(a)                                                # (N, width)
        for integral, film in zip(self.integrals, self.films):
            gamma, beta = film(condition)[batch].chunk(2, dim=1)          # (N, width) each
            v = integral(v, edge_index, embedding) * (1 + gamma) + beta
        return self.project(v)                                          # (N, out)


def _zero_column(x: torch.Tensor, column: int | None) -> torch.Tensor:
    """``x`` with ``column`` set to 0 (unchanged when ``column`` is None)."""
    if column is None:
        return x
    mask = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    mask[column] = 0
    return x * mask
