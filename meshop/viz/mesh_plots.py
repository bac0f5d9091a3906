"""Side-by-side pictures of a mesh before and after r-adaptation (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..mesh import Mesh
from ..outputs import MESHOP_MARK
from .scene import write_atomically


def plot_adaptation(original: Mesh, moved: Mesh, out_png: str | Path, field: str | None = None,
                    titles: tuple[str, ...] = ("original mesh", "moved mesh"), extra: list[Mesh] = (),
                    dpi: int = 100) -> Path:
    """Panels of the original, the moved (and ``extra``) triangle meshes, edges drawn over the
    field ``field`` (its magnitude for a vector field) when given. Returns the PNG path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation

    meshes = [original, moved, *extra]
    figure = Figure(figsize=(4.6 * len(meshes), 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    for k, (mesh, title) in enumerate(zip(meshes, titles)):
        axes = figure.add_subplot(1, len(meshes), k + 1)
        triangulation = Triangulation(mesh.points[:, 0], mesh.points[:, 1], mesh.cells["triangle"])
        if field is not None and field in mesh.point_data:
            values = np.asarray(mesh.point_data[field], dtype=np.float64)
            values = np.linalg.norm(values, axis=1) if values.ndim == 2 else values
            axes.tripcolor(triangulation, values, shading="gouraud", cmap="coolwarm")
        axes.triplot(triangulation, color="k", linewidth=0.25)
        axes.set_title(title)
        axes.set_aspect("equal")
        axes.set_axis_off()
    return write_atomically(Path(out_png), lambda tmp: figure.savefig(tmp, dpi=dpi, format="png",
                                                                      metadata={"Software": MESHOP_MARK}))
