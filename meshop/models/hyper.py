"""Checks on model hyper-parameters before a model is built: types, ranges and size.

Hyper-parameters come from users (``--model-option width=-4``) and from checkpoint files (which
anyone may edit), so a model is never built from values that were not checked here first: each
value must have the type of its annotation in the model's ``__init__`` (an ``int`` where an ``int``
is expected, ``bool`` never passing for a number), numbers must be finite and positive (``>= 0``
where the default is 0), and the model must have at most :data:`MAX_PARAMETERS` weights,
counted on PyTorch's ``meta`` device, which allocates nothing.
"""

from __future__ import annotations

import typing

import torch

from ..values import is_finite_number, is_int

#: largest model meshop builds (weights); the bundled models have ~0.1 million
MAX_PARAMETERS = 100_000_000
#: largest channel count of a model's input or output
MAX_CHANNELS = 10_000
#: largest value of any integer hyper-parameter (width, layers, neighbours, tokens, ...)
MAX_INTEGER = 100_000


def check(cls: type, in_channels, out_channels, dim, config: dict) -> None:
    """Raise ``ValueError`` naming the first bad value, or a model of more than
    :data:`MAX_PARAMETERS` weights; build nothing."""
    name = cls.__name__
    for label, value, upper in (("in_channels", in_channels, MAX_CHANNELS),
                                ("out_channels", out_channels, MAX_CHANNELS)):
        if not is_int(value) or not 1 <= value <= upper:
            raise ValueError(f"model {name}: {label} must be an integer in 1..{upper}; got {value!r}.")
    if not is_int(dim) or dim not in (2, 3):
        raise ValueError(f"model {name}: dim must be 2 or 3; got {dim!r}.")
    hints = typing.get_type_hints(cls.__init__)
    defaults = {k: p.default for k, p in hyper_parameters(cls).items()}
    for key, value in config.items():
        if key != "features":
            _check_value(name, key, value, hints.get(key), defaults.get(key))
    count = parameter_count(cls, in_channels, out_channels, dim, config)
    if count > MAX_PARAMETERS:
        raise ValueError(f"model {name}: these hyper-parameters give {count:.3g} weights, more than "
                         f"meshop builds ({MAX_PARAMETERS:.0e}); choose a smaller width or fewer layers.")


def parameter_count(cls: type, in_channels: int, out_channels: int, dim: int, config: dict) -> int:
    """Number of weights of ``cls(in_channels, out_channels, dim, **config)``, counted on the
    ``meta`` device (shapes only, no memory)."""
    try:
        with torch.device("meta"):
            model = cls(in_channels, out_channels, dim, **config)
    except RuntimeError as err:  # e.g. a negative size no type check catches
        raise ValueError(f"model {cls.__name__} cannot be built with {config} "
                         f"({str(err).splitlines()[0][:120]}).") from None
    return sum(p.numel() for p in model.parameters())


def hyper_parameters(cls: type) -> dict:
    """``name -> inspect.Parameter`` of the hyper-parameters of model class ``cls``."""
    import inspect

    skip = {"self", "in_channels", "out_channels", "dim", "features"}  # the layout comes with the data
    return {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k not in skip}


def _check_value(model: str, key: str, value, hint, default) -> None:
    """One hyper-parameter against its annotation ``hint`` and default."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _union_type()) else (hint,)
    if value is None and type(None) in options:
        return
    kind = next((t for t in options if t is not type(None)), None)
    origin = typing.get_origin(kind) or kind
    where = f"model {model}: hyper-parameter {key}"
    if origin in (tuple, list) and str in typing.get_args(kind):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where} must be a list of names; got {value!r}.")
    elif origin in (tuple, list):
        if not isinstance(value, (list, tuple)) or not all(is_int(v) and 0 <= v <= MAX_INTEGER for v in value):
            raise ValueError(f"{where} must be a list of non-negative integers; got {value!r}.")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false; got {value!r}.")
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string; got {value!r}.")
    elif kind in (int, float):
        _check_number(where, value, kind, 0 if default == 0 else None)


def _check_number(where: str, value, kind: type, lowest) -> None:
    """Integers are 1..MAX_INTEGER (0.. when the default is 0); floats finite and > 0 (>= 0)."""
    if kind is int:
        low = 0 if lowest == 0 else 1
        if not is_int(value) or not low <= value <= MAX_INTEGER:
            raise ValueError(f"{where} must be an integer in {low}..{MAX_INTEGER}; got {value!r}.")
        return
    if not is_finite_number(value) or value < 0 or (value == 0 and lowest != 0):
        sign = "non-negative" if lowest == 0 else "positive"
        raise ValueError(f"{where} must be a finite {sign} number; got {value!r}.")


def _union_type():
    import types

    return getattr(types, "UnionType", typing.Union)
