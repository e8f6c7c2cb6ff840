"""TIFF input of any flavour: the series and levels a file holds, the one read, its dask array.

:func:`open_tiff` reads the IFDs only (tifffile's series, levels and tags) and describes the
file as an :class:`~.image_info.ImageInfo`; :func:`read_tiff` then builds the lazy array over
a :class:`~.tiff_reader.TiffReader`, in chunks that are whole multiples of the tiles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr
from dask.base import tokenize

from .._dask import with_windows
from ..chunking import chunk_budget_bytes, format_bytes, resolve_chunks, window_chunks
from ..errors import BigquantError, InputError, MemoryBudgetError, ParameterError, show_path
from . import tiff_meta
from ._checks import check_dtype, check_image_shape
from .image_info import ImageInfo, LevelInfo, SeriesInfo, pick_series, place_axes, scaled
from .tiff_reader import TiffReader, file_stamp, open_tiff_file, tiles_readable

#: An unnamed TIFF axis ('Q' unknown, 'I' page sequence) is taken as channels up to this length:
#: grey, grey+alpha, RGB, RGBA written as separate pages. Longer ones are more likely stacks
#: (``axes="CYX"`` says otherwise).
MAX_UNNAMED_CHANNELS = 4
#: tifffile axis codes that mean "channels" (samples, channel, spectral lambda).
CHANNEL_AXES = "SCE"
UNNAMED_AXES = "QI"


@dataclass(frozen=True)
class TiffPlan:
    """How :func:`read_tiff` reads the level :func:`open_tiff` chose."""

    source_shape: tuple[int, ...]
    row_axis: int
    col_axis: int
    chan_axis: int | None
    tile: tuple[int, int]
    contiguous: bool
    tiles: bool
    ndpi: bool | None = None


def tiff_axes(where: str, shape: tuple[int, ...], axes: str) -> tuple[int, int, int | None]:
    """Positions of rows, cols and channels in a tifffile series by its own axes, or InputError."""
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"{where} has shape {shape} with axes {axes!r}; expected rows 'Y' and columns 'X'")
    extra = [(i, a) for i, a in enumerate(axes) if a not in "YX" and shape[i] > 1]
    if len(extra) == 1 and extra[0][1] in UNNAMED_AXES and shape[extra[0][0]] <= MAX_UNNAMED_CHANNELS:
        return axes.index("Y"), axes.index("X"), extra[0][0]
    return place_axes(where, shape, axes, CHANNEL_AXES)


def ndpi_layout(p: Path) -> bool | None:
    """Whether to open ``p`` with NDPI's 64-bit offsets, from its content: tifffile decides by a
    ``.ndpi`` extension, which a renamed NDPI lacks and a classic TIFF named ``.ndpi`` has.

    True for a little-endian classic TIFF whose first IFD carries the NDPI tag (65420) and which
    opens with 64-bit offsets; False for any other little-endian classic TIFF; None (tifffile's
    choice, which ignores the flag) for BigTIFF and big-endian files.
    """
    with open(p, "rb") as f:
        head = f.read(4)
    if head != b"II*\x00":
        return None
    try:
        with tifffile.TiffFile(p, is_ndpi=False) as tf:
            tagged = 65420 in _first(tf).tags
    except Exception:
        return False
    if not tagged:
        return False
    log = logging.getLogger("tifffile")
    level, log.level = log.level, logging.CRITICAL + 1  # a failed trial is an answer, not news
    try:
        with tifffile.TiffFile(p, is_ndpi=True) as tf:
            return bool(tf.series)
    except Exception:
        return False  # NDPI tags in a classic layout (converters write these)
    finally:
        log.setLevel(level)


def _first(tf: Any) -> Any:
    return tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]


def _data_end(pages: Sequence[Any]) -> int:
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


def _page_tile(page: Any) -> tuple[int, int] | None:
    """A page's tile, or its strip (rows per strip, width)."""
    if page is None:
        return None
    if page.is_tiled:
        return int(page.tilelength), int(page.tilewidth)
    return min(int(page.rowsperstrip or page.imagelength), int(page.imagelength)), int(page.imagewidth)


