"""GNS: the graph network simulator of Sanchez-Gonzalez et al. (2020) for particles."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..geometry.neighbors import radius_graph
from ..nn import MLP, InteractionNetwork
from .base import NeuralOperator
from .device_graphs import radius_graph_on_device


class GNS(NeuralOperator):
    r"""Encode-process-decode over a radius graph of the particles, rebuilt every step.

    Node inputs: the last ``history`` velocities :math:`\dot x = x_t - x_{t-1}` (m per frame,
    normalized by the training statistics), a learned embedding of the material id, and the
    distances to the walls of the box ``bounds`` (both sides per axis, divided by ``radius`` and
    clipped to [0, 1]). Edge inputs (:math:`j \to i`): :math:`(x_i - x_j) / r` and its norm.
    ``message_passing_steps`` residual :class:`~meshop.nn.InteractionNetwork` layers process the
    latent graph, an MLP decodes the normalized acceleration :math:`\hat a`, and semi-implicit
    Euler with one frame as the time step advances the particles, which the walls of the box
    keep in (the simulator's walls, as the MPM data has them: a particle stops on the wall it
    would cross, and its next velocity, read from the positions, has lost the normal part):

    .. math::
        a = \hat a \sigma_a + \mu_a, \quad \dot x_{t+1} = \dot x_t + a, \quad
        x_{t+1} = \min(\max(x_t + \dot x_{t+1}, b_{lo}), b_{hi})

    Args:
        in_channels: number of material ids (the embedding table).
        out_channels: must equal ``dim`` (the acceleration).
        history: velocities per node input (``history + 1`` positions).
        latent: width of every latent vector and MLP layer.
        message_passing_steps: processor layers (10 in the paper).
        radius: connectivity radius (m).
        material_embedding: width of the material embedding.

    Buffers (saved with the weights, set from the training data by :meth:`set_statistics`):
    ``vel_mean, vel_std, acc_mean, acc_std`` ``(dim,)`` in m/frame and m/frame², and
    ``bounds (dim, 2)`` the box (m). Inputs: ``positions (N, history + 1, d)`` oldest first,
    ``data.material (N,)``, and ``data.ptr`` for a batch of scenes.
    """

    time_dependent = True
    particles = True
    uses_mesh_graph = False

    def __init__(self, in_channels: int, out_channels: int, dim: int, history: int = 5, latent: int = 128,
                 message_passing_steps: int = 10, radius: float = 0.015, material_embedding: int = 16):
        super().__init__(in_channels, out_channels, dim, history=history, latent=latent,
                         message_passing_steps=message_passing_steps, radius=radius,
                         material_embedding=material_embedding)
        if out_channels != dim:
            raise ValueError(f"a particle model predicts a {dim}D acceleration; out_channels must be {dim}.")
        if not radius > 0 or history < 1:
            raise ValueError(f"radius must be positive and history at least 1, got {radius} and {history}.")
        self.history, self.radius = int(history), float(radius)
        self.embedding = nn.Embedding(in_channels, material_embedding)
        self.node_encoder = MLP([history * dim + material_embedding + 2 * dim, latent, latent, latent],
                                layer_norm=True)
        self.edge_encoder = MLP([dim + 1, latent, latent, latent], layer_norm=True)
        self.processor = nn.ModuleList(InteractionNetwork(latent) for _ in range(message_passing_steps))
        self.decoder = MLP([latent, latent, latent, dim])
        for name in ("vel_mean", "acc_mean"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("vel_std", "acc_std"):
            self.register_buffer(name, torch.ones(dim))
        self.register_buffer("bounds", torch.tensor([[0.0, 1.0]] * dim))

    def set_statistics(self, vel_mean, vel_std, acc_mean, acc_std, bounds) -> None:
        """Store the normalization statistics (m/frame, m/frame²) and the box ``(dim, 2)`` (m)."""
        for name, value in (("vel_mean", vel_mean), ("vel_std", vel_std), ("acc_mean", acc_mean),
                            ("acc_std", acc_std), ("bounds", bounds)):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))

    # ------------------------------------------------------------------ features
    def node_features(self, positions: torch.Tensor, material: torch.Tensor, radius: float) -> torch.Tensor:
        """``(N, F)``: normalized velocities, material embedding, clipped wall distances."""
        velocity = (positions.diff(dim=1) - self.vel_mean) / self.vel_std            # (N, H, d)
        last = positions[:, -1]
        walls = torch.cat([last - self.bounds[:, 0], self.bounds[:, 1] - last], dim=1) / radius
        return torch.cat([velocity.flatten(1), self.embedding(material), walls.clamp(0.0, 1.0)], dim=1)

    @staticmethod
    def edge_features(points: torch.Tensor, edge_index: torch.Tensor, radius: float) -> torch.Tensor:
        """``(E, d + 1)``: :math:`(x_i - x_j) / r` and its norm."""
        offset = (points[edge_index[1]] - points[edge_index[0]]) / radius
        return torch.cat([offset, offset.norm(dim=1, keepdim=True)], dim=1)

    def latent_graph(self, positions: torch.Tensor, material: torch.Tensor, edge_index: torch.Tensor,
                     radius: float) -> torch.Tensor:
        """``(N, latent)`` processed node latents of one or several scenes."""
        nodes = self.node_encoder(self.node_features(positions, material, radius))
        edges = self.edge_encoder(self.edge_features(positions[:, -1], edge_index, radius))
        for layer in self.processor:
            nodes, edges = layer(nodes, edges, edge_index)
        return nodes

    # ------------------------------------------------------------------ dynamics
    def accelerations(self, data, positions: torch.Tensor, plan=None) -> torch.Tensor:
        """``(N, d)`` normalized accelerations from ``positions (N, history + 1, d)``."""
        edge_index = scene_radius_graph(positions[:, -1], scene_ranges(data, len(positions)), self.radius)
        return self.decoder(self.latent_graph(positions, data.material, edge_index, self.radius))

    def rollout_plan(self, data, positions: torch.Tensor):
        """What a rollout fixes at its start and hands to every :meth:`accelerations` (none here)."""
        return None

    def forward(self, data) -> torch.Tensor:
        return self.accelerations(data, data.positions[:, : self.history + 1])

    def integrate(self, positions: torch.Tensor, acceleration: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` next positions by semi-implicit Euler from the normalized ``acceleration``,
        inside the box ``bounds`` (without it 25-65 % of the particles of a 35-frame test rollout
        ended outside the box, doubling the rollout error: benchmarks/lagrangian.table.md)."""
        velocity = positions[:, -1] - positions[:, -2] + acceleration * self.acc_std + self.acc_mean
        return torch.minimum(torch.maximum(positions[:, -1] + velocity, self.bounds[:, 0]), self.bounds[:, 1])

    def step(self, data, positions: torch.Tensor, plan=None) -> torch.Tensor:
        """``(N, d)`` positions one frame after ``positions (N, history + 1, d)``."""
        return self.integrate(positions, self.accelerations(data, positions, plan))

    @torch.no_grad()
    def rollout(self, data, positions: torch.Tensor, steps: int, callback=None) -> torch.Tensor:
        """``(steps, N, d)`` positions after 1..``steps`` frames from ``positions (N, history + 1, d)``;
        ``callback(k)`` after each step."""
        plan, frames = self.rollout_plan(data, positions), []
        for k in range(steps):
            following = self.step(data, positions, plan)
            positions = torch.cat([positions[:, 1:], following[:, None]], dim=1)
            frames.append(following)
            if callback is not None:
                callback(k)
        return torch.stack(frames)


