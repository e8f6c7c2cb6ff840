"""Inputs by content and their metadata: PNG/JPEG/TIFF whatever their names, OME-Zarr (0.4 and 0.5),
channels-first Zarr read lazily, bioformats2raw series, band meanings and pixel sizes."""

from __future__ import annotations

import json
import shutil

import dask
import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import bigquant
from bigquant.cli import main
from bigquant.errors import InputError, ParameterError
from bigquant.io import inspect, read_image


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's coffee photograph, 400 x 600 x 3 uint8."""
    from skimage import data

    return data.coffee()


def test_wrong_extensions_are_read_by_content(tmp_path, photo):
    deep = (photo.astype(np.float64) * 257.0 + np.linspace(0, 200, photo.shape[1])[None, :, None]).astype(np.uint16)
    (tmp_path / "png.jpg").write_bytes(imagecodecs.png_encode(deep))  # 16 bits survive only as PNG
    Image.fromarray(photo).save(tmp_path / "jpeg.png", format="JPEG", quality=95)
    tifffile.imwrite(tmp_path / "tiff.png", photo, tile=(64, 64), compression="zlib", photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "png.jpg").compute(), deep)
    assert inspect(tmp_path / "png.jpg").format == "png"
    assert inspect(tmp_path / "jpeg.png").format == "jpeg"
    assert np.array_equal(read_image(tmp_path / "jpeg.png").compute(), np.asarray(Image.open(tmp_path / "jpeg.png")))
    assert np.array_equal(read_image(tmp_path / "tiff.png").compute(), photo)


@pytest.mark.parametrize(
    ("mode", "extra", "bands"),
    [
        # Grey and grey + alpha: PNG colour types 0 and 4.
        ("L", None, ("grey",)),
        ("LA", None, ("grey", "alpha")),
        # RGBA, colour type 6: the PNG says the fourth band is alpha.
        ("RGBA", None, ("red", "green", "blue", "alpha")),
        # A palette with a transparent entry (tRNS) decodes to RGBA.
        ("P", "transparency", ("red", "green", "blue", "alpha")),
    ],
)
def test_png_bands_from_its_colour_type(tmp_path, photo, mode, extra, bands):
    im = Image.fromarray(photo).convert(mode if mode != "P" else "RGB")
    if mode == "P":
        im = im.quantize(16)
    im.save(tmp_path / "x.png", **({"transparency": 3} if extra else {}))
    info = inspect(tmp_path / "x.png")
    assert info.bands == bands and read_image(tmp_path / "x.png").shape[2] == len(bands)


def test_png_and_jpeg_pixel_size(tmp_path, photo):
    # pHYs in pixels per metre: 4,000,000 per metre is 0.25 micrometre.
    Image.fromarray(photo).save(tmp_path / "a.png", pnginfo=None, dpi=(101600, 101600))  # 4e6 per metre
    size = inspect(tmp_path / "a.png").pixel_size
    assert size["unit"] == "micrometer" and size["x"] == pytest.approx(0.25, rel=1e-3)
    Image.fromarray(photo).save(tmp_path / "b.jpg", dpi=(254, 254))  # JFIF density per inch
    assert inspect(tmp_path / "b.jpg").pixel_size == pytest.approx({"y": 100.0, "x": 100.0, "unit": "micrometer"})
    Image.fromarray(photo).save(tmp_path / "c.png")  # no pHYs: unknown, not guessed
    assert inspect(tmp_path / "c.png").pixel_size is None


