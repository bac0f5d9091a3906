"""Checkpoints: one ``.safetensors`` file, weights as tensors, everything else as JSON metadata.

Loading reads tensors and a JSON string; nothing in the file is ever executed or unpickled.

Metadata (the ``"meshop"`` key of the safetensors header, a JSON object):

=================  ==============================================================
key                meaning
=================  ==============================================================
format             checkpoint format version (an integer, currently 1)
meshop_version     version of meshop that wrote the file
model              registry name, ``in_channels``, ``out_channels``, ``dim``, ``config``
fields             :class:`~meshop.fields.FieldSpec` (names, defaults, scaling, statistics)
graph              :class:`~meshop.graph.GraphSettings`
data               the training data card (dataset, problem, sizes, split)
metrics            final metrics (validation/test relative L2, epochs, seconds)
training           optional resume state: epoch, best metric, optimizer/scheduler scalars
features           optional: the named layout of ``Data.x`` (:func:`~meshop.graph.feature_layout`)
dynamics           optional, time-dependent models: state fields, varying inputs, frame dt,
                   solver dt and stride, history, unroll, noise, integrator, increment scale
sha256             checksum of the model weights (:func:`digest`), checked on load
=================  ==============================================================

Reading the metadata (:func:`read_metadata`) does not import torch, so the command line checks a
checkpoint before paying for that import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_path
from .errors import MeshError, as_path, write_failure
from .fields import FieldSpec

if TYPE_CHECKING:
    import torch

    from .graph import GraphSettings

FORMAT = 1
_OPTIMIZER_PREFIX = "optimizer/"


class CheckpointError(MeshError):
    """A checkpoint that is missing, corrupt, foreign or incompatible."""


@dataclass
class Checkpoint:
    """A trained model with what ``predict`` needs to use it."""

    model: torch.nn.Module
    model_name: str
    fields: FieldSpec
    graph: GraphSettings
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    meshop_version: str = ""
    path: Path | None = None
    dynamics: dict = field(default_factory=dict)

    @property
    def time_dependent(self) -> bool:
        return bool(getattr(self.model, "time_dependent", False))


def save(path, ckpt: Checkpoint, optimizer_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``ckpt`` atomically to ``path`` (``.safetensors``); a full disk or an unwritable
    folder is a :class:`MeshError` naming ``path`` and the reason."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from . import __version__
    from .graph import feature_layout

    path = Path(path)
    model = ckpt.model
    meta = {
        "format": FORMAT,
        "meshop_version": __version__,
        "model": {"name": ckpt.model_name, "in_channels": model.in_channels,
                  "out_channels": model.out_channels, "dim": model.dim, "config": model.config},
        "fields": ckpt.fields.to_dict(),
        "graph": ckpt.graph.to_dict(),
        "data": ckpt.data,
        "metrics": ckpt.metrics,
        "training": ckpt.training,
    }
    if all(name in ckpt.fields.mean for name in ckpt.fields.inputs):   # a model fed meshop's node features
        meta["features"] = feature_layout(ckpt.fields, model.dim)
    if ckpt.dynamics:
        meta["dynamics"] = ckpt.dynamics
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta["sha256"] = digest(tensors)
    for k, v in (optimizer_state or {}).items():
        tensors[_OPTIMIZER_PREFIX + k] = v.detach().cpu().contiguous()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"meshop": json.dumps(meta)})
    except (OSError, SafetensorError) as err:   # safetensors says a full disk as its own error
        raise write_failure(path, "this checkpoint", err) from None
    return path


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the model weights (names, dtypes, shapes and bytes, in name order).

    safetensors checks the header, not the data: this catches bytes flipped inside the weights.
    """
    import hashlib

    import torch

    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        sha.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return sha.hexdigest()


