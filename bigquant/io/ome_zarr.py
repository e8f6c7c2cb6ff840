"""OME-Zarr (NGFF 0.5, Zarr v3) output: a multiscale image plus its labels, for napari & co.

Every level of the image is ``codebook[labels]`` of one level of a label pyramid (a store's own,
:meth:`bigquant.Store.pyramid`), written chunk by chunk with the same level of the labels:
nothing is resampled from the full-size image. The metadata (:mod:`bigquant.ngff`) carries the
pixel size and unit of every level, an ``omero`` block naming and colouring each band (so an
RGB image shows in true colour), and the labels' ``image-label`` colours for every codebook index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

from .. import ngff
from .._dask import compute_settled, regular_chunks
from .._objstore import Location, open_array, open_group
from ..display import bands_of
from ..reconstruction import lookup
from ._checks import check_output, staged_output

PathLike = str | os.PathLike

#: Suffix that makes ``decode`` write an OME-Zarr (NGFF 0.5) image with a labels group.
OME_ZARR = ".ome.zarr"


def is_ome_zarr(path: PathLike) -> bool:
    """True if ``path`` names an OME-Zarr output (``*.ome.zarr``)."""
    return str(path).lower().rstrip("/").endswith(OME_ZARR)


def _set_attributes(node: Path | Location, attributes: dict[str, Any]) -> None:
    """Set a group's attributes; at a URL one PUT, so the root's is the commit (written last)."""
    if isinstance(node, Location):
        doc = json.loads(node.fs.cat_file(f"{node.path}/zarr.json"))
        doc["attributes"] = attributes
        node.fs.pipe_file(f"{node.path}/zarr.json", json.dumps(doc, indent=2).encode())
        return
    zj = node / "zarr.json"
    doc = json.loads(zj.read_text())
    doc["attributes"] = attributes
    zj.write_text(json.dumps(doc, indent=2))


def _node(node: Path | Location, key: str) -> Path | Location:
    return node.child(key) if isinstance(node, Location) else node / key


def _child(node: Path | Location, key: str) -> str | Location:
    """What a task opens ``key`` below ``node`` by: an absolute path, or a URL."""
    return node.child(key) if isinstance(node, Location) else os.path.abspath(node / key)


def _write_chunk(
    labels: np.ndarray, codebook: np.ndarray, image: str | Location, label: str | Location, block_info=None
) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[0]["array-location"]
    open_array(label, "r+")[r0:r1, c0:c1] = labels
    open_array(image, "r+")[:, r0:r1, c0:c1] = np.moveaxis(lookup(labels, codebook), -1, 0)
    return np.zeros((1, 1), np.int8)


def write_ome_zarr(
    levels: Sequence[da.Array],
    codebook: np.ndarray,
    path: PathLike | Location,
    *,
    overwrite: bool = False,
    metadata: dict | None = None,
    label_name: str = "quantized",
) -> Path | Location:
    """Write an OME-Zarr (NGFF 0.5, Zarr v3) multiscale image and its labels from a label pyramid.

    The image (axes c, y, x) at ``path/0, 1, ...`` is ``codebook[levels[l]]``; the labels at
    ``path/labels/<label_name>/0, 1, ...`` are the levels themselves, with ``image-label``
    ``colors`` listing every codebook index, 0 included. Built in a hidden sibling that is
    renamed into place; at a URL (a :class:`~bigquant._objstore.Location`) in place behind a
    placeholder root, the real root's attributes PUT last.

    Parameters
    ----------
    levels : list of dask arrays of shape (rows_l, cols_l), uint8 or uint16
        The label pyramid, full resolution first (each level half the one above).
    codebook : ndarray of shape (K, C)
    path : path or Location ending in ``.ome.zarr``
    metadata : dict, optional
        A store's metadata: ``pixel_size`` for the scales and units, ``bands`` for the channel
        names and colours, ``data_range`` for the display window of non-uint8 images.
    """
    p = check_output(path, overwrite=overwrite)
    cb = np.asarray(codebook)
    meta = dict(metadata or {})
    bands = bands_of(meta, cb.shape[1])
    pixel_size = meta.get("pixel_size")
    levels = [regular_chunks(x) for x in levels]
    cbd = dask.delayed(cb, pure=True)  # one copy in the graph, not one per task
    with staged_output(p, overwrite) as tmp:
        root = open_group(tmp, "r+") if isinstance(tmp, Location) else zarr.create_group(str(tmp), zarr_format=3)
        container = root.create_group("labels")
        labels = container.create_group(label_name)
        parts = []
        for lv, x in enumerate(levels):
            rows, cols = x.shape
            cr, cc = (int(n) for n in x.chunksize)
            root.create_array(
                str(lv),
                shape=(cb.shape[1], rows, cols),
                chunks=(cb.shape[1], cr, cc),
                dtype=cb.dtype,
                dimension_names=["c", "y", "x"],
            )
            labels.create_array(str(lv), shape=(rows, cols), chunks=(cr, cc), dtype=x.dtype, dimension_names=["y", "x"])
            image_path, label_path = _child(tmp, str(lv)), _child(tmp, f"labels/{label_name}/{lv}")
            done = da.map_blocks(
                _write_chunk,
                x,
                cbd,
                image_path,
                label_path,
                dtype=np.int8,
                chunks=((1,) * x.numblocks[0], (1,) * x.numblocks[1]),
                token="bigquant-write-ome-zarr",
                meta=np.empty((0, 0), np.int8),
            )
            parts.extend(done.to_delayed().ravel().tolist())
        compute_settled(*parts)
        colours = ngff.label_colours(cb, meta, bands)
        label_ome = ngff.label_image(len(levels), pixel_size, colours)
        label_ome["image-label"]["source"] = {"image": "../../"}
        _set_attributes(_node(tmp, f"labels/{label_name}"), {"ome": label_ome})
        _set_attributes(_node(tmp, "labels"), {"ome": {"version": ngff.VERSION, "labels": [label_name]}})
        _set_attributes(tmp, {"ome": ngff.image(len(levels), pixel_size, bands, cb.dtype, meta)})
    return p
