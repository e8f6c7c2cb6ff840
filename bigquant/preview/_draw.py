"""What the pictures share: colours, Pillow's font and text measures, the store argument, PNG output."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageFont

from .. import io
from ..store import Store

BG = (255, 255, 255)
INK = (25, 25, 25)
MUTED = (110, 110, 110)
FRAME = (150, 150, 150)
MARGIN = 10
GAP = 12
TEXT = 14  # body font size in pixels
TITLE = 16
PNG = (".png",)

PathLike = str | os.PathLike
StoreLike = Store | PathLike


def as_store(store: StoreLike) -> Store:
    """``store``, opened if it is a path."""
    return store if isinstance(store, Store) else Store(store)


@lru_cache(maxsize=16)
def get_font(size: int) -> Any:
    """Pillow's built-in font at ``size`` pixels (Pillow >= 10.1 with FreeType), else its bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError, AttributeError):  # Pillow 10.0 or no FreeType
        return ImageFont.load_default()


def text_size(fnt: Any, text: str) -> tuple[int, int]:
    """(width, height) of ``text`` in pixels; height covers ascenders and descenders."""
    left, _, right, _ = fnt.getbbox(text)
    _, top, _, bottom = fnt.getbbox("Ag|,")
    return int(math.ceil(right - min(left, 0))), int(math.ceil(bottom - min(top, 0)))


def fit_text(fnt: Any, text: str, width: int) -> str:
    """``text``, shortened with '...' until it is at most ``width`` pixels wide ('' if nothing fits)."""
    if text_size(fnt, text)[0] <= width:
        return text
    while text:
        text = text[:-1]
        if text_size(fnt, text.rstrip() + "...")[0] <= width:
            return text.rstrip() + "..."
    return ""


def source_name(s: Store) -> str:
    """The input's file name, or the store's name when the input was an array."""
    src = str(s.metadata.get("source") or "")
    return Path(src).name if src and not src.startswith("<") else s.name


def check_png(output: PathLike, overwrite: bool) -> None:
    """Refuse an existing output (without ``overwrite``) or one that is not a ``.png``, before any work."""
    io.check_output_path(output, overwrite=overwrite, extensions=PNG)


def write_png(image: np.ndarray, output: PathLike, overwrite: bool) -> Path:
    """Write an (rows, cols, 3) uint8 picture through :func:`bigquant.io.write_image` (atomically)."""
    written = io.write_image(image, output, overwrite=overwrite)
    assert isinstance(written, Path)  # a local path: check_png refuses anything else
    return written
