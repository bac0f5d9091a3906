"""A bound on the memory a reader may take, so a corrupt count or index cannot make it allocate
gigabytes (meshio's gmsh reader sizes a lookup table by the largest node tag it reads: a
flipped byte turns a 31 KB file into a 6 GB, 15 s allocation before the refusal).

Linux only (``RLIMIT_AS``, the process's address space), and a no-op elsewhere. The limit is
process-wide while it holds: it is raised back as soon as the reader returns.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

#: address space a reader may add, per byte of its file, and at least
BYTES_PER_FILE_BYTE = 200
MIN_BYTES = 512 << 20


def reader_budget(file_size: int) -> int:
    """Bytes of address space a reader of a ``file_size``-byte uncompressed file may add."""
    return max(MIN_BYTES, BYTES_PER_FILE_BYTE * file_size)


@contextmanager
def bounded_memory(extra_bytes: int) -> Iterator[None]:
    """Inside the block, allocations that would grow the address space by more than
    ``extra_bytes`` fail with ``MemoryError``."""
    try:
        import resource

        with open("/proc/self/statm") as handle:
            in_use = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        yield
        return
    limit = in_use + extra_bytes
    if (soft != resource.RLIM_INFINITY and soft <= limit) or (hard != resource.RLIM_INFINITY and hard < limit):
        yield                                            # already bounded more tightly
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
