"""The store format: layout readable without bigquant, atomic writes, validation on open."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

import bigquant
from bigquant import report
from bigquant import store as bqstore
from bigquant.errors import OutputError, StoreFormatError


@pytest.fixture(scope="module")
def written(tmp_path_factory, china):
    path = tmp_path_factory.mktemp("s") / "china.bq.zarr"
    bigquant.compress(china, path, k=16, chunks=(128, 200))
    return path


def test_layout_is_readable_with_zarr_and_numpy_only(written, china):
    # A fresh interpreter that never imports bigquant rebuilds the image from the store.
    script = textwrap.dedent(f"""
        import sys, numpy as np, zarr
        g = zarr.open_group({str(written)!r}, mode="r")
        meta = g.attrs["bigquant"]
        labels, codebook = g["labels/0"][...], g["codebook"][...]
        assert labels.shape == tuple(meta["shape"][:2]) and labels.dtype == np.uint8
        assert codebook.shape == (meta["k"], meta["shape"][2]) and str(codebook.dtype) == meta["dtype"]
        recon = codebook[labels]
        np.save(sys.argv[1], recon)
        assert "bigquant" not in sys.modules
    """)
    out = written.parent / "recon.npy"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    recon = np.load(out)
    assert recon.shape == china.shape
    mse = ((recon.astype(float) - china) ** 2).mean()
    assert np.isclose(mse, bigquant.open(written).metadata["mse"])


def test_metadata_has_the_documented_keys(written):
    meta = zarr.open_group(str(written), mode="r").attrs["bigquant"]
    for key in (
        "format_version",
        "complete",
        "k",
        "shape",
        "dtype",
        "iterations",
        "converged",
        "stopped_by",
        "inertia",
        "mse",
        "psnr",
        "seed",
        "source",
        "chunks",
        "method",
        "inertia_history",
        "label_counts",
    ):
        assert key in meta, key
    assert meta["stopped_by"] in ("shift", "inertia", "max_iter")
    assert meta["converged"] == (meta["stopped_by"] != "max_iter")
    assert meta["format_version"] == bqstore.FORMAT_VERSION and meta["complete"] is True
    assert sum(meta["label_counts"]) == 427 * 640
    g = zarr.open_group(str(written), mode="r")
    assert g["labels/0"].metadata.zarr_format == 3
    assert g["labels/0"].chunks == (128, 200)
    assert any("zstd" in type(c).__name__.lower() for c in g["labels/0"].compressors)


def test_uint16_labels_above_256_colours(tmp_path, coffee):
    s = bigquant.compress(coffee[:100, :120], tmp_path / "big.bq.zarr", k=300, max_iter=3)
    assert s.labels.dtype == np.uint16 and s.k == 300
    assert int(s.labels.max().compute()) >= 256


def test_existing_output_is_refused_and_untouched(written, china):
    before = sorted(p.name for p in written.iterdir())
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        bigquant.compress(china, written, k=4)
    assert sorted(p.name for p in written.iterdir()) == before


def test_interrupted_write_leaves_no_store(tmp_path, china, monkeypatch):
    target = tmp_path / "x.bq.zarr"

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(bqstore.StoreWriter, "commit", boom)
    with pytest.raises(RuntimeError):
        bigquant.compress(china, target, k=4, max_iter=2)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the partial sibling was removed too


def test_partial_store_is_not_complete(tmp_path):
    w = bqstore.StoreWriter(tmp_path / "p.bq.zarr", (10, 10, 3), (10, 10), 4)
    with pytest.raises(StoreFormatError, match="incomplete"):
        bqstore.Store(w.tmp)
    w.abort()
    assert not w.tmp.exists()


def _edit_meta(path, **changes):
    zj = path / "zarr.json"
    doc = json.loads(zj.read_text())
    doc["attributes"]["bigquant"].update(changes)
    zj.write_text(json.dumps(doc))


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    "damage, message",
    [
        ("newer", "newer than"),  # a store from a future bigquant
        ("incomplete", "incomplete"),  # complete flag missing: an interrupted write
        ("no_labels", "no 'labels'"),  # labels group deleted
        ("no_codebook", "no 'codebook'"),  # codebook array deleted
        ("bad_k", "codebook shape"),  # metadata K disagrees with the codebook
        ("absurd_shape", "absurd shape"),  # metadata claims an impossible size
        ("not_a_store", "not a bigquant store"),  # a plain zarr group
    ],
)
def test_open_refuses_damaged_stores(tmp_path, written, damage, message):
    import shutil

    p = _copy(written, tmp_path / "d.bq.zarr")
    if damage == "newer":
        _edit_meta(p, format_version=bqstore.FORMAT_VERSION + 1)
    elif damage == "incomplete":
        _edit_meta(p, complete=False)
    elif damage == "no_labels":
        shutil.rmtree(p / "labels")
    elif damage == "no_codebook":
        shutil.rmtree(p / "codebook")
    elif damage == "bad_k":
        _edit_meta(p, k=17)
    elif damage == "absurd_shape":
        _edit_meta(p, shape=[10**9, 10**9, 3])
    elif damage == "not_a_store":
        shutil.rmtree(p)
        zarr.create_group(str(p), zarr_format=3)
    with pytest.raises(StoreFormatError, match=message):
        bigquant.open(p)


def test_labels_beyond_k_are_caught_on_decode(tmp_path, written):
    p = _copy(written, tmp_path / "d.bq.zarr")
    zarr.open_array(str(p / "labels" / "0"), mode="r+")[5, 5] = 200
    s = bigquant.open(p)
    with pytest.raises(StoreFormatError, match="labels hold the value 200"):
        s.reconstruct().compute()


@pytest.mark.parametrize(
    "meta, text",
    [
        ({"converged": True, "stopped_by": "shift"}, "converged: centroids settled"),
        ({"converged": True, "stopped_by": "inertia"}, "converged: inertia stalled"),
        ({"converged": False, "stopped_by": "max_iter"}, "stopped at max_iter"),
        ({"converged": True, "stopped_by": "fixed codebook"}, "fixed codebook"),
        ({"converged": True}, "converged"),  # a store written before stopped_by was recorded
        ({"converged": False}, "not converged"),
    ],
)
def test_run_state_says_how_the_fit_ended(meta, text):
    assert report.run_state(meta) == text


def test_labels_are_zstd_with_checksums(written):
    lab = zarr.open_array(str(written / "labels" / "0"), mode="r")
    (zstd,) = [c for c in lab.compressors if "zstd" in type(c).__name__.lower()]
    assert zstd.level == bqstore.ZSTD_LEVEL and zstd.checksum
    meta = bigquant.open(written).metadata
    assert meta["label_chunk_files"] == [4 * 4]  # 427 x 640 in 128 x 200 chunks: one level


def test_labels_level_trades_size(tmp_path, coffee):
    sizes = {}
    for level in (1, 3, 12):
        s = bigquant.compress(coffee, tmp_path / f"l{level}.bq.zarr", k=32, labels_level=level)
        sizes[level] = bqstore.store_bytes(s.path / "labels")
        assert zarr.open_array(str(s.path / "labels" / "0"), mode="r").compressors[0].level == level
        assert s.info()["labels_codec"] == f"zstd-{level}"
    assert sizes[1] > sizes[3] > sizes[12], sizes
    with pytest.raises(bigquant.errors.ParameterError, match="from 1 to 22, got 0"):
        bigquant.compress(coffee, tmp_path / "bad.bq.zarr", k=4, labels_level=0)
    assert not (tmp_path / "bad.bq.zarr").exists()


def test_a_missing_labels_chunk_is_damage_not_zeros(tmp_path, written):
    p = _copy(written, tmp_path / "d.bq.zarr")
    (p / "labels" / "0" / "c" / "2" / "1").unlink()
    with pytest.raises(StoreFormatError, match="1 of the 16 chunks of 'labels/0' are missing"):
        bigquant.open(p)


def test_stores_without_the_chunk_count_still_open(tmp_path, v1_store):
    # Version-1 stores written before label_chunk_files was recorded: opened as before, unchecked.
    p = _copy(v1_store, tmp_path / "old.bq.zarr")
    zj = p / "zarr.json"
    doc = json.loads(zj.read_text())
    del doc["attributes"]["bigquant"]["label_chunk_files"]
    zj.write_text(json.dumps(doc))
    assert bigquant.open(p).labels.shape == (120, 160)
