"""meshop: geometry-aware neural operators on meshes and point clouds.

>>> import meshop
>>> part = meshop.read("examples/parts/bracket.vtu")
>>> result = meshop.predict(part, write=False)          # the bundled default model
>>> meshop.generate("heat3d", n=200, out="data/heat3d")   # solved samples (gmsh + scikit-fem)
>>> run = meshop.train("data/heat3d", model="gno", epochs=50, out="runs/heat")

``import meshop`` stays light: every public name loads on first use (the torch-based ones,
``predict``, ``Predictor``, ``train``, ``Trainer``, are the slow ones), so ``meshop --help``
answers at once.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .errors import MeshError
from .lazy import lazy_getattr

try:
    __version__ = _version("meshop")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

#: public name -> module that defines it, imported on first access
_LAZY = {
    "read": "io", "write": "io", "read_series": "io", "write_series": "io", "Mesh": "mesh",
    "Trajectory": "trajectory", "generate": "data.generate",
    "predict": "prediction", "Predictor": "prediction", "Prediction": "prediction",
    "adapt": "adaptation", "Adaptation": "adaptation",
    "train": "training", "Trainer": "training", "TrainResult": "training", "Run": "training",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["Adaptation", "Mesh", "MeshError", "Trajectory", "adapt", "read", "read_series", "write", "write_series",
           "generate", "predict", "Predictor", "Prediction", "train", "Trainer", "Run", "TrainResult", "__version__"]
