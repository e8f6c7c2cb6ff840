"""``bigquant compress --json``: one JSON object on stdout, with the keys and values of ``info --json``."""

from __future__ import annotations

import json

import pytest

import bigquant
from bigquant.cli import main


@pytest.fixture
def china_tif(tmp_path, china):
    import tifffile

    path = tmp_path / "china.tif"
    tifffile.imwrite(path, china, tile=(128, 128), compression="zlib")
    return path


def test_compress_json_is_the_store_info(china_tif, tmp_path, capsys):
    store = tmp_path / "out.bq.zarr"
    assert main(["compress", str(china_tif), "-k", "8", "-o", str(store), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout is one JSON object and nothing else
    assert f"wrote {store}" in captured.err

    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    shared = set(summary) & set(info)
    assert shared == set(info)  # every key of info --json, with its value
    assert {key: summary[key] for key in shared} == info

    opened = bigquant.open(store)
    assert summary["k"] == opened.k == 8
    assert summary["shape"] == [427, 640, 3]
    assert summary["psnr"] == pytest.approx(opened.metadata["psnr"])
    assert summary["store_bytes"] == bigquant.store.store_bytes(store)
    assert summary["ratio"] == pytest.approx(427 * 640 * 3 / summary["store_bytes"])
    assert summary["input_bytes"] == china_tif.stat().st_size
    assert summary["input_ratio"] == pytest.approx(china_tif.stat().st_size / summary["store_bytes"])


def test_compress_json_counts_the_files_of_a_zarr_input(tmp_path, china, capsys):
    # a folder input: its bytes on disk are those of every file under it
    import zarr

    src = tmp_path / "china.zarr"
    zarr.create_array(src, data=china, chunks=(200, 200, 3))
    assert main(["compress", str(src), "-k", "4", "-q", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    on_disk = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    assert summary["input_bytes"] == on_disk
    assert summary["path"].endswith("china.bq.zarr") and summary["k"] == 4


def test_the_store_records_the_input_size_and_info_shows_the_ratio(china_tif, tmp_path, capsys):
    # source_bytes: the input file's bytes on disk, kept in the store, so that info STORE (long
    # after the compress, the input maybe gone) still gives the ratio against the input file.
    store = tmp_path / "out.bq.zarr"
    assert main(["compress", str(china_tif), "-k", "8", "-o", str(store), "-q"]) == 0
    capsys.readouterr()
    size = china_tif.stat().st_size
    assert bigquant.open(store).metadata["source_bytes"] == size
    china_tif.unlink()
    assert main(["info", str(store)]) == 0
    ratio = next(line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("ratio"))
    nbytes = bigquant.store.store_bytes(store)
    assert f"; {size / nbytes:.2f}:1 against the input file (" in ratio, ratio
    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source_bytes"] == info["input_bytes"] == size
    assert info["input_ratio"] == pytest.approx(size / nbytes)


def test_source_bytes_of_a_zarr_input_and_of_an_array(tmp_path, china):
    import zarr

    src = tmp_path / "china.zarr"
    zarr.create_array(src, data=china, chunks=(200, 200, 3))
    on_disk = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    assert bigquant.compress(src, tmp_path / "z.bq.zarr", k=4).metadata["source_bytes"] == on_disk
    # An array has no file: no ratio against one, and the summary says only the raw ratio.
    s = bigquant.compress(china, tmp_path / "a.bq.zarr", k=4)
    assert s.metadata.get("source_bytes") is None
    assert "against the input file" not in bigquant.report.ratio_line(s.info())
