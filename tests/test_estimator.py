"""bigquant.estimator.KMeans: the scikit-learn contract, and agreement with scikit-learn's KMeans."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans as SKKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from bigquant import kmeans
from bigquant.errors import RecomputeWarning
from bigquant.estimator import KMeans


def _expected_failed_checks(estimator) -> dict[str, str]:
    return {
        # scikit-learn's own KMeans is listed as failing this check for the same reason: k-means++
        # draws its seeds from X with the weights as probabilities, so X with weights and X with
        # repeated rows consume the random stream differently, start from different centres and
        # may end in a different local optimum (or the same partition under other label numbers).
        "check_sample_weight_equivalence_on_dense_data": "k-means++ draws differ between weighted and repeated rows (as for sklearn.cluster.KMeans)",
    }


@parametrize_with_checks([KMeans()], expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # several checks fit 8 clusters on data with fewer distinct rows; the warning is right
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def china_pixels(china) -> np.ndarray:
    """scikit-learn's china.jpg as (273280, 3) uint8 rows."""
    return china.reshape(-1, 3)


def _random_rows(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return X[rng.choice(len(X), k, replace=False)].astype(np.float64)


def test_matches_sklearn_from_same_init(china_pixels):
    init = _random_rows(china_pixels, 8)
    X = china_pixels.astype(np.float64)
    ref = SKKMeans(8, init=init, n_init=1, max_iter=300, tol=0).fit(X)
    # uint8 rows go to the kernels as they are; 5 ragged chunks of rows
    ours = KMeans(8, init=init, max_iter=300, tol=0, chunk_size=60_000).fit(china_pixels)
    assert ours.converged_
    scale = np.abs(ref.cluster_centers_).max()
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-4)
    assert ours.labels_.dtype == np.int32
    assert (ours.labels_ == ref.labels_).mean() > 0.9999
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=1e-4)


def test_dask_input_equals_numpy_input(china_pixels):
    X = china_pixels[::3]  # 91,094 rows: k-means++ runs on all of them
    est = dict(n_clusters=6, random_state=0, chunk_size=20_000)
    a = KMeans(**est).fit(X)
    b = KMeans(**est).fit(da.from_array(X, chunks=(20_000, 3)))
    # same chunks: the same graph, bit for bit
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert isinstance(b.labels_, da.Array)
    np.testing.assert_array_equal(a.labels_, b.labels_.compute())
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_
    # other (ragged, column-split) chunks: the same up to the order of the float sums
    c = KMeans(6, random_state=0).fit(da.from_array(X, chunks=(7_001, 2)))
    np.testing.assert_allclose(c.cluster_centers_, a.cluster_centers_, rtol=1e-9)
    # predict, transform and score of a dask array are lazy / computed on the same kernels
    np.testing.assert_array_equal(b.predict(da.from_array(X, chunks=9_999)).compute(), a.predict(X))
    np.testing.assert_allclose(b.transform(da.from_array(X, chunks=9_999)).compute(), a.transform(X))
    assert b.score(da.from_array(X, chunks=9_999)) == pytest.approx(a.score(X), rel=1e-12)


