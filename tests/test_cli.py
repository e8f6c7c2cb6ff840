"""The command line as a user sees it: main([...]) with exit codes, messages and files."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr

import bigquant
from bigquant.cli import main


@pytest.fixture()
def photo(tmp_path, china):
    p = tmp_path / "china.png"
    iio.imwrite(p, china)
    return p


def _one_error_line(err: str) -> str:
    """The one ``bigquant...`` line of ``err``, its last; the compact progress log (stderr is no
    terminal here) may come before it."""
    lines = [l for l in err.strip().splitlines() if l.strip()]
    said = [l for l in lines if l.startswith("bigquant")]
    assert len(said) == 1 and lines[-1] == said[0], err
    assert "Traceback" not in err
    return said[0]


def test_compress_info_decode(photo, tmp_path, capsys, china):
    assert main(["compress", str(photo), "-k", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    store = tmp_path / "china.bq.zarr"  # default output: beside the input
    assert f"wrote {store}" in out
    for word in ("427 x 640 x 3", "K           8", "iterations", "PSNR", "ratio"):
        assert word in out

    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["k"] == 8 and info["shape"] == [427, 640, 3] and info["store_bytes"] > 0

    assert main(["info", str(store)]) == 0
    assert "fixed-width" in capsys.readouterr().out

    expected = bigquant.open(store).reconstruct().compute()
    for name in ("r.tif", "r.png", "r.zarr"):
        assert main(["decode", str(store), "-o", str(tmp_path / name)]) == 0
    assert np.array_equal(tifffile.imread(tmp_path / "r.tif"), expected)
    assert np.array_equal(iio.imread(tmp_path / "r.png"), expected)
    assert np.array_equal(zarr.open_array(str(tmp_path / "r.zarr"), mode="r")[...], expected)
    assert tifffile.TiffFile(tmp_path / "r.tif").pages[0].is_tiled


def test_decode_compression_options(photo, tmp_path, capsys):
    assert main(["compress", str(photo), "-k", "8", "--quiet"]) == 0
    store = tmp_path / "china.bq.zarr"
    expected = bigquant.open(store).reconstruct().compute()
    runs = {
        "fast.tif": [],
        "small.tif": ["--compression-level", "9"],
        "zstd.tif": ["--compression", "zstd"],
        "raw.tif": ["--compression", "none"],
        "raw.zarr": ["--compression", "none"],
    }
    for name, extra in runs.items():
        assert main(["decode", str(store), "-o", str(tmp_path / name), *extra]) == 0, capsys.readouterr().err
    for name in runs:
        if name.endswith(".tif"):
            assert np.array_equal(tifffile.imread(tmp_path / name), expected)
    assert np.array_equal(zarr.open_array(str(tmp_path / "raw.zarr"), mode="r")[...], expected)
    tags = {n: tifffile.TiffFile(tmp_path / n).pages[0].compression.name for n in runs if n.endswith(".tif")}
    assert tags == {"fast.tif": "ADOBE_DEFLATE", "small.tif": "ADOBE_DEFLATE", "zstd.tif": "ZSTD", "raw.tif": "NONE"}
    # the default is Deflate's fastest level: larger than level 9, far smaller than raw
    size = {n: (tmp_path / n).stat().st_size for n in runs if n.endswith(".tif")}
    assert size["small.tif"] < size["fast.tif"] < size["raw.tif"] / 3
    capsys.readouterr()
    assert main(["decode", str(store), "-o", str(tmp_path / "x.tif"), "--compression", "jpeg2000"]) == 2
    assert "invalid choice: 'jpeg2000' (choose from 'zlib', 'zstd', 'lzw', 'none')" in _one_error_line(
        capsys.readouterr().err
    )
    assert (
        main(["decode", str(store), "-o", str(tmp_path / "x.tif"), "--compression", "lzw", "--compression-level", "3"])
        == 2
    )
    assert "takes no level" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "x.tif").exists()


def test_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compress", "--sample", "-k", "16", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "china.bq.zarr").is_dir()
    assert bigquant.open(tmp_path / "china.bq.zarr").k == 16


def test_console_command_runs_the_sample_with_its_lean_imports(tmp_path):
    """The installed command's entry point keeps dask's optional imports out, yet ``--sample``
    (scikit-learn, hence scipy.sparse) still works and numba is only imported to compute."""
    import subprocess
    import sys

    code = (
        "import sys, dask.utils; derived = dask.utils.derived_from; "
        "from bigquant import _runtime, cli; _runtime.lean_dask_import(); "
        "assert 'dask.array' in sys.modules and 'scipy.sparse' not in sys.modules; "
        "assert dask.utils.derived_from is derived, 'derived_from left patched'; "
        "import dask.array as da, numpy as np; "
        "assert np.array_equal(da.sqrt(da.arange(4)).compute(), np.sqrt(np.arange(4))); "
        "assert 'numba' not in sys.modules, 'numba imported with dask'; "
        "import bigquant.api; assert 'numba' not in sys.modules, 'numba imported with bigquant'; "
        "cli.entry()"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, "compress", "--sample", "-k", "4", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "wrote" in p.stdout and bigquant.open(tmp_path / "china.bq.zarr").k == 4


def test_k_reduced_is_said(tmp_path, capsys):
    img = np.zeros((40, 50, 3), np.uint8)
    img[:, 20:] = [255, 0, 0]
    img[30:, :] = [0, 0, 255]
    p = tmp_path / "three.png"
    iio.imwrite(p, img)
    assert main(["compress", str(p), "-k", "8", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "reduced from 8" in cap.out and "K reduced from 8 to 3" in cap.err
    meta = bigquant.open(tmp_path / "three.bq.zarr").metadata
    assert meta["k"] == 3 and meta["k_requested"] == 8
    rec = bigquant.open(tmp_path / "three.bq.zarr").reconstruct().compute()
    assert np.array_equal(rec, img)  # three colours, three clusters: lossless


@pytest.mark.parametrize(
    "args, message",
    [
        (["compress", "{tmp}/missing.png"], "does not exist"),  # missing input
        (["compress", "{tmp}/text.png"], "text.png"),  # a text file named .png
        (["compress", "{photo}", "-k", "0"], "K must be between 1 and 65536"),  # K < 1
        (["compress", "{photo}", "-k", "65537"], "K must be between"),  # K > 65536
        (["compress", "{photo}", "-k", "2.5"], "whole number"),  # K not an integer
        (["compress", "{photo}", "-k", "many"], "whole number"),  # K not a number
        (["compress", "{photo}", "-o", "{tmp}/exists"], "exists"),  # output exists
        (["decode", "{tmp}/exists", "-o", "{tmp}/o.tif"], "not a bigquant store"),  # not a store
        (["info", "{tmp}/missing.bq.zarr"], "does not exist"),  # missing store
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, photo, capsys, args, message):
    (tmp_path / "text.png").write_text("this is not an image\n")
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep.txt").write_text("precious")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [a.format(tmp=tmp_path, photo=photo) for a in args]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert message in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written or deleted
    assert (tmp_path / "exists" / "keep.txt").read_text() == "precious"


def test_decode_refuses_unknown_extension_and_existing_output(tmp_path, photo, capsys):
    assert main(["compress", str(photo), "-k", "4", "--quiet", "--max-iter", "3"]) == 0
    store = tmp_path / "china.bq.zarr"
    capsys.readouterr()
    assert main(["decode", str(store), "-o", str(tmp_path / "out.webp")]) == 2
    assert ".webp" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out.webp").exists()
    (tmp_path / "out.tif").write_bytes(b"keep")
    assert main(["decode", str(store), "-o", str(tmp_path / "out.tif")]) == 2
    assert "exists" in _one_error_line(capsys.readouterr().err)
    assert (tmp_path / "out.tif").read_bytes() == b"keep"
    assert main(["decode", str(store), "-o", str(tmp_path / "out.tif"), "--overwrite"]) == 0
    assert tifffile.imread(tmp_path / "out.tif").shape == (427, 640, 3)


def test_overwrite_replaces_store(tmp_path, photo, capsys):
    assert main(["compress", str(photo), "-k", "4", "--quiet", "--max-iter", "2"]) == 0
    assert main(["compress", str(photo), "-k", "6", "--quiet", "--max-iter", "2", "--overwrite"]) == 0
    assert bigquant.open(tmp_path / "china.bq.zarr").k == 6


def test_same_seed_same_bits(tmp_path, photo):
    for name in ("a", "b"):
        assert (
            main(
                ["compress", str(photo), "-k", "16", "-o", str(tmp_path / f"{name}.bq.zarr"), "--quiet", "--seed", "3"]
            )
            == 0
        )
    a, b = bigquant.open(tmp_path / "a.bq.zarr"), bigquant.open(tmp_path / "b.bq.zarr")
    assert np.array_equal(a.codebook, b.codebook)
    assert np.array_equal(a.labels.compute(), b.labels.compute())


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["compress"]) == 2
    assert "an input image is needed" in capsys.readouterr().err


def test_fit_palette_then_compress_with_it(tmp_path, photo, coffee, capsys):
    other = tmp_path / "coffee.png"
    iio.imwrite(other, coffee)
    pal = tmp_path / "palette.bq.zarr"
    assert main(["fit", str(photo), str(other), "-k", "12", "-o", str(pal), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote palette" in out and "across 2 images" in out
    assert main(["info", str(pal)]) == 0
    assert "bigquant palette" in capsys.readouterr().out
    for src in (photo, other):
        assert main(["compress", str(src), "--codebook", str(pal), "--quiet"]) == 0
        assert "method fixed" in capsys.readouterr().out
    a, b = bigquant.open(tmp_path / "china.bq.zarr"), bigquant.open(tmp_path / "coffee.bq.zarr")
    assert np.array_equal(a.codebook, b.codebook) and a.k == 12
    assert a.metadata["iterations"] == 0
    # a palette is not a store: decode says so in one line
    assert main(["decode", str(pal), "-o", str(tmp_path / "x.tif")]) == 2
    assert "palette" in _one_error_line(capsys.readouterr().err)


def test_target_psnr_says_which_k(photo, tmp_path, capsys):
    assert main(["compress", str(photo), "--target-psnr", "30", "--max-k", "64", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "auto K      chose K=" in out
    s = bigquant.open(tmp_path / "china.bq.zarr")
    assert s.metadata["psnr"] >= 30 and s.metadata["target_psnr"] == 30
    assert f"chose K={s.k} " in out
    assert s.k < 64 and "fewer distinct colours" not in out  # the search chose it, not the image


def test_preview_writes_three_pngs(photo, tmp_path, capsys):
    assert main(["compress", str(photo), "-k", "8", "--quiet", "--max-iter", "10"]) == 0
    store = tmp_path / "china.bq.zarr"
    args = [
        "preview",
        str(store),
        "-o",
        str(tmp_path / "p.png"),
        "--original",
        str(photo),
        "--palette",
        str(tmp_path / "pal.png"),
        "--convergence",
        str(tmp_path / "c.png"),
    ]
    assert main(args) == 0
    for name in ("p.png", "pal.png", "c.png"):
        img = iio.imread(tmp_path / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 10, name
    assert main(args) == 2  # outputs exist now
    assert "exists" in _one_error_line(capsys.readouterr().err)
    assert main(["preview", str(store)]) == 2


def test_compress_and_fit_pass_every_fit_option_to_the_library(tmp_path, capsys, china):
    source = tmp_path / "pyramid.tif"  # two levels, so that --level and --series differ
    with tifffile.TiffWriter(source) as tw:
        tw.write(china, tile=(64, 64), photometric="rgb", subifds=1)
        tw.write(china[::2, ::2], tile=(64, 64), photometric="rgb", subfiletype=1)
    # Each option a value other than its default, so that one dropped or passed as another shows.
    given = ["-k", "5", "--seed", "7", "--max-iter", "2", "--tol", "0.01", "--method", "pixels"]
    given += ["--memory-limit", "256MiB", "--level", "1", "--series", "0", "--axes", "YXC", "-q"]
    store, palette = tmp_path / "s.bq.zarr", tmp_path / "p.bq.zarr"
    assert main(["compress", str(source), "-o", str(store), "--chunks", "100,150", *given]) == 0
    assert main(["fit", str(source), "-o", str(palette), *given]) == 0
    capsys.readouterr()
    expected = dict(k=5, seed=7, max_iter=2, tol=0.01, method="pixels", memory_limit=256 << 20)
    expected.update(level=1, series=0, axes="YXC")
    for opened, chunks in ((bigquant.open(store), [100, 150]), (bigquant.store.Palette.read(palette), None)):
        recorded = opened.metadata["options"]
        assert {key: recorded[key] for key in expected} == expected, opened
        assert recorded["chunks"] == chunks
    assert bigquant.open(store).shape == (214, 320, 3)
