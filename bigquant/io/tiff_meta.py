"""What a TIFF says about itself: its flavour, which series are a slide's associated images, the
physical pixel size and what each band is. Metadata only (IFDs and their tags, the XML of
OME-TIFF, Philips and Leica SCN, the ImageDescription of Aperio SVS); no pixel is read.

tifffile recognises the flavours and splits a file into series; this module interprets them:

* **associated images**: series tifffile names ``Label``, ``Macro``, ``Thumbnail`` (SVS,
  QPTIFF, Philips, BIF), ``Macro``/``Map`` (NDPI), OME images named ``label image``/``macro
  image``, and the Leica SCN image whose view covers the whole slide (the macro image);
* **pixel size**, first found of: OME ``PhysicalSizeX/Y`` (and units), SVS ``MPP``, Philips
  ``DICOM_PIXEL_SPACING``, Ventana's ``ScanRes`` (BIF's XMP), GeoTIFF ``ModelPixelScale`` in metres or feet, ImageJ's ``unit`` with
  the resolution tags, the resolution tags with an inch, centimetre, millimetre or micrometre
  ``ResolutionUnit`` (NDPI, QPTIFF, SCN and most scanners);
* **bands**: the photometric interpretation and ExtraSamples of the level's first page (RGB;
  grey; a band is alpha only when ExtraSamples says associated or unassociated alpha), or OME
  channel names for channels stored as pages.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from .image_info import bands_from_names, default_bands, is_associated_name, pixel_size, unit_name

#: tifffile flags -> bigquant's format name, most specific first.
_FLAVOURS = (
    ("svs", "svs"),
    ("ndpi", "ndpi"),
    ("scn", "scn"),
    ("bif", "bif"),
    ("qpi", "qptiff"),
    ("philips", "philips"),
    ("ome", "ome-tiff"),
    ("imagej", "imagej"),
)
#: Micrometres per ResolutionUnit (2 inch, 3 centimetre; 4 and 5 as tifffile writes them).
_RESUNIT_UM = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}
#: GeoTIFF ProjLinearUnitsGeoKey codes -> NGFF unit names.
_GEO_UNITS = {9001: "meter", 9002: "foot", 9003: "foot", 9036: "kilometer"}
#: TIFF ExtraSamples values that mean alpha (associated, unassociated).
_ALPHA = (1, 2)


def flavour(tf: Any) -> tuple[str, str]:
    """(format name, detail) of an open TiffFile: ``("svs", "classic TIFF, little-endian")``."""
    flags = set(getattr(tf, "flags", ()))
    if 65420 in _first_page(tf).tags:
        flags.add("ndpi")  # also where tifffile was told the layout is classic
    fmt = next((name for flag, name in _FLAVOURS if flag in flags), None)
    if fmt is None:
        fmt = "geotiff" if _first_page(tf).is_geotiff else "tiff"
    order = "little-endian" if tf.byteorder == "<" else "big-endian"
    return fmt, f"{'BigTIFF' if tf.is_bigtiff else 'classic TIFF'}, {order}"


def _first_page(tf: Any) -> Any:
    return tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]


def associated(tf: Any, fmt: str) -> list[bool]:
    """For each series of ``tf``: True where it is an associated image, not the slide."""
    flags = [is_associated_name(s.name) for s in tf.series]
    if fmt == "ndpi":  # the NDPI magnification tag: -1 the macro image, -2 the scan map
        flags = [a or s.keyframe.tags.valueof(65421) in (-1.0, -2.0) for a, s in zip(flags, tf.series)]
    if fmt == "scn":
        flags = [a or m for a, m in zip(flags, _scn_macro(tf, len(flags)))]
    return flags


def _scn_macro(tf: Any, count: int) -> list[bool]:
    """Leica SCN: the image whose view is the whole collection at offset 0 is the macro image
    (as OpenSlide tells them apart); the XML lists the images in tifffile's series order."""
    out = [False] * count
    try:
        root = ET.fromstring(_first_page(tf).description)
    except ET.ParseError:
        return out
    i = 0
    for coll in (e for e in root if e.tag.endswith("collection")):
        size = (coll.get("sizeX"), coll.get("sizeY"))
        for image in (e for e in coll if e.tag.endswith("image")):
            if not any(p.tag.endswith("pixels") and any(d.tag.endswith("dimension") for d in p) for p in image):
                continue
            view = next((e for e in image if e.tag.endswith("view")), None)
            if view is not None and i < count:
                out[i] = (view.get("sizeX"), view.get("sizeY")) == size and view.get("offsetX", "0") in ("0", None)
            i += 1
    return out


def _ome_pixels(tf: Any, series: int) -> Any:
    """The OME ``Pixels`` element of ``series`` (Images in series order), or None."""
    xml = tf.ome_metadata
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = [e for e in root if e.tag.endswith("}Image") or e.tag == "Image"]
    if series >= len(images):
        return None
    return next((e for e in images[series] if e.tag.endswith("Pixels")), None)


