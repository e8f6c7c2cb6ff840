"""TIFF output: a tiled BigTIFF streamed one horizontal strip at a time.

Each strip is at most a fraction of the memory budget (at least one tile row); the next strip
is computed in a background thread while tifffile compresses the tiles of this one. For a
store's reconstruction the strips hold only the labels and each tile is looked up in
tifffile's compression threads (:class:`LookupTile`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile

from .._staging import staged
from ..display import bands_of
from ..errors import ParameterError
from ..params import DEFLATE_NAMES, LEVELLED_TIFF_COMPRESSIONS, TIFF_ZLIB_LEVEL, check_compression_level
from ..reconstruction import lookup


def tiff_options(
    image: da.Array,
    tile: Sequence[int],
    compression: str | None,
    level: int | None = None,
    bands: Sequence[str] | None = None,
    pixel_size: dict | None = None,
) -> dict[str, Any]:
    """Keyword arguments of :func:`tifffile.imwrite` for a tiled BigTIFF of ``image``.

    ``bands`` (:func:`bigquant.display.bands_of`) choose RGB or grey and which extra samples
    are alpha; ``pixel_size`` (micrometres) becomes the resolution tags, in pixels per cm.
    """
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
    level = check_compression_level(level, compression)
    options: dict[str, Any] = {
        "dtype": image.dtype,
        "tile": (th, tw),
        "bigtiff": True,
        "compression": compression,
    }
    if compression is not None and str(compression).upper() in DEFLATE_NAMES:
        options["compressionargs"] = {"level": TIFF_ZLIB_LEVEL if level is None else level}
    elif compression is not None and level is not None:
        if str(compression).upper() not in LEVELLED_TIFF_COMPRESSIONS:
            raise ParameterError(f"TIFF compression {compression!r} takes no level")
        options["compressionargs"] = {"level": level}
    if pixel_size:
        options.update(
            resolution=(1e4 / float(pixel_size["x"]), 1e4 / float(pixel_size["y"])), resolutionunit="CENTIMETER"
        )
    names = bands_of({"bands": bands} if bands is not None else None, channels)
    if channels == 1:
        options.update(shape=(rows, cols), photometric="minisblack")
    else:
        photometric = "rgb" if names[:3] == ["red", "green", "blue"] else "minisblack"
        extra = names[3:] if photometric == "rgb" else names[1:]
        options.update(
            shape=(rows, cols, channels),
            photometric=photometric,
            planarconfig="contig",
            extrasamples=tuple("unassalpha" if name == "alpha" else "unspecified" for name in extra),
        )
    return options


def strip_ranges(row_chunks: Sequence[int], max_rows: int, tile_rows: int) -> list[tuple[int, int]]:
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


class LookupTile:
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


def iter_tiles(
    image: da.Array, tile: tuple[int, int], strip_bytes: int, palette: np.ndarray | None = None
) -> Iterator[Any]:
    """Yield the tiles of ``image`` in row-major order, each of full tile shape (zero padded).

    The image is computed one horizontal strip at a time; the next strip is computed in a
    background thread while tifffile compresses the tiles of this one. Rows left over below the
    last whole tile row of a strip are carried into the next. With a ``palette`` (K, C),
    ``image`` holds indices (rows, cols, 1) and each tile is a :class:`LookupTile` of them.
    """
    rows, cols, channels = image.shape
    th, tw = tile
    out_channels = channels if palette is None else palette.shape[1]
    itemsize = image.dtype.itemsize if palette is None else palette.dtype.itemsize
    row_bytes = cols * out_channels * itemsize
    ranges = strip_ranges(image.chunks[0], max(th, strip_bytes // max(row_bytes, 1)), th)
    squeeze = out_channels == 1  # tifffile was given a 2-D shape for greyscale

    def compute(r0: int, r1: int) -> np.ndarray:
        block = np.asarray(image[r0:r1].compute())
        if palette is not None and block.size and int(block.max()) >= len(palette):
            lookup(block, palette)  # raises the store-format error
        return block

    def tile_of(t: np.ndarray) -> Any:
        if palette is not None:
            return LookupTile(t[:, :, 0], palette, (th, tw), squeeze)
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


def write_tiff(
    image: da.Array,
    p: Path,
    overwrite: bool,
    budget: int,
    *,
    tile: Sequence[int],
    compression: str | None,
    compression_level: int | None,
    indices: da.Array | None = None,
    palette: np.ndarray | None = None,
    bands: Sequence[str] | None = None,
    pixel_size: dict | None = None,
) -> None:
    """Stream ``image`` (rows, cols, C) to a tiled BigTIFF at ``p``, in strips of at most 1/8 of
    the budget. With ``indices`` (rows, cols) and ``palette`` (K, C), ``image`` is
    ``palette[indices]`` and only the indices are computed in strips. ``bands`` and
    ``pixel_size`` as for :func:`tiff_options`."""
    options = tiff_options(image, tile, compression, compression_level, bands, pixel_size)
    if indices is None:
        tiles = iter_tiles(image, options["tile"], budget // 8)
    else:
        tiles = iter_tiles(indices[..., None], options["tile"], budget // 8, palette)
    with staged(p, overwrite) as tmp:
        # tifffile compresses tiles on half the cores by default; all of them keep up better.
        tifffile.imwrite(tmp, data=tiles, maxworkers=os.cpu_count() or 1, **options)