def _ome_v04(path, planes, scale=0.5):
    """An NGFF 0.4 image (Zarr v2) with axes t, c, z, y, x (t and z of length 1), two levels, and
    omero channel labels."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for i, f in enumerate((1, 2)):
        level = planes[:, ::f, ::f][None, :, None]
        root.create_array(str(i), shape=level.shape, chunks=(1, 1, 1, 64, 64), dtype=level.dtype)[...] = level
        t = [{"type": "scale", "scale": [1.0, 1.0, 1.0, scale * f, scale * f]}]
        datasets.append({"path": str(i), "coordinateTransformations": t})
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    root.attrs["omero"] = {"channels": [{"label": n, "color": "FFFFFF"} for n in ("Red", "Green", "Blue")]}


def test_ome_zarr_04_tczyx(tmp_path, photo):
    planes = np.ascontiguousarray(np.moveaxis(photo, -1, 0))
    _ome_v04(tmp_path / "img.ome.zarr", planes)
    info = inspect(tmp_path / "img.ome.zarr")
    assert (info.format, info.axes, info.shape) == ("ome-zarr", "TCZYX", (400, 600, 3))
    assert info.detail == "NGFF 0.4, Zarr v2" and len(info.levels) == 2 and info.tile == (64, 64)
    assert info.pixel_size == {"y": 0.5, "x": 0.5, "unit": "micrometer"}
    assert info.bands == ("red", "green", "blue")
    assert np.array_equal(read_image(tmp_path / "img.ome.zarr").compute(), photo)
    assert np.array_equal(read_image(tmp_path / "img.ome.zarr", level=1).compute(), photo[::2, ::2])
    assert inspect(tmp_path / "img.ome.zarr", level=1).pixel_size["x"] == 1.0
    with pytest.raises(ParameterError, match=r"level 2 is out of range: .* has 2 level\(s\)"):
        read_image(tmp_path / "img.ome.zarr", level=2)


def test_ome_zarr_05_from_decode_compresses_again(tmp_path, photo):
    store = bigquant.compress(photo, tmp_path / "a.bq.zarr", k=8)
    ome = bigquant.decode(store, tmp_path / "recon.ome.zarr")
    info = inspect(ome)
    assert info.format == "ome-zarr" and info.axes == "CYX" and info.detail.startswith("NGFF 0.5")
    recon = store.reconstruct().compute()
    assert np.array_equal(read_image(ome).compute(), recon)
    again = bigquant.compress(ome, tmp_path / "b.bq.zarr", k=8)  # 8 colours: a lossless re-encode
    assert again.metadata["psnr"] == "inf" and again.metadata["source_axes"] == "CYX"


@pytest.mark.parametrize(
    ("names", "axes"),
    [
        # Zarr v3 dimension names say channels first.
        (("c", "y", "x"), None),
        # No names: the caller says it with axes= (--axes).
        (None, "CYX"),
    ],
)
def test_channels_first_zarr_is_transposed_lazily(tmp_path, photo, names, axes):
    planes = np.ascontiguousarray(np.moveaxis(photo, -1, 0))
    z = zarr.create_array(
        str(tmp_path / "cf.zarr"), shape=planes.shape, chunks=(1, 100, 150), dtype="u1", dimension_names=names
    )
    z[...] = planes
    x = read_image(tmp_path / "cf.zarr", axes=axes, chunks=(200, 300))
    assert x.chunks[0][0] % 100 == 0 and x.chunks[1][0] % 150 == 0 and x.chunks[2] == (3,)
    assert np.array_equal(x.compute(), photo)
    # One read per chunk: the graph reads each dask chunk's (3, 200, 300) block once, no rechunk.
    layers = dict(x.__dask_graph__().layers)
    assert not any("rechunk" in name for name in layers)
    assert len(list(dask.core.flatten(x.__dask_keys__()))) == 4


def test_channels_first_tiff_axes_and_misfits(tmp_path, photo):
    tifffile.imwrite(
        tmp_path / "z.tif", np.stack([photo[:, :, 0]] * 2), photometric="minisblack", metadata={"axes": "ZYX"}
    )
    with pytest.raises(InputError, match=r"axes 'ZYX': its 'Z' axis of length 2 is a stack"):
        read_image(tmp_path / "z.tif")
    z = zarr.create_array(str(tmp_path / "t.zarr"), shape=(2, 40, 50), dtype="u1", dimension_names=("t", "y", "x"))
    z[...] = 1
    with pytest.raises(InputError, match=r"axes 'TYX': its 'T' axis of length 2 is a stack"):
        read_image(tmp_path / "t.zarr")
    with pytest.raises(ParameterError, match=r"axes 'CYX' do not fit input .*: a PNG image is \(rows, cols, C\)"):
        Image.fromarray(photo).save(tmp_path / "p.png")
        read_image(tmp_path / "p.png", axes="CYX")


def test_bioformats2raw_series(tmp_path, photo):
    root = zarr.open_group(str(tmp_path / "b2r.zarr"), mode="w")
    root.attrs["bioformats2raw.layout"] = 3
    for name, img in (("0", photo), ("1", photo[:64, :80])):
        g = root.create_group(name)
        planes = np.ascontiguousarray(np.moveaxis(img, -1, 0))
        g.create_array("0", shape=planes.shape, chunks=(3, 64, 64), dtype="u1")[...] = planes
        axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
        g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [{"path": "0"}]}]}
    (tmp_path / "b2r.zarr" / "OME").mkdir()
    (tmp_path / "b2r.zarr" / "OME" / "METADATA.ome.xml").write_text(
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0" Name="slide"/>'
        '<Image ID="Image:1" Name="label image"/></OME>'
    )
    info = inspect(tmp_path / "b2r.zarr")
    assert [(s.name, s.associated) for s in info.all_series] == [("slide", False), ("label image", True)]
    assert info.series == 0 and np.array_equal(read_image(tmp_path / "b2r.zarr").compute(), photo)
    assert np.array_equal(read_image(tmp_path / "b2r.zarr", series=1).compute(), photo[:64, :80])


def test_info_of_inputs_text_and_json(tmp_path, photo, capsys):
    deep = (photo.astype(np.float64) * 257.0).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", deep, tile=(128, 128), compression="zlib", photometric="rgb")
    assert main(["info", str(tmp_path / "deep.tif"), "-k", "32", "--max-iter", "40"]) == 0
    text = capsys.readouterr().out
    assert "TIFF; classic TIFF, little-endian" in text and "400 x 600 x 3 uint16" in text
    assert (
        "pixels path" in text
        and "K=32: 3 to 44 passes over the image (sample, coreset and labels, then any exact Lloyd passes "
        "and the labels again; say 3)"
        in text
    )
    assert "pixel size  unknown" in text
    zarr.create_array(str(tmp_path / "img.zarr"), shape=photo.shape, chunks=(100, 100, 3), dtype="u1")[...] = photo
    assert main(["info", str(tmp_path / "img.zarr"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "zarr" and doc["tile"] == [100, 100] and doc["estimate"]["path"] == "histogram"
    assert doc["estimate"]["chunks"][0] % 100 == 0 and doc["estimate"]["peak_bytes"] > 0
    # A store is still summarised as a store.
    bigquant.compress(tmp_path / "img.zarr", tmp_path / "s.bq.zarr", k=4)
    assert main(["info", str(tmp_path / "s.bq.zarr")]) == 0
    assert "(bigquant store, format" in capsys.readouterr().out
    # A file of no known format: one line, exit 2.
    shutil.copy(__file__, tmp_path / "notes.tif")
    assert main(["info", str(tmp_path / "notes.tif")]) == 2
    assert "is not an image bigquant can read" in capsys.readouterr().err
