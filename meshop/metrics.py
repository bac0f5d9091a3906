"""Error measures, in one place: relative L2 per sample, on decoded (physical) fields.

``relative_l2`` works on torch tensors of a batch (training, validation), ``relative_l2_np`` on
numpy arrays of one sample (prediction reports, benchmarks), ``rollout_errors`` on two series.
All use the unweighted nodal norm ``||pred - target|| / ||target||``.
"""

from __future__ import annotations

import numpy as np
import torch


def relative_l2(pred: torch.Tensor, target: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
    """Relative L2 error per graph of a batch and per channel, averaged: a scalar tensor.

    Args:
        pred, target: ``(N, C)`` physical values.
        batch: ``(N,)`` graph index of every node (None: one graph).
    """
    from torch_geometric.utils import scatter

    if batch is None:
        batch = torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
    err = scatter((pred - target) ** 2, batch, dim=0, reduce="sum")
    ref = scatter(target ** 2, batch, dim=0, reduce="sum")
    # clamped: the square root of an exact 0 (a step that hits its target) has an infinite slope
    return (err.clamp_min(1e-30).sqrt() / ref.sqrt().clamp_min(1e-12)).mean()


def relative_l2_np(pred: np.ndarray, target: np.ndarray) -> float:
    """``||pred - target|| / ||target||`` over every entry of one sample (0/0 counts as 0)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    norm = np.linalg.norm(target)
    return float(np.linalg.norm(pred - target) / max(norm, 1e-300))


def rollout_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(T,)`` relative L2 error of each frame of a predicted series against a reference.

    Args:
        pred, target: ``(T, N, ...)`` values per frame (the same frames and nodes).
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"series of shape {pred.shape} and {target.shape} cannot be compared.")
    diff = np.linalg.norm((pred - target).reshape(len(pred), -1), axis=1)
    norm = np.linalg.norm(target.reshape(len(target), -1), axis=1)
    return diff / np.maximum(norm, 1e-300)
