"""Pure geometry on numpy/scipy: boundaries, neighbour graphs, hierarchies, K-D trees.

Importable without torch.
"""

from .boundary import BoundaryFacets, boundary_facets, distance_to_facets, point_cloud_boundary

__all__ = ["BoundaryFacets", "boundary_facets", "distance_to_facets", "point_cloud_boundary"]
