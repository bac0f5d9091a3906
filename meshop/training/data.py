"""The training data of a run: meshes per split, the field coding, and the data card.

A dataset folder's manifest names the inputs, targets, length powers, Dirichlet couplings,
input defaults and linear inputs (see :class:`~meshop.data.MeshDataset`); the field coding is
built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..fields import FieldSpec
from ..mesh import Mesh

SPLITS = ("train", "val", "test")
#: fractions of validation and test samples when a folder's manifest has no split
DEFAULT_HOLDOUT = (0.1, 0.1)

@dataclass
class TrainingData:
    """Meshes of each split, the field coding fitted on the training split, and the data card.

    Attributes:
        meshes: split name -> list of :class:`~meshop.Mesh` (``"test"`` may be empty).
        fields: the :class:`~meshop.fields.FieldSpec` with statistics of the training split.
        card: JSON-ready facts stored in checkpoints: dataset path, problem, sizes, split.
    """

    meshes: dict[str, list[Mesh]]
    fields: FieldSpec
    card: dict

    @property
    def dim(self) -> int:
        return self.meshes["train"][0].dim


def load_training_data(root, inputs: list[str] | None = None, targets: list[str] | None = None,
                       seed: int = 0, max_train: int | None = None) -> TrainingData:
    """Read the dataset folder ``root`` and fit the field statistics on its training split.

    Args:
        root: folder with ``dataset.json`` (see :class:`~meshop.data.MeshDataset`).
        inputs, targets: field names overriding the manifest's.
        seed: orders the random split of a folder whose manifest has none.
        max_train: use only the first ``max_train`` training samples.

    Raises:
        MeshError: missing folder or manifest, missing fields, an empty training or validation split.
    """
    from ..data import MeshDataset

    root = Path(root)
    full = MeshDataset(root, inputs=inputs, targets=targets, need_target=True)   # checks the field roles
    named_split = full.manifest.get("split") or _random_split([p.name for p in full.files], seed)
    index = {path.name: i for i, path in enumerate(full.files)}
    unknown = [n for names in named_split.values() for n in names if n not in index]
    if unknown:
        raise MeshError(f"{root / 'dataset.json'}: split names '{unknown[0]}', which is not one of the samples.")
    meshes = {s: [full.mesh(index[n]) for n in named_split.get(s, [])] for s in SPLITS}
    if max_train is not None:
        if max_train < 1:
            raise MeshError(f"max_train must be at least 1, got {max_train}.")
        meshes["train"] = meshes["train"][:max_train]
    for split in ("train", "val"):
        if not meshes[split]:
            raise MeshError(f"{root}: the {split} split is empty; training needs at least one "
                            f"training and one validation sample: generate more samples (meshop generate "
                            f"... --n 3 or more) or give the {split} split a share (--split 0.8,0.1,0.1).")
    problem = full.manifest.get("problem")
    fields = field_spec(full)
    fields.fit(meshes["train"])
    card = {
        "dataset": str(root),
        "problem": problem,
        "sizes": {s: len(meshes[s]) for s in SPLITS},
        "split": {s: [m.source.name for m in meshes[s]] for s in SPLITS},
        "n_points": {"min": min(m.n_points for m in meshes["train"]),
                     "max": max(m.n_points for m in meshes["train"])},
    }
    return TrainingData(meshes, fields, card)


def field_spec(dataset) -> FieldSpec:
    """The (unfitted) field coding of a :class:`~meshop.data.MeshDataset` from its manifest.

    Length powers, Dirichlet couplings and defaults that name fields not in the dataset's inputs
    and targets are dropped (a user may train on a subset of a dataset's fields).
    """
    inputs, targets = dataset.inputs, dataset.targets
    names = set(inputs) | set(targets)
    dirichlet = {t: v for t, v in dataset.dirichlet.items()
                 if t in targets and (not isinstance(v, str) or v in inputs)}
    linear = dataset.linear_inputs
    return FieldSpec(
        inputs=list(inputs), targets=list(targets),
        input_defaults={n: float(v) for n, v in dataset.input_defaults.items() if n in inputs},
        length_powers={n: int(p) for n, p in dataset.length_powers.items() if n in names and p},
        dirichlet=dirichlet,
        # the amplitude argument holds only when every linear input is fed to the model
        linear_inputs=list(linear) if linear and set(linear) <= set(inputs) else [],
    )


def _random_split(names: list[str], seed: int) -> dict[str, list[str]]:
    """Seeded train/val/test split of ``names`` (:data:`DEFAULT_HOLDOUT`; at least one val)."""
    n = len(names)
    n_val = max(1, round(n * DEFAULT_HOLDOUT[0])) if n >= 2 else 0
    n_test = round(n * DEFAULT_HOLDOUT[1]) if n - n_val >= 2 else 0
    order = np.random.default_rng(seed).permutation(n)
    picked = [names[i] for i in order]
    return {"val": sorted(picked[:n_val]), "test": sorted(picked[n_val:n_val + n_test]),
            "train": sorted(picked[n_val + n_test:])}