def scene_ranges(data, n: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` node ranges of the scenes of a batch (one range without ``ptr``)."""
    ptr = getattr(data, "ptr", None)
    if ptr is None:
        return [(0, n)]
    ptr = ptr.tolist()
    return list(zip(ptr[:-1], ptr[1:]))


def scene_radius_graph(points: torch.Tensor, scenes, radius: float) -> torch.Tensor:
    """``(2, E)`` radius graph within each scene of ``points (N, d)``, no self loops, sorted by
    target then source, on ``points``' device: scipy's cKDTree on the CPU (the fastest there),
    a cell list of torch kernels elsewhere (:mod:`~meshop.models.device_graphs`: no round trip
    to the host at every step of a rollout on a GPU)."""
    if points.device.type != "cpu":
        scene = torch.zeros(len(points), dtype=torch.long, device=points.device)
        for number, (a, b) in enumerate(scenes):
            scene[a:b] = number
        return radius_graph_on_device(points.detach(), radius, scene)
    cloud = points.detach().numpy()
    edges = [radius_graph(cloud[a:b], radius) + a for a, b in scenes if b - a > 1]
    edges = np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), dtype=np.int64)
    return torch.as_tensor(edges, dtype=torch.long)


def constant_velocity_rollout(positions, steps: int, bounds=None) -> np.ndarray:
    """``(steps, N, d)`` the baseline a learned simulator must beat: every particle keeps its last
    velocity, :math:`x_{t+k} = x_t + k (x_t - x_{t-1})`, from ``positions (T >= 2, N, d)``. With
    ``bounds (d, 2)``, inside that box as the models roll out: a particle stops on the wall it
    reaches and slides along it, which is the free flight clipped to the box."""
    positions = np.asarray(positions, dtype=np.float64)
    velocity = positions[-1] - positions[-2]
    free = positions[-1] + np.arange(1, steps + 1)[:, None, None] * velocity
    if bounds is None:
        return free
    bounds = np.asarray(bounds, dtype=np.float64)
    return np.clip(free, bounds[:, 0], bounds[:, 1])
