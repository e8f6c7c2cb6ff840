"""The store format, version 1: names, limits, the labels' codecs, metadata validation.

Layout (documented in the README and docs/)::

    scan.bq.zarr/                 Zarr v3 group
      zarr.json                   attributes: {"bigquant": {...metadata...}}
      labels/                     (rows, cols) uint8 if K <= 256 else uint16, zstd with its checksum,
                                  chunked like the job, every chunk written (``label_chunk_files``)
      codebook/                   (K, C) in the input's dtype (rounded and clipped for integer inputs)

The metadata (group attribute ``bigquant``) holds at least ``format_version``, ``complete``,
``k``, ``shape`` (rows, cols, C), ``dtype``, ``iterations``, ``converged``, ``inertia``, ``mse``,
``psnr``, ``seed`` and ``source``. A *palette* (``kind`` ``"palette"``) is the same group with a
``codebook`` and no labels. A store written by a newer format version is refused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from zarr.codecs import ZstdCodec

from ..errors import StoreFormatError
from ..params import LABELS_ZSTD_LEVEL, MAX_K, check_labels_level

FORMAT_VERSION = 1
LABELS = "labels"
CODEBOOK = "codebook"
ATTRS = "bigquant"
#: ``kind`` of a palette store: a codebook fitted across images, without labels.
PALETTE = "palette"
#: Largest image a store may claim: guards against allocating from corrupt metadata.
MAX_PIXELS = 1 << 42
#: Largest labels chunk a store may claim (pixels): reading one chunk allocates all of it.
MAX_CHUNK_PIXELS = 1 << 30
#: Largest group ``zarr.json`` read (bytes); the real one is a few KiB (up to ~1 MiB for K=65536).
MAX_METADATA_BYTES = 64 << 20
#: Most channels a store may claim.
MAX_CHANNELS = 64
#: Default zstd level of the labels (:data:`bigquant.params.LABELS_ZSTD_LEVEL`).
ZSTD_LEVEL = LABELS_ZSTD_LEVEL


def labels_codecs(level: int | None = None) -> list:
    """The lossless codec pipeline of the ``labels`` array.

    zstd at ``level`` (default :data:`ZSTD_LEVEL`) with its frame checksum, so a damaged chunk
    fails to decode instead of decoding to wrong labels.
    """
    return [ZstdCodec(level=check_labels_level(level), checksum=True)]


def describe_codecs(array: Any) -> str:
    """A Zarr array's filters and compressors in a few characters: ``"zstd-3"``, ``"none"``."""
    parts = []
    for codec in (*array.filters, *array.compressors):
        name = type(codec).__name__.removesuffix("Codec").lower()
        level = getattr(codec, "level", None)
        parts.append(name if level is None else f"{name}-{level}")
    return "+".join(parts) or "none"


def label_chunk_count(shape: tuple[int, ...], chunks: tuple[int, ...]) -> int:
    """Chunks in the grid of a (rows, cols) labels array: the files a store writes."""
    return math.prod(-(-int(n) // int(c)) for n, c in zip(shape, chunks))


def is_store_document(doc: Any) -> bool:
    """True for a parsed group ``zarr.json`` that carries bigquant metadata (complete or not)."""
    return isinstance(doc, dict) and isinstance((doc.get("attributes") or {}).get(ATTRS), dict)


def validate_metadata(p: Path, doc: Any) -> dict:
    """The validated ``bigquant`` metadata of the parsed group ``zarr.json`` ``doc`` of store ``p``.

    Raises
    ------
    StoreFormatError
        Not a bigquant group, incomplete, a newer or invalid format version, or an absurd shape,
        K or dtype (guards against allocating from corrupt metadata).
    """
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    meta = attrs.get(ATTRS) if isinstance(attrs, dict) else None
    if doc.get("node_type") != "group" or not isinstance(meta, dict):
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store (no 'bigquant' metadata)")
    version = meta.get("format_version")
    if not meta.get("complete") or version is None:
        raise StoreFormatError(f"store {str(p)!r} is incomplete (its writing was interrupted); run the compress again")
    if not isinstance(version, int) or version < 1:
        raise StoreFormatError(f"store {str(p)!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise StoreFormatError(
            f"store {str(p)!r} has format_version {version}, newer than the "
            f"{FORMAT_VERSION} this bigquant reads; upgrade bigquant"
        )
    if meta.get("kind") == PALETTE:
        return _check_palette_meta(p, meta)
    shape, k = meta.get("shape"), meta.get("k")
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(s, int) and s > 0 for s in shape)
        or math.prod(shape[:2]) > MAX_PIXELS
        or shape[2] > MAX_CHANNELS
    ):
        raise StoreFormatError(
            f"store {str(p)!r} claims an invalid or absurd shape {shape!r} "
            f"(at most {MAX_PIXELS} pixels and {MAX_CHANNELS} channels)"
        )
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise StoreFormatError(f"store {str(p)!r} claims an invalid K {k!r} (1 to {MAX_K})")
    dtype = meta.get("dtype")
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "uif"
    except TypeError:
        ok = False
    if not ok:
        raise StoreFormatError(f"store {str(p)!r} claims an invalid dtype {dtype!r}")
    return meta


def _check_palette_meta(p: Path, meta: dict) -> dict:
    k, c = meta.get("k"), meta.get("channels")
    if not isinstance(k, int) or not 1 <= k <= MAX_K or not isinstance(c, int) or not 1 <= c <= MAX_CHANNELS:
        raise StoreFormatError(f"palette {str(p)!r} claims an invalid K {k!r} or channel count {c!r}")
    return meta


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays as Python values, non-finite floats as None or
    ``"inf"``/``"-inf"``, and paths as strings: what the metadata JSON can hold."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj
