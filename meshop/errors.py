"""The one exception type users see for bad input."""


class MeshError(ValueError):
    """A mesh, point cloud, field or checkpoint that meshop cannot use.

    The message is one sentence naming the file (when there is one) and the defect.
    """


#: bytes in one file or folder name, and in a whole path, that Linux, macOS and Windows file systems take
NAME_MAX, PATH_MAX = 255, 4095


def as_path(value, what: str = "path"):
    """``value`` as a :class:`~pathlib.Path`, or a TypeError naming the argument (not pathlib's);
    a :class:`MeshError` for a name no file system holds (every look-up of it would fail)."""
    import os
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file path (str or os.PathLike), got {type(value).__name__} {value!r:.60}.")
    path = Path(value)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > NAME_MAX or len(os.fsencode(path)) > PATH_MAX:
        limit = f"a name of {longest} bytes" if longest > NAME_MAX else f"{len(os.fsencode(path))} bytes in all"
        shown = str(path) if len(str(path)) <= 60 else f"{str(path)[:57]}..."
        raise MeshError(f"{shown}: the path is too long ({limit}; file systems take at most "
                        f"{NAME_MAX} bytes per name and {PATH_MAX} in all); choose a shorter name.")
    return path


def write_failure(path, what: str, err: BaseException) -> MeshError:
    """The one sentence for a writer's failure: ``{path}: could not write {what} (reason)``, the
    reason the first line of ``err`` (an unwritable folder, a full disk, a writer's error)."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return MeshError(f"{path}: could not write {what} ({reason}).")


def file_in_the_way(folder):
    """The file (or anything not a folder) at ``folder`` or at the nearest of its parents that
    exists, which keeps ``folder`` from being or becoming a folder; None when there is none."""
    from pathlib import Path

    folder = Path(folder)
    for place in (folder, *folder.parents):
        if place.exists():                    # False below a file (ENOTDIR), so the walk goes up to it
            return None if place.is_dir() else place
    return None


def check_parent(path) -> None:
    """Refuse to write ``path`` unless its folder exists, in one sentence: ``{path}: X is a file,
    not a folder.`` when a file stands where a folder of the path should be, else ``{path}:
    folder X does not exist.`` (the writers make no folders)."""
    from pathlib import Path

    folder = Path(path).parent
    if folder.is_dir():
        return
    blocking = file_in_the_way(folder)
    if blocking is not None:
        raise MeshError(f"{path}: {blocking} is a file, not a folder.")
    raise MeshError(f"{path}: folder {folder} does not exist.")
