"""What an input is, from its content: the first bytes of a file, the metadata files of a folder.

The extension is never trusted: an Aperio ``.svs``, a Hamamatsu ``.ndpi`` or a PNG named
``.jpg`` is read for what it is. A TIFF is any file that starts with a TIFF header: classic
(``II*\\0``, ``MM\\0*``) or BigTIFF (``II+\\0``, ``MM\\0+``), in either byte order.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, show_path
from ._checks import ZARR_MARKERS

#: First bytes of each format bigquant reads, and the kind they announce.
MAGIC = (
    (b"II*\x00", "tiff"),  # classic TIFF, little-endian
    (b"MM\x00*", "tiff"),  # classic TIFF, big-endian
    (b"II+\x00", "tiff"),  # BigTIFF, little-endian
    (b"MM\x00+", "tiff"),  # BigTIFF, big-endian
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),  # SOI marker, then the first segment's marker
)
#: What the refusal of an unknown format lists.
KNOWN = "TIFF (any flavour: SVS, NDPI, SCN, BIF, QPTIFF, Philips, OME-TIFF, GeoTIFF, ...), PNG, JPEG or a Zarr folder"


def kind_by_content(head: bytes, where: str) -> str | None:
    """The kind (``"tiff"``, ``"png"``, ``"jpeg"``) that a file's first bytes ``head`` (8 are
    enough) announce, or None for none of :data:`MAGIC`; an empty file, named ``where``, is an
    InputError."""
    if not head:
        raise InputError(f"{where} is empty (0 bytes)")
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    return None


def sniff(p: Path) -> str:
    """The kind of input at ``p`` by its content: ``"tiff"``, ``"png"``, ``"jpeg"`` or ``"zarr"``.

    Raises
    ------
    InputError
        ``p`` does not exist, is empty, is a folder without Zarr metadata, or is a file whose
        first bytes are none of the known signatures (the message names the extension too).
    """
    where = f"input {show_path(p)}"
    if not p.exists():
        raise InputError(f"{where} does not exist")
    if p.is_dir():
        if any((p / m).exists() for m in ZARR_MARKERS):
            return "zarr"
        raise InputError(f"{where} is a directory but not a zarr array or group (no zarr.json, .zarray or .zgroup)")
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc}") from exc
    kind = kind_by_content(head, where)
    if kind is not None:
        return kind
    if p.suffix.lower() == ".zarr":
        raise InputError(f"{where} is a file; a .zarr input must be a directory (a zarr array or group)")
    ext = f"extension {p.suffix!r}" if p.suffix else "no extension"
    raise InputError(f"{where} ({ext}) is not an image bigquant can read: its content is none of {KNOWN}")
