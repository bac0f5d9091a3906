"""meshop: geometry-aware neural operators on meshes and point clouds."""

from importlib.metadata import PackageNotFoundError, version as _version

from .errors import MeshError
from .io import read, write
from .mesh import Mesh

try:
    __version__ = _version("meshop")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["Mesh", "MeshError", "read", "write", "__version__"]
