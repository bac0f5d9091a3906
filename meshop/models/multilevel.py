"""A mesh graph with extra node sets (coarse levels, boundary nodes, ...) that batches correctly.

Models whose ``prepare`` adds node subsets and graphs on them return a :class:`MultiLevelData`.
Two naming conventions are the whole contract:

=========================  ==========  ===============================================================
attribute                  shape       meaning
=========================  ==========  ===============================================================
``<set>_nodes``            ``(N_S,)``  mesh-node ids of node set ``<set>`` (e.g. ``level1_nodes``)
``<set>_edges``            ``(2, E)``  graph within ``<set>``, set-local ids (positions in
                                       ``<set>_nodes``), row 0 source, row 1 target
``<src>_to_<dst>_edges``   ``(2, E)``  bipartite graph, row 0 local to ``<src>``, row 1 to ``<dst>``
=========================  ==========  ===============================================================

When PyG batches graphs, ``<set>_nodes`` is shifted by the number of mesh nodes of the graphs
before it and every ``*_edges`` row by the size of its node set in those graphs, so a batch of
any number of graphs of any sizes is again one valid :class:`MultiLevelData`. The graph of a set
node is ``batch[<set>_nodes]`` (:func:`set_batch`). Set names must not contain ``_to_``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import Data

from ..geometry.neighbors import nearest_ids

_NODES, _EDGES, _TO = "_nodes", "_edges", "_to_"


class MultiLevelData(Data):
    """:class:`torch_geometric.data.Data` with node sets and set-local edges (module docstring)."""

    def __inc__(self, key: str, value, *args, **kwargs):
        if key.endswith(_NODES):
            return self.num_nodes
        if key.endswith(_EDGES):
            name = key[: -len(_EDGES)]
            source, target = name.split(_TO) if _TO in name else (name, name)
            return torch.tensor([[self.set_size(source)], [self.set_size(target)]])
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value, *args, **kwargs):
        if key.endswith(_EDGES):
            return -1
        return super().__cat_dim__(key, value, *args, **kwargs)

    def set_size(self, name: str) -> int:
        """Number of nodes in set ``name`` (of this graph, or of the whole batch)."""
        nodes = getattr(self, name + _NODES, None)
        if nodes is None:
            raise KeyError(f"graph has no node set '{name}' (no attribute '{name}{_NODES}').")
        return nodes.numel()


def as_multilevel(data: Data) -> MultiLevelData:
    """``data`` as a :class:`MultiLevelData` (same tensors, no copy)."""
    if isinstance(data, MultiLevelData):
        return data
    return MultiLevelData(**{key: value for key, value in data})


def num_graphs(data) -> int:
    """Graphs in ``data``: 1 for a single graph, the batch size for a ``Batch``."""
    return int(data.num_graphs) if getattr(data, "batch", None) is not None else 1


def node_batch(data) -> torch.Tensor:
    """``(N,)`` graph id of every mesh node (zeros for a single graph)."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(data.num_nodes, dtype=torch.long, device=data.x.device)
    return batch


def set_batch(data, name: str) -> torch.Tensor:
    """``(N_S,)`` graph id of every node of set ``name``."""
    return node_batch(data)[getattr(data, name + _NODES)]


def farthest_subset(points: np.ndarray, n_samples: int) -> np.ndarray:
    """``(n_samples,)`` ids of a farthest-point sample of ``points (N, d)`` that does not depend
    on the order of the points: FPS runs on the points sorted by coordinates, starting at the
    smallest, so a permuted mesh selects the same points (ids are returned in pick order)."""
    from ..geometry.hierarchy import farthest_point_sampling

    order = coordinate_order(points)
    return order[farthest_point_sampling(points[order], int(n_samples))]


def coordinate_order(points: np.ndarray) -> np.ndarray:
    """``(N,)`` ids of ``points (N, d)`` sorted by x, then y, then z: an order that belongs to the
    point set, not to its numbering, so sampling that starts from it ignores node order."""
    return np.lexsort(points.T[::-1])


def knn_between(source: np.ndarray, target: np.ndarray, k: int, tie: float = 0.0) -> np.ndarray:
    """``(2, N_t * k)`` edges from each target point's ``k`` nearest source points (scipy cKDTree);
    row 0 indexes ``source``, row 1 ``target``. ``tie``: distances within it of the ``k``-th
    count as equal, the lowest source ids win (:func:`~meshop.geometry.neighbors.nearest_ids`)."""
    k = min(int(k), len(source))
    if tie > 0:
        nearest = nearest_ids(source, target, k, tie)
    else:
        _, nearest = cKDTree(source).query(target, k=k, workers=-1)
        nearest = nearest.reshape(len(target), k).astype(np.int64)
    return np.stack([nearest.ravel(), np.repeat(np.arange(len(target), dtype=np.int64), k)])


def add_hierarchy(data, levels: int, ratio: float, sampling: str, neighbors: int, transfer_k: int,
                  coarse_nodes: int | None = None):
    """``data`` (as :class:`MultiLevelData`) with a node hierarchy for V-cycles: ``level<l>_nodes``,
    ``level<l>_edges`` (kNN with ``neighbors``) and the transfer edges ``level<l>_to_level<l±1>_edges``
    (each fine node and its ``transfer_k`` nearest nodes of the next level); see
    :func:`meshop.geometry.hierarchy.hierarchy` for ``levels``, ``ratio``, ``sampling`` and
    ``coarse_nodes``."""
    from ..geometry.hierarchy import hierarchy
    from ..graph import POSITION_TIE

    data = as_multilevel(data)
    pos = data.pos.double().numpy()
    # built on the nodes sorted by coordinates, so farthest-point sampling starts at the same
    # point whatever the mesh's node order: a renumbered mesh gets the same prediction
    order = coordinate_order(pos)
    found = hierarchy(pos[order], levels, ratio, method=sampling, k=neighbors, finest_graph=False,
                      pooling=False, coarse_nodes=coarse_nodes, tie=POSITION_TIE)
    ids = [np.arange(len(pos))] + [order[level_ids] for level_ids in found.indices[1:]]
    data.level0_nodes = torch.arange(len(pos))
    for level in range(1, levels):
        fine, coarse = ids[level - 1], ids[level]
        up = knn_between(pos[coarse], pos[fine], transfer_k, POSITION_TIE)   # coarse -> fine
        data[f"level{level}_nodes"] = torch.as_tensor(coarse)
        data[f"level{level}_edges"] = torch.as_tensor(found.edges[level])
        data[f"level{level}_to_level{level - 1}_edges"] = torch.as_tensor(up)
        down = np.flip(up, 0)                                           # fine -> coarse,
        down = down[:, np.argsort(down[1], kind="stable")]               # sorted by target like the rest
        data[f"level{level - 1}_to_level{level}_edges"] = torch.as_tensor(down)
    return data
