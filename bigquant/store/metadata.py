"""Reading and validating a store's metadata documents, and the limits a writer must keep.

Every JSON document of a store (the group ``zarr.json``, the labels group's, each array's) is
read through :meth:`.root.StoreRoot.document` or checked by :meth:`.root.StoreRoot.check` before
zarr parses it, on disk or on object storage alike, under one size limit (:data:`~bigquant.store.format.MAX_METADATA_BYTES`). The bigquant metadata
is validated in full before anything uses it (:func:`validate_metadata`): every key the summaries
print has the type they need, so ``info`` and ``decode`` either work or refuse in one line,
never half-way through their output. :func:`check_store_limits` holds the writer to the same
limits the reader enforces.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._objstore import Location, describe_error, root_document
from ..errors import BigquantError, ParameterError, StoreFormatError
from ..params import MAX_K
from .format import (
    ATTRS,
    FORMAT_VERSION,
    MAX_CHANNELS,
    MAX_CHUNK_PIXELS,
    MAX_METADATA_BYTES,
    MAX_PIXELS,
    PALETTE,
    PYRAMID_VERSION,
)
from .root import StoreRoot


def is_store_document(doc: Any) -> bool:
    """True for a parsed group ``zarr.json`` that carries bigquant metadata (complete or not)."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("attributes"), dict)
        and isinstance(doc["attributes"].get(ATTRS), dict)
    )


def store_document(path: str | os.PathLike | Location) -> dict | None:
    """The group ``zarr.json`` of a folder (or a URL) if it carries bigquant metadata, else None;
    never raises for a local path. At a URL a request refused otherwise than by "not found"
    (denied, no credentials) raises StoreFormatError, one line."""
    if isinstance(path, Location):
        try:
            doc = root_document(path)
        except BigquantError:
            raise
        except Exception as exc:
            raise StoreFormatError(f"cannot read {path.url!r}: {describe_error(exc)}") from None
        return doc if is_store_document(doc) else None
    zj = Path(path) / "zarr.json"
    try:
        if not zj.is_file() or zj.stat().st_size > MAX_METADATA_BYTES:
            return None
        doc = json.loads(zj.read_text())
    except (OSError, ValueError):
        return None
    return doc if is_store_document(doc) else None


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return (_int(v) or isinstance(v, float)) and math.isfinite(v)


def _psnr(v: Any) -> bool:
    return v is None or v == "inf" or _num(v)


def _numbers(v: Any) -> bool:
    return v is None or (isinstance(v, list) and all(x is None or _num(x) for x in v))


def _pixel_size(v: Any) -> bool:
    return v is None or (
        isinstance(v, dict) and _num(v.get("y")) and _num(v.get("x")) and isinstance(v.get("unit"), str)
    )


#: The keys every store's and palette's metadata holds, and the test each value must pass.
REQUIRED = {
    "iterations": lambda v: _int(v) and v >= 0,
    "mse": lambda v: _num(v) and v >= 0,
    "psnr": _psnr,
    "method": lambda v: isinstance(v, str),
    "seed": lambda v: _int(v) and v >= 0,
}
#: Keys a store (not a palette) must hold besides :data:`REQUIRED`.
REQUIRED_STORE = {"source": lambda v: isinstance(v, str)}
#: Keys that may be absent; where present, their value must pass the test.
OPTIONAL = {
    "converged": lambda v: isinstance(v, bool),
    "k_requested": lambda v: _int(v) and v >= 1,
    "inertia": lambda v: v is None or v == "inf" or _num(v),
    "tol": _num,
    "time_s": _num,
    "stopped_by": lambda v: v is None or isinstance(v, str),
    "inertia_history": _numbers,
    "shift_history": _numbers,
    "source_path": lambda v: isinstance(v, str),
    "source_format": lambda v: isinstance(v, str),
    "source_series": lambda v: v is None or _int(v),
    "source_level": lambda v: _int(v),
    "source_bytes": lambda v: v is None or (_int(v) and v > 0),
    "pixel_size": _pixel_size,
    "target_psnr": lambda v: v is None or _num(v),
    "sources": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
}


def _check_keys(p: Path | str, meta: dict, palette: bool) -> None:
    rules = {**REQUIRED, **({} if palette else REQUIRED_STORE)}
    for key in rules:
        if key not in meta:
            raise StoreFormatError(f"store {str(p)!r} is damaged: its metadata has no {key!r}")
    for key, ok in {**rules, **OPTIONAL}.items():
        if key in meta and not ok(meta[key]):
            raise StoreFormatError(f"store {str(p)!r} is damaged: its metadata {key!r} is {meta[key]!r}")
    if "source_path" in meta and not all(k in meta for k in ("source_format", "source_series", "source_level")):
        raise StoreFormatError(f"store {str(p)!r} is damaged: its metadata has a source_path but not its format")
    bands = meta.get("bands")
    channels = meta["channels"] if palette else meta["shape"][2]
    if bands is not None and not (
        isinstance(bands, list) and len(bands) == channels and all(isinstance(b, str) for b in bands)
    ):
        raise StoreFormatError(f"store {str(p)!r} is damaged: its bands {bands!r} do not name its {channels} channels")


def _check_dtype(p: Path | str, meta: dict) -> None:
    dtype = meta.get("dtype")
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "uif"
    except TypeError:
        ok = False
    if not ok:
        raise StoreFormatError(f"store {str(p)!r} claims an invalid dtype {dtype!r}")


