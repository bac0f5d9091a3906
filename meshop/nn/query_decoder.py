"""GIOROM's decoder: a field known on sparse nodes evaluated at any query points, cheaply per query."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from .mlp import MLP

#: regularizes the inverse-distance weights at a query point that coincides with a node
_EPS = 1e-12
#: width (in units of the radius) of the gate that switches the learned correction off at the nodes
_GATE = 0.1
#: query points decoded at a time: the per-edge tensors of a chunk (4k x k x width floats, ~2 MB)
#: stay in the CPU's cache; 100k queries at once were 2-5x slower, chunks of 16k 1.2x on a quiet
#: machine and 2-4x with the other core busy (measured, same outputs)
CHUNK = 4096
#: the same on a GPU, where it is kernel launches that cost (25 chunks of 4k at 100k queries:
#: 19 ms a decode on an H200); 256k queries x k x width floats are ~130 MB there
DEVICE_CHUNK = 2 ** 18


@dataclass
class QueryStencil:
    """The ``k`` nearest sparse nodes of each query point and what every use of them needs:
    ``neighbors (M, k)`` node ids, ``offset (M, k, d)`` :math:`(y - x_j) / r`, ``distance2 (M, k, 1)``
    its squared norm, and normalized inverse-distance ``weights (M, k, 1)``."""

    neighbors: torch.Tensor
    offset: torch.Tensor
    distance2: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def build(cls, queries: torch.Tensor, nodes: torch.Tensor, k: int, radius: float) -> "QueryStencil":
        """The stencil of ``queries (M, d)`` among ``nodes (S, d)`` (m): one cKDTree query on
        every core for CPU tensors, a brute-force search on the device for others (a GPU)."""
        k = min(int(k), len(nodes))
        if queries.device.type == "cpu":
            neighbors = torch.as_tensor(_nearest(queries.detach().numpy(), nodes.detach().cpu().numpy(), k))
        else:
            from ..models.device_graphs import nearest_on_device

            neighbors = nearest_on_device(queries.detach(), nodes.detach(), k)
        offset = (queries[:, None, :] - gather(nodes, neighbors)) / radius
        distance2 = (offset ** 2).sum(dim=2, keepdim=True)
        weights = 1.0 / (distance2 + _EPS)
        return cls(neighbors, offset, distance2, weights / weights.sum(dim=1, keepdim=True))

    def __len__(self) -> int:
        return len(self.neighbors)

    def rows(self, start: int, stop: int) -> "QueryStencil":
        """The stencil of the queries ``start:stop``."""
        return QueryStencil(self.neighbors[start:stop], self.offset[start:stop], self.distance2[start:stop],
                            self.weights[start:stop])

    def interpolate(self, values: torch.Tensor) -> torch.Tensor:
        """``(M, c)`` Shepard interpolation of the node ``values (S, c)``."""
        return (self.weights * gather(values, self.neighbors)).sum(dim=1)


def _nearest(points: np.ndarray, nodes: np.ndarray, k: int) -> np.ndarray:
    """``(M, k)`` ids of the ``k`` ``nodes`` nearest to each of ``points``, nearest first (cKDTree,
    every core; pykdtree was measured in its place and not kept: benchmarks/lagrangian.table.md)."""
    if not np.isfinite(points).all():
        raise ValueError(f"query points must be finite: {int((~np.isfinite(points)).any(axis=1).sum())} of "
                         f"{len(points)} have NaN or infinite coordinates.")
    order = _cell_order(points, len(nodes))
    ids = np.empty((len(points), k), dtype=np.int64)
    ids[order] = cKDTree(nodes).query(points[order], k=k, workers=-1)[1].reshape(len(points), k)
    return ids


def _cell_order(points: np.ndarray, cells: int) -> np.ndarray:
    """An order of ``points (M, d)`` by cells of a grid of about ``cells`` cells over their
    bounding box: queries that follow it walk the k-d tree's leaves in turn (measured: 100k
    queries among 1,000 nodes 1.7x faster than in random order). Cell ids in 16 bits where they
    fit, which numpy's stable sort orders by radix: 0.7 instead of 6 ms for 100k points."""
    if len(points) == 0:
        return np.arange(0)
    columns = np.ascontiguousarray(points.T)                   # numpy reduces (M, 2) along M ~25x slower
    low, span = columns.min(axis=1), np.ptp(columns, axis=1)
    per_axis = max(1, int(round(cells ** (1 / points.shape[1]))))
    cell = np.minimum((points - low) / np.where(span > 0, span, 1.0) * per_axis, per_axis - 1).astype(np.int64)
    keys = np.ravel_multi_index(tuple(cell.T), (per_axis,) * points.shape[1])
    return np.argsort(keys.astype(np.int16) if per_axis ** points.shape[1] <= 2**15 else keys, kind="stable")


