"""Reusable neural-operator layers."""

from .boundary_encoder import BoundaryEncoder
from .edge_features import EdgeEmbedding
from .edges import Edges
from .interaction_network import InteractionNetwork
from .kernel_integral import KernelIntegral
from .kernel_interpolation import KernelInterpolation
from .kernel_transfer import KernelTransfer
from .mlp import MLP
from .physics_attention import PhysicsAttention
from .query_decoder import QueryDecoder, QueryStencil

__all__ = ["BoundaryEncoder", "EdgeEmbedding", "Edges", "InteractionNetwork", "KernelIntegral", "KernelInterpolation", "KernelTransfer", "MLP", "PhysicsAttention", "QueryDecoder", "QueryStencil"]