def test_predict_and_transform_agree_with_centres(china_pixels):
    est = KMeans(16, random_state=1).fit(china_pixels)  # 273,280 rows: k-means++ on a sample
    assert est.cluster_centers_.shape == (16, 3) and est.n_features_in_ == 3
    new = np.random.default_rng(0).integers(0, 256, size=(5000, 3), dtype=np.uint8)  # unseen colours
    d = est.transform(new)
    brute = np.sqrt(((new[:, None, :].astype(float) - est.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(d, brute, rtol=1e-9, atol=1e-6)
    labels = est.predict(new)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, brute.argmin(1))
    np.testing.assert_array_equal(est.predict(china_pixels), est.labels_)
    assert est.score(china_pixels) == pytest.approx(-est.inertia_, rel=1e-12)
    # inertia_ is that of the returned centres and labels (a last E-step after the iterations)
    diff = china_pixels - est.cluster_centers_[est.labels_]
    assert est.inertia_ == pytest.approx((diff**2).sum(), rel=1e-10)


def test_tol_is_sklearns_sum_of_squared_shifts(china_pixels):
    X = china_pixels[::5].astype(np.float64)
    init = _random_rows(X, 8, seed=2)
    est = KMeans(8, init=init, tol=1e-3).fit(X)
    ref = SKKMeans(8, init=init, n_init=1, algorithm="lloyd", tol=1e-3).fit(X)
    # scikit-learn's test: sum of squared shifts <= tol * mean variance, checked after each update
    # (scikit-learn also stops when no label changes, one iteration sooner in that case)
    assert est.converged_ and est.n_iter_ in (ref.n_iter_, ref.n_iter_ + 1)
    res = kmeans.lloyd(da.from_array(X, chunks=(len(X), 3)), init, max_iter=300, tol_total=1e-3 * X.var(0).mean())
    assert est.n_iter_ == res.n_iter
    np.testing.assert_allclose(est.inertia_, ref.inertia_, rtol=1e-4)


def test_unpersisted_dask_input_warns_once_per_fit():
    x = da.random.default_rng(0).normal(size=(200_000, 3), chunks=(50_000, 3))
    with pytest.warns(RecomputeWarning, match="persist"):
        KMeans(4, random_state=0, max_iter=5).fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecomputeWarning)
        KMeans(4, random_state=0, max_iter=5).fit(x.persist())
        KMeans(4, random_state=0, max_iter=5).fit(da.from_array(np.asarray(x[:1000]), chunks=(300, 3)))


def test_large_input_reaches_sklearns_inertia():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 1.0, size=(60_000, 3)) for c in ((0, 0, 0), (6, 0, 0), (0, 6, 0), (3, 3, 6))])
    ours = KMeans(4, random_state=0).fit(da.from_array(X, chunks=(50_000, 3)))
    ref = SKKMeans(4, random_state=0, n_init=1).fit(X)
    assert ours.inertia_ <= ref.inertia_ * (1 + 1e-6)
    assert ours.n_iter_ <= ref.n_iter_


def test_float32_and_sample_weight():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.1, size=(200, 2)) for c in (0.0, 5.0, 10.0)]).astype(np.float32)
    w = np.where(X[:, 0] > 7.5, 3.0, 1.0)
    est = KMeans(3, random_state=0).fit(X, sample_weight=w)
    assert est.transform(X).dtype == np.float32
    centres = np.sort(est.cluster_centers_[:, 0])
    np.testing.assert_allclose(centres, [0.0, 5.0, 10.0], atol=0.05)
    # inertia_ and score weigh each row's squared distance to its nearest centre
    nearest = ((X[:, None, :].astype(np.float64) - est.cluster_centers_[None]) ** 2).sum(-1).min(1)
    assert est.inertia_ == pytest.approx((w * nearest).sum(), rel=1e-9)
    assert est.score(X, sample_weight=w) == pytest.approx(-est.inertia_, rel=1e-12)
    # the same weights as a dask array, with dask rows
    lazy = KMeans(3, random_state=0).fit(da.from_array(X, chunks=100), sample_weight=da.from_array(w, chunks=150))
    np.testing.assert_allclose(lazy.cluster_centers_, est.cluster_centers_, rtol=1e-6)
    with pytest.raises(ValueError, match="Negative"):
        KMeans(3).fit(da.from_array(X, chunks=100), sample_weight=da.from_array(-w, chunks=100))


def test_errors():
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=4"):
        KMeans(4).fit(np.zeros((3, 2)))
    bad = da.from_array(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]] * 50), chunks=(40, 2))
    with pytest.raises(ValueError, match="NaN or infinity"):
        KMeans(2, init=np.array([[0.0, 1.0], [3.0, 4.0]])).fit(bad)
    with pytest.raises(ValueError, match="n_clusters must be"):
        KMeans(0).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shape of the initial centers"):
        KMeans(2, init=np.zeros((3, 2))).fit(np.zeros((5, 2)))


def test_duplicate_rows_warn_like_sklearn():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(2\).*n_clusters \(3\)"):
        est = KMeans(3, random_state=0, max_iter=5).fit(X)
    assert est.inertia_ == 0.0


def test_lazy_results_of_two_models_do_not_share_task_keys():
    X = da.from_array(np.random.default_rng(0).normal(size=(1000, 3)), chunks=300)
    a, b = KMeans(3, random_state=0).fit(X), KMeans(4, random_state=1).fit(X)
    # computed together, each keeps its own values (a fixed map_blocks name= would merge them)
    la, lb, ta, tb = dask.compute(a.labels_, b.labels_, a.transform(X), b.transform(X))
    np.testing.assert_array_equal(la, a.labels_.compute())
    np.testing.assert_array_equal(lb, b.labels_.compute())
    assert ta.shape == (1000, 3) and tb.shape == (1000, 4)
