"""Optional compiled kernel sum for inference (``compiled_kernel.c``), off by default.

Turned on by ``MESHOP_COMPILED_KERNELS=1`` or :func:`use_compiled`. It is built at first use with
the system C compiler (``cc``, OpenMP) into ``$XDG_CACHE_HOME/meshop`` (default ``~/.cache``) and
loaded with ctypes; nothing is downloaded. In training it computes the forward pass of
:class:`~meshop.nn.kernel_sum.KernelSum`, whose backward pass stays in PyTorch. Its sums equal
the pure-PyTorch path to float32 rounding (the GELU's erf is PyTorch's own approximation), not
bit for bit, so the default stays the pure-PyTorch path whose outputs the bundled models were
checked against.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import MeshError

_SOURCE = Path(__file__).with_name("compiled_kernel.c")
_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp", "-shared", "-fPIC"]
#: hidden and state widths the C kernel holds on its stack
MAX_WIDTH = 256
_enabled = os.environ.get("MESHOP_COMPILED_KERNELS", "") == "1"
_library: ctypes.CDLL | None = None


def use_compiled(on: bool = True) -> None:
    """Sum kernel messages in the compiled kernel (``on``) or in PyTorch, for inference."""
    global _enabled
    _enabled = on


def applies(value: torch.Tensor, hidden: int) -> bool:
    """Whether the compiled kernel sums this layer: turned on, float32 on the CPU, no autograd
    (inference, or the forward pass of :class:`~meshop.nn.kernel_sum.KernelSum`), a state width
    that is a multiple of 8 (one AVX register)."""
    return (_enabled and not torch.is_grad_enabled() and value.dtype == torch.float32
            and value.device.type == "cpu" and max(hidden, value.shape[1]) <= MAX_WIDTH
            and value.shape[1] % 8 == 0)


def library() -> ctypes.CDLL:
    """The built kernel, compiled on first use (a few seconds) and cached on disk."""
    global _library
    if _library is None:
        _library = ctypes.CDLL(str(_build()))
        _library.kernel_sum_f32.restype = None
    return _library


def _cpu_identity() -> str:
    """The CPU's model and instruction-set flags: the library is built with ``-march=native``, so
    a cache shared between machines must not hand one CPU's build to another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(wanted)) or platform.machine()


def _build() -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise MeshError("MESHOP_COMPILED_KERNELS=1 needs a C compiler (cc) to build meshop's kernel; "
                        "install gcc or unset it to use the PyTorch path.")
    key = hashlib.sha256(_SOURCE.read_bytes() + " ".join([compiler, *_FLAGS, _cpu_identity()]).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meshop"
    target = folder / f"kernel-{key}.so"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            done = subprocess.run([compiler, *_FLAGS, str(_SOURCE), "-o", str(tmp), "-lm"],
                                  capture_output=True, text=True)
            if done.returncode:
                raise MeshError(f"building meshop's compiled kernel failed ({compiler}): "
                                f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}")
    return target


def kernel_sum(edges, value: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``(n_targets, width)`` sums over each target's in-edges of :math:`\kappa(h_{ij}) \odot
    V_j`, :math:`\kappa = W h + b` (``weight (width, hidden)``, ``bias (width,)``), as
    :func:`meshop.nn.kernel_sum.kernel_sum` computes them, for target-sorted
    :class:`~meshop.nn.Edges` whose embedding is a :class:`~meshop.nn.edge_features.BoundEmbedding`."""
    embedding = edges.embedding
    source, target = edges.index[0].contiguous(), edges.index[1]
    offsets = torch.zeros(edges.n_targets + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(target, minlength=edges.n_targets), 0, out=offsets[1:])
    tensors = [t.detach().float().contiguous() for t in (
        embedding.source_pos, embedding.target_pos, embedding.source_term, embedding.target_term,
        embedding.weight.t(), embedding.bias, weight.t(), bias, value)]
    out = value.new_empty(edges.n_targets, value.shape[1])
    hidden, dim = embedding.source_term.shape[1], embedding.source_pos.shape[1]
    pointer = ctypes.c_void_p
    library().kernel_sum_f32(
        ctypes.c_int64(edges.n_targets), pointer(offsets.data_ptr()), pointer(source.data_ptr()),
        *(pointer(t.data_ptr()) for t in tensors[:2]), ctypes.c_int64(dim),
        ctypes.c_float(float(embedding.scale)),
        *(pointer(t.data_ptr()) for t in tensors[2:]), ctypes.c_int64(hidden), ctypes.c_int64(value.shape[1]),
        ctypes.c_int(torch.get_num_threads()), pointer(out.data_ptr()))
    return out
