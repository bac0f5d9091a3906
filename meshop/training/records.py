"""What a run leaves besides checkpoints: ``metrics.csv`` and the loss-curve PNG."""

from __future__ import annotations

import csv
from pathlib import Path

from ..atomic import atomic_path

#: columns of metrics.csv, one row per epoch; ``val_rel_l2`` is the default validation column
COLUMNS = ("epoch", "train_loss", "val_rel_l2", "lr", "seconds")


def write_metrics(history: list[dict], path: Path, val_column: str = "val_rel_l2") -> Path:
    """Write ``history`` (one dict per epoch with :data:`COLUMNS`, the validation column named
    ``val_column``) to ``path`` atomically.

    ``seconds`` is the cumulative training time (training and validation, not checkpointing).
    """
    path = Path(path)
    columns = tuple(val_column if c == "val_rel_l2" else c for c in COLUMNS)
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] if k == "epoch" else f"{row[k]:.8g}" for k in columns})
    return path


def write_loss_curve(metrics_csv: Path, out_png: Path) -> Path:
    """The training-loss and validation-error curves of ``metrics_csv`` as a PNG."""
    from ..viz.plots import plot_loss_curve

    return plot_loss_curve(metrics_csv, out_png)