def _check_chunk_files(p: Path | str, meta: dict) -> None:
    """Stores since the pyramid record one chunk count per level; without it no check could run."""
    counts = meta.get("label_chunk_files")
    if meta["format_version"] >= PYRAMID_VERSION and not (
        isinstance(counts, list) and counts and all(_int(n) and n >= 1 for n in counts)
    ):
        raise StoreFormatError(
            f"store {str(p)!r} is damaged: label_chunk_files {counts!r} is not one chunk count per labels level"
        )


def _check_version(p: Path | str, meta: dict) -> None:
    version = meta.get("format_version")
    if meta.get("complete") is not True or version is None:
        raise StoreFormatError(f"store {str(p)!r} is incomplete (its writing was interrupted); run the compress again")
    if not _int(version) or version < 1:
        raise StoreFormatError(f"store {str(p)!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise StoreFormatError(
            f"store {str(p)!r} has format_version {version}, newer than the "
            f"{FORMAT_VERSION} this bigquant reads; upgrade bigquant"
        )


def validate_metadata(p: Path | str, doc: Any) -> dict:
    """The validated ``bigquant`` metadata of the parsed group ``zarr.json`` ``doc`` of store ``p``.

    Raises
    ------
    StoreFormatError
        Not a bigquant group, incomplete, a newer or invalid format version, an absurd shape,
        K or dtype (guards against allocating from corrupt metadata), or a key the summaries
        need missing or of the wrong type.
    """
    if not isinstance(doc, dict):
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store: zarr.json is not a JSON object")
    if doc.get("node_type") != "group" or not is_store_document(doc):
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store (no 'bigquant' metadata)")
    meta = doc["attributes"][ATTRS]
    _check_version(p, meta)
    palette = meta.get("kind") == PALETTE
    k = meta.get("k")
    if palette:
        c = meta.get("channels")
        if not _int(k) or not 1 <= k <= MAX_K or not _int(c) or not 1 <= c <= MAX_CHANNELS:
            raise StoreFormatError(f"palette {str(p)!r} claims an invalid K {k!r} or channel count {c!r}")
    else:
        shape = meta.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) != 3
            or not all(_int(s) and s > 0 for s in shape)
            or math.prod(shape[:2]) > MAX_PIXELS
            or shape[2] > MAX_CHANNELS
        ):
            raise StoreFormatError(
                f"store {str(p)!r} claims an invalid or absurd shape {shape!r} "
                f"(at most {MAX_PIXELS} pixels and {MAX_CHANNELS} channels)"
            )
        if not _int(k) or not 1 <= k <= MAX_K:
            raise StoreFormatError(f"store {str(p)!r} claims an invalid K {k!r} (1 to {MAX_K})")
        _check_chunk_files(p, meta)
    _check_dtype(p, meta)
    _check_keys(p, meta, palette)
    return meta


def read_metadata(path: str | os.PathLike | Location | StoreRoot) -> dict:
    """The ``bigquant`` metadata of a store or palette (a local path, a Location or a
    :class:`~.root.StoreRoot`), validated; raises StoreFormatError otherwise."""
    root = path if isinstance(path, StoreRoot) else StoreRoot(path)
    name = root.name
    raw = None
    if root.where is None:
        size = root.size("zarr.json")
    else:  # one GET: a refused request (denied, no credentials) says so here
        try:
            raw = root.read("zarr.json")
        except FileNotFoundError:
            raw = None
        size = None if raw is None else len(raw)
    if size is None and not root.exists():
        raise StoreFormatError(f"store {name!r} does not exist")
    if not root.is_folder() or size is None:
        raise StoreFormatError(f"{name!r} is not a bigquant store (no Zarr v3 group there)")
    if size > MAX_METADATA_BYTES:
        raise StoreFormatError(
            f"{name!r} is not a bigquant store: its zarr.json has {size} bytes, "
            f"more than the {MAX_METADATA_BYTES} a store's metadata can need"
        )
    try:
        doc = json.loads(raw if raw is not None else root.read("zarr.json"))
    except (OSError, ValueError) as exc:
        raise StoreFormatError(f"{name!r} is not a bigquant store: unreadable zarr.json ({exc})") from exc
    return validate_metadata(name, doc)


def check_store_limits(shape: tuple[Any, ...], k: int, chunks: tuple[Any, ...] | None = None) -> None:
    """Refuse, before anything is written, a store the reader would refuse: the same limits.

    ``shape`` is (rows, cols, C) or (rows, cols); ``chunks`` the labels' (rows, cols) chunks.

    Raises
    ------
    ParameterError
        More pixels, channels or labels per chunk than a store may hold, or K out of range.
    """
    rows, cols = int(shape[0]), int(shape[1])
    c = int(shape[2]) if len(shape) > 2 else 1
    if rows * cols > MAX_PIXELS:
        raise ParameterError(f"the image has {rows * cols} pixels; a bigquant store holds at most {MAX_PIXELS}")
    if c > MAX_CHANNELS:
        raise ParameterError(f"the image has {c} channels; a bigquant store holds at most {MAX_CHANNELS}")
    if not 1 <= int(k) <= MAX_K:
        raise ParameterError(f"K={k} is out of range for a store (1 to {MAX_K})")
    if chunks is not None and math.prod(int(n) for n in chunks[:2]) > MAX_CHUNK_PIXELS:
        raise ParameterError(
            f"chunks {tuple(int(n) for n in chunks[:2])} hold more than the {MAX_CHUNK_PIXELS} pixels "
            "a labels chunk of a store may hold; choose smaller --chunks"
        )
