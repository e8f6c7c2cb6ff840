"""Inputs by URL: what an object on object storage is (by its content, as :mod:`.sniff` does for
files) and its description and plan, for :func:`bigquant.io.open_image`.

A Zarr array or group is read through zarr's fsspec store (``storage_options`` passed on), a
TIFF or BigTIFF tile by tile with ranged reads (:mod:`.remote_tiff`). PNG and JPEG are refused:
they decode only whole, which is what a cluster without a shared file system should not do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

from .._objstore import Location, describe_error
from ..errors import InputError
from ._checks import ZARR_MARKERS
from .image_info import ImageInfo
from .remote_tiff import RemoteTiffPlan, open_remote_tiff, read_remote_tiff
from .sniff import KNOWN, kind_by_content
from .zarr_image import describe_zarr

__all__ = ["RemoteTiffPlan", "open_remote", "read_remote_tiff", "sniff_remote"]


def sniff_remote(where: Location) -> str:
    """``"tiff"``, ``"png"``, ``"jpeg"`` or ``"zarr"`` for the object (or prefix) at ``where``.

    Raises InputError for a missing object or bucket, a denied request or missing credentials
    (one line each), and for content of no known format.
    """
    name = f"input '{where.url}'"
    fs = where.fs
    try:
        for marker in ZARR_MARKERS:
            if fs.isfile(f"{where.path}/{marker}"):
                return "zarr"
        head = fs.cat_file(where.path, start=0, end=8)
    except Exception as exc:
        raise InputError(f"cannot read {name}: {describe_error(exc)}") from None
    kind = kind_by_content(head, name)
    if kind is not None:
        return kind
    raise InputError(f"{name} is not an image bigquant can read: its content is none of {KNOWN}")


def _zarr_bytes(where: Location) -> int:
    try:
        return int(where.fs.du(where.path))
    except Exception:  # a listing refused: the size only feeds estimates
        return 0


def open_remote(where: Location, level: int, series: int | None, axes: str | None) -> tuple[ImageInfo, Any]:
    """The description and reading plan of the image at ``where`` (TIFF or Zarr)."""
    kind = sniff_remote(where)
    name = f"input '{where.url}'"
    if kind == "tiff":
        return open_remote_tiff(where, level, series, axes)
    if kind != "zarr":
        raise InputError(
            f"{name} is a {kind.upper()} image, which decodes only whole; on object storage bigquant "
            "reads TIFF and Zarr: convert it, or copy it to a local file"
        )
    try:
        node = zarr.open(where.url, mode="r", storage_options=where.options)
    except Exception as exc:
        raise InputError(f"{name} is not a readable zarr array or group: {describe_error(exc)}") from None
    return describe_zarr(node, Path(where.path), where.url, _zarr_bytes(where), level, series, axes, where.options)
