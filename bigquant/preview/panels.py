"""The side-by-side preview: the original (if given) beside the reconstruction, downsampled by
streaming.

The reconstruction (and the original) are reduced chunk by chunk to sums over integer-factor
blocks, and only those sums (about 1/f**2 of each chunk) are gathered into the small picture of
block means: no task holds more than one chunk of the full-size image, and the last one only
the small picture's sums. Alpha is composited over white.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from PIL import Image, ImageDraw

from .. import display, io
from .._dask import on_default_scheduler
from ..errors import ParameterError
from ..report import psnr_caption
from ..store import Store
from ._draw import (
    BG,
    FRAME,
    GAP,
    INK,
    MARGIN,
    MUTED,
    TEXT,
    TITLE,
    PathLike,
    StoreLike,
    as_store,
    check_png,
    fit_text,
    get_font,
    source_name,
    text_size,
    write_png,
)

#: (rows, cols) a preview fits in by default: most laptop screens.
DEFAULT_MAX_SIZE = (1200, 1600)


def block_sums(
    block: np.ndarray, r0: int, c0: int, factor: tuple[int, int], out_shape: tuple[int, int]
) -> tuple[int, int, np.ndarray] | None:
    """Sums over the f x f blocks one chunk touches, as (first block row, first block col, sums).

    ``block`` starts at full-size pixel (r0, c0). Blocks cut by the chunk's edges get partial
    sums, completed by the neighbouring chunks' parts in :func:`assemble`; pixels past the last
    whole block are left out. ``np.add.reduceat`` sums in float64 without a float copy of the chunk.
    """
    fr, fc = factor
    rows = min(block.shape[0], out_shape[0] * fr - r0)
    cols = min(block.shape[1], out_shape[1] * fc - c0)
    if rows <= 0 or cols <= 0:
        return None
    b0, b1 = r0 // fr, (r0 + rows - 1) // fr + 1
    d0, d1 = c0 // fc, (c0 + cols - 1) // fc + 1
    starts_r = [0] + [b * fr - r0 for b in range(b0 + 1, b1)]
    starts_c = [0] + [d * fc - c0 for d in range(d0 + 1, d1)]
    sums = np.add.reduceat(block[:rows, :cols], starts_r, axis=0, dtype=np.float64)
    sums = np.add.reduceat(sums, starts_c, axis=1)
    return b0, d0, sums


def assemble(
    parts: list,
    out_shape: tuple[int, int],
    channels: int,
    factor: tuple[int, int],
    lo: float,
    hi: float,
    bands: Sequence[str] | None = None,
) -> np.ndarray:
    """Add the chunks' block sums into the small picture, divide by f*f, convert for display."""
    total = np.zeros(out_shape + (channels,), dtype=np.float64)
    for part in parts:
        if part is not None:
            b0, d0, sums = part
            total[b0 : b0 + sums.shape[0], d0 : d0 + sums.shape[1]] += sums
    total /= float(factor[0] * factor[1])
    return display.over_white(total, lo, hi, bands)


def downsample(x: da.Array, factor: tuple[int, int], lo: float, hi: float, bands: Sequence[str] | None = None) -> Any:
    """Lazy (rows // fr, cols // fc, 3) uint8 of a dask image: fr x fc block means, display-scaled
    (``bands`` name its channels, :func:`bigquant.display.rgb_alpha`).

    One task per chunk reduces it to block sums (about 1/(fr*fc) of its size, in float64); one
    last task adds them into the small picture. No rechunking: :func:`dask.array.coarsen` first
    rechunks so chunk edges fall on block edges, which keeps a whole row of chunks alive at once.
    Trailing rows/columns that do not fill a block are left out, as ``coarsen(..., trim_excess=True)`` does.

    Returns a :class:`dask.delayed.Delayed` of the ndarray.
    """
    fr, fc = factor
    out_shape = (x.shape[0] // fr, x.shape[1] // fc)
    if x.numblocks[2] != 1:
        x = x.rechunk({2: -1})
    offsets_r = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]]).tolist()
    offsets_c = np.concatenate([[0], np.cumsum(x.chunks[1])[:-1]]).tolist()
    blocks = x.to_delayed()
    sums = dask.delayed(block_sums, pure=True)
    parts = [
        sums(blocks[i, j, 0], offsets_r[i], offsets_c[j], factor, out_shape)
        for i in range(x.numblocks[0])
        for j in range(x.numblocks[1])
    ]
    return dask.delayed(assemble, pure=True)(parts, out_shape, x.shape[2], factor, lo, hi, bands)


