"""GIOROM: a particle time stepper on a sparse graph with a neural-operator decoder to any points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..nn import KernelInterpolation, QueryDecoder, QueryStencil
from .gns import GNS, scene_radius_graph, scene_ranges
from .multilevel import farthest_subset


@dataclass
class SparseState:
    """The sparse graph after a step: node positions ``(S, d)`` (m), latents ``(S, L)``,
    normalized accelerations ``(S, d)``, velocities ``(S, d)`` (m/frame) and its radius (m)."""

    points: torch.Tensor
    latent: torch.Tensor
    acceleration: torch.Tensor
    velocity: torch.Tensor
    radius: float


class GIOROM(GNS):
    r"""GNS's interaction network on a farthest-point subset of ``sparse_nodes`` particles, and a
    kernel-integral decoder (:class:`~meshop.nn.QueryDecoder`) that evaluates the
    normalized acceleration at any points from their ``query_neighbors`` nearest sparse nodes.
    The decoder projects each sparse latent to ``decoder_width`` channels once per step; the work
    per query edge is a kernel of ``decoder_width`` channels of the relative position only.

    The sparse graph's radius is ``radius`` scaled by the subsampling, :math:`r_s = r
    \max(1, N / S)^{1/d}`, so a sparse node has about as many neighbours as a particle of the
    dense cloud; every feature is divided by :math:`r_s`. A rollout samples the sparse nodes once
    (they are particles and move with them) and moves every particle with its own velocity plus
    the decoded acceleration (semi-implicit Euler as in :class:`GNS`). After a step,
    :meth:`query` evaluates the state at any points in m/frame and m/frame².

    Args: those of :class:`GNS`, and ``sparse_nodes`` (S), ``query_neighbors`` (k of the decoder),
    ``decoder_width`` (channels per query edge), ``decoder``: ``"query"`` (the
    :class:`~meshop.nn.QueryDecoder` above) or ``"kernel"`` (the first decoder,
    :class:`~meshop.nn.KernelInterpolation`: a ``latent``-wide kernel MLP on every query edge, ~6x
    slower at 100k query points; the bundled ``mpm2d`` model uses it).
    """

    queryable = True

    def __init__(self, in_channels: int, out_channels: int, dim: int, history: int = 5, latent: int = 128,
                 message_passing_steps: int = 10, radius: float = 0.015, material_embedding: int = 16,
                 sparse_nodes: int = 1000, query_neighbors: int = 8, decoder_width: int = 16,
                 decoder: str = "query"):
        super().__init__(in_channels, out_channels, dim, history, latent, message_passing_steps, radius,
                         material_embedding)
        if decoder not in ("query", "kernel"):
            raise ValueError(f"decoder must be 'query' or 'kernel', got {decoder!r}.")
        self.config.update(sparse_nodes=sparse_nodes, query_neighbors=query_neighbors, decoder_width=decoder_width,
                           decoder=decoder)
        self.sparse_nodes, self.query_neighbors = int(sparse_nodes), int(query_neighbors)
        self.interpolation = QueryDecoder(latent, dim, dim, decoder_width) if decoder == "query" else \
            KernelInterpolation(latent, dim, dim)
        self.sparse_state: SparseState | None = None

    def sparse_ids(self, points: torch.Tensor) -> np.ndarray:
        """``(S,)`` sorted ids of one scene's sparse nodes among ``points (N, d)`` (all when N <= S):
        a farthest-point sample, or in training mode a uniform random subset drawn anew for every
        window (torch's generator): FPS costs ~1 s per 1k-particle scene on a loaded CPU, and
        training sees many sparse graphs of each scene."""
        n, s = len(points), min(self.sparse_nodes, len(points))
        if self.training:
            return np.sort(torch.randperm(n)[:s].numpy())
        return np.sort(farthest_subset(points.detach().cpu().numpy().astype(np.float64), s))

    def sparse_radius(self, n: int, s: int) -> float:
        return self.radius * max(1.0, n / s) ** (1.0 / self.dim)

    def accelerations(self, data, positions: torch.Tensor, plan: list[np.ndarray] | None = None) -> torch.Tensor:
        """``(N, d)`` normalized accelerations at every particle of ``positions (N, history + 1, d)``,
        decoded from the sparse graph of each scene (``plan``: its node ids, default FPS)."""
        out = []
        for k, (a, b) in enumerate(scene_ranges(data, len(positions))):
            ids = plan[k] if plan is not None else self.sparse_ids(positions[a:b, -1])
            self.advance_sparse(positions[a:b][ids], data.material[a:b][ids], b - a)
            out.append(self.evaluate(positions[a:b, -1]))
        return torch.cat(out)

    def advance_sparse(self, positions: torch.Tensor, material: torch.Tensor, n_particles: int) -> SparseState:
        """Run the processor on the sparse nodes ``positions (S, history + 1, d)``; keeps the state."""
        radius = self.sparse_radius(n_particles, len(positions))
        edge_index = scene_radius_graph(positions[:, -1], [(0, len(positions))], radius)
        latent = self.latent_graph(positions, material, edge_index, radius)
        acceleration = self.decoder(latent)
        velocity = positions[:, -1] - positions[:, -2] + acceleration * self.acc_std + self.acc_mean
        self.sparse_state = SparseState(positions[:, -1], latent, acceleration, velocity, radius)
        return self.sparse_state

    def evaluate(self, points: torch.Tensor, stencil: QueryStencil | None = None) -> torch.Tensor:
        """``(M, d)`` normalized acceleration at ``points (M, d)`` from the last sparse state."""
        state = self.sparse_state
        stencil = stencil if stencil is not None else self.stencil(points)
        if isinstance(self.interpolation, KernelInterpolation):
            return self.interpolation(points, state.points, state.acceleration, state.latent, stencil.neighbors,
                                      state.radius)
        return self.interpolation(stencil, state.acceleration, state.latent)

    @torch.no_grad()
    def query(self, points) -> dict[str, torch.Tensor]:
        """The state of the last step at ``points (M, d)`` (m): ``acceleration (M, d)`` (m/frame²,
        decoded) and ``velocity (M, d)`` (m/frame: the sparse nodes' velocities before the step,
        interpolated, plus that acceleration)."""
        state = self.sparse_state
        points = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=self.acc_std.device)
        stencil = self.stencil(points)
        acceleration = self.evaluate(points, stencil) * self.acc_std + self.acc_mean
        before = state.velocity - state.acceleration * self.acc_std - self.acc_mean
        return {"acceleration": acceleration, "velocity": stencil.interpolate(before) + acceleration}

    def stencil(self, points: torch.Tensor) -> QueryStencil:
        """The ``query_neighbors`` sparse nodes nearest to each of ``points (M, d)``."""
        state = self.sparse_state
        if state is None:
            raise RuntimeError("GIOROM.query needs a sparse state: call step or rollout first.")
        return QueryStencil.build(points, state.points, self.query_neighbors, state.radius)

    def rollout_plan(self, data, positions: torch.Tensor) -> list[np.ndarray]:
        """The sparse node ids of each scene, sampled once at the start of a rollout."""
        return [self.sparse_ids(positions[a:b, -1]) for a, b in scene_ranges(data, len(positions))]
