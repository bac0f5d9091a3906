"""Reuse freed memory during a prediction: glibc malloc settings for PyTorch on CPU.

A kernel layer on a 100k-node mesh allocates and frees tensors of tens of MB (one row per edge)
several times per layer. glibc serves blocks that large with fresh ``mmap`` pages and unmaps
them on ``free``, so every such tensor is paid again in page faults (measured on this project's
2-core CPU: a 389k x 48 gather takes 44 ms into fresh pages, 11 ms into reused ones; the bundled
model predicts a 100k-node part 1.6x faster). Inside :func:`reused_memory`, large blocks come
from the heap and freed memory stays there for the next layer, as the jemalloc / tcmalloc
preloads of PyTorch's CPU tuning guide arrange; on leaving, glibc's defaults come back and the
retained memory is returned to the system (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from contextlib import contextmanager

#: glibc ``mallopt`` parameters and their defaults (malloc.h, malloc.c)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


def _libc():
    """glibc's handle, or None where these settings do not apply (not Linux, no ``mallopt``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reused_memory(enabled: bool = True):
    """Within the block, serve large allocations from the heap and keep freed memory for reuse
    (glibc; elsewhere, or with ``enabled=False``, nothing changes). Yields whether it applies.
    The settings are process-wide while the block runs."""
    libc = _libc() if enabled else None
    applied = bool(libc and libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    try:
        yield applied
    finally:
        if libc is not None:
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)                          # give the retained memory back
