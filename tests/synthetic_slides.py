"""Small synthetic files of the TIFF flavours bigquant recognises, written with tifffile.

Each builder writes ``img`` (a real photograph, (rows, cols, 3) uint8) as the main image of a
file laid out the way the vendor lays it out, as far as tifffile's own recognition goes: the
flags and tags tifffile looks for, the associated images (label, macro, thumbnail) beside the
slide, pyramid levels, and the metadata bigquant reads the pixel size from. Deflate throughout,
so every read can be checked exactly. Returns what the file should say about itself.

Only the real Aperio SVS in tests/data/ is a scanner's own file; these are synthetic (see
tests/data/README.md).
"""

from __future__ import annotations

import numpy as np
import tifffile

TILE = (64, 64)
Z = dict(compression="zlib", metadata=None)


def _small(img, f):
    return np.ascontiguousarray(img[::f, ::f])


def svs(path, img, mpp=0.25):
    """Aperio SVS: tiled baseline with 'Aperio ...|MPP = ...' description, thumbnail, a second
    level, label (subfiletype 1) and macro (subfiletype 9)."""
    desc = f"Aperio Image Library v12.0.15 \n{img.shape[1]}x{img.shape[0]} (64x64) RGB|AppMag = 40|MPP = {mpp}"
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, tile=TILE, photometric="rgb", description=desc, **Z)
        tw.write(_small(img, 8), photometric="rgb", description="Aperio Image Library v12 thumbnail", **Z)
        tw.write(_small(img, 2), tile=TILE, photometric="rgb", description="Aperio level 1", **Z)
        tw.write(_small(img, 4)[:, ::-1], photometric="rgb", subfiletype=1, description="Aperio label", **Z)
        tw.write(_small(img, 4)[::-1], photometric="rgb", subfiletype=9, description="Aperio macro", **Z)
    return {
        "format": "svs",
        "series": ["Baseline", "Thumbnail", "Label", "Macro"],
        "associated": [1, 2, 3],
        "levels": 2,
        "pixel_size": mpp,
    }


def ndpi(path, img):
    """Hamamatsu NDPI tags (65420 file format, 65421 magnification, Make) on a classic-layout
    TIFF: two levels with centimetre resolution tags (0.5 µm), and a macro (magnification -1)."""
    tags = [(65420, "I", 1, 1, True), (65421, "f", 1, 20.0, True)]
    res = dict(resolution=(20000, 20000), resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, tile=TILE, photometric="rgb", extratags=[*tags, (271, "s", 0, "Hamamatsu", True)], **res, **Z)
        tw.write(_small(img, 2), tile=TILE, photometric="rgb", extratags=tags, **Z)
        tw.write(
            _small(img, 8), photometric="rgb", extratags=[(65420, "I", 1, 1, True), (65421, "f", 1, -1.0, True)], **Z
        )
    return {"format": "ndpi", "associated": [1], "levels": 2, "pixel_size": 0.5}


def scn(path, img):
    """Leica SCN: the XML in the first page's description lists a macro image (its view is the whole
    collection) in IFD 0 and the slide's two resolutions in IFDs 1 and 2."""
    r, c = img.shape[:2]
    xml = f"""<?xml version="1.0"?>
<scn xmlns="http://www.leica-microsystems.com/scn/2010/10/01">
<collection name="slide" sizeX="{c * 1000}" sizeY="{r * 1000}">
<image name="macro"><view sizeX="{c * 1000}" sizeY="{r * 1000}" offsetX="0" offsetY="0"/>
<pixels sizeX="{c // 8}" sizeY="{r // 8}"><dimension sizeX="{c // 8}" sizeY="{r // 8}" ifd="0"/></pixels></image>
<image name="main"><view sizeX="{c * 250}" sizeY="{r * 250}" offsetX="1000" offsetY="2000"/>
<pixels sizeX="{c}" sizeY="{r}"><dimension sizeX="{c}" sizeY="{r}" r="0" ifd="1"/>
<dimension sizeX="{c // 2}" sizeY="{r // 2}" r="1" ifd="2"/></pixels></image>
</collection></scn>"""
    with tifffile.TiffWriter(path) as tw:
        tw.write(_small(img, 8), tile=(16, 16), photometric="rgb", description=xml, **Z)
        tw.write(img, tile=TILE, photometric="rgb", resolution=(40000, 40000), resolutionunit="CENTIMETER", **Z)
        tw.write(_small(img, 2), tile=TILE, photometric="rgb", **Z)
    return {"format": "scn", "associated": [0], "levels": 2, "pixel_size": 0.25}


def bif(path, img):
    """Ventana BIF: XMP on the first page, a 'Label Image', a 'Thumbnail', then pages whose
    description holds 'level=' (the slide and its levels)."""
    xmp = (700, "B", 0, b'<?xml version="1.0"?><iScan Magnification="40" ScanRes="0.25"/>', True)
    with tifffile.TiffWriter(path) as tw:
        tw.write(_small(img, 4), photometric="rgb", description="Label Image", software="Ventana", extratags=[xmp], **Z)
        tw.write(_small(img, 8), photometric="rgb", description="Thumbnail", **Z)
        tw.write(img, tile=TILE, photometric="rgb", description="level=0 mag=40 quality=95", **Z)
        tw.write(_small(img, 2), tile=TILE, photometric="rgb", description="level=1 mag=20 quality=95", **Z)
    return {"format": "bif", "associated": [1, 2], "levels": 2, "main": 0, "pixel_size": 0.25}


