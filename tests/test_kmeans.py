"""The map-reduce Lloyd engine against scikit-learn and against known answers."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from conftest import known_colours_image
from sklearn.cluster import KMeans, kmeans_plusplus

from bigquant import _dask, coreset, kmeans, params, seeding
from bigquant.errors import InputError, ParameterError


def _init(img: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    pts = img.reshape(-1, img.shape[-1] if img.ndim == 3 else 1).astype(np.float64)
    rng = np.random.default_rng(seed)
    return pts[rng.choice(len(pts), k, replace=False)]


def _as3d(img):
    return img if img.ndim == 3 else img[..., None]


@pytest.mark.parametrize(
    "name, k, chunks",
    [
        ("china", 16, (100, 130)),  # scikit-learn's photo, ragged chunks on both axes
        ("coffee", 8, (64, 97)),  # scikit-image's photo, many small ragged chunks
        ("camera", 5, (512, 512)),  # greyscale (C=1), one chunk: the degenerate map-reduce
    ],
)
def test_matches_sklearn_from_same_init(request, name, k, chunks):
    img = _as3d(request.getfixturevalue(name))
    init = _init(img, k)
    X = img.reshape(-1, img.shape[-1]).astype(np.float64)
    ref = KMeans(k, init=init, n_init=1, algorithm="lloyd", max_iter=300, tol=0).fit(X)
    x = da.from_array(img, chunks=chunks + (-1,))
    res = kmeans.lloyd(x, init, max_iter=300, tol_abs=0.0)
    assert res.converged
    scale = np.abs(ref.cluster_centers_).max()
    np.testing.assert_allclose(res.centroids, ref.cluster_centers_, rtol=0, atol=1e-4 * scale)


def test_chunking_does_not_change_the_result(coffee):
    init = _init(coffee, 12, seed=3)
    results = []
    for chunks in [(400, 600), (128, 128), (33, 250), (400, 7)]:  # one chunk, square, wide, tall strips
        x = da.from_array(coffee, chunks=chunks + (-1,))
        results.append(kmeans.lloyd(x, init, max_iter=300, tol_abs=0.0).centroids)
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-4, atol=1e-4)


def test_same_chunking_is_bit_identical(china):
    x = da.from_array(china, chunks=(100, 130, -1))
    init = _init(china, 16, seed=5)
    a = kmeans.lloyd(x, init, max_iter=20)
    b = kmeans.lloyd(x, init, max_iter=20)
    assert np.array_equal(a.centroids, b.centroids)
    assert a.inertia_history == b.inertia_history


def test_recovers_known_colours():
    img, colours = known_colours_image(k=6, noise=2.0)
    x = da.from_array(img, chunks=(50, 60, -1))
    sample = seeding.sample_pixels(x, 5000, seed=0)
    init = seeding.init_centroids(sample, 6, seed=0)
    res = kmeans.lloyd(x, init, max_iter=100, tol_abs=1e-6, sample=sample.astype(float))
    assert res.converged
    # every true colour has a centroid within a unit (noise sigma 2, thousands of pixels each)
    d = np.sqrt(((colours[:, None, :] - res.centroids[None]) ** 2).sum(-1))
    assert d.min(axis=1).max() < 1.0
    assert sorted(d.argmin(axis=1)) == list(range(6))


@pytest.mark.parametrize("k", [1, 2, 16, 64, 256])
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_picks_sklearns_centres(china, coffee, k, weighted):
    """The compiled k-means++ draws the same random stream as scikit-learn's and keeps the same
    candidates: the same centres, index for index."""
    rng = np.random.default_rng(k)
    for img in (china, coffee):
        pts = img.reshape(-1, 3)[::23].astype(np.float64)
        w = rng.random(len(pts)) if weighted else None
        ours, idx = seeding.kmeans_plusplus(pts, k, seed=k + 3, sample_weight=w)
        ref, ref_idx = kmeans_plusplus(pts, k, random_state=k + 3, sample_weight=w)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(ours, ref)


def test_empty_cluster_is_reseeded_not_nan():
    img, _ = known_colours_image(k=4, noise=1.0)
    x = da.from_array(img, chunks=(60, 60, -1))
    sample = seeding.sample_pixels(x, 2000, seed=1).astype(np.float64)
    init = seeding.init_centroids(sample, 4, seed=0)
    init[3] = [1e4, 1e4, 1e4]  # no pixel is ever nearest to this centroid
    res = kmeans.lloyd(x, init, max_iter=50, tol_abs=1e-6, sample=sample)
    assert res.reseeded >= 1
    assert np.isfinite(res.centroids).all()
    assert np.abs(res.centroids).max() <= 255


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    w = rng.integers(1, 5, 500)
    rep = np.repeat(pts, w, axis=0)
    init = pts[:7].astype(np.float64)
    a = kmeans.lloyd(
        da.from_array(pts, chunks=(128, 3)), init, weights=da.from_array(w.astype(float), chunks=128), max_iter=50
    )
    b = kmeans.lloyd(da.from_array(rep, chunks=(300, 3)), init, max_iter=50)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-9)
    assert a.n_iter == b.n_iter


def _scripted_step(inertias, empty_at=()):
    """A Lloyd step for one centroid in one channel that moves it by 1 every step (so the shift
    test never fires) and reports the given inertias; at the steps in ``empty_at`` the cluster is
    empty (so the loop re-seeds it from the sample)."""
    calls = []

    def step(centroids, shift, first):
        i = len(calls)
        calls.append(i)
        total = np.zeros((2, 3))
        if i not in empty_at:
            total[0] = [centroids[0, 0] + 1.0, 1.0, inertias[i]]
        total[0, 2] = inertias[i]
        return total

    return step


@pytest.mark.parametrize(
    "inertias, rtol, stop_at, reason",
    [
        # five steps in a row that each gain at most 1e-6 of the inertia: converged there
        ([100.0, 50.0] + [50.0 - 4e-5 * i for i in range(1, 6)] + [10.0, 5.0], 1e-6, 7, "inertia"),
        # four small gains, then a large one: keeps going (and so on to max_iter)
        (
            [100.0] + [100.0 - 1e-5 * i for i in range(1, 5)] + [50.0] + [50.0 - 1e-5 * i for i in range(1, 4)],
            1e-6,
            9,
            "max_iter",
        ),
        # gains of 2e-6 of the inertia are above the tolerance
        ([100.0 * (1 - 2e-6) ** i for i in range(9)], 1e-6, 9, "max_iter"),
        # no inertia test at rtol 0, even when the inertia stays put
        ([7.0] * 9, 0.0, 9, "max_iter"),
    ],
)
def test_lloyd_stops_when_the_inertia_stalls(inertias, rtol, stop_at, reason):
    res = kmeans.lloyd_loop(_scripted_step(inertias), np.zeros((1, 1)), max_iter=9, tol_abs=1e-3, inertia_rtol=rtol)
    assert res.n_iter == stop_at
    assert res.stopped_by == reason
    assert res.converged == (reason != "max_iter")
    assert res.inertia_history == inertias[:stop_at]


def test_inertia_stall_does_not_count_a_reseeding_step():
    # steps 3 to 9 gain nothing, but step 3 re-seeds an empty cluster: the count of stalled
    # steps starts again at step 4, so the run stops at step 8, not 7
    flat = [10.0] + [9.0] * 8
    res = kmeans.lloyd_loop(
        _scripted_step(flat, empty_at={2}),
        np.zeros((1, 1)),
        max_iter=9,
        tol_abs=1e-3,
        inertia_rtol=1e-6,
        sample=np.array([[100.0]]),
    )
    assert res.reseeded == 1
    assert (res.n_iter, res.stopped_by) == (8, "inertia")


def test_nan_is_refused_after_first_pass():
    img = np.random.default_rng(0).random((40, 50, 3))
    img[17, 3, 1] = np.nan
    x = da.from_array(img, chunks=(16, 16, -1))
    with pytest.raises(InputError, match="NaN or inf"):
        kmeans.lloyd(x, img[0, :4].astype(float), max_iter=5)


def test_sample_is_reproducible_and_bounded():
    x = da.random.RandomState(0).randint(0, 255, size=(800, 900, 3), chunks=(100, 100, 3)).astype(np.uint8)
    a = seeding.sample_pixels(x, 3000, seed=7, max_blocks=10)
    b = seeding.sample_pixels(x, 3000, seed=7, max_blocks=10)
    assert a.shape == (3000, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, seeding.sample_pixels(x, 3000, seed=8, max_blocks=10))


@pytest.mark.parametrize(
    "value, ok",
    [
        (1, True),  # smallest K
        (65536, True),  # largest K (uint16 labels)
        (16.0, True),  # a float that is a whole number is accepted
        (0, False),  # K < 1
        (65537, False),  # K > 65536
        (2.5, False),  # not a whole number
        ("8", False),  # a string is not a number here (the CLI parses its own)
        (True, False),  # bool is not a count
    ],
)
def test_check_k(value, ok):
    if ok:
        assert params.check_k(value) == int(value)
    else:
        with pytest.raises(ParameterError, match="K must be"):
            params.check_k(value)


def test_tree_reduce_is_a_tree():
    parts = [dask.delayed(np.full)(2, float(i)) for i in range(100)]
    total = _dask.tree_reduce(parts, _dask.sum_parts, split_every=4)
    assert np.array_equal(total.compute(), np.full(2, float(sum(range(100)))))
    # depth is logarithmic: 100 parts -> 25 -> 7 -> 2 -> 1 combines
    graph = dict(total.__dask_graph__())
    combines = [k for k in graph if str(k).startswith("sum_parts")]
    assert len(combines) == 25 + 7 + 2 + 1


@pytest.mark.parametrize("k, channels", [(1, 3), (6, 3), (32, 3), (300, 3), (24, 4)])
def test_labels_from_the_previous_pixels_neighbours_are_the_full_searchs(k, channels):
    # The labelling kernels search from the previous pixel's centroid. Even integer centroids and
    # integer pixels make every distance exact, so the nearest (the lowest index on ties) is
    # known. The pixels step from a centroid to the midpoint between it and its nearest other
    # centroid (a tie the lower index must win) and to either side of it; a twin centroid has
    # no radius at all within which its label could be kept.
    rng = np.random.default_rng(k)
    cb = 2 * rng.integers(0, 500, (k, channels)).astype(np.float64)
    if k > 4:
        cb[3] = cb[1]
    gaps = ((cb[:, None] - cb[None]) ** 2).sum(-1) + np.diag(np.full(k, np.inf))
    step = np.eye(channels)[0]
    rows = []
    for a in rng.integers(0, k, 800):  # enough rows for neighbour lists at K = 300
        b = gaps[a].argmin()
        mid = (cb[a] + cb[b]) / 2
        rows += [cb[a], mid, cb[a], mid + step, cb[a], mid - step, cb[b], mid]
    x = np.array(rows).reshape(1, -1, channels)
    exact = ((x.reshape(-1, 1, channels) - cb[None]) ** 2).sum(-1).argmin(1)
    labels, stats = kmeans.label_block(x, cb)
    assert np.array_equal(labels.ravel(), exact)
    assert np.array_equal(stats[:k], np.bincount(exact, minlength=k))
    np.testing.assert_array_equal(kmeans.min_sq_dist(x[0], cb), ((x[0] - cb[exact]) ** 2).sum(-1))
    fused_labels, _ = coreset.label_and_sum(x, cb)
    assert np.array_equal(fused_labels.ravel(), exact)
    # and where a cell's label stands in for the search: the cells holding the ties straddle
    cells = coreset.coreset(da.from_array(x, chunks=(1, 480, -1)), x[0])
    table = coreset.cell_labels(cells, cb, min_share=0.0)
    assert table is not None
    table_labels, _ = coreset.label_and_sum(x, cb, table)
    assert np.array_equal(table_labels.ravel(), exact)
    partials = kmeans.lloyd_step_graph(da.from_array(x, chunks=(1, 480, -1)), cb).compute()
    assert np.array_equal(np.asarray(partials).reshape(k + 1, -1)[:k, channels], np.bincount(exact, minlength=k))
