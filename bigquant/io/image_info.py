"""What bigquant knows about an input before reading its pixels: :class:`ImageInfo`.

Every reader describes its input the same way, from metadata alone (headers, IFDs, Zarr
metadata; never the pixels): the format, the series and pyramid levels it holds, the one image
bigquant will read (shape, dtype, tiles), the physical pixel size and what each band means.
:func:`bigquant.io.inspect` returns it; :func:`bigquant.io.open_image` returns it with the lazy
array; ``bigquant compress`` records its ``pixel_size`` and ``bands`` in the store, and
``bigquant info INPUT`` prints it.

Vocabularies:

* ``bands``: one string per channel, each ``"red"``, ``"green"``, ``"blue"``, ``"alpha"``,
  ``"grey"`` or ``"band_<i>"`` (0-based: a band whose meaning the input does not state). A band
  is ``"alpha"`` only where the input says so (TIFF ExtraSamples, a PNG colour type with alpha,
  an OME channel named so).
* ``pixel_size``: ``{"y": float, "x": float, "unit": name}`` with an NGFF (UDUNITS-2) unit name
  such as ``"micrometer"``, or None when the input does not state it. It is the size of a pixel
  of the level read (a level of a pyramid has larger pixels than level 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError

#: The meanings a band can have besides ``band_<i>``.
BAND_NAMES = ("red", "green", "blue", "alpha", "grey")
#: Machine name of each format -> the name people know it by.
FORMAT_NAMES = {
    "svs": "Aperio SVS",
    "ndpi": "Hamamatsu NDPI",
    "scn": "Leica SCN",
    "bif": "Ventana BIF",
    "qptiff": "Akoya QPTIFF",
    "philips": "Philips TIFF",
    "ome-tiff": "OME-TIFF",
    "geotiff": "GeoTIFF",
    "imagej": "ImageJ TIFF",
    "tiff": "TIFF",
    "png": "PNG",
    "jpeg": "JPEG",
    "zarr": "Zarr",
    "ome-zarr": "OME-Zarr",
}
#: Unit spellings found in OME-XML, ImageJ and NGFF -> the NGFF (UDUNITS-2) unit name.
_UNITS = {
    "µm": "micrometer",
    "\u03bcm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "km": "kilometer",
    "å": "angstrom",
    "pm": "picometer",
    "in": "inch",
    "inches": "inch",
    "ft": "foot",
    "feet": "foot",
    "yd": "yard",
    "mi": "mile",
    "pc": "parsec",
    "metre": "meter",
}
#: The NGFF space units (pass through as they are).
_NGFF_UNITS = frozenset(
    "angstrom attometer centimeter decimeter exameter femtometer foot gigameter hectometer inch "
    "kilometer megameter meter micrometer mile millimeter nanometer parsec petameter picometer "
    "terameter yard yoctometer yottameter zeptometer zettameter".split()
)
#: Channel names that state a band's meaning (OME channel names, NGFF omero labels).
_CHANNEL_WORDS = {
    "red": "red",
    "r": "red",
    "green": "green",
    "g": "green",
    "blue": "blue",
    "b": "blue",
    "alpha": "alpha",
    "a": "alpha",
    "transparency": "alpha",
    "opacity": "alpha",
    "grey": "grey",
    "gray": "grey",
    "luminance": "grey",
}
#: First words of the names of a slide's associated images (tifffile's series names, OME image names).
ASSOCIATED_NAMES = ("label", "macro", "thumbnail", "overview", "map", "probability")
#: Axis letters ``--axes`` takes: Y rows, X columns, C (or S) channels, T and Z of length 1.
AXIS_LETTERS = "YXCSTZ"


@dataclass(frozen=True)
class LevelInfo:
    """One resolution level of a series: its shape in the series' axes, and its tile (rows, cols)."""

    shape: tuple[int, ...]
    tile: tuple[int, int] | None


@dataclass(frozen=True)
class SeriesInfo:
    """One image of a file: a slide's main image, an associated image, or a plain image.

    ``associated`` marks the label, macro, thumbnail (and similar) images a slide carries beside
    the slide itself: bigquant never reads one unless ``series=`` asks for it.
    """

    index: int
    name: str
    associated: bool
    axes: str
    dtype: str
    levels: tuple[LevelInfo, ...]


