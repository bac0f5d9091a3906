"""Interactive looks at a mesh: a desktop window (`view`) and a serverless browser page
(`export_html`)."""

from __future__ import annotations

import html
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..io.series import is_series
from ..mesh import Mesh
from ..outputs import MESHOP_MARK
from ..trajectory import Trajectory
from . import scene
from .pictures import SINGLE_WINDOW, field_plotter

HELP = "n / p: next / previous field"
# The vtk.js viewer that trame-vtk ships links its favicons from the web; a page that must work
# offline gets an empty data URL instead.
FAVICON_URL = "https://kitware.github.io/vtk-js/icon/favicon-${t}x${t}.png"
#: the page title of trame-vtk's viewer template, replaced by the mesh and field shown
VIEWER_TITLE = "<title>VTK.js | Example - OfflineLocalView</title>"


def interactive_plotter(mesh_or_path: Mesh | str | Path, field: str | None = None, *,
                        off_screen: bool = False, window_size=SINGLE_WINDOW):
    """The plotter :func:`view` shows: the field (a 3D mesh clipped by a draggable plane
    widget), a colour bar, and keys ``n``/``p`` cycling through every numeric point field.

    Returns the ``pyvista.Plotter``; ``plotter.show()`` opens the window. ``off_screen=True``
    builds it without a display (for tests and screenshots).
    """
    mesh = scene.load_mesh(mesh_or_path)
    names = [n for n, v in mesh.point_data.items() if scene.is_numeric_field(np.asarray(v))]
    if field is not None:
        scene.field_values(mesh, field)  # raises MeshError naming a missing field
    if not names:
        raise MeshError(f"{mesh.source or 'the mesh'}: has no numeric point field to view.")
    grid = scene.to_pyvista(mesh)
    styles = []
    for name in names:
        values, label = scene.field_values(mesh, name)
        grid.point_data[label] = values
        styles.append(scene.FieldStyle.for_values(values, label))
    kind = scene.kind_of(mesh)
    plotter = scene.new_plotter(window_size, off_screen=off_screen)
    first = styles[names.index(field) if field is not None else 0]
    bar = scene.scalar_bar_args(first.label)
    common = dict(scalars=first.label, clim=first.clim, cmap=first.cmap, scalar_bar_args=bar)
    if kind in ("volume", "surface"):
        plotter.add_mesh(grid.outline(), color=scene.GHOST_COLOR)
        actor = plotter.add_mesh_clip_plane(grid, normal="-x", crinkle=False, **common)
    elif kind == "points":
        actor = plotter.add_mesh(grid, render_points_as_spheres=True, point_size=6, **common)
    else:
        actor = plotter.add_mesh(grid, lighting=False, show_edges=grid.n_cells <= scene.MAX_CELLS_WITH_EDGES,
                                 edge_color="#1f2630", edge_opacity=0.35, **common)
    plotter.scalar_bars[first.label].SetTextPositionToPrecedeScalarBar()
    plotter.add_text(HELP, position="upper_left", font_size=10, color="black")
    _FieldCycler(plotter, actor, styles, start=styles.index(first)).bind()
    scene.fit_camera(plotter, mesh.dim, grid.points)
    if kind != "2d":
        plotter.disable_parallel_projection()
    return plotter


class _FieldCycler:
    """Recolours one actor by the next/previous field on a key press, colour bar included."""

    def __init__(self, plotter, actor, styles: list[scene.FieldStyle], start: int = 0):
        self.plotter, self.actor, self.styles, self.index = plotter, actor, styles, start

    def bind(self) -> None:
        self.plotter.add_key_event("n", lambda: self.show(self.index + 1))
        self.plotter.add_key_event("p", lambda: self.show(self.index - 1))

    def show(self, index: int) -> None:
        old = self.styles[self.index].label
        self.index = index % len(self.styles)
        style = self.styles[self.index]
        mapper = self.actor.mapper
        mapper.SetScalarModeToUsePointFieldData()
        mapper.SelectColorArray(style.label)
        mapper.lookup_table.cmap = style.cmap
        mapper.scalar_range = style.clim
        if old in self.plotter.scalar_bars:
            self.plotter.remove_scalar_bar(old)
        self.plotter.add_scalar_bar(mapper=mapper, **scene.scalar_bar_args(style.label))
        self.plotter.scalar_bars[style.label].SetTextPositionToPrecedeScalarBar()
        self.plotter.render()

    @property
    def label(self) -> str:
        return self.styles[self.index].label


