"""What every meshop model is: a module over a PyG graph returning per-node fields."""

from __future__ import annotations

from torch import nn


class NeuralOperator(nn.Module):
    """Base class of meshop models.

    Subclasses take ``(in_channels, out_channels, dim, **hyper_parameters)``, store the
    hyper-parameters in ``self.config`` (saved in checkpoints), and implement ``forward(data)``
    returning ``(N, out_channels)`` in normalized units.

    Class attributes:
        receptive_hops: message-passing hops from which a node's output depends (None when the
            model has a global component); partitioned prediction uses it to size halos.
        uses_mesh_graph: the model reads ``data.edge_index``, the neighbour graph on the mesh
            nodes built from the checkpoint's graph settings; when False, it is not built.
        queryable: the model can be evaluated at arbitrary query points.
        time_dependent: the model offers ``rollout(state, steps)``; on fixed nodes it is a
            :class:`~meshop.models.stepper.TimeStepper` (its hooks feed it the mesh and each window).
        particles: the model simulates moving particles (GNS, GIOROM): it trains on particle
            trajectory datasets (:mod:`meshop.training.particles`).
        mesh_mover: the model moves mesh nodes (DMM): it trains with the Monge–Ampère step on
            any dataset's fields (:mod:`meshop.training.mover`).
    """

    receptive_hops: int | None = None
    uses_mesh_graph: bool = True
    queryable: bool = False
    time_dependent: bool = False
    particles: bool = False
    mesh_mover: bool = False

    def __init__(self, in_channels: int, out_channels: int, dim: int, **config):
        super().__init__()
        self.in_channels, self.out_channels, self.dim = in_channels, out_channels, dim
        self.config = dict(config)

    def transforms(self) -> list:
        """The graph-building transforms (:mod:`meshop.models.transforms`, PyG style) that add
        the structures the model reads (hierarchy levels, boundary sets, ...) to single-mesh node
        data. Default: none."""
        return []

    def prepare(self, data):
        """``data`` through :meth:`transforms`, composed; called once per mesh, before batching
        (and again on moved nodes, to rebuild their graphs)."""
        from .transforms import Compose

        return Compose(self.transforms())(data)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
