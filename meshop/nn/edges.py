"""A graph's edges as the kernel layers see them: their index and embedding, whole or in chunks."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import torch

from .edge_features import BoundEmbedding

#: edges whose messages are summed at a time when a kernel layer runs without autograd: a layer's
#: per-edge temporaries then take about ``EDGE_CHUNK * 3 * width * 4`` bytes (~19 MB at width 48).
#: Small on purpose: glibc's malloc recycles blocks this size from its heap, while it maps fresh
#: pages for every larger one and page-faults on each, which made a 2^19-edge chunk 2x slower
#: (bundled model, 100k nodes, 2-core CPU: 3.9 s -> 1.8 s end to end)
EDGE_CHUNK = 1 << 15
#: without autograd, an edge set's embedding is kept for every layer while it has at most this
#: many numbers (256 MB); a bigger one is recomputed chunk by chunk in each layer (slower, bounded)
EMBEDDING_CACHE = 1 << 26
#: with autograd, edge sets above this many edges train through the recomputing kernel sum by
#: default; below, plain autograd on the whole set is faster and its memory small (GNO training
#: step, 1 thread, CPU s: 32k edges 0.09 plain vs 0.18 recomputing, 128k 0.42 vs 0.82; 480k
#: 4.1-6.0 vs 2.9-3.3 with peak memory 1.78 vs 0.64 GiB: big tensors page-fault on every step)
RECOMPUTE_EDGES = 1 << 18


class Edges:
    """Edges ``j -> i`` of one graph (or one bipartite graph between two node sets).

    ``index (2, E)``: row 0 source ids, row 1 target ids. ``embed(index_chunk) -> (e, hidden)``
    computes the edge embedding of any subset of the edges (see :meth:`EdgeEmbedding.bind`).
    ``chunk``: edges per chunk (default :data:`EDGE_CHUNK`). ``recompute``: train through the
    recomputing kernel sum (default: above :data:`RECOMPUTE_EDGES` edges).

    With autograd on (training), ``recompute`` and an embedding bound by
    :meth:`EdgeEmbedding.bind`, the kernel layers sum through :func:`meshop.nn.kernel_sum.kernel_sum` over :meth:`index_chunks` of
    target-sorted edges (:attr:`fused`), recomputing embeddings in the backward pass. With another
    embedding under autograd, or with at most ``chunk`` edges, :meth:`chunks` yields the whole
    edge set, embedded once and reused by every layer. With autograd off and more edges (inference
    on a big mesh) it yields ``chunk`` edges at a time and the layers sum their messages chunk by
    chunk: the same result (up to the order of floating-point additions) with only ``chunk``
    edges' worth of messages in memory. The embeddings are kept for the next layers while they
    fit :data:`EMBEDDING_CACHE`, and recomputed chunk by chunk otherwise.
    """

    def __init__(self, index: torch.Tensor, embed: Callable[..., torch.Tensor], n_targets: int,
                 chunk: int | None = None, recompute: bool | None = None):
        chunk = EDGE_CHUNK if chunk is None else chunk
        recompute = index.shape[1] > RECOMPUTE_EDGES if recompute is None else recompute
        #: training through the fused, recomputing kernel sum (:mod:`meshop.nn.kernel_sum`)
        self.fused = torch.is_grad_enabled() and isinstance(embed, BoundEmbedding) and recompute
        plain_autograd = torch.is_grad_enabled() and not self.fused
        self.chunk = None if plain_autograd or index.shape[1] <= chunk else chunk
        by_target = self.chunk is not None or self.fused                 # sums need sorted targets
        # a fixed degree implies target-sorted edges: then the sortedness pass is not needed
        self.fixed_degree = _fixed_degree(index[1], n_targets) if by_target else 0
        #: targets in order (always when chunked): sums are CSR segment sums, not scatters
        self.sorted = bool(self.fixed_degree) or not bool((index[1, 1:] < index[1, :-1]).any())
        if self.fixed_degree and self.chunk is not None:                # chunks of whole targets
            self.chunk = max(self.fixed_degree, self.chunk // self.fixed_degree * self.fixed_degree)
        elif by_target and not self.sorted:
            index = index[:, torch.argsort(index[1], stable=True)]     # chunks cover target ranges
            self.sorted = True
        self.index, self.n_targets = index, n_targets
        self.embedding = embed
        self._cached: list[torch.Tensor] | None = None
        self._degree: torch.Tensor | None = None

    @property
    def degree(self) -> torch.Tensor:
        """``(n_targets, 1)`` in-degree of each target node, at least 1 (for a mean)."""
        if self._degree is None:
            count = torch.bincount(self.index[1], minlength=self.n_targets).clamp(min=1)
            self._degree = count.unsqueeze(1).to(torch.get_default_dtype())
        return self._degree

    @property
    def mean_divisor(self) -> torch.Tensor | int:
        """What a sum over each target's in-edges is divided by for their mean: the fixed degree
        or :attr:`degree`."""
        return self.fixed_degree or self.degree

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, slice]]:
        """``(index (2, e), embedding (e, hidden), targets)`` covering every edge once: in each
        chunk, row 1 of ``index`` counts from ``targets.start``, the first target node it reaches
        (chunks of target-sorted edges reach a contiguous range of targets). With a
        :attr:`fixed_degree` ``k``, a chunk's edges are ``k`` per target of ``targets``, in order."""
        kept = []
        for number, (index, targets) in enumerate(self.index_chunks()):
            if self._cached is not None:
                embedding = self._cached[number]
            else:
                embedding = self.embedding(index, targets if self.fixed_degree else None)
                if self.chunk is None or self.index.shape[1] * embedding.shape[1] <= EMBEDDING_CACHE:
                    kept.append(embedding)
            yield local_index(index, targets), embedding, targets
        if kept:
            self._cached = kept

    def index_chunks(self) -> Iterator[tuple[torch.Tensor, slice]]:
        """``(index (2, e), targets)`` per chunk, target ids as in :attr:`index`, ``targets`` the
        range of target nodes the chunk reaches (the whole set when not chunked)."""
        if self.chunk is None:
            yield self.index, slice(0, self.n_targets)
            return
        for start in range(0, self.index.shape[1], self.chunk):
            index = self.index[:, start:start + self.chunk]
            yield index, slice(int(index[1, 0]), int(index[1, -1]) + 1)


