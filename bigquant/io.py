"""Image input and output: the only module that knows image file formats.

Readers return lazy dask arrays of shape (rows, cols, C) with one chunk along C:

* TIFF is read a tile (or strip) at a time: one tiled page of interleaved samples with
  tifffile's own tile decoder, any other layout through tifffile's Zarr store. The dask graph
  holds a small picklable reader (path, series, level, shape, dtype), never an open file, so the
  same graph runs on threads and on process-based ``dask.distributed`` workers.
* Zarr (v2 or v3) arrays are read with :func:`dask.array.from_zarr`, which is path based too.
* PNG and JPEG cannot be decoded piecewise; they are decoded whole, and only when the decoded
  pixels fit the memory budget.

Writers stream a dask array (or the lookup ``palette[indices]`` of one) to a tiled BigTIFF (one
horizontal strip in memory at a time) or a Zarr v3 array (one dask chunk per zarr chunk), or write a PNG/JPEG when the image fits in memory.
Every writer builds the output under a temporary sibling name and renames it into place at the
end, so a killed run never leaves a complete-looking file at the target.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import glob
import os
import shutil
import socket
import struct
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.threaded
from dask.base import tokenize
import imagecodecs
import numpy as np
import tifffile
import zarr
from PIL import Image

from .chunking import choose_chunks, chunk_budget_bytes, parse_memory_limit
from .errors import BigquantError, InputError, MemoryBudgetError, OutputError, ParameterError

__all__ = [
    "SUPPORTED_DTYPES",
    "SUPPORTED_INPUT",
    "SUPPORTED_OUTPUT",
    "check_output_path",
    "read_image",
    "write_image",
]

#: Input extensions (case-insensitive); any directory that is a zarr array or group is read too.
SUPPORTED_INPUT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".zarr")
#: Output extensions (case-insensitive).
SUPPORTED_OUTPUT = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".zarr")
#: Pixel dtypes bigquant reads and writes (any byte order; arrays come back in native order).
SUPPORTED_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64")

#: A zarr array whose last axis is longer than this while its first is short looks channels-first.
_MAX_PLAUSIBLE_CHANNELS = 16
#: An unnamed TIFF axis ('Q' unknown, 'I' page sequence) is taken as channels up to this length:
#: grey, grey+alpha, RGB, RGBA written as separate pages. Longer ones are more likely stacks.
_MAX_UNNAMED_CHANNELS = 4
#: tifffile axis codes that mean "channels" (samples, channel, spectral lambda).
_CHANNEL_AXES = "SCE"
_UNNAMED_AXES = "QI"
#: Open TIFF files each worker thread keeps; enough for a few inputs without leaking handles.
_TIFF_CACHE_SIZE = 4
#: Decode TIFF tiles in zarr's thread pool rather than on zarr's single event-loop thread, so
#: several dask threads reading at once decode in parallel. tifffile decodes inline on that one
#: thread when this is 1; above 1, it also decodes that many tiles of one chunk at once.
#: Measured on 2 cores (0.25 Gpx deflate mosaic, 512-px tiles): 1.69 s with 2, 1.35 s with 8.
_TIFF_DECODE_WORKERS = 4 * (os.cpu_count() or 1)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Decoded channels per PNG colour type (IHDR byte 9), before a tRNS chunk adds alpha.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_JPEG_QUALITY = 95

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _fmt_bytes(n: int | float) -> str:
    """``3221225472 -> '3.0 GiB'``: the units --memory-limit accepts, one decimal."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _check_dtype(dtype: Any, where: str) -> np.dtype:
    """Return the native-order dtype, or raise InputError naming it and the supported list."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InputError(
            f"{where} has dtype {dtype!r}, which bigquant does not support; supported: "
            f"{', '.join(SUPPORTED_DTYPES)}"
        ) from exc
    native = dt.newbyteorder("=") if dt.kind in "uif" else dt
    if native.name not in SUPPORTED_DTYPES:
        raise InputError(
            f"{where} has dtype {dt}, which bigquant does not support; supported: "
            f"{', '.join(SUPPORTED_DTYPES)}"
        )
    return native


def _check_image_shape(shape: tuple[int, ...], where: str, axes: str | None = None) -> None:
    """Require (rows, cols) or (rows, cols, C) with no zero-length axis."""
    with_axes = f" (axes {axes!r})" if axes else ""
    if len(shape) not in (2, 3):
        raise InputError(
            f"{where} has shape {tuple(shape)}{with_axes}; expected (rows, cols) or (rows, cols, channels)"
        )
    if 0 in shape:
        raise InputError(f"{where} has shape {tuple(shape)}{with_axes}: it holds no pixels")


def validate_image(shape: tuple[int, ...], dtype: Any, where: str = "image") -> np.dtype:
    """Check an image's shape and dtype before any work; returns the native dtype.

    Raises
    ------
    InputError
        Not (rows, cols) or (rows, cols, C); an axis of length zero; or an unsupported dtype
        (bool, complex, object, ...). The message names ``where``, the value and the rule.
    """
    _check_image_shape(tuple(shape), where)
    return _check_dtype(dtype, where)


def _resolve_chunks(
    shape: tuple[int, int],
    bytes_per_pixel: int,
    budget: int,
    chunks: Sequence[int] | None,
    tile: tuple[int, int] | None,
    threads: int | None,
) -> tuple[int, int]:
    """The caller's (rows, cols) chunk shape, or one chosen from the budget and the source's tile."""
    if chunks is None:
        return choose_chunks(shape, bytes_per_pixel, budget, tile=tile, threads=threads)
    try:
        cr, cc = (int(c) for c in chunks)
        ok = len(tuple(chunks)) == 2 and cr > 0 and cc > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(f"chunks {chunks!r} is not a (rows, cols) pair of positive integers")
    return cr, cc


def _budget_error(where: str, need: int, budget: int) -> MemoryBudgetError:
    return MemoryBudgetError(
        f"{where} decodes to {_fmt_bytes(need)}, more than the memory budget {_fmt_bytes(budget)} "
        "allows; convert it to a tiled TIFF or Zarr (or raise --memory-limit)"
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_image(
    path: PathLike,
    *,
    level: int = 0,
    memory_limit: int | str | None = None,
    chunks: tuple[int, int] | None = None,
    threads: int | None = None,
) -> da.Array:
    """Open an image lazily as a dask array of shape (rows, cols, C).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` or ``.zarr`` file (case-insensitive),
        or any directory that is a zarr array, or a zarr group holding exactly one array (give
        ``group.zarr/name`` to pick one of several). Of a TIFF, the first series (tifffile's
        ``series[0]``) is read; axes 'YX', 'YXS', 'SYX' and one channel-like axis ('C', 'S',
        or up to 4 unnamed pages 'Q'/'I') are accepted, any other axis longer than 1 is not.
    level : int, default 0
        Pyramid level of a pyramidal TIFF; 0 is full resolution. Other formats have level 0 only.
    memory_limit : int or str, optional
        Job memory budget (``"2GiB"``, bytes, default ``chunking.DEFAULT_MEMORY_LIMIT``). Sets the
        chunk shape, and PNG/JPEG inputs must decode to at most half of it.
    chunks : (int, int), optional
        Explicit (rows, cols) chunk shape, used as given. By default chunks come from
        :func:`bigquant.chunking.choose_chunks`: whole multiples of the TIFF tile (or strip) or
        zarr chunk, so every source tile is decoded by exactly one task.
    threads : int, optional
        Worker threads sharing the budget (default: CPU count); only used to choose chunks.

    Returns
    -------
    dask.array.Array of shape (rows, cols, C)
        C >= 1 (greyscale is C=1; alpha stays as the last channel), one chunk along C, in native
        byte order, dtype one of :data:`SUPPORTED_DTYPES`. TIFF graphs hold only picklable,
        small objects, so they run on process-based distributed workers.

    Raises
    ------
    InputError
        The path does not exist, is not a readable image of a supported format, is damaged,
        has an unsupported dtype, no pixels, or more than three dimensions.
    MemoryBudgetError
        A PNG/JPEG, or one TIFF strip that cannot be read piecewise, does not fit the budget.
    ParameterError
        ``level``, ``chunks`` or ``memory_limit`` is invalid, or ``level`` is past the last level.
    """
    budget = parse_memory_limit(memory_limit)
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 0:
        raise ParameterError(f"level {level!r} is not a non-negative integer")
    level = int(level)
    p = Path(path)
    if not p.exists():
        raise InputError(f"input '{path}' does not exist")
    kind = _input_kind(p)
    if kind != "tiff" and level != 0:
        raise ParameterError(f"level {level} was asked for, but input '{p}' has 1 level (only level 0)")
    if kind == "tiff":
        return _read_tiff(p, level, budget, chunks, threads)
    if kind == "zarr":
        return _read_zarr(p, budget, chunks, threads)
    warm_up = _start_kernel_warm_up()
    try:
        arr = _decode_png(p, budget) if kind == "png" else _decode_jpeg(p, budget)
    finally:
        # Never left running past this call (it would still be loading numba code while the
        # caller goes on, or after a bad input has already been reported).
        warm_up.join()
    if arr.ndim == 2:
        arr = arr[:, :, None]
    _check_image_shape(arr.shape, f"input '{p}'")
    _check_dtype(arr.dtype, f"input '{p}'")
    cr, cc = _resolve_chunks(arr.shape[:2], arr.itemsize * arr.shape[2], budget, chunks, None, threads)
    # name=False: a random graph name instead of hashing every decoded byte (0.06 s at 15 Mpx)
    return da.from_array(arr, chunks=(cr, cc, arr.shape[2]), name=False)


def _input_kind(p: Path) -> str:
    """'tiff', 'zarr', 'png' or 'jpeg' from the extension, or 'zarr' for any directory."""
    if p.is_dir():
        return "zarr"
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix == ".png":
        return "png"
    if suffix in (".jpg", ".jpeg"):
        return "jpeg"
    if suffix == ".zarr":
        raise InputError(f"input '{p}' is a file; a .zarr input must be a directory (a zarr array or group)")
    raise InputError(
        f"input '{p}' has extension {p.suffix or '(none)'!r}, which bigquant cannot read; supported: "
        f"{', '.join(SUPPORTED_INPUT)} or a zarr directory"
    )


# --- PNG / JPEG ------------------------------------------------------------------------------


def _png_header(p: Path) -> tuple[int, int, int, int]:
    """(rows, cols, decoded channels, itemsize) from the chunks before the first IDAT.

    Pillow reports 16-bit RGB(A) PNGs as 8-bit modes, so the header is parsed here to get the
    real sample depth; a tRNS chunk adds an alpha channel on decoding.
    """
    where = f"input '{p}'"
    with open(p, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            if p.stat().st_size == 0:
                raise InputError(f"{where} is empty (0 bytes)")
            raise InputError(f"{where} is not a PNG file (its first bytes are not the PNG signature)")
        ihdr = None
        transparent = False
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"{where} is truncated: it ends before any image data")
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"IHDR":
                data = f.read(13)
                if len(data) < 13:
                    raise InputError(f"{where} is truncated inside its IHDR header")
                ihdr = struct.unpack(">IIBB", data[:10])
                f.seek(length - 13 + 4, os.SEEK_CUR)
            elif ctype in (b"IDAT", b"IEND"):
                break
            else:
                transparent |= ctype == b"tRNS"
                f.seek(length + 4, os.SEEK_CUR)
    if ihdr is None:
        raise InputError(f"{where} has no IHDR header chunk before its image data")
    cols, rows, depth, colour = ihdr
    if colour not in _PNG_CHANNELS:
        raise InputError(f"{where} has PNG colour type {colour}, which is not valid (0, 2, 3, 4 or 6)")
    channels = _PNG_CHANNELS[colour] + (1 if transparent and colour in (0, 2, 3) else 0)
    return rows, cols, channels, 2 if depth == 16 else 1


#: Set by the ``bigquant`` command for its own process: the warm-up skips numba's BLAS probe
#: (see :func:`bigquant._kernels.warm_up`). A library user's other threads might import
#: scipy.linalg meanwhile, so it stays off in-process.
WARM_UP_WITHOUT_BLAS = False


def _warm_up_quietly() -> None:
    try:
        from . import _kernels

        _kernels.warm_up(without_blas=WARM_UP_WITHOUT_BLAS)
    except Exception:  # pragma: no cover - the real first call will raise it again, in context
        pass


def _start_kernel_warm_up() -> threading.Thread:
    """Import numba and set it up (:func:`bigquant._kernels.warm_up`) on a thread while an image
    decodes: about 0.35 s that a one-shot command would otherwise spend after the decode. (The
    modules import ``_kernels`` where they use it, so importing bigquant does not import numba.)
    Returns the started thread; the caller joins it.
    """
    thread = threading.Thread(target=_warm_up_quietly, name="bigquant-warm-up", daemon=True)
    thread.start()
    return thread


def _decode_png(p: Path, budget: int) -> np.ndarray:
    # imagecodecs (libpng) keeps 16-bit RGB(A) as uint16, which Pillow and imageio downcast to 8 bits,
    # expands palettes to RGB(A), and raises on truncated data.
    rows, cols, channels, itemsize = _png_header(p)
    need = rows * cols * channels * itemsize
    if need > budget // 2:
        raise _budget_error(f"input '{p}'", need, budget)
    try:
        return imagecodecs.png_decode(p.read_bytes())
    except Exception as exc:
        raise InputError(f"cannot decode input '{p}': {exc}") from exc


def _decode_jpeg(p: Path, budget: int) -> np.ndarray:
    # Pillow, not imagecodecs: libjpeg-turbo via imagecodecs fills a truncated JPEG with grey
    # without complaint, while Pillow raises "image file is truncated".
    where = f"input '{p}'"
    if p.stat().st_size == 0:
        raise InputError(f"{where} is empty (0 bytes)")
    with warnings.catch_warnings():
        # The budget check below is the guard that matters; Pillow's warning would be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except Image.DecompressionBombError as exc:
            raise MemoryBudgetError(
                f"{where} is too large to decode in memory ({exc}); convert it to a tiled TIFF or Zarr"
            ) from exc
        except Exception as exc:
            raise InputError(f"{where} is not a readable JPEG file: {exc}") from exc
        with im:
            if im.format != "JPEG":
                raise InputError(
                    f"{where} holds a {im.format} image, not JPEG; give it the matching extension"
                )
            cols, rows = im.size
            channels = 1 if im.mode in ("1", "L") else 3
            need = rows * cols * channels
            if need > budget // 2:
                raise _budget_error(where, need, budget)
            try:
                im.load()
                # CMYK and YCbCr JPEGs become RGB; 'L' stays one channel.
                if im.mode not in ("L", "RGB"):
                    im = im.convert("L" if channels == 1 else "RGB")
                return np.asarray(im)
            except Exception as exc:
                raise InputError(f"cannot decode {where}: {exc}") from exc


# --- TIFF ------------------------------------------------------------------------------------

_tiff_cache = threading.local()


def _tiff_source(path: str, series: int, level: int, stamp: tuple[int, int], mode: str) -> Any:
    """This thread's open view of one TIFF level, opened on first use: tifffile's zarr store
    (``mode`` "zarr"), a memmap ("memmap") or a :class:`_TileSource` ("tiles").

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
        handle, source = None, tifffile.memmap(path, series=series, level=level, mode="r")
    else:
        handle = tifffile.TiffFile(path)
        try:
            if mode == "tiles":
                source = _TileSource(handle.series[series].levels[level].pages[0], handle.filehandle)
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


def _tiles_readable(pages: Sequence[Any], shape: tuple[int, int, int], dtype: np.dtype) -> bool:
    """True when one tiled page holds the level as (rows, cols, samples) tiles that
    :class:`_TileSource` can decode one by one."""
    if len(pages) != 1 or pages[0] is None:
        return False
    page = pages[0]
    try:
        return bool(
            page.is_tiled
            and page.imagedepth == 1 and page.tiledepth == 1
            and (page.planarconfig == 1 or page.samplesperpixel == 1)
            and (page.imagelength, page.imagewidth, page.samplesperpixel) == tuple(shape)
            and np.dtype(page.dtype).newbyteorder("=") == dtype
            and not page.is_subsampled
        )
    except Exception:  # an attribute this page type lacks: let tifffile's zarr store read it
        return False


class _TileSource:
    """One tiled TIFF page read region by region: each tile overlapping the region is read with
    ``os.pread`` and decoded by tifffile's own decoder for the page (``TiffPage.decode``).

    The same tiles and decoders as tifffile's zarr store, without zarr's event loop between the
    reading thread and the decoder: measured on 2 cores, a pass over a 1-gigapixel Deflate
    mosaic took 2.6 s this way against 4.2 s through the zarr store.
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
                out[y0 - rows.start:y1 - rows.start, x0 - cols.start:x1 - cols.start] = \
                    seg[y0 - ty * th:y1 - ty * th, x0 - tx * tw:x1 - tx * tw]
        return out


def _close_quietly(handle: Any) -> None:
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.close()


def _file_stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


class _TiffReader:
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
        How to read: tile by tile with tifffile's decoder (:class:`_TileSource`, one tiled
        page), through tifffile's zarr store (any layout), or with :func:`tifffile.memmap`
        (uncompressed, contiguous data).
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
        channels = self.source_shape[chan_axis] if chan_axis is not None else 1
        self.shape = (self.source_shape[row_axis], self.source_shape[col_axis], channels)
        self.ndim = 3

    def __dask_tokenize__(self) -> tuple:
        return ("bigquant-tiff", self.path, self.series, self.level, self.stamp, self.mode)

    def __repr__(self) -> str:
        return f"_TiffReader({self.path!r}, level={self.level}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        rows, cols, chans = (slice(*k.indices(n)) for k, n in zip(key, self.shape, strict=True))
        where = f"rows {rows.start}:{rows.stop}, cols {cols.start}:{cols.stop} of input '{self.path}'"
        try:
            stamp = _file_stamp(self.path)
        except OSError as exc:
            raise InputError(f"cannot read {where}: {exc}") from exc
        if stamp != self.stamp:
            raise InputError(f"input '{self.path}' changed on disk after it was opened; open it again")
        if self.mode == "tiles":
            try:
                source = _tiff_source(self.path, self.series, self.level, self.stamp, self.mode)
                return source.read(rows, cols, self.dtype)[:, :, chans]
            except Exception as exc:
                raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
        sel: list[Any] = [0] * len(self.source_shape)  # any other axis has length 1
        sel[self.row_axis], sel[self.col_axis] = rows, cols
        if self.chan_axis is not None:
            sel[self.chan_axis] = chans
        try:
            source = _tiff_source(self.path, self.series, self.level, self.stamp, self.mode)
            block = np.asarray(source[tuple(sel)])
        except Exception as exc:
            raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
        kept = sorted(a for a in (self.row_axis, self.col_axis, self.chan_axis) if a is not None)
        order = [kept.index(self.row_axis), kept.index(self.col_axis)]
        if self.chan_axis is not None:
            order.append(kept.index(self.chan_axis))
        block = block.transpose(order)
        if self.chan_axis is None:
            block = block[:, :, None][:, :, chans]
        return np.ascontiguousarray(block, dtype=self.dtype)


def _tiff_axes(where: str, shape: tuple[int, ...], axes: str) -> tuple[int, int, int | None]:
    """Positions of rows, cols and channels in a tifffile series, or InputError."""
    if "Y" not in axes or "X" not in axes:
        raise InputError(
            f"{where} has shape {shape} with axes {axes!r}; expected rows 'Y' and columns 'X'"
        )
    extra = [(i, a) for i, a in enumerate(axes) if a not in "YX" and shape[i] > 1]
    if len(extra) > 1:
        raise InputError(
            f"{where} has shape {shape} with axes {axes!r}: more than 3 dimensions; bigquant "
            "reads one 2-D image with channels; extract one plane first"
        )
    if not extra:
        return axes.index("Y"), axes.index("X"), None
    i, a = extra[0]
    if a in _CHANNEL_AXES or (a in _UNNAMED_AXES and shape[i] <= _MAX_UNNAMED_CHANNELS):
        return axes.index("Y"), axes.index("X"), i
    raise InputError(
        f"{where} has shape {shape} with axes {axes!r}: its {a!r} axis of length {shape[i]} is a "
        "stack of images, not channels; extract one plane first"
    )


def _tiff_data_end(pages: Sequence[Any]) -> int:
    """The largest byte offset any strip or tile of ``pages`` extends to."""
    end = 0
    for page in pages:
        if page is None:
            continue
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        if offsets.size:
            end = max(end, int((offsets + counts).max()))
    return end


def _read_tiff(
    p: Path, level: int, budget: int, chunks: Sequence[int] | None, threads: int | None
) -> da.Array:
    where = f"input '{p}'"
    try:
        tf = tifffile.TiffFile(p)
    except Exception as exc:
        empty = " (0 bytes)" if p.stat().st_size == 0 else ""
        raise InputError(f"{where}{empty} is not a readable TIFF file: {exc}") from exc
    series_index = 0
    try:
        with tf:
            if not tf.series:
                raise InputError(f"{where} holds no images")
            series = tf.series[series_index]
            levels = series.levels
            if level >= len(levels):
                raise ParameterError(
                    f"level {level} is out of range: {where} has {len(levels)} level(s) "
                    f"(0..{len(levels) - 1})"
                )
            lvl = levels[level]
            shape, axes = tuple(int(n) for n in lvl.shape), str(lvl.axes)
            row_axis, col_axis, chan_axis = _tiff_axes(where, shape, axes)
            dtype = _check_dtype(lvl.dtype, where)
            rows, cols = shape[row_axis], shape[col_axis]
            channels = shape[chan_axis] if chan_axis is not None else 1
            _check_image_shape((rows, cols, channels), where, axes)
            size = p.stat().st_size
            end = _tiff_data_end(lvl.pages)
            if end > size:
                raise InputError(
                    f"{where} is truncated: its image data extends to byte {end} but the file has "
                    f"{size} bytes"
                )
            store = tf.aszarr(series=series_index, level=level)
            source_chunks = zarr.open_array(store, mode="r").chunks
            contiguous = lvl.dataoffset is not None
            tiles = _tiles_readable(lvl.pages, (rows, cols, channels), dtype)
    except BigquantError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc

    itemsize = dtype.itemsize
    tile = (source_chunks[row_axis], source_chunks[col_axis])
    tile_bytes = tile[0] * tile[1] * channels * itemsize
    mode = "tiles" if tiles else "zarr"
    if tile_bytes > chunk_budget_bytes(budget, threads):
        if contiguous:
            # One huge uncompressed strip (tifffile's default layout): a memmap reads any rows
            # without decoding the whole strip per chunk.
            mode, tile = "memmap", None
        elif tile_bytes > budget // 2:
            raise MemoryBudgetError(
                f"{where} stores its pixels in blocks of {tile[0]} x {tile[1]} pixels "
                f"({_fmt_bytes(tile_bytes)} each), more than half the memory budget "
                f"{_fmt_bytes(budget)}; rewrite it as a tiled TIFF (e.g. 256 x 256 tiles) or raise "
                "--memory-limit"
            )
    reader = _TiffReader(
        str(p.absolute()), series_index, level, shape, row_axis, col_axis, chan_axis, dtype,
        _file_stamp(str(p)), mode,
    )
    cr, cc = _resolve_chunks((rows, cols), itemsize * channels, budget, chunks, tile, threads)
    return da.from_array(
        reader,
        chunks=(cr, cc, channels),
        lock=False,
        asarray=True,
        fancy=False,
        meta=np.empty((0, 0, 0), dtype=dtype),
        name=f"read-tiff-{tokenize(reader, cr, cc)}",
    )


# --- Zarr ------------------------------------------------------------------------------------


def _read_zarr(p: Path, budget: int, chunks: Sequence[int] | None, threads: int | None) -> da.Array:
    where = f"input '{p}'"
    if not p.is_dir():
        raise InputError(f"{where} is a file; a .zarr input must be a directory (a zarr array or group)")
    if not any((p / m).exists() for m in ("zarr.json", ".zarray", ".zgroup")):
        raise InputError(
            f"{where} is a directory but not a zarr array or group (no zarr.json, .zarray or .zgroup)"
        )
    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:
        raise InputError(
            f"{where} is not a readable zarr array or group: {type(exc).__name__}: {exc}"
        ) from exc
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
    _check_image_shape(shape, where)
    dtype = _check_dtype(arr.dtype, where)
    if len(shape) == 3 and shape[2] > _MAX_PLAUSIBLE_CHANNELS and shape[0] <= 4:
        raise InputError(
            f"{where} has shape {shape}, which looks channels-first (C, rows, cols); bigquant reads "
            "zarr as (rows, cols, C): save it with numpy.moveaxis(a, 0, -1)"
        )
    channels = shape[2] if len(shape) == 3 else 1
    # Align to shards where there are any: a shard is the unit a reader fetches in one request.
    tile = tuple(getattr(arr, "shards", None) or arr.chunks)[:2]
    cr, cc = _resolve_chunks(shape[:2], dtype.itemsize * channels, budget, chunks, tile, threads)
    # Absolute: the graph may run on workers whose working folder is not ours.
    x = da.from_zarr(os.path.abspath(p), component=component, chunks=(cr, cc) + shape[2:])
    if x.dtype != dtype:
        x = x.astype(dtype)  # big-endian zarr v2 data
    if x.ndim == 2:
        x = x[:, :, None]
    return x


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def check_output_path(
    path: PathLike, *, overwrite: bool, extensions: Sequence[str] = SUPPORTED_OUTPUT
) -> Path:
    """Validate an output path before any work is done; writes nothing.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or ``.zarr`` directory).
    overwrite : bool
        Whether an existing output may be replaced.
    extensions : sequence of str
        Allowed extensions, lower case with the dot (default :data:`SUPPORTED_OUTPUT`).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    ParameterError
        The extension is not one of ``extensions``.
    OutputError
        The output exists and ``overwrite`` is False, or its folder is missing or not writable.
    """
    p = Path(path)
    if p.suffix.lower() not in tuple(e.lower() for e in extensions):
        raise ParameterError(
            f"output '{path}' has extension {p.suffix or '(none)'!r}; supported: {', '.join(extensions)}"
        )
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise OutputError(f"output '{path}' exists; pass --overwrite to replace it")
    if p.is_dir() and not p.is_symlink() and not (
        p.suffix.lower() == ".zarr" and any((p / m).exists() for m in ("zarr.json", ".zarray", ".zgroup"))
    ):
        # --overwrite replaces an image (a file, or a zarr folder), never an unrelated folder.
        raise OutputError(f"output '{path}' is a folder that is not a zarr image; --overwrite will not "
                          "replace it: remove it or choose another output")
    check_output_folder(p)
    return p


# --------------------------------------------------------------------------------------------
# Output staging: write under a hidden sibling name, rename into place at the end
# --------------------------------------------------------------------------------------------

#: This machine, as written into staging names (other hosts sharing a file system keep theirs).
_HOST = "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname()) or "host"


def check_output_folder(target: PathLike) -> Path:
    """Check that the folder of ``target`` exists and that we can really create entries in it.

    ``os.access`` is not enough: as root it says yes to read-only bind mounts, ``/proc`` and
    ``/sys``. So an empty hidden folder is created and removed again as a probe. Returns the
    folder.

    Raises
    ------
    OutputError
        The folder does not exist, is a file, or refuses new entries (the message says why).
    """
    t = Path(target)
    parent = t.parent
    if not parent.exists():
        raise OutputError(f"folder '{parent}' of output '{t}' does not exist")
    if not parent.is_dir():
        raise OutputError(f"folder '{parent}' of output '{t}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"folder '{parent}' of output '{t}' is not writable")
    probe = staging_path(t, "probe")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(
            f"folder '{parent}' of output '{t}' is not writable ({exc.strerror or type(exc).__name__})"
        ) from None
    return parent


def staging_path(target: PathLike, kind: str = "partial") -> Path:
    """A hidden sibling ``.NAME.KIND-PID-HOST-<random hex>`` of ``target`` for this process.

    ``kind`` is ``partial`` (being written), ``old`` (a replaced output on its way out) or
    ``probe``. The PID and host let :func:`clean_stale_staging` tell a killed run's leftovers
    from those of a run still going on, here or on another machine sharing the folder.
    """
    t = Path(target)
    return t.with_name(f".{t.name}.{kind}-{os.getpid()}-{_HOST}-{uuid.uuid4().hex[:8]}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_staging(target: PathLike) -> list[Path]:
    """Remove the hidden siblings of ``target`` left by killed runs on this machine.

    Only entries whose process is gone are removed; a run still writing (here or on another
    host) keeps its folder. Returns what was removed.
    """
    t = Path(target)
    removed = []
    for kind in ("partial", "old", "probe"):
        prefix = f".{t.name}.{kind}-"
        try:
            entries = list(t.parent.glob(glob.escape(prefix) + "*"))
        except OSError:
            continue
        for entry in entries:
            pid_s, _, rest = entry.name[len(prefix):].partition("-")
            host = rest.rpartition("-")[0]  # '' for names without a host part
            if not pid_s.isdigit() or host not in ("", _HOST) or _pid_alive(int(pid_s)):
                continue
            _remove(entry)
            removed.append(entry)
    return removed


def write_image(
    image: da.Array | np.ndarray,
    path: PathLike,
    *,
    overwrite: bool = False,
    memory_limit: int | str | None = None,
    tile: tuple[int, int] = (256, 256),
    compression: str | None = "zlib",
    compression_level: int | None = None,
    palette: np.ndarray | None = None,
) -> Path:
    """Stream an image of shape (rows, cols, C) to a TIFF, Zarr, PNG or JPEG file.

    Parameters
    ----------
    image : dask.array.Array or numpy.ndarray of shape (rows, cols, C) or (rows, cols)
        Pixels, dtype one of :data:`SUPPORTED_DTYPES`. Dask arrays are computed piecewise.
    path : str or os.PathLike
        Output; the extension picks the format:

        * ``.tif``/``.tiff``: tiled BigTIFF. The array is computed one horizontal strip at a time
          (each strip at most 1/8 of the budget, at least one tile row; one strip is computed
          while the previous one is compressed). Strips follow the dask row chunks where a row
          of chunks fits, so no chunk is computed twice; taller row chunks are split, and then
          recomputed once per piece.
        * ``.zarr``: zarr v3 array, one zarr chunk per dask chunk (irregular chunks are first
          rechunked to the first chunk's shape), zstd compressed.
        * ``.png`` (uint8/uint16, 1-4 channels) and ``.jpg``/``.jpeg`` (uint8, 1 or 3 channels,
          quality 95): computed whole, so only when the image needs at most half the budget.
    overwrite : bool, default False
        Replace an existing output, once the new one is complete.
    memory_limit : int or str, optional
        Job memory budget (default ``chunking.DEFAULT_MEMORY_LIMIT``).
    tile : (int, int), default (256, 256)
        TIFF tile (rows, cols), multiples of 16 as TIFF requires. Not used by other formats.
    compression : str or None, default "zlib"
        TIFF compression (a tifffile name: "zlib", "lzw", "zstd", "jpeg", ...; None for none).
        For ``.zarr``, None stores raw chunks and anything else means zstd. PNG is always
        deflate-compressed and JPEG always lossy; they do not use it.
    compression_level : int, optional
        Level of the TIFF compression, or of Zarr's zstd. Default: 1 for TIFF "zlib" (the
        fastest Deflate: on quantized images about 3x faster than level 6 for files about 12 %
        larger), the codec's own default otherwise (zstd: 3).
    palette : ndarray of shape (K, C), optional
        Write ``palette[image]`` instead: ``image`` is then an integer (rows, cols) array of
        indices below K (a store's labels). A TIFF then reads only the indices in strips and
        looks each tile up in tifffile's compression threads, in parallel with compression.

    Returns
    -------
    pathlib.Path
        The output path.

    Raises
    ------
    ParameterError
        Unknown extension, bad tile or compression, or a dtype/channel count the format cannot hold.
    OutputError
        The output exists and ``overwrite`` is False, or its folder is missing or not writable.
    MemoryBudgetError
        A PNG/JPEG output that does not fit the memory budget.
    """
    budget = parse_memory_limit(memory_limit)
    p = check_output_path(path, overwrite=overwrite)
    suffix = p.suffix.lower()
    indices = None
    if palette is not None:
        from .reconstruction import reconstruct

        indices = image if isinstance(image, da.Array) else da.from_array(np.asarray(image))
        palette = np.asarray(palette)
        image = reconstruct(indices, palette)
    image = _as_image(image)
    if suffix in (".tif", ".tiff"):
        options = _tiff_options(image, tile, compression, compression_level)
        if indices is None:
            tiles = _iter_tiles(image, options["tile"], budget // 8)
        else:
            tiles = _iter_tiles(indices[..., None], options["tile"], budget // 8, palette)
        with _staged(p, overwrite) as tmp:
            # tifffile compresses tiles on half the cores by default; all of them keep up better.
            tifffile.imwrite(tmp, data=tiles, maxworkers=os.cpu_count() or 1, **options)
    elif suffix == ".zarr":
        with _staged(p, overwrite) as tmp:
            _write_zarr(image, tmp, compression, compression_level)
    else:
        arr = _compute_small(image, p, budget, jpeg=suffix != ".png")
        with _staged(p, overwrite) as tmp:
            if suffix == ".png":
                tmp.write_bytes(imagecodecs.png_encode(arr[:, :, 0] if arr.shape[2] == 1 else arr))
            else:
                Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(
                    tmp, format="JPEG", quality=_JPEG_QUALITY
                )
    return p


#: Suffix that makes ``decode`` write an OME-Zarr (NGFF 0.5) image with a labels group.
OME_ZARR = ".ome.zarr"
#: OME-Zarr pyramids stop when the next level's shorter side would fall below this.
OME_MIN_SIDE = 256


def is_ome_zarr(path: PathLike) -> bool:
    """True if ``path`` names an OME-Zarr output (``*.ome.zarr``)."""
    return str(path).lower().rstrip("/").endswith(OME_ZARR)


def _display_rgba(codebook: np.ndarray, data_range: tuple[float, float] | None) -> list[list[int]]:
    """RGBA 0-255 colours of codebook entries for viewers (grey for C=1, alpha kept for C=4)."""
    cb = np.asarray(codebook, dtype=np.float64)
    if cb.dtype.kind != "u" or np.asarray(codebook).dtype != np.uint8:
        lo, hi = data_range if data_range else (float(cb.min()), float(cb.max()))
        cb = (cb - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(cb)
    cb = np.clip(np.rint(cb), 0, 255).astype(int)
    c = cb.shape[1]
    rgb = np.repeat(cb[:, :1], 3, axis=1) if c < 3 else cb[:, :3]
    alpha = cb[:, 3:4] if c >= 4 else np.full((len(cb), 1), 255)
    return np.concatenate([rgb, alpha], axis=1).tolist()


def write_ome_zarr(
    image: da.Array,
    labels: da.Array,
    codebook: np.ndarray,
    path: PathLike,
    *,
    overwrite: bool = False,
    data_range: tuple[float, float] | None = None,
    label_name: str = "quantized",
) -> Path:
    """Write an OME-Zarr (NGFF 0.5, Zarr v3) multiscale image plus its labels, for napari & co.

    The image is the reconstruction with axes (c, y, x); ``labels/<label_name>`` holds the labels
    (y, x) with as many resolution levels as the image (halving until the shorter side would
    drop below :data:`OME_MIN_SIDE`) and ``image-label`` ``colors`` listing every codebook index,
    0 included, with its colour. Written with ome-zarr-py's writer, level by level from the lazy
    arrays, into a hidden sibling that is renamed into place.

    Parameters
    ----------
    image : dask array of shape (rows, cols, C)
    labels : dask array of shape (rows, cols), uint8 or uint16
    codebook : ndarray of shape (K, C)
    path : path ending in ``.ome.zarr``
    data_range : (float, float), optional
        Value range that maps to 0-255 in the label colours of a non-uint8 codebook.
    """
    try:
        from ome_zarr.format import FormatV05
        from ome_zarr.writer import write_image as ome_write_image
        from ome_zarr.writer import write_labels as ome_write_labels
    except ImportError as exc:
        raise ParameterError("writing OME-Zarr needs the ome-zarr package: pip install 'bigquant[ome]'") from exc
    p = check_output_path(path, overwrite=overwrite)
    rows, cols = image.shape[:2]
    factors = []
    f = 2
    while min(rows, cols) // f >= OME_MIN_SIDE:
        factors.append(f)
        f *= 2
    colors = [{"label-value": i, "rgba": rgba} for i, rgba in enumerate(_display_rgba(codebook, data_range))]
    cyx = image.transpose(2, 0, 1)
    ch = (cyx.shape[0], image.chunks[0][0], image.chunks[1][0])
    with _staged(p, overwrite) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            ome_write_image(cyx, root, scale_factors=factors, axes="cyx", fmt=FormatV05(),
                            storage_options={"chunks": ch})
            ome_write_labels(labels, root, name=label_name, scaler=None, scale_factors=factors, axes="yx",
                             fmt=FormatV05(),
                             label_metadata={"colors": colors, "source": {"image": "../../"}},
                             storage_options={"chunks": ch[1:]})
    return p


def _as_image(image: da.Array | np.ndarray) -> da.Array:
    """A (rows, cols, C) dask array with a supported dtype, or ParameterError."""
    if not isinstance(image, da.Array):
        image = np.asarray(image)
        image = da.from_array(image, chunks=image.shape)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or 0 in image.shape:
        raise ParameterError(f"image of shape {image.shape} is not (rows, cols, C) with pixels")
    try:
        dtype = _check_dtype(image.dtype, "image")
    except InputError as exc:
        raise ParameterError(str(exc)) from None
    if image.dtype != dtype:
        image = image.astype(dtype)
    return image


#: Deflate level of TIFF outputs unless one is given: libdeflate's fastest.
TIFF_ZLIB_LEVEL = 1


def _check_level(level: Any) -> int | None:
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise ParameterError(f"compression level {level!r} is not an integer")
    return int(level)


def _tiff_options(image: da.Array, tile: Sequence[int], compression: str | None,
                  level: int | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`tifffile.imwrite` for a tiled BigTIFF of ``image``."""
    try:
        th, tw = (int(t) for t in tile)
    except (TypeError, ValueError):
        raise ParameterError(f"tile {tile!r} is not a (rows, cols) pair of integers") from None
    if th <= 0 or tw <= 0 or th % 16 or tw % 16:
        raise ParameterError(f"tile {tile!r} must be positive multiples of 16 (a TIFF requirement)")
    rows, cols, channels = image.shape
    if compression is not None:
        name = str(compression).upper()
        if name != "ZLIB" and name not in tifffile.COMPRESSION.__members__:
            raise ParameterError(
                f"compression {compression!r} is not a TIFF compression tifffile knows "
                "(e.g. 'zlib', 'lzw', 'zstd', 'jpeg', or None)"
            )
        if name == "JPEG" and not (image.dtype == np.uint8 and channels in (1, 3)):
            raise ParameterError(
                f"compression 'jpeg' needs uint8 pixels with 1 or 3 channels, not {image.dtype} with "
                f"{channels}; use 'zlib'"
            )
    level = _check_level(level)
    options: dict[str, Any] = {
        "dtype": image.dtype,
        "tile": (th, tw),
        "bigtiff": True,
        "compression": compression,
    }
    if compression is not None and str(compression).upper() in ("ZLIB", "ADOBE_DEFLATE", "DEFLATE"):
        options["compressionargs"] = {"level": TIFF_ZLIB_LEVEL if level is None else level}
    elif compression is not None and level is not None:
        if str(compression).upper() not in ("ZSTD", "LZMA", "WEBP", "JPEG", "JPEGXL", "JPEG2000", "LERC"):
            raise ParameterError(f"TIFF compression {compression!r} takes no level")
        options["compressionargs"] = {"level": level}
    if channels == 1:
        options.update(shape=(rows, cols), photometric="minisblack")
    else:
        photometric = "rgb" if channels in (3, 4) else "minisblack"
        extra = 3 if photometric == "rgb" else 1
        extrasamples = ("unassalpha",) if channels in (2, 4) else ("unspecified",) * (channels - extra)
        options.update(
            shape=(rows, cols, channels),
            photometric=photometric,
            planarconfig="contig",
            extrasamples=extrasamples,
        )
    return options


def _strip_ranges(row_chunks: Sequence[int], max_rows: int, tile_rows: int) -> list[tuple[int, int]]:
    """Row ranges to compute one at a time: whole rows of dask chunks, at most ``max_rows`` tall.

    A single row of chunks taller than ``max_rows`` is split into pieces of whole tile rows;
    each piece then recomputes that row of chunks, the price of staying within the budget.
    """
    ranges: list[tuple[int, int]] = []
    start = prev = 0
    step = max(tile_rows, (max_rows // tile_rows) * tile_rows)
    for n in row_chunks:
        end = prev + n
        if n > max_rows:
            if start < prev:
                ranges.append((start, prev))
            ranges.extend((r, min(r + step, end)) for r in range(prev, end, step))
            start = end
        elif end - start > max_rows:
            ranges.append((start, prev))
            start = prev
        prev = end
    if start < prev:
        ranges.append((start, prev))
    return ranges


class _LookupTile:
    """``palette[indices]`` of one tile, zero padded to the tile shape, computed only when
    tifffile's compression thread converts it with ``numpy.ascontiguousarray``: the lookup then
    runs in parallel with compression instead of in the thread that feeds the tiles."""

    __slots__ = ("indices", "palette", "shape", "squeeze")

    def __init__(self, indices: np.ndarray, palette: np.ndarray, shape: tuple[int, int], squeeze: bool):
        self.indices, self.palette, self.shape, self.squeeze = indices, palette, shape, squeeze

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        h, w = self.indices.shape
        if (h, w) == self.shape:
            out = self.palette[self.indices]
        else:
            out = np.zeros(self.shape + self.palette.shape[1:], dtype=self.palette.dtype)
            out[:h, :w] = self.palette[self.indices]
        out = out[:, :, 0] if self.squeeze else out
        return out if dtype is None else out.astype(dtype, copy=False)


def _iter_tiles(image: da.Array, tile: tuple[int, int], strip_bytes: int,
                palette: np.ndarray | None = None) -> Iterator[Any]:
    """Yield the tiles of ``image`` in row-major order, each of full tile shape (zero padded).

    The image is computed one horizontal strip at a time; the next strip is computed in a
    background thread while tifffile compresses the tiles of this one. Rows left over below the
    last whole tile row of a strip are carried into the next. With a ``palette`` (K, C),
    ``image`` holds indices (rows, cols, 1) and each tile is a :class:`_LookupTile` of them.
    """
    rows, cols, channels = image.shape
    th, tw = tile
    out_channels = channels if palette is None else palette.shape[1]
    itemsize = image.dtype.itemsize if palette is None else palette.dtype.itemsize
    row_bytes = cols * out_channels * itemsize
    ranges = _strip_ranges(image.chunks[0], max(th, strip_bytes // max(row_bytes, 1)), th)
    squeeze = out_channels == 1  # tifffile was given a 2-D shape for greyscale

    def compute(r0: int, r1: int) -> np.ndarray:
        block = np.asarray(image[r0:r1].compute())
        if palette is not None and block.size and int(block.max()) >= len(palette):
            from .reconstruction import _lookup

            _lookup(block, palette)  # raises the store-format error
        return block

    def tile_of(t: np.ndarray) -> Any:
        if palette is not None:
            return _LookupTile(t[:, :, 0], palette, (th, tw), squeeze)
        if t.shape[:2] != (th, tw):
            t = np.pad(t, ((0, th - t.shape[0]), (0, tw - t.shape[1]), (0, 0)))
        return np.ascontiguousarray(t[:, :, 0] if squeeze else t)

    carry: np.ndarray | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bigquant-strip") as pool:
        pending = pool.submit(compute, *ranges[0])
        try:
            for i in range(len(ranges)):
                block = pending.result()
                if i + 1 < len(ranges):
                    pending = pool.submit(compute, *ranges[i + 1])
                if carry is not None:
                    block = np.concatenate([carry, block])
                last = i + 1 == len(ranges)
                done = block.shape[0] if last else (block.shape[0] // th) * th
                for r in range(0, done, th):
                    band = block[r : r + th]
                    for c in range(0, cols, tw):
                        yield tile_of(band[:, c : c + tw])
                carry = block[done:] if done < block.shape[0] else None
        finally:
            pending.cancel()


def _write_zarr(image: da.Array, target: Path, compression: str | None, level: int | None = None) -> None:
    rows, cols, channels = image.shape

    def regular(c: tuple[int, ...]) -> bool:
        return all(n == c[0] for n in c[:-1]) and c[-1] <= c[0]

    # One dask chunk per zarr chunk, so parallel writes never touch the same zarr chunk.
    if not (regular(image.chunks[0]) and regular(image.chunks[1]) and len(image.chunks[2]) == 1):
        image = image.rechunk((image.chunks[0][0], image.chunks[1][0], channels))
    level = _check_level(level)
    compressors = [zarr.codecs.ZstdCodec(level=3 if level is None else level)] if compression is not None else None
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
    done = da.map_blocks(_write_zarr_block, image, os.path.abspath(target), dtype=np.int8,
                         chunks=((1,) * nr, (1,) * nc, (1,)), token="bigquant-write-zarr",
                         meta=np.empty((0, 0, 0), np.int8))
    compute_settled(*done.to_delayed().ravel().tolist())


def _write_zarr_block(block: np.ndarray, path: str, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1), _ = block_info[0]["array-location"]
    zarr.open_array(path, mode="r+")[r0:r1, c0:c1] = block
    return np.zeros((1, 1, 1), np.int8)


def _compute_small(image: da.Array, p: Path, budget: int, *, jpeg: bool) -> np.ndarray:
    """Check a PNG/JPEG output's dtype, channels and size, then compute it whole."""
    channels, dtype = image.shape[2], image.dtype
    fmt = "JPEG" if jpeg else "PNG"
    if jpeg and not (dtype == np.uint8 and channels in (1, 3)):
        raise ParameterError(
            f"output '{p}': JPEG holds uint8 images with 1 or 3 channels, not {dtype} with {channels}; "
            "write .tif or .zarr instead"
        )
    if not jpeg and not (dtype in (np.uint8, np.uint16) and 1 <= channels <= 4):
        raise ParameterError(
            f"output '{p}': PNG holds uint8 or uint16 images with 1 to 4 channels, not {dtype} with "
            f"{channels}; write .tif or .zarr instead"
        )
    if image.nbytes > budget // 2:
        raise MemoryBudgetError(
            f"output '{p}' needs {_fmt_bytes(image.nbytes)} in memory to write as {fmt}, more than the "
            f"memory budget {_fmt_bytes(budget)} allows; write .tif or .zarr instead (or raise "
            "--memory-limit)"
        )
    return np.asarray(image.compute())


@contextlib.contextmanager
def _staged(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` to write, then move it into place.

    On any exception the temporary is removed and ``target`` is left as it was.
    """
    clean_stale_staging(target)
    tmp = staging_path(target)
    try:
        try:
            yield tmp
        except OSError as exc:  # disk full, quota, a folder gone read-only: the user can act on it
            raise OutputError(f"cannot write output '{target}': {exc.strerror or exc}") from exc
        # Someone may have created the target while we worked; don't clobber it unasked.
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise OutputError(f"output '{target}' appeared while writing; pass --overwrite to replace it")
        try:
            _move_into_place(tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot move output '{target}' into place: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp)
        raise


def _move_into_place(tmp: Path, target: Path) -> None:
    if tmp.is_file() and (target.is_file() or not target.exists()):
        os.replace(tmp, target)  # atomic
        return
    # A directory cannot atomically replace another: move the old one aside first.
    old = staging_path(target, "old")
    had_old = target.exists() or target.is_symlink()
    if had_old:
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if had_old:
            os.replace(old, target)
        raise
    if had_old:
        _remove(old)


def on_default_scheduler(fn: Callable) -> Callable:
    """Run ``fn`` on Dask's local threads unless a scheduler was chosen or a Client may exist.

    With no scheduler configured, every ``dask.compute`` imports ``distributed`` (about 0.7 s)
    only to look for a default client; none can exist while ``distributed`` is not imported,
    so the threaded scheduler it would pick is passed as a function (a name still imports it).
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if dask.config.get("scheduler", None) is None and "distributed" not in sys.modules:
            with dask.config.set(scheduler=dask.threaded.get):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return run


