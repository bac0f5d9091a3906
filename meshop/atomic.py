"""Atomic file writes: write beside the target, then rename, so no half-written file is ever left.

The temporary is named ``.<name>.meshop-tmp-<pid>-<random><suffix>``: hidden, recognisable, and
carrying the id of the process writing it. A process killed mid-write (SIGKILL, power loss)
leaves its temporary behind; the first write of a later process into the same folder removes
every such temporary whose process is gone.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_TAG = ".meshop-tmp-"
_TEMPORARY = re.compile(r"^\..+" + re.escape(_TAG) + r"(\d+)-")
#: folders already swept of stale temporaries by this process
_swept: set[Path] = set()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder with the same suffix; when the block succeeds
    it is renamed onto ``path`` with the permissions a plain ``open(path, "w")`` would give; when
    it fails it is removed and ``path`` is left as it was.

    >>> with atomic_path("out/result.vtu") as tmp:
    ...     meshio.write(tmp, mesh)
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TAG}{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(path))  # mkstemp makes files 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries of :func:`atomic_path` in ``folder`` whose writing process no
    longer runs (once per folder and process); return them."""
    key = Path(os.path.abspath(folder))
    if key in _swept:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(key))
    except OSError:
        return []
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and not process_running(int(match[1])) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # removed by someone else meanwhile, or not ours to remove
    return removed


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists (a pid reused by another process counts as running;
    outside POSIX, where signal 0 does not probe, every process does)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else what the umask gives a new file."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