@dataclass
class Panel:
    """One picture of a preview.

    Attributes
    ----------
    title : str
        Caption drawn above it ("original", "K=32, PSNR 31.2 dB").
    image : ndarray of shape (rows, cols, 3), uint8
        The downsampled picture, display-scaled.
    factor : (int, int)
        Rows and columns of the full image one picture pixel stands for.
    level : int
        The label pyramid level the picture was averaged from (0: the full-size image;
        ``factor`` is then ``2**level`` times the block it averaged).
    """

    title: str
    image: np.ndarray
    factor: tuple[int, int]
    level: int = 0


def check_max_size(max_size: Sequence[int]) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in max_size)
        if (rows, cols) != tuple(max_size):
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(f"max_size must be two whole numbers (rows, cols), got {max_size!r}") from None
    least = 2 * MARGIN + 64
    if rows < least or cols < least:
        raise ParameterError(f"max_size {(rows, cols)} is too small; each side must be at least {least} pixels")
    return rows, cols


def bands(titles: bool) -> tuple[int, int]:
    """Heights of the title band above the panels and the caption band below them."""
    if not titles:
        return 0, 0
    return text_size(get_font(TITLE), "Ag")[1] + 6, text_size(get_font(TEXT), "Ag")[1] + 6


def arrangement(shape: tuple[int, int], n: int, max_size: tuple[int, int], titles: bool) -> tuple[bool, int]:
    """(side_by_side, factor): the arrangement of ``n`` panels needing the smaller integer factor.

    Side by side wins ties; a wide panorama is stacked instead, so it is not shrunk twice over.
    """
    rows, cols = shape
    title_h, caption_h = bands(titles)
    best = None
    for side in (True, False) if n > 1 else (True,):
        along, across = (n, 1) if side else (1, n)  # panels along the columns, along the rows
        avail_c = (max_size[1] - 2 * MARGIN - (along - 1) * GAP) // along
        avail_r = (max_size[0] - 2 * MARGIN - caption_h - across * title_h - (across - 1) * GAP) // across
        if avail_r < 1 or avail_c < 1:
            continue
        f = max(1, math.ceil(rows / avail_r), math.ceil(cols / avail_c))
        if best is None or f < best[1]:
            best = (side, f)
    if best is None:
        raise ParameterError(f"max_size {max_size} leaves no room for {n} panels")
    return best


