"""PNG and JPEG: decoded and encoded whole, and only when the pixels fit the memory budget.

Neither format can be decoded piecewise. PNGs go through imagecodecs (libpng), which keeps
16-bit RGB(A) as uint16 (Pillow and imageio downcast it to 8 bits), expands palettes to RGB(A)
and raises on truncated data. JPEGs go through Pillow, which raises on a truncated file where
libjpeg-turbo through imagecodecs would fill it with grey. Neither says anything when a scan ends
early at a marker (an EOI inside the entropy-coded data): libjpeg-turbo only warns and fills the
rest with grey. So every JPEG is also decoded once at 1/8 scale by simplejpeg, whose strict mode
turns those warnings into errors (the scaled decode still walks all the entropy-coded data).
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import imagecodecs
import numpy as np
import simplejpeg
from PIL import Image

from .._dask import from_memory
from .._runtime import start_kernel_warm_up
from .._staging import staged
from ..chunking import format_bytes, resolve_chunks
from ..errors import InputError, MemoryBudgetError, ParameterError, show_path
from ._checks import budget_error, check_dtype, check_image_shape
from .image_info import ImageInfo, LevelInfo, SeriesInfo, pixel_size

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Decoded channels per PNG colour type (IHDR byte 9), before a tRNS chunk adds alpha.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
JPEG_QUALITY = 95


def read_png_jpeg(p: Path, kind: str, budget: int, chunks: tuple[int, int] | None, threads: int | None) -> da.Array:
    """Decode a PNG (``kind`` "png") or JPEG whole into a dask array (rows, cols, C).

    numba is imported and set up on a thread meanwhile (the decoders release the GIL), so a
    one-shot command does not pay for it after the decode.
    """
    warm_up = start_kernel_warm_up()
    try:
        arr = decode_png(p, budget) if kind == "png" else decode_jpeg(p, budget)
    finally:
        # Never left running past this call (it would still be loading numba code while the
        # caller goes on, or after a bad input has already been reported).
        warm_up.join()
    if arr.ndim == 2:
        arr = arr[:, :, None]
    check_image_shape(arr.shape, f"input {show_path(p)}")
    check_dtype(arr.dtype, f"input {show_path(p)}")
    cr, cc = resolve_chunks(arr.shape[:2], arr.itemsize * arr.shape[2], budget, chunks, None, threads)
    return from_memory(arr, (cr, cc, arr.shape[2]))


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's chunks before its first IDAT say: size, decoded channels and sample bytes,
    colour type, whether a tRNS chunk adds alpha, and pHYs pixels per metre (x, y) or None."""

    rows: int
    cols: int
    channels: int
    itemsize: int
    colour: int
    transparent: bool
    per_metre: tuple[int, int] | None


def png_header(p: Path) -> PngHeader:
    """The header of the PNG at ``p``, from the chunks before the first IDAT.

    Pillow reports 16-bit RGB(A) PNGs as 8-bit modes, so the header is parsed here to get the
    real sample depth; a tRNS chunk adds an alpha channel on decoding.
    """
    where = f"input {show_path(p)}"
    ihdr, transparent, phys = None, False, None
    with open(p, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            if p.stat().st_size == 0:
                raise InputError(f"{where} is empty (0 bytes)")
            raise InputError(f"{where} is not a PNG file (its first bytes are not the PNG signature)")
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"{where} is truncated: it ends before any image data")
            length, ctype = struct.unpack(">I4s", head)
            if ctype in (b"IDAT", b"IEND"):
                break
            data = f.read(length) if ctype in (b"IHDR", b"pHYs") else b""
            if ctype == b"IHDR":
                if len(data) < 13:
                    raise InputError(f"{where} is truncated inside its IHDR header")
                ihdr = struct.unpack(">IIBB", data[:10])
            elif ctype == b"pHYs" and len(data) == 9 and data[8] == 1:  # unit 1: the metre
                phys = struct.unpack(">II", data[:8])
            transparent |= ctype == b"tRNS"
            f.seek(4 if data else length + 4, os.SEEK_CUR)
    if ihdr is None:
        raise InputError(f"{where} has no IHDR header chunk before its image data")
    cols, rows, depth, colour = ihdr
    if rows == 0 or cols == 0:  # libpng would warn, then fail: one line instead
        raise InputError(f"{where} is damaged: its IHDR header says {cols} x {rows} pixels; it holds no pixels")
    if colour not in _PNG_CHANNELS:
        raise InputError(f"{where} has PNG colour type {colour}, which is not valid (0, 2, 3, 4 or 6)")
    channels = _PNG_CHANNELS[colour] + (1 if transparent and colour in (0, 2, 3) else 0)
    return PngHeader(rows, cols, channels, 2 if depth == 16 else 1, colour, transparent, phys)


