"""The label pyramid of store format 2: the 2 x 2 mode rule, levels written in the label pass on
ragged chunks, their chunk guard, the root-last commit with consolidated metadata, xarray, and
version-1 stores read as before."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import zarr

import bigquant
from bigquant import preview
from bigquant import store as bqstore
from bigquant.errors import StoreFormatError
from bigquant.store.format import level_shape, mode_2x2


def _mode_reference(labels: np.ndarray) -> np.ndarray:
    """Each 2 x 2 block's most frequent label, ties to the smallest, by counting (slow, obvious)."""
    rows, cols = labels.shape
    out = np.empty((-(-rows // 2), -(-cols // 2)), labels.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            values, counts = np.unique(labels[2 * i : 2 * i + 2, 2 * j : 2 * j + 2], return_counts=True)
            out[i, j] = values[np.argmax(counts)]  # unique sorts: the first maximum is the smallest
    return out


@pytest.mark.parametrize(
    "shape, dtype, k",
    [
        ((8, 8), np.uint8, 2),  # two labels: 2-2 ties everywhere
        ((7, 9), np.uint8, 3),  # odd edges: blocks of 2 and of 1 pixel
        ((1, 5), np.uint8, 5),  # one row
        ((9, 1), np.uint16, 4),  # one column, uint16
        ((6, 10), np.uint8, 256),  # label 255 is also the dtype's maximum
        ((5, 6), np.uint16, 65536),  # label 65535 likewise
    ],
)
def test_mode_2x2_is_the_most_frequent_label_ties_to_smallest(shape, dtype, k):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, k, shape).astype(dtype)
    labels.ravel()[::3] = k - 1  # the largest label appears often
    assert np.array_equal(mode_2x2(labels), _mode_reference(labels))
    assert mode_2x2(labels).dtype == dtype


def test_mode_2x2_every_block_of_four_labels():
    """Every 2 x 2 block over four labels (all 256 orders of ties and repeats), as the reference."""
    blocks = np.array(np.meshgrid(*[np.arange(4)] * 4, indexing="ij")).reshape(4, -1).T
    labels = np.empty((2, 2 * len(blocks)), np.uint8)
    labels[0, 0::2], labels[0, 1::2], labels[1, 0::2], labels[1, 1::2] = blocks.T
    assert np.array_equal(mode_2x2(labels), _mode_reference(labels))
    assert np.array_equal(mode_2x2(labels[:, :-1]), _mode_reference(labels[:, :-1]))  # an odd edge


def _iterated(labels: np.ndarray, n: int) -> list[np.ndarray]:
    out = [labels]
    for _ in range(1, n):
        out.append(_mode_reference(out[-1]))
    return out


@pytest.mark.parametrize(
    "chunks",
    [
        (128, 128),  # chunks too small to halve in the tasks: every level built afterwards
        (256, 320),  # levels 1 and 2 written by the label tasks, level 3 afterwards
        (100, 150),  # chunk sides that do not halve evenly: ragged, built afterwards
        (427, 640),  # one chunk: every level in the one task
    ],
)
def test_levels_equal_the_mode_of_the_full_labels(tmp_path, china, small_screen, chunks):
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=16, chunks=chunks, max_iter=10)
    want = _iterated(store.labels.compute(), 4)
    assert (
        [x.shape for x in store.levels] == [w.shape for w in want] == [level_shape(china.shape, lv) for lv in range(4)]
    )
    for lv, (x, w) in enumerate(zip(store.levels, want)):
        assert np.array_equal(x.compute(), w), lv
    counts = store.metadata["label_chunk_files"]
    assert counts[0] == -(-427 // chunks[0]) * -(-640 // chunks[1]) and len(counts) == 4
    g = zarr.open_group(str(store.path / "labels"), mode="r")
    for lv in range(4):  # same codec and checksum on every level, every chunk written
        arr = g[str(lv)]
        assert arr.compressors[0].checksum and arr.metadata.dimension_names == ("y", "x")
        assert arr.nchunks_initialized == arr.nchunks == counts[lv]


def test_a_missing_chunk_of_any_level_is_damage(tmp_path, china, small_screen):
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=8, chunks=(256, 320), max_iter=5)
    (store.path / "labels" / "2" / "c" / "0" / "0").unlink()
    with pytest.raises(StoreFormatError, match="1 of the 1 chunks of 'labels/2' are missing"):
        bigquant.open(store.path)


def test_the_root_is_written_last_with_everything_consolidated(tmp_path, china, small_screen, monkeypatch):
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=8, chunks=(128, 128), max_iter=5)
    root = store.path / "zarr.json"
    newest = max(p.stat().st_mtime_ns for p in store.path.rglob("*") if p.is_file() and p != root)
    assert root.stat().st_mtime_ns >= newest
    doc = json.loads(root.read_text())
    nodes = {p.parent.relative_to(store.path).as_posix() for p in store.path.rglob("zarr.json") if p != root}
    assert (
        set(doc["consolidated_metadata"]["metadata"])
        == nodes
        == {"codebook", "labels", "labels/0", "labels/1", "labels/2", "labels/3"}
    )
    assert doc["attributes"]["bigquant"]["complete"] is True

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies just before its last write

    monkeypatch.setattr(bqstore.writer, "write_root", killed)
    with pytest.raises(KeyboardInterrupt):
        bigquant.compress(china, tmp_path / "t.bq.zarr", k=8, max_iter=5)
    assert not (tmp_path / "t.bq.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.bq.zarr"]  # the staging folder is gone too


