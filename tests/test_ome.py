"""decode to OME-Zarr: readable by ome-zarr-py's reader, labels with every palette colour."""

from __future__ import annotations

import numpy as np
import pytest

import bigquant
from bigquant.cli import main

pytest.importorskip("ome_zarr")


@pytest.mark.parametrize(
    "dtype",
    [
        np.uint8,  # RGB photo: colours are the codebook itself
        np.uint16,  # 16-bit: colours scaled to 0-255 for viewers
    ],
)
def test_decode_ome_zarr_reads_back(tmp_path, china, dtype):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    img = np.concatenate([china] * 2, axis=0)  # 854 x 640: two pyramid levels above 256
    if dtype == np.uint16:
        img = img.astype(np.uint16) * 257
    store = bigquant.compress(img, tmp_path / "s.bq.zarr", k=12, max_iter=20, chunks=(200, 256))
    out = tmp_path / "out.ome.zarr"
    assert main(["decode", str(store.path), "-o", str(out), "--quiet"]) == 0

    nodes = list(Reader(parse_url(str(out)))())
    image = nodes[0]
    assert len(image.data) == 2  # 854x640 -> 427x320, then 213 < 256 stops
    c_y_x = np.asarray(image.data[0])
    assert c_y_x.shape == (3, 854, 640)
    assert np.array_equal(np.moveaxis(c_y_x, 0, -1), store.reconstruct().compute())

    labels = [n for n in nodes if "image-label" in n.zarr.root_attrs.get("ome", n.zarr.root_attrs)]
    assert labels, [n.zarr.root_attrs for n in nodes]
    lab = labels[0]
    assert len(lab.data) == len(image.data)  # as many levels as the parent image
    assert np.array_equal(np.asarray(lab.data[0]), store.labels.compute())
    meta = lab.zarr.root_attrs.get("ome", lab.zarr.root_attrs)["image-label"]
    values = [c["label-value"] for c in meta["colors"]]
    assert values == list(range(12))  # every index, 0 included
    if dtype == np.uint8:
        assert [c["rgba"][:3] for c in meta["colors"]] == store.codebook.tolist()
