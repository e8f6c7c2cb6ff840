"""Zarr images: v2 or v3 arrays and OME-Zarr images read with :func:`dask.array.from_zarr` (path
based; axes from the metadata, :mod:`.ome_zarr_input`), and Zarr v3 outputs written one dask
chunk per zarr chunk."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
import zarr.storage

from .._dask import compute_settled, regular_chunks, with_windows
from .._objstore import Location, chunk_writer
from ..chunking import resolve_chunks, window_chunks
from ..errors import InputError, show_path
from ..params import ZARR_ZSTD_LEVEL, check_compression_level
from . import ome_zarr_input as oz
from ._checks import ZARR_MARKERS, check_dtype, check_image_shape, staged_output
from .image_info import (
    ImageInfo,
    LevelInfo,
    SeriesInfo,
    check_single,
    default_bands,
    is_associated_name,
    pick_series,
    place_axes,
)
from .ome_zarr_input import dimension_axes
from .zarr_reader import zarr_source

#: A zarr array whose last axis is longer than this while its first is short looks channels-first.
_MAX_PLAUSIBLE_CHANNELS = 16


def is_zarr_dir(p: Path) -> bool:
    """True for a folder holding zarr (v2 or v3) metadata."""
    return any((p / m).exists() for m in ZARR_MARKERS)


@dataclass(frozen=True)
class ZarrPlan:
    """How :func:`read_zarr` reads the array :func:`open_zarr` chose."""

    root: str
    component: str | None
    source_shape: tuple[int, ...]
    row_axis: int
    col_axis: int
    chan_axis: int | None
    #: fsspec options of a URL ``root`` (None for a local folder).
    options: dict | None = None


def _folder_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _open_node(p: Path) -> Any:
    where = f"input {show_path(p)}"
    if not p.is_dir():
        raise InputError(f"{where} is a file; a .zarr input must be a directory (a zarr array or group)")
    if not is_zarr_dir(p):
        raise InputError(f"{where} is a directory but not a zarr array or group (no zarr.json, .zarray or .zgroup)")
    problem = _metadata_problem(p)
    if problem:
        raise InputError(f"{where} is not a readable zarr array or group: {problem}")
    try:
        return zarr.open(str(p), mode="r")
    except Exception as exc:
        raise InputError(f"{where} is not a readable zarr array or group: {type(exc).__name__}: {exc}") from exc


#: Metadata documents bigquant parses itself before zarr does (so that what zarr would fail on
#: with a Python error, an AttributeError on a list, is said plainly); larger ones are left to zarr.
_PARSED_METADATA_BYTES = 64 * 2**20


def _metadata_problem(p: Path) -> str | None:
    """What is wrong with the metadata documents of folder ``p`` (JSON that is not valid, or not
    a JSON object), in words; None if nothing is."""
    for name in (*ZARR_MARKERS, ".zattrs"):
        f = p / name
        try:
            if not f.is_file() or f.stat().st_size > _PARSED_METADATA_BYTES:
                continue
            doc = json.loads(f.read_bytes())
        except OSError:
            continue  # unreadable: zarr's own message says how
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
            return f"{name} is not valid JSON ({exc})"
        if not isinstance(doc, dict):
            return f"{name} is not a JSON object"
    return None


def _only_array(where: str, p: Path, node: Any) -> str:
    """The name of the one array of a plain group (not OME-Zarr), or InputError."""
    try:
        names = sorted(name for name, _ in node.arrays())
    except Exception as exc:
        raise InputError(f"cannot list the arrays of zarr group {where}: {exc}") from exc
    if {"labels", "codebook"} <= set(names):
        raise InputError(f"{where} is a bigquant store, not an image; use `bigquant decode`")
    if not names:
        raise InputError(f"zarr group {where} holds no arrays; give the path of a zarr array")
    if len(names) > 1:
        raise InputError(
            f"zarr group {where} holds several arrays ({', '.join(names)}); give the path of one, e.g. {show_path(p / names[0])}"
        )
    return names[0]


def _plain_axes(where: str, arr: Any, axes: str | None) -> str:
    """The axes of a plain array: given, from its dimension names, or (rows, cols[, C])."""
    shape = tuple(int(n) for n in arr.shape)
    names = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
    found = axes or dimension_axes(names, len(shape))
    if found:
        return found
    check_image_shape(shape, where)
    if len(shape) == 3 and shape[2] > _MAX_PLAUSIBLE_CHANNELS and shape[0] <= 4:
        raise InputError(
            f"{where} has shape {shape}, which looks channels-first (C, rows, cols); say so with "
            "--axes CYX (axes='CYX'), or record its dimension_names"
        )
    return "YXC"[: len(shape)]


def _tile(arr: Any, axes: str) -> tuple[int, int]:
    # Align to shards where there are any: a shard is the unit a reader fetches in one request.
    grid = tuple(getattr(arr, "shards", None) or arr.chunks)
    return int(grid[axes.index("Y")]), int(grid[axes.index("X")])


def _image_series(where: str, node: Any, base: str, index: int, name: str, axes: str | None) -> SeriesInfo:
    """One OME-Zarr image (the multiscales of group ``base``) as a series with its levels."""
    ms = oz.multiscale(where, dict(node[base].attrs) if base else dict(node.attrs))
    src_axes = axes or ms.axes
    levels = []
    for path in ms.paths:
        a = node[f"{base}/{path}" if base else path]
        tile = _tile(a, src_axes) if len(src_axes) == a.ndim else None
        levels.append(LevelInfo(tuple(int(n) for n in a.shape), tile))
    return SeriesInfo(index, name, is_associated_name(name), src_axes, str(np.dtype(a.dtype)), tuple(levels))


def _describe_group(where: str, p: Path, node: Any, level: int, series: int | None, axes: str | None) -> tuple:
    """(format, detail, series listing, chosen series, its multiscale or None, array path)."""
    attrs = dict(node.attrs)
    groups = oz.series_groups(attrs, [n for n, _ in node.groups()])
    if groups:  # bioformats2raw: one OME-Zarr image per numbered subgroup
        names = oz.series_names(p, len(groups))
        listing = tuple(_image_series(where, node, g, i, names[i], axes) for i, g in enumerate(groups))
        index = pick_series(where, series, listing)
        base = groups[index]
    elif oz.is_multiscale(attrs):
        check_single(where, 0, series)
        base, index = "", 0
        listing = (_image_series(where, node, "", 0, "", axes),)
    else:
        check_single(where, level, series)
        return "zarr", None, None, 0, None, _only_array(where, p, node)
    ms = oz.multiscale(where, dict(node[base].attrs) if base else attrs)
    path = oz.level_path(where, ms, level)
    return "ome-zarr", f"NGFF {ms.version}", listing, index, ms, f"{base}/{path}" if base else path


def open_zarr(p: Path, level: int, series: int | None, axes: str | None) -> tuple[ImageInfo, ZarrPlan]:
    """Describe the array to read of the Zarr folder ``p`` (an array, a group of one array, an
    OME-Zarr image or bioformats2raw's series of them), from its metadata alone."""
    node = _open_node(p)
    return describe_zarr(node, p, str(p.absolute()), _folder_bytes(p), level, series, axes)


def describe_zarr(
    node: Any, p: Path, name: str, size: int, level: int, series: int | None, axes: str | None, options: Any = None
) -> tuple[ImageInfo, ZarrPlan]:
    """Describe the array to read of an open zarr ``node`` (a local folder's or a URL's ``name``;
    ``options``: the URL's fsspec options), ``size`` bytes in all."""
    where = f"input {show_path(name)}"
    detail = f"Zarr v{node.metadata.zarr_format}"
    fmt, ngff, listing, index, ms, component = "zarr", None, None, 0, None, None
    if isinstance(node, zarr.Group):
        fmt, ngff, listing, index, ms, component = _describe_group(where, p, node, level, series, axes)
        arr = node[component]
    else:
        check_single(where, level, series)
        arr = node
    src_axes = (axes or ms.axes) if ms is not None else _plain_axes(where, arr, axes)
    shape = tuple(int(n) for n in arr.shape)
    dtype = check_dtype(arr.dtype, where)
    row, col, chan = place_axes(where, shape, src_axes)
    channels = shape[chan] if chan is not None else 1
    check_image_shape((shape[row], shape[col], channels), where, src_axes)
    if listing is None:
        listing = (SeriesInfo(0, "", False, src_axes, dtype.name, (LevelInfo(shape, _tile(arr, src_axes)),)),)
    info = ImageInfo(
        path=name,
        container="zarr",
        format=fmt,
        detail=f"{ngff}, {detail}" if ngff else detail,
        file_bytes=size,
        series=index,
        level=level,
        shape=(shape[row], shape[col], channels),
        dtype=dtype,
        tile=_tile(arr, src_axes),
        axes=src_axes,
        bands=(oz.multiscale_bands(ms, channels) if ms is not None else None) or default_bands(channels),
        pixel_size=oz.level_pixel_size(ms, level) if ms is not None else None,
        compression="+".join(type(c).__name__.removesuffix("Codec").lower() for c in arr.compressors) or "none",
        all_series=listing,
    )
    root = name if options is not None else os.path.abspath(p)
    return info, ZarrPlan(root, component, shape, row, col, chan, options)


def read_region(plan: ZarrPlan, rows: slice, cols: slice) -> np.ndarray:
    """The pixels of ``rows`` x ``cols`` in the source's own axis order (other axes at 0), read
    straight from zarr: what one task of :func:`read_zarr` decodes."""
    kw = {} if plan.options is None else {"storage_options": plan.options}
    sel: list[Any] = [0] * len(plan.source_shape)
    sel[plan.row_axis], sel[plan.col_axis] = rows, cols
    if plan.chan_axis is not None:
        sel[plan.chan_axis] = slice(None)
    try:
        return np.asarray(zarr.open_array(plan.root, path=plan.component or "", mode="r", **kw)[tuple(sel)])
    except Exception as exc:  # a chunk zarr cannot decode: a damaged input, not a bug
        where = f"rows {rows.start}:{rows.stop}, cols {cols.start}:{cols.stop} of input {show_path(plan.root)}"
        raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc


def read_zarr(
    info: ImageInfo, plan: ZarrPlan, budget: int, chunks: Sequence[int] | None, threads: int | None
) -> da.Array:
    """The array :func:`open_zarr` described as a dask array (rows, cols, C): chunks are whole
    multiples of the source's chunks (or shards) along rows and columns and span the channels;
    other axes (of length 1) are dropped and a channels-first array is transposed lazily, chunk
    by chunk, so nothing is rewritten."""
    rows, cols, channels = info.shape
    cr, cc = resolve_chunks((rows, cols), info.dtype.itemsize * channels, budget, chunks, info.tile, threads)
    # Absolute: the graph may run on workers whose working folder is not ours. A local input's
    # reads are checked against the chunk files' stamps taken here, before the first pass.
    local = None if "://" in plan.root else zarr_source(plan.root, plan.component, f"input {show_path(info.path)}")
    x = _chunked(plan, info, local, cr, cc)
    wr, wc = window_chunks(info.tile, (cr, cc))
    return x if (wr, wc) == (cr, cc) else with_windows(x, _chunked(plan, info, local, wr, wc))


def _chunked(plan: ZarrPlan, info: ImageInfo, local: Any, cr: int, cc: int) -> da.Array:
    """:func:`read_zarr`'s array in chunks of (``cr``, ``cc``) pixels, read through ``local`` (a
    local input's reader) or from the URL."""
    src = [1] * len(plan.source_shape)
    src[plan.row_axis], src[plan.col_axis] = cr, cc
    if plan.chan_axis is not None:
        src[plan.chan_axis] = info.shape[2]
    if local is None:
        kw = {} if plan.options is None else {"storage_options": plan.options}
        x = da.from_zarr(plan.root, component=plan.component, chunks=tuple(src), **kw)
    else:
        x = da.from_array(local, chunks=tuple(src), asarray=False)  # the reader is stored once in the graph
    kept = [a for a in (plan.row_axis, plan.col_axis, plan.chan_axis) if a is not None]
    x = x[tuple(slice(None) if a in kept else 0 for a in range(x.ndim))]
    order = [sorted(kept).index(a) for a in kept]
    if order != sorted(order):
        x = x.transpose(order).map_blocks(np.ascontiguousarray, dtype=x.dtype)
    if x.dtype != info.dtype:
        x = x.astype(info.dtype)  # big-endian zarr v2 data
    if x.ndim == 2:
        x = x[:, :, None]
    return x


def _write_array(image: da.Array, target: Path | Location, compression: str | None, level: int | None = None) -> bytes:
    """Write every chunk of ``image`` as a Zarr v3 array at ``target``; returns the array's
    ``zarr.json``. On disk it is written first; at a URL the tasks write chunks only and the
    caller PUTs it last (the commit, :func:`write_zarr`)."""
    rows, cols, channels = image.shape

    # One dask chunk per zarr chunk, so parallel writes never touch the same zarr chunk.
    image = regular_chunks(image.rechunk({2: -1}))
    level = check_compression_level(level, "zstd" if compression is not None else None)
    compressors = (
        [zarr.codecs.ZstdCodec(level=ZARR_ZSTD_LEVEL if level is None else level)] if compression is not None else None
    )
    created = zarr.create_array(
        store=zarr.storage.MemoryStore() if isinstance(target, Location) else str(target),
        shape=image.shape,
        chunks=(image.chunks[0][0], image.chunks[1][0], channels),
        dtype=image.dtype,
        compressors=compressors,
        zarr_format=3,
        dimension_names=("rows", "cols", "channels"),
    )
    doc = created.metadata.to_dict()
    # Each task opens the array by (absolute) path, or by URL and the document above, and writes
    # its one chunk: nothing unpicklable in the graph, workers in other folders find it, and the
    # keys hash the target, so two writes never share a task.
    dest = dask.delayed((target, doc) if isinstance(target, Location) else os.path.abspath(target), pure=True)
    nr, nc = image.numblocks[:2]
    done = da.map_blocks(
        _write_block,
        image,
        dest,
        dtype=np.int8,
        chunks=((1,) * nr, (1,) * nc, (1,)),
        token="bigquant-write-zarr",
        meta=np.empty((0, 0, 0), np.int8),
    )
    compute_settled(*done.to_delayed().ravel().tolist())
    return json.dumps(doc, indent=2, allow_nan=False).encode()


def _write_block(block: np.ndarray, dest: str | tuple[Location, dict], block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1), _ = block_info[0]["array-location"]
    arr = chunk_writer(*dest) if isinstance(dest, tuple) else zarr.open_array(dest, mode="r+")
    arr[r0:r1, c0:c1] = block
    return np.zeros((1, 1, 1), np.int8)


def write_zarr(
    image: da.Array, p: Path | Location, overwrite: bool, compression: str | None, compression_level: int | None
) -> None:
    """Write ``image`` (rows, cols, C) as a Zarr v3 array at ``p`` (a path or a URL): zstd unless
    ``compression`` is None, one zarr chunk per dask chunk (irregular chunks are first rechunked
    to the first chunk's shape). At a URL the array's ``zarr.json`` is the last key written."""
    with staged_output(p, overwrite) as tmp:
        doc = _write_array(image, tmp, compression, compression_level)
        if isinstance(tmp, Location):
            tmp.fs.pipe_file(f"{tmp.path}/zarr.json", doc)
