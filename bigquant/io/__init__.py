"""Image input and output: the only package that knows image file formats.

An input's format is recognised by its content (:mod:`.sniff`), never by its extension, and is
described from its metadata alone (:func:`inspect` -> :class:`ImageInfo`: series, levels,
tiles, pixel size, band meanings). Readers return lazy dask arrays of shape (rows, cols, C)
with one chunk along C:

* TIFF of any flavour (SVS, NDPI, OME-TIFF, ...; :mod:`.tiff_input`, :mod:`.tiff_meta`) is read a tile (or strip) at a time (:mod:`.tiff_reader`); the dask graph holds a small
  picklable reader, never an open file, so it runs on process-based ``dask.distributed`` workers.
* Zarr (v2 or v3) arrays and OME-Zarr images, local or by URL (:mod:`.zarr_image`,
  :mod:`.ome_zarr_input`); channels-first ones are transposed lazily, chunk by chunk.
* PNG and JPEG cannot be decoded piecewise; they are decoded whole, and only when the decoded
  pixels fit the memory budget (:mod:`.png_jpeg`).

Writers stream a dask array (or the lookup ``palette[indices]`` of one) to a tiled BigTIFF (one
horizontal strip in memory at a time, :mod:`.tiff_writer`) or a Zarr v3 array (one dask chunk
per zarr chunk), or write a PNG/JPEG when the image fits in memory; :mod:`.ome_zarr` writes
OME-Zarr and :mod:`.ome_tiff` pyramidal OME-TIFF from a label pyramid. Every writer builds its
output under a hidden sibling renamed into place at the end (:mod:`bigquant._staging`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from .._objstore import Location, location
from ..chunking import parse_memory_limit
from ..display import bands_of
from ..errors import ParameterError, show_path
from ..params import TIFF_ZLIB_LEVEL
from ..reconstruction import reconstruct
from ._checks import (
    SUPPORTED_DTYPES,
    SUPPORTED_INPUT,
    SUPPORTED_OUTPUT,
    as_image,
    as_output_image,
    check_index,
    check_output,
    check_output_path,
    check_output_url,
    validate_image,
)
from .image_info import (
    BAND_NAMES,
    FORMAT_NAMES,
    ImageInfo,
    LevelInfo,
    SeriesInfo,
    check_single,
    default_bands,
    parse_axes,
)
from .ome_tiff import OME_TIFF, is_ome_tiff, write_ome_tiff
from .ome_zarr import OME_ZARR, is_ome_zarr, write_ome_zarr
from .png_jpeg import describe_jpeg, describe_png, read_png_jpeg, write_png_jpeg
from .remote import RemoteTiffPlan, open_remote, read_remote_tiff
from .sniff import sniff
from .tiff_input import open_tiff, read_tiff, tiff_reader
from .tiff_writer import write_tiff
from .zarr_image import open_zarr, read_zarr, write_zarr
from .zarr_image import read_region as read_zarr_region

__all__ = [
    "BAND_NAMES",
    "FORMAT_NAMES",
    "ImageInfo",
    "LevelInfo",
    "SeriesInfo",
    "OME_TIFF",
    "OME_ZARR",
    "SUPPORTED_DTYPES",
    "SUPPORTED_INPUT",
    "SUPPORTED_OUTPUT",
    "TIFF_ZLIB_LEVEL",
    "as_image",
    "check_output",
    "check_output_path",
    "check_output_url",
    "default_bands",
    "inspect",
    "is_ome_tiff",
    "is_ome_zarr",
    "open_image",
    "parse_axes",
    "probe_read",
    "read_image",
    "validate_image",
    "write_image",
    "write_ome_tiff",
    "write_ome_zarr",
]

PathLike = str | os.PathLike


def _describe(path: PathLike, level: Any, series: Any, axes: Any, opts: Any = None) -> tuple[Path, ImageInfo, Any]:
    """The input's kind by content, its description, and the plan its reader needs (a URL's: :mod:`.remote`)."""
    level = check_index("level", level, False)
    series = check_index("series", series, True)
    axes = parse_axes(axes)
    if (where := location(path, opts)) is not None:
        return Path(where.path), *open_remote(where, level, series, axes)
    p = Path(path)
    kind = sniff(p)
    if kind == "tiff":
        return p, *open_tiff(p, level, series, axes)
    if kind == "zarr":
        return p, *open_zarr(p, level, series, axes)
    info = describe_png(p) if kind == "png" else describe_jpeg(p)
    check_single(f"input {show_path(p)}", level, series)
    if axes is not None and axes != "YXC"[: len(axes)]:
        raise ParameterError(
            f"axes {axes!r} do not fit input {show_path(p)}: a {info.format_name} image is (rows, cols, C)"
        )
    return p, info, None


def inspect(
    path: PathLike,
    *,
    level: int = 0,
    series: int | None = None,
    axes: str | None = None,
    storage_options: dict | None = None,
) -> ImageInfo:
    """Describe an input image from its metadata alone, without reading its pixels.

    Parameters
    ----------
    path, level, series, axes, storage_options
        As for :func:`read_image`.

    Returns
    -------
    ImageInfo
        The format (recognised by content), every series and level with its shape and tiles
        (associated images marked), and of the image :func:`read_image` would read: shape
        (rows, cols, C), dtype, tile, physical pixel size and band meanings.

    Raises
    ------
    InputError, ParameterError
        As :func:`read_image` raises them before reading any pixel.
    """
    return _describe(path, level, series, axes, storage_options)[1]


def open_image(
    path: PathLike,
    *,
    level: int = 0,
    series: int | None = None,
    axes: str | None = None,
    memory_limit: int | str | None = None,
    chunks: tuple[int, int] | None = None,
    threads: int | None = None,
    storage_options: dict | None = None,
) -> tuple[da.Array, ImageInfo]:
    """:func:`read_image`'s array together with :func:`inspect`'s description, from one look
    at the metadata."""
    budget = parse_memory_limit(memory_limit)
    p, info, plan = _describe(path, level, series, axes, storage_options)
    if isinstance(plan, RemoteTiffPlan):
        return read_remote_tiff(info, plan, budget, chunks, threads), info
    if info.container == "tiff":
        return read_tiff(p, info, plan, budget, chunks, threads), info
    if info.container == "zarr":
        return read_zarr(info, plan, budget, chunks, threads), info
    return read_png_jpeg(p, info.container, budget, chunks, threads), info


def probe_read(
    path: PathLike, *, level: int = 0, series: int | None = None, axes: str | None = None, tiles: int = 6
) -> float | None:
    """Nanoseconds per pixel to read and decode the input on one thread, timed on up to ``tiles``
    of its own tiles (or chunks) spread along its diagonal, at most ``2**23`` pixels in all; one
    more tile, untimed, opens the file first. None for PNG and JPEG, which are decoded whole.

    The tiles are read without Dask, as one task of :func:`read_image`'s graph reads them.
    """
    if location(path) is not None:
        return None  # a URL's read time is the network's, not the decoder's
    p, info, plan = _describe(path, level, series, axes)
    if info.tile is None:
        return None
    rows, cols, _ = info.shape
    tr, tc = min(info.tile[0], rows), min(info.tile[1], cols)
    n = max(1, min(tiles, (1 << 23) // (tr * tc)))
    if info.container == "tiff":
        reader, _ = tiff_reader(p, info, plan, parse_memory_limit(None), None)

        def read(r: slice, c: slice) -> Any:
            return reader[r, c]
    else:

        def read(r: slice, c: slice) -> Any:
            return read_zarr_region(plan, r, c)

    grid = (-(-rows // tr), -(-cols // tc))
    picks = [(i * (grid[0] - 1) // n, i * (grid[1] - 1) // n) for i in range(n + 1)]
    spans = [(slice(r * tr, min(rows, (r + 1) * tr)), slice(c * tc, min(cols, (c + 1) * tc))) for r, c in picks]
    read(*spans[0])
    t0 = time.perf_counter()
    for r, c in spans[1:]:
        read(r, c)
    pixels = sum((r.stop - r.start) * (c.stop - c.start) for r, c in spans[1:])
    return 1e9 * (time.perf_counter() - t0) / pixels


def read_image(
    path: PathLike,
    *,
    level: int = 0,
    series: int | None = None,
    axes: str | None = None,
    memory_limit: int | str | None = None,
    chunks: tuple[int, int] | None = None,
    threads: int | None = None,
    storage_options: dict | None = None,
) -> da.Array:
    """Open an image lazily as a dask array of shape (rows, cols, C).

    Parameters
    ----------
    path : str or os.PathLike
        An image file, recognised by its content whatever its extension: any TIFF (classic or
        BigTIFF, either byte order; Aperio SVS, Hamamatsu NDPI, Leica SCN, Ventana BIF, Akoya
        QPTIFF, Philips, OME-TIFF, GeoTIFF, ImageJ, ...), PNG or JPEG; or a Zarr folder (v2 or
        v3): an array, a group holding exactly one array (give ``group.zarr/name`` to pick one
        of several), an OME-Zarr image (NGFF 0.4/0.5) or bioformats2raw's series of them.
    level : int, default 0
        Pyramid level (0 is full resolution) of a pyramidal TIFF or an OME-Zarr image.
    series : int, optional
        The image of a multi-image file (tifffile's series index, bioformats2raw's numbered
        group). Default: the first that is not a slide's associated image (label, macro,
        thumbnail); one of those is read only when asked for by its index.
    axes : str, optional
        The source array's axes, one letter each in its order: Y rows, X columns, C (or S)
        channels, T and Z of length 1 (``"CYX"``, ``"TCZYX"``). Default: from the metadata
        (tifffile's axes, OME-Zarr axes, Zarr ``dimension_names``), else (rows, cols[, C]). A
        channels-first array is transposed lazily, chunk by chunk.
    memory_limit : int or str, optional
        Job memory budget (``"2GiB"``, bytes, default ``chunking.DEFAULT_MEMORY_LIMIT``). Sets the
        chunk shape, and PNG/JPEG inputs must decode to at most half of it.
    chunks : (int, int), optional
        Explicit (rows, cols) chunk shape, used as given. By default chunks come from
        :func:`bigquant.chunking.choose_chunks`: whole multiples of the TIFF tile (or strip) or
        zarr chunk, so every source tile is decoded by exactly one task.
    threads : int, optional
        Worker threads sharing the budget (default: CPU count); only used to choose chunks.
    storage_options : dict, optional
        fsspec options (endpoint, credentials, ...) for a URL ``path`` (a TIFF or Zarr on ``s3://``,
        ``gs://``, ``az://``, ``https://``, ``memory://``); each task reads only its tiles' bytes.

    Returns
    -------
    dask.array.Array of shape (rows, cols, C)
        C >= 1 (greyscale is C=1), one chunk along C, in native byte order, dtype one of
        :data:`SUPPORTED_DTYPES`. What each band means (a fourth band is alpha only when the
        input says so) and the pixel size: :func:`inspect`. TIFF graphs hold only picklable,
        small objects, so they run on process-based distributed workers.

    Raises
    ------
    InputError
        The path does not exist, is not an image of a known format (by content), is damaged,
        has an unsupported dtype, no pixels, axes that are not one 2-D image with channels, or
        only associated images.
    MemoryBudgetError
        A PNG/JPEG, or one TIFF strip that cannot be read piecewise, does not fit the budget.
    ParameterError
        ``level``, ``series``, ``axes``, ``chunks`` or ``memory_limit`` is invalid, or ``level`` or
        ``series`` is past the last one.
    """
    return open_image(
        path,
        level=level,
        series=series,
        axes=axes,
        memory_limit=memory_limit,
        chunks=chunks,
        threads=threads,
        storage_options=storage_options,
    )[0]


def write_image(
    image: da.Array | np.ndarray,
    path: PathLike | Location,
    *,
    overwrite: bool = False,
    memory_limit: int | str | None = None,
    tile: tuple[int, int] = (256, 256),
    compression: str | None = "zlib",
    compression_level: int | None = None,
    palette: np.ndarray | None = None,
    bands: list[str] | None = None,
    pixel_size: dict | None = None,
) -> Path | Location:
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
          rechunked to the first chunk's shape), zstd compressed; also at a
          :class:`~bigquant._objstore.Location`, its ``zarr.json`` written last.
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
        fastest Deflate: quantized images compress well at any level), the codec's own default
        otherwise (zstd: 3).
    palette : ndarray of shape (K, C), optional
        Write ``palette[image]`` instead: ``image`` is then an integer (rows, cols) array of
        indices below K (a store's labels). A TIFF then reads only the indices in strips and
        looks each tile up in tifffile's compression threads, in parallel with compression.
    bands : list of str, optional
        What each channel is (:func:`bigquant.display.bands_of`; default by channel count). A
        TIFF is RGB only for red, green, blue bands, and marks only bands named alpha as alpha; a
        PNG refuses four bands named otherwise than RGBA. Without it, a PNG of four channels is RGBA.
    pixel_size : dict, optional
        ``{"y", "x", "unit": "micrometer"}``: a TIFF's resolution tags (pixels per centimetre).

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
    p = check_output(path, overwrite=overwrite)
    suffix = p.suffix.lower()
    indices = None
    if palette is not None:
        indices = image if isinstance(image, da.Array) else da.from_array(np.asarray(image))
        palette = np.asarray(palette)
        image = reconstruct(indices, palette)
    image = as_output_image(image)
    if isinstance(p, Location) or suffix == ".zarr":  # a Location is a Zarr (check_output)
        write_zarr(image, p, overwrite, compression, compression_level)
    elif suffix in (".tif", ".tiff"):
        write_tiff(
            image,
            p,
            overwrite,
            budget,
            tile=tile,
            compression=compression,
            compression_level=compression_level,
            indices=indices,
            palette=palette,
            bands=bands,
            pixel_size=pixel_size,
        )
    else:
        names = bands_of({"bands": bands}, image.shape[2]) if bands is not None else None
        if suffix == ".png" and image.shape[2] == 4 and names not in (None, ["red", "green", "blue", "alpha"]):
            raise ParameterError(
                f"{p.suffix} holds four channels only as RGBA, and these bands are {names}; "
                "write a .tif, .ome.tif or .zarr instead"
            )
        write_png_jpeg(image, p, overwrite, budget)
    return p