def preview_panels(
    store: StoreLike,
    original: Any = None,
    *,
    max_size: Sequence[int] = DEFAULT_MAX_SIZE,
    titles: bool = True,
    display_range: Sequence[float] | None = None,
    memory_limit: str | int | None = None,
) -> list[Panel]:
    """The downsampled pictures of a preview, computed by streaming over the chunks.

    Parameters
    ----------
    store : Store or path
        A bigquant store.
    original : path or array of shape (rows, cols[, C]), optional
        The image the store was made from: a path read lazily with :func:`bigquant.read_image`,
        or a NumPy/dask array. Its shape must be the store's.
    max_size : (int, int)
        (rows, cols) the whole preview (panels, gaps, titles) must fit in.
    titles : bool
        Whether room is kept for titles (this changes the downsampling factor slightly).
    display_range : (float, float), optional
        The values shown as black and white (default: see the module docstring).
    memory_limit : str or int, optional
        Memory budget for reading ``original`` (chunk shapes follow from it).

    Returns
    -------
    list of Panel
        ``[original, reconstruction]`` or ``[reconstruction]``. Both use the same integer factor
        f: pixel (i, j) is the mean of full-size rows ``f*i .. f*i+f-1`` and columns
        ``f*j .. f*j+f-1`` (trailing rows/columns that do not fill a block are left out), scaled
        to 0..255 and rounded. One ``dask.compute`` reads the original and the store together.

    Raises
    ------
    ParameterError
        ``max_size`` or ``display_range`` is invalid, or ``original`` does not have the store's shape.
    """
    s = as_store(store)
    size = check_max_size(max_size)
    meta = s.metadata
    rows, cols, c = s.shape
    recon = s.reconstruct()
    images = [recon]
    names = [f"K={s.k}, {psnr_caption(meta.get('psnr'))}"]
    if original is not None:
        if isinstance(original, (str, os.PathLike)):
            orig = io.read_image(original, memory_limit=memory_limit)
        else:
            orig = io.as_image(original, memory_limit=memory_limit)
        if tuple(orig.shape) != (rows, cols, c):
            raise ParameterError(
                f"original has shape {tuple(orig.shape)}, but the store holds an image of shape {(rows, cols, c)}"
            )
        images.insert(0, orig)
        names.insert(0, "original")
    _, f = arrangement((rows, cols), len(images), size, titles)
    level, f = (0, f) if original is not None else pick_level(s, f, size, titles)
    if level:
        images = [s.reconstruct(level)]
    shape = s.levels[level].shape
    factor = (min(f, shape[0]), min(f, shape[1]))  # a 1-pixel-thin image keeps one pixel across
    lo, hi = display.display_range(meta["dtype"], meta, display_range)
    small = dask.compute(*[downsample(x, factor, lo, hi, s.bands) for x in images])
    full = (factor[0] << level, factor[1] << level)
    return [Panel(t, np.asarray(im), full, level) for t, im in zip(names, small)]


def pick_level(s: Store, f: int, size: tuple[int, int], titles: bool) -> tuple[int, int]:
    """(level, factor on it) of the smallest stored pyramid level that still gives a picture at
    most a third smaller per side than the full-size factor ``f`` would: an overview then reads
    only the small levels."""
    for level in range(len(s.levels) - 1, 0, -1):
        _, g = arrangement(s.levels[level].shape, 1, size, titles)
        if 3 * (g << level) <= 4 * f:
            return level, g
    return 0, f


def caption(s: Store, panel: Panel, lo: float, hi: float, display_range) -> str:
    rows, cols, c = s.shape
    dtype = s.metadata["dtype"]
    parts = [source_name(s), f"{rows} x {cols} x {c} {dtype}"]
    fr, fc = panel.factor
    br, bc = fr >> panel.level, fc >> panel.level
    if (fr, fc) == (1, 1):
        parts.append("full size")
    elif panel.level:
        parts.append(f"1/{max(fr, fc)} scale (label pyramid level {panel.level}, {br} x {bc} block means)")
    else:
        parts.append(f"1/{max(fr, fc)} scale ({fr} x {fc} block means)")
    if dtype != "uint8" or display_range is not None:
        parts.append(f"display {lo:g} .. {hi:g}")
    rgb, alpha = display.band_layout(s.bands)
    if alpha is not None:
        parts.append("alpha over white")
    shown = sorted(set(rgb))
    if len(shown) + (alpha is not None) < c:
        which = "channels 1-3" if shown == [0, 1, 2] else "channel " + ", ".join(str(i + 1) for i in shown)
        parts.append(f"{which} of {c}")
    return ",  ".join(parts)


