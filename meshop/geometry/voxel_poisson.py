"""A coarse solve of the Poisson problem -Δu = f in a part, u = g on its surface, on a voxel grid.

The grid has a fixed number of voxels inside the part whatever the mesh (``voxels``, default
16,384), so its answer does not depend on the mesh's resolution; it costs a few tenths of a second
on parts of any size. The hybrid heat model reads it as its *prior* (:mod:`meshop.fields`,
``prior``): the network then learns the difference between this coarse answer and the
finite-element one on the mesh, which is local (near walls thinner than a few voxels, edges and
holes) rather than global (the temperature's amplitude over the whole part).

Discretization (hand-written: no maintained library solves on an implicit voxel domain):
second-order finite differences on the voxel centres inside the part, the surface placed between
an inside centre and its outside neighbour by linear interpolation of the signed distance (the
ghost-fluid method of Gibou et al., J. Comput. Phys. 176, 2002, symmetric and second-order
accurate), solved by conjugate gradients. Inside/outside and the distance come from libigl's signed distance to
the oriented boundary facets (fast winding number), or for a point cloud from the nodes' distance
to its boundary points. Values are carried back to the mesh nodes by multilinear interpolation,
outside voxels of a thin band holding the values extrapolated linearly in the signed distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.ndimage import binary_dilation, map_coordinates
from scipy.spatial import cKDTree

#: voxel centres inside the part (default)
DEFAULT_VOXELS = 16_384
#: at most this many grid cells over the part's bounding box (a long slender part lying
#: diagonally gets coarser voxels rather than a grid of gigabytes)
MAX_GRID_CELLS = 2 ** 25


@dataclass
class VoxelGrid:
    """A regular grid over a part: ``origin (d,)`` (the first centre), ``spacing`` h, ``shape``
    (cells per axis) and ``signed (M,)`` signed distance of every centre to the surface
    (positive inside, ``-inf`` far from the part), C-ordered."""

    origin: np.ndarray
    spacing: float
    shape: tuple[int, ...]
    signed: np.ndarray

    @property
    def inside(self) -> np.ndarray:
        return self.signed > 0

    def centres(self, ids: np.ndarray) -> np.ndarray:
        """``(k, d)`` coordinates of the centres ``ids`` (flat indices)."""
        return self.origin + self.spacing * np.stack(np.unravel_index(ids, self.shape), axis=1)


def voxel_poisson(points: np.ndarray, boundary_mask: np.ndarray, source: np.ndarray,
                  boundary_values: np.ndarray, *, facets: np.ndarray | None = None,
                  measure: float | None = None, distance: np.ndarray | None = None,
                  voxels: int = DEFAULT_VOXELS) -> np.ndarray:
    """``(N,)`` coarse solution at the nodes of -Δu = ``source`` in the part, u = ``boundary_values``
    on its boundary nodes (exactly there).

    Args:
        points: ``(N, d)`` node coordinates (d = 2 or 3), best centred on the part.
        boundary_mask: ``(N,)`` bool, the boundary nodes.
        source, boundary_values: ``(N,)`` f at every node, g read on the boundary nodes.
        facets: ``(F, d)`` boundary simplices (segments / triangles), corner ids ordered outward
            (:func:`~meshop.geometry.boundary.boundary_facets`); None for a point cloud, whose
            inside is then the union of the balls of radius ``distance`` around its nodes.
        measure: the part's volume (area in 2D); estimated from the grid when None.
        distance: ``(N,)`` distance of each node to the boundary (needed without ``facets``).
        voxels: about this many voxel centres inside the part.
    """
    grid = part_grid(points, facets, distance, voxels, measure)
    inside_ids = np.flatnonzero(grid.inside)
    boundary_ids = np.flatnonzero(boundary_mask)
    values_on_surface = _surface_values(points[boundary_ids], boundary_values[boundary_ids])
    if len(inside_ids) == 0:   # a part thinner than one voxel (a sheet): the grid resolves no rise above g
        result = values_on_surface(points)
        result[boundary_ids] = boundary_values[boundary_ids]
        return result
    u = _solve(grid, inside_ids, _source_at(points, source, grid.centres(inside_ids)), values_on_surface)
    result = _interpolate(grid, inside_ids, u, points, values_on_surface)
    result[boundary_ids] = boundary_values[boundary_ids]
    return result


# ---------------------------------------------------------------------- the grid
def part_grid(points: np.ndarray, facets: np.ndarray | None, distance: np.ndarray | None,
              voxels: int, measure: float | None = None) -> VoxelGrid:
    """The grid with about ``voxels`` centres inside the part (spacing from ``measure``, or
    from a first grid's inside count when it is not known)."""
    dim = points.shape[1]
    lo, hi = points.min(axis=0), points.max(axis=0)
    if measure is None:
        box = float(np.prod(hi - lo))
        first = _classified(points, facets, distance, lo, hi, _spacing(box / voxels, lo, hi), box)
        measure = max(int(first.inside.sum()), 1) * first.spacing ** dim
    if not (np.isfinite(measure) and measure > 0):
        raise ValueError(f"the part encloses no volume (measure {measure:g}); no voxel grid fits it.")
    return _classified(points, facets, distance, lo, hi, _spacing(measure / voxels, lo, hi), measure)


def _spacing(cell_measure: float, lo: np.ndarray, hi: np.ndarray) -> float:
    """Voxel size for voxels of ``cell_measure``, enlarged until the bounding box holds at most
    :data:`MAX_GRID_CELLS` of them."""
    spacing = cell_measure ** (1 / len(lo))
    while np.prod(np.ceil((hi - lo) / spacing) + 4) > MAX_GRID_CELLS:
        spacing *= 1.05
    return spacing


def _classified(points, facets, distance, lo, hi, spacing: float, measure: float) -> VoxelGrid:
    """Signed distances of the centres near the nodes (the others stay -inf); ``measure`` (or
    an upper bound of it) sets how far apart the nodes may be."""
    dim = points.shape[1]
    # cell-centred: the part's bounding planes fall midway between two rows of centres, never on
    # one, so no centre sits on an axis-aligned face whose side rounding would decide
    origin = lo - 1.5 * spacing
    shape = tuple(int(n) for n in np.ceil((hi - lo) / spacing).astype(int) + 4)
    near = np.zeros(shape, dtype=bool)
    cell = np.floor((points - origin) / spacing + 0.5).astype(np.int64)
    near[tuple(cell.T)] = True
    # nodes may lie several voxels apart on a coarse mesh: grow their cells by that spacing
    node_spacing = 1.5 * (measure / len(points)) ** (1 / dim)
    near = binary_dilation(near, iterations=int(np.ceil(node_spacing / spacing)) + 1)
    signed = np.full(near.size, -np.inf)
    ids = np.flatnonzero(near.ravel())
    grid = VoxelGrid(origin, spacing, shape, signed)
    signed[ids] = _signed_distance(points, facets, distance, grid.centres(ids), spacing)
    return grid


def _signed_distance(points, facets, distance, queries: np.ndarray, spacing: float) -> np.ndarray:
    """``(Q,)`` distance of ``queries`` to the surface, positive inside: libigl's for the queries
    within four voxels of the surface (the solve reads the distance of those within two, and the
    interpolation that of the nearest inside centre of those just outside), the nodes'
    bound (:func:`_ball_depth`) for those certainly deeper and for a point cloud."""
    if facets is None:
        return _ball_depth(points, distance, queries, k=min(8, len(points)))
    import igl

    # any lower bound of the depth sends every centre within four voxels to libigl; the nodes'
    # bound from a subset (still ~8 per centre) costs a k-d tree of far fewer points on a big mesh
    stride = max(1, len(points) // (8 * len(queries)))
    signed = (_ball_depth(points[::stride], distance[::stride], queries, k=1) if distance is not None
              else np.zeros(len(queries)))
    near = np.flatnonzero(signed <= 4 * spacing)
    sign = (igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER if points.shape[1] == 3     # not offered in 2D
            else igl.SIGNED_DISTANCE_TYPE_WINDING_NUMBER)
    found = igl.signed_distance(np.ascontiguousarray(queries[near]), np.ascontiguousarray(points, dtype=np.float64),
                                np.ascontiguousarray(facets, dtype=np.int64), sign_type=sign)[0]
    signed[near] = -found                                 # libigl: negative inside
    return signed


def _ball_depth(points, distance, queries: np.ndarray, k: int) -> np.ndarray:
    """A lower bound of the depth of ``queries`` inside the part: a node at distance d(n) from
    the surface has its ball of radius d(n) inside, so ``max_n d(n) - |q - n|`` over the ``k``
    nearest nodes (positive: certainly inside; the exact distance of a mesh is within the gap)."""
    gap, nearest = cKDTree(points).query(queries, k=k, workers=-1)
    gap, nearest = gap.reshape(len(queries), k), nearest.reshape(len(queries), k)
    return (distance[nearest] - gap).max(axis=1)


# ---------------------------------------------------------------------- values on the grid
def _source_at(points: np.ndarray, source: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """f at the inside centres: the nearest node's value (the source is smooth at voxel scale)."""
    if np.ptp(source) == 0:
        return np.full(len(centres), float(source[0]))
    stride = max(1, len(points) // (16 * len(centres)))   # plenty of nodes per voxel: a subset
    sample = np.arange(0, len(points), stride)
    return source[sample][cKDTree(points[sample]).query(centres, workers=-1)[1]]


def _surface_values(boundary_points: np.ndarray, values: np.ndarray):
    """g at surface points: the nearest boundary node's value (a constant without a search when
    g is uniform)."""
    if len(values) == 0 or np.ptp(values) == 0:
        constant = float(values[0]) if len(values) else 0.0
        return lambda where: np.full(len(where), constant)
    tree = cKDTree(boundary_points)
    return lambda where: values[tree.query(where, workers=-1)[1]]


def _solve(grid: VoxelGrid, inside_ids: np.ndarray, source: np.ndarray, surface_values) -> np.ndarray:
    """The ghost-fluid finite-difference system on the inside centres, solved by conjugate
    gradients with a Jacobi preconditioner (a few tens of voxels across the part: faster than a
    multigrid set-up)."""
    n, h2 = len(inside_ids), grid.spacing ** 2
    number = np.full(grid.signed.size, -1)
    number[inside_ids] = np.arange(n)
    index = np.stack(np.unravel_index(inside_ids, grid.shape), axis=1)
    diagonal, rhs = np.zeros(n), source.copy()
    rows, cols = [], []
    for axis in range(len(grid.shape)):
        for step in (-1, 1):
            neighbour = index.copy()
            neighbour[:, axis] += step                     # the grid has a margin: stays in range
            flat = np.ravel_multi_index(tuple(neighbour.T), grid.shape)
            linked = number[flat] >= 0
            rows.append(np.flatnonzero(linked))
            cols.append(number[flat[linked]])
            diagonal[linked] += 1 / h2
            # the surface lies at theta * h towards an outside neighbour; its value enters the
            # right-hand side with weight 1 / (theta h²) (linear ghost value)
            cut = np.flatnonzero(~linked)
            s_in, s_out = grid.signed[inside_ids[cut]], grid.signed[flat[~linked]]
            theta = np.clip(s_in / (s_in - np.maximum(s_out, -grid.spacing)), 0.05, 1.0)
            crossing = grid.centres(inside_ids[cut])
            crossing[:, axis] += step * theta * grid.spacing
            diagonal[cut] += 1 / (theta * h2)
            rhs[cut] += surface_values(crossing) / (theta * h2)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.full(len(rows), -1 / h2), (rows, cols)), shape=(n, n)) + sp.diags(diagonal)
    u, info = spla.cg(matrix.tocsr(), rhs, rtol=1e-8, maxiter=20 * n, M=sp.diags(1 / diagonal))
    if info != 0:      # never seen: the matrix is a symmetric positive definite M-matrix
        u = spla.spsolve(matrix.tocsc(), rhs)
    return u


def _interpolate(grid: VoxelGrid, inside_ids: np.ndarray, u: np.ndarray, points: np.ndarray,
                 surface_values) -> np.ndarray:
    """Multilinear interpolation of the grid solution at ``points``; the outside centres within
    two voxels of the surface hold the value extrapolated linearly in the signed distance from
    their nearest inside centre, so nodes near the surface interpolate between true values."""
    field = np.zeros(grid.signed.size)
    field[inside_ids] = u
    band = np.flatnonzero(~grid.inside & (grid.signed > -2 * grid.spacing))
    if len(band):
        band_centres = grid.centres(band)
        nearest = cKDTree(grid.centres(inside_ids)).query(band_centres, workers=-1)[1]
        g = surface_values(band_centres)
        depth = np.maximum(grid.signed[inside_ids[nearest]], 1e-3 * grid.spacing)
        field[band] = g + (u[nearest] - g) * grid.signed[band] / depth
    # trilinear (order 1) in voxel coordinates: SciPy's RegularGridInterpolator gives the same
    # values (to ~1e-14) 3x slower; every node lies inside the grid's margin
    return map_coordinates(field.reshape(grid.shape), ((points - grid.origin) / grid.spacing).T, order=1, mode="nearest")
