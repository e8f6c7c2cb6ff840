"""The bigquant store: a Zarr v3 group holding ``labels`` and ``codebook`` (format version 2).

The package's rooms: :mod:`.format` (names, version, limits, codecs), :mod:`.metadata` (reading
and validating the metadata documents, the writer's limits), :mod:`.writer` (the only code that
writes stores), :mod:`.reader` and :mod:`.palette`, both through :mod:`.root` (a local folder or a URL, one
face). :func:`open` is the one way to open what is at a path or URL: a :class:`Store`, or a
:class:`Palette` for a palette.

The store imports no algorithm and no image format: it writes the labels a given function
computes (:meth:`StoreWriter.write_labels`) and reads them back.
"""

from __future__ import annotations

from .format import (
    ATTRS,
    CODEBOOK,
    FORMAT_VERSION,
    LABELS,
    PALETTE,
    ZSTD_LEVEL,
    describe_codecs,
    label_chunk_count,
    labels_codecs,
)
from .metadata import check_store_limits, read_metadata
from .palette import Palette, read_codebook
from .reader import Store, is_store, lazy_pyramid, open
from .root import store_bytes, store_root
from .writer import StoreWriter, check_target, write_palette

__all__ = [
    "ATTRS",
    "CODEBOOK",
    "FORMAT_VERSION",
    "LABELS",
    "PALETTE",
    "ZSTD_LEVEL",
    "Palette",
    "Store",
    "StoreWriter",
    "check_store_limits",
    "check_target",
    "describe_codecs",
    "is_store",
    "label_chunk_count",
    "labels_codecs",
    "open",
    "read_codebook",
    "read_metadata",
    "store_bytes",
    "store_root",
    "write_palette",
    "lazy_pyramid",
]
