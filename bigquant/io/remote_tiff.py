"""TIFF and BigTIFF on object storage, read tile by tile with ranged requests.

:func:`open_remote_tiff` reads the header (the IFDs) once, through an fsspec file object, and
notes where in the file the level's tile offsets and byte counts lie. Each task of
:func:`read_remote_tiff`'s graph carries the URL, the storage options, the decoding parameters
and those two positions; it reads its own tiles' entries of both tables (one ranged read each),
fetches each tile with one ranged read (``fs.cat_file(path, start, end)``) and decodes it with
imagecodecs. So no task downloads the whole file, and the graph holds neither pixels nor the
tables, whose size grows with the image (24 MB at 100 Gpx in 256-pixel tiles).

A level that is not one tiled page of interleaved samples in a layout decoded here (strips,
planar or packed samples, YCbCr subsampling without JPEG) is read through tifffile's Zarr store
on a file object each task opens itself: still ranged reads, after that task's own read of the
header.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .._objstore import Location, describe_error
from ..chunking import resolve_chunks
from ..errors import InputError
from .image_info import ImageInfo
from .tiff_input import TiffPlan, describe_tiff
from .tiff_reader import as_rows_cols_channels, axis_key

#: Header bytes fetched ahead per request while tifffile reads the IFDs.
HEADER_BLOCK = 1 << 18
#: Remote files each worker thread keeps open for the tifffile fallback.
_CACHE_SIZE = 4
_local = threading.local()


@dataclass(frozen=True)
class TileCodec:
    """How to decode one tile of a level (all small values: this travels in every task)."""

    tile: tuple[int, int]
    samples: int
    dtype: str  # the file's dtype, byte order included
    compression: int
    predictor: int
    fillorder: int
    jpegtables: bytes | None
    colorspace: Any
    outcolorspace: Any


@dataclass(frozen=True)
class TileIndex:
    """Where a level's TileOffsets and TileByteCounts values lie in the file: tile ``i`` (row-major
    over a grid ``across`` tiles wide) has its offset at byte ``offsets_at + i * itemsize``."""

    offsets_at: int
    offsets_dtype: str  # byte order included
    counts_at: int
    counts_dtype: str
    across: int

    def read(self, where: Location, ty: range, tx: range) -> tuple[np.ndarray, np.ndarray]:
        """The offsets and byte counts of the tiles in rows ``ty`` and columns ``tx`` of the grid,
        each from one ranged read of the rows' span of its table."""
        first, last = ty.start * self.across + tx.start, (ty.stop - 1) * self.across + tx.stop
        grid = np.arange(len(ty))[:, None] * self.across + np.arange(len(tx))[None, :]
        out = []
        for at, dtype in ((self.offsets_at, self.offsets_dtype), (self.counts_at, self.counts_dtype)):
            size = np.dtype(dtype).itemsize
            start, end = at + first * size, at + last * size
            try:
                raw = where.fs.cat_file(where.path, start=start, end=end)
            except Exception as exc:
                raise InputError(f"cannot read input '{where.url}': {describe_error(exc)}") from None
            if len(raw) != end - start:
                raise InputError(f"the tile table at byte {at} of input '{where.url}' ends past the end of the file")
            out.append(np.frombuffer(raw, dtype=dtype)[grid].astype(np.int64))
        return out[0], out[1]


@dataclass(frozen=True)
class RemoteTiffPlan:
    """What :func:`read_remote_tiff` needs: the file, its level, and how its tiles decode."""

    where: Location
    tiff: TiffPlan
    codec: TileCodec | None  # None: read through tifffile in each task
    index: TileIndex | None


def _tile_index(tf: Any, page: Any, tile_cols: int) -> TileIndex | None:
    """Where ``page``'s tile tables lie, or None where their values in the file are not the
    offsets tifffile reads (NDPI keeps the high bits of its offsets elsewhere)."""
    from tifffile import TIFF

    if tf.is_ndpi:
        return None
    found = []
    for code, values in ((324, page.dataoffsets), (325, page.databytecounts)):
        tag = page.tags.get(code)
        fmt = TIFF.DATA_FORMATS.get(tag.dtype, "") if tag is not None else ""
        if fmt[-1:] not in ("H", "I", "Q") or tag.count != len(values) or len(values) == 0:
            return None
        dtype = np.dtype(tf.byteorder + fmt[-1])
        if not np.array_equal(np.asarray(tag.value, dtype=np.int64), np.asarray(values, dtype=np.int64)):
            return None
        found.append((int(tag.valueoffset), dtype.str))
    (oat, odt), (cat, cdt) = found
    return TileIndex(oat, odt, cat, cdt, tile_cols)


