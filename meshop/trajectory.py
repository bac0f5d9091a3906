"""`Trajectory`: one node set, named fields per frame, and the times.

A trajectory is what a time-dependent sample is: a :class:`~meshop.Mesh` (cells, and the point
fields held constant over time, e.g. a material id or a source term), the frame times, the
time-varying fields frame by frame, and, when the nodes move (particles, moving meshes), their
positions frame by frame. ``metadata`` holds JSON-ready facts (dt, frame stride, materials, ...).

>>> traj = Trajectory(mesh, times=np.arange(11) * 0.1, fields={"temperature": T})   # T (11, N)
>>> traj.frame(3)               # a Mesh with the frame's positions and every field at t = 0.3
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import MeshError
from .mesh import Mesh, _numeric


@dataclass
class Trajectory:
    """A time series on one node set.

    Attributes:
        mesh: node set of frame 0, cells, and the point fields constant in time.
        times: ``(T,)`` strictly increasing frame times (seconds, or the problem's time unit).
        fields: name -> ``(T, N)`` or ``(T, N, c)`` values per frame.
        positions: ``(T, N, d)`` node positions per frame when the nodes move, else None.
        metadata: JSON-ready facts: ``dt`` of the underlying solver, ``stride`` (solver steps
            per frame), ``state`` (names of the evolving fields), materials, statistics, ...
        source: the file it was read from, used in messages.
    """

    mesh: Mesh
    times: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    positions: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    source: object = None

    def __post_init__(self):
        where = f"{self.source}: " if self.source else ""
        if not isinstance(self.mesh, Mesh):
            raise TypeError(f"Trajectory needs a meshop.Mesh (the nodes of frame 0), got {type(self.mesh).__name__}.")
        for name in ("fields", "metadata"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{where}{name} must be a dict, got {type(getattr(self, name)).__name__}.")
        if self.times is None:
            raise TypeError(f"{where}times must be a 1D array of frame times, got None.")
        try:
            times = np.asarray(self.times, dtype=np.float64)
        except (ValueError, TypeError):
            raise MeshError(f"{where}times must be a 1D array of real frame times, got {self.times!r:.60}.") from None
        if times.ndim > 1:
            raise MeshError(f"{where}times must be a 1D array of frame times, got shape {times.shape}.")
        self.times = times.reshape(-1)
        n_frames, n_points = len(self.times), self.mesh.n_points
        if n_frames == 0:
            raise MeshError(f"{where}the series has no frames.")
        if not np.isfinite(self.times).all():
            raise MeshError(f"{where}the frame times hold NaN or infinite values.")
        steps = np.diff(self.times)
        if (steps <= 0).any():
            k = int(np.argmax(steps <= 0))
            raise MeshError(f"{where}frame times must increase, but frame {k + 1} is at "
                            f"t = {self.times[k + 1]:g} after t = {self.times[k]:g}.")
        fields = {}
        for name, values in self.fields.items():
            if not isinstance(name, str):
                raise TypeError(f"{where}field names must be strings, got {name!r} ({type(name).__name__}).")
            values = _numeric(f"field '{name}'", values, where)
            if values.ndim < 2 or values.shape[:2] != (n_frames, n_points):
                raise MeshError(f"{where}field '{name}' has shape {values.shape}; expected "
                                f"({n_frames}, {n_points}, ...) for {n_frames} frames of {n_points} nodes.")
            if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
                frame = int(np.flatnonzero(~np.isfinite(values.reshape(n_frames, -1)).all(axis=1))[0])
                raise MeshError(f"{where}field '{name}' has NaN or infinite values in frame {frame}.")
            fields[name] = values
        self.fields = fields
        if self.positions is not None:
            try:
                positions = np.asarray(self.positions, dtype=np.float64)
            except (ValueError, TypeError):
                raise MeshError(f"{where}positions must be a ({n_frames}, {n_points}, {self.mesh.dim}) array of "
                                "real coordinates.") from None
            if positions.shape != (n_frames, n_points, self.mesh.dim):
                raise MeshError(f"{where}positions have shape {positions.shape}; expected "
                                f"({n_frames}, {n_points}, {self.mesh.dim}).")
            if not np.isfinite(positions).all():
                raise MeshError(f"{where}node positions hold NaN or infinite values.")
            self.positions = positions

    # ------------------------------------------------------------------ facts
    @property
    def n_frames(self) -> int:
        return len(self.times)

    @property
    def n_points(self) -> int:
        return self.mesh.n_points

    @property
    def dim(self) -> int:
        return self.mesh.dim

    @property
    def moving(self) -> bool:
        """True when node positions are given per frame."""
        return self.positions is not None

    @property
    def dt(self) -> float | None:
        """The frame spacing when it is uniform (to 1e-9 relative), else None."""
        if self.n_frames < 2:
            return None
        steps = np.diff(self.times)
        return float(steps.mean()) if np.allclose(steps, steps[0], rtol=1e-9, atol=0) else None

    @property
    def state(self) -> list[str]:
        """Names of the evolving fields: ``metadata["state"]`` if given, else every field."""
        return list(self.metadata.get("state") or self.fields)

    # ------------------------------------------------------------------ access
    def frame(self, index: int) -> Mesh:
        """Frame ``index`` as a :class:`Mesh`: its positions, the constant and the frame's fields.

        Fixed nodes: every frame shares :attr:`mesh`'s geometry, so boundary, normals and
        distances are computed once for the whole trajectory. Moving nodes: the cells are not
        checked again; the geometry of each frame is its own.
        """
        index = range(self.n_frames)[index]
        values = {n: v[index] for n, v in self.fields.items()}
        if self.moving:
            frame = self.mesh.with_points(self.positions[index], {**self.mesh.point_data, **values})
        else:
            frame = self.mesh.with_point_data(**values)
        frame.source = self.source
        return frame

    def summary(self) -> dict:
        """JSON-ready facts for ``meshop info``: frames, time range, dt, fields, moving nodes, the
        field data (name -> size) and the metadata."""
        return {
            "kind": "time series",
            "n_frames": self.n_frames,
            "n_points": self.n_points,
            "dim": self.dim,
            "time_range": [float(self.times[0]), float(self.times[-1])],
            "dt": self.dt,
            "moving": self.moving,
            "cells": self.mesh.cell_counts,
            "fields": {name: list(values.shape[2:]) for name, values in self.fields.items()},
            "constant_fields": {name: list(np.shape(v)[1:]) for name, v in self.mesh.point_data.items()},
            "field_data": {name: int(np.size(v)) for name, v in self.mesh.field_data.items()},
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        motion = "moving" if self.moving else "fixed"
        return (f"Trajectory({self.n_frames} frames, t = {self.times[0]:g}..{self.times[-1]:g}, "
                f"{self.n_points} {motion} nodes, fields {sorted(self.fields)})")
