"""The training loop, handed its parts: model, loaders, optimizer, scheduler and a step function.

A *step function* turns one batch into a loss: ``step(model, batch) -> (loss, logs)``, ``loss`` a
scalar tensor to minimize and ``logs`` a dict of floats to average over the epoch. Supervised
steady training, one-step training with noise injection, unrolled multi-step training and
physics-residual training without targets are all step functions (:mod:`meshop.training.steps`);
the :class:`Trainer` knows none of them.

>>> trainer = Trainer(model, optimizer, supervised_step(fields), train_loader,
...                   scheduler=scheduler, val_loader=val_loader, validate=validate_fn)
>>> history = trainer.fit(epochs=50)
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from ..errors import MeshError
from ..progress import progress_bar

#: ``step(model, batch) -> (loss, logs)``
StepFunction = Callable[[torch.nn.Module, object], tuple[torch.Tensor, dict]]


class EpochSampler(torch.utils.data.Sampler):
    """A seeded random order of ``n`` samples that depends on the epoch alone, so a run resumed
    at epoch ``e`` sees the batches an uninterrupted run saw (``set_epoch`` as in
    ``DistributedSampler``)."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order_seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(order_seed)).tolist())

    def __len__(self) -> int:
        return self.n


class Trainer:
    """Runs epochs of a step function over a loader; validates and reports after each.

    Args:
        model: the module trained.
        optimizer: its optimizer.
        step: the step function ``(model, batch) -> (loss, logs)``.
        train_loader: iterable of batches; its ``sampler.set_epoch(epoch)`` is called if present.
        scheduler: stepped after every optimizer step (None: constant learning rate).
        val_loader, validate: ``validate(model, val_loader) -> float`` (lower is better) after each
            epoch; None: no validation (the history's ``val`` is NaN).
        grad_clip: maximum gradient norm (None: no clipping).
        device: where batches are moved (``batch.to(device)``).
        on_epoch_end: ``callback(row)`` after each epoch with the epoch's history row (checkpoints,
            metrics files); the row holds ``epoch``, ``train_loss``, ``val``, ``lr``, ``seconds``
            and the epoch means of the step's logs.
        progress: a progress bar over steps (stderr).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: StepFunction,
                 train_loader, *, scheduler=None, val_loader=None, validate=None, grad_clip: float | None = None,
                 device="cpu", on_epoch_end: Callable[[dict], None] | None = None, progress: bool = False):
        self.model, self.optimizer, self.step, self.train_loader = model, optimizer, step, train_loader
        self.scheduler, self.val_loader, self.validate = scheduler, val_loader, validate
        self.grad_clip, self.device = grad_clip, torch.device(device)
        self.on_epoch_end, self.progress = on_epoch_end, progress
        self.history: list[dict] = []

    def fit(self, epochs: int, start: int = 0) -> list[dict]:
        """Run epochs ``start + 1 .. epochs``; returns the history (one row per epoch, those of a
        resumed run included when ``history`` was restored)."""
        bar = progress_bar(epochs * len(self.train_loader), "train", "step", self.progress,
                           initial=start * len(self.train_loader), leave=True)
        elapsed = self.history[-1]["seconds"] if self.history else 0.0
        try:
            for epoch in range(start + 1, epochs + 1):
                began = time.perf_counter()
                row = self.train_epoch(epoch, bar)
                row["val"] = (self.validate(self.model, self.val_loader) if self.validate is not None
                              else math.nan)
                elapsed += time.perf_counter() - began
                row = {"epoch": epoch, **row, "seconds": elapsed}
                bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4f}", val=f"{row['val']:.4g}")
                self.history.append(row)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(row)
        finally:
            bar.close()
        return self.history

    def train_epoch(self, epoch: int, bar=None) -> dict:
        """One pass over the training loader: ``{"train_loss", "lr", **mean logs}``."""
        self.model.train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        total, count, lr, logs = 0.0, 0, self.optimizer.param_groups[0]["lr"], {}
        for batch in self.train_loader:
            batch = batch.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss, step_logs = self.step(self.model, batch)
            if not torch.isfinite(loss):
                raise MeshError(f"training diverged in epoch {epoch} (loss {loss.item()}); start a new run "
                                f"with a lower learning rate (lr={lr:g}).")
            loss.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            weight = getattr(batch, "num_graphs", 1)
            total, count = total + loss.item() * weight, count + weight
            for key, value in step_logs.items():
                logs[key] = logs.get(key, 0.0) + float(value) * weight
            if bar is not None:
                bar.update(1)
        return {"train_loss": total / max(count, 1), "lr": lr, **{k: v / max(count, 1) for k, v in logs.items()}}
