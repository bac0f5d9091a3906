"""Where meshop writes its results and when it may replace an existing file.

Names: a prediction of ``part.vtu`` is ``part.pred.vtu``; of any other file, the whole name plus
``.pred.vtu`` (``bracket.stl`` -> ``bracket.stl.pred.vtu``), so predictions of ``bracket.vtu``
and ``bracket.stl`` never overwrite each other. Its picture is the same name with ``.png``.

Policy: an existing file is replaced only when it is a meshop result, from an earlier run: named
``*.pred.*`` or ``*.compare.png``, or a PNG, GIF or HTML page that meshop marked as its own (a PNG
``Software`` text chunk, a GIF comment, the page's title). Any other existing file, the input mesh included, is
refused unless ``overwrite=True`` (``--overwrite``).
"""

from __future__ import annotations

from pathlib import Path

from .errors import MeshError, as_path, check_parent

PREDICTION_MARK = ".pred."
#: what meshop writes into its pictures (PNG "Software" chunk) and pages (title suffix)
MESHOP_MARK = "meshop"


def prediction_path(source: Path) -> Path:
    """Default output of predicting on the file ``source`` (see the module docstring)."""
    stem = source.name[: -len(".vtu")] if source.name.lower().endswith(".vtu") else source.name
    return source.with_name(f"{stem}.pred.vtu")


def series_path(source: Path) -> Path:
    """Default output of a rollout from the file ``source``: ``part.pred.pvd`` for ``part.vtu`` or
    ``part.pvd``, else the whole name plus ``.pred.pvd``."""
    name = source.name
    for suffix in (".vtu", ".pvd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return source.with_name(f"{name}.pred.pvd")


def picture_path(output: Path) -> Path:
    """The PNG written beside a prediction ``output`` by ``--render``."""
    return output.with_suffix(".png")


def is_meshop_result(path: Path) -> bool:
    """True for names meshop gives its own results (``*.pred.*``, ``*.compare.png``) and for
    pictures and pages meshop marked as its own."""
    path = Path(path)
    if PREDICTION_MARK in path.name or path.name.endswith(".compare.png"):
        return True
    suffix = path.suffix.lower()
    try:
        if suffix in (".png", ".gif"):     # a PNG's "Software" text, a GIF's comment
            from PIL import Image

            with Image.open(path) as image:
                return MESHOP_MARK in (image.info.get("Software"), image.info.get("comment", b"").decode("latin-1"))
        if suffix in (".html", ".htm"):
            with open(path, "rb") as handle:
                return f" | {MESHOP_MARK}</title>".encode() in handle.read(4096)
    except (OSError, ValueError):
        return False
    return False


def check_output(path: Path, overwrite: bool = False, *, source: Path | None = None) -> None:
    """Raise :class:`MeshError` when writing ``path`` would replace a file it should not.

    Refused without ``overwrite``: the input file ``source``, and any existing file whose name
    is not a meshop result's (:func:`is_meshop_result`). A folder is always refused.
    """
    path = as_path(path, "the output")
    if path.is_dir():
        raise MeshError(f"{path}: is a folder; give a file name for the output (-o FILE).")
    if overwrite or not path.exists():
        return
    if source is not None and _same_file(path, source):
        raise MeshError(f"{path}: is the input file; choose another output with -o, or pass --overwrite "
                        "(overwrite=True in Python) to replace it.")
    if not is_meshop_result(path):
        raise MeshError(f"{path}: exists, and meshop replaces without --overwrite only its own results "
                        "(*.pred.* files, its pictures and pages); choose another output with -o, or pass "
                        "--overwrite (overwrite=True in Python) to replace it.")


def prediction_output(source: Path | None, out=None, *, render: bool = False, overwrite: bool = False,
                      series: bool = False) -> Path:
    """Where the prediction of the mesh read from ``source`` goes (``out``, else
    :func:`prediction_path`, or :func:`series_path` for a rollout's ``series``), checked against
    the policy, with its picture (a rollout's: its animated GIF) when ``render``."""
    if out is None:
        if source is None:
            raise MeshError("give an output path (out=...): the mesh was not read from a file.")
        out = series_path(Path(source)) if series else prediction_path(source)
    out = Path(out)
    check_output(out, overwrite, source=source)
    if render:
        check_output(out.with_suffix(".gif") if series else picture_path(out), overwrite, source=source)
    if series:
        from .io.series import series_format

        series_format(out)
    else:
        from .io import writer_of

        writer_of(out)
    check_parent(out)
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False