def describe_png(p: Path) -> ImageInfo:
    """A PNG described from its header: colour type 0 grey, 2 and 3 RGB, 4 grey + alpha, 6 RGBA
    (a tRNS chunk adds alpha); the pixel size from pHYs when it is in metres."""
    h = png_header(p)
    colour = ("grey",) if h.colour in (0, 4) else ("red", "green", "blue")
    bands = colour + (("alpha",) if h.channels > len(colour) else ())
    size = (
        pixel_size(1e6 / h.per_metre[1], 1e6 / h.per_metre[0], "micrometer")
        if h.per_metre and all(h.per_metre)
        else None
    )
    dtype = np.dtype(np.uint16 if h.itemsize == 2 else np.uint8)
    return _whole_image(p, "png", (h.rows, h.cols, h.channels), dtype, bands, size)


@contextlib.contextmanager
def _open_jpeg(p: Path, where: str) -> Iterator[Image.Image]:
    """The JPEG at ``p`` opened lazily by Pillow (header read, no pixels), closed after the block;
    a failure to open it is one line naming ``where``: MemoryBudgetError for an image past
    Pillow's decompression-bomb limit, InputError for anything else."""
    with warnings.catch_warnings():
        # The callers' budget checks are the guard that matters; Pillow's warning would be noise.
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
            yield im


def describe_jpeg(p: Path) -> ImageInfo:
    """A JPEG described from its header (Pillow opens it lazily): grey or RGB (CMYK and YCbCr are
    decoded to RGB); the pixel size from the JFIF density when it is per inch or centimetre."""
    with _open_jpeg(p, f"input {show_path(p)}") as im:
        cols, rows = im.size
        grey = im.mode in ("1", "L")
        unit, density = im.info.get("jfif_unit"), im.info.get("jfif_density")
    per = {1: 25400.0, 2: 10000.0}.get(unit or 0)
    size = pixel_size(per / density[1], per / density[0], "micrometer") if per and density and all(density) else None
    bands = ("grey",) if grey else ("red", "green", "blue")
    return _whole_image(p, "jpeg", (rows, cols, len(bands)), np.dtype(np.uint8), bands, size)


def _whole_image(
    p: Path, fmt: str, shape: tuple[int, int, int], dtype: np.dtype, bands: tuple[str, ...], size: dict | None
) -> ImageInfo:
    level = LevelInfo(shape, None)
    return ImageInfo(
        path=str(p.absolute()),
        container=fmt,
        format=fmt,
        detail="decoded whole",
        file_bytes=p.stat().st_size,
        series=0,
        level=0,
        shape=shape,
        dtype=dtype,
        tile=None,
        axes="YXC",
        bands=bands,
        pixel_size=size,
        compression="deflate" if fmt == "png" else "jpeg",
        all_series=(SeriesInfo(0, "", False, "YXC", dtype.name, (level,)),),
    )


def decode_png(p: Path, budget: int) -> np.ndarray:
    h = png_header(p)
    need = h.rows * h.cols * h.channels * h.itemsize
    if need > budget // 2:
        raise budget_error(f"input {show_path(p)}", need, budget)
    try:
        return imagecodecs.png_decode(p.read_bytes())
    except Exception as exc:
        raise InputError(f"cannot decode input {show_path(p)}: {exc}") from exc


