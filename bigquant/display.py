"""The one display mapping: image values -> 0..255 over a display range -> RGB (and alpha).

Used by every picture bigquant makes (the preview panels, the palette swatches) and by the
label colours of OME-Zarr outputs, so a colour looks the same everywhere:

* values map to 0..255 linearly over a *display range*: ``0..255`` for uint8; ``0..max`` of the
  store's recorded ``data_range`` for wider unsigned integers (so 12-bit data in uint16 is not
  shown near-black), the full recorded ``data_range`` for floats and signed integers; without a
  recorded range, the dtype's range (``0..1`` for floats); or the range the caller gives;
* which band shows as what follows the band meanings (``bands``, :func:`bands_of`):
  red/green/blue bands as RGB, else a grey band as grey, else the first three plain bands as RGB
  (one plain band: grey); a band named alpha is composited. Without recorded meanings C = 1 is
  grey, C = 2 grey + alpha, C = 3 RGB, and C >= 4 plain bands (a fourth band is alpha only when
  the image says so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ParameterError

#: Band meanings a store records (``bands``): colour roles, grey, alpha, or a plain ``band_<i>``.
BAND_ROLES = ("red", "green", "blue", "alpha", "grey")


def check_bands(bands: Any, channels: int) -> list[str]:
    """``bands`` as a list of ``channels`` band names, each a role of :data:`BAND_ROLES` or
    ``band_<i>`` (``i`` its own position); no name twice. Raises ParameterError otherwise."""
    if isinstance(bands, str) or not isinstance(bands, (list, tuple)):
        raise ParameterError(f"bands must be a list of {channels} names, got {bands!r}")
    names = [b for b in bands if isinstance(b, str)]
    if len(names) != len(bands) or len(names) != channels:
        raise ParameterError(f"bands {list(bands)!r} must be {channels} names, one per channel of the image")
    for i, name in enumerate(names):
        if name not in BAND_ROLES and name != f"band_{i}":
            raise ParameterError(f"band {i} is named {name!r}; a band is one of {', '.join(BAND_ROLES)} or 'band_{i}'")
    if len(set(names)) != len(names):
        raise ParameterError(f"bands {names!r} name a band twice")
    return names


def default_bands(channels: int) -> list[str]:
    """Band meanings of an image that records none: grey (C=1), grey + alpha (C=2), RGB (C=3),
    plain bands otherwise. A fourth band is alpha only when the image says so."""
    if channels == 1:
        return ["grey"]
    if channels == 2:
        return ["grey", "alpha"]
    if channels == 3:
        return ["red", "green", "blue"]
    return [f"band_{i}" for i in range(channels)]


def bands_of(metadata: dict | None, channels: int) -> list[str]:
    """The band meanings a store records, or :func:`default_bands` when it records none (or
    invalid ones: an old or hand-edited store is shown, never refused, for its band names)."""
    recorded = (metadata or {}).get("bands")
    if recorded is not None:
        try:
            return check_bands(recorded, channels)
        except ParameterError:
            pass
    return default_bands(channels)


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


def band_layout(bands: Sequence[str]) -> tuple[list[int], int | None]:
    """(indices of the bands shown as R, G, B -- one index thrice for grey --, alpha index or None)."""
    names = list(bands)
    alpha = names.index("alpha") if "alpha" in names else None
    if all(role in names for role in ("red", "green", "blue")):
        return [names.index("red"), names.index("green"), names.index("blue")], alpha
    if "grey" in names:
        return [names.index("grey")] * 3, alpha
    plain = [i for i, name in enumerate(names) if name != "alpha"]
    return (plain[:3] if len(plain) >= 3 else [plain[0]] * 3), alpha


def channel_colours(bands: Sequence[str]) -> list[tuple[str, bool]]:
    """(hex colour ``RRGGBB``, shown) per band, for viewers that add channels up (OME ``omero``):
    the bands :func:`band_layout` shows as red, green, blue (or grey: white), alpha hidden."""
    rgb, alpha = band_layout(bands)
    out = [("FFFFFF", False)] * len(bands)
    if len(set(rgb)) == 1:
        out[rgb[0]] = ("FFFFFF", True)
    else:
        for index, colour in zip(rgb, ("FF0000", "00FF00", "0000FF")):
            out[index] = (colour, True)
    if alpha is not None:
        out[alpha] = ("FFFFFF", False)
    return out


def rgb_alpha(
    values: np.ndarray, lo: float, hi: float, *, bands: Sequence[str] | None = None, inplace: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """(..., C) values -> RGB floats on 0..255 (..., 3) and alpha on 0..1 (...), or None without alpha.

    ``bands`` names the C bands (default :func:`default_bands`). With
    ``inplace``, ``values`` (float64) is scaled in place: a preview's picture-sized temporaries
    are its largest allocations.
    """
    if inplace:
        v = values
        v -= lo
        v *= 255.0 / (hi - lo)
    else:
        v = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    c = v.shape[-1]
    names = bands_of(None, c) if bands is None else check_bands(bands, c)
    index, a = band_layout(names)
    rgb = v[..., index] if index != [0, 1, 2] or c != 3 else v
    alpha = None if a is None else np.clip(v[..., a] / 255.0, 0.0, 1.0)
    return rgb, alpha


def over_white(values: np.ndarray, lo: float, hi: float, bands: Sequence[str] | None = None) -> np.ndarray:
    """(rows, cols, C) float64 values (overwritten) -> (rows, cols, 3) uint8, alpha over white."""
    rgb, alpha = rgb_alpha(values, lo, hi, bands=bands, inplace=True)
    if alpha is not None:
        rgb = rgb * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, 255, out=rgb)
    return rgb.astype(np.uint8)


def rgba8(values: np.ndarray, lo: float, hi: float, bands: Sequence[str] | None = None) -> np.ndarray:
    """(n, C) values -> (n, 4) int RGBA on 0..255 (alpha 255 where there is none)."""
    rgb, alpha = rgb_alpha(values, lo, hi, bands=bands)
    a = np.full(rgb.shape[:-1], 1.0) if alpha is None else alpha
    out = np.concatenate([rgb, 255.0 * a[..., None]], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(int)
