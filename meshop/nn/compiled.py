"""Compiled kernel sum and its backward pass (``compiled_kernel.c``, which includes
``compiled_backward.c``), the radius graph's edge sort and exact farthest-point sampling
(``compiled_graphs.c``) and the DMM's heat-kernel potential (``compiled_potential.c``), used
where it builds.

``MESHOP_COMPILED_KERNELS`` chooses: ``auto`` (the default) uses it when the system C compiler
(``cc``, OpenMP) builds it and falls back to the pure-PyTorch path when there is no compiler
(silently) or the build fails (with one warning); ``1`` requires it (no compiler is an error);
``0`` turns it off. :func:`use_compiled` does the same from Python. It is built at first use
(about 3 s, once per machine) into ``$XDG_CACHE_HOME/meshop`` (default ``~/.cache``) and loaded
with ctypes; nothing is downloaded. It sums kernel messages in inference and computes both
passes of :class:`~meshop.nn.kernel_sum.KernelSum` in training. Its sums and gradients equal the
pure-PyTorch path to float32 rounding (the GELU takes erf as a rational function, within 2.1e-7,
its slope's Gaussian density as a power of 2 and a polynomial), not bit for bit: the bundled
models' outputs stay within 1e-6 of those they were recorded with on either path (tests).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
import weakref
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import MeshError
from .edge_features import BoundEmbedding

_SOURCE = Path(__file__).with_name("compiled_kernel.c")
#: the files the build reads (the first includes the others): all enter the cache key
_SOURCES = (_SOURCE, *(_SOURCE.with_name(f"compiled_{name}.c") for name in ("backward", "graphs", "potential")))
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=fast", "-fopenmp", "-shared", "-fPIC"]
#: hidden and state widths the C kernel holds on its stack
MAX_WIDTH = 256
#: memory the backward pass's threads may take for their private sums of source-row gradients
PRIVATE_BYTES = 1 << 28
#: ``MESHOP_COMPILED_KERNELS`` values and the modes they select
_MODES = {"": "auto", "auto": "auto", "1": "on", "0": "off"}
#: "auto", "on" or "off" once chosen; None: read from the environment at first use
_mode: str | None = None
_library: ctypes.CDLL | None = None
#: why the kernel could not be built in "auto" mode (then the PyTorch path runs)
_unavailable: str | None = None
_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_transposed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_divisors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GRADS = ("value", "source_term", "source_pos", "target_term", "target_pos", "kernel_w", "kernel_bias",
          "relative_t", "relative_bias")
#: the gradients whose every row the backward pass writes (the others it adds into: zeros first)
_WRITTEN = ("value", "source_term", "source_pos")


def use_compiled(on: bool | None = True) -> None:
    """Sum kernel messages (and their gradients) in the compiled kernel (``True``: required), in
    PyTorch (``False``), or in the compiled kernel where it builds (``None``, the default mode)."""
    global _mode, _unavailable
    _mode, _unavailable = {True: "on", False: "off", None: "auto"}[on], None


def mode() -> str:
    """``"auto"``, ``"on"`` or ``"off"``: :func:`use_compiled`'s choice, else ``MESHOP_COMPILED_KERNELS``'s."""
    global _mode
    if _mode is None:
        value = os.environ.get("MESHOP_COMPILED_KERNELS", "").strip().lower()
        if value not in _MODES:
            raise MeshError(f"MESHOP_COMPILED_KERNELS must be auto, 1 or 0, not {value!r}.")
        _mode = _MODES[value]
    return _mode


def available() -> bool:
    """Whether the compiled kernel runs: built (now, on first call) unless turned off. In "auto"
    mode a machine without a C compiler falls back to PyTorch silently, a failed build with one
    warning; in "on" mode both are a :class:`~meshop.errors.MeshError`."""
    global _unavailable
    if mode() == "off" or _unavailable is not None:
        return False
    if _library is None:
        try:
            library()
        except MeshError as error:
            if mode() == "on":
                raise
            _unavailable = str(error)
            if _compiler() is not None:
                warnings.warn(f"{error} meshop uses its PyTorch path instead (MESHOP_COMPILED_KERNELS=0 "
                              "silences this).", RuntimeWarning, stacklevel=2)
            return False
    return True


def applies(edges, value: torch.Tensor, hidden: int) -> bool:
    """Whether the compiled kernel sums this layer: :func:`available`, float32 on the CPU, no autograd
    (inference, or either pass of :class:`~meshop.nn.kernel_sum.KernelSum`), target-sorted
    edges with a float32 :class:`~meshop.nn.edge_features.BoundEmbedding` in at most 3
    dimensions, a state width that is a multiple of 8 (one AVX register)."""
    return (not torch.is_grad_enabled() and value.dtype == torch.float32
            and value.device.type == "cpu" and max(hidden, value.shape[1]) <= MAX_WIDTH
            and value.shape[1] % 8 == 0 and edges.sorted and isinstance(edges.embedding, BoundEmbedding)
            and edges.embedding.source_pos.shape[1] <= 3
            and all(t.dtype == torch.float32 for t in edges.embedding.tensors) and available())


def trains(edges, state: torch.Tensor, hidden: int) -> bool:
    """Whether both passes of a training layer on these :attr:`Edges.fused <meshop.nn.Edges.fused>`
    edges and ``state (N, width)`` run in C: :func:`applies` as it will inside them (no autograd)."""
    with torch.no_grad():
        return edges.fused and applies(edges, state, hidden)


def library() -> ctypes.CDLL:
    """The built kernel, compiled on first use (a few seconds) and cached on disk."""
    global _library
    if _library is None:
        _library = ctypes.CDLL(str(_build()))
        for function in (_library.kernel_sum_f32, _library.kernel_sum_backward_f32, _library.morton_keys,
                         _library.transpose_edges, _library.pair_edges,
                         _library.farthest_point_blocks, _library.heat_potential_f64):
            function.restype = None
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


def _compiler() -> str | None:
    """The C compiler's path (``$CC``, default ``cc``), or None."""
    return shutil.which(os.environ.get("CC", "cc"))