def preview_image(
    store: StoreLike,
    original: Any = None,
    *,
    max_size: Sequence[int] = DEFAULT_MAX_SIZE,
    titles: bool = True,
    display_range: Sequence[float] | None = None,
    memory_limit: str | int | None = None,
) -> np.ndarray:
    """A picture of the original (if given) beside the reconstruction, small enough for a screen.

    Computed by streaming (see :func:`preview_panels`): the full image is never loaded.

    Parameters
    ----------
    store : Store or path
    original : path or array, optional
        The image the store was made from, shown on the left.
    max_size : (int, int)
        (rows, cols) the whole picture fits in (default 1200 x 1600).
    titles : bool
        Draw "original" and "K=..., PSNR ... dB" above the panels and a caption (source, size,
        scale) below them.
    display_range : (float, float), optional
        Values shown as black and white (default: see the module docstring; the caption
        states the range when the image is not uint8).
    memory_limit : str or int, optional
        Memory budget for reading ``original``.

    Returns
    -------
    ndarray of shape (rows, cols, 3), uint8
        At most ``max_size``. Panels sit side by side, or stacked when that lets them be larger
        (wide panoramas), on a white background with a thin grey frame.
    """
    s = as_store(store)
    size = check_max_size(max_size)
    panels = preview_panels(
        s, original, max_size=size, titles=titles, display_range=display_range, memory_limit=memory_limit
    )
    side, _ = arrangement(s.shape[:2], len(panels), size, titles)
    ph, pw = panels[0].image.shape[:2]
    n = len(panels)
    title_h, caption_h = bands(titles)
    if side:
        width = 2 * MARGIN + n * pw + (n - 1) * GAP
        height = 2 * MARGIN + title_h + ph + caption_h
        origins = [(MARGIN + title_h, MARGIN + i * (pw + GAP)) for i in range(n)]
    else:
        width = 2 * MARGIN + pw
        height = 2 * MARGIN + n * (title_h + ph) + (n - 1) * GAP + caption_h
        origins = [(MARGIN + title_h + i * (title_h + ph + GAP), MARGIN) for i in range(n)]
    lo, hi = display.display_range(s.metadata["dtype"], s.metadata, display_range)
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    for (r0, c0), panel in zip(origins, panels):
        draw.rectangle([c0 - 1, r0 - 1, c0 + pw, r0 + ph], outline=FRAME)
        canvas.paste(Image.fromarray(panel.image, "RGB"), (c0, r0))
        if titles:
            font = get_font(TITLE)
            text = fit_text(font, panel.title, pw + (GAP if side else 0) - 2)
            draw.text((c0, r0 - title_h + 1), text, fill=INK, font=font)
    if titles:
        font = get_font(TEXT)
        text = fit_text(font, caption(s, panels[0], lo, hi, display_range), width - 2 * MARGIN)
        draw.text((MARGIN, height - MARGIN - caption_h + 5), text, fill=MUTED, font=font)
    out = np.array(canvas)
    # The frame is drawn around, never over, the panel pixels; re-paste to be certain.
    for (r0, c0), panel in zip(origins, panels):
        out[r0 : r0 + ph, c0 : c0 + pw] = panel.image
    return out


@on_default_scheduler
def write_preview(
    store: StoreLike,
    output_png: PathLike,
    original: Any = None,
    *,
    max_size: Sequence[int] = DEFAULT_MAX_SIZE,
    titles: bool = True,
    display_range: Sequence[float] | None = None,
    memory_limit: str | int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`preview_image` to a PNG (built under a hidden sibling and moved into place: :func:`bigquant._staging.staged`).

    Raises :class:`~bigquant.errors.OutputError` before any work if ``output_png`` exists and
    ``overwrite`` is False, and :class:`~bigquant.errors.ParameterError` if it is not a ``.png``.
    """
    check_png(output_png, overwrite)
    img = preview_image(
        store, original, max_size=max_size, titles=titles, display_range=display_range, memory_limit=memory_limit
    )
    return write_png(img, output_png, overwrite)
