"""Training: a :class:`Trainer` handed its parts (model, loaders, optimizer, scheduler, step
function), the step functions, and the folder-of-files runner :func:`train` / :class:`Run` behind
``meshop train``.

>>> from meshop.training import train
>>> result = train("data/poisson2d-small", model="gno", epochs=50, out="runs/p2d")
>>> result.metrics["test_rel_l2"]

Importing the package imports no torch (``meshop train`` checks its options before loading it):
each name below is imported from its module on first access.
"""

from ..lazy import lazy_getattr

#: public name -> module that defines it
_LAZY = {"load_config": "config", "merge_options": "config", "Run": "runner", "TrainResult": "runner",
         "evaluate": "runner", "train": "runner", "noisy_one_step": "steps", "supervised_step": "steps",
         "unrolled_step": "steps", "EpochSampler": "trainer", "Trainer": "trainer"}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["EpochSampler", "Run", "Trainer", "TrainResult", "evaluate", "load_config", "merge_options",
           "noisy_one_step", "supervised_step", "train", "unrolled_step"]
