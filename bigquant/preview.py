"""Pictures of a store: a downsampled side-by-side preview, the palette, the convergence curve.

Everything here is drawn with Pillow and NumPy (no matplotlib). The preview streams: the
reconstruction (and the original, if given) are reduced chunk by chunk to sums over integer-factor
blocks, and only those sums (about 1/f**2 of each chunk) are gathered into the small picture of
block means: no task holds more than one chunk of the full-size image, and the last one only
the small picture's sums.

Display conventions, shared by every picture:

* values map to 0..255 linearly over a *display range*: ``0..255`` for uint8; ``0..max`` of the
  store's recorded ``data_range`` for wider unsigned integers (so 12-bit data in uint16 is not
  shown near-black), the full recorded ``data_range`` for floats and signed integers; without a
  recorded range, the dtype's range (``0..1`` for floats); or the ``display_range`` the caller
  gives. The original and the reconstruction always share one display range;
* C = 1 is grey; C = 2 is grey + alpha; C = 3 is RGB; C = 4 is RGB + alpha; C >= 5 shows the
  first three channels as RGB;
* alpha is composited over white in the preview, over a checkerboard in palette swatches.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import dask
import dask.array as da
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import io
from .api import Store, as_image
from .errors import ParameterError, StoreFormatError
from .store import run_state

DEFAULT_MAX_SIZE = (1200, 1600)
"""(rows, cols) a preview fits in by default: most laptop screens."""
DEFAULT_PALETTE_TOP = 256
"""Palette entries drawn by default; the rest are summarised in one line."""
DEFAULT_PLOT_SIZE = (480, 720)
"""(rows, cols) of the convergence plot."""

_BG = (255, 255, 255)
_INK = (25, 25, 25)
_MUTED = (110, 110, 110)
_FRAME = (150, 150, 150)
_GRID = (226, 226, 226)
_CURVE = (31, 119, 180)
_MARGIN = 10
_GAP = 12
_TEXT = 14          # body font size in pixels
_TITLE = 16
_PNG = (".png",)

PathLike = str | os.PathLike
StoreLike = Store | PathLike


# --------------------------------------------------------------------------------------------
# shared helpers


def _as_store(store: StoreLike) -> Store:
    return store if isinstance(store, Store) else Store(store)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` pixels (Pillow >= 10.1 with FreeType), else its bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError, AttributeError):  # Pillow 10.0 or no FreeType
        return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
    """(width, height) of ``text`` in pixels; height covers ascenders and descenders."""
    left, _, right, _ = font.getbbox(text)
    _, top, _, bottom = font.getbbox("Ag|,")
    return int(math.ceil(right - min(left, 0))), int(math.ceil(bottom - min(top, 0)))


def _fit_text(font, text: str, width: int) -> str:
    """``text``, shortened with '...' until it is at most ``width`` pixels wide ('' if nothing fits)."""
    if _text_size(font, text)[0] <= width:
        return text
    while text:
        text = text[:-1]
        if _text_size(font, text.rstrip() + "...")[0] <= width:
            return text.rstrip() + "..."
    return ""


def _display_range(dtype: np.dtype, metadata: dict, override: Sequence[float] | None) -> tuple[float, float]:
    """The values shown as 0 and 255 (see the module docstring)."""
    if override is not None:
        try:
            lo, hi = (float(v) for v in override)
        except (TypeError, ValueError):
            raise ParameterError(f"display_range must be two numbers (low, high), got {override!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ParameterError(f"display_range must be finite with high > low, got {override!r}")
        return lo, hi
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return 0.0, 255.0
    recorded = metadata.get("data_range")
    if isinstance(recorded, (list, tuple)) and len(recorded) == 2:
        lo, hi = float(recorded[0]), float(recorded[1])
        if dt.kind == "u":
            lo = 0.0  # 12-bit data in uint16: stretch to its maximum, keep 0 black
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            return lo, hi
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def _rgb_alpha(values: np.ndarray, lo: float, hi: float, *, inplace: bool = False
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """(..., C) values -> RGB floats on 0..255 (..., 3) and alpha on 0..1 (...), or None without alpha.

    With ``inplace``, ``values`` (float64) is scaled in place: the picture-sized temporaries of
    the preview's last step are its largest allocations.
    """
    if inplace:
        v = values
        v -= lo
        v *= 255.0 / (hi - lo)
    else:
        v = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    c = v.shape[-1]
    rgb = np.repeat(v[..., :1], 3, axis=-1) if c <= 2 else v[..., :3]
    alpha = None
    if c in (2, 4):
        alpha = np.clip(v[..., -1] / 255.0, 0.0, 1.0)
    return rgb, alpha


def _to_display(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(rows, cols, C) float64 values (overwritten) -> (rows, cols, 3) uint8, alpha over white."""
    rgb, alpha = _rgb_alpha(values, lo, hi, inplace=True)
    if alpha is not None:
        rgb = rgb * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, 255, out=rgb)
    return rgb.astype(np.uint8)