def kernel_mean(edges: Edges, messages) -> torch.Tensor:
    """``(n_targets, width)``: the mean over each target's in-edges of ``messages(index,
    embedding) -> (e, width)``, summed chunk by chunk over :meth:`Edges.chunks` into the chunk's
    range of targets: ``k`` consecutive messages per target by a reshape (fixed degree),
    target-sorted ones by a CSR segment sum, others by ``index_add_``."""
    total = None
    for index, embedding, targets in edges.chunks():
        part = target_sums(edges, messages(index, embedding), index[1], targets)   # (e, width) -> (t, width)
        if total is None:
            total = part.new_zeros(edges.n_targets, part.shape[1])
        total[targets] += part
    return total / edges.mean_divisor


def local_index(index: torch.Tensor, targets: slice) -> torch.Tensor:
    """A chunk's ``index (2, e)`` with target ids counted from ``targets.start``."""
    return index if targets.start == 0 else torch.stack([index[0], index[1] - targets.start])


def target_sums(edges: Edges, values: torch.Tensor, local_target: torch.Tensor, targets: slice) -> torch.Tensor:
    """``(len(targets), c)`` sums per target of a chunk's ``values (e, c)``, ``local_target (e,)``
    counted from ``targets.start``: ``k`` consecutive rows per target by a reshape (fixed degree),
    target-sorted rows by a CSR segment sum, others by ``index_add_``."""
    n = targets.stop - targets.start
    if edges.fixed_degree:
        return values.view(n, edges.fixed_degree, -1).sum(dim=1)
    if edges.sorted:
        return _SortedSegmentSum.apply(values, local_target, n)
    return values.new_zeros(n, values.shape[1]).index_add_(0, local_target, values)


class _SortedSegmentSum(torch.autograd.Function):
    """``(n, c)`` sums of the rows of ``values (e, c)`` that share a target, for target-sorted
    ``target (e,)``: a CSR sparse-dense product (3x faster than ``index_add_`` on CPU, the same
    order of additions), whose backward is a gather. Hand-written: no PyTorch op is both."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
        ctx.save_for_backward(target)
        return segment_sum(values, target, n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (target,) = ctx.saved_tensors
        return grad.index_select(0, target), None, None


def _fixed_degree(target: torch.Tensor, n_targets: int) -> int:
    """``k`` when target-sorted edges reach every one of ``n_targets`` nodes exactly ``k`` times
    (kNN graphs, prolongation to each fine node from its ``k`` nearest coarse nodes), else 0."""
    if n_targets == 0 or len(target) % n_targets:
        return 0
    k = len(target) // n_targets
    expected = torch.arange(n_targets, device=target.device).repeat_interleave(k)
    return k if torch.equal(target, expected) else 0


def segment_sum(values: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, c)`` sums of the rows of ``values (e, c)`` per target, ``target (e,)`` sorted: a CSR
    sparse-dense product (no autograd; see :class:`_SortedSegmentSum`)."""
    count = torch.bincount(target, minlength=n)
    offsets = torch.zeros(n + 1, dtype=torch.int64, device=values.device)
    torch.cumsum(count, 0, out=offsets[1:])
    columns = torch.arange(len(target), device=values.device)
    with warnings.catch_warnings():                                     # "CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        rows = torch.sparse_csr_tensor(offsets, columns, values.new_ones(len(target)), size=(n, len(target)))
    return rows @ values
