"""Training: :func:`train` and the :class:`Trainer` loop, run configs, and what a run writes.

>>> from meshop.training import train
>>> result = train("data/poisson2d-small", model="gno", epochs=50, out="runs/p2d")
>>> result.metrics["test_rel_l2"]
"""

from .config import load_config, merge_options
from .trainer import Trainer, TrainResult, evaluate, train

__all__ = ["Trainer", "TrainResult", "evaluate", "load_config", "merge_options", "train"]