def read_metadata(path) -> dict:
    """The JSON metadata of a checkpoint, without loading weights."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("*.safetensors"))
        hint = f" such as {inside[0]}" if inside else ""
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file; give a .safetensors file{hint}.")
    if not path.is_file():
        from .io._sniff import special_file

        special = special_file(path)      # a named pipe or a device: never opened
        raise CheckpointError(f"{path}: is {special}, not a checkpoint file." if special
                              else f"{path}: no such checkpoint file.")
    try:
        with safe_open(str(path), framework="numpy") as handle:  # the header only: no torch
            header = handle.metadata() or {}
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({str(err).splitlines()[0][:120]}).") from None
    if "meshop" not in header:
        raise CheckpointError(f"{path}: a safetensors file, but not a meshop checkpoint (no meshop metadata).")
    try:
        meta = json.loads(header["meshop"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: the checkpoint metadata is corrupt (invalid JSON).") from None
    if not isinstance(meta, dict):
        kind = "null" if meta is None else "array" if isinstance(meta, list) else "scalar"
        raise CheckpointError(f"{path}: the checkpoint metadata is corrupt (a JSON {kind}, not an object).")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')} is not supported by this "
                              f"meshop (format {FORMAT}); re-train or use the meshop version "
                              f"{meta.get('meshop_version', '?')} that wrote it.")
    return meta


def load(path, device: str = "cpu", with_optimizer: bool = False, allow_unverified: bool = False):
    """Load a checkpoint into a :class:`Checkpoint` (and the optimizer tensors if asked).

    Every metadata value is checked before the model is built (types, ranges, a size bound:
    :func:`meshop.models.hyper.check`), the weights against the metadata's SHA-256 and for
    finiteness. A checkpoint without a checksum is refused unless ``allow_unverified=True``
    (re-save it with :func:`save` to add one).
    """
    import torch
    from safetensors.torch import load_file

    from .preflight import check_torch_device

    path = as_path(path)
    # a wrong name must not read as corrupt weights below
    check_torch_device(str(device) if isinstance(device, torch.device) else device)
    meta = read_metadata(path)
    if "sha256" not in meta and not allow_unverified:
        raise CheckpointError(f"{path}: the checkpoint has no sha256 checksum, so its weights cannot be "
                              "verified; load it with checkpoint.load(path, allow_unverified=True) only "
                              "if you trust where it came from.")
    model, spec, fields, graph = _build(path, meta)
    try:
        tensors = load_file(str(path), device=device)
    except Exception as err:
        raise CheckpointError(f"{path}: the checkpoint's weights are corrupt ({str(err).splitlines()[0][:120]}).") from None
    weights = {k: v for k, v in tensors.items() if not k.startswith(_OPTIMIZER_PREFIX)}
    misfit = _misfit(model.state_dict(), weights)
    if misfit:
        raise CheckpointError(f"{path}: weights do not fit model '{spec['name']}' ({misfit}); the checkpoint "
                              "was written for another version or configuration of that model.")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0][:160]
        raise CheckpointError(f"{path}: weights do not fit model '{spec['name']}' ({first}).") from None
    if "sha256" in meta and digest(weights) != meta["sha256"]:
        raise CheckpointError(f"{path}: the checkpoint's weights are corrupt (checksum mismatch).")
    _check_finite(path, weights)
    model.to(device).eval()
    ckpt = Checkpoint(model, spec["name"], fields, graph, meta.get("data", {}), meta.get("metrics", {}),
                      meta.get("training", {}), str(meta.get("meshop_version", "")), path,
                      meta.get("dynamics", {}))
    if with_optimizer:
        optimizer = {k[len(_OPTIMIZER_PREFIX):]: v for k, v in tensors.items() if k.startswith(_OPTIMIZER_PREFIX)}
        return ckpt, optimizer
    return ckpt


def _build(path: Path, meta: dict):
    """The model (no weights yet), its metadata entry, the field spec and the graph settings;
    :class:`CheckpointError` for any malformed value, before anything large is allocated."""
    from . import models
    from .graph import GraphSettings

    try:
        spec = meta["model"]
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            raise TypeError("'model' must be an object with a 'config' object")
        for key in ("data", "metrics", "training", "dynamics"):
            if not isinstance(meta.get(key, {}), dict):
                raise TypeError(f"'{key}' must be an object")
        fields = FieldSpec.from_dict(meta["fields"])
        graph = GraphSettings.from_dict(meta["graph"])
        features = _features(meta, fields, spec["dim"])
        config = _named_config(spec["name"], spec["config"], features or {}, spec["dim"])
        model = models.get(spec["name"], spec["in_channels"], spec["out_channels"], spec["dim"],
                           features=features, **config)
    except (KeyError, TypeError, ValueError) as err:
        reason = f"no {err} entry" if isinstance(err, KeyError) else str(err).rstrip(".")
        raise CheckpointError(f"{path}: incompatible checkpoint ({reason}).") from None
    if getattr(model, "time_dependent", False):
        _check_dynamics(path, spec["name"], meta.get("dynamics"), getattr(model, "particles", False))
    if all(t in fields.mean for t in fields.targets) and model.out_channels != fields.channels(fields.targets):
        raise CheckpointError(f"{path}: incompatible checkpoint (the model writes {model.out_channels} "
                              f"channels, its fields {fields.channels(fields.targets)}).")
    return model, spec, fields, graph


def _check_dynamics(path: Path, name: str, dynamics, particles: bool) -> None:
    """:class:`CheckpointError` when a time-dependent model's ``dynamics`` section is missing or
    does not say what a rollout reads of it (moving nodes, the frame step)."""
    import math

    if not dynamics:
        raise CheckpointError(f"{path}: incompatible checkpoint (model '{name}' steps in time but the metadata "
                              "has no 'dynamics' section: its state, frame step and motion); re-train it or "
                              "restore the file.")
    if particles and not dynamics.get("moving"):
        raise CheckpointError(f"{path}: incompatible checkpoint (particle model '{name}' but its 'dynamics' "
                              "section does not say the nodes move: 'moving' is missing or false).")
    frame_dt = dynamics.get("frame_dt")
    if frame_dt is not None and (isinstance(frame_dt, bool) or not isinstance(frame_dt, (int, float))
                                 or not math.isfinite(frame_dt) or frame_dt <= 0):
        raise CheckpointError(f"{path}: incompatible checkpoint (dynamics 'frame_dt' must be a positive number "
                              f"of seconds, got {frame_dt!r}).")


def _features(meta: dict, fields: FieldSpec, dim) -> dict | None:
    """The checkpoint's ``features`` section; a checkpoint written before it existed gets the
    layout its field spec codes (what it was trained on), or None when the spec cannot say."""
    from .graph import feature_layout

    if "features" in meta:
        return meta["features"]
    if all(name in fields.mean for name in fields.inputs) and dim in (2, 3):
        return feature_layout(fields, dim)
    return None


#: hyper-parameters of older checkpoints that named feature columns by position in the input block
_POSITIONAL = {"beno": {"source_columns": "source", "boundary_columns": "boundary"}}


def _named_config(model: str, config: dict, layout: dict, dim) -> dict:
    """``config`` with positional feature options of older checkpoints (BENO's
    ``source_columns=[0]``) replaced by the names of the features in those columns."""
    from .graph import geometry_feature_count

    renamed = _POSITIONAL.get(model, {})
    if not any(key in config for key in renamed):
        return config
    owner = {c: name for name, (start, stop) in layout.items() for c in range(start, stop)}
    config = dict(config)
    for old, new in renamed.items():
        if old in config:
            columns = [geometry_feature_count(dim) + p for p in config.pop(old)]
            if any(c not in owner for c in columns):
                raise ValueError(f"'{old}' {columns} lies outside the node features")
            config[new] = list(dict.fromkeys(owner[c] for c in columns))
    return config


def _misfit(expected: dict, weights: dict) -> str:
    """The first difference between the model's tensors and the file's, in words ("" if none)."""
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing:
        return f"tensor '{missing[0]}' is missing" + (f", and {len(missing) - 1} more" if len(missing) > 1 else "")
    if unexpected:
        return f"tensor '{unexpected[0]}' is not the model's" + (f", and {len(unexpected) - 1} more" if len(unexpected) > 1 else "")
    for name, tensor in expected.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            return (f"tensor '{name}' has shape {tuple(weights[name].shape)} in the file and "
                    f"{tuple(tensor.shape)} in the model")
    return ""


def _check_finite(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """:class:`CheckpointError` naming the first weight tensor with NaN or infinite values."""
    import torch

    for name in sorted(weights):
        tensor = weights[name]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: the checkpoint's weights hold NaN or infinite values (tensor "
                                  f"'{name}'); the run that wrote it diverged, re-train it.")
