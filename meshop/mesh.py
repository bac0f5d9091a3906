"""`Mesh`: points, cells by type, named fields, and derived geometry computed once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import MeshError
from .geometry import boundary as _boundary
from .geometry.cells import NODES_PER_CELL, TOPOLOGICAL_DIM, degenerate_cells, top_dimension


#: largest absolute coordinate accepted: beyond it squared distances and float64 differences
#: of nearby points lose every digit a part needs
MAX_COORDINATE = 1e15


class _geometry_cached:
    """Like ``functools.cached_property``, but the value lives in the mesh's ``_geometry`` dict,
    which the meshes :meth:`Mesh.with_point_data` makes share: the frames of a fixed-node
    trajectory compute their boundary and distances once. (functools has no shared variant.)"""

    def __init__(self, compute):
        self.compute, self.name, self.__doc__ = compute, compute.__name__, compute.__doc__

    def __get__(self, mesh, owner=None):
        if mesh is None:
            return self
        cache = mesh._geometry
        if self.name not in cache:
            cache[self.name] = self.compute(mesh)
        return cache[self.name]


class Mesh:
    """A volume mesh, surface mesh or point cloud with named point and cell fields.

    Args:
        points: ``(N, d)`` coordinates, d in {2, 3}. Three columns whose third is constant are
            stored as 2D (``dim == 2``); the constant is kept in ``planar_z`` for writing back.
        cells: cell type (meshio names: ``"triangle"``, ``"tetra"``, ...) -> ``(M, k)`` node ids.
            None or empty for a point cloud (so are ``vertex`` cells alone).
        point_data: field name -> ``(N,)`` or ``(N, c)`` array.
        cell_data: field name -> {cell type -> ``(M,)`` or ``(M, c)`` array}.
        field_data: name -> 1D numeric array about the whole mesh (VTK field data), such as a
            prediction's estimated relative error; written to ``.vtu`` files.
        boundary_mask: optional known ``(N,)`` boolean boundary of a point cloud, used instead
            of the estimate (a mesh's boundary always comes from its cells).
        source: the file this mesh was read from, used in error messages and by ``write`` to
            refuse overwriting the input.

    The arrays are validated here; derived geometry (boundary, normals, distances) is computed
    lazily on first access and cached, so treat ``points`` and ``cells`` as read-only.
    """

    def __init__(self, points, cells=None, point_data=None, cell_data=None, *,
                 boundary_mask=None, source: str | Path | None = None, field_data=None):
        self.source = Path(source) if source is not None else None
        where = f"{self.source}: " if self.source else ""
        points, self.planar_z = _validate_points(points, where)
        self.points = points
        self.cells = _validate_cells(points, _mapping("cells", cells, where), where)
        self._geometry = {}  # derived geometry, shared with the meshes with_point_data makes
        self.point_data = {}
        for name, values in _mapping("point_data", point_data, where).items():
            self.point_data[name] = _validate_field(name, values, len(points), where)
        self.cell_data = _validate_cell_data(_mapping("cell_data", cell_data, where), self.cells, where)
        self.field_data = {name: _validate_field_data(name, values, where)
                           for name, values in _mapping("field_data", field_data, where).items()}
        self._user_boundary = None
        if boundary_mask is not None:
            mask = np.asarray(boundary_mask, dtype=bool)
            if mask.shape != (len(points),):
                raise MeshError(f"{where}boundary_mask has shape {mask.shape}; expected ({len(points)},).")
            if self.cells:
                raise MeshError(f"{where}boundary_mask is for point clouds; a mesh's boundary "
                                "comes from its cells.")
            self._user_boundary = mask

    # ------------------------------------------------------------------ basic facts
    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def dim(self) -> int:
        """Spatial dimension, 2 or 3."""
        return self.points.shape[1]

    @property
    def is_point_cloud(self) -> bool:
        return top_dimension(self.cells) < 0

    @property
    def is_surface(self) -> bool:
        """True for a 3D mesh whose cells are all 2D (an STL, an OBJ, a VTK polydata surface)."""
        return self.dim == 3 and top_dimension(self.cells) == 2

    @property
    def cell_counts(self) -> dict[str, int]:
        return {t: len(c) for t, c in self.cells.items()}

    @property
    def bounds(self) -> np.ndarray:
        """``(2, d)``: minimum corner, maximum corner."""
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)])

    @_geometry_cached
    def centred_points(self) -> np.ndarray:
        """``(N, d)`` float64 points minus the bounding-box centre. Derived geometry (boundary,
        normals, distances) and node features are computed on these: a part far from the origin
        (coordinates of 1e6 or 1e9) then loses no more digits than its file already did."""
        return self.points - self.bounds.mean(axis=0)

    @property
    def size(self) -> float:
        """Length of the bounding-box diagonal, the part's characteristic length."""
        lo, hi = self.bounds
        return float(np.linalg.norm(hi - lo))

    # ------------------------------------------------------------------ boundary
    @_geometry_cached
    def boundary(self) -> _boundary.BoundaryFacets | None:
        """Boundary facets with outward normals; None for a point cloud."""
        if self.is_point_cloud:
            return None
        if self.is_surface:
            return _boundary.surface_facets(self.centred_points, self.cells)
        return _boundary.boundary_facets(self.centred_points, self.cells)

    @property
    def boundary_is_estimated(self) -> bool:
        """True for a point cloud whose boundary is estimated rather than given."""
        return self.is_point_cloud and self._user_boundary is None

    @_geometry_cached
    def _point_cloud_boundary(self) -> tuple[np.ndarray, np.ndarray]:
        return _boundary.point_cloud_boundary(self.centred_points, mask=self._user_boundary)

    @_geometry_cached
    def boundary_mask(self) -> np.ndarray:
        """``(N,)`` bool: nodes on the boundary (every node of a surface mesh)."""
        if self.is_point_cloud:
            return self._point_cloud_boundary[0]
        mask = np.zeros(self.n_points, dtype=bool)
        mask[self.boundary.nodes()] = True
        return mask

    @_geometry_cached
    def boundary_normals(self) -> np.ndarray:
        """``(N, d)`` unit outward normals at boundary nodes, zero elsewhere."""
        if self.is_point_cloud:
            return self._point_cloud_boundary[1]
        b = self.boundary
        return _boundary.node_normals(self.n_points, b.all_nodes(), b.normals, b.measures)

    @_geometry_cached
    def distance_to_boundary(self) -> np.ndarray:
        """``(N,)`` exact Euclidean distance to the nearest boundary facet (to the nearest
        boundary point for a point cloud); zero on the boundary (see
        :func:`meshop.geometry.distance_to_facets`)."""
        if self.is_point_cloud:
            from scipy.spatial import cKDTree

            mask = self.boundary_mask
            if not mask.any():
                return np.full(self.n_points, np.inf)
            dist, _ = cKDTree(self.centred_points[mask]).query(self.centred_points, workers=-1)
            return dist
        dist = _boundary.distance_to_facets(self.centred_points, self.boundary)
        dist[self.boundary_mask] = 0.0
        return dist

    @_geometry_cached
    def unreferenced(self) -> np.ndarray:
        """``(N,)`` bool: points that no cell uses (none for a point cloud)."""
        used = np.zeros(self.n_points, dtype=bool)
        for conn in self.cells.values():
            used[conn.ravel()] = True
        return ~used if self.cells else used

    @_geometry_cached
    def coincident(self) -> np.ndarray:
        """``(N,)`` int: for each point the first point at exactly its coordinates (itself when
        none comes before it); ``coincident != arange(N)`` marks unmerged duplicate nodes."""
        _, first, inverse = np.unique(self.points, axis=0, return_index=True, return_inverse=True)
        return first[inverse.reshape(-1)]

    def point_subset(self, keep: np.ndarray) -> "Mesh":
        """A new Mesh of the points ``keep (N,) bool`` with their fields, and the cells whose nodes
        are all kept, renumbered (cell fields follow their cells)."""
        keep = np.asarray(keep, dtype=bool)
        new_id = np.cumsum(keep) - 1
        cells, cell_data = {}, {name: {} for name in self.cell_data}
        for cell_type, conn in self.cells.items():
            whole = keep[conn].all(axis=1)
            cells[cell_type] = new_id[conn[whole]]
            for name, by_type in self.cell_data.items():
                if cell_type in by_type:
                    cell_data[name][cell_type] = by_type[cell_type][whole]
        points = self.points if self.planar_z is None else np.c_[self.points, np.full(self.n_points, self.planar_z)]
        return Mesh(points[keep], cells, {k: v[keep] for k, v in self.point_data.items()}, cell_data,
                    source=self.source)

    # ------------------------------------------------------------------ helpers
    def edges(self) -> np.ndarray:
        """Edges of the cells' corner nodes, each in both directions, ``(2, 2 * unique)``; see
        :func:`meshop.geometry.mesh_edges`."""
        from .geometry.neighbors import mesh_edges

        return mesh_edges(self)

    def require(self, *names: str) -> None:
        """Raise :class:`MeshError` naming the first point field that is missing."""
        for name in names:
            if name not in self.point_data:
                have = ", ".join(sorted(self.point_data)) or "none"
                where = f"{self.source}: " if self.source else ""
                raise MeshError(f"{where}point field '{name}' is missing (fields present: {have}).")

    def with_point_data(self, **fields) -> "Mesh":
        """A new Mesh sharing this one's geometry with extra fields; derived geometry (boundary,
        normals, distances) computed on either is computed once for both."""
        new = Mesh.__new__(Mesh)
        new.__dict__.update(self.__dict__)
        new.point_data = dict(self.point_data)
        new.field_data = dict(self.field_data)
        where = f"{self.source}: " if self.source else ""
        for name, values in fields.items():
            new.point_data[name] = _validate_field(name, values, self.n_points, where)
        return new

    def with_points(self, points, point_data=None, *, source: str | Path | None = None) -> "Mesh":
        """A new Mesh on these cells at other node ``points`` (a moving mesh's next frame) with
        ``point_data``, read from the file ``source`` (default: this mesh's). The points and fields
        are checked; the cells are not checked again (their indices stay valid), and derived
        geometry is computed afresh."""
        new = Mesh.__new__(Mesh)
        new.__dict__.update(self.__dict__)
        if source is not None:
            new.source = Path(source)
        where = f"{new.source}: " if new.source else ""
        new.points, new.planar_z = _validate_points(points, where)
        if new.points.shape != self.points.shape:
            raise MeshError(f"{where}{len(new.points)} points of dimension {new.dim} given for a mesh of "
                            f"{self.n_points} points of dimension {self.dim}.")
        new._geometry, new.field_data = {}, dict(self.field_data)
        new.point_data = {name: _validate_field(name, values, self.n_points, where)
                          for name, values in (point_data or {}).items()}
        return new

    def without(self, *names: str) -> "Mesh":
        """A new Mesh sharing this one's geometry without the point fields and field data
        ``names`` (names it does not hold are ignored)."""
        new = self.with_point_data()
        for name in names:
            new.point_data.pop(name, None)
            new.field_data.pop(name, None)
        return new

    def with_field_data(self, **values) -> "Mesh":
        """A new Mesh sharing this one's geometry and fields, with extra field data (name ->
        number or 1D numeric array)."""
        new = self.with_point_data()
        where = f"{self.source}: " if self.source else ""
        for name, value in values.items():
            new.field_data[name] = _validate_field_data(name, value, where)
        return new

    def __repr__(self) -> str:
        kind = "point cloud" if self.is_point_cloud else ("surface" if self.is_surface else f"{self.dim}D mesh")
        cells = ", ".join(f"{n} {t}" for t, n in self.cell_counts.items())
        fields = ", ".join(self.point_data) or "no fields"
        return f"<Mesh {kind}: {self.n_points} points" + (f", {cells}" if cells else "") + f"; {fields}>"


def _mapping(what: str, value, where: str) -> dict:
    """``value`` (None: empty) as a dict keyed by strings: cell types or field names."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}{what} must be a dict (name -> array), got {type(value).__name__}.")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{where}{what} keys must be strings, got {key!r} ({type(key).__name__}).")
    return value


def _numeric(what: str, values, where: str, dtype=None) -> np.ndarray:
    """``values`` as a real numeric array (bool allowed; ``dtype`` casts), or one sentence why not."""
    try:
        array = np.asarray(values)
        if array.dtype == object:       # Python numbers mixed with None or other objects
            array = array.astype(np.float64)
    except (ValueError, TypeError) as err:
        reason = "rows of different lengths" if "inhomogeneous" in str(err) else str(err).splitlines()[0]
        raise MeshError(f"{where}{what} must be a rectangular array of real numbers ({reason}).") from None
    if array.dtype != bool and (not np.issubdtype(array.dtype, np.number)
                                or np.issubdtype(array.dtype, np.complexfloating)):
        kind = "complex numbers" if np.issubdtype(array.dtype, np.complexfloating) else f"dtype {array.dtype}"
        raise MeshError(f"{where}{what} must be real numbers, got {kind}.")
    return array if dtype is None else array.astype(dtype, copy=False)


def _validate_points(points, where: str) -> tuple[np.ndarray, float | None]:
    """``(points, planar_z)``: float64 ``(N, 2|3)`` coordinates, checked; 3D points with one z
    become 2D and ``planar_z`` keeps that z (None otherwise)."""
    if points is None:
        raise TypeError(f"{where}points must be an (N, 2) or (N, 3) array of coordinates, got None.")
    points = _numeric("points", points, where, np.float64)
    if points.ndim != 2:
        raise MeshError(f"{where}points must be an (N, 2) or (N, 3) array of coordinates, got shape {points.shape}.")
    if points.shape[0] == 0:
        raise MeshError(f"{where}the mesh has no points.")
    if points.shape[1] not in (2, 3):
        raise MeshError(f"{where}points have {points.shape[1]} coordinates; expected 2 or 3.")
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points)).any(axis=1).sum())
        raise MeshError(f"{where}{bad} point(s) have NaN or infinite coordinates.")
    largest = float(np.abs(points).max())
    if largest > MAX_COORDINATE:
        raise MeshError(f"{where}coordinates reach {largest:.3g}, beyond the {MAX_COORDINATE:.0e} meshop "
                        "accepts (wrong units, or a corrupt file?).")
    if points.shape[1] == 3 and np.ptp(points[:, 2]) == 0.0:
        return np.ascontiguousarray(points[:, :2]), float(points[0, 2])
    return points, None


def _validate_cells(points: np.ndarray, cells: dict, where: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for cell_type, conn in cells.items():
        if cell_type not in TOPOLOGICAL_DIM:
            supported = ", ".join(TOPOLOGICAL_DIM)
            raise MeshError(f"{where}cell type '{cell_type}' is not supported (supported: {supported}).")
        try:
            conn = np.asarray(conn)
        except ValueError:      # rows of different lengths
            raise MeshError(f"{where}{cell_type} cells have rows of different lengths; "
                            f"expected (M, {NODES_PER_CELL[cell_type]}) node ids.") from None
        if conn.size == 0:
            continue
        if not np.issubdtype(conn.dtype, np.integer):
            raise MeshError(f"{where}{cell_type} cells have non-integer node indices.")
        width = NODES_PER_CELL[cell_type]
        if conn.ndim != 2 or conn.shape[1] != width:
            raise MeshError(f"{where}{cell_type} cells have shape {conn.shape}; expected (M, {width}).")
        low, high = int(conn.min()), int(conn.max())     # before the cast: uint64 ids may not fit
        if low < 0 or high >= len(points):
            bad = low if low < 0 else high
            raise MeshError(f"{where}{cell_type} cells reference node {bad} but node indices must lie "
                            f"in 0..{len(points) - 1} (indices out of range).")
        conn = conn.astype(np.int64)
        out[cell_type] = np.concatenate([out[cell_type], conn]) if cell_type in out else conn
    top = top_dimension(out)
    if top == 0:  # points tagged as vertices, as VTK and ParaView store point clouds
        return {}
    if top == 1:
        raise MeshError(f"{where}the mesh has only line/vertex cells (a wire mesh); expected "
                        "triangles, quads or volume cells, or no cells for a point cloud.")
    dim = points.shape[1]
    if top > dim:
        raise MeshError(f"{where}the mesh has {top}D cells but its points are {dim}D "
                        "(all z coordinates are equal).")
    for cell_type, conn in out.items():
        if TOPOLOGICAL_DIM[cell_type] == top:
            _check_degenerate(points, cell_type, conn, where)
            _check_duplicated(cell_type, conn, where)
    return out


def _check_duplicated(cell_type: str, conn: np.ndarray, where: str) -> None:
    """Raise when two cells have the same nodes (in any order): a mesh written twice over, or
    a corrupt one; each would count its volume twice."""
    corners = np.sort(conn, axis=1)
    order = np.lexsort(corners.T[::-1])
    same = (corners[order[1:]] == corners[order[:-1]]).all(axis=1)
    if same.any():
        first = int(np.argmax(same))
        pair = sorted((int(order[first]), int(order[first + 1])))
        raise MeshError(f"{where}{int(same.sum())} duplicated {cell_type} cell(s) (first: cells {pair[0]} and "
                        f"{pair[1]}, nodes {sorted(conn[pair[0]].tolist())}); remove the copies.")


def _check_degenerate(points: np.ndarray, cell_type: str, conn: np.ndarray, where: str) -> None:
    """Raise when cells have zero area/volume relative to their own size."""
    degenerate = degenerate_cells(points, cell_type, conn)
    if degenerate.any():
        first = int(np.argmax(degenerate))
        raise MeshError(
            f"{where}{int(degenerate.sum())} degenerate {cell_type} cell(s) with zero "
            f"{'area' if TOPOLOGICAL_DIM[cell_type] == 2 else 'volume'} (first: cell {first}, "
            f"nodes {conn[first].tolist()}).")


def field_data_array(values) -> np.ndarray | None:
    """``values`` as the 1-D numeric array a :class:`Mesh` holds as field data, or None when they
    are not a number or a 1-D numeric array."""
    array = np.atleast_1d(np.asarray(values))
    return array if array.ndim == 1 and np.issubdtype(array.dtype, np.number) else None


def _validate_field_data(name: str, values, where: str) -> np.ndarray:
    array = field_data_array(values)
    if array is None:
        shaped = np.atleast_1d(np.asarray(values))
        raise MeshError(f"{where}field data '{name}' must be a number or a 1D numeric array, "
                        f"got shape {shaped.shape} of {shaped.dtype}.")
    return array


def _validate_cell_data(cell_data: dict, cells: dict, where: str) -> dict:
    """Keep the blocks of cell types present; each must have one value per cell."""
    out = {}
    for name, by_type in cell_data.items():
        if not isinstance(by_type, dict):
            raise MeshError(f"{where}cell field '{name}' must map cell type -> array.")
        out[name] = {}
        for cell_type, values in by_type.items():
            if cell_type not in cells:
                continue
            values = np.asarray(values)
            if values.ndim == 0 or len(values) != len(cells[cell_type]):
                raise MeshError(f"{where}cell field '{name}' has {values.size if values.ndim == 0 else len(values)} "
                                f"values for {len(cells[cell_type])} {cell_type} cells (wrong length).")
            out[name][cell_type] = values
    return {name: by_type for name, by_type in out.items() if by_type}


def _validate_field(name: str, values, n_points: int, where: str) -> np.ndarray:
    values = _numeric(f"point field '{name}'", values, where)
    if values.ndim == 0 or values.shape[0] != n_points:
        count = values.shape[0] if values.ndim else 1
        raise MeshError(f"{where}point field '{name}' has {count} values "
                        f"but the mesh has {n_points} points (wrong length).")
    if np.issubdtype(values.dtype, np.number) and not np.isfinite(values).all():
        bad = int((~np.isfinite(values.reshape(n_points, -1))).any(axis=1).sum())
        raise MeshError(f"{where}point field '{name}' has NaN or infinite values at {bad} point(s).")
    return values