def qptiff(path, img):
    """Akoya (PerkinElmer) QPTIFF: software 'PerkinElmer-QPI', one page per channel (here the three
    colour planes as fluorescence-like channels), thumbnail, a reduced level, macro and label."""
    planes = np.ascontiguousarray(np.moveaxis(img, -1, 0))
    sw = dict(software="PerkinElmer-QPI ImageWriter", photometric="minisblack")
    res = dict(resolution=(20000, 20000), resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path) as tw:
        for p in planes:
            tw.write(p, tile=TILE, description="<PerkinElmer-QPI-ImageDescription/>", **res, **sw, **Z)
        tw.write(_small(img, 8), photometric="rgb", software="PerkinElmer-QPI", **Z)
        for p in planes:
            tw.write(_small(p, 2), tile=TILE, subfiletype=1, **sw, **Z)
        tw.write(_small(img, 4), photometric="rgb", software="PerkinElmer-QPI", **Z)
        tw.write(_small(img, 4)[::-1], photometric="rgb", software="PerkinElmer-QPI", **Z)
    return {"format": "qptiff", "associated": [1, 2, 3], "levels": 2, "pixel_size": 0.5, "axes": "CYX"}


def philips(path, img):
    """Philips TIFF: software 'Philips DP', a DataObject XML with DICOM_PIXEL_SPACING per level (mm),
    tiled levels, then macro and label pages."""
    spacing = "".join(
        '<DataObject ObjectType="PixelDataRepresentation"><Attribute Name="DICOM_PIXEL_SPACING" '
        f'Group="0x0028" Element="0x0030" PMSVR="IDoubleArray">&quot;{s}&quot; &quot;{s}&quot;</Attribute>'
        "</DataObject>"
        for s in (0.00025, 0.0005)
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8" ?><DataObject ObjectType="DPUfsImport">'
        '<Attribute Name="PIM_DP_SCANNED_IMAGES"><Array><DataObject ObjectType="DPScannedImage">'
        '<Attribute Name="PIM_DP_IMAGE_TYPE">WSI</Attribute><Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE">'
        f"<Array>{spacing}</Array></Attribute></DataObject></Array></Attribute></DataObject>"
    )
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, tile=TILE, photometric="rgb", description=xml, software="Philips DP v1.0", **Z)
        tw.write(_small(img, 2), tile=TILE, photometric="rgb", **Z)
        tw.write(_small(img, 8), photometric="rgb", description="Macro", **Z)
        tw.write(_small(img, 8)[::-1], photometric="rgb", description="Label", **Z)
    return {"format": "philips", "associated": [1, 2], "levels": 2, "pixel_size": 0.25}


def ome_tiff(path, img, bigtiff=False, byteorder="<"):
    """OME-TIFF: a pyramid in SubIFDs with PhysicalSizeX/Y 0.25 µm, then a second OME image named
    'macro image'."""
    meta = {
        "axes": "YXS",
        "PhysicalSizeX": 0.25,
        "PhysicalSizeY": 0.25,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeYUnit": "µm",
        "Name": "slide",
    }
    with tifffile.TiffWriter(path, bigtiff=bigtiff, byteorder=byteorder, ome=True) as tw:
        tw.write(img, tile=TILE, photometric="rgb", subifds=1, compression="zlib", metadata=meta)
        tw.write(_small(img, 2), tile=TILE, photometric="rgb", subfiletype=1, compression="zlib")
        tw.write(_small(img, 8), photometric="rgb", compression="zlib", metadata={"Name": "macro image", "axes": "YXS"})
    return {"format": "ome-tiff", "associated": [1], "levels": 2, "pixel_size": 0.25}


def geotiff(path, img):
    """GeoTIFF: ModelPixelScale 30 m x 30 m, a tie point and the GeoKeys of a projected system in
    metres."""
    keys = [1, 1, 0, 2, 1024, 0, 1, 1, 3076, 0, 1, 9001]  # GTModelType projected; linear unit metre
    tags = [
        (33550, "d", 3, (30.0, 30.0, 0.0), True),
        (33922, "d", 6, (0, 0, 0, 500000.0, 4000000.0, 0), True),
        (34735, "H", len(keys), keys, True),
    ]
    tifffile.imwrite(path, img, tile=TILE, photometric="rgb", extratags=tags, **Z)
    return {"format": "geotiff", "associated": [], "levels": 1, "pixel_size": 30.0, "unit": "meter"}


def imagej(path, img):
    """ImageJ hyperstack: three channels as pages (axes CYX), 0.5 µm pixels by resolution + 'unit'."""
    planes = np.ascontiguousarray(np.moveaxis(img, -1, 0))
    tifffile.imwrite(path, planes, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "CYX", "unit": "um"})
    return {"format": "imagej", "associated": [], "levels": 1, "pixel_size": 0.5, "axes": "CYX"}
