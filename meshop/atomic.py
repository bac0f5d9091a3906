"""Atomic file writes: write beside the target, then rename, so no half-written file is ever left."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder with the same suffix; when the block succeeds
    it is renamed onto ``path`` with the permissions a plain ``open(path, "w")`` would give; when
    it fails it is removed and ``path`` is left as it was.

    >>> with atomic_path("out/result.vtu") as tmp:
    ...     meshio.write(tmp, mesh)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(path))  # mkstemp makes files 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else what the umask gives a new file."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
