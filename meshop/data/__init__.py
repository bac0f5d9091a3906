"""Datasets: folders of mesh files with a manifest, and generators of solved PDE samples.

``MeshDataset`` is imported lazily, so that ``import meshop.data.shapes`` (in generator worker
processes, say) does not pull in torch. ``generate`` is imported eagerly: it shares its name with
its module, and the function must win.
"""

from __future__ import annotations

from .generate import generate
from .problems import PROBLEMS, get_problem

__all__ = ["MeshDataset", "generate", "PROBLEMS", "get_problem"]


def __getattr__(name: str):
    if name == "MeshDataset":
        from .dataset import MeshDataset

        return MeshDataset
    raise AttributeError(f"module 'meshop.data' has no attribute '{name}'")
