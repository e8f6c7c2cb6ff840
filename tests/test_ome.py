"""Viewer-ready outputs: OME-Zarr and OME-TIFF from the label pyramid, read back by ome-zarr-py and
tifffile; pixel size, band names and colours travel; TIFF resolution tags."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tifffile

import bigquant
from bigquant.cli import main

pytest.importorskip("ome_zarr")


def _nodes(path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    return list(Reader(parse_url(str(path)))())


@pytest.mark.parametrize(
    "dtype",
    [
        np.uint8,  # RGB photo: colours are the codebook itself
        np.uint16,  # 16-bit: colours scaled to 0-255 for viewers
    ],
)
def test_decode_ome_zarr_reads_back(tmp_path, china, dtype, small_screen):
    img = china
    if dtype == np.uint16:  # real low bits: resampled in floating point
        img = np.clip(china.astype(np.float64) * 256.7 + np.linspace(0, 200, china.shape[1])[None, :, None], 0, 65535)
        img = img.astype(np.uint16)
    store = bigquant.compress(img, tmp_path / "s.bq.zarr", k=12, max_iter=20, chunks=(200, 256), pixel_size=0.5)
    assert len(store.levels) == 4  # 427 x 640 halved down to 54 x 80 (<= 100)
    out = tmp_path / "out.ome.zarr"
    assert main(["decode", str(store.path), "-o", str(out), "--quiet"]) == 0

    nodes = _nodes(out)
    image = nodes[0]
    assert len(image.data) == 4
    for lv, level in enumerate(image.data):  # every level is codebook[labels/l]: nothing resampled
        assert np.array_equal(np.moveaxis(np.asarray(level), 0, -1), store.reconstruct(lv).compute()), lv
    scales = [t[0]["scale"] for t in image.metadata["coordinateTransformations"]]
    assert scales == [[1.0, 0.5 * 2**lv, 0.5 * 2**lv] for lv in range(4)]
    assert [ax.get("unit") for ax in image.metadata["axes"]] == [None, "micrometer", "micrometer"]
    assert image.metadata["channel_names"] == ["red", "green", "blue"]  # omero: true colour
    assert [c[1] for c in image.metadata["colormap"]] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    if dtype == np.uint16:  # the window is the recorded data range, not 0..65535
        assert image.metadata["contrast_limits"][0] == [0.0, store.metadata["data_range"][1]]

    labels = [n for n in nodes if "image-label" in n.zarr.root_attrs]
    (lab,) = labels
    assert len(lab.data) == len(image.data)
    for lv, level in enumerate(lab.data):
        assert np.array_equal(np.asarray(level), store.levels[lv].compute())
    meta = lab.zarr.root_attrs["image-label"]
    assert [c["label-value"] for c in meta["colors"]] == list(range(12))  # every index, 0 included
    if dtype == np.uint8:
        assert [c["rgba"][:3] for c in meta["colors"]] == store.codebook.tolist()


def test_the_store_itself_opens_in_ome_zarr_py(tmp_path, china, small_screen):
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=6, chunks=(128, 128), pixel_size=(0.25, 0.5))
    # STORE/labels is a multiscale label image; the store's root lists it like a labels container.
    for path in (store.path / "labels", store.path):
        (lab,) = [n for n in _nodes(path) if n.data]
        assert [tuple(d.shape) for d in lab.data] == [tuple(x.shape) for x in store.levels]
        assert np.array_equal(np.asarray(lab.data[2]), store.levels[2].compute())
        assert lab.metadata["coordinateTransformations"][1] == [{"type": "scale", "scale": [0.5, 1.0]}]
        colours = lab.metadata["color"]
        assert sorted(colours) == list(range(6))
        assert np.allclose([colours[i][:3] for i in range(6)], store.codebook / 255)


def test_ome_tiff_is_pyramidal_with_ome_xml(tmp_path, china, small_screen):
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=8, chunks=(128, 128), pixel_size=(0.25, 0.5))
    out = tmp_path / "x.ome.tif"
    assert main(["decode", str(store.path), "-o", str(out), "--quiet"]) == 0
    with tifffile.TiffFile(out) as tf:
        assert tf.is_ome
        series = tf.series[0]
        assert len(series.levels) == 4 and len(tf.pages) == 1  # the reduced levels are sub-IFDs
        for lv, level in enumerate(series.levels):
            assert np.array_equal(level.asarray(), store.reconstruct(lv).compute()), lv
        pixels = re.search(r"<Pixels [^>]*>", tf.ome_metadata).group(0)
        assert 'PhysicalSizeX="0.5"' in pixels and 'PhysicalSizeY="0.25"' in pixels
        page = tf.pages[0]
        assert page.tags["XResolution"].value == (20000, 1)  # 0.5 um: 20000 pixels per cm
        assert page.tags["YResolution"].value == (40000, 1) and page.tags["ResolutionUnit"].value == 3


def test_plain_bands_stay_plain_in_every_output(tmp_path, coffee, small_screen):
    # A 4-band uint16 image (real low bits) without band names: band 4 is data, not alpha.
    base = coffee[:200, :300].astype(np.float64) * 257.3
    img = np.dstack([base, base[..., :1] * 0.5 + 1000.7]).astype(np.uint16)
    store = bigquant.compress(img, tmp_path / "s.bq.zarr", k=6, max_iter=10)
    assert store.bands == ["band_0", "band_1", "band_2", "band_3"]
    bigquant.decode(store, tmp_path / "x.tif")
    with tifffile.TiffFile(tmp_path / "x.tif") as tf:
        assert tf.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert list(tf.pages[0].extrasamples) == [0, 0, 0]  # unspecified, not alpha
        assert np.array_equal(tf.asarray(), store.reconstruct().compute())
    bigquant.decode(store, tmp_path / "x.ome.tif")
    with tifffile.TiffFile(tmp_path / "x.ome.tif") as tf:  # one named page per band
        assert tf.series[0].axes == "CYX"
        assert re.findall(r'<Channel [^>]*Name="([^"]+)"', tf.ome_metadata) == store.bands
        assert np.array_equal(np.moveaxis(tf.series[0].asarray(), 0, -1), store.reconstruct().compute())
    with pytest.raises(bigquant.errors.ParameterError, match="only as RGBA"):
        bigquant.decode(store, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    # Named as RGBA, the fourth band is alpha everywhere.
    rgba = bigquant.compress(img, tmp_path / "a.bq.zarr", k=6, max_iter=10, bands=["red", "green", "blue", "alpha"])
    bigquant.decode(rgba, tmp_path / "a.tif")
    with tifffile.TiffFile(tmp_path / "a.tif") as tf:
        assert tf.pages[0].photometric == tifffile.PHOTOMETRIC.RGB and list(tf.pages[0].extrasamples) == [2]
    bigquant.decode(rgba, tmp_path / "a.ome.zarr")
    omero = json.loads((tmp_path / "a.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    assert [(c["label"], c["active"]) for c in omero["channels"]] == [
        ("red", True),
        ("green", True),
        ("blue", True),
        ("alpha", False),
    ]


def test_plain_tiff_keeps_one_level_and_gets_resolution_tags(tmp_path, china):
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=4, max_iter=5, pixel_size=2.0)
    bigquant.decode(store, tmp_path / "x.tif")
    with tifffile.TiffFile(tmp_path / "x.tif") as tf:
        assert not tf.is_ome and len(tf.series[0].levels) == 1
        assert tf.pages[0].tags["XResolution"].value == (5000, 1)  # 2 um per pixel


@pytest.mark.parametrize(
    "pixel_size, bands, match",
    [
        (-1.0, None, "positive"),  # a size must be positive
        ((1.0, 2.0, 3.0), None, "pair"),  # y and x only
        ({"y": 1.0, "x": 1.0, "unit": "mm"}, None, "micrometer"),  # the unit is micrometres
        (None, ["red", "green"], "3 names"),  # one name per channel
        (None, ["red", "red", "blue"], "twice"),  # no band twice
        (None, ["red", "green", "band_1"], "band_2"),  # plain bands are numbered by position
    ],
)
def test_compress_refuses_bad_pixel_size_and_bands(tmp_path, china, pixel_size, bands, match):
    with pytest.raises(bigquant.errors.ParameterError, match=match):
        bigquant.compress(china, tmp_path / "s.bq.zarr", k=4, pixel_size=pixel_size, bands=bands)
    assert not (tmp_path / "s.bq.zarr").exists()


def test_refusals_are_one_line_and_exit_2(tmp_path, coffee, capsys):
    base = coffee[:64, :96].astype(np.float64) * 257.3
    img = np.dstack([base, base[..., :1] * 0.5 + 1000.7]).astype(np.uint16)
    store = bigquant.compress(img, tmp_path / "s.bq.zarr", k=4, max_iter=5)
    damaged = bigquant.compress(img[..., :3], tmp_path / "d.bq.zarr", k=4, max_iter=5)
    (damaged.path / "labels" / "0" / "c" / "0" / "0").unlink()
    capsys.readouterr()
    for source, out, message in [
        (store.path, "x.png", "only as RGBA"),  # four plain bands cannot be a PNG
        (damaged.path, "x.ome.tif", "chunks of 'labels/0' are missing"),  # a chunk deleted
    ]:
        assert main(["decode", str(source), "-o", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err and err.startswith("bigquant: error:"), err
        assert not (tmp_path / out).exists() and not list(tmp_path.glob(f".{out}*"))
