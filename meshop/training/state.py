"""Optimizer and scheduler state in a form a safetensors checkpoint can hold without pickle.

``torch.optim.Optimizer.state_dict()`` is a nested dict of tensors and Python scalars; here its
tensors become a flat ``{"state/<param>/<key>": tensor}`` dict (stored next to the weights) and
everything else JSON (stored in the checkpoint's ``training`` metadata). JSON floats round-trip
exactly, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import torch

from ..checkpoint import CheckpointError


def optimizer_to_flat(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``optimizer.state_dict()`` -> (tensors, JSON-ready rest)."""
    tensors, scalars = {}, {}
    for param, entries in state_dict["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state/{param}/{key}"] = value
            else:
                scalars[f"{param}/{key}"] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
              for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`optimizer_to_flat`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    try:
        for name, value in tensors.items():
            _, param, key = name.split("/", 2)
            state.setdefault(int(param), {})[key] = value
        for name, value in meta["scalars"].items():
            param, key = name.split("/", 1)
            state.setdefault(int(param), {})[key] = value
        groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()}
                  for group in meta["param_groups"]]
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint's optimizer state is incomplete ({err!r}); "
                              f"resume is not possible.") from None
    return {"state": state, "param_groups": groups}
