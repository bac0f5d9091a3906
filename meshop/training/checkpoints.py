"""A run's checkpoints: writing them after an epoch, resuming from ``RUN/last.safetensors`` (bit
for bit) and starting a fine-tune from another run's weights. Functions of a set-up
:class:`~meshop.training.Run`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load, read_metadata, save
from ..errors import MeshError
from .state import optimizer_from_flat, optimizer_to_flat

#: options that must not change when a run is resumed
RESUME_OPTIONS = ("model", "model_config", "inputs", "targets", "graph", "epochs", "batch_size", "lr",
                  "weight_decay", "schedule", "seed", "max_train", "grad_clip", "unroll", "noise", "window_every", "prior",
                  "init")
#: the value of a resume option in runs saved before it existed
RESUME_DEFAULTS = {"prior": False, "init": None}


def save_run(run, path: Path, model, metrics: dict, with_state: bool) -> None:
    """Write ``model`` with the run's fields, graph, data card and options to ``path``; with
    ``with_state`` also the optimizer, schedule and history a resume needs."""
    if not run.writes:
        return
    epoch = run.history[-1]["epoch"]
    training = {"epoch": epoch if with_state else run.best_epoch, "options": run.options}
    tensors = None
    if with_state:
        tensors, optimizer_meta = optimizer_to_flat(run.optimizer.state_dict())
        training.update(best_val_rel_l2=run.best_val, best_epoch=run.best_epoch, history=run.history,
                        optimizer=optimizer_meta, scheduler=run.scheduler.state_dict())
    save(path, Checkpoint(model, run.model_name, run.fields, run.graph, run.data.card, metrics, training,
                          dynamics=run.dynamics), optimizer_state=tensors)


def restore_run(run) -> int:
    """Load model, optimizer, schedule and history from ``RUN/last.safetensors``; the epoch reached."""
    ckpt, optimizer_tensors = load(run.last_path, device=str(run.device), with_optimizer=True)
    training = ckpt.training
    if "optimizer" not in training:
        raise MeshError(f"{run.last_path}: holds no optimizer state; it cannot be resumed.")
    saved, current = training.get("options", {}), as_json(run.options)
    for key in RESUME_OPTIONS:
        if saved.get(key, RESUME_DEFAULTS.get(key)) != current[key]:
            raise MeshError(f"{run.last_path}: the run used {key}={saved.get(key)!r}, not "
                            f"{current[key]!r}; resume with the same options or start a new run.")
    if ckpt.fields.to_dict() != as_json(run.fields.to_dict()):
        raise MeshError(f"{run.last_path}: the dataset's field statistics changed since the run "
                        f"started; start a new run.")
    run.model.load_state_dict(ckpt.model.state_dict())
    run.optimizer.load_state_dict(optimizer_from_flat(optimizer_tensors, training["optimizer"]))
    run.scheduler.load_state_dict(training["scheduler"])
    run.history = [dict(row) for row in training["history"]]
    run.best_val, run.best_epoch = training["best_val_rel_l2"], training["best_epoch"]
    return int(training["epoch"])


def check_init(path: Path, model_name: str) -> None:
    """Refuse an ``init`` path that is no meshop checkpoint or holds another model (metadata only,
    before the run reads its data)."""
    spec = read_metadata(path).get("model")
    saved = spec.get("name") if isinstance(spec, dict) else None
    if saved is not None and saved != model_name:     # malformed metadata: load() names it
        raise MeshError(f"{path}: holds a '{saved}' model; this run trains '{model_name}'.")


def initialize(run) -> None:
    """Copy the learned parameters of the ``run.init`` checkpoint into the new ``run.model``
    (buffers such as statistics stay the run's own)."""
    ckpt = load(run.init, device=str(run.device))        # its model name: checked by check_init
    saved, current = as_json(ckpt.model.config), as_json(run.model.config)
    if saved != current:
        differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise MeshError(f"{run.init}: its model has {differ[0]}={saved.get(differ[0])!r} where this run's has "
                        f"{current.get(differ[0])!r}; fine-tuning needs the same hyper-parameters.")
    # a mesh mover reads whichever field it is given (scale-free, by its gradient): its name is no part of it
    for role in () if getattr(run.model, "mesh_mover", False) else ("inputs", "targets"):
        saved_names, names = list(getattr(ckpt.fields, role)), list(getattr(run.fields, role))
        if saved_names != names:
            raise MeshError(f"{run.init}: its model learned from {role} {', '.join(saved_names) or '(none)'}, this run's "
                            f"are {', '.join(names) or '(none)'}; fine-tuning needs the same fields in the same order.")
    weights = dict(ckpt.model.named_parameters())
    with torch.no_grad():
        for name, parameter in run.model.named_parameters():
            parameter.copy_(weights[name])


def as_json(value):
    """``value`` as it reads back from checkpoint metadata (tuples become lists)."""
    return json.loads(json.dumps(value))
