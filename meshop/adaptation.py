"""`meshop.adapt`: move the nodes of a 2D triangle mesh towards a field's fronts (r-adaptation).

(The module is ``meshop.adaptation``, so that importing it never hides the function.)

>>> moved = meshop.adapt(meshop.read("plate.vtu"), "u")     # -> Adaptation
>>> moved.mesh, moved.quality.min_angle, moved.notes

Two movers equidistribute the same monitor ``m = 1 + |∇u| / (β mean|∇u|)``: ``"dmm"``, the
data-free neural mesh mover (one forward pass; a checkpoint of :class:`~meshop.models.dmm.DMM`),
and ``"classical"``, the Monge–Ampère relaxation of :mod:`meshop.geometry.monge_ampere`. Both
keep boundary nodes on their boundary curves, corners fixed, and return a valid mesh.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MeshError
from .geometry.monitor import BETA, P1Locator
from .geometry.moving import MeshQuality, mesh_quality
from .mesh import Mesh, _numeric

#: the bundled DMM checkpoint, used by default when it exists
BUNDLED_DMM = Path(__file__).parent / "assets" / "models" / "dmm.safetensors"
METHODS = ("dmm", "classical")


@dataclass
class Adaptation:
    """A moved mesh and how it was made.

    Attributes:
        mesh: the moved mesh: same cells, new points; every point field is re-sampled (P1) at the
            new positions and ``displacement`` ``(N, 2)`` is added.
        quality: inverted cells (always 0), min angle, min-angle histogram, back-offs.
        method: ``"dmm"`` or ``"classical"``; seconds: wall time of the move itself.
        notes: what the user should know (defaults taken, back-offs).
    """

    mesh: Mesh
    quality: MeshQuality
    method: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def adapt(mesh: Mesh | str | Path, field: str | np.ndarray, model=None, method: str | None = None,
          beta: float = BETA) -> Adaptation:
    """Move the nodes of a 2D triangle mesh to resolve ``field``.

    Args:
        mesh: a :class:`Mesh` or a path to one.
        field: name of a point field of the mesh, or nodal values ``(N,)`` / ``(N, c)``.
        model: a DMM checkpoint path or a :class:`~meshop.models.dmm.DMM`; implies ``"dmm"``.
        method: ``"dmm"`` or ``"classical"``; default: ``"dmm"`` with the bundled checkpoint when
            there is one, else ``"classical"`` (said in ``notes``).
        beta: monitor parameter β of the classical mover (a DMM uses the β it was trained with).

    Raises:
        MeshError: not a 2D triangle mesh, unknown field or method, unreadable checkpoint.
    """
    from .io import read

    if not isinstance(mesh, (Mesh, str, os.PathLike)):
        raise TypeError(f"adapt needs a meshop.Mesh or a mesh file path, got {type(mesh).__name__}.")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.number)) or not 0 < beta < np.inf:
        raise MeshError(f"--beta must be a positive number, got {beta!r}.")
    mesh = read(mesh) if isinstance(mesh, (str, os.PathLike)) else mesh
    points, triangles, values = _inputs(mesh, field)
    locator = _locator(mesh)
    method, model, notes = _choose(method, model)
    start = time.perf_counter()
    if flat := _no_fronts(values, field):
        # a constant field has no fronts: both movers would still move the nodes (the DMM by a few
        # % of the size, its network's answer to a zero gradient; the classical mover relaxed a zero
        # residual 400 steps), so the mesh is the answer
        notes.append(f"{flat}: it has no fronts to move the nodes to, so the mesh is returned unmoved.")
        return Adaptation(_moved_mesh(mesh, points.copy(), locator), mesh_quality(points, triangles), method,
                          time.perf_counter() - start, notes)
    if method == "classical":
        from .geometry.monge_ampere import monge_ampere_move

        result = monge_ampere_move(points, triangles, values, beta=beta)
        moved, quality = result.points, result.quality
        notes.append(f"classical Monge-Ampere mover: {result.iterations} relaxation steps, residual "
                     f"{result.residuals[0]:.3g} -> {result.residuals[-1]:.3g}")
    else:
        from .models.dmm import prepare

        moved, quality = model.move(prepare(points, triangles, values, beta=model.beta))
    seconds = time.perf_counter() - start
    if quality.halvings:
        notes.append(quality.lines()[-1])
    return Adaptation(_moved_mesh(mesh, moved, locator), quality, method, seconds, notes)


def save_mover(model, path: str | Path, data: dict | None = None, metrics: dict | None = None) -> Path:
    """Write a :class:`~meshop.models.dmm.DMM` checkpoint (safetensors + JSON metadata) for
    ``adapt(..., model=path)``; ``data`` and ``metrics`` describe its training."""
    from .checkpoint import Checkpoint, save
    from .fields import FieldSpec
    from .graph import GraphSettings

    return save(path, Checkpoint(model, "dmm", FieldSpec(inputs=["field"], targets=["displacement"]),
                                 GraphSettings(), data or {}, metrics or {}))


def _inputs(mesh: Mesh, field) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    where = f"{mesh.source}: " if mesh.source else ""
    if mesh.dim != 2 or set(mesh.cells) != {"triangle"}:
        raise MeshError(f"{where}adapt moves 2D triangle meshes; this mesh has dimension {mesh.dim} "
                        f"and cells {sorted(mesh.cells) or 'none'}.")
    if isinstance(field, str):
        if field not in mesh.point_data:
            known = ", ".join(mesh.point_data) or "none"
            raise MeshError(f"{where}no point field '{field}' to adapt to (point fields: {known}).")
        values = mesh.point_data[field]
    elif field is None:
        raise TypeError("field must be the name of a point field or nodal values (N,) or (N, c), got None.")
    else:
        values = _numeric("the field to adapt to", field, where)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or values.shape[0] != mesh.n_points or values.ndim > 2 or not np.isfinite(values).all():
        raise MeshError(f"{where}the field to adapt to must be finite nodal values ({mesh.n_points},) "
                        f"or ({mesh.n_points}, c); got shape {values.shape}.")
    return mesh.points, mesh.cells["triangle"], values


#: a field whose spread is at most this fraction of its magnitude is constant up to rounding
FLAT_FIELD = 1e-12


def _no_fronts(values: np.ndarray, field) -> str | None:
    """Why ``values`` ``(N,)`` / ``(N, c)`` is constant (every component spread within
    :data:`FLAT_FIELD` of its magnitude, the rounding of a constant), or None."""
    columns = values.reshape(len(values), -1)
    spread = np.ptp(columns, axis=0)
    magnitude = np.abs(columns).max(axis=0)
    if np.any(spread > FLAT_FIELD * magnitude):
        return None
    name = f"field '{field}'" if isinstance(field, str) else "the field"
    if not spread.any():
        return f"{name} is constant"
    return (f"{name} varies by only {float(spread.max()):.2g} about {float(magnitude.max()):.3g} "
            f"(rounding noise, {float((spread / magnitude).max()):.0e} of its magnitude)")


def _locator(mesh: Mesh) -> P1Locator:
    """The point location of ``mesh``'s triangles (the moved mesh's fields are sampled with it),
    refusing what it cannot take: points no triangle uses, two nodes at one place, triangles
    that overlap."""
    where = f"{mesh.source}: " if mesh.source else ""
    unused = mesh.unreferenced
    if unused.any():
        first = int(np.argmax(unused))
        raise MeshError(f"{where}{int(unused.sum())} point(s) belong to no triangle (first: point {first}); "
                        "adapt moves the nodes of a triangle mesh: remove the unused points.")
    twins = np.flatnonzero(mesh.coincident != np.arange(mesh.n_points))
    if len(twins):
        a, b = int(mesh.coincident[twins[0]]), int(twins[0])
        raise MeshError(f"{where}{len(twins)} node(s) sit where another node is (first: nodes {a} and {b} at "
                        f"({', '.join(f'{c:.6g}' for c in mesh.points[b])})); merge the duplicate points.")
    try:
        return P1Locator(mesh.points, mesh.cells["triangle"])
    except MeshError:
        raise MeshError(f"{where}the triangles overlap (the mesh folds over itself, or has overlapping "
                        "copies); adapt needs a valid triangle mesh.") from None


def _choose(method: str | None, model) -> tuple[str, object, list[str]]:
    """(method, DMM model or None, notes)."""
    if method is not None and method not in METHODS:
        raise MeshError(f"unknown adapt method '{method}' (known: {', '.join(METHODS)}).")
    if method == "classical":
        return method, None, []
    if model is None:
        if BUNDLED_DMM.is_file():
            return "dmm", _bundled_mover(), []
        elif method == "dmm":
            raise MeshError("no bundled DMM checkpoint in this meshop yet; pass --model CHECKPOINT or "
                            "use --method classical.")
        else:
            return "classical", None, ["no bundled DMM checkpoint yet: used the classical Monge-Ampere mover"]
    if not isinstance(model, (str, os.PathLike)) and not hasattr(model, "move"):
        raise TypeError(f"model must be a DMM checkpoint path, a bundled model's name or a meshop DMM, "
                        f"got {type(model).__name__} {model!r:.60}.")
    if isinstance(model, (str, os.PathLike)):
        from .checkpoint import CheckpointError, load
        from .preflight import checkpoint_path

        ckpt = load(checkpoint_path(model))    # a file, or a bundled model's name ("dmm", "mpm2d", ...)
        if ckpt.model_name != "dmm":
            raise CheckpointError(f"{model}: a '{ckpt.model_name}' checkpoint, not a mesh mover (dmm).")
        model = ckpt.model
    return "dmm", model.eval(), []


@functools.lru_cache(maxsize=1)
def _bundled_mover():
    """The bundled DMM, read once per process (rollouts and training windows move many meshes)."""
    from .checkpoint import load

    return load(BUNDLED_DMM).model.eval()


def _moved_mesh(mesh: Mesh, moved: np.ndarray, locator: P1Locator) -> Mesh:
    """The mesh with its nodes at ``moved``, fields re-sampled there (``locator``: the original
    mesh's point location), plus ``displacement``."""
    fields = {name: locator.interpolate(np.asarray(values, dtype=np.float64), moved)
              for name, values in mesh.point_data.items() if np.issubdtype(np.asarray(values).dtype, np.number)}
    fields["displacement"] = moved - mesh.points
    points = moved if mesh.planar_z is None else np.column_stack([moved, np.full(len(moved), mesh.planar_z)])
    return Mesh(points, dict(mesh.cells), fields)
