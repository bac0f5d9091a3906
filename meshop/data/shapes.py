"""Random geometry meshed with gmsh: planar domains with holes, and 3D mechanical parts.

Every function takes a ``numpy.random.Generator`` and draws from it in a fixed order, so the same
generator state gives the same mesh bit for bit (gmsh runs single-threaded with a fixed seed).
gmsh is process-global and not thread-safe: calls are serialized by a lock, and each one meshes
in a fresh gmsh model that is removed afterwards.
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path as _PolygonPath

from ..meshing import gmsh_session, mesh_arrays


# ---------------------------------------------------------------------------------- 2D domains
def _closed_curve(rng: np.random.Generator, smooth: bool) -> np.ndarray:
    """A random star-shaped closed curve around the origin of about unit radius, ``(K, 2)``
    counter-clockwise vertices: a radial Fourier series (smooth) or a polygon with 5-10 corners."""
    if smooth:
        modes = int(rng.integers(2, 6))
        k = np.arange(1, modes + 1)
        a, b = rng.normal(0.0, 0.3 / k, size=(2, modes))
        theta = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
        perturbation = a @ np.cos(np.outer(k, theta)) + b @ np.sin(np.outer(k, theta))
        low = perturbation.min()
        if low < -0.55:                              # keep r(θ) >= 0.45: no pinched necks
            perturbation *= 0.55 / -low
        r = 1.0 + perturbation
    else:
        corners = int(rng.integers(5, 11))
        gaps = rng.uniform(0.6, 1.4, size=corners)
        theta = np.cumsum(gaps / gaps.sum() * 2 * np.pi) + rng.uniform(0, 2 * np.pi)
        r = rng.uniform(0.55, 1.0, size=corners)
    stretch = rng.uniform(0.7, 1.3)
    return np.stack([stretch * r * np.cos(theta), r * np.sin(theta) / stretch], axis=1)


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _distance_to_polygon(points: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Distance of each point ``(P, 2)`` to the closed polyline ``xy`` (segment-wise)."""
    a, b = xy, np.roll(xy, -1, axis=0)
    ab = b - a
    t = np.einsum("psd,sd->ps", points[:, None] - a[None], ab) / np.einsum("sd,sd->s", ab, ab)
    nearest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def _place_holes(rng: np.random.Generator, outer: np.ndarray, n_holes: int,
                 margin: float) -> list[tuple[np.ndarray, bool]]:
    """Up to ``n_holes`` random (curve, is_smooth) holes strictly inside ``outer``, pairwise
    apart by ``margin``; rejection sampling with a fixed number of draws."""
    inside = _PolygonPath(outer)
    lo, hi = outer.min(axis=0), outer.max(axis=0)
    holes, discs = [], []                            # discs: (centre, bounding radius)
    for _ in range(n_holes):
        smooth = bool(rng.integers(0, 2))
        shape = _closed_curve(rng, smooth)
        shape /= np.linalg.norm(shape, axis=1).max()
        centres = rng.uniform(lo, hi, size=(40, 2))
        radius = rng.uniform(0.12, 0.35) * np.sqrt(_polygon_area(outer) / np.pi)
        for _shrink in range(4):                     # the largest of 4 shrinking radii that fits
            ok = inside.contains_points(centres)
            ok &= _distance_to_polygon(centres, outer) > radius + margin
            for c, r in discs:
                ok &= np.linalg.norm(centres - c, axis=1) > radius + r + margin
            if ok.any():
                centre = centres[int(np.argmax(ok))]
                holes.append((centre + radius * shape, smooth))
                discs.append((centre, radius))
                break
            radius *= 0.7
    return holes


