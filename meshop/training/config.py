"""Run configuration files: the options of :func:`~meshop.training.train` in YAML.

.. code-block:: yaml

    data: data/poisson2d-small        # relative paths are relative to the working directory
    model: gno
    epochs: 100
    batch_size: 8
    lr: 1.0e-3
    schedule: cosine
    graph: {kind: knn, k: 16}
    model_options: {width: 64, layers: 4}
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MeshError

if TYPE_CHECKING:
    from ..graph import GraphSettings


def option_names() -> list[str]:
    """Keys a config file may hold: the named options of :class:`~meshop.training.Run`,
    plus ``model_options`` (the model's hyper-parameters)."""
    from .runner import Run

    parameters = inspect.signature(Run.__init__).parameters
    return [n for n, p in parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD] + ["model_options"]


def load_config(path) -> dict:
    """Keyword arguments for :func:`~meshop.training.train` read from a YAML file.

    ``graph`` becomes a :class:`~meshop.graph.GraphSettings`; the entries of ``model_options``
    become model hyper-parameters. Raises :class:`MeshError` naming the file and the bad key.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such config file.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MeshError(f"{path}: not a valid YAML file ({first}).") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise MeshError(f"{path}: a run config must be a YAML mapping of option: value.")
    allowed = option_names()
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise MeshError(f"{path}: unknown option '{unknown[0]}' (options: {', '.join(allowed)}).")
    options = dict(raw)
    model_options = options.pop("model_options", None) or {}
    if not isinstance(model_options, dict):
        raise MeshError(f"{path}: 'model_options' must be a mapping like {{width: 64}}.")
    if "graph" in options:
        options["graph"] = graph_settings(options["graph"], path)
    return {**options, **model_options}


def graph_settings(value, where) -> GraphSettings:
    """A :class:`GraphSettings` from a mapping; :class:`MeshError` on unknown keys."""
    if not isinstance(value, dict):
        raise MeshError(f"{where}: 'graph' must be a mapping like {{kind: knn, k: 16}}.")
    from ..graph import GraphSettings

    try:
        return GraphSettings(**value)
    except (TypeError, ValueError) as err:
        raise MeshError(f"{where}: bad graph settings ({err}).") from None


def merge_options(config=None, model_options: list[str] | None = None, **flags) -> dict:
    """Options for :func:`~meshop.training.train` from a config file and command-line flags.

    Flags that are None were not given and leave the config's value; ``inputs`` and ``targets``
    may be comma-separated strings; ``model_options`` are ``KEY=VALUE`` strings (VALUE read as
    YAML, so ``width=64`` is an integer). Flags override ``model_options``, which override the file.
    """
    import yaml

    options = load_config(config) if config is not None else {}
    for pair in model_options or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MeshError(f"--model-option {pair!r}: expected KEY=VALUE, e.g. width=64.")
        options[key.strip()] = yaml.safe_load(value)
    for name in ("inputs", "targets"):
        if isinstance(flags.get(name), str):
            flags[name] = [n.strip() for n in flags[name].split(",") if n.strip()]
    options.update({k: v for k, v in flags.items() if v is not None})
    if options.get("data") is None:
        raise MeshError("no dataset given: pass --data DIR or set 'data:' in the --config file.")
    return options
