"""Pictures of the geometry structures of 2D point sets: K-D-tree decompositions and multi-scale
hierarchies (matplotlib, object API: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..outputs import MESHOP_MARK
from .scene import write_atomically


def _figure(n_panels: int, panel_size: float = 4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel_size * n_panels, panel_size), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    return figure, axes


def _planar(points) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise MeshError(f"these plots draw 2D points; got an array of shape {points.shape}.")
    return points


def plot_decomposition(points, subdomains, out_png: str | Path, *, highlight: int | None = None,
                       title: str | None = None, dpi: int = 110) -> Path:
    """Draw a K-D-tree decomposition of 2D points: core points coloured by sub-domain, the box
    outlines, and one sub-domain's halo.

    Args:
        points: ``(N, 2)`` coordinates.
        subdomains: the list :func:`meshop.geometry.kdtree.decompose` returns.
        out_png: output PNG (written atomically).
        highlight: the sub-domain whose box is drawn bold and whose halo points are ringed;
            default the one with the largest box.
    """
    from matplotlib.patches import Rectangle

    points = _planar(points)
    figure, (ax,) = _figure(1, panel_size=6.0)
    colours = categorical_colours(len(subdomains))
    for sub, colour in zip(subdomains, colours):
        ax.scatter(*points[sub.core].T, s=4, color=colour, linewidths=0)
        (x0, y0), (x1, y1) = sub.box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.6, ec="#555555"))
    if highlight is None:
        highlight = int(np.argmax([np.prod(np.ptp(s.box, axis=0)) for s in subdomains]))
    sub = subdomains[highlight]
    (x0, y0), (x1, y1) = sub.box
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2.2, ec="black"))
    if len(sub.halo):
        ax.scatter(*points[sub.halo].T, s=16, facecolors="none", edgecolors="black", linewidths=0.7,
                   label=f"halo of the bold box: {len(sub.halo)} points of other sub-domains")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=9, frameon=False)
    ax.set_title(title or f"K-D tree: {len(subdomains)} sub-domains, {len(points)} points", fontsize=11)
    return write_atomically(Path(out_png), lambda tmp: figure.savefig(tmp, dpi=dpi, metadata={"Software": MESHOP_MARK}))


def plot_hierarchy(points, hierarchy, out_png: str | Path, *, title: str | None = None,
                   dpi: int = 110) -> Path:
    """Draw a multi-scale hierarchy of 2D points, one panel per level: the level's nodes and its
    graph edges (blue), and from level 1 on the finer level's nodes (grey) with their pooling
    edges to this level (orange).

    Args:
        points: ``(N, 2)`` coordinates.
        hierarchy: a :class:`meshop.geometry.hierarchy.Hierarchy` of these points.
        out_png: output PNG (written atomically).
    """
    from matplotlib.collections import LineCollection

    points = _planar(points)
    figure, axes = _figure(hierarchy.n_levels)
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = 0.03 * (hi - lo).max()
    for level, ax in enumerate(axes):
        nodes = points[hierarchy.indices[level]]
        edges = hierarchy.edges[level]
        ax.add_collection(LineCollection(nodes[edges.T], colors="#4c72b0", linewidths=0.5, alpha=0.45))
        if level > 0:
            fine = points[hierarchy.indices[level - 1]]
            down = hierarchy.down[level - 1]
            segments = np.stack([fine[down[0]], nodes[down[1]]], axis=1)
            ax.add_collection(LineCollection(segments, colors="#dd8452", linewidths=0.8, alpha=0.9))
            ax.scatter(*fine.T, s=max(1.0, 120.0 / np.sqrt(len(fine))), color="#9a9a9a", linewidths=0)
        ax.scatter(*nodes.T, s=max(2.0, 240.0 / np.sqrt(len(nodes))), color="#1b1b1b", zorder=3,
                   linewidths=0)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_title(f"level {level}: {len(nodes)} nodes, {edges.shape[1]} edges", fontsize=10)
    figure.suptitle(title or f"multi-scale hierarchy ({hierarchy.method}): graph edges in blue, "
                    "pooling edges from the finer level (grey nodes) in orange", fontsize=11)
    return write_atomically(Path(out_png), lambda tmp: figure.savefig(tmp, dpi=dpi, metadata={"Software": MESHOP_MARK}))


def categorical_colours(n: int) -> list:
    """``n`` distinguishable colours; neighbouring sub-domains (consecutive in tree order) differ."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # dark shades first, then the light ones
    return [palette[order[i % 20]] for i in range(n)]