def _block_sums(block: np.ndarray, r0: int, c0: int, factor: tuple[int, int],
                out_shape: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
    """Sums over the f x f blocks one chunk touches, as (first block row, first block col, sums).

    ``block`` starts at full-size pixel (r0, c0). Blocks cut by the chunk's edges get partial
    sums, completed by the neighbouring chunks' parts in :func:`_assemble`; pixels past the last
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


def _assemble(parts: list, out_shape: tuple[int, int], channels: int, factor: tuple[int, int],
              lo: float, hi: float) -> np.ndarray:
    """Add the chunks' block sums into the small picture, divide by f*f, convert for display."""
    total = np.zeros(out_shape + (channels,), dtype=np.float64)
    for part in parts:
        if part is not None:
            b0, d0, sums = part
            total[b0:b0 + sums.shape[0], d0:d0 + sums.shape[1]] += sums
    total /= float(factor[0] * factor[1])
    return _to_display(total, lo, hi)


def _downsample(x: da.Array, factor: tuple[int, int], lo: float, hi: float) -> Any:
    """Lazy (rows // fr, cols // fc, 3) uint8 of a dask image: fr x fc block means, display-scaled.

    One task per chunk reduces it to block sums (about 1/(fr*fc) of its size, in float64); one
    last task adds them into the small picture. No rechunking: :func:`dask.array.coarsen` first
    rechunks so chunk edges fall on block edges, which keeps a whole row of chunks alive at once
    (measured: 71 MB traced for a 2048 x 32768 image in 512 x 512 chunks, factor 21). Trailing
    rows/columns that do not fill a block are left out, as ``coarsen(..., trim_excess=True)`` does.

    Returns a :class:`dask.delayed.Delayed` of the ndarray.
    """
    fr, fc = factor
    out_shape = (x.shape[0] // fr, x.shape[1] // fc)
    if x.numblocks[2] != 1:
        x = x.rechunk({2: -1})
    offsets_r = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]]).tolist()
    offsets_c = np.concatenate([[0], np.cumsum(x.chunks[1])[:-1]]).tolist()
    blocks = x.to_delayed()
    sums = dask.delayed(_block_sums, pure=True)
    parts = [sums(blocks[i, j, 0], offsets_r[i], offsets_c[j], factor, out_shape)
             for i in range(x.numblocks[0]) for j in range(x.numblocks[1])]
    return dask.delayed(_assemble, pure=True)(parts, out_shape, x.shape[2], factor, lo, hi)


def _write_png(image: np.ndarray, output: PathLike, overwrite: bool) -> Path:
    """Write an (rows, cols, 3) uint8 picture through :func:`bigquant.io.write_image` (temp sibling
    + ``os.replace``)."""
    return io.write_image(image, output, overwrite=overwrite)


def _psnr_text(metadata: dict) -> str:
    psnr = metadata.get("psnr")
    if psnr in ("inf", None) or (isinstance(psnr, float) and math.isinf(psnr)):
        return "lossless" if psnr is not None else "PSNR unknown"
    return f"PSNR {float(psnr):.1f} dB"


