"""Random MPM scenes: bodies of random shape, filled with particles, placed apart in a unit box.

2D bodies are random polygons (the star-shaped curves of :mod:`meshop.data.shapes`) or discs;
3D bodies are meshop's mechanical parts (:func:`~meshop.data.shapes.random_part_3d`, rescaled) or
balls. Bodies are filled with a regular particle lattice plus a seeded jitter, each body gets a
random rigid velocity (translation + spin) and a material.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as PolygonPath

from ..shapes import PART_FAMILIES, _closed_curve, _draw_part, part_mesh

#: jitter of the particle lattice, as a fraction of its spacing (uniform ±)
JITTER = 0.2


@dataclass
class Body:
    """One body before filling: a shape, its centre and bounding radius (m) in the box."""

    kind: str                       # "polygon", "disc", "ball" or a part family
    centre: np.ndarray
    radius: float
    outline: np.ndarray | None = None          # 2D polygon (K, 2), about the origin
    tets: tuple | None = None                  # 3D (points about the origin, tets)

    @property
    def volume(self) -> float:
        """Area (2D) or volume (3D) in m² / m³."""
        if self.kind in ("disc", "ball"):
            return np.pi * self.radius ** 2 if self.kind == "disc" else 4 / 3 * np.pi * self.radius ** 3
        if self.outline is not None:
            x, y = self.outline.T
            return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        points, tets = self.tets
        a, b, c, d = (points[tets[:, i]] for i in range(4))
        return float(np.abs(np.einsum("ij,ij->i", b - a, np.cross(c - a, d - a))).sum() / 6)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of ``points`` (P, d), relative to the centre, inside the body."""
        if self.kind in ("disc", "ball"):
            return np.linalg.norm(points, axis=1) < self.radius
        if self.outline is not None:
            return PolygonPath(self.outline).contains_points(points)
        import pyvista as pv

        nodes, tets = self.tets
        grid = pv.UnstructuredGrid({pv.CellType.TETRA: tets}, nodes)
        return np.asarray(grid.find_containing_cell(points)) >= 0


#: the shape families of ``place_bodies(shapes=...)`` per dimension: (round, other)
SHAPE_FAMILIES = {2: ("disc", "polygon"), 3: ("ball", "part")}


def _shape(rng: np.random.Generator, dim: int, radius: float, shapes: str = "mixed") -> Body:
    """A random shape with bounding radius ``radius``, centred on the origin; ``shapes`` "mixed"
    draws the family (2D: 30 % discs, 3D: 20 % balls), or names one of :data:`SHAPE_FAMILIES`
    (the same random draws either way)."""
    round_draw = rng.random() < (0.3 if dim == 2 else 0.2)
    round_shape = round_draw if shapes == "mixed" else shapes == SHAPE_FAMILIES[dim][0]
    if dim == 2:
        if round_shape:
            return Body("disc", np.zeros(2), radius)
        outline = _closed_curve(rng, smooth=bool(rng.random() < 0.5))
        return Body("polygon", np.zeros(2), radius, outline=outline * radius / np.linalg.norm(outline, axis=1).max())
    if round_shape:
        return Body("ball", np.zeros(3), radius)
    from scipy.spatial.transform import Rotation

    family = PART_FAMILIES[int(rng.integers(len(PART_FAMILIES)))]
    params = _draw_part(rng, family)
    rotation = Rotation.random(random_state=rng)
    try:
        points, tets = part_mesh(family, params, target_nodes=400)
    except Exception:                               # gmsh raises bare Exception; same draw, same failure
        return Body("ball", np.zeros(3), radius)
    points = rotation.apply(points - 0.5 * (points.min(axis=0) + points.max(axis=0)))
    points *= radius / np.linalg.norm(points, axis=1).max()
    return Body(family, np.zeros(3), radius, tets=(points, tets))


def place_bodies(rng: np.random.Generator, dim: int, count: int, margin: float = 0.05,
                 max_draws: int = 200, shapes: str = "mixed") -> list[Body]:
    """Up to ``count`` random bodies in the unit box, bounding balls apart and ``margin`` from the
    walls, of the shape family ``shapes`` (see :func:`_shape`)."""
    bodies = []
    for _ in range(max_draws):
        if len(bodies) == count:
            break
        radius = float(rng.uniform(0.08, 0.2) * (1.0 if count == 1 else 0.8))
        centre = rng.uniform(margin + radius, 1.0 - margin - radius, size=dim)
        if all(np.linalg.norm(centre - b.centre) > radius + b.radius + margin for b in bodies):
            body = _shape(rng, dim, radius, shapes)
            body.centre = centre
            bodies.append(body)
    return bodies


def fill(rng: np.random.Generator, body: Body, spacing: float) -> np.ndarray:
    """Particles ``(P, d)`` filling ``body``: a lattice of ``spacing`` (m) plus jitter, in box coordinates."""
    dim = len(body.centre)
    ticks = np.arange(-body.radius, body.radius + spacing, spacing)
    lattice = np.stack(np.meshgrid(*[ticks] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    lattice = lattice + rng.uniform(-JITTER, JITTER, size=lattice.shape) * spacing
    return lattice[body.inside(lattice)] + body.centre


def rigid_velocity(rng: np.random.Generator, points: np.ndarray, centre: np.ndarray,
                   speed: float = 1.0, spin: float = 2.0) -> np.ndarray:
    """``(P, d)`` velocities (m/s) of a random rigid motion: translation ~ N(0, speed²) per axis,
    rotation about the centre at up to ``spin`` rad/s (about a random axis in 3D)."""
    dim = points.shape[1]
    translation = rng.normal(0.0, speed, size=dim)
    omega = rng.uniform(-spin, spin) * (np.array([0, 0, 1.0]) if dim == 2 else _unit(rng.normal(size=3)))
    r = points - centre
    r3 = np.pad(r, ((0, 0), (0, 3 - dim)))
    return translation + np.cross(omega, r3)[:, :dim]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)
