"""Model registry: a name -> the class, its default hyper-parameters and what it needs.

>>> from meshop import models
>>> models.available()
['gno', ...]
>>> model = models.get("gno", in_channels=10, out_channels=1, dim=3, width=32)
"""

from __future__ import annotations

from . import hyper
from .amg import AMG
from .base import NeuralOperator
from .beno import BENO
from .gno import GNO
from .mgno import MGNO

_REGISTRY: dict[str, type[NeuralOperator]] = {}


def register(name: str, cls: type[NeuralOperator]) -> None:
    """Make ``cls`` available as ``name`` to :func:`get`, the CLI and checkpoints."""
    _REGISTRY[name] = cls


def available() -> list[str]:
    return sorted(_REGISTRY)


def defaults(name: str) -> dict:
    """Default hyper-parameters of model ``name``."""
    return {k: p.default for k, p in hyper.hyper_parameters(_cls(name)).items()}


def get(name: str, in_channels: int, out_channels: int, dim: int, **overrides) -> NeuralOperator:
    """Instantiate model ``name`` with its defaults updated by ``overrides``.

    Raises ``ValueError`` for unknown or bad hyper-parameters and for models too large to build
    (:func:`meshop.models.hyper.check`), before anything is allocated.
    """
    cls = _cls(name)
    unknown = set(overrides) - set(defaults(name))
    if unknown:
        raise ValueError(f"model '{name}' has no hyper-parameter(s) {sorted(unknown)}; "
                         f"it takes {sorted(defaults(name))}.")
    hyper.check(cls, in_channels, out_channels, dim, overrides)
    return cls(in_channels, out_channels, dim, **overrides)


def _cls(name: str) -> type[NeuralOperator]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}'; available: {', '.join(available())}.")
    return _REGISTRY[name]


register("gno", GNO)
register("mgno", MGNO)
register("beno", BENO)
register("amg", AMG)

__all__ = ["NeuralOperator", "available", "defaults", "get", "register"]
