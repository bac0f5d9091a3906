"""Physics-graph attention: nodes softly pooled into learned tokens that attend to each other."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import to_dense_batch


class PhysicsAttention(nn.Module):
    r"""Soft assignment of the nodes of each graph to ``tokens`` learned slices, attention among
    the slice tokens, and broadcast back (the physics graph of AMG; Transolver's physics attention):

    .. math::
        w_i = \mathrm{softmax}(S h_i) \in \Delta^{M}, \quad
        z_m = \frac{\sum_i w_{im} V h_i}{\sum_i w_{im}}, \quad
        z' = z + \mathrm{MHA}(\mathrm{LN}(z)), \quad
        \Delta h_i = O \sum_m w_{im} z'_m

    sums over the nodes of one graph. The pooled tokens are weighted means, so they do not depend
    on the mesh resolution; attention among M tokens costs O(M²) per graph and the pooling
    O(N M width). Graphs of a batch are padded to the largest (``to_dense_batch``) and handled by
    batched matrix products: no loop over graphs, and memory O(B N_max (M + width)) rather than
    the O(N M width) of a scatter of per-node outer products.

    Shapes: ``h (N, width)``, ``batch (N,)`` sorted graph ids, ``size`` = B -> ``(N, width)``.
    """

    def __init__(self, width: int, tokens: int = 16, heads: int = 4):
        super().__init__()
        self.assign = nn.Linear(width, tokens)
        self.value = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.out = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
        weights = torch.softmax(self.assign(h), dim=1)                   # (N, M)
        dense_w, real = to_dense_batch(weights, batch, batch_size=size)  # (B, Nmax, M), padding 0
        dense_v, _ = to_dense_batch(self.value(h), batch, batch_size=size)  # (B, Nmax, width)
        mass = dense_w.sum(dim=1).clamp_min(1e-6).unsqueeze(2)           # (B, M, 1)
        z = dense_w.transpose(1, 2) @ dense_v / mass                     # (B, M, width)
        q = self.norm(z)
        z = z + self.attention(q, q, q, need_weights=False)[0]
        broadcast = dense_w @ z                                          # (B, Nmax, width)
        return self.out(broadcast[real])                                 # (N, width)
