"""Pictures of meshes and fields: PNG rendering, an interactive window, a browser page, plots.

Rendering needs no display: without one, VTK draws off screen through EGL (or OSMesa).
Submodules load on first use, so plotting a loss curve does not import PyVista.
"""

from importlib import import_module

#: public name -> submodule that defines it
_LAZY = {
    "animate": "animation",
    "plot_decomposition": "geometry_plots", "plot_hierarchy": "geometry_plots",
    "export_html": "interactive", "interactive_plotter": "interactive", "view": "interactive",
    "export_series_html": "series_page",
    "plot_adaptation": "mesh_plots",
    "plot_loss_curve": "plots", "plot_rollout_errors": "plots", "read_metrics": "plots",
    "render": "pictures", "render_comparison": "pictures",
    "to_pyvista": "scene",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'meshop.viz' has no attribute {name!r}")
    module = import_module(f".{_LAZY[name]}", __name__)
    # bind every public name of that submodule at once
    for public, home in _LAZY.items():
        if home == _LAZY[name]:
            globals()[public] = getattr(module, public)
    return globals()[name]


__all__ = sorted(_LAZY)
