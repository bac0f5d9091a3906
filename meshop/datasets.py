"""``meshop.datasets``: the name the command line's ``meshop generate`` documents for its Python API.

Everything here lives in :mod:`meshop.data`; this module only re-exports it.

>>> from meshop.datasets import generate
>>> generate("poisson2d", n=100, out="data/poisson2d", seed=0, workers=2)
"""

from .data import PROBLEMS, generate, get_problem


def __getattr__(name: str):
    if name == "MeshDataset":
        from .data import MeshDataset

        return MeshDataset
    raise AttributeError(f"module 'meshop.datasets' has no attribute {name!r}")


__all__ = ["MeshDataset", "PROBLEMS", "generate", "get_problem"]