_LIBC: Any = None


def _libc() -> Any:
    """glibc through ctypes (loaded once), or None where there is none."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            _LIBC = lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else False
        except OSError:
            _LIBC = False
    return _LIBC or None


#: Arrays from this size up get pages of their own from the OS (see :func:`map_large_arrays`).
MMAP_THRESHOLD = 4 << 20


def map_large_arrays(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc map every allocation of ``threshold`` bytes or more on its own, for this process.

    By default glibc raises its mmap threshold (up to 32 MiB) each time a mapped block is freed,
    so the histogram's partial results and the fit's arrays (4-40 MB) end up in the heap, and
    the holes they leave when freed stay in the process's RSS until the next
    :func:`release_freed_memory`. Measured on the gigapixel benchmark (K = 32): peak RSS
    469-493 MiB at 0.25 Gpx and 504-512 MiB at 1 Gpx by default, 435 and 454 MiB run after run
    with a fixed 4 MiB threshold, for about 2 s more system time at 1 Gpx (fresh pages for
    every chunk: some 5 % of the wall time). A process-wide setting, so only the ``bigquant``
    command makes it, never the library. Returns False where there is no glibc.
    """
    libc = _libc()
    return bool(libc and libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD


def release_freed_memory() -> None:
    """Hand the heap memory freed by the last step back to the operating system.

    glibc keeps freed heap pages (arrays below its mmap threshold, up to 32 MiB) for reuse, so a
    step's peak stays in the process's RSS and the next step's adds to it. ``malloc_trim(0)``
    between the steps of a compress (histogram, fit, label table) lowered the peak RSS on the
    1-gigapixel benchmark from 711 to 570 MiB (0.25 Gpx: 608 to 546). A no-op where there is no
    glibc. dask.distributed trims its workers itself; this is for the local scheduler's process.
    """
    libc = _libc()
    if libc:
        libc.malloc_trim(0)


def compute_settled(*collections: Any) -> tuple:
    """``dask.compute(*collections)``, but on failure it raises only once no task is still running.

    Dask's schedulers raise at the first failed task while others run on; tasks that write files
    (zarr chunks) would then write into a folder the caller is removing and bring it back. On
    the local threaded scheduler the graph runs in a pool of its own, which is drained before
    returning or raising; on a ``dask.distributed`` client every collection becomes a future and
    all are waited for. Pass every writing task as its own collection (a list of delayed parts).
    """
    sched = dask.base.get_scheduler(collections=list(collections))
    client = getattr(sched, "__self__", None)
    if client is not None and type(client).__module__.startswith("distributed"):
        from distributed import wait

        futures = client.compute(list(collections))
        wait(futures)  # every future finished or erred: no task of this graph still runs
        return tuple(client.gather(futures))
    if sched is dask.threaded.get:
        workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bigquant-dask") as pool:
            return dask.compute(*collections, scheduler=dask.threaded.get, pool=pool)  # exit drains the pool
    return dask.compute(*collections)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