def _build() -> Path:
    compiler = _compiler()
    if compiler is None:
        raise MeshError("meshop's compiled kernel needs a C compiler (cc) to build; install gcc, or set "
                        "MESHOP_COMPILED_KERNELS=0 to use the PyTorch path.")
    sources = b"".join(f.read_bytes() for f in _SOURCES)
    key = hashlib.sha256(sources + " ".join([compiler, *_FLAGS, _cpu_identity()]).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meshop"
    target = folder / f"kernel-{key}.so"
    if not target.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MeshError(f"meshop's compiled kernel is cached in {folder}, which cannot be created "
                            f"({err.strerror or err}); set XDG_CACHE_HOME to a writable folder, or "
                            "MESHOP_COMPILED_KERNELS=0 to use the PyTorch path.") from None
        with atomic_path(target) as tmp:
            done = subprocess.run([compiler, *_FLAGS, str(_SOURCE), "-o", str(tmp), "-lm"],
                                  capture_output=True, text=True)
            if done.returncode:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
                raise MeshError(f"building meshop's compiled kernel failed ({compiler}: {reason}).")
    return target


class _Layer(ctypes.Structure):
    """``Layer`` of ``compiled_kernel.c``: the graph and one layer's tensors."""
    _fields_ = [("n_targets", ctypes.c_int64), ("dim", ctypes.c_int64), ("hidden", ctypes.c_int64),
                ("width", ctypes.c_int64), ("threads", ctypes.c_int32), ("scale", ctypes.c_float),
                *((name, ctypes.c_void_p) for name in (
                    "order", "offsets", "sources", "source_pos", "target_pos", "source_term", "target_term",
                    "relative_t", "relative_bias", "kernel_t", "kernel_w", "kernel_bias", "value")),
                ("n_sources", ctypes.c_int64),
                *((name, ctypes.c_void_p) for name in ("source_order", "source_offsets", "targets")),
                ("mean", ctypes.c_int32), ("accumulate", ctypes.c_int32)]


class _Grads(ctypes.Structure):
    """``Grads`` of ``compiled_kernel.c``: where the backward pass adds each gradient."""
    _fields_ = [("n_sources", ctypes.c_int64), *((name, ctypes.c_void_p) for name in _GRADS)]


def kernel_sum(edges, value: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               mean: bool = False, into: torch.Tensor | None = None) -> torch.Tensor:
    r"""``(n_targets, width)`` sums over each target's in-edges of :math:`\kappa(h_{ij}) \odot
    V_j`, :math:`\kappa = W h + b` (``weight (width, hidden)``, ``bias (width,)``), as
    :func:`meshop.nn.kernel_sum.kernel_sum` computes them, for target-sorted
    :class:`~meshop.nn.Edges` whose embedding is a :class:`~meshop.nn.edge_features.BoundEmbedding`;
    ``mean``: divided by :attr:`Edges.mean_divisor` (each target's in-degree, at least 1), in C;
    ``into``: a contiguous ``(n_targets, width)`` float32 tensor they are added into (and returned)."""
    layer, kept = _layer(edges, value, weight, bias, torch.get_num_threads(), mean)
    out = value.new_empty(edges.n_targets, value.shape[1]) if into is None else into
    if into is not None:
        if into.shape != (edges.n_targets, value.shape[1]) or into.dtype != torch.float32 or not into.is_contiguous():
            raise ValueError(f"kernel_sum adds into a contiguous float32 ({edges.n_targets}, {value.shape[1]}) "
                             f"tensor, not a {into.dtype} {tuple(into.shape)} one.")
        layer.accumulate = 1
    library().kernel_sum_f32(ctypes.byref(layer), ctypes.c_void_p(out.data_ptr()))
    del kept
    return out


def kernel_sum_backward(edges, grad: torch.Tensor, value: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor, value_grad: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Gradients of :func:`kernel_sum` from ``grad (n_targets, width)``, in the order of
    ``value, weight, bias`` and :attr:`BoundEmbedding.tensors` (as
    :class:`~meshop.nn.kernel_sum.KernelSum` takes them). ``value_grad``: a contiguous float32
    tensor shaped as ``value`` that the value's gradient is written into, ``value`` itself
    included (each row is read before its gradient is written). With several threads each keeps
    private sums of the target rows' gradients (the pass visits sources: see
    ``compiled_kernel.c``), as many threads as fit :data:`PRIVATE_BYTES`."""
    embedding = edges.embedding
    n_sources, dim = embedding.source_pos.shape
    hidden, padded, width = weight.shape[1], _padded(weight.shape[1]), value.shape[1]
    copy = 4 * edges.n_targets * (padded + dim)
    layer, kept = _layer(edges, value, weight, bias, min(torch.get_num_threads(), 1 + PRIVATE_BYTES // copy))
    source_order, source_offsets, targets = _out_edges(edges)
    layer.n_sources = n_sources
    layer.source_order, layer.source_offsets, layer.targets = (
        source_order.data_ptr(), source_offsets.data_ptr(), targets.data_ptr())
    shapes = {"value": (n_sources, width), "source_term": (n_sources, padded), "source_pos": (n_sources, dim),
              "target_term": (edges.n_targets, padded), "target_pos": (edges.n_targets, dim),
              "kernel_w": (width, padded), "kernel_bias": (width,), "relative_t": (dim + 1, padded),
              "relative_bias": (padded,)}
    grads = {name: value.new_empty(shapes[name]) if name in _WRITTEN else value.new_zeros(shapes[name])
             for name in _GRADS if name != "value" or value_grad is None}
    if value_grad is not None:
        if value_grad.shape != value.shape or value_grad.dtype != torch.float32 or not value_grad.is_contiguous():
            raise ValueError(f"kernel_sum_backward writes the value gradient into a contiguous float32 "
                             f"{tuple(value.shape)} tensor, not a {value_grad.dtype} {tuple(value_grad.shape)} one.")
        grads = {"value": value_grad, **grads}
    sums = _Grads(n_sources, *(g.data_ptr() for g in grads.values()))
    library().kernel_sum_backward_f32(ctypes.byref(layer), ctypes.c_void_p(grad.contiguous().data_ptr()),
                                      ctypes.byref(sums))
    del kept
    return (grads["value"], grads["kernel_w"][:, :hidden], grads["kernel_bias"], grads["source_pos"],
            grads["target_pos"], grads["source_term"][:, :hidden], grads["target_term"][:, :hidden],
            grads["relative_t"][:, :hidden].t(), grads["relative_bias"][:hidden])


def pair_edges(pairs, n: int, loops: bool):
    """``(2, E)`` int64 numpy edge index of the ``(P, 2)`` int64 ``pairs`` of an undirected graph
    on ``n`` nodes in both directions (and every node's self loop with ``loops``), sorted by
    target then source: what :func:`meshop.geometry.neighbors.sort_edges` gives, in C."""
    import numpy as np

    pairs = np.ascontiguousarray(pairs, dtype=np.int64)
    # torch's allocator: numpy advises huge pages for large arrays, whose first touch was 4-6x slower
    # than 4 kB pages on the development machine (docs/geometry.md); the edges are torch's to free
    out = torch.empty((2, 2 * len(pairs) + (n if loops else 0)), dtype=torch.int64).numpy()
    library().pair_edges(ctypes.c_int64(n), ctypes.c_int64(len(pairs)), ctypes.c_void_p(pairs.ctypes.data),
                         ctypes.c_int32(bool(loops)), ctypes.c_void_p(out.ctypes.data))
    return out


def farthest_point_blocks(points, ids, coords, slot, n_samples: int, start: int):
    """``(n_samples,)`` int64: the exact farthest-point order of
    :func:`meshop.geometry.hierarchy.farthest_point_sampling` from its blocks (``ids (nb, B)``,
    ``coords (nb, d, B)``, ``slot (N,)``), in C, the same picks."""
    import numpy as np

    points, ids, coords, slot = (np.ascontiguousarray(a) for a in (points, ids, coords, slot))
    out = np.empty(n_samples, dtype=np.int64)
    out[0] = start
    pointer = ctypes.c_void_p
    library().farthest_point_blocks(
        ctypes.c_int64(len(points)), ctypes.c_int64(points.shape[1]), ctypes.c_int64(ids.shape[0]),
        ctypes.c_int64(ids.shape[1]), pointer(coords.ctypes.data), pointer(ids.ctypes.data),
        pointer(slot.ctypes.data), pointer(points.ctypes.data), ctypes.c_int64(n_samples), pointer(out.ctypes.data))
    return out


def heat_potential(pos, widths, strength: torch.Tensor, spacing: float, cutoff: float, reach: int,
                   hessian: bool) -> torch.Tensor:
    """``(N, 6)`` float64 φ, ∇φ and (with ``hessian``) H's xx, xy, yy at the nodes ``pos (N, 2)``
    (float64 numpy) from ``strength (N, S)`` (float64), as
    :func:`meshop.nn.heat_potential.heat_potential` sums them, in C."""
    import numpy as np

    pos = np.ascontiguousarray(pos, dtype=np.float64)
    widths = np.ascontiguousarray(widths, dtype=np.float64)
    strength = strength.detach().to(torch.float64).contiguous()
    if strength.shape != (len(pos), len(widths)) or pos.shape[1:] != (2,) or not 0 < 2 * reach + 2 <= 64:
        raise ValueError(f"heat_potential takes (N, 2) positions and (N, {len(widths)}) strengths with at most "
                         f"64 grid nodes per window, not {pos.shape}, {tuple(strength.shape)}, reach {reach}.")
    out = torch.empty((len(pos), 6), dtype=torch.float64)
    pointer = ctypes.c_void_p
    library().heat_potential_f64(
        ctypes.c_int64(len(pos)), pointer(pos.ctypes.data), ctypes.c_int64(len(widths)), pointer(widths.ctypes.data),
        pointer(strength.data_ptr()), ctypes.c_double(spacing), ctypes.c_double(cutoff), ctypes.c_int64(reach),
        ctypes.c_int32(bool(hessian)), pointer(out.data_ptr()))
    return out


def mean_divisor(edges) -> torch.Tensor | int:
    """:attr:`Edges.mean_divisor <meshop.nn.Edges.mean_divisor>`, the same numbers, from the CSR
    rows of the compiled passes' plan (no second count of the edges)."""
    if edges.fixed_degree:
        return edges.fixed_degree
    divisor = _divisors.get(edges)
    if divisor is None:
        offsets = _plan(edges)[1]
        divisor = _divisors[edges] = (offsets[1:] - offsets[:-1]).clamp_(min=1).unsqueeze(1).to(
            torch.get_default_dtype())
    return divisor


def _padded(hidden: int) -> int:
    """The hidden width rounded up to a multiple of 8 (one AVX register): the C kernel's rows."""
    return -(-hidden // 8) * 8


def _layer(edges, value, weight, bias, threads: int, mean: bool = False) -> tuple[_Layer, list[torch.Tensor]]:
    """The C ``Layer`` of these edges and weights, and the tensors it points into (keep them alive
    until the call returns). The hidden width is padded with zeros to a multiple of 8: padded
    embeddings are GELU(0) = 0 and meet zero kernel weights."""
    embedding = edges.embedding
    hidden = weight.shape[1]

    def rows(t: torch.Tensor) -> torch.Tensor:
        missing = _padded(hidden) - hidden
        return (torch.nn.functional.pad(t.detach(), (0, missing)) if missing else t.detach()).contiguous()

    source, offsets, order = _plan(edges)
    kernel_w = rows(weight)
    kept = [order, offsets, source, embedding.source_pos.detach().contiguous(),
            embedding.target_pos.detach().contiguous(), rows(embedding.source_term),
            rows(embedding.target_term), rows(embedding.weight.t()), rows(embedding.bias),
            kernel_w.t().contiguous(), kernel_w, bias.detach().contiguous(),
            value.detach().contiguous()]
    layer = _Layer(edges.n_targets, embedding.source_pos.shape[1], _padded(hidden), value.shape[1],
                   threads, float(embedding.scale), *(t.data_ptr() for t in kept))
    layer.mean = mean
    return layer, kept


def _morton_order(pos: torch.Tensor) -> torch.Tensor:
    """``(n,)`` the rows of ``pos (n, d)`` in Morton (Z-curve) order."""
    pos = pos.detach().contiguous()
    keys = torch.empty(len(pos), dtype=torch.int64)
    library().morton_keys(ctypes.c_int64(len(pos)), ctypes.c_int64(pos.shape[1]),
                          ctypes.c_void_p(pos.data_ptr()), ctypes.c_void_p(keys.data_ptr()))
    return torch.argsort(keys)


def _out_edges(edges) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(order (n_sources,), offsets (n_sources + 1,), targets (E,) int32)``: the edges as CSR rows of
    their sources, which the backward pass visits (in a Morton order of their positions). Computed
    once per edge set, at its first backward pass, and kept while it lives."""
    source, offsets, target_order = _plan(edges)
    plan = _transposed.get(edges)
    if plan is None:
        embedding = edges.embedding
        n_sources = len(embedding.source_pos)
        if max(edges.n_targets, len(source)) >= 2**31:
            raise MeshError(f"meshop's compiled backward pass numbers targets and edges in 32 bits: "
                            f"{edges.n_targets} targets, {len(source)} edges are too many; set "
                            "MESHOP_COMPILED_KERNELS=0 for this graph.")
        source_offsets = torch.empty(n_sources + 1, dtype=torch.int64)
        targets = torch.empty(len(source), dtype=torch.int32)                 # half a counting sort's writes
        library().transpose_edges(ctypes.c_int64(edges.n_targets), ctypes.c_int64(n_sources),
                                  ctypes.c_void_p(offsets.data_ptr()), ctypes.c_void_p(source.data_ptr()),
                                  ctypes.c_void_p(source_offsets.data_ptr()), ctypes.c_void_p(targets.data_ptr()))
        same_nodes = embedding.source_pos is embedding.target_pos          # one node set: one order
        order = target_order if same_nodes else _morton_order(embedding.source_pos)
        plan = _transposed[edges] = (order, source_offsets, targets)
    return plan


def _plan(edges) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sources (E,), offsets (n_targets + 1,), order (n_targets,))`` of target-sorted edges:
    CSR rows and the order the kernel visits targets in, a Morton (Z-curve) order of their
    positions, so that consecutive targets share sources whose rows are then still in cache
    (in node order they are random reads: 250-330 instead of 155-180 ns per edge on 100k random
    points, one thread).
    Computed once per edge set and kept while it lives, for every layer."""
    plan = _plans.get(edges)
    if plan is None:
        source, target = (edges.index[k].to(torch.int64).contiguous() for k in (0, 1))
        offsets = torch.empty(edges.n_targets + 1, dtype=torch.int64)
        library().csr_offsets(ctypes.c_int64(len(target)), ctypes.c_int64(edges.n_targets),
                              ctypes.c_void_p(target.data_ptr()), ctypes.c_void_p(offsets.data_ptr()))
        plan = _plans[edges] = (source, offsets, _morton_order(edges.embedding.target_pos))
    return plan
