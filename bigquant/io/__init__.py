"""Image input and output: the only package that knows image file formats.

Readers return lazy dask arrays of shape (rows, cols, C) with one chunk along C:

* TIFF is read a tile (or strip) at a time (:mod:`.tiff_reader`); the dask graph holds a small
  picklable reader, never an open file, so it runs on process-based ``dask.distributed`` workers.
* Zarr (v2 or v3) arrays are read with :func:`dask.array.from_zarr`, path based too (:mod:`.zarr_image`).
* PNG and JPEG cannot be decoded piecewise; they are decoded whole, and only when the decoded
  pixels fit the memory budget (:mod:`.png_jpeg`).

Writers stream a dask array (or the lookup ``palette[indices]`` of one) to a tiled BigTIFF (one
horizontal strip in memory at a time, :mod:`.tiff_writer`) or a Zarr v3 array (one dask chunk
per zarr chunk), or write a PNG/JPEG when the image fits in memory; :mod:`.ome_zarr` writes
OME-Zarr and :mod:`.ome_tiff` pyramidal OME-TIFF from a label pyramid. Every writer builds the output under a temporary sibling name and renames it into
place at the end (:mod:`bigquant._staging`), so a killed run never leaves a complete-looking
file at the target.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np

from ..chunking import parse_memory_limit
from ..display import bands_of
from ..errors import InputError, ParameterError
from ..params import TIFF_ZLIB_LEVEL
from ..reconstruction import reconstruct
from ._checks import (
    SUPPORTED_DTYPES,
    SUPPORTED_INPUT,
    SUPPORTED_OUTPUT,
    as_image,
    as_output_image,
    check_output_path,
    validate_image,
)
from .ome_tiff import OME_TIFF, is_ome_tiff, write_ome_tiff
from .ome_zarr import OME_ZARR, is_ome_zarr, write_ome_zarr
from .png_jpeg import read_png_jpeg, write_png_jpeg
from .tiff_reader import read_tiff
from .tiff_writer import write_tiff
from .zarr_image import read_zarr, write_zarr

__all__ = [
    "OME_TIFF",
    "OME_ZARR",
    "SUPPORTED_DTYPES",
    "SUPPORTED_INPUT",
    "SUPPORTED_OUTPUT",
    "TIFF_ZLIB_LEVEL",
    "as_image",
    "check_output_path",
    "is_ome_tiff",
    "is_ome_zarr",
    "read_image",
    "validate_image",
    "write_image",
    "write_ome_tiff",
    "write_ome_zarr",
]

PathLike = str | os.PathLike


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
    kind = input_kind(p)
    if kind != "tiff" and level != 0:
        raise ParameterError(f"level {level} was asked for, but input '{p}' has 1 level (only level 0)")
    if kind == "tiff":
        return read_tiff(p, level, budget, chunks, threads)
    if kind == "zarr":
        return read_zarr(p, budget, chunks, threads)
    return read_png_jpeg(p, kind, budget, chunks, threads)


def input_kind(p: Path) -> str:
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
    bands: list[str] | None = None,
    pixel_size: dict | None = None,
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
    p = check_output_path(path, overwrite=overwrite)
    suffix = p.suffix.lower()
    indices = None
    if palette is not None:
        indices = image if isinstance(image, da.Array) else da.from_array(np.asarray(image))
        palette = np.asarray(palette)
        image = reconstruct(indices, palette)
    image = as_output_image(image)
    if suffix in (".tif", ".tiff"):
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
    elif suffix == ".zarr":
        write_zarr(image, p, overwrite, compression, compression_level)
    else:
        names = bands_of({"bands": bands}, image.shape[2]) if bands is not None else None
        if suffix == ".png" and image.shape[2] == 4 and names not in (None, ["red", "green", "blue", "alpha"]):
            raise ParameterError(
                f"{p.suffix} holds four channels only as RGBA, and these bands are {names}; "
                "write a .tif, .ome.tif or .zarr instead"
            )
        write_png_jpeg(image, p, overwrite, budget)
    return p
