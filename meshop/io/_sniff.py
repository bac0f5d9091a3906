"""Cheap content checks before a reader runs: a file whose content is not its extension's
format, or that is visibly cut short, gets a precise message instead of a parser's."""

from __future__ import annotations

import re
import stat
import struct
from pathlib import Path

from ..errors import MeshError

_VTK_XML_TYPES = {".vtu": "UnstructuredGrid", ".vtp": "PolyData", ".vti": "ImageData",
                  ".vtr": "RectilinearGrid", ".vts": "StructuredGrid"}
_XML_VTK = tuple(_VTK_XML_TYPES)
_TEXT = (".obj", ".inp", ".xyz", ".txt", ".csv", ".su2", ".mesh", ".node", ".ele", ".wkt")
_HDF5 = (".med", ".h5m", ".hmf")

#: phrases in reader errors that mean the data stops early
_TRUNCATION_HINTS = ("truncat", "unexpected length", "end of file", "eof", "not fully written",
                     "read all data", "could not be read to its end", "reshape", "buffer size",
                     "not expected length", "error reading binary data", "no element found",
                     "unclosed token", "mismatch of datasize", "inhomogeneous",
                     "number of columns changed", "expected newline")


def special_file(path: Path) -> str | None:
    """What ``path`` is when it exists but is neither a regular file nor a directory (a named
    pipe, whose reading waits for a writer; a device such as /dev/zero, which never ends), else
    None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    kinds = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((kind for test, kind in kinds if test(mode)), None)


def content_kind(head: bytes) -> str:
    """A short human description of what the first bytes of a file hold."""
    stripped = head.lstrip()
    magic = [(b"\x89HDF\r\n\x1a\n", "HDF5 data"), (b"\x93NUMPY", "a NumPy array"),
             (b"glTF", "binary glTF"), (b"PK\x03\x04", "a ZIP archive"),
             (b"\x1f\x8b", "gzip-compressed data"), (b"# vtk DataFile", "legacy VTK"),
             (b"$MeshFormat", "a gmsh mesh"), (b"ply", "PLY"), (b"<", "XML"), (b"{", "JSON")]
    for prefix, kind in magic:
        if head.startswith(prefix) or (kind in ("XML", "JSON", "legacy VTK") and stripped.startswith(prefix)):
            return _xml_kind(head) if kind == "XML" else kind
    if stripped[:5].lower() == b"solid" and b"facet" in head:
        return "ASCII STL"
    return "text" if _is_text(head) else "binary data"


def _xml_kind(head: bytes) -> str:
    """"VTK XML <type> data", "XDMF XML" or "XML"."""
    match = re.search(rb'<VTKFile[^>]*?type="(\w+)"', head)
    if match:
        return f"VTK XML {match[1].decode()} data"
    return "XDMF XML" if b"<Xdmf" in head else "XML"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    control = sum(1 for byte in head if byte < 32 and byte not in b"\t\n\r\f")
    return control <= len(head) // 100


def check(path: Path, ext: str) -> None:
    """Raise :class:`MeshError` when ``path`` cannot hold ``ext`` data or is truncated."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4096)
        handle.seek(max(0, size - 1024))
        tail = handle.read()
    kind = content_kind(head)
    if ext == ".stl":
        return _check_stl(path, size, head, tail, kind)
    expected = _expected_kinds(ext, head)
    if expected is not None and kind not in expected:
        raise mismatch(path, ext, kind, head)
    if ext in _XML_VTK and b"</VTKFile>" not in tail:
        raise truncated(path, "the XML ends before </VTKFile>")
    if ext in (".xdmf", ".xmf") and b"</Xdmf>" not in tail:
        raise truncated(path, "the XML ends before </Xdmf>")
    if ext in (".xdmf", ".xmf"):
        check_xdmf_data(path)
    if kind == "a gmsh mesh" and not tail.rstrip().splitlines()[-1].startswith(b"$End"):
        raise truncated(path, "the last section has no $End line")
    if ext == ".glb" and size >= 12:
        declared = struct.unpack("<I", head[8:12])[0]
        if declared > size:
            raise truncated(path, f"the header declares {declared} bytes, the file has {size}")