def decode_jpeg(p: Path, budget: int) -> np.ndarray:
    where = f"input {show_path(p)}"
    if p.stat().st_size == 0:
        raise InputError(f"{where} is empty (0 bytes)")
    with _open_jpeg(p, where) as im:
        if im.format != "JPEG":
            raise InputError(f"{where} holds a {im.format} image, not JPEG; give it the matching extension")
        cols, rows = im.size
        channels = 1 if im.mode in ("1", "L") else 3
        need = rows * cols * channels
        if need > budget // 2:
            raise budget_error(where, need, budget)
        try:
            im.load()
            # CMYK and YCbCr JPEGs become RGB; 'L' stays one channel.
            if im.mode not in ("L", "RGB"):
                im = im.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(im)
        except Exception as exc:
            raise InputError(f"cannot decode {where}: {exc}") from exc
    check_jpeg_scan(p.read_bytes(), where)
    return pixels


#: libjpeg-turbo warnings that lose no pixels (stray bytes between markers, a bad ICC profile).
_HARMLESS_JPEG_WARNINGS = ("extraneous bytes", "ICC profile")


def check_jpeg_scan(data: bytes, where: str) -> None:
    """Raise InputError if libjpeg-turbo, decoding ``data`` at 1/8 scale, finds entropy-coded data
    that ends early or is corrupt (what it would otherwise fill with grey, with a warning only).

    A JPEG that simplejpeg cannot decode at all (a flavour it lacks, which Pillow has just
    decoded) is left alone: only a failure that its lenient mode gets past is a damaged file.
    """
    try:
        simplejpeg.decode_jpeg(data, min_height=1, min_width=1, strict=True)
        return
    except ValueError as exc:
        reason = str(exc)
    if any(h in reason for h in _HARMLESS_JPEG_WARNINGS):
        return
    try:
        simplejpeg.decode_jpeg(data, min_height=1, min_width=1, strict=False)
    except ValueError:
        return
    raise InputError(f"{where} is damaged: {reason} (libjpeg-turbo would fill the rest of the image with grey)")


def compute_small(image: da.Array, p: Path, budget: int, *, jpeg: bool) -> np.ndarray:
    """Check a PNG/JPEG output's dtype, channels and size, then compute it whole."""
    channels, dtype = image.shape[2], image.dtype
    fmt = "JPEG" if jpeg else "PNG"
    if jpeg and not (dtype == np.uint8 and channels in (1, 3)):
        raise ParameterError(
            f"output {show_path(p)}: JPEG holds uint8 images with 1 or 3 channels, not {dtype} with {channels}; "
            "write .tif or .zarr instead"
        )
    if not jpeg and not (dtype in (np.uint8, np.uint16) and 1 <= channels <= 4):
        raise ParameterError(
            f"output {show_path(p)}: PNG holds uint8 or uint16 images with 1 to 4 channels, not {dtype} with "
            f"{channels}; write .tif or .zarr instead"
        )
    if image.nbytes > budget // 2:
        raise MemoryBudgetError(
            f"output {show_path(p)} needs {format_bytes(image.nbytes)} in memory to write as {fmt}, more than the "
            f"memory budget {format_bytes(budget)} allows; write .tif or .zarr instead (or raise "
            "--memory-limit)"
        )
    return np.asarray(image.compute())


def write_png_jpeg(image: da.Array, p: Path, overwrite: bool, budget: int) -> None:
    """Write ``image`` (rows, cols, C) to a PNG or, for ``.jpg``/``.jpeg``, a JPEG (quality 95)."""
    png = p.suffix.lower() == ".png"
    arr = compute_small(image, p, budget, jpeg=not png)
    pixels = arr[:, :, 0] if arr.shape[2] == 1 else arr
    with staged(p, overwrite) as tmp:
        if png:
            tmp.write_bytes(imagecodecs.png_encode(pixels))
        else:
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=JPEG_QUALITY)
