"""A browser page of a time series: the vtk.js view of :func:`~meshop.viz.export_html` with a
time slider over the frames, every frame's colours (and positions, for moving nodes) embedded.

The scene is the first frame drawn as :func:`~meshop.viz.render` draws it (volumes cut open);
each frame's values ride through the same cut as extra point arrays, so frame ``k`` is frame 0's
scene with its colours (and points) replaced. Values are quantized to 16 bits over the series'
colour range, positions to 16 bits over the box every frame lies in; past ``max_mb`` of frame
data every k-th frame is kept (the last always).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..outputs import MESHOP_MARK
from ..trajectory import Trajectory
from . import scene

#: default budget of embedded frame data (before base64), megabytes
MAX_FRAME_MB = 20.0
_VALUES, _POSITIONS = "__meshop_values_", "__meshop_points_"
_LEVELS = 65535  # 16-bit quantization
_SCRIPT = Path(__file__).with_name("time_slider.js")


def export_series_html(series: Trajectory | str | Path, out_html: str | Path, field: str | None = None, *,
                       max_mb: float = MAX_FRAME_MB, window_size=(1000, 750)) -> Path:
    """Write one self-contained HTML page of ``series`` with a time slider (and a play button).

    Args:
        series: a :class:`~meshop.Trajectory` or a ``.pvd`` / ``.xdmf`` file; fixed or moving nodes.
        out_html: the page; written atomically. No server, nothing fetched from the network.
        field: the field shown (default: the first time-varying one); one colour range for all
            frames. ``#frame=K`` in the page's URL opens it at frame ``K``.
        max_mb: budget of frame data; longer series keep every k-th frame (the page says so).

    Raises:
        MeshError: a bad series or a missing field. Needs ``trame-vtk`` (as ``export_html``).
    """
    from ..io import read_series
    from .animation import series_field, series_box
    from .interactive import VIEWER_TITLE, _vtkjs_page
    from .pictures import field_plotter

    traj = series if isinstance(series, Trajectory) else read_series(series)
    field, values, clim = series_field(traj, field)
    shown = _frames_within(traj.n_frames, (8 if traj.moving else 2) * traj.n_points, max_mb)
    mesh = traj.frame(0)
    extras = {f"{_VALUES}{k}": values[i].astype(np.float32) for k, i in enumerate(shown)}
    if traj.moving:
        extras.update({f"{_POSITIONS}{k}": _points3(traj.positions[i]) for k, i in enumerate(shown)})
    mesh = mesh.with_point_data(**extras)
    box = series_box(traj)
    plotter = field_plotter(mesh, field, window_size=window_size, clim=clim, points=box)
    try:
        actors = [_frame_data(mapper, len(shown), box, clim) for mapper in _mappers(plotter)]
        plotter.render()
        camera = {"scale": plotter.camera.parallel_scale, "up": list(plotter.camera.up),
                  "focal_point": list(plotter.camera.focal_point), "position": list(plotter.camera.position)}
        page = _vtkjs_page(plotter.render_window)
    finally:
        plotter.close()
    frames = {"times": [float(traj.times[i]) for i in shown], "indices": [int(i) for i in shown],
              "n_frames": traj.n_frames, "field": field, "clim": list(clim), "camera": camera,
              "actors": [a for a in actors if a is not None]}
    title = " - ".join(str(p) for p in (traj.source.name if traj.source else None, field) if p)
    page = page.replace(VIEWER_TITLE, f"<title>{html.escape(title)} | {MESHOP_MARK}</title>", 1)
    script = _SCRIPT.read_text(encoding="utf-8").replace("__MESHOP_FRAMES__", json.dumps(frames))
    page = page.replace("</body>", f"<script>\n{script}</script>\n</body>", 1)
    return scene.write_atomically(Path(out_html), lambda tmp: tmp.write_text(page, encoding="utf-8"))


def _frames_within(n_frames: int, frame_bytes: int, max_mb: float) -> list[int]:
    """Indices of the frames kept: all, or every k-th and the last when ``n_frames`` frames of
    ``frame_bytes`` (16-bit values, + positions when moving: the node count bounds the drawn
    scene's) would exceed ``max_mb``."""
    stride = max(1, int(np.ceil(n_frames * max(frame_bytes, 1) / (max_mb * 1e6))))
    kept = list(range(0, n_frames, stride))
    return kept if kept[-1] == n_frames - 1 else [*kept, n_frames - 1]


def _points3(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    return points if points.shape[1] == 3 else np.column_stack([points, np.zeros(len(points), np.float32)])


def _mappers(plotter):
    """The mappers of the plotter's actors whose inputs (what vtk.js receives) are datasets."""
    for actor in plotter.renderer.actors.values():
        mapper = actor.GetMapper() if hasattr(actor, "GetMapper") else None
        if mapper is not None and mapper.GetInput() is not None:
            yield mapper


def _frame_data(mapper, n_shown: int, box: np.ndarray, clim: tuple[float, float]) -> dict | None:
    """The quantized frames of one mapper's input (``values``: the colours, when the mapper
    colours by scalars; ``points``: positions), taking the extra arrays out of it so the scene
    itself stays one frame. None if it carries none."""
    import pyvista as pv

    dataset = pv.wrap(mapper.GetInput())
    data = dataset.point_data
    if f"{_VALUES}0" not in data and f"{_POSITIONS}0" not in data:
        return None
    coloured = bool(mapper.GetScalarVisibility()) and data.active_scalars_name is not None
    entry = {"n_points": int(dataset.n_points), "scalars": data.active_scalars_name if coloured else None}
    if coloured:
        stack = np.stack([np.asarray(data[f"{_VALUES}{k}"]) for k in range(n_shown)])
        entry["values"] = _quantized(stack, *clim)
    if f"{_POSITIONS}0" in data:
        lo, hi = box.min(axis=0), box.max(axis=0)
        stack = np.stack([np.asarray(data[f"{_POSITIONS}{k}"]) for k in range(n_shown)])
        entry["points"] = _quantized(stack, lo, hi)
        entry["box"] = [lo.tolist(), hi.tolist()]
    for name in [n for n in data.keys() if n.startswith((_VALUES, _POSITIONS))]:
        data.remove(name)
    return entry


def _quantized(values: np.ndarray, lo, hi) -> str:
    """``values`` scaled from ``[lo, hi]`` (per trailing axis) to 16-bit integers, little-endian,
    base64. Decoding ``lo + q / 65535 * (hi - lo)`` is exact to ``(hi - lo) / 131070``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    if not np.isfinite(values).all():
        raise MeshError("the series has NaN or infinite values in a drawn frame.")
    q = np.clip(np.rint((values - lo) / span * _LEVELS), 0, _LEVELS).astype("<u2")
    return base64.b64encode(q.tobytes()).decode("ascii")