def _codec(page: Any) -> TileCodec | None:
    """The decoding parameters of ``page``'s tiles, or None where only tifffile decodes them."""
    from tifffile import TIFF

    dtype = np.dtype(page.dtype).newbyteorder(page.parent.byteorder)
    comp, pred = int(page.compression), int(page.predictor)
    if page.bitspersample != dtype.itemsize * 8 or (comp != 1 and comp not in TIFF.DECOMPRESSORS):
        return None
    if (pred != 1 and pred not in TIFF.UNPREDICTORS) or comp == 50001:  # WebP: alpha may be missing
        return None
    cs = ocs = None
    if comp == 7:
        from tifffile.tifffile import jpeg_decode_colorspace

        cs, ocs = jpeg_decode_colorspace(page.photometric, page.planarconfig, page.extrasamples, page.is_jfif)
    tables = page.jpegtables
    return TileCodec(
        (int(page.tilelength), int(page.tilewidth)),
        int(page.samplesperpixel),
        dtype.str,
        comp,
        pred,
        int(page.fillorder),
        bytes(tables) if tables is not None else None,
        cs,
        ocs,
    )


def open_remote_tiff(
    where: Location, level: int, series: int | None, axes: str | None
) -> tuple[ImageInfo, RemoteTiffPlan]:
    """Describe the level to read of the TIFF at ``where`` from its header alone."""
    name = f"input '{where.url}'"
    fs = where.fs
    try:
        size = int(fs.size(where.path))
        f = fs.open(where.path, "rb", block_size=HEADER_BLOCK, cache_type="readahead")
    except Exception as exc:
        raise InputError(f"cannot read {name}: {describe_error(exc)}") from None
    with f:
        try:
            tf = tifffile.TiffFile(f)
        except Exception as exc:
            raise InputError(f"{name} is not a readable TIFF file: {exc}") from None
        with tf:
            info, plan = describe_tiff(tf, name, where.url, size, level, series, axes)
            codec = index = None
            if plan.tiles:
                page: Any = tf.series[info.series].levels[info.level].pages[0]
                codec = _codec(page)
                if codec is not None:
                    index = _tile_index(tf, page, -(-int(page.imagewidth) // codec.tile[1]))
                if index is None:
                    codec = None
    return info, RemoteTiffPlan(where, plan, codec, index)


def decode_tile(data: Any, codec: TileCodec) -> np.ndarray:
    """One tile's pixels (tile rows, tile cols, samples) in native byte order."""
    import imagecodecs
    from tifffile import TIFF

    th, tw = codec.tile
    if codec.fillorder == 2:
        data = imagecodecs.bitorder_decode(data)
    if codec.compression == 7:
        arr = imagecodecs.jpeg_decode(
            data, tables=codec.jpegtables, colorspace=codec.colorspace, outcolorspace=codec.outcolorspace
        )
        return np.asarray(arr).reshape(th, tw, codec.samples)
    dtype = np.dtype(codec.dtype)
    size = th * tw * codec.samples * dtype.itemsize
    raw = data if codec.compression == 1 else TIFF.DECOMPRESSORS[codec.compression](data, out=size)
    arr = np.frombuffer(raw, dtype=dtype, count=th * tw * codec.samples).reshape(th, tw, codec.samples)
    arr = arr.astype(dtype.newbyteorder("="), copy=True)
    if codec.predictor != 1:
        arr = TIFF.UNPREDICTORS[codec.predictor](arr, axis=-2, out=arr)
    return arr


def _read_tiles(
    where: Location,
    codec: TileCodec,
    dtype: np.dtype,
    r0: int,
    r1: int,
    c0: int,
    c1: int,
    index: TileIndex,
) -> np.ndarray:
    """Rows r0:r1, cols c0:c1, from the tiles that hold them."""
    th, tw = codec.tile
    fs, path = where.fs, where.path
    first = (r0 // th, c0 // tw)
    offsets, counts = index.read(where, range(first[0], -(-r1 // th)), range(first[1], -(-c1 // tw)))
    out = np.zeros((r1 - r0, c1 - c0, codec.samples), dtype=dtype)
    for i in range(offsets.shape[0]):
        for j in range(offsets.shape[1]):
            if not counts[i, j]:
                continue  # a tile never written: zeros, as tifffile fills it
            start = int(offsets[i, j])
            try:
                data = fs.cat_file(path, start=start, end=start + int(counts[i, j]))
            except Exception as exc:
                raise InputError(f"cannot read input '{where.url}': {describe_error(exc)}") from None
            if len(data) != counts[i, j]:
                raise InputError(f"tile at byte {start} of input '{where.url}' ends past the end of the file")
            seg = decode_tile(data, codec)
            ty, tx = first[0] + i, first[1] + j
            y0, x0 = max(r0, ty * th), max(c0, tx * tw)
            y1, x1 = min(r1, (ty + 1) * th), min(c1, (tx + 1) * tw)
            out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = seg[y0 - ty * th : y1 - ty * th, x0 - tx * tw : x1 - tx * tw]
    return out


def _tifffile_source(where: Location, series: int, level: int) -> Any:
    """This thread's tifffile Zarr view of one remote level, opened on first use."""
    cache = getattr(_local, "entries", None)
    if cache is None:
        cache = _local.entries = collections.OrderedDict()
    key = (where.url, series, level)
    if key not in cache:
        f = where.fs.open(where.path, "rb", block_size=HEADER_BLOCK, cache_type="readahead")
        tf = tifffile.TiffFile(f)
        cache[key] = (tf, zarr.open_array(tf.aszarr(series=series, level=level, read_only=True), mode="r"))
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)[1][0].close()
    return cache[key][1]


def _read_region(where: Location, plan: TiffPlan, series: int, level: int, r0: int, r1: int, c0: int, c1: int):
    axes = (plan.row_axis, plan.col_axis, plan.chan_axis)
    key = axis_key(len(plan.source_shape), *axes, slice(r0, r1), slice(c0, c1), slice(None))
    try:
        block = np.asarray(_tifffile_source(where, series, level)[key])
    except Exception as exc:
        raise InputError(f"cannot read input '{where.url}': {describe_error(exc)}") from None
    return np.ascontiguousarray(as_rows_cols_channels(block, *axes))


def read_remote_tiff(
    info: ImageInfo, plan: RemoteTiffPlan, budget: int, chunks: Sequence[int] | None, threads: int | None
) -> da.Array:
    """The level :func:`open_remote_tiff` described, as a dask array (rows, cols, C): one task
    per chunk, which reads its own tiles' offsets."""
    rows, cols, channels = info.shape
    cr, cc = resolve_chunks((rows, cols), info.dtype.itemsize * channels, budget, chunks, plan.tiff.tile, threads)
    name = f"read-remote-tiff-{tokenize(plan.where, info.series, info.level, info.file_bytes, cr, cc)}"
    graph: dict = {}
    row_starts, col_starts = range(0, rows, cr), range(0, cols, cc)
    for i, r0 in enumerate(row_starts):
        r1 = min(rows, r0 + cr)
        for j, c0 in enumerate(col_starts):
            c1 = min(cols, c0 + cc)
            if plan.codec is None:
                graph[(name, i, j, 0)] = (
                    _read_region, plan.where, plan.tiff, info.series, info.level, r0, r1, c0, c1
                )  # fmt: skip
                continue
            graph[(name, i, j, 0)] = (
                _read_tiles, plan.where, plan.codec, info.dtype, r0, r1, c0, c1, plan.index
            )  # fmt: skip
    chunks_ = (
        tuple(min(cr, rows - r) for r in row_starts),
        tuple(min(cc, cols - c) for c in col_starts),
        (channels,),
    )
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    return da.Array(hlg, name, chunks_, meta=np.empty((0, 0, 0), dtype=info.dtype))
