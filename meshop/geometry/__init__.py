"""Pure geometry on numpy/scipy: boundaries, neighbour graphs, hierarchies, K-D trees.

Importable without torch.
"""

from .boundary import BoundaryFacets, boundary_facets, distance_to_facets, point_cloud_boundary
from .kdtree import GridSample, Subdomain, decompose, from_grid, to_grid

__all__ = ["BoundaryFacets", "boundary_facets", "distance_to_facets", "point_cloud_boundary",
           "GridSample", "Subdomain", "decompose", "from_grid", "to_grid"]
