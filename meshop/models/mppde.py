"""MP-PDE: a message-passing GNN time stepper on the fixed mesh (Brandstetter et al., ICLR 2022).

The baseline of the moving-mesh solver (:mod:`meshop.models.mmpde`): the state one frame ahead
is ``s + σ ⊙ F(a, s)`` (:class:`~meshop.models.stepper.TimeStepper`'s integrator and training),
with ``F`` an encoder, ``layers`` interaction-network layers whose messages see the relative
positions and the state differences along each edge, and a decoder. History: the current frame
only (the stepper machinery's windows), not MP-PDE's window of past frames.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import MLP, InteractionNetwork
from .base import NeuralOperator
from .coarse import CoarseProcessor, attach_coarse
from .stepper import TimeStepper


class MessagePassing(nn.Module):
    """Encoder, residual interaction-network layers on one node set, decoder pieces.

    Edge inputs: ``(pos_i - pos_j) / length_unit``, its norm and the state difference
    ``s_i - s_j``. Shapes: ``h (N, latent)``, ``pos (N, d)``, ``state (N, S)``,
    ``edge_index (2, E)`` -> ``(N, latent)``.
    """

    def __init__(self, latent: int, layers: int, dim: int, state_channels: int, length_unit: float):
        super().__init__()
        self.length_unit = length_unit
        self.edge_encoder = MLP([dim + 1 + state_channels, latent, latent])
        self.layers = nn.ModuleList(InteractionNetwork(latent) for _ in range(layers))

    def forward(self, h: torch.Tensor, pos: torch.Tensor, state: torch.Tensor, edge_index: torch.Tensor):
        source, target = edge_index
        offset = (pos[target] - pos[source]) / self.length_unit
        edges = self.edge_encoder(torch.cat([offset, offset.norm(dim=1, keepdim=True),
                                             state[target] - state[source]], dim=1))
        for layer in self.layers:
            h, edges = layer(h, edges, edge_index)
        return h


class MessagePassingProcessor(nn.Module):
    """``F(a, s)``: node encoder (of ``[a, s]`` and the wall flag of :func:`with_walls`),
    :class:`MessagePassing` on the mesh, decoder.
    Shapes: ``x = [a, s] (N, in_channels)`` -> ``(N, out_channels)``."""

    def __init__(self, in_channels: int, out_channels: int, dim: int, latent: int, layers: int,
                 length_unit: float):
        super().__init__()
        self.out_channels = out_channels
        self.encoder = MLP([in_channels + 1, latent, latent])
        self.mesh = MessagePassing(latent, layers, dim, out_channels, length_unit)
        self.decoder = MLP([latent, latent, out_channels])

    def forward(self, data, x: torch.Tensor) -> torch.Tensor:
        state = x[:, -self.out_channels:]
        return self.decoder(self.mesh(self.encoder(with_walls(data, x)), data.pos, state, data.edge_index))


def with_walls(data, x: torch.Tensor) -> torch.Tensor:
    """``[x, wall] (N, C + 1)``: the node features and a flag of the mesh's boundary nodes, where
    the state obeys its boundary condition instead of the PDE (without it a stepper on a new
    domain cannot tell a wall node from an interior one)."""
    return torch.cat([x, data.boundary_mask[:, None].to(x)], dim=1)


class MPPDE(TimeStepper):
    """MP-PDE time stepper on the fixed mesh: :class:`~meshop.models.stepper.TimeStepper` whose
    processor is a :class:`MessagePassingProcessor`.

    Args:
        latent: node and edge channels; layers: message-passing layers (= hops per step);
        length_unit: unit of the relative positions on edges (normalized coordinates);
        varying_columns: columns of ``data.x`` varying per frame (see TimeStepper);
        coarse: run on the coarse mesh the data's mesh carries and answer on its nodes
            (:mod:`meshop.models.coarse`: the MM-PDE protocol); False: on the mesh itself.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, latent: int = 48, layers: int = 4,
                 length_unit: float = 0.02, varying_columns: list[int] | None = None, coarse: bool = False):
        varying_columns = list(varying_columns or [])
        NeuralOperator.__init__(self, in_channels, out_channels, dim, latent=latent, layers=layers,
                                length_unit=length_unit, varying_columns=varying_columns, **_coarse_option(coarse, dim))
        self.coarse = bool(coarse)
        processor = MessagePassingProcessor(in_channels + out_channels, out_channels, dim, latent, layers, length_unit)
        self._attach(CoarseProcessor(processor) if coarse else processor, out_channels, varying_columns, True, layers)

    def prepare(self, data):
        return data

    def attach_mesh(self, data, mesh):
        """With ``coarse``, ``data`` with the coarse mesh ``mesh`` carries (:func:`attach_coarse`)."""
        return attach_coarse(data, mesh) if self.coarse else data


def _coarse_option(coarse, dim: int) -> dict:
    """``{"coarse": True}`` for a coarse model, else nothing: the hyper-parameters of models on
    their own mesh stay those of the checkpoints written before the option."""
    if not isinstance(coarse, bool):
        raise ValueError(f"coarse must be True or False, got {coarse!r}.")
    if coarse and dim != 2:
        raise ValueError(f"coarse=True runs on the coarse triangle mesh a 2D mesh carries; the data is {dim}D.")
    return {"coarse": True} if coarse else {}
