"""A graph's edges as the kernel layers see them: their index and embedding, whole or in chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

#: edges embedded and summed at a time when a kernel layer runs without autograd: peak memory of a
#: layer is then about ``EDGE_CHUNK * (hidden + 3 * width) * 4`` bytes (~0.7 GB at 1M edges)
EDGE_CHUNK = 1 << 20


class Edges:
    """Edges ``j -> i`` of one graph (or one bipartite graph between two node sets).

    ``index (2, E)``: row 0 source ids, row 1 target ids. ``embed(index_chunk) -> (e, hidden)``
    computes the edge embedding of any subset of the edges (see :meth:`EdgeEmbedding.bind`).
    ``chunk``: edges per chunk (default :data:`EDGE_CHUNK`).

    With autograd on (training), or with at most ``chunk`` edges, :meth:`chunks` yields the whole
    edge set once, embedded once and reused by every layer. With autograd off and more edges
    (inference on a big mesh), it yields ``chunk`` edges at a time, embedding them on the fly: the
    layers then sum their messages chunk by chunk, which gives the same result (up to the order of
    floating-point additions) while holding only ``chunk`` edges' worth of messages in memory.
    """

    def __init__(self, index: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor], n_targets: int,
                 chunk: int | None = None):
        chunk = EDGE_CHUNK if chunk is None else chunk
        self.index, self.n_targets = index, n_targets
        self._embed = embed
        self.chunk = None if torch.is_grad_enabled() or index.shape[1] <= chunk else chunk
        self._whole: torch.Tensor | None = None
        self._degree: torch.Tensor | None = None

    @property
    def degree(self) -> torch.Tensor:
        """``(n_targets, 1)`` in-degree of each target node, at least 1 (for a mean)."""
        if self._degree is None:
            count = torch.bincount(self.index[1], minlength=self.n_targets).clamp(min=1)
            self._degree = count.unsqueeze(1).to(torch.get_default_dtype())
        return self._degree

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(index (2, e), embedding (e, hidden))`` pairs covering every edge once."""
        if self.chunk is None:
            if self._whole is None:
                self._whole = self._embed(self.index)
            yield self.index, self._whole
            return
        for start in range(0, self.index.shape[1], self.chunk):
            index = self.index[:, start:start + self.chunk]
            yield index, self._embed(index)


def kernel_mean(edges: Edges, propagate) -> torch.Tensor:
    """``(n_targets, width)``: the mean over each target's in-edges of the messages that
    ``propagate(index, embedding)`` sums (a PyG ``propagate`` with ``aggr="sum"``), accumulated
    chunk by chunk over :meth:`Edges.chunks`."""
    total = None
    for index, embedding in edges.chunks():
        part = propagate(index, embedding)
        total = part if total is None else total + part
    return total / edges.degree