@dataclass(frozen=True)
class ImageInfo:
    """An input described from its metadata: the format, its series and levels, the image read.

    Attributes
    ----------
    path : str
        The input's absolute path.
    container : {"tiff", "png", "jpeg", "zarr"}
        The file format by its signature (which reader reads it).
    format : str
        A key of :data:`FORMAT_NAMES`: ``"svs"``, ``"ndpi"``, ``"ome-tiff"``, ``"ome-zarr"``, ...
    detail : str
        The variant: ``"BigTIFF, little-endian"``, ``"Zarr v3"``, ``"NGFF 0.4"``, ...
    file_bytes : int
        Bytes on disk (every file of a Zarr folder).
    series, level : int
        The series and pyramid level read (0 for formats without them).
    shape : (int, int, int)
        (rows, cols, C) of the image read.
    dtype : numpy.dtype
        Its native-order pixel dtype.
    tile : (int, int) or None
        The source's tile, strip or chunk (rows, cols); None for PNG and JPEG (decoded whole).
    axes : str
        The source's axes in its own order, e.g. ``"YXS"``, ``"CYX"``, ``"TCZYX"``.
    bands : tuple of str
        What each of the C bands is (see the module's vocabulary).
    pixel_size : dict or None
        ``{"y", "x", "unit"}`` of the level read, or None when the input does not state it.
    compression : str or None
        The level's codec as the format names it (``"JPEG"``, ``"ADOBE_DEFLATE"``, ``"zstd"``).
    all_series : tuple of SeriesInfo
        Every series of the input with its levels (one series for single-image formats).
    """

    path: str
    container: str
    format: str
    detail: str
    file_bytes: int
    series: int
    level: int
    shape: tuple[int, int, int]
    dtype: np.dtype
    tile: tuple[int, int] | None
    axes: str
    bands: tuple[str, ...]
    pixel_size: dict | None
    compression: str | None = None
    all_series: tuple[SeriesInfo, ...] = field(default_factory=tuple)

    @property
    def format_name(self) -> str:
        """The format as people name it: ``"Aperio SVS"``."""
        return FORMAT_NAMES.get(self.format, self.format)

    @property
    def levels(self) -> tuple[LevelInfo, ...]:
        """The levels of the series read."""
        for s in self.all_series:
            if s.index == self.series:
                return s.levels
        return ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists, the dtype by name)."""
        return {
            "path": self.path,
            "container": self.container,
            "format": self.format,
            "format_name": self.format_name,
            "detail": self.detail,
            "file_bytes": self.file_bytes,
            "series": self.series,
            "level": self.level,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "tile": list(self.tile) if self.tile else None,
            "axes": self.axes,
            "bands": list(self.bands),
            "pixel_size": self.pixel_size,
            "compression": self.compression,
            "all_series": [
                {
                    "index": s.index,
                    "name": s.name,
                    "associated": s.associated,
                    "axes": s.axes,
                    "dtype": s.dtype,
                    "levels": [
                        {"shape": list(lv.shape), "tile": list(lv.tile) if lv.tile else None} for lv in s.levels
                    ],
                }
                for s in self.all_series
            ],
        }


def default_bands(channels: int) -> tuple[str, ...]:
    """Bands of an input that does not say what they are: 1 is grey, 3 are red, green, blue (the
    convention of every image format), any other count plain bands (a fourth is not alpha)."""
    if channels == 1:
        return ("grey",)
    if channels == 3:
        return ("red", "green", "blue")
    return tuple(f"band_{i}" for i in range(channels))


def bands_from_names(names: list[str | None], channels: int) -> tuple[str, ...] | None:
    """Bands from channel names (OME ``Channel/@Name``, NGFF ``omero`` labels), or None when no
    name states a meaning; a name that states none makes that band ``band_<i>``."""
    if len(names) != channels:
        return None
    meant = [_CHANNEL_WORDS.get(str(n or "").strip().lower()) for n in names]
    if not any(meant):
        return None
    return tuple(m or f"band_{i}" for i, m in enumerate(meant))


def unit_name(unit: Any, default: str | None = "micrometer") -> str | None:
    """The NGFF unit name of ``unit`` (``"µm"`` -> ``"micrometer"``), ``default`` for an empty
    one, or None for a unit that is not a length."""
    if unit is None or str(unit).strip() == "":
        return default
    text = str(unit).strip()
    low = text.lower()
    if low in _NGFF_UNITS:
        return low
    return _UNITS.get(text, _UNITS.get(low))


def pixel_size(y: Any, x: Any, unit: str | None) -> dict | None:
    """``{"y", "x", "unit"}`` if both sizes are positive finite numbers and the unit is known."""
    try:
        fy, fx = float(y), float(x)
    except (TypeError, ValueError):
        return None
    if unit is None or not (math.isfinite(fy) and math.isfinite(fx) and fy > 0 and fx > 0):
        return None
    return {"y": fy, "x": fx, "unit": unit}


#: Micrometres per unit of the NGFF length units bigquant reads.
_MICROMETRES = {
    "nanometer": 1e-3,
    "picometer": 1e-6,
    "angstrom": 1e-4,
    "micrometer": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
    "kilometer": 1e9,
    "inch": 25400.0,
    "foot": 304800.0,
    "yard": 914400.0,
    "mile": 1.609344e9,
}


def in_micrometres(size: dict | None) -> dict | None:
    """``size`` converted to micrometres (the unit the store records), or None for an unknown unit."""
    if size is None or size["unit"] not in _MICROMETRES:
        return None
    f = _MICROMETRES[size["unit"]]
    return pixel_size(size["y"] * f, size["x"] * f, "micrometer")


def scaled(size: dict | None, base: tuple[int, int], level: tuple[int, int]) -> dict | None:
    """The pixel size of a pyramid level of (rows, cols) ``level`` from that of level 0 ``base``."""
    if size is None or base == level:
        return size
    return pixel_size(size["y"] * base[0] / level[0], size["x"] * base[1] / level[1], size["unit"])


def parse_axes(text: str | None) -> str | None:
    """``--axes`` checked: letters of :data:`AXIS_LETTERS` (any case), each once, with Y and X and
    at most one channel axis (C or S); returned upper case. Raises ParameterError."""
    if text is None:
        return None
    axes = str(text).strip().upper()
    bad = sorted(set(axes) - set(AXIS_LETTERS))
    if (
        not axes
        or bad
        or len(set(axes)) != len(axes)
        or "Y" not in axes
        or "X" not in axes
        or ("C" in axes and "S" in axes)
    ):
        raise ParameterError(
            f"axes {text!r} is not a set of the letters Y, X, C (or S), T, Z, each once, with Y and X "
            "and at most one channel axis (e.g. CYX, YXC, TCZYX)"
        )
    return axes


def place_axes(
    where: str, shape: tuple[int, ...], axes: str, channel_letters: str = "CS"
) -> tuple[int, int, int | None]:
    """Positions of rows (Y), columns (X) and channels in an array of ``shape`` with ``axes``.

    A channel axis is one of ``channel_letters``; every other axis must have length 1. Raises
    InputError naming the shape, the axes and the axis that does not fit (a stack, a time
    series, two channel axes, a count of axes that does not match the shape).
    """
    if len(axes) != len(shape):
        raise InputError(f"{where} has shape {shape} ({len(shape)} axes), which the axes {axes!r} do not fit")
    extra = [(i, a) for i, a in enumerate(axes) if a not in "YX" and shape[i] > 1]
    if len(extra) > 1:
        raise InputError(
            f"{where} has shape {shape} with axes {axes!r}: more than 3 dimensions; bigquant "
            "reads one 2-D image with channels; extract one plane first"
        )
    if extra and extra[0][1] not in channel_letters:
        i, a = extra[0]
        raise InputError(
            f"{where} has shape {shape} with axes {axes!r}: its {a!r} axis of length {shape[i]} is a "
            "stack of images, not channels; extract one plane first"
        )
    return axes.index("Y"), axes.index("X"), (extra[0][0] if extra else None)


def is_associated_name(name: str | None) -> bool:
    """True for the name of a slide's associated image: ``Label``, ``Macro``, ``Thumbnail``,
    ``macro image``, ``label_image``, ... (the first word decides)."""
    words = re.split(r"[\s_-]+", str(name or "").strip().lower())
    return words[0] in ASSOCIATED_NAMES


def pick_series(where: str, series: int | None, listing: tuple[SeriesInfo, ...]) -> int:
    """The series asked for (checked), or by default the first that is not an associated image.

    Raises
    ------
    ParameterError
        ``series`` is past the last series.
    InputError
        No series was asked for and every series is an associated image.
    """
    if series is None:
        main = [s.index for s in listing if not s.associated]
        if not main:
            names = ", ".join(f"{s.index} {s.name}" for s in listing)
            raise InputError(f"{where} holds only associated images ({names}), no slide; give --series N to read one")
        return main[0]
    if not 0 <= series < len(listing):
        n = len(listing)
        raise ParameterError(f"series {series} is out of range: {where} has {n} series (0..{n - 1})")
    return series


def check_single(where: str, level: int, series: int | None) -> None:
    """Refuse a level or series past the only one of a single-image input (ParameterError)."""
    if level != 0:
        raise ParameterError(f"level {level} was asked for, but {where} has 1 level (only level 0)")
    if series not in (None, 0):
        raise ParameterError(f"series {series} is out of range: {where} has 1 series (0..0)")