def gather(values: torch.Tensor, neighbors: torch.Tensor) -> torch.Tensor:
    """``(M, k, c)`` rows of ``values (S, c)`` at ``neighbors (M, k)`` (index_select on the flat
    ids: several times faster than advanced indexing with a 2D index on the CPU)."""
    return values.index_select(0, neighbors.reshape(-1)).view(*neighbors.shape, values.shape[1])


class QueryDecoder(nn.Module):
    r"""Evaluates a field known on sparse nodes :math:`x_j` (values :math:`u_j`, latents
    :math:`z_j`) at query points :math:`y` from the ``k`` nearest nodes of each query:

    .. math::
        u(y) = \sum_j w_j(y)\, u_j + g(y)\, D\Big(\frac{1}{k} \sum_j
               \kappa\big(\tfrac{y - x_j}{r}, \tfrac{|y - x_j|}{r}\big) \odot P z_j\Big)

    :math:`w_j` are normalized inverse-distance weights, the second term a kernel integral that
    learns what the interpolation misses, and :math:`g(y) = 1 - \exp(-d_{min}^2 / (0.1 r)^2)`
    switches it off at the nodes, so a query at a node returns that node's value. The cost is
    split where it is cheap: :math:`P` (an MLP, latent -> ``width``) runs once per sparse node,
    the kernel :math:`\kappa` (``dim + 1`` -> ``width`` -> ``width``) is the only work per
    query edge, and :math:`D` (``width`` -> ``width`` -> ``channels``) runs once per query.
    Queries are decoded :data:`CHUNK` at a time (:data:`DEVICE_CHUNK` on a GPU).

    Shapes: ``stencil`` of ``M`` queries, ``values (S, c)``, ``latent (S, L)`` -> ``(M, c)``.
    """

    def __init__(self, latent: int, channels: int, dim: int, width: int = 16):
        super().__init__()
        self.project = MLP([latent, latent, width])
        self.kernel = MLP([dim + 1, width, width])
        self.out = MLP([width, width, channels])

    def forward(self, stencil: QueryStencil, values: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        projected = self.project(latent)                                             # (S, width)
        chunk = CHUNK if values.device.type == "cpu" else DEVICE_CHUNK
        parts = [self.decode(stencil.rows(a, a + chunk), values, projected) for a in range(0, len(stencil), chunk)]
        return torch.cat(parts) if parts else values.new_zeros((0, values.shape[1]))

    def decode(self, stencil: QueryStencil, values: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """``(m, c)`` at the queries of ``stencil``, from the projected latents ``(S, width)``."""
        kernel = self.kernel(torch.cat([stencil.offset, stencil.distance2.sqrt()], dim=2))  # (m, k, width)
        correction = self.out((kernel * gather(projected, stencil.neighbors)).mean(dim=1))
        gate = 1.0 - torch.exp(-stencil.distance2.min(dim=1).values / _GATE ** 2)    # (M, 1)
        return stencil.interpolate(values) + gate * correction
