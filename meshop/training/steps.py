"""Step functions: ``step(model, batch) -> (loss, logs)``, what the :class:`~meshop.training.Trainer`
runs on every batch.

=======================  ===============================================================
step                     loss
=======================  ===============================================================
:func:`supervised_step`  relative L2 of the decoded prediction against ``batch.y`` (steady)
:func:`unrolled_step`    relative L2 over ``k`` steps of a time stepper fed its own output
                         (pushforward), with noise on the first input state
:func:`noisy_one_step`   MSE of a particle simulator's normalized accelerations, random-walk
                         noise on the input positions (GNS); optionally over ``k`` steps
                         fed its own positions
=======================  ===============================================================

A physics-residual step with no target lives with the model whose residual it is (e.g. the
Monge–Ampère loss of the mesh mover).
"""

from __future__ import annotations

import torch

from ..graph import decode
from ..metrics import relative_l2


def supervised_step(fields):
    """Relative L2 of ``decode(model(batch))`` against the physical targets ``batch.y``."""

    def step(model, batch):
        loss = relative_l2(decode(model(batch), batch, fields), batch.y, batch.batch)
        return loss, {}

    return step


def unrolled_step(unroll: int = 1, noise: float = 0.0):
    """Roll a time stepper ``unroll`` steps from ``batch.state`` (its own outputs fed back) and
    compare every step with ``batch.future (N, S, unroll)``, all in normalized state units.

    ``noise``: standard deviation of Gaussian noise added to the (normalized) initial state
    during training, so the model learns to correct the errors a rollout accumulates. The model
    must offer ``step(batch, state) -> next state`` (see :class:`~meshop.models.stepper.TimeStepper`).
    """

    def step(model, batch):
        state = batch.state
        if noise > 0 and model.training:
            state = state + noise * torch.randn_like(state)
        losses = []
        for k in range(unroll):
            state = model.step(batch, state, k)
            losses.append(relative_l2(state, batch.future[:, :, k], batch.batch))
        loss = torch.stack(losses).mean()
        return loss, {f"step{k + 1}": v.item() for k, v in enumerate(losses)} if unroll > 1 else {}

    return step


def random_walk_noise(positions: torch.Tensor, noise_std: float) -> torch.Tensor:
    """``(N, T, d)`` noise for ``positions (N, T, d)`` (oldest first) as in GNS: the velocities
    get Gaussian noise of std ``noise_std / sqrt(T - 1)`` per frame, accumulated into a random
    walk, so the last velocity's noise has std ``noise_std``; the first position is left as is."""
    steps = torch.randn_like(positions[:, 1:]) * (noise_std / max(positions.shape[1] - 1, 1) ** 0.5)
    return torch.cat([torch.zeros_like(positions[:, :1]), steps.cumsum(dim=1)], dim=1)


def noisy_one_step(noise_std: float = 0.0, unroll: int = 1):
    """One-step training of a particle simulator (GNS, GIOROM): MSE of the normalized acceleration.

    ``batch.positions (N, history + 1 + K, d)`` holds the input frames and the next K >= 1 (m).
    During training, :func:`random_walk_noise` of ``noise_std`` (m) perturbs the inputs, and the
    following frames move with the last input's noise, so the target acceleration
    :math:`x_{t+1} - 2 x_t + x_{t-1}` corrects the noisy velocity. With ``unroll`` > 1 the model
    is then fed its own next positions (semi-implicit Euler, detached: the pushforward trick of
    MP-PDE, and no gradient through the norm of two particles the walls clamped together) for
    ``unroll`` steps; step k's target brings the model's own drift back to the true frame, so its
    loss is the position error after k steps in units of ``acc_std``, squared. The loss is the
    mean over the steps (GIOROM keeps one sparse sample through them, as in a rollout). The model offers ``accelerations(batch, positions, plan)``, ``rollout_plan``,
    ``integrate`` and the buffers ``acc_mean``, ``acc_std``.
    """

    def step(model, batch):
        inputs = batch.positions[:, : model.history + 1]
        following = batch.positions[:, model.history + 1: model.history + 1 + unroll]     # (N, K, d)
        if noise_std > 0 and model.training:
            noise = random_walk_noise(inputs, noise_std)
            inputs, following = inputs + noise, following + noise[:, -1:]
        plan, losses = model.rollout_plan(batch, inputs), []
        for k in range(unroll):
            target = (following[:, k] - 2 * inputs[:, -1] + inputs[:, -2] - model.acc_mean) / model.acc_std
            acceleration = model.accelerations(batch, inputs, plan)
            losses.append(((acceleration - target) ** 2).mean())
            if k + 1 < unroll:
                predicted = model.integrate(inputs, acceleration.detach())
                inputs = torch.cat([inputs[:, 1:], predicted[:, None]], dim=1)
        loss = torch.stack(losses).mean()
        return loss, {f"step{k + 1}": v.item() for k, v in enumerate(losses)} if unroll > 1 else {}

    return step


def validation(step, batch_size: int, device):
    """``validate(model, graphs) -> float``: the mean loss of ``step`` over ``graphs`` (eval mode,
    no gradients), batches of ``batch_size`` on ``device``."""
    from torch_geometric.loader import DataLoader

    @torch.no_grad()
    def validate(model, graphs):
        model.eval()
        losses = [step(model, batch.to(device))[0].item() * batch.num_graphs
                  for batch in DataLoader(graphs, batch_size=batch_size)]
        return sum(losses) / len(graphs)

    return validate