def level0_pixel_size(tf: Any, fmt: str, series: int, page: Any) -> dict | None:
    """The pixel size of level 0 of ``series`` (``page`` is its first page), or None."""
    finders = {
        "ome-tiff": lambda: _ome_size(tf, series),
        "svs": lambda: _svs_size(page),
        "philips": lambda: _philips_size(tf),
        "bif": lambda: _bif_size(_first_page(tf)),
        "geotiff": lambda: _geo_size(tf),
        "imagej": lambda: _imagej_size(tf, page),
    }
    found = finders[fmt]() if fmt in finders else None
    return found if found is not None else _tag_size(page)


def _ome_size(tf: Any, series: int) -> dict | None:
    px = _ome_pixels(tf, series)
    if px is None:
        return None
    return pixel_size(
        px.get("PhysicalSizeY"),
        px.get("PhysicalSizeX"),
        unit_name(px.get("PhysicalSizeXUnit")) if px.get("PhysicalSizeXUnit") == px.get("PhysicalSizeYUnit") else None,
    )


def _svs_size(page: Any) -> dict | None:
    found = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", page.description or "")
    return pixel_size(found.group(1), found.group(1), "micrometer") if found else None


def _philips_size(tf: Any) -> dict | None:
    try:
        root = ET.fromstring(tf.philips_metadata or "")
    except ET.ParseError:
        return None
    path = './/*/DataObject[@ObjectType="PixelDataRepresentation"]/Attribute[@Name="DICOM_PIXEL_SPACING"]'
    for elem in root.findall(path):  # level 0 first; DICOM order: row spacing, column spacing, in mm
        values = (elem.text or "").replace('"', " ").split()
        if len(values) >= 2:
            return pixel_size(float(values[0]) * 1000, float(values[1]) * 1000, "micrometer")
    return None


def _bif_size(page: Any) -> dict | None:
    xmp = page.tags.valueof(700)
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp or "")
    found = re.search(r'ScanRes\s*=\s*"([0-9.eE+-]+)"', text)  # iScan's micrometres per pixel
    return pixel_size(found.group(1), found.group(1), "micrometer") if found else None


def _geo_size(tf: Any) -> dict | None:
    meta = tf.geotiff_metadata or {}
    scale = meta.get("ModelPixelScale")
    unit = _GEO_UNITS.get(int(meta.get("ProjLinearUnitsGeoKey", 0) or 0))
    if scale is None or len(scale) < 2 or int(meta.get("GTModelTypeGeoKey", 0) or 0) != 1:
        return None  # geographic (degrees) or unknown units: not a length
    return pixel_size(scale[1], scale[0], unit)


def _imagej_size(tf: Any, page: Any) -> dict | None:
    meta = tf.imagej_metadata or {}
    unit = unit_name(meta.get("unit"), default=None)
    if unit is None:
        return None
    x, y = _resolution(page)
    return pixel_size(1 / y, 1 / x, unit) if x and y else None


def _resolution(page: Any) -> tuple[float | None, float | None]:
    """XResolution, YResolution as floats (pixels per unit), None where absent or zero."""

    def value(code: int) -> float | None:
        tag = page.tags.get(code)
        if tag is None:
            return None
        v = tag.value
        v = v[0] / v[1] if isinstance(v, tuple) and len(v) == 2 and v[1] else v
        try:
            return float(v) or None
        except (TypeError, ValueError):
            return None

    return value(282), value(283)


def _tag_size(page: Any) -> dict | None:
    tag = page.tags.get(296)
    per = _RESUNIT_UM.get(int(tag.value) if tag is not None else 2)
    x, y = _resolution(page)
    if per is None or not x or not y:
        return None
    return pixel_size(per / y, per / x, "micrometer")


def bands(tf: Any, series: int, page: Any, axes: str, chan_axis: int | None, channels: int) -> tuple[str, ...]:
    """What each of the ``channels`` bands of the image read is (see :mod:`.image_info`)."""
    if chan_axis is not None and axes[chan_axis] != "S":
        # Channels stored as pages: only OME channel names say what they are.
        px = _ome_pixels(tf, series)
        if px is not None:
            names = [c.get("Name") for c in px if c.tag.endswith("Channel")]
            found = bands_from_names(names, channels)
            if found:
                return found
        return default_bands(1) if channels == 1 else tuple(f"band_{i}" for i in range(channels))
    photometric = int(page.photometric)
    extra = list(page.extrasamples or ())
    first: tuple[str, ...]
    if photometric in (2, 6) and channels >= 3:  # RGB, YCbCr (tifffile decodes YCbCr JPEG to RGB)
        first = ("red", "green", "blue")
    elif photometric in (0, 1):  # min-is-white / min-is-black
        first = ("grey",)
    else:  # palette indices, CMYK, CIELab, ...: bands without a stated meaning
        return tuple(f"band_{i}" for i in range(channels))
    rest = [
        "alpha" if i < len(extra) and int(extra[i]) in _ALPHA else f"band_{len(first) + i}"
        for i in range(channels - len(first))
    ]
    if photometric in (0, 1) and "alpha" not in rest:
        # Several min-is-black samples without alpha: plain bands, the first no more grey than the others.
        return default_bands(1) if channels == 1 else tuple(f"band_{i}" for i in range(channels))
    return first + tuple(rest)
