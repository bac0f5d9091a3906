"""Mesh -> PyVista scene pieces shared by `render`, `view` and `export_html`.

One place decides how a field is drawn: a 2D mesh from the top, a surface or point cloud as it is,
a 3D volume cut open towards the camera (the cut faces show the interior; a translucent ghost of
the removed part keeps the shape readable).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import MeshError, write_failure
from ..mesh import Mesh

CMAP = "viridis"
DIVERGING_CMAP = "RdBu_r"
GEOMETRY_COLOR = "#c9d3de"
GHOST_COLOR = "#8a96a3"
BOUNDARY_COLOR = "#d62728"
MAX_CELLS_WITH_EDGES = 20_000
MIN_OCTANT_SHARE = 0.06  # cut a volume's +x+y+z octant away when it holds this share of the volume
MAX_WINDOW = 8192        # pixels per side of a picture (a 100000 x 100000 one would take 40 GB)


def configure_headless() -> None:
    """Without a display, point VTK straight at EGL (or OSMesa) for off-screen rendering.

    VTK would find them itself, but only after trying X11 and logging a warning on stderr.
    """
    if not sys.platform.startswith("linux") or "VTK_DEFAULT_OPENGL_WINDOW" in os.environ:
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if ctypes.util.find_library("EGL"):
        os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
    elif ctypes.util.find_library("OSMesa"):
        os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkOSOpenGLRenderWindow"


def load_mesh(mesh_or_path) -> Mesh:
    """A :class:`Mesh` as is, or read from a path (a bad file raises :class:`MeshError`)."""
    if isinstance(mesh_or_path, Mesh):
        return mesh_or_path
    from ..io import read

    return read(mesh_or_path)


def _where(mesh: Mesh) -> str:
    return f"{mesh.source}: " if mesh.source else ""


def is_numeric_field(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf" and values.ndim in (1, 2)


def default_field(mesh: Mesh) -> str | None:
    """The first numeric point field, preferring one that is not a prediction or an error."""
    names = [n for n, v in mesh.point_data.items() if is_numeric_field(np.asarray(v))]
    plain = [n for n in names if not n.endswith(("_pred", "_error"))]
    return (plain or names or [None])[0]


def field_values(mesh: Mesh, name: str) -> tuple[np.ndarray, str]:
    """``(N,)`` float values of point field ``name`` and its label; a vector field gives its
    magnitude, labelled ``|name|``. Raises :class:`MeshError` naming missing/unusable fields."""
    mesh.require(name)
    values = np.asarray(mesh.point_data[name])
    if not is_numeric_field(values):
        raise MeshError(f"{_where(mesh)}point field '{name}' is not numeric and cannot be drawn.")
    if values.ndim == 2 and values.shape[1] > 1:
        return np.linalg.norm(values.astype(np.float64), axis=1), f"|{name}|"
    return values.reshape(len(values)).astype(np.float64), name


def to_pyvista(mesh: Mesh):
    """:class:`Mesh` -> ``pyvista.UnstructuredGrid`` (``PolyData`` for a point cloud) with every
    point field attached; 2D points get z = 0."""
    import meshio
    import pyvista as pv

    points = mesh.points
    if mesh.dim == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    if mesh.is_point_cloud:
        grid = pv.PolyData(points)
    else:
        grid = pv.from_meshio(meshio.Mesh(points, list(mesh.cells.items())))
    for name, values in mesh.point_data.items():
        if is_numeric_field(np.asarray(values)):
            grid.point_data[name] = np.asarray(values)
    return grid


def kind_of(mesh: Mesh) -> str:
    """How the mesh is drawn: ``"2d"``, ``"surface"``, ``"volume"`` or ``"points"``."""
    if mesh.is_point_cloud:
        return "points"
    if mesh.dim == 2:
        return "2d"
    return "surface" if mesh.is_surface else "volume"


@dataclass
class FieldStyle:
    """How one scalar array is coloured: colour map, limits and colour-bar title."""

    label: str
    clim: tuple[float, float]
    cmap: str = CMAP

    @classmethod
    def for_values(cls, values: np.ndarray, label: str, *, signed_error: bool = False) -> "FieldStyle":
        lo, hi = float(values.min()), float(values.max())
        if signed_error and lo < 0.0 < hi:
            bound = max(-lo, hi)
            return cls(label, (-bound, bound), DIVERGING_CMAP)
        if signed_error:
            return cls(label, nonempty_range(lo, hi), "magma_r")
        return cls(label, nonempty_range(lo, hi))


def nonempty_range(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    pad = max(abs(lo) * 1e-3, 1e-12)
    return lo - pad, hi + pad


def cut_open(grid):
    """Cut a volume ``grid`` open towards an isometric camera (looking from +x +y +z).

    Removes the octant above the centre of the bounding box in x, y and z when it holds at
    least :data:`MIN_OCTANT_SHARE` of the volume (a compact solid shows three cut faces);
    otherwise (an L-bracket, whose +++ octant is empty) the half above the centre plane with
    the largest cross-section. Cuts are exact plane clips through the cells, so the cut faces
    show interior values.

    Returns ``(kept, removed_skin)``: the kept volume and the outer surface of the removed part
    (drawn as a translucent ghost).
    """
    import pyvista as pv

    centre = np.asarray(grid.center)
    sizes = grid.compute_cell_sizes(length=False, area=False, volume=True)
    volume = np.abs(sizes.cell_data["Volume"])
    in_octant = (np.asarray(grid.cell_centers().points) > centre).all(axis=1)
    if volume[in_octant].sum() >= MIN_OCTANT_SHARE * volume.sum():
        axes = "xyz"
    else:
        areas = {axis: grid.slice(normal=axis, origin=centre).area for axis in "xyz"}
        axes = max(areas, key=areas.get)
    pieces, rest = [], grid
    for axis in axes:
        pieces.append(rest.clip(normal=axis, origin=centre, invert=True))
        rest = rest.clip(normal=axis, origin=centre, invert=False)
    kept = pv.merge([p for p in pieces if p.n_cells], merge_points=False)
    skin = grid.extract_surface(algorithm="dataset_surface")
    for axis in axes:
        skin = skin.clip(normal=axis, origin=centre, invert=False)
    return kept, skin


def scalar_bar_args(title: str, n_panels: int = 1) -> dict:
    """A horizontal colour bar under the picture, its title the field name."""
    return dict(title=title, vertical=False, position_x=0.2, position_y=0.03, width=0.6, height=0.1,
                title_font_size=22 if n_panels == 1 else 18, label_font_size=16 if n_panels == 1 else 14,
                n_labels=5, fmt="%.3g", color="black")


def add_field(plotter, grid, kind: str, array: str | None, style: FieldStyle | None, *,
              show_edges: bool | None = None, n_panels: int = 1, boundary: np.ndarray | None = None):
    """Draw ``grid`` into the active renderer coloured by point array ``array``; a volume with a
    field is cut open (:func:`cut_open`). ``array=None`` draws the geometry only: the outer
    surface with edges, and ``boundary`` nodes of 2D meshes and point clouds in red.
    Returns the actor carrying the colours."""
    if show_edges is None:
        show_edges = array is None or (kind == "2d" and grid.n_cells <= MAX_CELLS_WITH_EDGES)
    if array is None:
        colour = dict(color=GEOMETRY_COLOR)
    else:
        colour = dict(scalars=array, clim=style.clim, cmap=style.cmap, interpolate_before_map=True,
                      scalar_bar_args=scalar_bar_args(style.label, n_panels))
    edges = dict(show_edges=show_edges, edge_color="#1f2630", edge_opacity=0.35, line_width=1)
    if kind == "points":
        size = max(3.0, min(12.0, 600.0 / np.sqrt(max(grid.n_points, 1))))
        if boundary is not None:  # geometry only: interior points grey, boundary points red
            colour = dict(scalars=boundary.astype(float), cmap=[GEOMETRY_COLOR, BOUNDARY_COLOR],
                          clim=(0, 1), show_scalar_bar=False)
        actor = plotter.add_mesh(grid, render_points_as_spheres=True, point_size=size, **colour)
    elif kind == "2d":
        actor = plotter.add_mesh(grid, lighting=False, **colour, **edges)
    elif kind == "surface" or array is None:  # geometry only: the whole outer surface
        surface = grid if kind == "surface" else grid.extract_surface(algorithm="dataset_surface")
        actor = plotter.add_mesh(surface, smooth_shading=not show_edges, split_sharp_edges=not show_edges,
                                 **colour, **edges)
    else:
        kept, removed_skin = cut_open(grid)
        if removed_skin.n_cells:
            plotter.add_mesh(removed_skin, color=GHOST_COLOR, opacity=0.12, lighting=False)
        actor = plotter.add_mesh(kept.extract_surface(algorithm="dataset_surface"),
                                 ambient=0.35, diffuse=0.7, specular=0.1, **colour, **edges)
    if array is not None and style.label in plotter.scalar_bars:
        plotter.scalar_bars[style.label].SetTextPositionToPrecedeScalarBar()  # labels under the bar
    if boundary is not None and kind == "2d" and boundary.any():
        plotter.add_points(np.asarray(grid.points)[boundary], color=BOUNDARY_COLOR,
                           render_points_as_spheres=True, point_size=6)
    return actor


def fit_camera(plotter, dim: int, points=None, *, top: float = 0.06, bottom: float = 0.17) -> None:
    """Top view for 2D (``dim == 2``), isometric for 3D, with parallel projection and ``points``
    (``(N, 3)``, default the corners of everything drawn) fitted exactly into the band between a
    ``top`` and a ``bottom`` margin (fractions of the panel height, left for the title and the
    colour bar)."""
    if dim == 2:
        plotter.view_xy()
    else:
        plotter.view_isometric()
    plotter.enable_parallel_projection()
    camera = plotter.camera
    if points is None:
        xmin, xmax, ymin, ymax, zmin, zmax = plotter.renderer.bounds
        points = [[x, y, z] for x in (xmin, xmax) for y in (ymin, ymax) for z in (zmin, zmax)]
    points = np.asarray(points, dtype=np.float64)
    view = np.subtract(camera.focal_point, camera.position)
    distance = np.linalg.norm(view)
    view /= distance
    up = np.asarray(camera.up, dtype=float)
    up = up - view * (up @ view)
    up /= np.linalg.norm(up)
    right = np.cross(view, up)
    across, along = points @ right, points @ up
    width, height = np.ptp(across), np.ptp(along)
    centre = points.mean(axis=0)
    centre += right * ((across.max() + across.min()) / 2 - centre @ right)
    centre += up * ((along.max() + along.min()) / 2 - centre @ up)
    x0, y0, x1, y1 = plotter.renderer.GetViewport()
    aspect = (x1 - x0) * plotter.window_size[0] / ((y1 - y0) * plotter.window_size[1])
    band = 1.0 - top - bottom
    scale = 1.03 * max(height / (2 * band), width / (2 * 0.96 * aspect), 1e-12)
    focal = centre - up * scale * (2 * bottom + band - 1)
    camera.focal_point = focal
    camera.position = focal - view * max(distance, 2 * np.linalg.norm(points - centre, axis=1).max())
    camera.up = up
    camera.parallel_scale = scale
    plotter.renderer.reset_camera_clipping_range()


def new_plotter(window_size, shape=(1, 1), off_screen: bool = True):
    """A white-background plotter with black text; :class:`MeshError` for a ``window_size`` that is
    not ``(width, height)`` in pixels from 1 to :data:`MAX_WINDOW` (before any image is allocated)."""
    try:
        width, height = window_size
        sizes_ok = all(not isinstance(v, bool) and int(v) == v and 1 <= v <= MAX_WINDOW for v in (width, height))
    except (TypeError, ValueError, OverflowError):
        sizes_ok = False
    if not sizes_ok:
        raise MeshError(f"window_size {window_size!r:.60}: expected (width, height) in pixels, whole numbers "
                        f"from 1 to {MAX_WINDOW}.")
    configure_headless()
    import pyvista as pv

    theme = pv.themes.DocumentTheme()
    theme.font.color = "black"
    theme.font.family = "arial"
    plotter = pv.Plotter(off_screen=off_screen, window_size=list(window_size), shape=shape,
                         border=False, theme=theme)
    return plotter


def write_atomically(path: Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename into ``path``, so no half-written file is left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as err:          # an unwritable folder, a full disk: as meshop.write says it
        raise write_failure(path, f"this {path.suffix} file" if path.suffix else "the file", err) from None
    return path
