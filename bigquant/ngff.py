"""OME-Zarr (NGFF 0.5) metadata, in one place: axes with units, scales per level, ``omero``
channels and ``image-label`` colours.

A leaf: the store's labels group (:mod:`bigquant.store`) and decode's OME-Zarr output
(:mod:`bigquant.io.ome_zarr`) both describe themselves with it, and neither imports the other.
Pixel sizes are bigquant's ``{"y": float, "x": float, "unit": "micrometer"}``
(:func:`bigquant.params.check_pixel_size`); without one the axes have no unit and level 0 has
scale 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .display import channel_colours, display_range, rgba8

#: The NGFF version bigquant writes.
VERSION = "0.5"
#: How every pyramid level is made from the one above: its 2 x 2 blocks' most frequent label.
DOWNSAMPLING = {
    "type": "mode",
    "metadata": {"description": "each level is the 2 x 2 mode of the one above (ties to the smallest label)"},
}


def axes(pixel_size: dict | None, channels: bool = False) -> list[dict[str, str]]:
    """NGFF axes: ``c`` (with ``channels``), then ``y`` and ``x`` of type space, with the unit if known."""
    space = [{"name": n, "type": "space"} for n in ("y", "x")]
    if pixel_size:
        for ax in space:
            ax["unit"] = str(pixel_size["unit"])
    return ([{"name": "c", "type": "channel"}] if channels else []) + space


def datasets(levels: int, pixel_size: dict | None, channels: bool = False) -> list[dict[str, Any]]:
    """One dataset per level, paths ``"0"``, ``"1"``, ...; level ``l`` has scale ``2**l`` times the pixel size."""
    sy, sx = (float(pixel_size["y"]), float(pixel_size["x"])) if pixel_size else (1.0, 1.0)
    out = []
    for lv in range(levels):
        scale = [sy * 2**lv, sx * 2**lv]
        out.append(
            {
                "path": str(lv),
                "coordinateTransformations": [{"type": "scale", "scale": ([1.0] if channels else []) + scale}],
            }
        )
    return out


def multiscales(name: str, levels: int, pixel_size: dict | None, channels: bool = False) -> list[dict[str, Any]]:
    """The ``multiscales`` list of one image of ``levels`` levels."""
    return [
        {
            "name": name,
            "axes": axes(pixel_size, channels),
            "datasets": datasets(levels, pixel_size, channels),
            **DOWNSAMPLING,
        }
    ]


def label_colours(codebook: np.ndarray, metadata: dict | None, bands: Sequence[str]) -> list[dict[str, Any]]:
    """``image-label`` ``colors``: every codebook index 0..K-1 with its display RGBA (0-255),
    by :mod:`bigquant.display`'s rules (``metadata``'s ``data_range`` for non-uint8 codebooks)."""
    cb = np.asarray(codebook)
    lo, hi = display_range(cb.dtype, metadata)
    return [{"label-value": i, "rgba": rgba} for i, rgba in enumerate(rgba8(cb, lo, hi, bands).tolist())]


def label_image(levels: int, pixel_size: dict | None, colours: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``ome`` attribute of a multiscale label image group."""
    return {
        "version": VERSION,
        "multiscales": multiscales("labels", levels, pixel_size),
        "image-label": {"colors": colours},
    }


def omero(bands: Sequence[str], dtype: Any, metadata: dict | None) -> dict[str, Any]:
    """An ``omero`` block: per band its name, colour, shown or not, and the display window, so
    viewers that add channels up show RGB in true colour."""
    lo, hi = display_range(dtype, metadata)
    dt = np.dtype(dtype)
    full = (float(np.iinfo(dt).min), float(np.iinfo(dt).max)) if dt.kind in "ui" else (lo, hi)
    channels = []
    for name, (colour, shown) in zip(bands, channel_colours(bands)):
        channels.append(
            {
                "label": name,
                "color": colour,
                "active": shown,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": {"start": lo, "end": hi, "min": full[0], "max": full[1]},
            }
        )
    return {"channels": channels, "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0}}


def image(
    levels: int, pixel_size: dict | None, bands: Sequence[str], dtype: Any, metadata: dict | None
) -> dict[str, Any]:
    """The ``ome`` attribute of a multiscale (c, y, x) image group with its ``omero`` block."""
    return {
        "version": VERSION,
        "multiscales": multiscales("image", levels, pixel_size, channels=True),
        "omero": omero(bands, dtype, metadata),
    }