def random_domain_2d(rng: np.random.Generator, target_nodes: int = 2000
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A random planar domain with 0-3 holes, triangulated by gmsh.

    The outer boundary is a smooth star-shaped curve or a random polygon (about unit radius,
    random orientation and aspect); holes are smaller random curves or polygons that touch
    neither each other nor the outer boundary. The mesh size is uniform, chosen from the area so
    that the mesh has about ``target_nodes`` nodes.

    Returns:
        points ``(N, 2)`` float64 and triangles ``(M, 3)`` int64.
    """
    outer_smooth = bool(rng.integers(0, 2))
    outer = _closed_curve(rng, outer_smooth)
    n_holes = int(rng.integers(0, 4))
    area = _polygon_area(outer)
    h = np.sqrt(2.0 * area / (np.sqrt(3.0) * target_nodes))
    holes = _place_holes(rng, outer, n_holes, margin=max(3 * h, 0.03))
    area -= sum(_polygon_area(hole) for hole, _ in holes)
    h = float(np.sqrt(2.0 * area / (np.sqrt(3.0) * target_nodes)))
    with gmsh_session("domain2d") as gmsh:
        loops = [_add_curve_loop(gmsh, curve, smooth)
                 for curve, smooth in [(outer, outer_smooth), *holes]]
        gmsh.model.geo.addPlaneSurface(loops)
        gmsh.model.geo.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMin", h)
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.Algorithm", 6)   # Frontal-Delaunay
        gmsh.model.mesh.generate(2)
        return mesh_arrays(gmsh, 2)


def _add_curve_loop(gmsh, xy: np.ndarray, smooth: bool) -> int:
    """Add a closed spline (smooth) or polygon through ``xy`` to the geo kernel; its loop tag."""
    geo = gmsh.model.geo
    tags = [geo.addPoint(float(x), float(y), 0.0) for x, y in xy]
    if smooth:
        curves = [geo.addSpline(tags + tags[:1])]
    else:
        curves = [geo.addLine(a, b) for a, b in zip(tags, tags[1:] + tags[:1])]
    return geo.addCurveLoop(curves)


# ---------------------------------------------------------------------------------- 3D parts
# Parts are built at unit scale (longest side about 1) with gmsh's OpenCASCADE kernel, meshed
# there, and only then scaled, rotated and translated in numpy: the mesh is the same whatever the
# physical size, and gmsh's absolute geometric tolerances never meet millimetre or metre parts.
PART_FAMILIES = ("plate", "block", "l_bracket", "flange", "shaft")


def _scatter_circles(rng: np.random.Generator, extent: tuple[float, float], count: int,
                     radius: tuple[float, float], margin: float, taken: list | None = None
                     ) -> list[list[float]]:
    """Up to ``count`` circles ``[x, y, r]`` inside the rectangle ``[0, ex] x [0, ey]``, apart
    from each other, from ``taken`` circles and from the edges by ``margin``; 20 draws each."""
    taken = list(taken or [])
    placed = []
    for _ in range(count):
        r = rng.uniform(*radius)
        lo, hi = np.full(2, r + margin), np.asarray(extent) - r - margin
        xy = rng.uniform(lo, np.maximum(hi, lo), size=(20, 2))
        ok = np.all(hi > lo) & np.ones(len(xy), dtype=bool)
        for cx, cy, cr in taken + placed:
            ok &= np.hypot(xy[:, 0] - cx, xy[:, 1] - cy) > r + cr + margin
        if ok.any():
            x, y = xy[int(np.argmax(ok))]
            placed.append([float(x), float(y), float(r)])
    return placed


def _draw_part(rng: np.random.Generator, family: str) -> dict:
    """Random unit-scale parameters of one part family (lengths relative to the longest side)."""
    u = rng.uniform
    if family == "plate":
        p = dict(length=1.0, width=u(0.35, 1.0), thickness=u(0.06, 0.15))
        p["slots"] = [[*c, u(0.04, 0.07)] for c in _scatter_circles(    # x, y, half-length, half-width
            rng, (1.0, p["width"]), int(rng.integers(0, 2)), (0.1, 0.2), 0.05)]
        avoid = [c[:3] for c in p["slots"]]
        p["bosses"] = [c + [u(0.05, 0.2)] for c in _scatter_circles(      # x, y, r, height
            rng, (1.0, p["width"]), int(rng.integers(0, 3)), (0.05, 0.1), 0.04, avoid)]
        p["holes"] = _scatter_circles(rng, (1.0, p["width"]), int(rng.integers(1, 7)),
                                      (0.03, 0.09), 0.04, avoid + [b[:3] for b in p["bosses"]])
    elif family == "block":
        p = dict(length=1.0, width=u(0.4, 0.9), height=u(0.25, 0.7))
        pocket = [u(0.2, 0.45), u(0.12, 0.4) * p["width"], u(0.3, 0.7)]  # half-length, half-width, depth fraction
        p["pocket"] = pocket if rng.uniform() < 0.6 else None
        keep_out = [[0.5, p["width"] / 2, np.hypot(*pocket[:2])]] if p["pocket"] else []
        p["holes"] = _scatter_circles(rng, (1.0, p["width"]), int(rng.integers(0, 5)),
                                      (0.03, 0.08), 0.04, keep_out)
        p["cross_hole"] = u(0.05, 0.22) * p["height"] if rng.uniform() < 0.5 else None
    elif family == "l_bracket":
        p = dict(length=1.0, width=u(0.4, 0.9), thickness=u(0.06, 0.15),
                 height=u(0.4, 0.9), wall=u(0.06, 0.15))
        p["gusset"] = u(0.15, 0.35) if rng.uniform() < 0.5 else None
        keep_out = [[0.0, p["width"] / 2, p["gusset"] + 0.05]] if p["gusset"] else []
        base = _scatter_circles(rng, (1.0 - p["wall"], p["width"]), int(rng.integers(1, 5)),
                                (0.03, 0.08), 0.04, keep_out)
        p["base_holes"] = [[x + p["wall"], y, r] for x, y, r in base]
        wall = _scatter_circles(rng, (p["width"], p["height"] - p["thickness"]),
                                int(rng.integers(0, 4)), (0.03, 0.08), 0.04,
                                [[p["width"] / 2, 0.0, p["gusset"] + 0.05]] if p["gusset"] else [])
        p["wall_holes"] = [[y, z + p["thickness"], r] for y, z, r in wall]
    elif family == "flange":
        p = dict(radius=0.5, thickness=u(0.08, 0.2), bore=u(0.08, 0.2))
        p["hub_radius"] = p["bore"] + u(0.05, 0.12)
        p["hub_height"] = u(0.1, 0.4) if rng.uniform() < 0.7 else None
        p["bolt_radius"] = u(0.02, 0.05)
        inner = p["hub_radius"] + p["bolt_radius"] + 0.04
        p["bolt_circle"] = u(inner, max(inner, 0.5 - p["bolt_radius"] - 0.04))
        fits = int(2 * np.pi * p["bolt_circle"] / (2 * p["bolt_radius"] + 0.04))
        p["bolts"] = int(min(rng.integers(3, 9), fits))
    elif family == "shaft":                                  # round bodies along z: pins, knobs, stepped shafts
        p = dict(length=1.0, radius=u(0.12, 0.5))
        p["step"] = [u(0.3, 0.8), u(0.45, 0.85) * p["radius"]] if rng.uniform() < 0.6 else None  # at z, radius
        narrowest = p["step"][1] if p["step"] else p["radius"]
        p["bore"] = u(0.2, 0.55) * narrowest if rng.uniform() < 0.4 else None
        wall = narrowest - (p["bore"] or 0.0)
        p["cross_hole"] = [u(0.15, 0.85), u(0.2, 0.45) * wall] if rng.uniform() < 0.4 else None  # at z, radius
    else:
        raise ValueError(f"unknown part family {family!r}; expected one of {PART_FAMILIES}.")
    return p


def _build_part(occ, family: str, p: dict) -> None:
    """Create the unit-scale solid of ``family`` with parameters ``p`` in the OCC kernel."""
    if family == "plate":
        t, w = p["thickness"], p["width"]
        solid = [(3, occ.addBox(0, 0, 0, 1.0, w, t))]
        tools = [(3, occ.addCylinder(x, y, t / 2, 0, 0, t / 2 + h, r)) for x, y, r, h in p["bosses"]]
        if tools:
            solid, _ = occ.fuse(solid, tools)
        cut = [(3, occ.addCylinder(x, y, -t, 0, 0, 3 * t, r)) for x, y, r in p["holes"]]
        cut += [(3, occ.addBox(x - a, y - b, -t, 2 * a, 2 * b, 3 * t)) for x, y, a, b in p["slots"]]
    elif family == "block":
        w, h = p["width"], p["height"]
        solid = [(3, occ.addBox(0, 0, 0, 1.0, w, h))]
        cut = [(3, occ.addCylinder(x, y, -h, 0, 0, 3 * h, r)) for x, y, r in p["holes"]]
        if p["pocket"]:
            a, b, depth = p["pocket"]
            cut.append((3, occ.addBox(0.5 - a, w / 2 - b, h * (1 - depth), 2 * a, 2 * b, h)))
        if p["cross_hole"]:
            cut.append((3, occ.addCylinder(0.5, -w, h / 2, 0, 3 * w, 0, p["cross_hole"])))
    elif family == "l_bracket":
        t, w, wall, height = p["thickness"], p["width"], p["wall"], p["height"]
        parts = [(3, occ.addBox(0, 0, 0, 1.0, w, t)), (3, occ.addBox(0, 0, 0, wall, w, height))]
        if p["gusset"]:
            g, y0, gt = p["gusset"], w / 2 - 0.03, 0.06
            corners = [occ.addPoint(wall / 2, y0, t / 2), occ.addPoint(wall + g, y0, t / 2),
                       occ.addPoint(wall / 2, y0, t + g)]
            lines = [occ.addLine(a, b) for a, b in zip(corners, corners[1:] + corners[:1])]
            face = occ.addPlaneSurface([occ.addCurveLoop(lines)])
            parts += [d for d in occ.extrude([(2, face)], 0, gt, 0) if d[0] == 3]
        solid, _ = occ.fuse(parts[:1], parts[1:])
        cut = [(3, occ.addCylinder(x, y, -t, 0, 0, 3 * t, r)) for x, y, r in p["base_holes"]]
        cut += [(3, occ.addCylinder(-wall, y, z, 3 * wall, 0, 0, r)) for y, z, r in p["wall_holes"]]
    elif family == "shaft":
        solid = [(3, occ.addCylinder(0, 0, 0, 0, 0, p["step"][0] if p["step"] else 1.0, p["radius"]))]
        if p["step"]:
            z, radius = p["step"]
            solid, _ = occ.fuse(solid, [(3, occ.addCylinder(0, 0, z / 2, 0, 0, 1.0 - z / 2, radius))])
        cut = [(3, occ.addCylinder(0, 0, -0.5, 0, 0, 2.0, p["bore"]))] if p["bore"] else []
        if p["cross_hole"]:
            z, radius = p["cross_hole"]
            cut.append((3, occ.addCylinder(-1.0, 0, z, 2.0, 0, 0, radius)))
    else:  # flange
        t, hub = p["thickness"], p["hub_height"]
        solid = [(3, occ.addCylinder(0, 0, 0, 0, 0, t, p["radius"]))]
        if hub:
            solid, _ = occ.fuse(solid, [(3, occ.addCylinder(0, 0, t / 2, 0, 0, t / 2 + hub, p["hub_radius"]))])
        top = 3 * (t + (hub or 0))
        angles = 2 * np.pi * np.arange(p["bolts"]) / p["bolts"]
        cut = [(3, occ.addCylinder(0, 0, -t, 0, 0, top, p["bore"]))]
        cut += [(3, occ.addCylinder(p["bolt_circle"] * np.cos(a), p["bolt_circle"] * np.sin(a), -t,
                                    0, 0, top, p["bolt_radius"])) for a in angles]
    if cut:
        occ.cut(solid, cut)


def _thinnest(family: str, p: dict) -> float:
    """The smallest wall of a part, so the mesh has at least two layers across it."""
    return {"plate": lambda: p["thickness"], "block": lambda: 0.3 * p["height"],
            "l_bracket": lambda: min(p["thickness"], p["wall"]),
            "flange": lambda: p["thickness"],
            "shaft": lambda: min((p["step"][1] if p["step"] else p["radius"]) - (p["bore"] or 0.0),
                                 2 * (p["cross_hole"] or [0, 1])[1])}[family]()


def _mesh_size(gmsh, volume: tuple[int, int], target_nodes: int) -> float:
    """Mesh size h giving about ``target_nodes`` nodes: the positive root of
    ``N = 0.574 V / h^3 + 1.04 A / h^2`` (interior plus surface nodes; both constants fitted to
    gmsh's Delaunay meshes of these parts, within about 10 %)."""
    occ = gmsh.model.occ
    v = occ.getMass(*volume)
    area = sum(occ.getMass(*face) for face in gmsh.model.getBoundary([volume], oriented=False))
    roots = np.roots([float(target_nodes), 0.0, -1.04 * area, -0.574 * v])
    return float(max(r.real for r in roots if abs(r.imag) < 1e-12 and r.real > 0))


def part_mesh(family: str, params: dict, target_nodes: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Tetrahedral mesh of a unit-scale part: points ``(N, 3)``, tets ``(M, 4)``.

    The uniform mesh size comes from the part's volume, its area and ``target_nodes``, capped at
    half the thinnest wall. Raises ``RuntimeError`` (gmsh's or ours) when the CSG or meshing fails.
    """
    with gmsh_session("part3d") as gmsh:
        occ = gmsh.model.occ
        _build_part(occ, family, params)
        occ.synchronize()
        volumes = gmsh.model.getEntities(3)
        if len(volumes) != 1:
            raise RuntimeError(f"the {family} CSG gave {len(volumes)} volumes instead of one.")
        h = min(_mesh_size(gmsh, volumes[0], target_nodes), _thinnest(family, params) / 2)
        gmsh.option.setNumber("Mesh.MeshSizeMin", h)
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.Algorithm", 6)
        gmsh.option.setNumber("Mesh.Algorithm3D", 1)      # Delaunay, single-threaded: reproducible
        gmsh.model.mesh.generate(3)
        points, tets = mesh_arrays(gmsh, 3)
    if len(tets) == 0:
        raise RuntimeError(f"gmsh produced no tetrahedra for the {family}.")
    return points, tets


def random_part_3d(rng: np.random.Generator, target_nodes: int = 5000, max_tries: int = 10
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """A random mechanical part with a tetrahedral mesh of roughly ``target_nodes`` nodes.

    A family (plate, block, L-bracket, flange, shaft) and its proportions, holes, slots, bosses, pockets
    or gussets are drawn, built by CSG in gmsh's OpenCASCADE kernel and meshed; then the part is
    scaled to a log-uniform size (longest side of its unrotated box) between 0.01 m and 2 m,
    rotated uniformly at random and translated by up to 3 sizes per axis. A failed CSG or mesh
    is retried with the next draw, so the sequence stays deterministic.

    Returns:
        points ``(N, 3)`` in metres, tets ``(M, 4)`` int64, and a description dict: ``family``,
        ``params`` (unit-scale), ``size`` (m), ``rotation`` (quaternion x, y, z, w),
        ``translation`` (m), ``tries``.
    """
    from scipy.spatial.transform import Rotation

    for attempt in range(1, max_tries + 1):
        family = PART_FAMILIES[int(rng.integers(len(PART_FAMILIES)))]
        params = _draw_part(rng, family)
        size = float(np.exp(rng.uniform(np.log(0.01), np.log(2.0))))
        rotation = Rotation.random(random_state=rng)
        translation = size * rng.uniform(-3.0, 3.0, size=3)
        try:
            points, tets = part_mesh(family, params, target_nodes)
        except Exception:                                    # gmsh raises bare Exception
            continue
        centred = points - 0.5 * (points.min(axis=0) + points.max(axis=0))
        scale = size / float(np.ptp(points, axis=0).max())
        points = rotation.apply(centred * scale) + translation
        return points, tets, {"family": family, "params": params, "size": size,
                              "rotation": rotation.as_quat().tolist(),
                              "translation": translation.tolist(), "tries": attempt}
    raise RuntimeError(f"random_part_3d: {max_tries} draws in a row failed to mesh.")
