"""What every 2D mesh mover needs: cell quality, boundary nodes that slide, and moves that stay valid.

r-adaptation moves nodes and keeps the connectivity. A moved triangle mesh is *valid* when every
triangle keeps its orientation with a non-negligible area. Boundary nodes slide along their own
boundary curve: each closed boundary loop (outer curve and holes) is cut at its corners (turning
angle above ``corner_degrees``) into chains, and a moved boundary node is projected back onto the
original polyline of its chain; corners do not move. Since the boundary nodes stay on the
original boundary curves in their order and no triangle inverts, the moved mesh covers the same
domain: no node leaves it, holes stay holes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix

from ..errors import MeshError

#: a triangle is degenerate when its area falls below this fraction of its original area
MIN_AREA_RATIO = 1e-4
#: boundary nodes whose boundary turns by more than this are corners and stay put
CORNER_DEGREES = 25.0
#: a sliding node keeps at least this fraction of its original distance (along the boundary) to
#: each corner ending its chain
CORNER_MARGIN = 0.5


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``(M,)`` signed areas (positive for counter-clockwise corners)."""
    a, b, c = (points[triangles[:, k]] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def corner_cosines(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``(3, M)`` cosine of each triangle's interior angle at its corner k (node ``triangles[:, k]``)."""
    corners = points[triangles]                                          # (M, 3, 2)
    cosines = []
    for k in range(3):
        u = corners[:, (k + 1) % 3] - corners[:, k]
        v = corners[:, (k + 2) % 3] - corners[:, k]
        cosines.append((u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-300))
    return np.array(cosines)


def min_angles(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``(M,)`` smallest interior angle of each triangle, degrees."""
    return np.degrees(np.arccos(np.clip(corner_cosines(points, triangles).max(0), -1.0, 1.0)))   # largest cosine


@dataclass
class MeshQuality:
    """Quality report of a (moved) triangle mesh.

    Attributes:
        n_inverted: triangles whose orientation flipped or whose area fell below
            :data:`MIN_AREA_RATIO` of the reference; min_area_ratio: smallest area / reference area.
        min_angle: smallest interior angle in the mesh, degrees.
        histogram: counts of per-cell minimum angles in the bins ``bins`` (degrees, 0-60).
        halvings: rounds of halving the move where it would tangle the mesh (0: applied in full).
    """

    n_inverted: int
    min_area_ratio: float
    min_angle: float
    histogram: list[int]
    bins: list[float] = field(default_factory=lambda: list(np.linspace(0.0, 60.0, 13)))
    halvings: int = 0

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        bars = " ".join(f"{int(lo)}-{int(hi)}:{n}" for lo, hi, n in zip(self.bins, self.bins[1:], self.histogram) if n)
        out = [f"{self.n_inverted} inverted or degenerate cells, min angle {self.min_angle:.1f} deg, "
               f"smallest area ratio {self.min_area_ratio:.3g}",
               f"min-angle histogram (deg:cells) {bars}"]
        if self.halvings:
            out.append(f"the full move would have tangled the mesh: it was scaled back, {self.halvings} "
                       f"round(s) (halved near the tangled cells, or shrunk as a whole)")
        return out


def mesh_quality(points: np.ndarray, triangles: np.ndarray, reference: np.ndarray | None = None,
                 halvings: int = 0) -> MeshQuality:
    """Quality of ``points`` against the ``reference`` node positions (default: itself)."""
    ratio = signed_areas(points, triangles) / signed_areas(points if reference is None else reference, triangles)
    return _quality(points, triangles, ratio, halvings)


def _quality(points: np.ndarray, triangles: np.ndarray, ratio: np.ndarray, halvings: int) -> MeshQuality:
    """:func:`mesh_quality` from the cells' area ratios ``(M,)`` to their reference."""
    angles = min_angles(points, triangles)
    bins = np.linspace(0.0, 60.0, 13)
    histogram, _ = np.histogram(np.clip(angles, 0.0, 60.0), bins=bins)
    return MeshQuality(int((ratio < MIN_AREA_RATIO).sum()), float(ratio.min()), float(angles.min()),
                       histogram.tolist(), bins.tolist(), halvings)


def is_valid(points: np.ndarray, triangles: np.ndarray, reference: np.ndarray) -> bool:
    """No triangle inverted or below :data:`MIN_AREA_RATIO` of its ``reference`` area."""
    ratio = signed_areas(points, triangles) / signed_areas(reference, triangles)
    return bool(np.all(ratio >= MIN_AREA_RATIO))


class BoundarySlider:
    """Projects moved boundary nodes back onto their own boundary chain (corners fixed).

    Args:
        points: ``(N, 2)`` original node positions; triangles: ``(M, 3)``.
        corner_degrees: turning angle above which a boundary node is a corner.
    """

    def __init__(self, points: np.ndarray, triangles: np.ndarray, corner_degrees: float = CORNER_DEGREES):
        self.points = np.asarray(points, dtype=np.float64)
        loops = boundary_loops(triangles, len(points))
        self.corners = np.array([n for loop in loops for n in loop[_turning(self.points[loop]) > corner_degrees]],
                                dtype=np.int64)
        visits = np.bincount(np.concatenate(loops), minlength=len(points)) if loops else np.zeros(0, int)
        if np.any(visits > 1):          # where the boundary touches itself: fixed, like a corner
            self.corners = np.union1d(self.corners, np.flatnonzero(visits > 1))
        #: (nodes that slide, the original polyline they slide on)
        self.chains = [c for loop in loops for c in _split_at(loop, set(self.corners.tolist()))]
        self.boundary = np.zeros(len(points), dtype=bool)
        #: (N, 2) unit tangent of the boundary at sliding nodes, 0 at corners and interior nodes
        self.tangents = np.zeros((len(points), 2))
        for loop in loops:
            self.boundary[loop] = True
            chord = self.points[np.roll(loop, -1)] - self.points[np.roll(loop, 1)]
            self.tangents[loop] = chord / np.linalg.norm(chord, axis=1, keepdims=True)
        self.tangents[self.corners] = 0.0
        # a node near a corner could slide onto it (the projection stops there) or onto another
        # node stopped there, and flatten a cell: on a chain between corners, each node keeps at
        # least CORNER_MARGIN of its original distance (along the chain) to both end corners
        self._lines, self._limits = [], []
        for sliding, polyline in self.chains:
            line = _Polyline(self.points[polyline])
            open_chain = len(sliding) == len(polyline) - 2          # ends at corners (not a free loop)
            self._lines.append(line)
            self._limits.append((CORNER_MARGIN * line.cum[1:-1], line.cum[-1] - CORNER_MARGIN * (line.cum[-1] - line.cum[1:-1]))
                                if open_chain and len(sliding) else None)

    def tangential(self, vectors: np.ndarray) -> np.ndarray:
        """``(N, 2)`` nodal vectors (displacements) with the normal part removed on the boundary and
        zero at corners: the no-normal-motion condition, applied to a velocity or a displacement."""
        out = np.array(vectors, dtype=np.float64)
        along = (out[self.boundary] * self.tangents[self.boundary]).sum(1, keepdims=True)
        out[self.boundary] = along * self.tangents[self.boundary]
        return out

    def project(self, moved: np.ndarray) -> np.ndarray:
        """``(N, 2)`` moved positions with boundary nodes on their chain's polyline, corners at home."""
        out = np.array(moved, dtype=np.float64)
        out[self.corners] = self.points[self.corners]
        for (sliding, _), line, limits in zip(self.chains, self._lines, self._limits):
            if not len(sliding):
                continue
            out[sliding], s = line.closest(out[sliding])
            if limits is not None:                  # keep clear of the corners at the chain's ends
                out[sliding] = line.at(np.clip(s, *limits))
        return out


def boundary_loops(triangles: np.ndarray, n_points: int) -> list[np.ndarray]:
    """Closed boundary loops of a triangle mesh as ordered node ids (edges used by one triangle)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    keys, counts = np.unique(edges[:, 0].astype(np.int64) * n_points + edges[:, 1], return_counts=True)
    boundary = np.column_stack(np.divmod(keys[counts == 1], n_points))     # sorted (a, b), a < b
    graph = coo_matrix((np.ones(2 * len(boundary)), (boundary.ravel(), boundary[:, ::-1].ravel())),
                       shape=(n_points, n_points)).tocsr()
    nodes = np.unique(boundary)
    degree = np.diff(graph.indptr)[nodes]
    if np.any(degree % 2):
        node = int(nodes[np.argmax(degree % 2)])
        raise MeshError(f"the mesh boundary does not close around node {node} (an odd number, "
                        f"{int(degree[np.argmax(degree % 2)])}, of boundary edges meet there: triangles overlap "
                        "or an edge belongs to more than two triangles); adapt needs a valid triangle mesh.")
    if np.any(degree != 2):                     # the boundary touches itself at a node (a pinch)
        return _pinched_loops(graph, nodes)
    ends = graph.indptr[nodes]                                          # each node's two neighbours
    neighbours = dict(zip(nodes.tolist(), zip(graph.indices[ends].tolist(), graph.indices[ends + 1].tolist())))
    seen, loops = set(), []
    for start in nodes.tolist():                                        # Python ints: a fast walk
        if start in seen:
            continue
        loop, previous, node = [start], -1, start
        seen.add(start)
        while True:
            a, b = neighbours[node]
            nxt = a if a != previous else b
            if nxt == start:
                break
            loop.append(nxt)
            seen.add(nxt)
            previous, node = node, nxt
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def _pinched_loops(graph, nodes: np.ndarray) -> list[np.ndarray]:
    """Closed loops covering every boundary edge once when some nodes have 4, 6, ... boundary
    edges (two holes touching at a node, a hole touching the outer curve, a loop touching itself):
    such a node appears in two loops, or twice in one; :class:`BoundarySlider` keeps it fixed."""
    unused = {int(n): set(graph.indices[graph.indptr[n]:graph.indptr[n + 1]].tolist()) for n in nodes}
    loops = []
    for start in nodes.tolist():
        while unused[start]:
            loop, node = [start], start
            while True:
                nxt = min(unused[node])                 # deterministic; any pairing closes loops
                unused[node].discard(nxt)
                unused[nxt].discard(node)
                if nxt == start:
                    break
                loop.append(nxt)
                node = nxt
            loops.append(np.array(loop, dtype=np.int64))
    return loops


def _turning(xy: np.ndarray) -> np.ndarray:
    """Turning angle (degrees) at each vertex of a closed polyline."""
    incoming = xy - np.roll(xy, 1, axis=0)
    outgoing = np.roll(xy, -1, axis=0) - xy
    cross = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]
    return np.degrees(np.abs(np.arctan2(cross, (incoming * outgoing).sum(1))))


def _split_at(loop: np.ndarray, corners: set) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(sliding nodes, polyline nodes)`` of each chain of a closed loop between consecutive
    corners (the polyline ends at the corners, which do not slide); a loop without corners is one
    closed chain on which every node slides."""
    at = [i for i, n in enumerate(loop) if n in corners]
    if not at:
        return [(loop, np.append(loop, loop[0]))]
    rolled = np.roll(loop, -at[0])
    at = [i - at[0] for i in at] + [len(loop)]
    closed = np.append(rolled, rolled[0])
    return [(closed[a + 1:b], closed[a:b + 1]) for a, b in zip(at[:-1], at[1:])]


class _Polyline:
    """A boundary chain's polyline ``(k, 2)``, its segments and arclengths, for projecting onto it."""

    def __init__(self, vertices: np.ndarray):
        self.start, self.segments = vertices[:-1], np.diff(vertices, axis=0)          # (s, 2)
        self.lengths = np.linalg.norm(self.segments, axis=1)
        self.squared = np.maximum(self.lengths ** 2, 1e-300)
        self.cum = np.concatenate([[0.0], np.cumsum(self.lengths)])                   # (k,) arclengths
        self.vertices = vertices

    def closest(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 2)`` closest points to ``x (n, 2)`` on the segments and their arclengths ``(n,)``."""
        offset = x[:, None] - self.start[None]                                        # (n, s, 2)
        t = np.clip((offset[..., 0] * self.segments[:, 0] + offset[..., 1] * self.segments[:, 1])
                    / self.squared, 0.0, 1.0)
        gap_x, gap_y = offset[..., 0] - t * self.segments[:, 0], offset[..., 1] - t * self.segments[:, 1]
        best = (gap_x * gap_x + gap_y * gap_y).argmin(axis=1)
        rows = np.arange(len(x))
        foot = self.start[best] + t[rows, best, None] * self.segments[best]
        return foot, self.cum[best] + t[rows, best] * self.lengths[best]

    def at(self, s: np.ndarray) -> np.ndarray:
        """``(n, 2)`` points at arclengths ``s (n,)``."""
        return np.column_stack([np.interp(s, self.cum, self.vertices[:, k]) for k in range(2)])


def safe_move(points: np.ndarray, triangles: np.ndarray, target: np.ndarray,
              slider: BoundarySlider | None = None, max_halvings: int = 30, shrink: float | None = None
              ) -> tuple[np.ndarray, MeshQuality]:
    """Move ``points`` towards ``target`` as far as the mesh stays valid.

    Boundary nodes are projected onto their chains (``slider``, built here when None). While a
    triangle would invert or degenerate, the move backs off: by default the displacement of its
    three nodes is halved (only there: the rest of the mesh keeps its move), and after
    ``max_halvings`` rounds the whole displacement is halved instead. With ``shrink`` (a factor
    in (0, 1)) the whole displacement is multiplied by it each round instead: the map keeps its
    shape (a local halving leaves a kink in it, squeezing the cells around the tangle), for
    at most ``2 max_halvings`` rounds. Returns the moved points and their :class:`MeshQuality`
    (``halvings``: rounds of backing off, 0 when the move was applied in full; the original mesh
    if nothing else is valid).
    """
    slider = slider or BoundarySlider(points, triangles)
    displacement = np.asarray(target, dtype=np.float64) - points
    reference = signed_areas(points, triangles)
    for halvings in range(2 * max_halvings + 1):
        moved = slider.project(points + displacement)
        ratio = signed_areas(moved, triangles) / reference
        bad = ratio < MIN_AREA_RATIO
        if not bad.any():
            return moved, _quality(moved, triangles, ratio, halvings)
        if shrink is not None:
            displacement *= shrink
        elif halvings < max_halvings:
            displacement[np.unique(triangles[bad])] *= 0.5
        else:
            displacement *= 0.5
    return points.copy(), mesh_quality(points, triangles, points, 2 * max_halvings + 1)
