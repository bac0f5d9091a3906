"""Datasets: folders of mesh files with a manifest, and generators of solved PDE samples.

``MeshDataset`` and ``generate`` are imported lazily, so that ``import meshop.data.shapes`` (in
generator worker processes, say) does not pull in torch.
"""

from __future__ import annotations

__all__ = ["MeshDataset", "generate", "PROBLEMS", "get_problem"]


def __getattr__(name: str):
    if name == "MeshDataset":
        from .dataset import MeshDataset

        return MeshDataset
    if name == "generate":
        from .generate import generate

        return generate
    if name in ("PROBLEMS", "get_problem"):
        from . import problems

        return getattr(problems, name)
    raise AttributeError(f"module 'meshop.data' has no attribute '{name}'")
