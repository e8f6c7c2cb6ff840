"""Reconstruction equals codebook[labels] exactly."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import bigquant
from bigquant.reconstruction import reconstruct


@pytest.mark.parametrize(
    "dtype, k, c",
    [
        (np.uint8, 16, 3),  # the common case
        (np.uint16, 300, 1),  # uint16 labels and a 16-bit greyscale codebook
        (np.float32, 7, 4),  # float codebook with four channels
    ],
)
def test_reconstruct_is_codebook_of_labels(dtype, k, c):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, (53, 71)).astype(np.uint8 if k <= 256 else np.uint16)
    codebook = (rng.random((k, c)) * 1000).astype(dtype)
    rec = reconstruct(da.from_array(labels, chunks=(16, 20)), codebook)
    assert rec.chunks[:2] == ((16, 16, 16, 5), (20, 20, 20, 11)) and rec.dtype == dtype
    assert np.array_equal(rec.compute(), codebook[labels])


def test_store_round_trip(tmp_path, coffee):
    s = bigquant.compress(coffee, tmp_path / "c.bq.zarr", k=12, chunks=(150, 250))
    rec = s.reconstruct()
    assert isinstance(rec, da.Array) and rec.shape == coffee.shape
    assert np.array_equal(rec.compute(), s.codebook[s.labels.compute()])


def test_two_reconstructions_computed_together_stay_distinct(tmp_path, china):
    # Regression: fixed task names made dask merge the graphs of two stores into one.
    import dask

    a = bigquant.compress(china, tmp_path / "a.bq.zarr", k=4, max_iter=5)
    b = bigquant.compress(china, tmp_path / "b.bq.zarr", k=9, max_iter=5)
    ra, rb = dask.compute(a.reconstruct(), b.reconstruct())
    assert np.array_equal(ra, a.codebook[a.labels.compute()])
    assert np.array_equal(rb, b.codebook[b.labels.compute()])
