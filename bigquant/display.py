"""The one display mapping: image values -> 0..255 over a display range -> RGB (and alpha).

Used by every picture bigquant makes (the preview panels, the palette swatches) and by the
label colours of OME-Zarr outputs, so a colour looks the same everywhere:

* values map to 0..255 linearly over a *display range*: ``0..255`` for uint8; ``0..max`` of the
  store's recorded ``data_range`` for wider unsigned integers (so 12-bit data in uint16 is not
  shown near-black), the full recorded ``data_range`` for floats and signed integers; without a
  recorded range, the dtype's range (``0..1`` for floats); or the range the caller gives;
* C = 1 is grey; C = 2 is grey + alpha; C = 3 is RGB; C = 4 is RGB + alpha; C >= 5 shows the
  first three channels as RGB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ParameterError


def display_range(
    dtype: Any, metadata: dict | None = None, override: Sequence[float] | None = None
) -> tuple[float, float]:
    """The values shown as 0 and 255 (see the module docstring).

    Parameters
    ----------
    dtype : numpy dtype
        The image's dtype.
    metadata : dict, optional
        A store's metadata; its ``data_range`` (low, high) is used where the rules say so.
    override : (float, float), optional
        The caller's range, used as given once checked.

    Raises
    ------
    ParameterError
        ``override`` is not two finite numbers with high > low.
    """
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
    recorded = (metadata or {}).get("data_range")
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


def rgb_alpha(
    values: np.ndarray, lo: float, hi: float, *, inplace: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """(..., C) values -> RGB floats on 0..255 (..., 3) and alpha on 0..1 (...), or None without alpha.

    With ``inplace``, ``values`` (float64) is scaled in place: a preview's picture-sized
    temporaries are its largest allocations.
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


def over_white(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(rows, cols, C) float64 values (overwritten) -> (rows, cols, 3) uint8, alpha over white."""
    rgb, alpha = rgb_alpha(values, lo, hi, inplace=True)
    if alpha is not None:
        rgb = rgb * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, 255, out=rgb)
    return rgb.astype(np.uint8)


def rgba8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(n, C) values -> (n, 4) int RGBA on 0..255 (alpha 255 where there is none)."""
    rgb, alpha = rgb_alpha(values, lo, hi)
    a = np.full(rgb.shape[:-1], 1.0) if alpha is None else alpha
    out = np.concatenate([rgb, 255.0 * a[..., None]], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(int)
