"""TIFF pixels, read a tile (or strip) at a time (:mod:`.tiff_input` opens the file, picks the
series and level and builds the dask array over a :class:`TiffReader`).

One tiled page of interleaved samples is read with tifffile's own tile decoder
(:class:`TileSource`); any other layout through tifffile's Zarr store; one huge uncompressed
strip through :func:`tifffile.memmap`. The dask graph holds a small picklable reader
(:class:`TiffReader`: path, series, level, shape, dtype), never an open file, so the same graph
runs on threads and on process-based ``dask.distributed`` workers.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import tifffile
import zarr

from ..errors import InputError, show_path

#: Open TIFF files each worker thread keeps; enough for a few inputs without leaking handles.
_TIFF_CACHE_SIZE = 4
#: Decode TIFF tiles in zarr's thread pool rather than on zarr's single event-loop thread, so
#: several dask threads reading at once decode in parallel. tifffile decodes inline on that one
#: thread when this is 1; above 1, it also decodes that many tiles of one chunk at once, and a
#: few per core keep the cores busy while others wait for reads.
_TIFF_DECODE_WORKERS = 4 * (os.cpu_count() or 1)

_tiff_cache = threading.local()


def open_tiff_file(path: Any, ndpi: bool | None = None) -> tifffile.TiffFile:
    """tifffile's TiffFile, with NDPI's 64-bit offsets as ``ndpi`` says (decided from the content by
    :func:`bigquant.io.tiff_input.ndpi_layout`) instead of from a ``.ndpi`` extension; None lets
    tifffile decide."""
    return tifffile.TiffFile(path) if ndpi is None else tifffile.TiffFile(path, is_ndpi=ndpi)


def _tiff_source(path: str, series: int, level: int, stamp: tuple[int, int], mode: str, ndpi: bool | None) -> Any:
    """This thread's open view of one TIFF level, opened on first use: tifffile's zarr store
    (``mode`` "zarr"), a memmap ("memmap") or a :class:`TileSource` ("tiles").

    Kept per thread so a thread re-reads no IFDs for its next chunk and never shares a file
    position with another thread; keyed by (mtime, size) so a rewritten file is reopened.
    """
    cache: collections.OrderedDict | None = getattr(_tiff_cache, "entries", None)
    if cache is None:
        cache = _tiff_cache.entries = collections.OrderedDict()
    key = (path, series, level, stamp, mode)
    if key in cache:
        cache.move_to_end(key)
        return cache[key][1]
    for old in [k for k in cache if k[:3] == key[:3]]:
        _close_quietly(cache.pop(old)[0])
    if mode == "memmap":
        kw = {} if ndpi is None else {"is_ndpi": ndpi}
        handle, source = None, tifffile.memmap(path, series=series, level=level, mode="r", **kw)
    else:
        handle = open_tiff_file(path, ndpi)
        try:
            if mode == "tiles":
                source = TileSource(handle.series[series].levels[level].pages[0], handle.filehandle)
            else:
                store = handle.aszarr(series=series, level=level, maxworkers=_TIFF_DECODE_WORKERS)
                source = zarr.open_array(store, mode="r")
        except BaseException:
            handle.close()
            raise
    cache[key] = (handle, source)
    while len(cache) > _TIFF_CACHE_SIZE:
        _close_quietly(cache.popitem(last=False)[1][0])
    return source


def tiles_readable(pages: Sequence[Any], shape: tuple[int, int, int], dtype: np.dtype) -> bool:
    """True when one tiled page holds the level as (rows, cols, samples) tiles that
    :class:`TileSource` can decode one by one."""
    if len(pages) != 1 or pages[0] is None:
        return False
    page = pages[0]
    try:
        return bool(
            page.is_tiled
            and page.imagedepth == 1
            and page.tiledepth == 1
            and (page.planarconfig == 1 or page.samplesperpixel == 1)
            and (page.imagelength, page.imagewidth, page.samplesperpixel) == tuple(shape)
            and np.dtype(page.dtype).newbyteorder("=") == dtype
            # Chroma-subsampled YCbCr tiles decode to fewer samples, but the JPEG codec
            # upsamples its own (Aperio SVS, most scanners): those decode to full tiles.
            and (not page.is_subsampled or page.compression == 7)
        )
    except Exception:  # an attribute this page type lacks: let tifffile's zarr store read it
        return False


class TileSource:
    """One tiled TIFF page read region by region: each tile overlapping the region is read with
    ``os.pread`` and decoded by tifffile's own decoder for the page (``TiffPage.decode``).

    The same tiles and decoders as tifffile's zarr store, without zarr's event loop between the
    reading thread and the decoder, which makes a pass over a large tiled file markedly faster.
    """

    def __init__(self, page: Any, filehandle: Any) -> None:
        self.page = page
        self.fd = filehandle.fileno()
        self.rows, self.cols = page.imagelength, page.imagewidth
        self.th, self.tw = page.tilelength, page.tilewidth
        self.across = -(-self.cols // self.tw)
        self.offsets = page.dataoffsets
        self.counts = page.databytecounts
        self.spp = page.samplesperpixel

    def read(self, rows: slice, cols: slice, dtype: np.dtype) -> np.ndarray:
        th, tw = self.th, self.tw
        out = np.zeros((rows.stop - rows.start, cols.stop - cols.start, self.spp), dtype=dtype)
        decode, tables = self.page.decode, self.page.jpegtables
        for ty in range(rows.start // th, -(-rows.stop // th)):
            for tx in range(cols.start // tw, -(-cols.stop // tw)):
                i = ty * self.across + tx
                if not self.counts[i]:
                    continue  # a tile never written: zeros, as tifffile fills it
                data = os.pread(self.fd, self.counts[i], self.offsets[i])
                if len(data) != self.counts[i]:
                    raise InputError(f"tile {i} ends past the end of the file")
                seg = decode(data, i, jpegtables=tables)[0].reshape(th, tw, self.spp)
                y0, x0 = max(rows.start, ty * th), max(cols.start, tx * tw)
                y1, x1 = min(rows.stop, (ty + 1) * th), min(cols.stop, (tx + 1) * tw)
                out[y0 - rows.start : y1 - rows.start, x0 - cols.start : x1 - cols.start] = seg[
                    y0 - ty * th : y1 - ty * th, x0 - tx * tw : x1 - tx * tw
                ]
        return out


def _close_quietly(handle: Any) -> None:
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.close()


def file_stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def axis_key(
    ndim: int, row_axis: int, col_axis: int, chan_axis: int | None, rows: slice, cols: slice, chans: slice
) -> tuple[Any, ...]:
    """The index into a source array of ``ndim`` axes that takes ``rows``, ``cols`` and ``chans``
    along its row, column and channel axes, and index 0 along any other (all of length 1)."""
    sel: list[Any] = [0] * ndim
    sel[row_axis], sel[col_axis] = rows, cols
    if chan_axis is not None:
        sel[chan_axis] = chans
    return tuple(sel)


def as_rows_cols_channels(block: np.ndarray, row_axis: int, col_axis: int, chan_axis: int | None) -> np.ndarray:
    """A block read with :func:`axis_key` (whose integer indices dropped the other axes), its
    axes put in the order (rows, cols, C); without a channel axis it gets one of length 1."""
    kept = sorted(a for a in (row_axis, col_axis, chan_axis) if a is not None)
    order = [kept.index(row_axis), kept.index(col_axis)]
    if chan_axis is not None:
        order.append(kept.index(chan_axis))
    block = block.transpose(order)
    return block if chan_axis is not None else block[:, :, None]


class TiffReader:
    """Picklable stand-in for one TIFF series level, seen as an array of shape (rows, cols, C).

    :func:`dask.array.from_array` stores this object once in the graph and calls
    ``__getitem__`` once per chunk; each call opens the file through a per-thread cache. The
    object holds only the path and a few integers, so it pickles in a few hundred bytes.

    Parameters
    ----------
    path : str
        The TIFF file.
    series, level : int
        tifffile series index and pyramid level.
    source_shape : tuple of int
        Shape of the level as tifffile's zarr store (or memmap) presents it.
    row_axis, col_axis : int
        Positions of 'Y' and 'X' in ``source_shape``.
    chan_axis : int or None
        Position of the channel axis, or None for greyscale. Any other axis has length 1.
    dtype : numpy.dtype
        Native-order pixel dtype.
    stamp : (int, int)
        File (mtime_ns, size) when opened; a read of a changed file raises InputError.
    mode : {"tiles", "zarr", "memmap"}
        How to read: tile by tile with tifffile's decoder (:class:`TileSource`, one tiled
        page), through tifffile's zarr store (any layout), or with :func:`tifffile.memmap`
        (uncompressed, contiguous data).
    ndpi : bool or None
        How to open the file (:func:`open_tiff_file`): NDPI's 64-bit offsets or not, or tifffile's choice.
    """

    def __init__(
        self,
        path: str,
        series: int,
        level: int,
        source_shape: tuple[int, ...],
        row_axis: int,
        col_axis: int,
        chan_axis: int | None,
        dtype: np.dtype,
        stamp: tuple[int, int],
        mode: str = "zarr",
        ndpi: bool | None = None,
    ) -> None:
        self.path = path
        self.series = series
        self.level = level
        self.source_shape = tuple(int(n) for n in source_shape)
        self.row_axis = row_axis
        self.col_axis = col_axis
        self.chan_axis = chan_axis
        self.dtype = np.dtype(dtype)
        self.stamp = stamp
        self.mode = mode
        self.ndpi = ndpi
        channels = self.source_shape[chan_axis] if chan_axis is not None else 1
        self.shape = (self.source_shape[row_axis], self.source_shape[col_axis], channels)
        self.ndim = 3

    def __dask_tokenize__(self) -> tuple:
        return ("bigquant-tiff", self.path, self.series, self.level, self.stamp, self.mode)

    def __repr__(self) -> str:
        return f"TiffReader({self.path!r}, level={self.level}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        rows, cols, chans = (slice(*k.indices(n)) for k, n in zip(key, self.shape, strict=True))
        where = f"rows {rows.start}:{rows.stop}, cols {cols.start}:{cols.stop} of input {show_path(self.path)}"
        try:
            stamp = file_stamp(self.path)
        except OSError as exc:
            raise InputError(f"cannot read {where}: {exc}") from exc
        if stamp != self.stamp:
            raise InputError(f"input {show_path(self.path)} changed on disk after it was opened; open it again")
        if self.mode == "tiles":
            try:
                source = _tiff_source(self.path, self.series, self.level, self.stamp, self.mode, self.ndpi)
                return source.read(rows, cols, self.dtype)[:, :, chans]
            except Exception as exc:
                raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
        key = axis_key(len(self.source_shape), self.row_axis, self.col_axis, self.chan_axis, rows, cols, chans)
        try:
            source = _tiff_source(self.path, self.series, self.level, self.stamp, self.mode, self.ndpi)
            block = np.asarray(source[key])
        except Exception as exc:
            raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
        block = as_rows_cols_channels(block, self.row_axis, self.col_axis, self.chan_axis)
        if self.chan_axis is None:  # the length-1 channel axis added above, selected like a real one
            block = block[:, :, chans]
        return np.ascontiguousarray(block, dtype=self.dtype)
