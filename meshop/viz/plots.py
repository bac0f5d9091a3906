"""Training curves with matplotlib (its object API, so no display or pyplot state is involved)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..outputs import MESHOP_MARK
from .scene import write_atomically

LOSS_COLUMNS = ("epoch", "train_loss", "val_rel_l2")
#: what a run's validation measures (metrics.csv column ``val_<measure>``), in words: steady and
#: time-stepping models (relative L2), particle simulators (``meshop.training.particles``), mesh
#: movers (``meshop.training.mover``); the CLI's training summary says the same
VALIDATION_MEASURES = {"rel_l2": "relative L2",
                       "acc_mse": "one-step MSE of the normalized acceleration",
                       "ma_loss": "Monge–Ampère loss"}
#: smallest max/min ratio a log y axis shows, so its tick labels differ
NARROWEST_SPAN = 2.0


def read_metrics(metrics_csv: str | Path) -> dict[str, np.ndarray]:
    """Columns of a metrics CSV as float arrays; empty cells (epochs without validation) are NaN.

    Raises :class:`MeshError` when the file is missing or lacks ``epoch`` or ``train_loss``.
    """
    path = Path(metrics_csv)
    if not path.is_file():
        raise MeshError(f"{path}: no such metrics file.")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    header = set(rows[0]) if rows else set()
    missing = [c for c in LOSS_COLUMNS[:2] if c not in header]
    if missing:
        raise MeshError(f"{path}: metrics file has no column '{missing[0]}' "
                        f"(expected columns {', '.join(LOSS_COLUMNS)}).")

    def number(text: str | None) -> float:
        try:
            return float(text)
        except (TypeError, ValueError):
            return float("nan")

    return {name: np.array([number(row.get(name)) for row in rows]) for name in rows[0]}


def plot_loss_curve(metrics_csv: str | Path, out_png: str | Path, *, title: str | None = None,
                    dpi: int = 110) -> Path:
    """Plot training loss and validation relative L2 error against the epoch.

    Args:
        metrics_csv: CSV with columns ``epoch, train_loss`` and optionally ``val_rel_l2`` or,
            from a particle simulator ``val_acc_mse``, from a mesh mover ``val_ma_loss`` (empty
            where an epoch was not validated).
        out_png: output PNG, written atomically.
        title: figure title; default the CSV's parent folder name (the run).

    Two panels, both with logarithmic y axes: the training loss (in the loss's own units), and
    the validation relative L2 error in percent (or the one-step acceleration MSE, or the Monge–Ampère loss) with its best
    epoch marked.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    metrics = read_metrics(metrics_csv)
    epoch, train = metrics["epoch"], metrics["train_loss"]
    measure = next((name for name in VALIDATION_MEASURES if f"val_{name}" in metrics), "rel_l2")
    val = metrics.get(f"val_{measure}", np.full_like(epoch, np.nan))
    percent = 100.0 if measure == "rel_l2" else 1.0
    unit = " %" if percent == 100.0 else ""
    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_ax, val_ax = figure.subplots(1, 2)
    _log_curve(loss_ax, epoch, train, "#1f77b4", "training loss")
    loss_ax.set_ylabel("training loss")
    has_val = np.isfinite(val).any()
    if has_val:
        _log_curve(val_ax, epoch, percent * val, "#d62728", "validation")
        best = int(np.nanargmin(val))
        val_ax.plot(epoch[best], percent * val[best], "o", color="#d62728")
        val_ax.set_title(f"best {percent * val[best]:.3g}{unit} at epoch {epoch[best]:g}", fontsize=10)
    else:
        val_ax.text(0.5, 0.5, "no validation metrics", ha="center", va="center", transform=val_ax.transAxes)
    val_ax.set_ylabel(f"validation {VALIDATION_MEASURES[measure]}" + (" (%)" if percent == 100.0 else ""))
    for ax in (loss_ax, val_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
    figure.suptitle(title if title is not None else Path(metrics_csv).resolve().parent.name)
    return write_atomically(Path(out_png), lambda tmp: figure.savefig(tmp, dpi=dpi, metadata={"Software": MESHOP_MARK}))


def _log_curve(ax, epoch: np.ndarray, values: np.ndarray, color: str, label: str) -> None:
    """Plot the finite values; log y axis (plain tick numbers) when they are all positive."""
    from matplotlib.ticker import FuncFormatter

    keep = np.isfinite(values)
    ax.plot(epoch[keep], values[keep], color=color, lw=1.8, label=label)
    if (values[keep] > 0).all():
        ax.set_yscale("log")
        low, high = values[keep].min(), values[keep].max()
        if high < NARROWEST_SPAN * low:   # a flat curve: ticks a few digits apart would print alike
            middle = np.sqrt(low * high)
            ax.set_ylim(middle / np.sqrt(NARROWEST_SPAN), middle * np.sqrt(NARROWEST_SPAN))
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain if np.ptp(np.log10(values[keep])) < 1.2 else FuncFormatter(lambda *_: ""))


def plot_rollout_errors(curves: dict[str, np.ndarray], out_png: str | Path, *, frame_dt: float = 1.0,
                        title: str = "rollout error growth", dpi: int = 110) -> Path:
    """Error per rollout step of one or more series on a log axis: relative L2 errors in percent,
    or, for curves named ``*_mse`` (a particle rollout's ``position_mse``), mean squared errors
    in m² as they are.

    Args:
        curves: label -> ``(steps + 1,)`` errors (frame 0, the given state, is left out).
        out_png: output PNG, written atomically.
        frame_dt: time per step, for the top axis label.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    squared = bool(curves) and all(label.endswith("_mse") for label in curves)
    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for label, errors in curves.items():
        steps = np.arange(1, len(errors))
        values = np.asarray(errors, dtype=np.float64)[1:]
        if squared:    # m²: no fixed floor (a good rollout's first steps are ~1e-9 m²), exact zeros a decade below
            positive = values[values > 0]
            floor = positive.min() / 10 if len(positive) else 1e-30
            ax.plot(steps, np.maximum(values, floor), label=label, linewidth=1.6)
        else:
            ax.plot(steps, 100 * np.maximum(values, 1e-6), label=label, linewidth=1.6)
    ax.set_yscale("log")
    ax.set_xlabel(f"step (one step = {frame_dt:g} time units)")
    ax.set_ylabel("mean squared position error (m²)" if squared else "relative L2 error (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    return write_atomically(Path(out_png), lambda tmp: figure.savefig(tmp, dpi=dpi, format="png",
                                                                      metadata={"Software": MESHOP_MARK}))
