"""The napari reader plugin, headless: the npe2 manifest validates and the reader's layers hold
the store's pyramid, colours and scale (napari itself is not needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import bigquant
from bigquant import napari as plugin

npe2 = pytest.importorskip("npe2")
MANIFEST = Path(plugin.__file__).with_name("napari.yaml")


def test_manifest_validates_and_points_at_the_reader():
    manifest = npe2.PluginManifest.from_file(MANIFEST)  # pydantic validation of every field
    manifest.validate_imports()  # as `npe2 validate --imports`: every python_name imports
    assert manifest.name == "bigquant"
    (reader,) = manifest.contributions.readers
    assert reader.filename_patterns == ["*.bq.zarr"] and reader.accepts_directories
    (command,) = [c for c in manifest.contributions.commands if c.id == reader.command]
    module, _, attr = command.python_name.partition(":")
    assert getattr(sys.modules.get(module) or __import__(module, fromlist=[attr]), attr) is plugin.get_reader
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((MANIFEST.parents[1] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["napari.manifest"] == {"bigquant": "bigquant:napari.yaml"}
    assert "napari.yaml" in project["tool"]["setuptools"]["package-data"]["bigquant"]


def test_reader_layers_are_the_lazy_pyramid_with_codebook_colours(tmp_path, china, small_screen):
    store = bigquant.compress(china, tmp_path / "scan.bq.zarr", k=8, chunks=(128, 128), pixel_size=(0.25, 0.5))
    reader = plugin.get_reader(str(store.path))
    assert reader is not None
    (image, image_kw, image_type), (labels, labels_kw, labels_type) = reader(str(store.path))
    assert (image_type, labels_type) == ("image", "labels")
    assert image_kw["rgb"] and image_kw["multiscale"] and labels_kw["multiscale"]
    assert image_kw["scale"] == labels_kw["scale"] == (0.25, 0.5)
    assert len(image) == len(labels) == 4
    for lv in range(4):  # lazy dask arrays, the stored levels and their lookup
        assert hasattr(image[lv], "dask") and hasattr(labels[lv], "dask")
        assert np.array_equal(labels[lv].compute(), store.levels[lv].compute())
        assert np.array_equal(image[lv].compute(), store.codebook[store.levels[lv].compute()])
    colours = labels_kw["colormap"]
    assert sorted(k for k in colours if k is not None) == list(range(8))  # direct colours, label 0 included
    assert np.allclose([colours[i][:3] for i in range(8)], store.codebook / 255) and colours[0][3] == 1.0
    assert labels_kw["metadata"]["bigquant"]["k"] == 8


def test_reader_shows_plain_bands_one_layer_each(tmp_path, coffee):
    base = coffee[:120, :160].astype(np.float64) * 257.3  # real low bits
    img = np.dstack([base, base[..., :1] * 0.5 + 1000.7]).astype(np.uint16)
    store = bigquant.compress(img, tmp_path / "b.bq.zarr", k=5, max_iter=5)
    (image, image_kw, _), _ = plugin.read_store(store.path)
    assert image_kw["rgb"] is False and image_kw["channel_axis"] == 2
    assert image_kw["name"] == [f"b band_{i}" for i in range(4)]
    assert image_kw["colormap"] == ["red", "green", "blue", "gray"] and image_kw["visible"] == [True, True, True, False]
    assert image_kw["scale"] == (1.0, 1.0) and not image_kw["multiscale"]
    assert image[0].shape == (120, 160, 4)


def test_reader_declines_what_is_not_a_store(tmp_path, v1_store):
    (tmp_path / "plain.bq.zarr").mkdir()
    assert plugin.get_reader(str(tmp_path / "plain.bq.zarr")) is None
    assert plugin.get_reader([str(v1_store), str(v1_store)]) is None  # one store at a time
    assert plugin.get_reader([str(v1_store)]) is plugin.read_store  # version 1 too
    _, (levels, labels_kw, _) = plugin.read_store(v1_store)
    assert len(levels) == 1 and not labels_kw["multiscale"]  # 120 x 160: no reduced level needed


def test_napari_builds_the_layers_without_a_window(tmp_path, china, small_screen):
    # napari (in the test extra, no Qt binding needed): its own layer classes take the data.
    napari_layers = pytest.importorskip("napari.layers")
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=8, chunks=(128, 128), pixel_size=0.5)
    image, labels = (napari_layers.Layer.create(*t) for t in plugin.read_store(store.path))
    assert image.rgb and image.multiscale and len(image.data) == 4 and tuple(image.scale) == (0.5, 0.5)
    assert labels.multiscale and len(labels.data) == 4
    colour = labels.colormap.map(np.array([0, 7]))  # label 0 is a colour, not background
    assert np.allclose(colour[:, :3], store.codebook[[0, 7]] / 255, atol=1e-3) and np.all(colour[:, 3] == 1)