def _source_name(s: Store) -> str:
    """The input's file name, or the store's name when the input was an array."""
    src = str(s.metadata.get("source") or "")
    return Path(src).name if src and not src.startswith("<") else s.path.name


# --------------------------------------------------------------------------------------------
# preview


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
        Rows and columns of the full image averaged into one picture pixel.
    """

    title: str
    image: np.ndarray
    factor: tuple[int, int]


def _check_max_size(max_size: Sequence[int]) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in max_size)
        if (rows, cols) != tuple(max_size):
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(f"max_size must be two whole numbers (rows, cols), got {max_size!r}") from None
    least = 2 * _MARGIN + 64
    if rows < least or cols < least:
        raise ParameterError(f"max_size {(rows, cols)} is too small; each side must be at least {least} pixels")
    return rows, cols


def _bands(titles: bool) -> tuple[int, int]:
    """Heights of the title band above the panels and the caption band below them."""
    if not titles:
        return 0, 0
    return _text_size(_font(_TITLE), "Ag")[1] + 6, _text_size(_font(_TEXT), "Ag")[1] + 6


def _arrangement(shape: tuple[int, int], n: int, max_size: tuple[int, int], titles: bool) -> tuple[bool, int]:
    """(side_by_side, factor): the arrangement of ``n`` panels needing the smaller integer factor.

    Side by side wins ties; a wide panorama is stacked instead, so it is not shrunk twice over.
    """
    rows, cols = shape
    title_h, caption_h = _bands(titles)
    best = None
    for side in (True, False) if n > 1 else (True,):
        along, across = (n, 1) if side else (1, n)  # panels along the columns, along the rows
        avail_c = (max_size[1] - 2 * _MARGIN - (along - 1) * _GAP) // along
        avail_r = (max_size[0] - 2 * _MARGIN - caption_h - across * title_h - (across - 1) * _GAP) // across
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
    s = _as_store(store)
    size = _check_max_size(max_size)
    meta = s.metadata
    rows, cols, c = s.shape
    recon = s.reconstruct()
    images = [recon]
    names = [f"K={s.k}, {_psnr_text(meta)}"]
    if original is not None:
        if isinstance(original, (str, os.PathLike)):
            orig = io.read_image(original, memory_limit=memory_limit)
        else:
            orig = as_image(original, memory_limit=memory_limit)
        if tuple(orig.shape) != (rows, cols, c):
            raise ParameterError(f"original has shape {tuple(orig.shape)}, but the store holds an image of "
                                 f"shape {(rows, cols, c)}")
        images.insert(0, orig)
        names.insert(0, "original")
    _, f = _arrangement((rows, cols), len(images), size, titles)
    factor = (min(f, rows), min(f, cols))  # a 1-pixel-thin image keeps one pixel across
    lo, hi = _display_range(np.dtype(meta["dtype"]), meta, display_range)
    small = dask.compute(*[_downsample(x, factor, lo, hi) for x in images])
    return [Panel(t, np.asarray(im), factor) for t, im in zip(names, small)]


def _caption(s: Store, factor: tuple[int, int], lo: float, hi: float, display_range) -> str:
    rows, cols, c = s.shape
    dtype = s.metadata["dtype"]
    parts = [_source_name(s), f"{rows} x {cols} x {c} {dtype}"]
    fr, fc = factor
    parts.append("full size" if (fr, fc) == (1, 1) else f"1/{max(fr, fc)} scale ({fr} x {fc} block means)")
    if dtype != "uint8" or display_range is not None:
        parts.append(f"display {lo:g} .. {hi:g}")
    if c in (2, 4):
        parts.append("alpha over white")
    elif c >= 5:
        parts.append(f"channels 1-3 of {c}")
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
    s = _as_store(store)
    size = _check_max_size(max_size)
    panels = preview_panels(s, original, max_size=size, titles=titles, display_range=display_range,
                            memory_limit=memory_limit)
    side, _ = _arrangement(s.shape[:2], len(panels), size, titles)
    ph, pw = panels[0].image.shape[:2]
    n = len(panels)
    title_h, caption_h = _bands(titles)
    if side:
        width = 2 * _MARGIN + n * pw + (n - 1) * _GAP
        height = 2 * _MARGIN + title_h + ph + caption_h
        origins = [(_MARGIN + title_h, _MARGIN + i * (pw + _GAP)) for i in range(n)]
    else:
        width = 2 * _MARGIN + pw
        height = 2 * _MARGIN + n * (title_h + ph) + (n - 1) * _GAP + caption_h
        origins = [(_MARGIN + title_h + i * (title_h + ph + _GAP), _MARGIN) for i in range(n)]
    lo, hi = _display_range(np.dtype(s.metadata["dtype"]), s.metadata, display_range)
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    for (r0, c0), panel in zip(origins, panels):
        draw.rectangle([c0 - 1, r0 - 1, c0 + pw, r0 + ph], outline=_FRAME)
        canvas.paste(Image.fromarray(panel.image, "RGB"), (c0, r0))
        if titles:
            font = _font(_TITLE)
            text = _fit_text(font, panel.title, pw + (_GAP if side else 0) - 2)
            draw.text((c0, r0 - title_h + 1), text, fill=_INK, font=font)
    if titles:
        font = _font(_TEXT)
        text = _fit_text(font, _caption(s, panels[0].factor, lo, hi, display_range), width - 2 * _MARGIN)
        draw.text((_MARGIN, height - _MARGIN - caption_h + 5), text, fill=_MUTED, font=font)
    out = np.array(canvas)
    # The frame is drawn around, never over, the panel pixels; re-paste to be certain.
    for (r0, c0), panel in zip(origins, panels):
        out[r0:r0 + ph, c0:c0 + pw] = panel.image
    return out


@io.on_default_scheduler
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
    """Write :func:`preview_image` to a PNG (via a temporary sibling and ``os.replace``).

    Raises :class:`~bigquant.errors.OutputError` before any work if ``output_png`` exists and
    ``overwrite`` is False, and :class:`~bigquant.errors.ParameterError` if it is not a ``.png``.
    """
    io.check_output_path(output_png, overwrite=overwrite, extensions=_PNG)
    img = preview_image(store, original, max_size=max_size, titles=titles, display_range=display_range,
                        memory_limit=memory_limit)
    return _write_png(img, output_png, overwrite)


# --------------------------------------------------------------------------------------------
# palette


@dataclass(frozen=True)
class PaletteEntry:
    """One codebook entry with its frequency.

    Attributes
    ----------
    rank : int
        0 for the most frequent entry.
    index : int
        Its label value (row of the codebook).
    colour : ndarray of shape (C,)
        The codebook row, in the store's dtype.
    count : int
        Pixels labelled ``index``.
    share : float
        ``count`` over all pixels, 0..1.
    """

    rank: int
    index: int
    colour: np.ndarray
    count: int
    share: float


def _label_counts(s: Store) -> np.ndarray:
    counts = s.metadata.get("label_counts")
    if not isinstance(counts, list) or len(counts) != s.k:
        raise StoreFormatError(f"store '{s.path}' has no label_counts for its K={s.k} entries "
                               "(written by an older bigquant?); compress it again")
    return np.asarray(counts, dtype=np.int64)


def palette_entries(store: StoreLike, top: int | None = None) -> list[PaletteEntry]:
    """The codebook sorted by pixel count, most frequent first (ties: lower index first).

    Parameters
    ----------
    store : Store or path
    top : int, optional
        Return only the ``top`` most frequent entries (default: all K).
    """
    s = _as_store(store)
    counts = _label_counts(s)
    order = np.argsort(-counts, kind="stable")
    if top is not None:
        order = order[: max(0, int(top))]
    total = int(counts.sum()) or 1
    return [PaletteEntry(rank, int(i), s.codebook[i], int(counts[i]), int(counts[i]) / total)
            for rank, i in enumerate(order)]


def _pct(share: float) -> str:
    p = 100.0 * share
    if p == 0:
        return "0 %"
    if p < 0.01:
        return f"{p:.2g} %"  # 0.0031 %: a share among 65536 entries still tells apart
    return f"{p:.2f} %" if p < 10 else f"{p:.1f} %"


def _colour_text(colour: np.ndarray) -> str:
    """'#rrggbb' for 8-bit RGB(A), else the values."""
    c = colour.shape[0]
    if colour.dtype == np.uint8 and c in (3, 4):
        return "#" + "".join(f"{int(v):02x}" for v in colour)
    if colour.dtype.kind == "f":
        vals = [f"{float(v):.4g}" for v in colour[:4]]
    else:
        vals = [str(int(v)) for v in colour[:4]]
    more = ", ..." if c > 4 else ""
    return f"value {vals[0]}" if c == 1 else "(" + ", ".join(vals) + more + ")"


def _swatch(size: int, rgb: np.ndarray, alpha: float | None) -> np.ndarray:
    """A (size, size, 3) uint8 swatch; with alpha, over a light checkerboard so transparency shows."""
    if alpha is None:
        px = np.broadcast_to(rgb, (size, size, 3))
    else:
        cell = max(2, size // 6)
        yy, xx = np.indices((size, size))
        checker = np.where(((yy // cell + xx // cell) % 2)[..., None] == 0, 255.0, 200.0)
        px = rgb * alpha + checker * (1.0 - alpha)
    return np.clip(np.rint(px), 0, 255).astype(np.uint8)


def palette_image(
    store: StoreLike,
    *,
    swatch: int = 48,
    top: int = DEFAULT_PALETTE_TOP,
    display_range: Sequence[float] | None = None,
) -> np.ndarray:
    """The codebook as colour swatches sorted by frequency, each with its share and pixel count.

    Swatches run down the columns (most frequent at the top left), in as many columns as make
    the picture roughly 4:3. Beside each: its share of the pixels, its pixel count, and its
    colour ("#rrggbb" for 8-bit RGB, else the values) with its label index.

    Parameters
    ----------
    store : Store or path
    swatch : int
        Side of a swatch in pixels (at least 8).
    top : int
        Draw only the ``top`` most frequent entries (default 256; K may be up to 65536); a last
        line says how many more there are and their share.
    display_range : (float, float), optional
        Values shown as black and white (as in :func:`preview_image`).

    Returns
    -------
    ndarray of shape (rows, cols, 3), uint8
    """
    if isinstance(swatch, bool) or not isinstance(swatch, (int, np.integer)) or not 8 <= swatch <= 512:
        raise ParameterError(f"swatch must be a whole number of pixels from 8 to 512, got {swatch!r}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ParameterError(f"top must be a whole number of at least 1, got {top!r}")
    s = _as_store(store)
    meta = s.metadata
    counts = _label_counts(s)
    entries = palette_entries(s, top=int(top))
    n = len(entries)
    lo, hi = _display_range(np.dtype(meta["dtype"]), meta, display_range)
    font, head_font = _font(_TEXT), _font(_TITLE)
    _, line_h = _text_size(font, "Ag")
    line_h += 2

    texts = [(_pct(e.share), f"{e.count:,} px", f"{_colour_text(e.colour)}  (index {e.index})") for e in entries]
    text_w = max(_text_size(font, t)[0] for lines in texts for t in lines)
    cell_w = swatch + 10 + text_w + 18
    cell_h = max(swatch, 3 * line_h) + 8
    ncols = max(1, min(n, round(math.sqrt(n * (4 / 3) * cell_h / cell_w))))
    nrows = math.ceil(n / ncols)
    ncols = math.ceil(n / nrows)

    total = int(counts.sum())
    name = s.path.name
    header = f"Codebook of {name}: K={s.k}, sorted by pixel count ({total:,} px)"
    hidden = s.k - n
    footer = ""
    if hidden:
        rest = float(np.sort(counts)[: hidden].sum()) / (total or 1)
        footer = f"+ {hidden:,} less frequent entries not shown ({_pct(rest)} of the pixels)"
    head_h = _text_size(head_font, header)[1] + 10
    foot_h = _text_size(font, footer)[1] + 8 if footer else 0
    width = max(2 * _MARGIN + ncols * cell_w, 2 * _MARGIN + _text_size(head_font, header)[0],
                2 * _MARGIN + (_text_size(font, footer)[0] if footer else 0))
    height = 2 * _MARGIN + head_h + nrows * cell_h + foot_h

    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    draw.text((_MARGIN, _MARGIN), header, fill=_INK, font=head_font)
    text_block = 3 * line_h
    for e, lines in zip(entries, texts):
        col, row = divmod(e.rank, nrows)  # down the columns
        x0 = _MARGIN + col * cell_w
        y0 = _MARGIN + head_h + row * cell_h
        rgb, alpha = _rgb_alpha(e.colour[None, :], lo, hi)
        sw = _swatch(swatch, rgb[0], None if alpha is None else float(alpha[0]))
        canvas.paste(Image.fromarray(sw, "RGB"), (x0 + 1, y0 + 1))
        draw.rectangle([x0, y0, x0 + swatch + 1, y0 + swatch + 1], outline=_FRAME)
        ty = y0 + 1 + max(0, (swatch - text_block) // 2)
        for j, t in enumerate(lines):
            draw.text((x0 + swatch + 10, ty + j * line_h), t, fill=_INK if j == 0 else _MUTED, font=font)
    if footer:
        draw.text((_MARGIN, height - _MARGIN - foot_h + 6), footer, fill=_MUTED, font=font)
    return np.asarray(canvas)


@io.on_default_scheduler
def write_palette(
    store: StoreLike,
    output_png: PathLike,
    *,
    swatch: int = 48,
    top: int = DEFAULT_PALETTE_TOP,
    display_range: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`palette_image` to a PNG (via a temporary sibling and ``os.replace``)."""
    io.check_output_path(output_png, overwrite=overwrite, extensions=_PNG)
    img = palette_image(store, swatch=swatch, top=top, display_range=display_range)
    return _write_png(img, output_png, overwrite)


