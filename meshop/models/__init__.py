"""Model registry: a name -> the class, its default hyper-parameters and what it needs.

>>> from meshop import models
>>> models.available()
['gno', ...]
>>> model = models.get("gno", in_channels=10, out_channels=1, dim=3, width=32)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import NeuralOperator

#: name -> the class, or "module:Class" of a bundled one, imported (with torch) on first use, so
#: listing the names (``meshop train --help``) stays fast
_REGISTRY: dict[str, type[NeuralOperator] | str] = {}


def register(name: str, cls: type[NeuralOperator] | str) -> None:
    """Make ``cls`` (or ``"module:Class"`` inside meshop.models) available as ``name`` to
    :func:`get`, the CLI and checkpoints."""
    _REGISTRY[name] = cls


def available() -> list[str]:
    return sorted(_REGISTRY)


def defaults(name: str) -> dict:
    """Default hyper-parameters of model ``name``."""
    from . import hyper

    return {k: p.default for k, p in hyper.hyper_parameters(_cls(name)).items()}


def get(name: str, in_channels: int, out_channels: int, dim: int, *, features: dict | None = None,
        **overrides) -> NeuralOperator:
    """Instantiate model ``name`` with its defaults updated by ``overrides``.

    ``features``: the named layout of ``Data.x`` (:func:`meshop.graph.feature_layout`) that models
    reading features by name (``reads_features``: BENO, AMG) are built for; default the
    geometry blocks and unnamed inputs (:func:`meshop.graph.positional_layout`).

    Raises ``ValueError`` for unknown or bad hyper-parameters, a layout that does not fit, a
    feature the model reads that the layout lacks, and for models too large to build
    (:func:`meshop.models.hyper.check`), before anything is allocated.
    """
    from . import hyper

    cls = _cls(name)
    unknown = set(overrides) - set(defaults(name))
    if unknown:
        raise ValueError(f"model '{name}' has no hyper-parameter(s) {sorted(unknown)}; "
                         f"it takes {sorted(defaults(name))}.")
    built = dict(overrides)
    if getattr(cls, "reads_features", False):
        from ..graph import check_layout, positional_layout

        built["features"] = check_layout(features, in_channels, dim) if features is not None \
            else positional_layout(in_channels, dim)
    hyper.check(cls, in_channels, out_channels, dim, built)
    return cls(in_channels, out_channels, dim, **built)


def model_class(name: str) -> type[NeuralOperator]:
    """The class registered as ``name`` (its capability flags: ``time_dependent``, ``queryable``)."""
    return _cls(name)


def _cls(name: str) -> type[NeuralOperator]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}'; available: {', '.join(available())}.")
    if isinstance(_REGISTRY[name], str):
        module, cls = _REGISTRY[name].split(":")
        _REGISTRY[name] = getattr(import_module(f".{module}", __name__), cls)
    return _REGISTRY[name]


def __getattr__(name: str):
    if name == "NeuralOperator":
        from .base import NeuralOperator

        return NeuralOperator
    raise AttributeError(f"module 'meshop.models' has no attribute {name!r}")


register("gno", "gno:GNO")
register("mgno", "mgno:MGNO")
register("beno", "beno:BENO")
register("amg", "amg:AMG")
register("stepper", "stepper:TimeStepper")
register("dmm", "dmm:DMM")
register("mppde", "mppde:MPPDE")
register("mmpde", "mmpde:MMPDE")
register("gns", "gns:GNS")
register("giorom", "giorom:GIOROM")

__all__ = ["NeuralOperator", "available", "defaults", "get", "model_class", "register"]
