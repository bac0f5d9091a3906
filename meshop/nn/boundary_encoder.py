"""Transformer encoder of a domain's boundary nodes into one global vector (BENO)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import to_dense_batch


class BoundaryEncoder(nn.Module):
    r"""Encodes each graph's boundary nodes into one vector :math:`g \in R^{D}`:

    .. math::
        t_k = E\,[x_k, n_k, g(x_k)], \quad
        (t'_0, t'_1, \dots, t'_K) = \mathrm{Transformer}(t_\mathrm{dom}, t_1, \dots, t_K), \quad
        g = \frac{1}{K + 1} \sum_{k=0}^{K} t'_k

    per graph, with boundary positions :math:`x_k`, outward normals :math:`n_k`, boundary values
    :math:`g(x_k)` and a learned domain token :math:`t_\mathrm{dom}` (it keeps a graph without
    boundary nodes well defined). No positional encoding and a mean pool: the result does not
    depend on the order of the boundary nodes. Graphs of a batch have different numbers of
    boundary nodes; they are padded to the largest (``to_dense_batch``) and masked in attention
    and pooling.

    Shapes: ``features (K_total, in_channels)``, ``batch (K_total,)`` sorted graph ids,
    ``size`` = number of graphs B -> ``(B, d_model)``.
    """

    def __init__(self, in_channels: int, d_model: int = 48, heads: int = 4, layers: int = 2):
        super().__init__()
        self.embed = nn.Linear(in_channels, d_model)
        self.domain_token = nn.Parameter(torch.zeros(1, 1, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, features: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
        tokens, real = to_dense_batch(self.embed(features), batch, batch_size=size)  # (B, K, D), (B, K)
        tokens = torch.cat([self.domain_token.expand(size, 1, -1), tokens], dim=1)  # (B, K+1, D)
        real = torch.cat([real.new_ones(size, 1), real], dim=1)                      # (B, K+1)
        encoded = self.norm(self.encoder(tokens, src_key_padding_mask=~real))
        weights = real.unsqueeze(2).to(encoded.dtype)
        return (encoded * weights).sum(dim=1) / weights.sum(dim=1)                   # (B, D)
