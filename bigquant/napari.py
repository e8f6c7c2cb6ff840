"""The napari reader of bigquant stores (npe2 manifest: ``bigquant/napari.yaml``).

``napari scan.bq.zarr`` opens a store as two layers, both multiscale and lazy (napari reads
only the chunks of the level it shows): the reconstruction ``codebook[labels/l]`` as an image
(RGB when the bands are red, green, blue and maybe alpha; else one layer per band, coloured as
the OME ``omero`` block colours them), and the labels with the codebook as their direct colour
map. The scale is the store's pixel size in micrometres (1 when unknown). Version-1 stores, which
hold no pyramid, get their reduced levels computed from the labels when napari asks for them.

napari is not imported: the reader returns plain layer data tuples, so it is tested without a GUI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import display
from .errors import StoreFormatError
from .reconstruction import reconstruct
from .store import Store

#: A layer as napari readers return it: (data, keyword arguments of the layer, layer type).
LayerData = tuple[Any, dict[str, Any], str]


def _one_path(path: Any) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[LayerData]] | None:
    """The reader for ``path`` if it is a bigquant store (napari's ``get_reader`` hook), else None."""
    p = _one_path(path)
    if p is None or not (p / "zarr.json").is_file():
        return None
    try:
        Store(p)
    except StoreFormatError:
        return None
    return read_store


def read_store(path: str | os.PathLike | list) -> list[LayerData]:
    """The layers of a store: its reconstruction (image) then its labels, both multiscale.

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``[(levels of codebook[labels] (rows_l, cols_l, C), {...}, "image"),
        (levels of labels (rows_l, cols_l), {...}, "labels")]``; each ``data`` a list of lazy
        dask arrays, full resolution first.
    """
    p = _one_path(path)
    if p is None:
        raise StoreFormatError("the bigquant reader opens one store at a time")
    s = Store(p)
    meta = s.metadata
    ps = s.pixel_size
    scale = (ps["y"], ps["x"]) if ps else (1.0, 1.0)
    name = s.name.removesuffix(".zarr").removesuffix(".bq")
    levels = s.pyramid()
    lo, hi = display.display_range(meta["dtype"], meta)
    bands = s.bands
    recon = [reconstruct(x, s.codebook) for x in levels]
    common: dict[str, Any] = {
        "multiscale": len(levels) > 1,
        "scale": scale,
        "metadata": {"bigquant": meta, "path": str(s.path)},
    }
    if bands[:3] == ["red", "green", "blue"]:
        image: dict[str, Any] = {"name": name, "rgb": True, "contrast_limits": (lo, hi), **common}
        if len(bands) > 3 and bands[3] != "alpha":  # napari would take band 4 for alpha: show RGB
            recon = [x[..., :3] for x in recon]
    else:
        colours = [colour for colour, _ in display.channel_colours(bands)]
        image = {
            "name": [f"{name} {band}" for band in bands],
            "channel_axis": 2,
            "rgb": False,
            "colormap": [_colormap(c) for c in colours],
            "visible": [shown for _, shown in display.channel_colours(bands)],
            "contrast_limits": [(lo, hi)] * len(bands),
            "blending": "additive",
            **common,
        }
    rgba = display.rgba8(s.codebook, lo, hi, bands) / 255.0
    # Every label has its colour, 0 included (napari would otherwise show 0 as background);
    # None is napari's key for values without one: there are none below K.
    label_colours: dict[int | None, tuple[float, ...]] = {None: (0.0, 0.0, 0.0, 0.0)}
    label_colours.update({int(i): tuple(float(v) for v in rgba[i]) for i in range(s.k)})
    labels = {
        "name": f"{name} labels",
        "colormap": label_colours,
        "opacity": 1.0,
        "visible": False,  # the same picture as the image; shown, it tells each pixel's label
        **common,
    }
    return [(recon, image, "image"), (levels, labels, "labels")]


def _colormap(hex_colour: str) -> str:
    """napari's name for a channel colour of :func:`bigquant.display.channel_colours`."""
    return {"FF0000": "red", "00FF00": "green", "0000FF": "blue"}.get(hex_colour, "gray")
