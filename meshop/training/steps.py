"""Step functions: ``step(model, batch) -> (loss, logs)``, what the :class:`~meshop.training.Trainer`
runs on every batch.

=======================  ===============================================================
step                     loss
=======================  ===============================================================
:func:`supervised_step`  relative L2 of the decoded prediction against ``batch.y`` (steady)
:func:`unrolled_step`    relative L2 over ``k`` steps of a time stepper fed its own output
                         (pushforward), with noise on the first input state
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
