"""Training a mesh mover (``meshop train DATA --model dmm``): no targets, the physics-residual
step :func:`meshop.models.dmm.monge_ampere_step` on the fields of any dataset.

Samples: every mesh of a steady dataset with its first target field (``--targets`` chooses), or
every ``window_every``-th frame of each trajectory of a time-dependent one with its first state
field. Each becomes a :class:`~meshop.models.dmm.MoverSample`; a batch is a list of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MeshError
from ..fields import FieldSpec
from .data import SPLITS


@dataclass
class MoverData:
    """What a mover run keeps of its dataset: the data card stored in checkpoints."""

    card: dict


class MoverBatch(list):
    """A list of :class:`~meshop.models.dmm.MoverSample` with what the Trainer asks of a batch."""

    @property
    def num_graphs(self) -> int:
        return len(self)

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise MeshError("the mesh mover trains on the CPU only (its samples hold numpy point location).")
        return self


def loader(samples: list, batch_size: int, sampler=None):
    """Batches of ``batch_size`` samples (:class:`MoverBatch`) in the sampler's order."""
    return torch.utils.data.DataLoader(samples, batch_size=batch_size, sampler=sampler, collate_fn=MoverBatch)


def is_mover(model_name: str) -> bool:
    from .. import models

    return models.model_class(model_name).mesh_mover


def setup(run):
    """Set ``run.data``, ``run.fields``, ``run.model`` and ``run.graphs`` (mover samples per split);
    return the Monge–Ampère step and its validation (mean loss, no gradients)."""
    from ..models.dmm import FEATURES, monge_ampere_step, prepare
    from .windows import is_trajectory_dataset, load_trajectory_data

    if run.inputs is not None:
        raise MeshError(f"inputs {', '.join(run.inputs) or '(none)'} cannot be used: the mesh mover '{run.model_name}' "
                        "reads no input field, only the field it adapts to (--targets chooses it); drop --inputs.")
    if is_trajectory_dataset(run.data_path):
        data = load_trajectory_data(run.data_path, run.seed, run.max_train)
        name = data.fields.targets[0]
        if run.targets is not None:               # --targets chooses the state field to adapt to
            if len(run.targets) != 1 or run.targets[0] not in data.fields.targets:
                raise MeshError(f"{run.data_path}: targets {', '.join(run.targets) or '(none)'} cannot be used: the "
                                f"mesh mover adapts to one state field of the trajectories "
                                f"({', '.join(data.fields.targets)}); give one of them or drop --targets.")
            name = run.targets[0]
        fields = {s: [(t.mesh, t.fields[name][k]) for t in data.trajectories[s]
                      for k in range(0, t.n_frames, run.window_every)] for s in SPLITS}
    else:
        from .data import load_training_data

        data = load_training_data(run.data_path, run.inputs, run.targets, run.seed, run.max_train)
        name = data.fields.targets[0]
        fields = {s: [(m, m.point_data[name]) for m in data.meshes[s]] for s in SPLITS}
    run.model = run._build_model(FEATURES, 1, 2)
    run.val_metric = "ma_loss"
    run.data, run.fields = MoverData(data.card), FieldSpec(inputs=[name], targets=["displacement"])
    run.graphs = {s: [prepare(*_triangles(mesh, run.data_path), np.asarray(values, dtype=np.float64),
                              beta=run.model.beta) for mesh, values in fields[s]] for s in SPLITS}

    @torch.no_grad()
    def validate(model, samples):
        model.eval()
        return float(np.mean([monge_ampere_step(model, sample)[0].item() for sample in samples]))

    return monge_ampere_step, validate


def _triangles(mesh, root) -> tuple[np.ndarray, np.ndarray]:
    if mesh.dim != 2 or set(mesh.cells) != {"triangle"}:
        raise MeshError(f"{root}: the mesh mover trains on 2D triangle meshes; {mesh.source or 'a sample'} "
                        f"has dimension {mesh.dim} and cells {sorted(mesh.cells)}.")
    return mesh.points[:, :2], mesh.cells["triangle"]
