"""Zarr images: v2 or v3 arrays read with :func:`dask.array.from_zarr` (path based), and Zarr v3
outputs written one dask chunk per zarr chunk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from .._dask import compute_settled, regular_chunks
from .._staging import staged
from ..chunking import resolve_chunks
from ..errors import InputError
from ..params import ZARR_ZSTD_LEVEL, check_compression_level
from ._checks import ZARR_MARKERS, check_dtype, check_image_shape

#: A zarr array whose last axis is longer than this while its first is short looks channels-first.
_MAX_PLAUSIBLE_CHANNELS = 16


def is_zarr_dir(p: Path) -> bool:
    """True for a folder holding zarr (v2 or v3) metadata."""
    return any((p / m).exists() for m in ZARR_MARKERS)


def read_zarr(p: Path, budget: int, chunks: Sequence[int] | None, threads: int | None) -> da.Array:
    where = f"input '{p}'"
    if not p.is_dir():
        raise InputError(f"{where} is a file; a .zarr input must be a directory (a zarr array or group)")
    if not is_zarr_dir(p):
        raise InputError(f"{where} is a directory but not a zarr array or group (no zarr.json, .zarray or .zgroup)")
    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:
        raise InputError(f"{where} is not a readable zarr array or group: {type(exc).__name__}: {exc}") from exc
    component = None
    if isinstance(node, zarr.Group):
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
                f"zarr group {where} holds several arrays ({', '.join(names)}); give the path of one, "
                f"e.g. '{p / names[0]}'"
            )
        component = names[0]
        arr = node[component]
    else:
        arr = node
    shape = tuple(int(n) for n in arr.shape)
    check_image_shape(shape, where)
    dtype = check_dtype(arr.dtype, where)
    if len(shape) == 3 and shape[2] > _MAX_PLAUSIBLE_CHANNELS and shape[0] <= 4:
        raise InputError(
            f"{where} has shape {shape}, which looks channels-first (C, rows, cols); bigquant reads "
            "zarr as (rows, cols, C): save it with numpy.moveaxis(a, 0, -1)"
        )
    channels = shape[2] if len(shape) == 3 else 1
    # Align to shards where there are any: a shard is the unit a reader fetches in one request.
    tile = tuple(getattr(arr, "shards", None) or arr.chunks)[:2]
    cr, cc = resolve_chunks(shape[:2], dtype.itemsize * channels, budget, chunks, tile, threads)
    # Absolute: the graph may run on workers whose working folder is not ours.
    x = da.from_zarr(os.path.abspath(p), component=component, chunks=(cr, cc) + shape[2:])
    if x.dtype != dtype:
        x = x.astype(dtype)  # big-endian zarr v2 data
    if x.ndim == 2:
        x = x[:, :, None]
    return x


def _write_array(image: da.Array, target: Path, compression: str | None, level: int | None = None) -> None:
    rows, cols, channels = image.shape

    # One dask chunk per zarr chunk, so parallel writes never touch the same zarr chunk.
    image = regular_chunks(image.rechunk({2: -1}))
    level = check_compression_level(level)
    compressors = (
        [zarr.codecs.ZstdCodec(level=ZARR_ZSTD_LEVEL if level is None else level)] if compression is not None else None
    )
    zarr.create_array(
        store=str(target),
        shape=image.shape,
        chunks=(image.chunks[0][0], image.chunks[1][0], channels),
        dtype=image.dtype,
        compressors=compressors,
        zarr_format=3,
        dimension_names=("rows", "cols", "channels"),
    )
    # Each task opens the array by (absolute) path and writes its one chunk: nothing unpicklable
    # in the graph, workers in other folders find it, and the keys hash the target path, so two
    # writes never share a task.
    nr, nc = image.numblocks[:2]
    done = da.map_blocks(
        _write_block,
        image,
        os.path.abspath(target),
        dtype=np.int8,
        chunks=((1,) * nr, (1,) * nc, (1,)),
        token="bigquant-write-zarr",
        meta=np.empty((0, 0, 0), np.int8),
    )
    compute_settled(*done.to_delayed().ravel().tolist())


def _write_block(block: np.ndarray, path: str, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1), _ = block_info[0]["array-location"]
    zarr.open_array(path, mode="r+")[r0:r1, c0:c1] = block
    return np.zeros((1, 1, 1), np.int8)


def write_zarr(
    image: da.Array, p: Path, overwrite: bool, compression: str | None, compression_level: int | None
) -> None:
    """Write ``image`` (rows, cols, C) as a Zarr v3 array at ``p``: zstd unless ``compression``
    is None, one zarr chunk per dask chunk (irregular chunks are first rechunked to the first
    chunk's shape)."""
    with staged(p, overwrite) as tmp:
        _write_array(image, tmp, compression, compression_level)
