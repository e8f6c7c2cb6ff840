"""OME-TIFF output: a pyramidal tiled BigTIFF, its reduced levels in sub-IFDs, with OME-XML.

Each level is ``palette[labels]`` of one level of a label pyramid, streamed tile by tile like
:mod:`.tiff_writer` (only the labels are computed, a strip at a time; each tile is looked up in
tifffile's compression threads). The OME-XML names every band and carries the pixel size; the
resolution tags of every level carry it too (in pixels per centimetre).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile

from .._staging import staged
from ..display import bands_of
from ..reconstruction import reconstruct
from .tiff_writer import iter_tiles, tiff_options

PathLike = str | os.PathLike

#: Suffixes that make ``decode`` write an OME-TIFF instead of a plain tiled TIFF.
OME_TIFF = (".ome.tif", ".ome.tiff")


def is_ome_tiff(path: PathLike) -> bool:
    """True if ``path`` names an OME-TIFF output (``*.ome.tif``, ``*.ome.tiff``)."""
    return str(path).lower().endswith(OME_TIFF)


def _ome_metadata(names: list[str], interleaved: bool, pixel_size: dict | None, channels: int) -> dict[str, Any]:
    """tifffile's OME metadata: axes, channel names and the physical pixel size."""
    if channels == 1:
        md: dict[str, Any] = {"axes": "YX", "Channel": {"Name": names}}
    elif interleaved:  # one OME channel of 3 or 4 samples
        md = {"axes": "YXS", "Channel": {"Name": ["RGBA" if "alpha" in names else "RGB"]}}
    else:
        md = {"axes": "CYX", "Channel": {"Name": names}}
    if pixel_size:
        for ax in ("x", "y"):
            md[f"PhysicalSize{ax.upper()}"] = float(pixel_size[ax])
            md[f"PhysicalSize{ax.upper()}Unit"] = "µm"
    return md


def write_ome_tiff(
    levels: Sequence[da.Array],
    palette: np.ndarray,
    p: Path,
    overwrite: bool,
    budget: int,
    *,
    tile: Sequence[int] = (256, 256),
    compression: str | None = "zlib",
    compression_level: int | None = None,
    bands: Sequence[str] | None = None,
    pixel_size: dict | None = None,
) -> Path:
    """Write ``palette[levels[l]]`` as an OME-TIFF at ``p``: level 0 in the main IFD, the others in its sub-IFDs.

    Parameters
    ----------
    levels : list of dask arrays of shape (rows_l, cols_l), uint8 or uint16
        A label pyramid, full resolution first (each level half the one above).
    palette : ndarray of shape (K, C)
    p : Path
        Output; built under a hidden sibling and renamed into place.
    budget : int
        Memory budget in bytes: each strip of labels holds at most 1/8 of it.
    tile, compression, compression_level
        As for :func:`bigquant.io.write_image`'s TIFF.
    bands : list of str, optional
        Band meanings (:func:`bigquant.display.bands_of`): red, green, blue (and alpha) are
        written interleaved as one RGB(A) OME channel; other bands as one named page each.
    pixel_size : dict, optional
        ``{"y", "x", "unit": "micrometer"}`` of level 0.
    """
    cb = np.asarray(palette)
    channels = cb.shape[1]
    names = bands_of({"bands": list(bands)} if bands is not None else None, channels)
    interleaved = channels == 1 or names[:3] == ["red", "green", "blue"]
    metadata = _ome_metadata(names, interleaved, pixel_size, channels)
    with staged(p, overwrite) as tmp, tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tw:
        for lv, labels in enumerate(levels):
            scale = None if not pixel_size else {ax: float(pixel_size[ax]) * 2**lv for ax in ("y", "x")}
            options = tiff_options(reconstruct(labels, cb), tile, compression, compression_level, names, scale)
            del options["bigtiff"]
            indices = labels[..., None]
            if interleaved:
                tiles: Any = iter_tiles(indices, options["tile"], budget // 8, cb)
            else:  # one page per band, each a pass over the labels
                options.update(shape=(channels, *labels.shape), photometric="minisblack", planarconfig=None)
                options.pop("extrasamples", None)
                tiles = itertools.chain.from_iterable(
                    iter_tiles(indices, options["tile"], budget // 8, cb[:, [i]]) for i in range(channels)
                )
            place = {"subifds": len(levels) - 1, "metadata": metadata} if lv == 0 else {"subfiletype": 1}
            tw.write(tiles, maxworkers=os.cpu_count() or 1, **options, **place)
    return p
