"""The exact colour-histogram path."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigquant import hamerly, histogram, kmeans, params, seeding


@pytest.mark.parametrize(
    "channels",
    [1, 2, 3],  # every channel count the 24-bit path takes: its code packing differs for each
)
def test_histogram_is_exact(channels):
    rng = np.random.default_rng(channels)
    img = rng.integers(0, 40, size=(70, 90, channels)).astype(np.uint8)
    x = da.from_array(img, chunks=(32, 25, -1))
    colours, counts = histogram.colour_histogram(x)
    ref_c, ref_n = np.unique(img.reshape(-1, channels), axis=0, return_counts=True)
    assert np.array_equal(colours, ref_c)
    assert np.array_equal(counts, ref_n)


def test_histogram_path_equals_pixel_path_from_same_init(china):
    x = da.from_array(china, chunks=(128, 160, -1))
    rng = np.random.default_rng(0)
    init = china.reshape(-1, 3)[rng.choice(china.shape[0] * china.shape[1], 16, replace=False)].astype(float)
    pix = kmeans.lloyd(x, init, max_iter=300, tol_abs=0.0)
    colours, counts = histogram.colour_histogram(x)
    hist = histogram.fit(colours, counts, init, max_iter=300, tol_abs=0.0, sample=colours.astype(float), coarse=False)
    assert pix.converged and hist.converged
    assert hist.n_iter == pix.n_iter
    np.testing.assert_allclose(hist.centroids, pix.centroids, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, k", [("china", 16), ("coffee", 32)])
def test_inertia_stall_ends_the_tail_for_almost_nothing(request, name, k):
    """compress's default stop (tol 1e-4: also five inertia gains in a row under 1e-6) against
    the shift test alone, from the same start: fewer iterations, and an inertia at most 2e-5
    higher (0.0001 dB of PSNR; measured 6e-7 and 1.4e-5; a ten times looser rule gives 1.7e-5
    and 4.4e-5)."""
    img = request.getfixturevalue(name)
    colours, counts = histogram.colour_histogram(da.from_array(img, chunks=(256, 256, -1)))
    sample = histogram.sample_from_histogram(colours, counts, seeding.DEFAULT_SAMPLE_SIZE, 0).astype(float)
    start = seeding.init_centroids(sample, k, seed=0)
    runs = {
        rtol: histogram.fit(
            colours,
            counts,
            start,
            max_iter=300,
            sample=sample,
            inertia_rtol=rtol,
            tol_abs=1e-4 * kmeans.data_scale(colours, counts),
        )
        for rtol in (0.0, params.inertia_rtol(1e-4))
    }
    shift_only, stalled = runs[0.0], runs[params.inertia_rtol(1e-4)]
    assert stalled.stopped_by == "inertia" and shift_only.stopped_by == "shift"
    assert stalled.n_iter < shift_only.n_iter
    assert stalled.inertia <= shift_only.inertia * (1 + 2e-5)


@pytest.mark.parametrize("k, ring_max_k", [(200, 1024), (300, 1024), (300, 64)])
def test_ring_search_at_large_k_equals_the_pixel_path(china, monkeypatch, k, ring_max_k):
    """At large K a point's new centroid is searched among its old one's neighbours only, nearest
    first (uint8 labels up to 256, int32 beyond), or above RING_MAX_K among all: still exact
    Lloyd's, twin centroids included."""
    monkeypatch.setattr(hamerly, "RING_MAX_K", ring_max_k)
    crop = china[100:220, 200:360]
    x = da.from_array(crop, chunks=(60, 80, -1))
    colours, counts = histogram.colour_histogram(x)
    rng = np.random.default_rng(1)
    init = colours[rng.choice(len(colours), k, replace=False)].astype(float)
    init[7] = init[3]  # twins: the lower index takes their colours, the other is re-seeded
    sample = colours.astype(float)
    pix = kmeans.lloyd(x, init, max_iter=25, tol_abs=0.0, sample=sample)
    hist = histogram.fit(colours, counts, init, max_iter=25, tol_abs=0.0, sample=sample, coarse=False)
    assert hist.n_iter == pix.n_iter
    np.testing.assert_allclose(hist.centroids, pix.centroids, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("channels", [3, 2, 1])
def test_label_table_labels_like_the_pixel_kernel(coffee, channels):
    img = np.ascontiguousarray(coffee[..., :channels])
    x = da.from_array(img, chunks=(100, 100, -1))
    colours, counts = histogram.colour_histogram(x)
    codebook = colours[:: max(1, len(colours) // 20)][:20].astype(np.uint8)
    k = len(codebook)
    lut, sq_err = histogram.label_table(colours, codebook)
    lab_h, stats_h = histogram.label_block(img, lut, codebook)
    lab_p, stats_p = kmeans.label_block(img, codebook)
    assert np.array_equal(lab_h, lab_p)
    np.testing.assert_allclose(stats_h, stats_p)  # counts, squared error and data range agree
    assert np.isclose((sq_err * counts).sum(), stats_p[k])
    # one pixel, and none: the counts of a single run, and the empty range (255, 0)
    _, one = histogram.label_block(img[:1, :1], lut, codebook)
    assert one[:k].sum() == 1 and one[lab_p[0, 0]] == 1 and tuple(one[-2:]) == (img[0, 0].min(), img[0, 0].max())
    _, none = histogram.label_block(img[:0], lut, codebook)
    assert not none[: k + 1].any() and tuple(none[-2:]) == (255, 0)


def test_full_label_table_matches_nearest_codebook_entry():
    rng = np.random.default_rng(4)
    codebook = rng.integers(0, 256, (9, 2)).astype(np.uint8)
    lut = histogram.full_label_table(codebook, 2)
    colours = histogram.codes_to_colours(np.arange(1 << 16, dtype=np.uint32), 2)
    labels, _ = kmeans.label_block(colours[None], codebook)  # every 16-bit colour, one row
    assert np.array_equal(lut, labels[0])


def test_coarse_histogram_keeps_mass_and_mean(coffee):
    colours, counts = histogram.colour_histogram(da.from_array(coffee, chunks=(200, 300, -1)))
    pts, w = histogram.coarse_histogram(colours, counts)
    assert len(pts) <= 2**15 and w.sum() == counts.sum()
    np.testing.assert_allclose((pts * w[:, None]).sum(0) / w.sum(), (colours * counts[:, None]).sum(0) / counts.sum())


@pytest.mark.parametrize("ratio", [1, 64, 1 << 40])
def test_sorted_and_table_histograms_agree(china, monkeypatch, ratio):
    """Small tasks sort their codes, large ones count them in the dense table: same answer."""
    monkeypatch.setattr(histogram, "SPARSE_RATIO", ratio)
    expected, counts = np.unique(china.reshape(-1, 3), axis=0, return_counts=True)
    for chunks in [(427, 640), (100, 100), (427, 64)]:
        colours, n = histogram.colour_histogram(da.from_array(china, chunks=chunks + (3,)))
        np.testing.assert_array_equal(colours, expected)
        np.testing.assert_array_equal(n, counts)
        assert n.dtype == np.int32  # 4 bytes a colour while the fit holds them


@pytest.mark.parametrize("ratio", [1, 1 << 40])
def test_counts_widen_to_int64_past_two_billion_pixels(monkeypatch, ratio):
    """A merge whose parts add up to 2**31 pixels or more counts in int64, without overflow."""
    monkeypatch.setattr(histogram, "SPARSE_RATIO", ratio)
    big = np.array([2**31 - 10, 7], dtype=np.int32)
    parts = [(np.array([5, 9], np.uint32), big), (np.array([9, 2], np.uint32), np.array([3, 2**31 - 1], np.int32))]
    codes, n = histogram.merge_histograms(parts, 1 << 24)
    np.testing.assert_array_equal(codes, [2, 5, 9])
    assert n.dtype == np.int64
    np.testing.assert_array_equal(n, [2**31 - 1, 2**31 - 10, 10])
    assert histogram.count_dtype(2**31 - 1) == np.int32 and histogram.count_dtype(2**31) == np.int64
