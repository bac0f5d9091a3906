"""Radius graphs built where the points are (CPU or GPU tensors), for models whose nodes move.

Particle models (GNS, GIOROM) rebuild their radius graph at every step. On the CPU scipy's
``cKDTree`` (:func:`meshop.geometry.neighbors.radius_graph`) is the fastest way; on a GPU a
round trip to the host and back each step is what costs, so :func:`radius_graph_on_device`
builds the same graph from the tensors themselves with a cell list: points binned into cells of
side ``r``, sorted by cell, and every point's candidates read from the 3^d cells around its own
by binary search in the sorted cell keys — every operation a torch kernel, no Python loop over
points. Written here because torch has no radius search of its own, and torch-cluster (which
has one) builds from source only (an optional extra).

The edges are those of :func:`~meshop.geometry.neighbors.radius_graph`: ``j -> i`` for every
pair at distance ``<= r``, both directions, no self loops, sorted by target then source — the
same edge index to the last pair in float64; in float32 a pair within rounding of ``r`` may fall
on the other side.

:func:`nearest_on_device` is the k-nearest search of GIOROM's decoder (queries among ~1,000
sparse nodes, every step) on the device: all query-node distances of a chunk of queries and their
``k`` smallest, the ids cKDTree gives.
"""

from __future__ import annotations

import itertools

import torch

from ..errors import MeshError


def radius_graph_on_device(points: torch.Tensor, radius: float, scene: torch.Tensor | None = None,
                           max_candidates: int = 2 ** 24) -> torch.Tensor:
    """``(2, E)`` int64 edges, on ``points``' device, between points at distance ``<= radius``.

    Args:
        points: ``(N, d)`` coordinates, any device and float dtype.
        radius: search radius > 0, in the units of ``points``.
        scene: ``(N,)`` int64 scene id per point; points of different scenes are never linked
            (a batch of several scenes). None: one scene.
        max_candidates: candidate pairs examined at once (bounds the memory: ~40 bytes each).

    Returns:
        edge index ``(2, E)`` (row 0 source, row 1 target), sorted by target then source.
    """
    if not (radius > 0 and radius < float("inf")):
        raise MeshError(f"radius must be a positive finite number; got {radius}.")
    n, dim = points.shape
    device = points.device
    if n < 2:
        return torch.zeros((2, 0), dtype=torch.long, device=device)
    scene = torch.zeros(n, dtype=torch.long, device=device) if scene is None else scene.to(device, torch.long)
    if not bool(torch.isfinite(points).all()):
        raise MeshError("radius graph: some points have NaN or infinite coordinates (a diverged rollout?).")
    # cells of side r, shifted by one so that the neighbour cells (-1..+1) of every point exist;
    # the scene id is the slowest-varying coordinate, so no neighbour cell crosses scenes
    scaled = (points - points.min(dim=0).values) / radius
    extents = scaled.max(dim=0).values.tolist()
    strides = _strides([int(scene.max()) + 1] + [int(extent) + 3 for extent in extents], device)
    cells = torch.floor(scaled).long() + 1
    keys, order = torch.sort((cells * strides[1:]).sum(dim=1) + scene * strides[0])   # no integer matmul on CUDA
    ordered = points[order]                 # points sorted by cell: neighbours sit close in memory
    sources, targets = [], []
    for offset in _half_offsets(dim):
        neighbour = keys + int((torch.as_tensor(offset, device=device) * strides[1:]).sum())
        start = torch.searchsorted(keys, neighbour, side="left")
        count = torch.searchsorted(keys, neighbour, side="right") - start
        for source, target in _pairs_within(ordered, start, count, radius, max_candidates):
            if not any(offset):             # the own cell: each pair once
                source, target = source[source < target], target[source < target]
            sources.append(order[source])
            targets.append(order[target])
    source, target = torch.cat(sources), torch.cat(targets)
    key = torch.sort(torch.cat([target * n + source, source * n + target])).values   # both ways, by target
    return torch.stack([key % n, key // n])


def _half_offsets(dim: int) -> list[tuple[int, ...]]:
    """The own cell and half of its neighbour cells: of every pair of opposite offsets ``o`` and
    ``-o`` only the lexicographically positive one (the other finds the same pairs reversed)."""
    return [o for o in itertools.product((-1, 0, 1), repeat=dim) if o >= (0,) * dim]


def _strides(sizes: list[int], device) -> torch.Tensor:
    """``(d + 1,)`` int64 strides of the (scene, cell...) grid of ``sizes``, scene first; refused
    when the keys would not fit an int64 (a radius tiny against the cloud's extent)."""
    total = 1.0
    for size in sizes:
        total *= float(size)
    if total >= 2.0 ** 62:
        raise MeshError(f"radius graph: a radius of this size against the cloud's extent makes "
                        f"{total:.3g} cells, too many to index; raise the radius.")
    strides = [1]
    for size in reversed(sizes[1:]):
        strides.insert(0, strides[0] * size)
    return torch.as_tensor(strides, dtype=torch.long, device=device)


def _pairs_within(points, start, count, radius: float, max_candidates: int) -> list[tuple]:
    """``[(source, target), ...]``: for every point ``i`` the points ``start_i : start_i +
    count_i`` at distance ``<= radius``, other than ``i`` itself; in blocks of points whose
    candidates number at most ``max_candidates``."""
    out, total = [], torch.cumsum(count, 0)
    first = 0
    while first < len(count):
        budget = (total[first - 1] if first else 0) + max_candidates
        last = min(max(first + 1, int(torch.searchsorted(total, budget, side="right"))), len(count))
        counts = count[first:last]
        target = torch.repeat_interleave(torch.arange(first, last, device=points.device), counts)
        within = torch.arange(len(target), device=points.device) - \
            torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        source = start[target] + within
        near = ((points[source] - points[target]) ** 2).sum(dim=1) <= radius ** 2
        near &= source != target
        out.append((source[near], target[near]))
        first = last
    return out


def nearest_on_device(queries: torch.Tensor, nodes: torch.Tensor, k: int, chunk: int | None = None) -> torch.Tensor:
    """``(M, k)`` int64 ids of the ``k`` nodes nearest to each query, nearest first, on the
    queries' device: distances of ``chunk`` queries to all ``nodes (S, d)`` in float64 (the
    differences squared and summed, as cKDTree does on the same coordinates) and ``torch.topk``
    of them. Brute force, M x S distances: meant for a few thousand nodes (GIOROM's sparse graph),
    where a GPU does them faster than a tree search on the host and the host round trip; k <= S.
    ``chunk`` (default: 2^25 / (S d) queries, 256 MB of differences) bounds the memory.

    The differences are broadcast elementwise kernels: ``torch.cdist`` without its matrix-product
    shortcut took 14 ms for 10k queries among 1,000 nodes on an H200, most of a GIOROM step."""
    if not 1 <= k <= len(nodes):
        raise MeshError(f"k = {k} nearest nodes asked for among {len(nodes)}.")
    if not (torch.isfinite(queries).all() and torch.isfinite(nodes).all()):
        raise MeshError("the query points or the nodes hold NaN or infinite coordinates.")
    nodes = nodes.to(queries.device, torch.float64)
    chunk = chunk or max(1, 2 ** 25 // nodes.numel())
    ids = [torch.topk(((rows.to(torch.float64)[:, None, :] - nodes[None]) ** 2).sum(dim=2),
                      k, dim=1, largest=False, sorted=True).indices
           for rows in torch.split(queries, chunk)]
    return torch.cat(ids) if ids else torch.zeros((0, k), dtype=torch.long, device=queries.device)
