"""The Python API beyond a plain compress: fixed codebooks, palettes across images, auto K."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import known_colours_image

import bigquant
from bigquant import metrics
from bigquant.errors import BigquantWarning, ParameterError, StoreFormatError


def _psnr(a, b):
    return metrics.psnr(((a.astype(float) - b) ** 2).mean(), 255.0)


def test_compress_from_array_and_dask(tmp_path, china):
    import dask.array as da

    a = bigquant.compress(china, tmp_path / "a.bq.zarr", k=8, chunks=(128, 128))
    b = bigquant.compress(da.from_array(china, chunks=(128, 128, 3)), tmp_path / "b.bq.zarr", k=8)
    assert np.array_equal(a.codebook, b.codebook)
    assert np.array_equal(a.labels.compute(), b.labels.compute())
    assert a.metadata["source"] == "<ndarray>"


@pytest.mark.parametrize(
    "image_kind",
    [
        "uint8",  # histogram path; a fixed codebook on few pixels uses the pixel kernel
        "uint16",  # pixel path
    ],
)
def test_fixed_codebook_encodes_without_fitting(tmp_path, china, image_kind):
    img = china if image_kind == "uint8" else china.astype(np.uint16) * 257
    first = bigquant.compress(img, tmp_path / "first.bq.zarr", k=12, max_iter=20)
    again = bigquant.compress(img, tmp_path / "again.bq.zarr", codebook=first.path)
    assert again.metadata["method"] == "fixed" and again.metadata["iterations"] == 0
    assert np.array_equal(again.codebook, first.codebook)
    assert np.array_equal(again.labels.compute(), first.labels.compute())
    assert np.isclose(again.metadata["mse"], first.metadata["mse"])


def test_fixed_codebook_full_table_on_many_pixels(tmp_path):
    # A 2-channel uint8 image with more pixels than 2**16 colours / 4 takes the full lookup table.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 300, 2)).astype(np.uint8)
    cb = rng.integers(0, 256, (10, 2)).astype(np.uint8)
    s = bigquant.compress(img, tmp_path / "t.bq.zarr", codebook=cb)
    d = ((img[:, :, None, :].astype(float) - cb[None, None].astype(float)) ** 2).sum(-1)
    assert np.array_equal(s.labels.compute(), d.argmin(-1))
    assert np.isclose(s.metadata["mse"], d.min(-1).sum() / img.size)


def test_palette_across_images(tmp_path, china, coffee):
    pal = bigquant.fit([china, coffee], tmp_path / "pal.bq.zarr", k=16)
    assert pal.codebook.shape == (16, 3) and pal.metadata["kind"] == "palette"
    assert pal.metadata["sources"] == ["<ndarray>", "<ndarray>"]
    # the palette is the k-means of both images' pixels taken together: it serves both
    stores = [
        bigquant.compress(img, tmp_path / f"{i}.bq.zarr", codebook=pal.path) for i, img in enumerate([china, coffee])
    ]
    for s, img in zip(stores, [china, coffee]):
        assert np.array_equal(s.codebook, pal.codebook)
        solo = bigquant.compress(img, tmp_path / f"solo{id(img)}.bq.zarr", k=16)
        assert s.metadata["psnr"] > solo.metadata["psnr"] - 3.0
    with pytest.raises(StoreFormatError, match="palette"):
        bigquant.open(pal.path)


def test_palette_pixel_path_across_images(tmp_path, china, coffee):
    a, b = china.astype(np.float32) / 255, coffee.astype(np.float32) / 255
    pal = bigquant.fit([a, b], tmp_path / "pal.bq.zarr", k=6, max_iter=30)
    assert pal.metadata["method"] == "pixels" and pal.codebook.dtype == np.float32
    s = bigquant.compress(a, tmp_path / "a.bq.zarr", codebook=pal.path)
    assert np.allclose(s.codebook, pal.codebook)


def test_fit_refuses_mixed_images(tmp_path, china, camera):
    with pytest.raises(ParameterError, match="same channels and dtype"):
        bigquant.fit([china, camera], tmp_path / "p.bq.zarr", k=4)


def test_target_psnr_picks_smallest_k(tmp_path):
    img, _ = known_colours_image(k=6, noise=1.0)
    s = bigquant.compress(img, tmp_path / "auto.bq.zarr", target_psnr=40.0, max_k=32)
    k = s.k
    assert s.metadata["psnr"] >= 40.0
    trials = {int(kk): v for kk, v in s.metadata["auto_k_trials"].items()}
    assert trials[k] >= 40.0
    assert all(v < 40.0 for kk, v in trials.items() if kk < k)
    # six colours with noise sigma 1: six clusters reach 40 dB, five cannot
    assert k == 6
    # the auto-K result is the same as asking for that K directly
    direct = bigquant.compress(img, tmp_path / "direct.bq.zarr", k=k)
    assert np.array_equal(direct.codebook, s.codebook)


def test_target_psnr_unreachable_warns(tmp_path, china):
    with pytest.warns(BigquantWarning, match="stays below the target"):
        s = bigquant.compress(china, tmp_path / "x.bq.zarr", target_psnr=60.0, max_k=4)
    assert s.k == 4


def test_target_psnr_pixel_path(tmp_path, china):
    img = china.astype(np.float32) / 255
    s = bigquant.compress(img, tmp_path / "f.bq.zarr", target_psnr=25.0, max_k=64, max_iter=30)
    assert 1 <= s.k <= 64 and s.metadata["auto_k_estimate"].startswith("lower bound")
    # the coreset's PSNR bounds the pixels' from below: the target is reached, and said so
    assert s.metadata["psnr"] >= 25.0 and s.metadata["target_reached"]


def test_info_accounting_matches_the_seeds_formula(tmp_path):
    # The worked example: 100 x 100 RGB at K=16 is 40,384 bits, 16.8 % of 24 bits/pixel.
    img = np.random.default_rng(0).integers(0, 256, (100, 100, 3)).astype(np.uint8)
    info = bigquant.compress(img, tmp_path / "h.bq.zarr", k=16).info()
    assert info["seed_bits"] == 40_384
    assert round(100 * info["seed_ratio"], 1) == 16.8
    on_disk = sum(f.stat().st_size for f in (tmp_path / "h.bq.zarr").rglob("*") if f.is_file())
    assert info["store_bytes"] == on_disk
    assert info["ratio"] == pytest.approx(30_000 / on_disk)
    assert info["bits_per_pixel"] == pytest.approx(8 * on_disk / 10_000)


def test_package_imports_the_api_on_first_use():
    """``import bigquant`` leaves Dask for later (the CLI sets itself up first); every public
    name still resolves, ``bigquant.decode`` to the function whatever was imported before."""
    code = (
        "import sys, bigquant\n"
        "assert 'dask.array' not in sys.modules and 'bigquant.api' not in sys.modules\n"
        "import bigquant.io, bigquant.api, bigquant.preview\n"
        "from bigquant import *\n"
        "assert callable(bigquant.decode) and callable(decode) and bigquant.open is bigquant.open_store\n"
        "assert set(bigquant.__all__) <= set(dir(bigquant))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pixel_path_fits_on_the_coreset_before_its_passes(tmp_path, china):
    """The pixel path runs Lloyd's on its grid coreset first (in memory), then passes over the
    image from there: on china as uint16 at K = 16, from the same k-means++ start, a few passes
    instead of the dozens of Lloyd's over the pixels, for the same PSNR to 0.01 dB."""
    from bigquant import api, kmeans, metrics, params, seeding

    img = china.astype(np.uint16) * 257
    x, _ = api.load_source(img)  # as compress reads it
    start = seeding.init_centroids(seeding.sample_pixels(x, seeding.DEFAULT_SAMPLE_SIZE, 0), 16, 0)
    meta = bigquant.compress(img, tmp_path / "warm.bq.zarr", k=16, init=start).metadata
    px = img.reshape(-1, 3).astype(np.float64)
    tol_abs = params.tol_abs(1e-4, kmeans.data_scale(px))
    ref = kmeans.lloyd(x, start, max_iter=300, tol_abs=tol_abs, inertia_rtol=params.inertia_rtol(1e-4))
    assert meta["method"] == "pixels" and meta["coarse_iterations"] > 0
    assert meta["iterations"] <= 3 < ref.n_iter
    ref_mse = float(kmeans.label_block(img, metrics.round_codebook(ref.centroids, img.dtype))[1][16]) / px.size
    assert meta["psnr"] >= metrics.psnr(ref_mse, 65535.0) - 0.01