def check_xdmf_data(path: Path) -> None:
    """Refuse an XDMF file whose heavy data (``DataItem`` of format HDF or Binary) lie outside its
    folder or in something other than a regular file: its reader would open any file the path
    names, and wait forever on a named pipe or read a device without end."""
    import xml.etree.ElementTree as ET

    try:
        items = [item for item in ET.parse(path).iter() if item.tag.rsplit("}", 1)[-1] == "DataItem"]
    except ET.ParseError as err:
        raise MeshError(f"{path}: not valid XDMF XML ({err}).") from None
    for item in items:
        if item.get("Format", "XML").upper() not in ("HDF", "BINARY"):
            continue
        text = (item.text or "").strip()
        name = text.split(":", 1)[0] if item.get("Format").upper() == "HDF" else text
        data = path.parent / name
        inside = name and not Path(name).is_absolute() and ".." not in Path(name).parts
        if not inside:
            raise MeshError(f"{path}: its data file {name or '(none)'} lies outside the XDMF file's folder; an XDMF "
                            "file names its HDF5 or binary data by paths inside its own folder.")
        if not data.is_file():
            kind = "a directory" if data.is_dir() else special_file(data)
            raise MeshError(f"{path}: its data file {name} " + (f"is {kind}, not a data file." if kind else
                                                                 "is missing (copy it beside the .xdmf)."))


def _expected_kinds(ext: str, head: bytes) -> tuple[str, ...] | None:
    """What the content of a ``ext`` file may look like; None when not checked."""
    if ext in _XML_VTK:
        return (f"VTK XML {_VTK_XML_TYPES[ext]} data",)
    if ext in (".xdmf", ".xmf"):
        return ("XDMF XML",)
    fluent = ("text",) if head.lstrip().startswith(b"(") else ()   # ANSYS Fluent .msh
    off = ("text",) if head.split()[:1] and head.split()[0].endswith(b"OFF") else ()
    table = {".vtk": ("legacy VTK",), ".msh": ("a gmsh mesh",) + fluent, ".ply": ("PLY",), ".off": off,
             ".glb": ("binary glTF",), ".gltf": ("JSON",), ".npy": ("a NumPy array",)}
    if ext in table:
        return table[ext]
    if ext in _HDF5:
        return ("HDF5 data",)
    if ext in _TEXT:
        return ("text",)
    return None


def _check_stl(path: Path, size: int, head: bytes, tail: bytes, kind: str) -> None:
    """Binary STL: 80-byte header, uint32 count n, then 50 bytes per triangle; else ASCII."""
    declared = struct.unpack("<I", head[80:84])[0] if size >= 84 else -1
    if declared >= 0 and size == 84 + 50 * declared:
        return
    if head.lstrip()[:5].lower() == b"solid":
        if b"endsolid" not in tail:
            raise truncated(path, "the ASCII STL ends before 'endsolid'")
        return
    if kind == "binary data" and declared > 0 and size < 84 + 50 * declared:
        raise MeshError(f"{path}: the file is truncated or corrupt (the binary STL header declares "
                        f"{declared} triangles, {84 + 50 * declared} bytes, the file has {size}); "
                        "export or copy it again.")
    raise mismatch(path, ".stl", kind, head)


def mismatch(path: Path, ext: str, kind: str, head: bytes) -> MeshError:
    start = head[:40].decode("ascii", "replace").split("\n")[0].strip()
    shown = f" starting with '{start}'" if kind in ("text", "XML", "JSON") and start else ""
    return MeshError(f"{path}: not a valid {ext} file: its content looks like {kind}{shown} "
                     "(wrong extension, or not a mesh file).")


def truncated(path: Path, detail: str) -> MeshError:
    return MeshError(f"{path}: the file is truncated ({detail}); export or copy it again.")


def reader_failure(path: Path, ext: str, err: BaseException) -> MeshError:
    """The :class:`MeshError` for a reader's exception: truncation when its message says so."""
    if isinstance(err, ImportError) and err.name:   # an optional dependency of the format's reader
        return MeshError(f"{path}: reading {ext} files needs the Python package '{err.name.split('.')[0]}', "
                         f"which is not installed (pip install {err.name.split('.')[0]}); or convert the file "
                         "to .vtu or .msh.")
    text = str(err).strip()
    reason = (text.splitlines()[0] if text else type(err).__name__)[:200]
    if any(hint in text.lower() for hint in _TRUNCATION_HINTS):
        return MeshError(f"{path}: the file is truncated or corrupt ({reason}); export or copy it again.")
    return MeshError(f"{path}: could not read this {ext} file ({reason}); it is corrupt or a "
                     "variant of the format the reader does not support.")
