"""OME-Zarr (NGFF 0.5, Zarr v3) output: a multiscale image plus its labels, for napari & co."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from .._staging import staged
from ..display import display_range, rgba8
from ..errors import ParameterError
from ._checks import check_output_path

PathLike = str | os.PathLike

#: Suffix that makes ``decode`` write an OME-Zarr (NGFF 0.5) image with a labels group.
OME_ZARR = ".ome.zarr"
#: OME-Zarr pyramids stop when the next level's shorter side would fall below this.
OME_MIN_SIDE = 256


def is_ome_zarr(path: PathLike) -> bool:
    """True if ``path`` names an OME-Zarr output (``*.ome.zarr``)."""
    return str(path).lower().rstrip("/").endswith(OME_ZARR)


def label_colours(codebook: np.ndarray, data_range: tuple[float, float] | None) -> list[list[int]]:
    """RGBA 0-255 colours of codebook entries (K, C) for viewers, by :mod:`bigquant.display`'s rules
    (``data_range`` is the store's recorded one)."""
    cb = np.asarray(codebook)
    lo, hi = display_range(cb.dtype, {"data_range": list(data_range)} if data_range else None)
    return rgba8(cb, lo, hi).tolist()


def write_ome_zarr(
    image: da.Array,
    labels: da.Array,
    codebook: np.ndarray,
    path: PathLike,
    *,
    overwrite: bool = False,
    data_range: tuple[float, float] | None = None,
    label_name: str = "quantized",
) -> Path:
    """Write an OME-Zarr (NGFF 0.5, Zarr v3) multiscale image plus its labels, for napari & co.

    The image is the reconstruction with axes (c, y, x); ``labels/<label_name>`` holds the labels
    (y, x) with as many resolution levels as the image (halving until the shorter side would
    drop below :data:`OME_MIN_SIDE`) and ``image-label`` ``colors`` listing every codebook index,
    0 included, with its colour. Written with ome-zarr-py's writer, level by level from the lazy
    arrays, into a hidden sibling that is renamed into place.

    Parameters
    ----------
    image : dask array of shape (rows, cols, C)
    labels : dask array of shape (rows, cols), uint8 or uint16
    codebook : ndarray of shape (K, C)
    path : path ending in ``.ome.zarr``
    data_range : (float, float), optional
        The store's recorded value range, for the label colours of a non-uint8 codebook
        (:func:`bigquant.display.display_range`).
    """
    try:
        from ome_zarr.format import FormatV05
        from ome_zarr.writer import write_image as ome_write_image
        from ome_zarr.writer import write_labels as ome_write_labels
    except ImportError as exc:
        raise ParameterError(
            "writing OME-Zarr needs the ome-zarr package: pip install ome-zarr (the ome extra)"
        ) from exc
    p = check_output_path(path, overwrite=overwrite)
    rows, cols = image.shape[:2]
    factors = []
    f = 2
    while min(rows, cols) // f >= OME_MIN_SIDE:
        factors.append(f)
        f *= 2
    colors = [{"label-value": i, "rgba": rgba} for i, rgba in enumerate(label_colours(codebook, data_range))]
    cyx = image.transpose(2, 0, 1)
    ch = (cyx.shape[0], image.chunks[0][0], image.chunks[1][0])
    with staged(p, overwrite) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            ome_write_image(
                cyx, root, scale_factors=factors, axes="cyx", fmt=FormatV05(), storage_options={"chunks": ch}
            )
            ome_write_labels(
                labels,
                root,
                name=label_name,
                scaler=None,
                scale_factors=factors,
                axes="yx",
                fmt=FormatV05(),
                label_metadata={"colors": colors, "source": {"image": "../../"}},
                storage_options={"chunks": ch[1:]},
            )
    return p