def _list_series(tf: Any, flags: list[bool]) -> tuple[SeriesInfo, ...]:
    out = []
    for i, s in enumerate(tf.series):
        levels = tuple(LevelInfo(tuple(int(n) for n in lv.shape), _page_tile(lv.keyframe)) for lv in s.levels)
        out.append(SeriesInfo(i, s.name or "", flags[i], str(s.axes), str(np.dtype(s.dtype)), levels))
    return tuple(out)


@contextlib.contextmanager
def _held_warnings() -> Iterator[None]:
    """Hold tifffile's warnings while a TIFF is described: logged once it is accepted, dropped if
    it is refused (its one error line then says what is wrong, after no riddles from tifffile)."""
    held: list[logging.LogRecord] = []
    logger = logging.getLogger("tifffile")

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger.addFilter(hold)
    try:
        yield
    finally:
        logger.removeFilter(hold)
    for record in held:  # not reached when the input was refused
        logger.handle(record)


def _check_chunk_counts(where: str, tf: Any, pages: Any) -> None:
    """InputError if a page lists fewer or more strips or tiles than its size needs: a header
    claiming 10^6 x 10^6 pixels over the strips of a small image (tifffile only warns)."""
    if tf.is_ndpi:  # NDPI's one JPEG strip holds the whole level by design
        return
    for page in pages:
        chunked = getattr(page, "chunked", None)
        offsets = getattr(page, "dataoffsets", None)
        if chunked is None or offsets is None:  # a TiffFrame: its keyframe is checked
            continue
        need, have = math.prod(int(n) for n in chunked), len(offsets)
        if need != have:
            kind = "tiles" if page.is_tiled else "strips"
            rows, cols = int(page.imagelength), int(page.imagewidth)
            raise InputError(
                f"{where} is damaged: its header claims {rows} x {cols} pixels in {need:,} {kind}, but lists {have:,}"
            )


def open_tiff(p: Path, level: int, series: int | None, axes: str | None) -> tuple[ImageInfo, TiffPlan]:
    """Describe the level of the series to read of the TIFF at ``p``, from its IFDs alone.

    ``series`` None picks the first series that is not an associated image; ``axes`` (checked
    by :func:`~.image_info.parse_axes`) replaces the axes tifffile gives the series.
    """
    with _held_warnings():
        return _open_tiff(p, level, series, axes)


def _open_tiff(p: Path, level: int, series: int | None, axes: str | None) -> tuple[ImageInfo, TiffPlan]:
    where = f"input {show_path(p)}"
    try:
        ndpi = ndpi_layout(p)
        tf = open_tiff_file(p, ndpi)
    except Exception as exc:
        raise InputError(f"{where} is not a readable TIFF file: {exc}") from exc
    with tf:
        info, plan = describe_tiff(tf, where, str(p.absolute()), p.stat().st_size, level, series, axes)
        return info, dataclasses.replace(plan, ndpi=ndpi)


def describe_tiff(
    tf: Any, where: str, name: str, size: int, level: int, series: int | None, axes: str | None
) -> tuple[ImageInfo, TiffPlan]:
    """Describe the level to read of an open TIFF (a local file or a URL's), from its IFDs:
    ``name`` goes into :attr:`ImageInfo.path`, ``size`` is the file's length in bytes."""
    try:
        if not tf.series:
            raise InputError(f"{where} holds no images")
        fmt, detail = tiff_meta.flavour(tf)
        listing = _list_series(tf, tiff_meta.associated(tf, fmt))
        index = pick_series(where, series, listing)
        return _describe(where, name, size, tf, fmt, detail, listing, index, level, axes)
    except BigquantError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc


