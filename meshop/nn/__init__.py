"""Reusable neural-operator layers."""

from .edge_features import EdgeEmbedding
from .kernel_integral import KernelIntegral
from .mlp import MLP

__all__ = ["EdgeEmbedding", "KernelIntegral", "MLP"]
