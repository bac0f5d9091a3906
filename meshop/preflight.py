"""Checks that answer before torch is imported (~8 s on a small machine): the device asked for,
the model's checkpoint file and its metadata.

Nothing here imports torch; :mod:`meshop.prediction` and the command line both call these first.
"""

from __future__ import annotations

import ctypes.util
import os
import re
from importlib import resources
from pathlib import Path

from .checkpoint import CheckpointError, read_metadata
from .errors import MeshError, as_path

#: name of the model used when none is given
DEFAULT_MODEL = "heat3d"
#: name of the model used by ``--steps`` on a mesh when none is given: the bundled transient-heat stepper
DEFAULT_TIME_MODEL = "heat3d-transient"
#: the bundled particle simulator (GIOROM on mpm2d), the default for 2D particles with --steps
DEFAULT_PARTICLE_MODEL = "mpm2d"


def default_time_model(source) -> str:
    """The bundled time-dependent model for ``source``, a Mesh or a Trajectory (its frame-0
    mesh): :data:`DEFAULT_TIME_MODEL` for a 3D mesh, :data:`DEFAULT_PARTICLE_MODEL` for 2D
    particles (no cells); for the others none is bundled, which is said (naming the file it was
    read from) with what to do."""
    where = f"{source.source}: " if source.source else ""
    mesh = getattr(source, "mesh", source)               # a Trajectory's nodes, or the Mesh itself
    if mesh.cells and mesh.dim == 3:
        return DEFAULT_TIME_MODEL
    if not mesh.cells and mesh.dim == 2:
        return DEFAULT_PARTICLE_MODEL
    if mesh.cells:
        raise MeshError(f"{where}a {mesh.dim}D mesh: the bundled time stepper ({DEFAULT_TIME_MODEL}) is for 3D parts; "
                        "train one for your series, e.g. `meshop train --model mppde --data DATA` on "
                        "`meshop generate burgers2d` data, and pass it with --model.")
    raise MeshError(f"{where}{mesh.dim}D particles (no cells): meshop bundles a particle simulator for 2D only "
                    f"(--model {DEFAULT_PARTICLE_MODEL}); train one on your data, e.g. `meshop generate mpm3d` "
                    "then `meshop train --model giorom --data DATA`, and pass it with --model.")

#: why a point cloud is refused (measured on the bracket's 4,118 nodes without their cells: the
#: boundary estimated from the points finds half the surface nodes and the default model is off by
#: 333 % against FEM; with the true boundary nodes given, 17 % against the mesh's 6.9 %)
POINT_CLOUD_REFUSAL = (
    "a point cloud (no cells); predict needs the part's surface to measure each node's distance to it "
    "and its outward normal. Give a volume mesh (.vtu, .msh, ...) or a closed triangle surface (.stl, "
    ".obj, .ply with faces) that meshop fills with tetrahedra; for a scan, reconstruct a closed surface "
    "first (e.g. Open3D's Poisson or ball-pivoting reconstruction).")


def point_cloud_refusal(mesh) -> str:
    """Why a steady prediction refuses the point cloud ``mesh``: :data:`POINT_CLOUD_REFUSAL`, or,
    for particles (a ``material`` field), that they are rolled out with ``--steps``."""
    if "material" in mesh.point_data:
        return ("particles (a point cloud with a 'material' field): a particle simulator rolls them out in "
                f"time; add --steps N (the bundled {DEFAULT_PARTICLE_MODEL} for 2D particles, or --model with "
                "your own).")
    return POINT_CLOUD_REFUSAL


def bundled_models() -> dict[str, Path]:
    """Models shipped inside the package: name -> checkpoint path."""
    folder = resources.files("meshop") / "assets" / "models"
    if not folder.is_dir():
        return {}
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".safetensors")}


def checkpoint_path(model: str | os.PathLike | None) -> Path:
    """The checkpoint file of a bundled model name or a path, its metadata checked (no weights
    loaded, no torch imported).

    Raises:
        CheckpointError: neither a bundled name nor an existing file; unreadable or foreign
            metadata.
    """
    name = DEFAULT_MODEL if model is None else str(model)
    bundled = bundled_models()
    path = bundled.get(name) or as_path(name, "--model")
    if name not in bundled and not path.exists():
        known = ", ".join(sorted(bundled)) or "none"
        what = "no such checkpoint file" if path.suffix == ".safetensors" else "neither a checkpoint file nor a bundled model"
        raise CheckpointError(f"{name}: {what} (bundled models: {known}; --model takes a name or a .safetensors path).")
    read_metadata(path)
    return path


def check_device(device: str) -> None:
    """Refuse a device string torch would not take, or CUDA on a machine with no NVIDIA driver.

    The driver test (``libcuda`` or ``/proc/driver/nvidia``) needs no torch; where a driver is
    present, :func:`check_torch_device` (the Predictor, checkpoint loading) asks torch.
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:0', got {device!r}.")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise MeshError(f"--device {device!r}: expected cpu, cuda or cuda:N.")
    if device.startswith("cuda") and not cuda_driver_present():
        raise MeshError(f"--device {device} was asked for, but this machine has no NVIDIA driver "
                        "(no CUDA device); use --device cpu.")


def check_torch_device(device: str) -> None:
    """:func:`check_device`, then ask torch: CUDA that does not work, or a ``cuda:N`` beyond the
    devices torch finds, is refused here rather than as a failure of whatever runs on it."""
    check_device(device)
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise MeshError(f"--device {device} was asked for, but torch finds no CUDA device "
                        f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu.")
    if (torch.device(device).index or 0) >= torch.cuda.device_count():
        raise MeshError(f"device {device}: torch finds {torch.cuda.device_count()} CUDA device(s) "
                        "(use cpu, or cuda:N with N below that).")


def cuda_driver_present() -> bool:
    """True when an NVIDIA driver is installed (the CUDA runtime may still fail)."""
    return os.path.exists("/proc/driver/nvidia/version") or ctypes.util.find_library("cuda") is not None


def model_label(model, name: str) -> str:
    """The model as the user named it, and its architecture ``name`` when that differs:
    ``'heat3d' (a 'mgno')`` for the bundled default, ``'gno'`` for a checkpoint file."""
    given = DEFAULT_MODEL if model is None else model
    if isinstance(given, str) and given in bundled_models() and given != name:
        return f"'{given}' (a '{name}')"
    return f"'{name}'"


def dimension_refusal(mesh, label: str, dim: int) -> str | None:
    """Why a model of spatial dimension ``dim`` cannot predict on ``mesh``, or None: one sentence,
    which names a flat mesh (a 2D mesh written with z = 0) given to a 3D model."""
    if mesh.dim == dim:
        return None
    flat = (f" (every point has z = {mesh.planar_z:g}: a flat {'/'.join(mesh.cells)} mesh; give a volume mesh of "
            "the part, or its closed surface)") if mesh.planar_z is not None and dim == 3 else ""
    return f"the mesh is {mesh.dim}D but model {label} was trained on {dim}D meshes{flat}."
