"""Training: a :class:`Trainer` handed its parts (model, loaders, optimizer, scheduler, step
function), the step functions, and the folder-of-files runner :func:`train` / :class:`Run` behind
``meshop train``.

>>> from meshop.training import train
>>> result = train("data/poisson2d-small", model="gno", epochs=50, out="runs/p2d")
>>> result.metrics["test_rel_l2"]

Importing the package imports no torch (``meshop train`` checks its options before loading it):
each name below is imported from its module on first access.
"""

from importlib import import_module

#: public name -> module that defines it
_LAZY = {"load_config": "config", "merge_options": "config", "Run": "runner", "TrainResult": "runner",
         "evaluate": "runner", "train": "runner", "noisy_one_step": "steps", "supervised_step": "steps",
         "unrolled_step": "steps", "EpochSampler": "trainer", "Trainer": "trainer"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meshop.training' has no attribute {name!r}")


__all__ = ["EpochSampler", "Run", "Trainer", "TrainResult", "evaluate", "load_config", "merge_options",
           "noisy_one_step", "supervised_step", "train", "unrolled_step"]
