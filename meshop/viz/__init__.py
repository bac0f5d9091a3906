"""Pictures of meshes and fields: PNG rendering, an interactive window, a browser page, plots.

Rendering needs no display: without one, VTK draws off screen through EGL (or OSMesa).
"""

from .geometry_plots import plot_decomposition, plot_hierarchy
from .interactive import export_html, interactive_plotter, view
from .plots import plot_loss_curve, read_metrics
from .render import render, render_comparison
from .scene import to_pyvista

__all__ = ["export_html", "interactive_plotter", "plot_decomposition", "plot_hierarchy", "plot_loss_curve",
           "read_metrics", "render", "render_comparison", "to_pyvista", "view"]