def _describe(
    where: str,
    name: str,
    size: int,
    tf: Any,
    fmt: str,
    detail: str,
    listing: tuple[SeriesInfo, ...],
    index: int,
    level: int,
    axes: str | None,
) -> tuple[ImageInfo, TiffPlan]:
    levels = tf.series[index].levels
    if level >= len(levels):
        what = f"series {index} of {where}" if len(listing) > 1 else where
        raise ParameterError(f"level {level} is out of range: {what} has {len(levels)} level(s) (0..{len(levels) - 1})")
    lvl = levels[level]
    shape, src_axes = tuple(int(n) for n in lvl.shape), str(lvl.axes)
    row_axis, col_axis, chan_axis = place_axes(where, shape, axes) if axes else tiff_axes(where, shape, src_axes)
    dtype = check_dtype(lvl.dtype, where)
    rows, cols = shape[row_axis], shape[col_axis]
    channels = shape[chan_axis] if chan_axis is not None else 1
    check_image_shape((rows, cols, channels), where, src_axes)
    _check_chunk_counts(where, tf, lvl.pages)
    end = _data_end(lvl.pages)
    if end > size:
        raise InputError(f"{where} is truncated: its image data extends to byte {end} but the file has {size} bytes")
    source_chunks = zarr.open_array(tf.aszarr(series=index, level=level, read_only=True), mode="r").chunks
    page0 = levels[0].keyframe
    base = levels[0].shape
    base_rc = (int(base[row_axis]), int(base[col_axis])) if len(base) == len(shape) else (rows, cols)
    info = ImageInfo(
        path=name,
        container="tiff",
        format=fmt,
        detail=detail,
        file_bytes=size,
        series=index,
        level=level,
        shape=(rows, cols, channels),
        dtype=dtype,
        tile=(int(source_chunks[row_axis]), int(source_chunks[col_axis])),
        axes=axes or src_axes,
        bands=tiff_meta.bands(tf, index, lvl.keyframe, axes or src_axes, chan_axis, channels),
        pixel_size=scaled(tiff_meta.level0_pixel_size(tf, fmt, index, page0), base_rc, (rows, cols)),
        compression=lvl.keyframe.compression.name,
        all_series=listing,
    )
    plan = TiffPlan(
        shape,
        row_axis,
        col_axis,
        chan_axis,
        info.tile,  # type: ignore[arg-type]
        lvl.dataoffset is not None,
        # The tile decoder reads a page's own (rows, cols, samples) layout, so not a transposed one.
        tiles_readable(lvl.pages, (rows, cols, channels), dtype) and (axes is None or axes == src_axes),
    )
    return info, plan


def tiff_reader(p: Path, info: ImageInfo, plan: TiffPlan, budget: int, threads: int | None) -> tuple[TiffReader, Any]:
    """The picklable reader of the level :func:`open_tiff` described, and the tile (rows, cols) its
    chunks must be multiples of (None for a memmap, which reads any rows)."""
    where = f"input {show_path(p)}"
    channels, dtype = info.shape[2], info.dtype
    tile: tuple[int, int] | None = plan.tile
    tile_bytes = plan.tile[0] * plan.tile[1] * channels * dtype.itemsize
    mode = "tiles" if plan.tiles else "zarr"
    if tile_bytes > chunk_budget_bytes(budget, threads):
        if plan.contiguous:
            # One huge uncompressed strip (tifffile's default layout): a memmap reads any rows
            # without decoding the whole strip per chunk.
            mode, tile = "memmap", None
        elif tile_bytes > budget // 2:
            raise MemoryBudgetError(
                f"{where} stores its pixels in blocks of {plan.tile[0]} x {plan.tile[1]} pixels "
                f"({format_bytes(tile_bytes)} each), more than half the memory budget "
                f"{format_bytes(budget)}; rewrite it as a tiled TIFF (e.g. 256 x 256 tiles) or raise "
                "--memory-limit"
            )
    reader = TiffReader(
        info.path,
        info.series,
        info.level,
        plan.source_shape,
        plan.row_axis,
        plan.col_axis,
        plan.chan_axis,
        dtype,
        file_stamp(info.path),
        mode,
        plan.ndpi,
    )
    return reader, tile


def read_tiff(
    p: Path, info: ImageInfo, plan: TiffPlan, budget: int, chunks: Sequence[int] | None, threads: int | None
) -> da.Array:
    """The level :func:`open_tiff` described, as a dask array (rows, cols, C) read a tile at a time."""
    rows, cols, channels = info.shape
    reader, tile = tiff_reader(p, info, plan, budget, threads)
    cr, cc = resolve_chunks((rows, cols), info.dtype.itemsize * channels, budget, chunks, tile, threads)

    def chunked(r: int, c: int) -> da.Array:
        return da.from_array(
            reader,
            chunks=(r, c, channels),
            lock=False,
            asarray=True,
            fancy=False,
            meta=np.empty((0, 0, 0), dtype=info.dtype),
            name=f"read-tiff-{tokenize(reader, r, c)}",
        )

    x = chunked(cr, cc)
    wr, wc = window_chunks(tile, (cr, cc))
    return x if (wr, wc) == (cr, cc) else with_windows(x, chunked(wr, wc))
