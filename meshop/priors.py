"""The coarse physics solve a hybrid model starts from (a checkpoint's ``fields.prior``).

A model trained with a prior reads the prior as an input feature and adds it to its output in
normalized units (:func:`meshop.graph.decode`): it learns the difference between the coarse
voxel solve (:mod:`meshop.geometry.voxel_poisson`, resolution-free, right in amplitude on any
compact or slender shape) and the finite-element solution on the mesh.
"""

from __future__ import annotations

import numpy as np

from .errors import MeshError
from .estimate import ESTIMATORS
from .geometry.boundary import enclosed_measure, facet_simplices
from .geometry.voxel_poisson import DEFAULT_VOXELS, voxel_poisson

#: problem name -> the prior of its fields: the PDE meshop knows for it, named as the error
#: estimate names it (:data:`meshop.estimate.ESTIMATORS`, the one table of known PDEs)
PRIORS = {problem: {pde.target: {"pde": "poisson", "source": pde.source, "boundary": pde.boundary,
                                 "voxels": DEFAULT_VOXELS}}
          for problem, pde in ESTIMATORS.items()}


def known_prior(problem: str | None, spec, where) -> dict:
    """The prior of ``problem`` for the targets of ``spec``; ``MeshError`` when meshop knows no PDE
    for it or its fields are not the model's."""
    prior = PRIORS.get(problem or "")
    if prior is None:
        raise MeshError(f"{where}: a prior needs a problem whose PDE meshop knows ({', '.join(PRIORS)}); "
                        f"this dataset's problem is {problem or 'not named'}.")
    needed = {n for p in prior.values() for n in (p["source"], p["boundary"])}
    if sorted(prior) != sorted(spec.targets) or not needed <= set(spec.inputs):
        raise MeshError(f"{where}: the {problem} prior solves for {', '.join(prior)} from {', '.join(sorted(needed))}; "
                        f"the model's targets are {', '.join(spec.targets)} and inputs {', '.join(spec.inputs)}.")
    return {target: dict(p) for target, p in prior.items()}


def coarse_prior(mesh, spec, raw: dict[str, np.ndarray], positions: np.ndarray | None = None) -> np.ndarray:
    """``(N, T)`` physical prior of every target of ``spec`` on ``mesh``; ``raw``: input name ->
    ``(N, 1)`` values as the mesh gives them (defaults filled in); ``positions``: the mesh's
    :func:`~meshop.graph.node_positions` when the caller has them (computed here otherwise).

    Solved on the graphs' positions (:func:`~meshop.graph.node_positions`: centred, in units of
    the bounding-box diagonal D, snapped to a grid) with the source scaled by D²: voxel centres
    that fall on the surface (an axis-aligned face) are then classified the same wherever the
    part lies, and the prior of a part far from the origin is the prior near it."""
    from .graph import node_positions

    points, diagonal = node_positions(mesh) if positions is None else positions, mesh.size
    facets = None if mesh.is_point_cloud else facet_simplices(mesh.boundary, mesh.dim)
    measure = None if facets is None else enclosed_measure(mesh.centred_points, mesh.boundary) / diagonal ** mesh.dim
    columns = []
    for target in spec.targets:
        prior = spec.prior[target]
        source = np.ravel(raw[prior["source"]]) * diagonal ** 2 if prior.get("source") else np.zeros(mesh.n_points)
        boundary = np.ravel(raw[prior["boundary"]]) if prior.get("boundary") else np.zeros(mesh.n_points)
        try:
            columns.append(voxel_poisson(points, mesh.boundary_mask, source, boundary, facets=facets, measure=measure,
                                         distance=mesh.distance_to_boundary / diagonal, voxels=prior["voxels"]))
        except ValueError as err:
            raise MeshError(f"{mesh.source or 'mesh'}: the model's coarse prior cannot be solved: {err}") from None
    return np.stack(columns, axis=1)

