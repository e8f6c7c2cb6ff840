"""Large K (up to 65536): the k-d tree searches give the full searches' answers, ties included;
pruned k-means++ makes the same choices; K at the number of colours is exact; and a compress at
the top of the K range finishes, says what it is doing and decodes."""

from __future__ import annotations

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
from skimage import data

import bigquant
from bigquant import hamerly, histogram, kmeans, seeding
from bigquant.cli import main


def _full_search(monkeypatch):
    """Make every nearest-centroid search and every k-means++ a full one (the reference)."""
    monkeypatch.setattr(kmeans, "TREE_MIN_K", 10**9)
    monkeypatch.setattr(seeding, "KPP_PRUNED_MIN_K", 10**9)


@pytest.fixture(scope="module")
def astro_colours():
    """The distinct colours of a real photograph (113,382) and their pixel counts."""
    img = data.astronaut()
    return histogram.colour_histogram(da.from_array(img, chunks=(256, 256, 3)))


def _cases(colours):
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 6, size=(4000, 3)).astype(np.uint8)
    lattice = np.stack(np.meshgrid(*[np.arange(0, 16, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return [
        # real colours against a codebook of other real colours: integer distances, many ties
        ("real", colours[::7], colours[rng.choice(len(colours), 3000, replace=False)].astype(float)),
        # twins: equal centroids, of which the lowest index must win
        ("twins", grid, rng.integers(0, 6, size=(700, 3)).astype(float)),
        # a lattice of centroids at even coordinates, in shuffled order, and points at odd ones:
        # nearly every point ties between 2 to 8 centroids in different parts of the tree
        ("ties", rng.integers(0, 16, size=(4000, 3)).astype(np.uint8), rng.permutation(lattice).astype(float)),
        # float data and centroids: near-ties decided by rounding, which must be the full search's
        ("float", rng.random((4000, 3)) * 255, rng.random((2000, 3)) * 255),
        # one, two and four channels (the tree's dimension)
        ("gray", colours[::5, :1], rng.random((300, 1)) * 255),
        ("two", rng.random((3000, 2)), rng.random((400, 2))),
        ("four", rng.random((3000, 4)) * 1000, rng.random((1000, 4)) * 1000),
    ]


@pytest.mark.parametrize("case", range(7))
def test_tree_search_equals_full_search(case, astro_colours, monkeypatch):
    name, x, cb = _cases(astro_colours[0])[case]
    assert kmeans.use_tree(len(cb), cb.shape[1]), name
    got = kmeans.label_block(x, cb), kmeans.min_sq_dist(x, cb)
    _full_search(monkeypatch)
    want = kmeans.label_block(x, cb), kmeans.min_sq_dist(x, cb)
    assert np.array_equal(got[0][0], want[0][0]), name  # labels
    assert np.array_equal(got[0][1], want[0][1]), name  # counts, error, range
    assert np.array_equal(got[1], want[1]), name


def test_label_table_equals_full_search(astro_colours, monkeypatch):
    colours, _ = astro_colours
    cb = colours[np.random.default_rng(1).choice(len(colours), 5000, replace=False)].astype(float)
    lut, err = histogram.label_table(colours, cb)
    _full_search(monkeypatch)
    lut_full, err_full = histogram.label_table(colours, cb)
    assert np.array_equal(lut, lut_full) and np.array_equal(err, err_full)
    assert lut.dtype == np.uint16


def test_pixel_lloyd_step_equals_full_search(monkeypatch):
    rng = np.random.default_rng(2)
    x = da.from_array(rng.random((300, 200, 3)) * 255, chunks=(100, 150, 3))  # ragged chunks
    init = rng.random((400, 3)) * 255
    got = kmeans.lloyd(x, init, max_iter=3, sample=init)
    _full_search(monkeypatch)
    want = kmeans.lloyd(x, init, max_iter=3, sample=init)
    assert np.array_equal(got.centroids, want.centroids)
    assert got.inertia_history == want.inertia_history


def test_hamerly_with_tree_equals_full_search(astro_colours, monkeypatch):
    colours, counts = astro_colours
    k = hamerly.RING_MAX_K + 500  # beyond the ring tables: searched points go to the tree
    init = colours[np.random.default_rng(3).choice(len(colours), k, replace=False)].astype(float)
    args = dict(max_iter=4, tol_abs=0.0, sample=init)
    got = hamerly.lloyd_in_memory(colours, counts, init, **args)
    _full_search(monkeypatch)
    want = hamerly.lloyd_in_memory(colours, counts, init, **args)
    assert np.array_equal(got.centroids, want.centroids)
    assert got.inertia_history == want.inertia_history and got.shift_history == want.shift_history


@pytest.mark.parametrize(
    "k, weighted",
    [
        (seeding.KPP_PRUNED_MIN_K, False),  # the smallest K that runs pruned
        (3000, True),  # weighted points (a histogram's counts)
    ],
)
def test_pruned_kmeans_plusplus_makes_the_same_choices(k, weighted, astro_colours, monkeypatch):
    # integer colours and weights: every potential is an integer, exact either way, so the
    # pruned run must pick exactly the full run's centres
    colours, counts = astro_colours
    pts = colours[::4]
    w = counts[::4].astype(float) if weighted else None
    got = seeding.kmeans_plusplus(pts, k, seed=5, sample_weight=w)
    _full_search(monkeypatch)
    want = seeding.kmeans_plusplus(pts, k, seed=5, sample_weight=w)
    assert np.array_equal(got[1], want[1])


def test_k_at_the_number_of_colours_is_exact(tmp_path):
    img = data.chelsea()[:40, :60]  # 2,400 pixels, ~1,900 distinct colours
    distinct = len(np.unique(img.reshape(-1, 3), axis=0))
    with pytest.warns(bigquant.KReducedWarning):
        bigquant.compress(img, tmp_path / "a.bq.zarr", k=distinct + 100)
    store = bigquant.open(tmp_path / "a.bq.zarr")
    assert store.codebook.shape == (distinct, 3)
    assert np.array_equal(np.sort(store.codebook.view("V3").ravel()), np.unique(img.reshape(-1, 3).view("V3")))
    assert np.array_equal(store.codebook[store.labels.compute()], img)
    assert store.metadata["mse"] == 0.0


def test_k_65536_compress_finishes_logs_and_decodes(tmp_path, capsys):
    # a real 128 x 128 crop (under 65536 colours: exact) and K=4096 on 20,000 colours (seeded
    # pruned, Hamerly's steps and the label table through the tree)
    img = data.astronaut()[100:228, 200:328]
    photo = tmp_path / "astro.png"
    iio.imwrite(photo, img)
    assert main(["compress", str(photo), "-k", "65536", "-o", str(tmp_path / "a.bq.zarr")]) == 0
    capsys.readouterr()
    store = bigquant.open(tmp_path / "a.bq.zarr")
    assert np.array_equal(store.codebook[store.labels.compute()], img)
    assert main(["decode", str(tmp_path / "a.bq.zarr"), "-o", str(tmp_path / "a.png")]) == 0
    assert np.array_equal(iio.imread(tmp_path / "a.png"), img)

    big = data.astronaut()[:256, 128:384]
    iio.imwrite(photo, big)
    assert main(["compress", str(photo), "-k", "4096", "-o", str(tmp_path / "b.bq.zarr")]) == 0
    err = capsys.readouterr().err  # stderr is no terminal here: the compact log
    assert "seeding: k-means++ of 4,096 centres" in err, err
    assert "Lloyd" in err and "pass" in err, err
    store = bigquant.open(tmp_path / "b.bq.zarr")
    assert store.codebook.shape == (4096, 3)
    labels = store.labels.compute()
    assert labels.dtype == np.uint16 and len(np.unique(labels)) > 4000
    assert store.metadata["mse"] < 2.0  # 4096 colours of a 256 x 256 photo: nearly lossless
