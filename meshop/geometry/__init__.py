"""Pure geometry on numpy/scipy: boundaries, neighbour graphs, hierarchies, K-D trees, and the
validity and sliding boundaries of moved meshes (``moving``; the movers themselves live in
``monitor`` and ``monge_ampere``, imported on demand).

Importable without torch.
"""

from .boundary import BoundaryFacets, boundary_facets, distance_to_facets, point_cloud_boundary
from .hierarchy import Hierarchy, farthest_point_sampling, hierarchy, voxel_sampling
from .kdtree import GridSample, Subdomain, decompose, from_grid, to_grid
from .moving import BoundarySlider, MeshQuality, mesh_quality, safe_move
from .neighbors import NeighborCapWarning, knn_graph, mesh_edges, radius_graph, sort_edges

__all__ = [
    "BoundaryFacets", "boundary_facets", "distance_to_facets", "point_cloud_boundary",
    "Hierarchy", "farthest_point_sampling", "hierarchy", "voxel_sampling",
    "GridSample", "Subdomain", "decompose", "from_grid", "to_grid",
    "BoundarySlider", "MeshQuality", "mesh_quality", "safe_move",
    "NeighborCapWarning", "knn_graph", "mesh_edges", "radius_graph", "sort_edges",
]
