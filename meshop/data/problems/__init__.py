"""Problem registry: name -> how to draw one solved sample, and what its fields mean.

Each problem lives in a module of this package defining ``FIELDS`` (field name -> (role, meaning),
role "input" or "target"), ``DEFAULTS`` and a sample function; optional ``LENGTH_POWERS`` (field ->
p: the field scales like length**p, see :mod:`meshop.fields`), ``DIRICHLET`` (target -> the
input field, or constant, holding its value on boundary nodes), ``INPUT_DEFAULTS`` (input -> the
value a mesh without that field most likely means) and ``LINEAR_INPUTS`` (inputs on which the
targets depend linearly, together). Modules are imported lazily, so
listing problems is cheap.

>>> import numpy as np
>>> from meshop.data.problems import get_problem
>>> mesh = get_problem("poisson2d").sample(np.random.default_rng(0), resolution=500)
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import numpy as np

from ...errors import MeshError
from ...mesh import Mesh
from ...trajectory import Trajectory


@dataclass(frozen=True)
class Problem:
    """One registered problem.

    Attributes:
        name: registry name (``meshop generate NAME``).
        summary: one line: the PDE and the domain.
        resolution: what ``resolution`` means for this problem.
        module, function: where the sample function lives (imported on first use); it takes
            ``(rng, resolution=..., **options)`` and returns a Mesh or ``(Mesh or Trajectory, info dict)``.
    """

    name: str
    summary: str
    resolution: str
    module: str
    function: str

    def _module(self):
        return importlib.import_module(self.module)

    @property
    def fields(self) -> dict[str, tuple[str, str]]:
        """Field name -> (role, meaning), inputs first."""
        return dict(self._module().FIELDS)

    @property
    def inputs(self) -> dict[str, str]:
        return {n: meaning for n, (role, meaning) in self.fields.items() if role == "input"}

    @property
    def targets(self) -> dict[str, str]:
        return {n: meaning for n, (role, meaning) in self.fields.items() if role == "target"}

    @property
    def defaults(self) -> dict:
        return dict(self._module().DEFAULTS)

    @property
    def options(self) -> list[str]:
        """Keyword options of the sample function besides ``rng`` and ``resolution``."""
        parameters = inspect.signature(getattr(self._module(), self.function)).parameters
        return [p for p in list(parameters)[1:] if p != "resolution"]

    @property
    def length_powers(self) -> dict[str, int]:
        return dict(getattr(self._module(), "LENGTH_POWERS", {}))

    @property
    def dirichlet(self) -> dict[str, str | float]:
        return dict(getattr(self._module(), "DIRICHLET", {}))

    @property
    def input_defaults(self) -> dict[str, float]:
        return dict(getattr(self._module(), "INPUT_DEFAULTS", {}))

    @property
    def initial_defaults(self) -> dict[str, float]:
        """State field -> the initial value a mesh without it most likely means (time-dependent problems)."""
        return dict(getattr(self._module(), "INITIAL_DEFAULTS", {}))

    @property
    def held_boundary(self) -> dict:
        """``{"state", "mask", "value"}``: the state equals input ``value`` on boundary nodes where
        input ``mask`` is set (time-dependent problems with held surfaces; empty otherwise);
        ``mask`` None: on every boundary node; ``value`` None: the state keeps its initial value
        there (a rollout holds it at the initial state's)."""
        return dict(getattr(self._module(), "HELD_BOUNDARY", {}))

    @property
    def linear_inputs(self) -> list[str]:
        return list(getattr(self._module(), "LINEAR_INPUTS", []))

    def sample_with_info(self, rng: np.random.Generator, resolution: int | None = None,
                         **options) -> tuple[Mesh | Trajectory, dict]:
        """One solved sample (a Mesh, or a Trajectory for a time-dependent problem) and a
        JSON-ready dict of its own parameters (may be empty)."""
        if resolution is not None:
            options["resolution"] = int(resolution)
        out = getattr(self._module(), self.function)(rng, **options)
        mesh, info = out if isinstance(out, tuple) else (out, {})
        return mesh, dict(info)

    def sample(self, rng: np.random.Generator, resolution: int | None = None, **options) -> Mesh:
        """One solved sample: a :class:`~meshop.Mesh` carrying every field of :attr:`fields`."""
        return self.sample_with_info(rng, resolution, **options)[0]


PROBLEMS: dict[str, Problem] = {p.name: p for p in [
    Problem("poisson2d", "-Δu = f on random planar domains with 0-3 holes, u = g on the boundary",
            "target number of mesh nodes (default 2000)",
            "meshop.data.problems.poisson2d", "poisson2d_sample"),
    Problem("darcy2d", "-∇·(a∇u) = 1, u = 0 on the boundary, a = 3 or 12 (thresholded GRF)",
            "nodes per side of the unit square (default 85); with --domain random, the mesh "
            "targets resolution² nodes", "meshop.data.problems.darcy2d", "darcy2d_sample"),
    Problem("heat3d", "steady conduction -ΔT = q in random 3D mechanical parts, T = g on the "
            "boundary", "target number of mesh nodes (default 5000)",
            "meshop.data.problems.heat3d", "heat3d_sample"),
    Problem("heat3d-transient", "transient conduction ∂T/∂τ = d²(ΔT + q) in random 3D parts, cooling "
            "or a source switching on, held (Dirichlet) or convective (Robin) surfaces",
            "target number of mesh nodes (default 3000)",
            "meshop.data.problems.heat3d_transient", "heat3d_transient_sample"),
    Problem("mpm2d", "MLS-MPM particle trajectories: jelly, water, sand, plasticine bodies of random "
            "shape falling in a 2D box", "target number of particles (default 4096)",
            "meshop.data.problems.mpm", "mpm2d_sample"),
    Problem("mpm3d", "MLS-MPM particle trajectories: jelly, water, sand, plasticine mechanical parts "
            "and balls falling in a 3D box", "target number of particles (default 8192)",
            "meshop.data.problems.mpm", "mpm3d_sample"),
    Problem("burgers2d", "viscous vector Burgers u_t + (u·∇)u = νΔu (time series) on random planar "
            "domains with holes or the unit square, u0 a Gaussian random field",
            "target number of mesh nodes (default 2000)",
            "meshop.data.problems.burgers2d", "burgers2d_sample"),
]}


def get_problem(name: str) -> Problem:
    """The registered problem ``name``; :class:`MeshError` listing the known ones otherwise."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise MeshError(f"unknown problem '{name}' (known: {', '.join(PROBLEMS)}).") from None


__all__ = ["PROBLEMS", "Problem", "get_problem"]
