"""K-D-tree domain decomposition with halos, and sub-domain <-> uniform grid resampling.

:func:`decompose` cuts the bounding box of a point set into axis-aligned boxes (a K-D tree)
until every box holds at most ``max_points`` points. The points inside a box are its sub-domain's
*core*; the cores partition the point set. Each sub-domain also gets a *halo*: the points of other
sub-domains within a distance ``halo`` of one of its core points, so that a model whose receptive
field is at most ``halo`` sees, around every core point, exactly what it would see on the whole set.

:func:`to_grid` resamples a field given at a sub-domain's points onto a uniform grid over its box
and measures the error of interpolating it back to the core points (what NUNO controls);
:func:`from_grid` maps grid values (e.g. a model's prediction) back to arbitrary points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator, RegularGridInterpolator
from scipy.spatial import Delaunay, QhullError, cKDTree
from scipy.special import xlogy

from ..errors import MeshError

CRITERIA = ("density", "median")
GRID_METHODS = ("linear", "nearest")
POINTS_PER_SLAB = 64       # default histogram: about this many points per slab along the cut axis
MAX_DEFAULT_BINS = 256     # ... with between 2 and this many slabs
MIN_CHILD_SHARE = 1 / 8    # a density cut leaves each child at least this share of the points
NOISE_GAIN = 8.0           # nats; a best density gain below this is sampling noise -> median cut


@dataclass(frozen=True, eq=False)
class Subdomain:
    """One box of a K-D-tree decomposition.

    Attributes:
        core: ``(n_core,)`` int64 ascending global indices of the points inside the box; the cores
            of all sub-domains partition the point set.
        halo: ``(n_halo,)`` int64 ascending global indices of the points outside the core within
            Euclidean distance ``halo`` of at least one core point.
        box: ``(2, d)`` lower and upper corner of the box (same units as the points); the boxes
            tile the bounding box of the point set.
        depth: depth of the box in the tree (the root box has depth 0).
    """

    core: np.ndarray
    halo: np.ndarray
    box: np.ndarray
    depth: int

    @property
    def indices(self) -> np.ndarray:
        """``(n_core + n_halo,)`` global indices: the core, then the halo."""
        return np.concatenate([self.core, self.halo])


def decompose(points, max_points: int, halo: float = 0.0, criterion: str = "density",
              bins: int | None = None) -> list[Subdomain]:
    """Split a point set into sub-domains of at most ``max_points`` core points, with halos.

    Boxes holding more than ``max_points`` points are cut in two along their longest side:

    - ``"median"``: at the median coordinate (the classic, count-balanced K-D tree);
    - ``"density"`` (NUNO, Liu et al. 2023): at the histogram bin edge that minimizes the
      children's point-count-weighted KL divergence to the uniform distribution, so cuts follow
      changes of point density. See ``docs/kdtree.md`` for the exact rule and its guards.

    Args:
        points: ``(N, d)`` coordinates, d in {2, 3}.
        max_points: the most core points a sub-domain may hold (>= 1).
        halo: halo width, in the units of ``points`` (>= 0; 0 gives empty halos).
        criterion: ``"density"`` or ``"median"``.
        bins: histogram bins (slabs) along the cut side for ``"density"`` (>= 2); the candidate
            cuts are their inner edges. Default: per box, one per 64 points, within [2, 256].

    Returns:
        Sub-domains in depth-first tree order (lower side of each cut first). Deterministic.
    """
    pts = _as_points(points)
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) \
            or max_points < 1:
        raise MeshError(f"max_points must be a positive integer; got {max_points!r}.")
    if not np.isfinite(halo) or halo < 0:
        raise MeshError(f"halo must be a finite distance >= 0; got {halo!r}.")
    if criterion not in CRITERIA:
        raise MeshError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, (int, np.integer))
                             or bins < 2):
        raise MeshError(f"bins must be an integer >= 2 or None; got {bins!r}.")
    leaves = _build_tree(pts, int(max_points), criterion, bins)
    halos = _halos(pts, [core for core, _, _ in leaves], [box for _, box, _ in leaves], halo)
    return [Subdomain(core, h, box, depth)
            for (core, box, depth), h in zip(leaves, halos)]


def _as_points(points) -> np.ndarray:
    """``points`` as a float64 ``(N, d)`` array with d in {2, 3}, or a :class:`MeshError`."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] not in (2, 3):
        raise MeshError(f"points must be a non-empty (N, d) array with d in {{2, 3}}; "
                        f"got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise MeshError(f"points: {bad} point(s) have NaN or infinite coordinates.")
    return np.ascontiguousarray(arr)


def _build_tree(pts: np.ndarray, max_points: int, criterion: str,
                bins: int | None) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Leaves ``(core indices, box (2, d), depth)`` in depth-first order, lower side first.

    Hand-written: scipy's and scikit-learn's K-D trees fix their own split rule (sliding
    midpoint / median) and leaf size, and don't expose their cells as a decomposition.
    """
    root = np.stack([pts.min(axis=0), pts.max(axis=0)])
    stack = [(np.arange(len(pts), dtype=np.int64), root, 0)]
    leaves = []
    while stack:
        idx, box, depth = stack.pop()
        if len(idx) <= max_points:
            leaves.append((idx, box, depth))
            continue
        axis, cut = _choose_cut(pts, idx, box, criterion, bins, max_points)
        lower = pts[idx, axis] < cut
        lo_box, hi_box = box.copy(), box.copy()
        lo_box[1, axis] = hi_box[0, axis] = cut
        stack.append((idx[~lower], hi_box, depth + 1))
        stack.append((idx[lower], lo_box, depth + 1))
    return leaves


def _choose_cut(pts: np.ndarray, idx: np.ndarray, box: np.ndarray, criterion: str,
                bins: int | None, max_points: int) -> tuple[int, float]:
    """Axis and coordinate of a cut leaving points on both sides (``x < cut`` goes low)."""
    sides = box[1] - box[0]
    for axis in np.argsort(-sides, kind="stable"):     # longest side first
        x = pts[idx, axis]
        cut = None
        if criterion == "density":
            cut = _density_cut(x, box[0, axis], box[1, axis], bins)
        if cut is None:
            cut = _median_cut(x)
        if cut is not None:
            return int(axis), cut
    where = ", ".join(f"{c:.6g}" for c in pts[idx[0]])
    raise MeshError(f"cannot split {len(idx)} identical points at ({where}) into sub-domains of "
                    f"at most {max_points} points; remove duplicate points or raise max_points.")


def _density_cut(x: np.ndarray, lo: float, hi: float, bins: int | None) -> float | None:
    """NUNO cut: the bin edge minimizing the children's weighted KL divergence to uniform.

    Measured on the parent's histogram, the chain rule of KL gives, for a cut at edge j,
    ``n KL(parent) = sum_child n_c KL(child) + gain_j`` with
    ``gain_j = n KL(Bernoulli(n_low / n) || Bernoulli(j / bins))``: minimizing the children's
    weighted divergence is maximizing ``gain_j``, which needs only the counts per slab along the
    cut axis. Returns None (caller falls back to the median) when no edge leaves each child
    ``MIN_CHILD_SHARE`` of the points or the best gain is below ``NOISE_GAIN`` (uniform data).
    """
    n = len(x)
    if bins is None:
        bins = int(np.clip(n // POINTS_PER_SLAB, 2, MAX_DEFAULT_BINS))
    edges = np.linspace(lo, hi, bins + 1)
    slab = np.searchsorted(edges[1:-1], x, side="right")     # slab < j  <=>  x < edges[j]
    n_low = np.cumsum(np.bincount(slab, minlength=bins))[:-1].astype(np.float64)
    n_high = n - n_low
    share = np.arange(1, bins) / bins
    gain = xlogy(n_low, n_low / (n * share)) + xlogy(n_high, n_high / (n * (1 - share)))
    least = np.ceil(n * MIN_CHILD_SHARE)
    gain[(n_low < least) | (n_high < least)] = -np.inf
    best = int(np.argmax(gain))
    if gain[best] < NOISE_GAIN:
        return None
    return float(edges[best + 1])


def _median_cut(x: np.ndarray) -> float | None:
    """A cut between two distinct coordinates, as close to the median as duplicates allow."""
    n = len(x)
    k = n // 2
    part = np.partition(x, (k - 1, k))
    a, b = part[k - 1], part[k]
    if a < b:
        return _between(a, b)
    below, above = x[x < a], x[x > a]
    options = []                                     # (distance from a balanced split, cut)
    if len(below):
        options.append((abs(len(below) - n / 2), _between(below.max(), a)))
    if len(above):
        options.append((abs(n - len(above) - n / 2), _between(a, above.min())))
    return min(options)[1] if options else None


def _between(a: float, b: float) -> float:
    """A value ``c`` with ``a < c <= b`` (the midpoint unless rounding puts it on ``a``)."""
    mid = a + (b - a) / 2
    return float(mid if mid > a else b)


def _halos(pts: np.ndarray, cores: list[np.ndarray], boxes: list[np.ndarray],
           width: float) -> list[np.ndarray]:
    """Exact halos: points of other sub-domains within ``width`` of a core point.

    If ``p`` (outside sub-domain B) is within ``width`` of ``q`` (in B's core), a cut separates
    them, so both lie within ``width`` of an interior face of their own box ("near" points), and
    p lies in B's box grown by ``width``. Each such candidate p is tested against a cKDTree of
    B's near core points (nearest neighbour, bounded by ``width``), which costs about the same
    on clustered data as on uniform data (pair enumeration would grow with the local density).
    """
    empty = np.empty(0, dtype=np.int64)
    if width == 0 or len(cores) == 1:
        return [empty] * len(cores)
    label = np.empty(len(pts), dtype=np.int64)
    for k, core in enumerate(cores):
        label[core] = k
    lows, highs = np.stack([b[0] for b in boxes]), np.stack([b[1] for b in boxes])
    root_lo, root_hi = lows.min(axis=0), highs.max(axis=0)
    lo, hi = lows[label], highs[label]
    gap = np.minimum(np.where(lo > root_lo, pts - lo, np.inf),
                     np.where(hi < root_hi, hi - pts, np.inf)).min(axis=1)
    reach = width + 1e-9 * (width + np.abs(pts).max())   # slack for rounding of differences
    near = np.flatnonzero(gap <= reach)
    near = near[np.argsort(label[near], kind="stable")]       # grouped by sub-domain
    near_xyz = pts[near]                                      # contiguous: cheap to gather
    starts = np.searchsorted(label[near], np.arange(len(cores) + 1))
    slabs = [slice(starts[k], starts[k + 1]) for k in range(len(cores))]
    halos = []
    for k, own in enumerate(slabs):
        box_gap = np.maximum(0, np.maximum(lows - highs[k], lows[k] - highs))
        others = [slabs[b] for b in np.flatnonzero(np.linalg.norm(box_gap, axis=1) <= reach)
                  if b != k]
        if own.start == own.stop or not others:
            halos.append(empty)
            continue
        cand_xyz = np.concatenate([near_xyz[b] for b in others])
        cand = np.concatenate([near[b] for b in others])
        inside = ((cand_xyz >= lows[k] - reach) & (cand_xyz <= highs[k] + reach)).all(axis=1)
        dist, _ = cKDTree(near_xyz[own]).query(cand_xyz[inside], k=1,
                                               distance_upper_bound=reach, workers=-1)
        halos.append(np.sort(cand[inside][dist <= width]))
    return halos


@dataclass(frozen=True, eq=False)
class GridSample:
    """A field resampled on a sub-domain's uniform grid, and the error of coming back.

    Attributes:
        axes: one ``(shape[k],)`` array of node coordinates per dimension, spanning the box.
        grid_values: ``(*shape)`` or ``(*shape, c)`` values at the grid nodes.
        back_values: ``(n_core,)`` or ``(n_core, c)`` grid values interpolated back (multilinear)
            to the sub-domain's core points.
        relative_error: ``||back - true||_2 / ||true||_2`` over the core points (all channels);
            0 when both norms are 0, inf when only the true norm is.
        max_error: largest absolute difference ``|back - true|`` at the core points.
        n_nearest: grid nodes whose value came from the nearest point: those outside the convex
            hull of the sub-domain's points for ``method="linear"``, all for ``"nearest"``.
    """

    axes: tuple[np.ndarray, ...]
    grid_values: np.ndarray
    back_values: np.ndarray
    relative_error: float
    max_error: float
    n_nearest: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid nodes per dimension."""
        return tuple(len(a) for a in self.axes)

    @property
    def grid_points(self) -> np.ndarray:
        """``(prod(shape), d)`` node coordinates in C order (last axis fastest)."""
        return _grid_points(self.axes)


def to_grid(points, values, subdomain: Subdomain, shape, method: str = "linear") -> GridSample:
    """Resample ``values`` at a sub-domain's points to a uniform grid on its box, and back.

    The grid takes the values at the core and halo points, interpolated piecewise-linearly on
    their Delaunay triangulation (``method="linear"``; grid nodes outside the convex hull, where
    that is undefined, take the nearest point's value) or by nearest point (``"nearest"``). The
    grid is then interpolated multilinearly back to the core points and compared with ``values``.
    Linear fields come back exact (to rounding) when the grid lies inside the points' hull.

    Args:
        points: ``(N, d)`` coordinates, the ones given to :func:`decompose`.
        values: ``(N,)`` or ``(N, c)`` field at the points.
        subdomain: one of :func:`decompose`'s sub-domains of ``points``.
        shape: grid nodes per dimension, a d-tuple of ints >= 2 (an int means that many per axis).
        method: ``"linear"`` or ``"nearest"``.
    """
    pts = _as_points(points)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim not in (1, 2) or len(vals) != len(pts):
        raise MeshError(f"values must have shape ({len(pts)},) or ({len(pts)}, c) to match the "
                        f"points; got {vals.shape}.")
    if not np.isfinite(vals).all():
        raise MeshError("values contain NaN or infinite entries.")
    if method not in GRID_METHODS:
        raise MeshError(f"method must be one of {GRID_METHODS}; got {method!r}.")
    local = subdomain.indices
    if subdomain.box.shape != (2, pts.shape[1]) or (len(local) and local.max() >= len(pts)):
        raise MeshError(f"the sub-domain does not belong to these {len(pts)} points in "
                        f"{pts.shape[1]}D; pass the points that were decomposed.")
    axes = _grid_axes(subdomain.box, shape, pts.shape[1])
    nodes = _grid_points(axes)
    grid, n_nearest = _scatter_to_nodes(pts[local], vals[local], nodes, method)
    grid = grid.reshape(*(len(a) for a in axes), *vals.shape[1:])
    back = from_grid(axes, grid, pts[subdomain.core])
    true = vals[subdomain.core]
    err, norm = float(np.linalg.norm(back - true)), float(np.linalg.norm(true))
    relative = err / norm if norm > 0 else (0.0 if err == 0 else np.inf)
    max_error = float(np.abs(back - true).max()) if len(true) else 0.0
    return GridSample(axes, grid, back, relative, max_error, n_nearest)


def from_grid(grid, grid_values, query_points) -> np.ndarray:
    """Multilinear interpolation of grid values at arbitrary points.

    Args:
        grid: a :class:`GridSample` (its axes are used) or a tuple of d axis arrays.
        grid_values: ``(*shape)`` or ``(*shape, c)`` values at the grid nodes, e.g. a model's
            prediction on ``GridSample.grid_points``.
        query_points: ``(M, d)`` points, normally inside the grid's box; points outside are
            extrapolated linearly from the nearest cell.

    Returns:
        ``(M,)`` or ``(M, c)`` interpolated values.
    """
    axes = grid.axes if isinstance(grid, GridSample) else tuple(np.asarray(a) for a in grid)
    values = np.asarray(grid_values, dtype=np.float64)
    shape = tuple(len(a) for a in axes)
    if values.shape[:len(axes)] != shape or values.ndim > len(axes) + 1:
        raise MeshError(f"grid_values must have shape {shape} or {shape + ('c',)}; "
                        f"got {values.shape}.")
    query = np.asarray(query_points, dtype=np.float64).reshape(-1, len(axes))
    interp = RegularGridInterpolator(axes, values, method="linear", bounds_error=False,
                                     fill_value=None)
    return interp(query)


def _grid_axes(box: np.ndarray, shape, dim: int) -> tuple[np.ndarray, ...]:
    """Uniform node coordinates per dimension spanning ``box``."""
    shape = (shape,) * dim if isinstance(shape, (int, np.integer)) else tuple(shape)
    if len(shape) != dim or any(isinstance(s, bool) or not isinstance(s, (int, np.integer))
                                or s < 2 for s in shape):
        raise MeshError(f"shape must be {dim} integers >= 2 (grid nodes per axis); got {shape}.")
    if np.any(box[1] <= box[0]):
        raise MeshError(f"the sub-domain's box has zero extent along an axis ({box.tolist()}); "
                        "a grid needs a box of positive size.")
    return tuple(np.linspace(box[0, k], box[1, k], shape[k]) for k in range(dim))


def _grid_points(axes: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def _scatter_to_nodes(pts: np.ndarray, vals: np.ndarray, nodes: np.ndarray,
                      method: str) -> tuple[np.ndarray, int]:
    """Values at ``nodes`` from scattered ``(pts, vals)`` and the count filled by nearest point."""
    nearest = NearestNDInterpolator(pts, vals)
    if method == "nearest":
        return nearest(nodes), len(nodes)
    try:
        triangulation = Delaunay(pts)
    except QhullError as err:
        raise MeshError(f"linear interpolation needs {pts.shape[1] + 1} or more points not all on "
                        f"one {'line' if pts.shape[1] == 2 else 'plane'}; the sub-domain has "
                        f"{len(pts)} (use method='nearest').") from err
    grid = LinearNDInterpolator(triangulation, vals)(nodes)
    outside = np.isnan(grid).reshape(len(nodes), -1).any(axis=1)
    if outside.any():
        grid[outside] = nearest(nodes[outside])
    return grid, int(outside.sum())
