"""The one exception type users see for bad input."""


class MeshError(ValueError):
    """A mesh, point cloud, field or checkpoint that meshop cannot use.

    The message is one sentence naming the file (when there is one) and the defect.
    """


def as_path(value, what: str = "path"):
    """``value`` as a :class:`~pathlib.Path`, or a TypeError naming the argument (not pathlib's)."""
    import os
    from pathlib import Path

    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise TypeError(f"{what} must be a file path (str or os.PathLike), got {type(value).__name__} {value!r:.60}.")


def write_failure(path, what: str, err: BaseException) -> MeshError:
    """The one sentence for a writer's failure: ``{path}: could not write {what} (reason)``, the
    reason the first line of ``err`` (an unwritable folder, a full disk, a writer's error)."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return MeshError(f"{path}: could not write {what} ({reason}).")
