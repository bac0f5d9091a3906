"""The checks of :class:`~meshop.training.Run`'s arguments at the boundary: one sentence naming
the option and the value for anything a run cannot use."""

from __future__ import annotations

import math
import os

import numpy as np

from .. import models
from ..errors import MeshError, as_path

SCHEDULES = ("onecycle", "cosine")


def check_options(model, epochs, batch_size, lr, weight_decay, schedule, grad_clip, device, save_every) -> None:
    """The model name, the schedule, the loop's counts and rates, the device."""
    if model not in models.available():
        raise MeshError(f"unknown model '{model}'; available: {', '.join(models.available())}.")
    if schedule not in SCHEDULES:
        raise MeshError(f"unknown schedule '{schedule}'; expected one of {', '.join(SCHEDULES)}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("save_every", save_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MeshError(f"{name} must be a positive integer, got {value!r}.")
    for name, value, zero_ok in (("lr", lr, False), ("grad_clip", grad_clip, False),
                                 ("weight_decay", weight_decay, True)):
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not number or value < 0 or (value == 0 and not zero_ok):
            raise MeshError(f"{name} must be a {'non-negative' if zero_ok else 'positive'} number, got {value!r}.")
    if device == "cpu":                 # nothing to ask torch (check_given runs before it is imported)
        return
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise MeshError(f"unknown device '{device}'; use cpu or cuda.") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise MeshError("device 'cuda' asked for, but no CUDA GPU is available; use --device cpu.")


def check_arguments(data, out, init, seed, max_train, unroll, window_every, noise, flags: dict) -> None:
    """The paths, the seed, ``max_train``, the time-dependent options and the true/false ``flags``."""
    for name, value in (("unroll", unroll), ("window_every", window_every)):
        if name == "unroll" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MeshError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < math.inf:
        raise MeshError(f"noise must be a non-negative number, got {noise!r}.")
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise MeshError(f"{name} must be true or false, got {value!r}.")
    if not isinstance(data, (str, os.PathLike)):
        raise MeshError(f"data must be the path of a dataset folder, got {data!r}.")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise MeshError(f"out must be the path of the run folder, got {out!r}.")
    for value in (data, out):                    # a name too long for the file system
        if value is not None:
            as_path(value)
    if init is not None and not isinstance(init, (str, os.PathLike)):
        raise MeshError(f"init must be the path of a checkpoint, got {init!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
        raise MeshError(f"seed must be a non-negative integer, got {seed!r}.")
    if max_train is not None and (isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer))
                                  or max_train < 1):
        raise MeshError(f"max_train must be a positive integer, got {max_train!r}.")


#: a valid value of each option :func:`check_options` and :func:`check_arguments` judge, standing
#: in for one not given
_VALID = {"model": "gno", "epochs": 1, "batch_size": 1, "lr": 1e-3, "weight_decay": 0.0, "schedule": "onecycle",
          "grad_clip": 1.0, "save_every": 1, "data": ".", "out": None, "init": None, "seed": 0, "max_train": None,
          "unroll": None, "window_every": 1, "noise": 0.0}


def check_given(options: dict) -> None:
    """:func:`check_options` and :func:`check_arguments` of the ``options`` given (the keyword
    arguments of :func:`~meshop.training.train`, e.g. from :func:`~meshop.training.merge_options`),
    without torch: ``meshop train`` refuses a bad flag before loading it. The device is
    :func:`meshop.preflight.check_device`'s; the run checks everything again."""
    values = {**_VALID, **{k: v for k, v in options.items() if k in _VALID and v is not None}}
    check_options(*(values[k] for k in ("model", "epochs", "batch_size", "lr", "weight_decay", "schedule",
                                        "grad_clip")), "cpu", values["save_every"])
    flags = {k: options[k] for k in ("prior", "resume", "progress") if options.get(k) is not None}
    check_arguments(*(values[k] for k in ("data", "out", "init", "seed", "max_train", "unroll", "window_every",
                                          "noise")), flags)