def test_xarray_opens_a_store_without_a_warning(tmp_path, china, small_screen):
    xr = pytest.importorskip("xarray")
    store = bigquant.compress(china, tmp_path / "s.bq.zarr", k=8, chunks=(128, 128), max_iter=5)
    flat = bigquant.compress(china[:90, :90], tmp_path / "f.bq.zarr", k=4, max_iter=5)  # one level
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        root = xr.open_zarr(store.path)
        assert np.array_equal(root["codebook"].values, store.codebook)
        assert "codebook" in xr.open_dataset(store.path, engine="zarr")
        # The levels share the dimension names y and x (NGFF), so open one level at a time.
        labels = xr.open_zarr(store.path, group="labels", drop_variables=["1", "2", "3"])["0"]
        assert labels.dims == ("y", "x") and np.array_equal(labels.values, store.labels.compute())
        assert xr.open_zarr(flat.path, group="labels")["0"].shape == (90, 90)


def test_version_1_stores_open_decode_preview_and_info_as_before(tmp_path, v1_store):
    tifffile = pytest.importorskip("tifffile")
    s = bigquant.open(v1_store)
    assert s.metadata["format_version"] == 1 and len(s.levels) == 1
    g = zarr.open_group(str(v1_store), mode="r")  # the version-1 recipe: labels is the array
    expected = g["codebook"][...][g["labels"][...]]
    assert np.array_equal(s.reconstruct().compute(), expected)
    assert s.info()["labels_codec"] == "zstd-3" and s.bands == ["red", "green", "blue"]
    bigquant.decode(s, tmp_path / "x.tif")
    assert np.array_equal(tifffile.imread(tmp_path / "x.tif"), expected)
    bigquant.decode(s, tmp_path / "x.ome.zarr")  # one level: 120 x 160 fits a screen
    assert np.array_equal(np.moveaxis(zarr.open_array(str(tmp_path / "x.ome.zarr" / "0"))[...], 0, -1), expected)
    panels = preview.preview_panels(s, max_size=(200, 200))
    assert panels[0].level == 0 and panels[0].image.shape == (120, 160, 3)
    from bigquant.cli import main

    assert main(["info", str(v1_store), "--json"]) == 0
    assert main(["preview", str(v1_store), "-o", str(tmp_path / "p.png"), "--quiet"]) == 0


def test_version_1_pyramid_is_computed_by_the_same_rule(tmp_path, v1_store, monkeypatch):
    monkeypatch.setattr(bqstore.format, "SCREEN_SIDE", 30)
    s = bigquant.open(v1_store)
    levels = s.pyramid()
    want = _iterated(s.labels.compute(), 4)  # 120 x 160 -> 60 x 80 -> 30 x 40 -> 15 x 20
    assert len(levels) == 4
    for x, w in zip(levels, want):
        assert np.array_equal(x.compute(), w)


def test_an_overview_reads_only_the_small_levels(tmp_path, small_screen):
    rows, cols = 1600, 2400
    yy, xx = np.ogrid[:rows, :cols]
    img = np.zeros((rows, cols, 3), np.uint8)
    img[..., 0] = (yy // 100) * 15
    img[..., 1] = (xx // 150) * 15
    img[..., 2] = ((yy + xx) // 200 % 2) * 200
    s = bigquant.compress(img, tmp_path / "s.bq.zarr", k=16, chunks=(512, 512), max_iter=10)
    (panel,) = preview.preview_panels(s, max_size=(600, 800))
    assert panel.level == 2 and panel.factor == (4, 4)  # 1/4 scale read from labels/2
    means = preview.downsample(s.reconstruct(), panel.factor, 0.0, 255.0).compute()  # from labels/0
    assert panel.image.shape == means.shape
    assert np.abs(panel.image.astype(int) - means.astype(int)).mean() < 4  # the same picture, near edges aside
    # Damage every full-resolution chunk: the overview must not read them.
    for chunk in (s.path / "labels" / "0" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"\0" * 16)
    (again,) = preview.preview_panels(s, max_size=(600, 800))
    assert np.array_equal(again.image, panel.image)
    with pytest.raises(StoreFormatError, match="damaged"):
        s.reconstruct().compute()
