"""The palette picture: the codebook as colour swatches sorted by pixel count.

Alpha is shown over a light checkerboard, so transparency shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .. import display
from .._dask import on_default_scheduler
from ..errors import ParameterError, StoreFormatError
from ..store import Store
from ._draw import (
    BG,
    FRAME,
    INK,
    MARGIN,
    MUTED,
    TEXT,
    TITLE,
    PathLike,
    StoreLike,
    as_store,
    check_png,
    get_font,
    text_size,
    write_png,
)

#: Palette entries drawn by default; the rest are summarised in one line.
DEFAULT_PALETTE_TOP = 256


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
        raise StoreFormatError(
            f"store '{s.path}' has no label_counts for its K={s.k} entries "
            "(written by an older bigquant?); compress it again"
        )
    return np.asarray(counts, dtype=np.int64)


def palette_entries(store: StoreLike, top: int | None = None) -> list[PaletteEntry]:
    """The codebook sorted by pixel count, most frequent first (ties: lower index first).

    Parameters
    ----------
    store : Store or path
    top : int, optional
        Return only the ``top`` most frequent entries (default: all K).
    """
    s = as_store(store)
    counts = _label_counts(s)
    order = np.argsort(-counts, kind="stable")
    if top is not None:
        order = order[: max(0, int(top))]
    total = int(counts.sum()) or 1
    return [
        PaletteEntry(rank, int(i), s.codebook[i], int(counts[i]), int(counts[i]) / total)
        for rank, i in enumerate(order)
    ]


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
    s = as_store(store)
    meta = s.metadata
    counts = _label_counts(s)
    entries = palette_entries(s, top=int(top))
    n = len(entries)
    lo, hi = display.display_range(meta["dtype"], meta, display_range)
    bands = display.bands_of(meta, s.shape[2])
    font, head_font = get_font(TEXT), get_font(TITLE)
    _, line_h = text_size(font, "Ag")
    line_h += 2

    texts = [(_pct(e.share), f"{e.count:,} px", f"{_colour_text(e.colour)}  (index {e.index})") for e in entries]
    text_w = max(text_size(font, t)[0] for lines in texts for t in lines)
    cell_w = swatch + 10 + text_w + 18
    cell_h = max(swatch, 3 * line_h) + 8
    ncols = max(1, min(n, round(math.sqrt(n * (4 / 3) * cell_h / cell_w))))
    nrows = math.ceil(n / ncols)
    ncols = math.ceil(n / nrows)

    total = int(counts.sum())
    name = s.name
    header = f"Codebook of {name}: K={s.k}, sorted by pixel count ({total:,} px)"
    hidden = s.k - n
    footer = ""
    if hidden:
        rest = float(np.sort(counts)[:hidden].sum()) / (total or 1)
        footer = f"+ {hidden:,} less frequent entries not shown ({_pct(rest)} of the pixels)"
    head_h = text_size(head_font, header)[1] + 10
    foot_h = text_size(font, footer)[1] + 8 if footer else 0
    width = max(
        2 * MARGIN + ncols * cell_w,
        2 * MARGIN + text_size(head_font, header)[0],
        2 * MARGIN + (text_size(font, footer)[0] if footer else 0),
    )
    height = 2 * MARGIN + head_h + nrows * cell_h + foot_h

    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), header, fill=INK, font=head_font)
    text_block = 3 * line_h
    for e, lines in zip(entries, texts):
        col, row = divmod(e.rank, nrows)  # down the columns
        x0 = MARGIN + col * cell_w
        y0 = MARGIN + head_h + row * cell_h
        rgb, alpha = display.rgb_alpha(e.colour[None, :], lo, hi, bands=bands)
        sw = _swatch(swatch, rgb[0], None if alpha is None else float(alpha[0]))
        canvas.paste(Image.fromarray(sw, "RGB"), (x0 + 1, y0 + 1))
        draw.rectangle([x0, y0, x0 + swatch + 1, y0 + swatch + 1], outline=FRAME)
        ty = y0 + 1 + max(0, (swatch - text_block) // 2)
        for j, t in enumerate(lines):
            draw.text((x0 + swatch + 10, ty + j * line_h), t, fill=INK if j == 0 else MUTED, font=font)
    if footer:
        draw.text((MARGIN, height - MARGIN - foot_h + 6), footer, fill=MUTED, font=font)
    return np.asarray(canvas)


@on_default_scheduler
def write_palette(
    store: StoreLike,
    output_png: PathLike,
    *,
    swatch: int = 48,
    top: int = DEFAULT_PALETTE_TOP,
    display_range: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`palette_image` to a PNG (built under a hidden sibling and moved into place: :func:`bigquant._staging.staged`)."""
    check_png(output_png, overwrite)
    img = palette_image(store, swatch=swatch, top=top, display_range=display_range)
    return write_png(img, output_png, overwrite)
