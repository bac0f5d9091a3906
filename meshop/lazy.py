"""Packages that import their public names on first use (``import meshop`` stays light: torch loads
only when a torch-based name is first touched)."""

from __future__ import annotations

import sys
from importlib import import_module


def lazy_getattr(package: str, modules: dict[str, str]):
    """The module ``__getattr__`` (PEP 562) of ``package``: name -> its module (relative to
    ``package``) in ``modules``, imported on first access and then kept in the package."""
    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{modules[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value
    return __getattr__