# --------------------------------------------------------------------------------------------
# convergence plot


def _nice_step(span: float, target: int, steps: Sequence[float] = (1, 2, 2.5, 5, 10)) -> float:
    raw = span / max(1, target)
    e = math.floor(math.log10(raw))
    f = raw / 10.0 ** e
    return next(m for m in steps if f <= m + 1e-9) * 10.0 ** e


def _linear_ticks(lo: float, hi: float, target: int = 6) -> tuple[float, float, list[float]]:
    """Axis limits rounded out to a nice step and the ticks between them."""
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, target)
    a, b = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [a + i * step for i in range(int(round((b - a) / step)) + 1)]
    return a, b, ticks


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Limits (in log10) padded by 4 % and ticks at 1, 2, 5 x 10^n (1 x 10^n over many decades)."""
    l0, l1 = math.log10(lo), math.log10(hi)
    pad = 0.04 * (l1 - l0) or 0.05
    a, b = l0 - pad, l1 + pad
    mults = (1,) if b - a > 4 else (1, 2, 5) if b - a > 1.2 else (1, 2, 3, 4, 5, 6, 7, 8, 9)
    ticks = [m * 10.0 ** e for e in range(math.floor(a), math.ceil(b) + 1) for m in mults
             if a <= math.log10(m * 10.0 ** e) <= b]
    if len(ticks) < 4:  # within about a decade: nice linear values, placed on the log axis
        ticks = [t for t in _linear_ticks(10 ** a, 10 ** b, 5)[2] if t > 0 and a <= math.log10(t) <= b]
    return a, b, ticks


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    """Shortest labels that tell the ticks apart: plain below 1e5, else '1.25e8'."""
    big = max((abs(t) for t in ticks), default=0)
    sci = big >= 1e5 or 0 < big < 1e-3
    for p in range(0, 7):
        if sci:
            labels = []
            for t in ticks:
                m, e = f"{t:.{p}e}".split("e")
                labels.append("0" if t == 0 else f"{m}e{int(e)}")
        else:
            labels = [f"{t:.{p}f}" for t in ticks]
        if len(set(labels)) == len(labels) and all(
                abs(float(lab) - t) <= 1e-6 * max(abs(t), 1e-300) for lab, t in zip(labels, ticks)):
            return labels
    return labels


def _short(v: float) -> str:
    """Four significant digits, exponent without '+' and leading zeros: 1.235e8."""
    m, _, e = f"{v:.4g}".partition("e")
    return f"{m}e{int(e)}" if e else m


def convergence_image(
    store: StoreLike,
    *,
    size: Sequence[int] = DEFAULT_PLOT_SIZE,
    log: bool | None = None,
) -> np.ndarray:
    """A line plot of the inertia after each Lloyd iteration, with axes, ticks and a title.

    Parameters
    ----------
    store : Store or path
    size : (int, int)
        (rows, cols) of the picture (default 480 x 720; at least 200 x 300).
    log : bool, optional
        Logarithmic inertia axis. Default: when the inertia spans at least a factor of 10 and
        is positive throughout.

    Returns
    -------
    ndarray of shape (rows, cols, 3), uint8
        Drawn at twice the size with Pillow and downsampled, so lines and text are smooth.
    """
    try:
        rows, cols = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ParameterError(f"size must be two whole numbers (rows, cols), got {size!r}") from None
    if rows < 200 or cols < 300:
        raise ParameterError(f"size {(rows, cols)} is too small for a plot; at least (200, 300)")
    s = _as_store(store)
    meta = s.metadata
    hist = meta.get("inertia_history")
    if not isinstance(hist, list) or not all(isinstance(v, (int, float)) for v in hist):
        raise StoreFormatError(f"store '{s.path}' has no inertia_history (written by an older bigquant?); "
                               "compress it again")
    y = np.asarray(hist, dtype=np.float64)
    y = y[np.isfinite(y)] if len(y) else y
    n = len(y)
    positive = n > 0 and bool((y > 0).all())
    if log is None:
        log = positive and float(y.max()) >= 10 * float(y.min())
    elif log and not positive:
        log = False  # zero inertia (a lossless fit) cannot go on a log axis

    k = 2  # supersampling
    W, H = cols * k, rows * k
    canvas = Image.new("RGB", (W, H), _BG)
    draw = ImageDraw.Draw(canvas)
    font, title_font = _font(_TEXT * k), _font(_TITLE * k)
    iters = meta.get("iterations", n)
    state = run_state(meta)
    title = f"Lloyd's k-means: K={s.k}, {iters} iteration{'s' if iters != 1 else ''} ({state})"
    coarse = int(meta.get("coarse_iterations") or 0)
    sub = f"{_source_name(s)}, {meta.get('method', '?')} method"
    if coarse:
        on = "the pixel sample" if meta.get("method") == "pixels" else "coarse histograms"
        sub += f", after {coarse} warm-start iterations on {on}"
    _, th = _text_size(title_font, title)
    _, sh = _text_size(font, sub)
    draw.text((12 * k, 8 * k), _fit_text(title_font, title, W - 24 * k), fill=_INK, font=title_font)
    draw.text((12 * k, 8 * k + th + 3 * k), _fit_text(font, sub, W - 24 * k), fill=_MUTED, font=font)

    if n == 0:
        msg = "no iterations recorded"
        tw, _ = _text_size(font, msg)
        draw.text(((W - tw) // 2, H // 2), msg, fill=_MUTED, font=font)
        return np.asarray(canvas.resize((cols, rows), Image.Resampling.LANCZOS))

    # y axis
    if log:
        ya, yb, yt = _log_ticks(float(y.min()), float(y.max()))
        ypos = np.log10
    else:
        lo = float(y.min())
        ya, yb, yt = _linear_ticks(min(lo, 0.0) if lo < 0 else lo, float(y.max()))
        ypos = np.asarray
    ylabels = _tick_labels(yt)
    # x axis: iterations 1..n, integer ticks
    xa, xb = (0.5, 1.5) if n == 1 else (1 - 0.02 * (n - 1), n + 0.02 * (n - 1))
    step = max(1, int(_nice_step(max(n - 1, 1), 8, (1, 2, 5, 10))))
    xt = [t for t in range(step, n + 1, step)] if step > 1 else list(range(1, n + 1))
    if step > 1 and 1 not in xt and (not xt or xt[0] - 1 >= step / 2):
        xt.insert(0, 1)

    tick = 5 * k
    ylab_w = max(_text_size(font, t)[0] for t in ylabels)
    axis_title = "inertia (sum of squared errors)" + (", log scale" if log else "")
    atw, ath = _text_size(font, axis_title)
    x0 = 12 * k + ath + 8 * k + ylab_w + tick + 4 * k
    x1 = W - 24 * k
    y0 = 8 * k + th + 3 * k + sh + 14 * k
    _, tlh = _text_size(font, "0")
    y1 = H - (tick + 4 * k + tlh + 6 * k + ath + 10 * k)

    def px(xv: float) -> float:
        return x0 + (xv - xa) / (xb - xa) * (x1 - x0)

    def py(yv) -> float:
        return y1 - (float(ypos(yv)) - ya) / (yb - ya) * (y1 - y0)

    for t, lab in zip(yt, ylabels):
        yy = py(t)
        draw.line([(x0, yy), (x1, yy)], fill=_GRID, width=k)
        draw.line([(x0 - tick, yy), (x0, yy)], fill=_INK, width=k)
        lw, lh = _text_size(font, lab)
        draw.text((x0 - tick - 4 * k - lw, yy - lh / 2), lab, fill=_INK, font=font)
    for t in xt:
        xx = px(t)
        draw.line([(xx, y0), (xx, y1)], fill=_GRID, width=k)
        draw.line([(xx, y1), (xx, y1 + tick)], fill=_INK, width=k)
        lab = str(t)
        lw, _ = _text_size(font, lab)
        draw.text((xx - lw / 2, y1 + tick + 3 * k), lab, fill=_INK, font=font)
    draw.rectangle([x0, y0, x1, y1], outline=_INK, width=k)
    xl = "Lloyd iteration"
    xlw, _ = _text_size(font, xl)
    draw.text(((x0 + x1 - xlw) / 2, y1 + tick + 4 * k + tlh + 6 * k), xl, fill=_INK, font=font)
    # rotated y-axis title
    label = Image.new("RGB", (atw + 4, ath + 4), _BG)
    ImageDraw.Draw(label).text((2, 2), axis_title, fill=_INK, font=font)
    label = label.rotate(90, expand=True)
    canvas.paste(label, (12 * k, int((y0 + y1 - label.height) / 2)))

    pts = [(px(i + 1), py(v)) for i, v in enumerate(y)]
    if n > 1:
        draw.line(pts, fill=_CURVE, width=2 * k, joint="curve")
    r = 3 * k if n <= 60 else 0
    for xx, yy in pts:
        if r:
            draw.ellipse([xx - r, yy - r, xx + r, yy + r], fill=_CURVE)
    if n == 1:
        draw.ellipse([pts[0][0] - 3 * k, pts[0][1] - 3 * k, pts[0][0] + 3 * k, pts[0][1] + 3 * k], fill=_CURVE)
    final = f"final {_short(float(y[-1]))}"
    fw, fh = _text_size(font, final)
    # Inertia never rises, so the room below and left of the last point is free of the curve.
    fx = min(max(pts[-1][0] - fw - 2 * k, x0 + 4 * k), x1 - fw - 4 * k)
    fy = pts[-1][1] + 8 * k
    if fy + fh > y1 - 2 * k:
        fy = pts[-1][1] - fh - 8 * k
    draw.text((fx, fy), final, fill=_CURVE, font=font)
    return np.asarray(canvas.resize((cols, rows), Image.Resampling.LANCZOS))


def write_convergence(
    store: StoreLike,
    output_png: PathLike,
    *,
    size: Sequence[int] = DEFAULT_PLOT_SIZE,
    log: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`convergence_image` to a PNG (via a temporary sibling and ``os.replace``)."""
    io.check_output_path(output_png, overwrite=overwrite, extensions=_PNG)
    img = convergence_image(store, size=size, log=log)
    return _write_png(img, output_png, overwrite)