def view(mesh_or_path: Mesh | str | Path, field: str | None = None) -> None:
    """Open an interactive window: rotate/zoom with the mouse, drag the clip plane (3D), press
    ``n``/``p`` to switch fields. Needs a display."""
    interactive_plotter(mesh_or_path, field).show(title="meshop view")


def export_html(mesh_or_path: Mesh | Trajectory | str | Path, out_html: str | Path, field: str | None = None, *,
                window_size=SINGLE_WINDOW) -> Path:
    """Write a self-contained interactive page of one field (rotate, zoom, pan in the browser).
    A time series (a :class:`~meshop.Trajectory`, ``.pvd``, ``.xdmf``) gets a time slider:
    :func:`~meshop.viz.series_page.export_series_html`.

    The scene is drawn as :func:`render` draws it (3D volumes cut open towards the camera),
    serialized to the vtk.js scene format and embedded, with the vtk.js viewer, in one HTML
    file: it opens from disk with no server and fetches nothing from the network.
    Needs the ``trame-vtk`` package (the serializer and the viewer page).
    """
    if isinstance(mesh_or_path, Trajectory) or (not isinstance(mesh_or_path, Mesh) and is_series(mesh_or_path)):
        from .series_page import export_series_html

        return export_series_html(mesh_or_path, out_html, field)
    mesh = scene.load_mesh(mesh_or_path)
    plotter = field_plotter(mesh, field, window_size=window_size)
    try:
        plotter.render()
        page = _vtkjs_page(plotter.render_window)
    finally:
        plotter.close()
    shown = field if field is not None else scene.default_field(mesh)
    title = " - ".join(str(part) for part in (mesh.source.name if mesh.source else None, shown) if part)
    page = page.replace(VIEWER_TITLE, f"<title>{html.escape(title or 'mesh')} | {MESHOP_MARK}</title>", 1)

    def write(tmp: Path) -> None:
        tmp.write_text(page, encoding="utf-8")

    return scene.write_atomically(Path(out_html), write)


def _vtkjs_page(render_window) -> str:
    """The HTML of trame-vtk's offline vtk.js viewer with ``render_window``'s scene embedded.

    Hand-written because PyVista's ``export_html`` (via trame-pyvista) starts a trame web server
    to serialize the scene; the same trame-vtk serializers are called here directly.
    """
    try:
        from trame_vtk.modules.vtk.serializers import (SynchronizationContext, extract_array_hash,
                                                       initialize_serializers, reference_id,
                                                       serialize)
        from trame_vtk.tools.vtksz2html import write_html
    except ImportError as err:
        raise ImportError("export_html needs trame-vtk: pip install trame-vtk") from err
    initialize_serializers()
    context = SynchronizationContext()
    context.set_ignore_last_dependencies(True)
    state = serialize(None, render_window, "meshop-view", context, 1)
    camera = render_window.GetRenderers().GetFirstRenderer().GetActiveCamera()
    state["extra"] = {"vtkRefId": reference_id(render_window),
                      "centerOfRotation": camera.GetFocalPoint(), "camera": reference_id(camera)}
    hashes = {entry["hash"]: dict(entry, content=context.get_cached_data_array(entry["hash"], False))
              for entry in extract_array_hash(state)}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("index.json", json.dumps({"hashes": hashes, "scene": state}))
    page = io.StringIO()
    write_html(archive.getvalue(), page)
    return page.getvalue().replace(FAVICON_URL, "data:,")
