"""Zarr metadata that says what an array's axes and pixels are: OME-Zarr (NGFF 0.4 and 0.5)
multiscales, bioformats2raw's series layout, Zarr v3 ``dimension_names`` and xarray's
``_ARRAY_DIMENSIONS``. Metadata only; :mod:`.zarr_image` reads the pixels.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ParameterError
from .image_info import bands_from_names, pixel_size, unit_name

#: Dimension names (Zarr v3 ``dimension_names``, xarray) -> axis letters.
_DIMENSION_LETTERS = {
    **dict.fromkeys(("y", "row", "rows", "height"), "Y"),
    **dict.fromkeys(("x", "col", "cols", "column", "columns", "width"), "X"),
    **dict.fromkeys(("c", "channel", "channels", "band", "bands", "s", "sample", "samples"), "C"),
    **dict.fromkeys(("t", "time"), "T"),
    **dict.fromkeys(("z", "depth", "plane"), "Z"),
}
#: omero channel colours that make three channels red, green, blue.
_RGB_COLOURS = ("FF0000", "00FF00", "0000FF")


@dataclass(frozen=True)
class Multiscale:
    """One OME-Zarr image: its levels' array paths (full resolution first), axes and metadata."""

    paths: tuple[str, ...]
    axes: str
    scales: tuple[tuple[float, ...] | None, ...]
    units: tuple[str | None, ...]
    version: str
    channel_names: tuple[str | None, ...]
    channel_colours: tuple[str | None, ...]


def ome_attrs(attrs: dict) -> dict:
    """The attributes holding NGFF metadata: ``attrs["ome"]`` (0.5) or ``attrs`` itself (0.4)."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def is_multiscale(attrs: dict) -> bool:
    """True for a group carrying OME-Zarr ``multiscales``."""
    return isinstance(ome_attrs(attrs).get("multiscales"), list) and bool(ome_attrs(attrs)["multiscales"])


def series_groups(attrs: dict, members: list[str]) -> list[str] | None:
    """bioformats2raw's layout (``"bioformats2raw.layout"``): the series subgroups ``0``, ``1``, ... in
    order; None for any other group."""
    if "bioformats2raw.layout" not in ome_attrs(attrs) and "bioformats2raw.layout" not in attrs:
        return None
    return sorted((m for m in members if m.isdigit()), key=int)


def series_names(p: Path, count: int) -> list[str]:
    """The images' names from bioformats2raw's ``OME/METADATA.ome.xml`` (``""`` where unknown)."""
    names = [""] * count
    xml = p / "OME" / "METADATA.ome.xml"
    try:
        root = ET.fromstring(xml.read_text()) if xml.is_file() and xml.stat().st_size < (64 << 20) else None
    except (OSError, ET.ParseError):
        root = None
    images = [e for e in root if e.tag.endswith("Image")] if root is not None else []
    for i, image in enumerate(images[:count]):
        names[i] = image.get("Name") or ""
    return names


def _axis_letter(axis: Any) -> str:
    if isinstance(axis, str):  # NGFF 0.3: names only
        axis = {"name": axis}
    name, kind = str(axis.get("name", "")).lower(), str(axis.get("type", "")).lower()
    if kind == "channel":
        return "C"
    if kind == "time":
        return "T"
    return _DIMENSION_LETTERS.get(name, "?")


def _scale(transforms: Any, ndim: int) -> tuple[float, ...] | None:
    for t in transforms or ():
        if isinstance(t, dict) and t.get("type") == "scale" and len(t.get("scale") or ()) == ndim:
            return tuple(float(v) for v in t["scale"])
    return None


def multiscale(where: str, attrs: dict) -> Multiscale:
    """The first image of a group's ``multiscales``, checked; raises InputError when malformed."""
    ome = ome_attrs(attrs)
    ms = ome["multiscales"][0]
    version = str(ome.get("version") or ms.get("version") or "0.4")
    axes_meta = ms.get("axes") or [{"name": n} for n in "tczyx"]
    axes = "".join(_axis_letter(a) for a in axes_meta)
    datasets = ms.get("datasets") or []
    if "?" in axes or "Y" not in axes or "X" not in axes or not datasets:
        raise InputError(
            f"{where} has OME-Zarr multiscales with axes {axes_meta!r} and {len(datasets)} datasets; expected y and x axes and a dataset"
        )
    top = _scale(ms.get("coordinateTransformations"), len(axes))
    scales = []
    for d in datasets:
        s = _scale(d.get("coordinateTransformations"), len(axes))
        scales.append(tuple(a * b for a, b in zip(s, top)) if s and top else s)
    units = tuple(unit_name(a.get("unit"), default=None) if isinstance(a, dict) else None for a in axes_meta)
    channels = (ome.get("omero") or {}).get("channels") or []
    return Multiscale(
        paths=tuple(str(d["path"]) for d in datasets),
        axes=axes,
        scales=tuple(scales),
        units=units,
        version=version,
        channel_names=tuple(c.get("label") for c in channels if isinstance(c, dict)),
        channel_colours=tuple(str(c.get("color", "")).upper() or None for c in channels if isinstance(c, dict)),
    )


def level_path(where: str, ms: Multiscale, level: int) -> str:
    """The array path of ``level``, or ParameterError when past the last."""
    if level >= len(ms.paths):
        n = len(ms.paths)
        raise ParameterError(f"level {level} is out of range: {where} has {n} level(s) (0..{n - 1})")
    return ms.paths[level]


def level_pixel_size(ms: Multiscale, level: int) -> dict | None:
    """``{"y", "x", "unit"}`` of ``level`` from its scale and the axes' units, or None."""
    scale = ms.scales[level]
    y, x = ms.axes.index("Y"), ms.axes.index("X")
    if scale is None or ms.units[y] != ms.units[x]:
        return None
    return pixel_size(scale[y], scale[x], ms.units[x])


def multiscale_bands(ms: Multiscale, channels: int) -> tuple[str, ...] | None:
    """Bands from the ``omero`` channels' labels, or from colours that are red, green, blue."""
    found = bands_from_names(list(ms.channel_names), channels)
    if found:
        return found
    if channels == 3 and ms.channel_colours == _RGB_COLOURS:
        return ("red", "green", "blue")
    return None


def dimension_axes(names: Any, ndim: int) -> str | None:
    """Axis letters from an array's dimension names, or None if any name is unknown."""
    if not names or len(names) != ndim:
        return None
    letters = "".join(_DIMENSION_LETTERS.get(str(n).lower(), "?") for n in names if n is not None)
    if len(letters) != ndim or "?" in letters or len(set(letters)) != ndim or "Y" not in letters or "X" not in letters:
        return None
    return letters
