"""Animations of time series: one frame per saved time, a fixed colour range, GIF or MP4."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..outputs import MESHOP_MARK
from ..progress import progress_bar
from ..trajectory import Trajectory
from . import scene

ANIMATION_WINDOW = (900, 700)
#: the longest a GIF shows one frame: 65,535 hundredths of a second
GIF_LONGEST_MS = 655_350


def animate(series: Trajectory | str | Path, out: str | Path, field: str | None = None, *, fps: float = 10.0,
            every: int = 1, window_size=ANIMATION_WINDOW, progress: bool = False) -> Path:
    """Render a time series frame by frame to an animated ``.gif`` (Pillow) or ``.mp4``
    (imageio-ffmpeg, ``pip install imageio[ffmpeg]``), off screen.

    Args:
        series: a :class:`~meshop.Trajectory` or a ``.pvd`` / ``.xdmf`` file.
        out: the animation's path; its suffix picks the format. Written atomically.
        field: the field shown (default: the first time-varying one); one colour range for all
            frames, the time in the corner. Moving nodes are drawn where they are.
        fps: frames per second; every: draw every ``every``-th frame.

    Raises:
        MeshError: unknown format, a missing field, no MP4 encoder installed.
    """
    from ..io import read_series
    from .pictures import field_plotter

    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".gif", ".mp4"):
        raise MeshError(f"{out}: an animation is written as .gif or .mp4, not '{kind or out.name}'.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not 0 < fps < np.inf:
        raise MeshError(f"--fps {fps}: expected a positive number of frames per second.")
    if kind == ".gif" and 1000 / fps > GIF_LONGEST_MS:
        raise MeshError(f"--fps {fps:g}: a GIF shows a frame for at most {GIF_LONGEST_MS / 1000:g} s; "
                        f"give at least {1000 / GIF_LONGEST_MS:.2g} frames per second.")
    if kind == ".mp4":
        _mp4_writer()                      # its encoder is there before the frames are drawn
    traj = series if isinstance(series, Trajectory) else read_series(series)
    field, _, clim = series_field(traj, field)
    bounds = series_box(traj)
    images = []
    frames = range(0, traj.n_frames, max(int(every), 1))
    bar = progress_bar(len(frames), "frames", "frame", progress)
    for index in frames:
        plotter = field_plotter(traj.frame(index), field, window_size=window_size, clim=clim,
                                title=f"t = {traj.times[index]:.4g}", points=bounds)
        images.append(plotter.screenshot(return_img=True))
        plotter.close()
        bar.update(1)
    bar.close()
    return scene.write_atomically(out, lambda tmp: _write(images, tmp, kind, fps))


def series_field(traj: Trajectory, field: str | None) -> tuple[str, np.ndarray, tuple[float, float]]:
    """``(name, values, clim)``: the field drawn (default the first time-varying one), its
    ``(T, N)`` values per frame (magnitudes of vectors) and one colour range for all frames.
    Raises :class:`MeshError` when the series has no such field."""
    field = field or next(iter(traj.fields), None) or next(iter(traj.mesh.point_data), None)
    if field is None:
        raise MeshError(f"{traj.source or 'series'}: the series holds no field to draw.")
    if field not in traj.fields and field not in traj.mesh.point_data:
        known = ", ".join([*traj.fields, *traj.mesh.point_data])
        raise MeshError(f"{traj.source or 'series'}: no field '{field}' (fields: {known}).")
    values = np.asarray(traj.fields[field] if field in traj.fields else traj.mesh.point_data[field][None])
    if values.ndim > 2:
        values = np.linalg.norm(values.reshape(*values.shape[:2], -1), axis=2)
    values = np.broadcast_to(values.astype(np.float64), (traj.n_frames, traj.n_points))
    return field, values, scene.nonempty_range(float(values.min()), float(values.max()))


def series_box(traj: Trajectory) -> np.ndarray:
    """``(8, 3)`` corners of the box every frame's nodes lie in (a fixed camera)."""
    points = traj.positions.reshape(-1, traj.dim) if traj.moving else traj.mesh.points
    lo, hi = points.min(axis=0), points.max(axis=0)
    if traj.dim == 2:
        lo, hi = np.append(lo, 0.0), np.append(hi, 0.0)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _write(images: list[np.ndarray], path: Path, kind: str, fps: float) -> None:
    if kind == ".gif":
        from PIL import Image

        frames = [Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE) for image in images]
        frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:],
                       duration=int(round(1000 / fps)), loop=0, comment=MESHOP_MARK)   # marked as meshop's
        return
    imageio = _mp4_writer()
    with imageio.get_writer(str(path), format="FFMPEG", fps=fps) as writer:
        for image in images:
            writer.append_data(image)


def _mp4_writer():
    """imageio, which writes MP4 through imageio-ffmpeg; :class:`MeshError` saying how to install it."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise MeshError("writing .mp4 needs imageio-ffmpeg: pip install 'imageio[ffmpeg]' "
                        "(or write a .gif).") from None
    return imageio
