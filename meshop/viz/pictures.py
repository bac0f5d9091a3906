"""Off-screen PNG pictures of fields on meshes: one field, or truth | prediction | error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..mesh import Mesh
from ..outputs import MESHOP_MARK
from . import scene

SINGLE_WINDOW = (1200, 900)
COMPARE_WINDOW = (1800, 640)


def render(mesh_or_path: Mesh | str | Path, field: str | None = None, out: str | Path = "render.png", *,
           compare: bool = False, reference: Mesh | str | Path | None = None,
           window_size: tuple[int, int] | None = None,
           show_edges: bool | None = None, title: str | None = None) -> Path:
    """Render a point field of a mesh to a PNG file, off screen (no display needed).

    Args:
        mesh_or_path: a :class:`Mesh` or a mesh file path.
        field: point field to colour by; default the first one (geometry and boundary when the
            mesh has none). A vector field is drawn as its magnitude.
        out: PNG path, written atomically.
        compare: three panels ``field`` | ``field_pred`` | ``field_error`` (see
            :func:`render_comparison`); needs the truth ``field``, in the mesh or in
            ``reference``.
        reference: with ``compare``, a mesh (or file) on the same nodes holding the truth.
        window_size: pixels ``(width, height)``; default 1200x900, 1800x640 with ``compare``.
        show_edges: draw cell edges; default on for 2D meshes up to 20,000 cells.
        title: text in the top-left corner (single panel only).

    Returns:
        The PNG path.

    Raises:
        MeshError: unreadable file, missing or non-numeric field.
    """
    mesh = scene.load_mesh(mesh_or_path)
    if compare:
        return render_comparison(mesh, field, out, reference=reference, window_size=window_size,
                                 show_edges=show_edges)
    plotter = field_plotter(mesh, field, window_size=window_size or SINGLE_WINDOW,
                            show_edges=show_edges, title=title)
    return _save(plotter, scene.kind_of(mesh), out)


def field_plotter(mesh: Mesh, field: str | None, *, window_size=SINGLE_WINDOW, show_edges=None,
                  title: str | None = None, clim: tuple[float, float] | None = None, points=None):
    """An off-screen plotter showing one field of ``mesh`` (see :func:`render`), camera fitted
    to ``points`` (default the mesh's). ``clim`` fixes the colour range (animations)."""
    kind = scene.kind_of(mesh)
    field = field if field is not None else scene.default_field(mesh)
    grid = scene.to_pyvista(mesh)
    plotter = scene.new_plotter(window_size)
    if field is None:
        boundary = mesh.boundary_mask if kind in ("2d", "points") else None
        scene.add_field(plotter, grid, kind, None, None, show_edges=show_edges, boundary=boundary)
    else:
        values, label = scene.field_values(mesh, field)
        grid.point_data[label] = values
        style = scene.FieldStyle.for_values(values, label) if clim is None else scene.FieldStyle(label, clim)
        scene.add_field(plotter, grid, kind, label, style, show_edges=show_edges)
    if title:
        plotter.add_text(title, position="upper_left", font_size=14, color="black")
    fitted = grid.points if points is None else points
    scene.fit_camera(plotter, mesh.dim, fitted, bottom=0.17 if field is not None else 0.04)
    return plotter


def render_comparison(mesh_or_path: Mesh | str | Path, field: str | None, out_png: str | Path, *,
                      reference: Mesh | str | Path | None = None,
                      window_size: tuple[int, int] | None = None,
                      show_edges: bool | None = None) -> Path:
    """Three panels side by side: truth ``field`` | prediction ``field_pred`` | error.

    Truth and prediction share colour limits; the error (``field_error``, or ``field_pred -
    field`` when the mesh has no error field) has its own limits, a diverging map symmetric
    about zero when it takes both signs. The error panel's title gives the relative L2 error
    ``||pred - truth|| / ||truth||``. ``field=None`` picks the first field that has a
    ``_pred`` companion. ``reference``: a mesh or file on the same nodes whose fields are the
    truth (a prediction file holds only ``field_pred`` unless the input held the truth). Raises
    :class:`MeshError` naming a missing field or a reference on other nodes.
    """
    mesh = scene.load_mesh(mesh_or_path)
    if reference is not None:
        truth_mesh = scene.load_mesh(reference)
        mesh = with_reference(mesh, truth_mesh)
        _require_truth_in_reference(mesh, truth_mesh, field)
    field = field if field is not None else _default_compared_field(mesh)
    mesh.require(field, f"{field}_pred")
    truth, truth_label = scene.field_values(mesh, field)
    pred, pred_label = scene.field_values(mesh, f"{field}_pred")
    if f"{field}_error" in mesh.point_data:
        error, error_label = scene.field_values(mesh, f"{field}_error")
    else:
        error, error_label = pred - truth, f"{field}_pred - {field}"
    t_raw, p_raw = (np.asarray(mesh.point_data[n], dtype=np.float64) for n in (field, f"{field}_pred"))
    rel_l2 = np.linalg.norm(p_raw - t_raw) / max(np.linalg.norm(t_raw), 1e-300)

    both = np.concatenate([truth, pred])
    clim = scene.nonempty_range(float(both.min()), float(both.max()))
    panels = [
        (f"truth: {field}", truth, scene.FieldStyle(truth_label, clim)),
        (f"prediction: {field}_pred", pred, scene.FieldStyle(pred_label, clim)),
        (f"error (relative L2 {rel_l2:.2%})", error,
         scene.FieldStyle.for_values(error, error_label, signed_error=True)),
    ]
    kind = scene.kind_of(mesh)
    grid = scene.to_pyvista(mesh)
    plotter = scene.new_plotter(window_size or COMPARE_WINDOW, shape=(1, 3))
    for column, (heading, values, style) in enumerate(panels):
        plotter.subplot(0, column)
        panel = grid.copy(deep=False)
        panel.point_data[style.label] = values
        scene.add_field(plotter, panel, kind, style.label, style, show_edges=show_edges, n_panels=3)
        plotter.add_text(heading, position="upper_edge", font_size=12, color="black")
        scene.fit_camera(plotter, mesh.dim, grid.points)
    plotter.link_views()
    return _save(plotter, kind, out_png)


def with_reference(mesh: Mesh, reference: Mesh) -> Mesh:
    """``mesh`` with the point fields of ``reference`` (the truth) that it lacks.

    The two must have the same nodes in the same order (coordinates equal to 1e-9 of the part's
    size), as a prediction file and the mesh it was predicted on have.
    """
    where = f"{reference.source}: " if reference.source else "reference: "
    same = reference.points.shape == mesh.points.shape and np.allclose(
        reference.points, mesh.points, rtol=0.0, atol=1e-9 * max(mesh.size, 1e-300))
    if not same:
        raise MeshError(f"{where}has {reference.n_points} nodes, not the {mesh.n_points} nodes of "
                        f"{mesh.source or 'the prediction'} in the same places; --reference must be the mesh "
                        "the prediction was made on, holding the true field.")
    return mesh.with_point_data(**{k: v for k, v in reference.point_data.items() if k not in mesh.point_data})


def _require_truth_in_reference(mesh: Mesh, reference: Mesh, field: str | None) -> None:
    """Refuse a ``reference`` that does not hold the true field either, naming it (not the
    prediction file, whose own message would send the user to ``--reference`` again)."""
    if field is not None:
        wanted = [field] if f"{field}_pred" in mesh.point_data else []
    else:
        wanted = [n[: -len("_pred")] for n in mesh.point_data if n.endswith("_pred")]
        if any(name in mesh.point_data for name in wanted):
            return
        wanted = wanted[:1]
    if wanted and wanted[0] not in mesh.point_data:
        where = f"{reference.source}: " if reference.source else "reference: "
        have = ", ".join(reference.point_data) or "none"
        raise MeshError(f"{where}--reference holds no true '{wanted[0]}' either (fields present: {have}); "
                        "give the mesh that holds it (a solved sample, or the part with its FEM answer), "
                        "or render the prediction alone without --compare.")


def _default_compared_field(mesh: Mesh) -> str:
    for name in mesh.point_data:
        if f"{name}_pred" in mesh.point_data:
            return name
    where = f"{mesh.source}: " if mesh.source else ""
    have = ", ".join(mesh.point_data) or "none"
    predicted = [n[: -len("_pred")] for n in mesh.point_data if n.endswith("_pred")]
    if predicted:
        raise MeshError(f"{where}--compare needs the true '{predicted[0]}' beside '{predicted[0]}_pred', and this "
                        f"file has no '{predicted[0]}' (fields present: {have}); give the mesh that holds it with "
                        "--reference TRUTH.vtu, or render the prediction alone without --compare.")
    raise MeshError(f"{where}--compare needs a field and its '<name>_pred' companion, and none has one "
                    f"(fields present: {have}); render it without --compare.")


def write_png(image: np.ndarray, path: Path) -> None:
    """An ``(H, W, 3|4)`` uint8 picture as a PNG marked as meshop's (see :mod:`meshop.outputs`)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", MESHOP_MARK)
    Image.fromarray(image).save(path, format="PNG", pnginfo=info)


def _save(plotter, kind: str, out: str | Path) -> Path:
    if kind in ("surface", "volume"):
        plotter.enable_depth_peeling()
    plotter.enable_anti_aliasing("ssaa")
    try:
        image = plotter.screenshot(None, return_img=True)
        return scene.write_atomically(Path(out), lambda tmp: write_png(image, tmp))
    finally:
        plotter.close()
