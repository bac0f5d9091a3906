"""Training: a :class:`Trainer` handed its parts (model, loaders, optimizer, scheduler, step
function), the step functions, and the folder-of-files runner :func:`train` / :class:`Run` behind
``meshop train``.

>>> from meshop.training import train
>>> result = train("data/poisson2d-small", model="gno", epochs=50, out="runs/p2d")
>>> result.metrics["test_rel_l2"]
"""

from .config import load_config, merge_options
from .runner import Run, TrainResult, evaluate, train
from .steps import supervised_step, unrolled_step
from .trainer import EpochSampler, Trainer

__all__ = ["EpochSampler", "Run", "Trainer", "TrainResult", "evaluate", "load_config", "merge_options",
           "supervised_step", "train", "unrolled_step"]
