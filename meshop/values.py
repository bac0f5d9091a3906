"""Checks on plain values read from files and options (JSON metadata, ``--model-option``), where
``True`` must not pass for 1 nor ``10**400`` for a float."""

from __future__ import annotations

import math


def is_int(value) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    """An ``int`` or ``float`` (not a ``bool``) with a finite float value."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False
