"""``KMeans``: a scikit-learn compatible estimator on bigquant's map-reduce Lloyd engine.

The estimator clusters the rows of an (n_samples, n_features) NumPy or Dask array. It is the
image pipeline's engine seen through the scikit-learn API: the data become a dask array chunked
by rows, k-means++ runs on a sample (:func:`bigquant.seeding.init_centroids`), every Lloyd
iteration is one map-reduce pass (:func:`bigquant.kmeans.lloyd`), and labels come from the same
compiled kernel (:func:`bigquant.kmeans.label_block`). Nothing of size n_samples x n_clusters is
built while fitting; only :meth:`KMeans.transform` returns such an array, because that is what
it is asked for.
"""

from __future__ import annotations

import numbers
import warnings

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import check_random_state

# scikit-learn's own estimators validate sample_weight with it; there is no public equivalent.
from sklearn.utils.validation import (
    _check_sample_weight,  # noqa: PLC2701
    check_array,
    check_is_fitted,
    validate_data,
)

from . import kmeans, params, seeding
from ._dask import on_default_scheduler
from .errors import InputError, RecomputeWarning
from .hamerly import lloyd_in_memory

#: Rows of the sample that k-means++ and the tolerance's scale are computed from; data with at
#: most this many rows are used whole.
INIT_SAMPLE_SIZE = params.DEFAULT_SAMPLE_SIZE
#: Default chunk: about this many bytes of float64 per chunk of rows.
CHUNK_BYTES = 1 << 22

# dtypes the compiled kernels read as they are (no float64 copy of a uint8 pixel array);
# anything else numeric is converted to float64, as scikit-learn does.
_KEPT_DTYPES = [np.float64, np.float32, np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64]


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """K-means clustering by map-reduce Lloyd iterations, for NumPy and Dask arrays.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters K, 1 to 65536.
    init : {"k-means++"} or array-like of shape (n_clusters, n_features), default="k-means++"
        ``"k-means++"``: scikit-learn's ``kmeans_plusplus`` algorithm (compiled, the same picks;
        weighted by ``sample_weight``) on a
        sample of the rows: all of them when ``n_samples <= INIT_SAMPLE_SIZE`` (100,000), else a
        reproducible random sample of about that many drawn from at most 64 chunks.
        An array: the initial centres, used as given (``sample_weight`` plays no part in it).
    max_iter : int, default=300
        Most Lloyd iterations; each is one pass over the data.
    tol : float, default=1e-4
        scikit-learn's test: stop after the first iteration in which no cluster was empty and
        the *sum* of the squared shifts of the centres is at most ``tol * var``, where ``var``
        is the mean per-feature variance of the rows k-means++ is drawn from (all rows when
        ``n_samples <= 100,000``, else the sample), weighted by ``sample_weight``. ``tol=0``
        runs until the centres stop moving.
    random_state : int, RandomState instance or None, default=None
        Seeds the sample and k-means++. An int gives the same result on every run with the
        same ``chunk_size`` (and, for a dask input, the same chunks).
    chunk_size : int or None, default=None
        Rows per chunk of the map-reduce passes. None: about 4 MiB of float64 per chunk for a
        NumPy input, and the input's own row chunks for a dask input.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float64
        The centres after the last iteration.
    labels_ : ndarray of shape (n_samples,), int32, or a dask array for a dask input
        Index of the centre nearest to each row, against ``cluster_centers_``.
    inertia_ : float
        Sum of squared distances of the rows to their nearest centre in ``cluster_centers_``,
        weighted by ``sample_weight``.
    n_iter_ : int
        Lloyd iterations run.
    converged_ : bool
        Whether the ``tol`` criterion was met before ``max_iter``.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when fitted on a DataFrame with string column names.

    Notes
    -----
    With k-means++ on a sample (more than 100,000 rows), Lloyd's iterations first run on the
    sample, in memory (Hamerly's bounds), and the passes over the data start where they ended:
    each pass costs what many in-memory steps on the sample do. A dask input that is not
    persisted is recomputed on every pass; a :class:`~bigquant.errors.RecomputeWarning` says so.
    A row holding NaN or inf raises ValueError: a NumPy input is checked before fitting, a
    dask input during the first pass. ``predict`` and ``transform`` of a dask array are lazy
    and do not check it. Fitting runs on the current Dask scheduler (a ``distributed.Client``
    if one is active). An empty cluster is moved to the sampled row farthest from its centre.
    """

    def __init__(self, n_clusters=8, *, init="k-means++", max_iter=300, tol=1e-4, random_state=None, chunk_size=None):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.chunk_size = chunk_size

    # -- scikit-learn plumbing -------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        """Output width of ``transform`` (for ``get_feature_names_out``)."""
        return self.cluster_centers_.shape[0]

    def _check_params(self) -> None:
        k = self.n_clusters
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= params.MAX_K:
            raise ValueError(f"n_clusters must be an integer between 1 and {params.MAX_K}, got {k!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        cs = self.chunk_size
        if cs is not None and (isinstance(cs, bool) or not isinstance(cs, numbers.Integral) or cs < 1):
            raise ValueError(f"chunk_size must be None or an integer >= 1, got {cs!r}")
        if isinstance(self.init, str) and self.init != "k-means++":
            raise ValueError(
                f"init must be 'k-means++' or an array of shape (n_clusters, n_features), got {self.init!r}"
            )

    def _validate_X(self, X, *, reset: bool) -> tuple[da.Array, np.ndarray | None]:
        """Validate ``X``; return it as an (n, C) dask array chunked by rows, and the NumPy array
        it wraps (None for a dask input)."""
        if isinstance(X, da.Array):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.ndim != 2:
                raise ValueError(
                    f"Expected a 2D array of shape (n_samples, n_features), got a dask array of shape {X.shape}"
                )
            if any(np.isnan(s) for s in X.shape):
                raise ValueError("the dask array has unknown chunk sizes; call X.compute_chunk_sizes() first")
            if X.dtype.kind == "b":
                X = X.astype(np.uint8)
            elif X.dtype not in [np.dtype(t) for t in _KEPT_DTYPES]:
                if X.dtype.kind not in "iuf":
                    raise ValueError(f"dtype {X.dtype} is not supported; KMeans needs real numbers")
                X = X.astype(np.float64)
            n, c = X.shape
            if n < 1 or c < 1:
                raise ValueError(
                    f"Found array with {n} sample(s) and {c} feature(s) (shape={X.shape}) "
                    "while a minimum of 1 is required."
                )
            if self.chunk_size is not None:
                X = X.rechunk((self.chunk_size, -1))
            elif X.numblocks[1] != 1:
                X = X.rechunk({1: -1})
            return X, None
        X = validate_data(self, X, reset=reset, dtype=_KEPT_DTYPES, order="C")
        rows = self.chunk_size or max(1, CHUNK_BYTES // (8 * X.shape[1]))
        return da.from_array(X, chunks=(min(rows, X.shape[0]), -1)), X

    def _weights(self, sample_weight, x: da.Array) -> da.Array | None:
        """``sample_weight`` as a float64 dask array chunked like the rows of ``x``, or None."""
        if sample_weight is None:
            return None
        if isinstance(sample_weight, da.Array):
            if sample_weight.shape != (x.shape[0],):
                raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected {(x.shape[0],)}!")
            w = sample_weight.astype(np.float64).rechunk((x.chunks[0],))
            lo, hi = dask.compute(w.min(), w.max())  # a pass over the weights only (8 bytes a row)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError("Input sample_weight contains NaN or infinity.")
            if lo < 0:
                raise ValueError("Negative values in data passed to `sample_weight`")
            if hi == 0:
                raise ValueError("Sample weights must contain at least one non-zero number.")
            return w
        w = _check_sample_weight(sample_weight, np.empty((x.shape[0], 0)), dtype=np.float64, ensure_non_negative=True)
        return da.from_array(w, chunks=(x.chunks[0],))

    # -- fitting ---------------------------------------------------------------------------------

    @on_default_scheduler
    def fit(self, X, y=None, sample_weight=None):
        """Compute the k-means clustering of the rows of ``X``.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)
            Real-valued data: NumPy, lists, DataFrames, or a dask array (never loaded whole).
        y : Ignored
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Non-negative weight of each row in the centres, the inertia, and k-means++.

        Returns
        -------
        self : KMeans
        """
        self._check_params()
        x, X_np = self._validate_X(X, reset=True)
        n, c = x.shape
        k = int(self.n_clusters)
        if n < k:
            raise ValueError(f"n_samples={n} should be >= n_clusters={k}.")
        w = self._weights(sample_weight, x)

        # one sample feeds k-means++, the tolerance's scale and empty-cluster repair
        seed = self._seed()
        if n <= INIT_SAMPLE_SIZE:
            sample, sample_w = (x if X_np is None else X_np), w
            sample, sample_w = dask.compute(sample, sample_w)
        elif w is None:
            sample, sample_w = seeding.sample_pixels(x, INIT_SAMPLE_SIZE, seed), None
        else:
            both = seeding.sample_pixels(
                da.concatenate([x.astype(np.float64), w[:, None]], axis=1), INIT_SAMPLE_SIZE, seed
            )
            sample, sample_w = both[:, :c], both[:, c]
        sample = np.asarray(sample, dtype=np.float64)
        if not np.isfinite(sample).all():
            raise ValueError("Input X contains NaN or infinity; KMeans needs finite values.")
        if sample_w is not None and not sample_w.any():
            raise ValueError("The sampled rows all have weight 0; k-means++ needs some weight.")

        if isinstance(self.init, str):
            start = seeding.init_centroids(sample, k, seed, sample_weight=sample_w)
        else:
            start = check_array(self.init, dtype=np.float64, input_name="init")
            if start.shape != (k, c):
                raise ValueError(
                    f"The shape of the initial centers {start.shape} does not match the "
                    f"number of clusters and features {(k, c)}."
                )
        tol_total = float(self.tol) * kmeans.data_scale(sample, sample_w) ** 2
        if X_np is None and _recomputed(X):
            warnings.warn(
                "X is a dask array that is not persisted: its graph is computed again on every "
                "Lloyd pass; call X.persist() first if it fits in memory",
                RecomputeWarning,
                stacklevel=2,
            )
        if isinstance(self.init, str) and n > INIT_SAMPLE_SIZE:
            start = _warm_start(sample, sample_w, start, int(self.max_iter), tol_total)

        try:
            res = kmeans.lloyd(
                x, start, weights=w, max_iter=int(self.max_iter), tol_abs=0.0, tol_total=tol_total, sample=sample
            )
        except InputError as exc:  # the engine's NaN/inf check of the first pass
            raise ValueError(f"Input X contains NaN or infinity; KMeans needs finite values ({exc})") from exc
        centers = res.centroids

        # a last E-step, as scikit-learn does: labels_ and inertia_ agree with cluster_centers_
        labels = _labels(x, centers)
        step = kmeans.lloyd_step_graph(x, centers, w)
        if X_np is None:
            (total,) = dask.compute(step)
        else:
            labels, total = dask.compute(labels, step)
        counts = total[:k, c]
        distinct = int((counts > 0).sum())
        if distinct < k:
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters ({k}). "
                "Possibly due to duplicate points in X.",
                ConvergenceWarning,
                stacklevel=2,
            )

        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = float(total[:k, c + 1].sum())
        self.n_iter_ = int(res.n_iter)
        self.converged_ = bool(res.converged)
        return self

    def _seed(self) -> int:
        # an int seeds k-means++ exactly as scikit-learn's KMeans(random_state=int) does
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    @on_default_scheduler
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_`` (a dask array for a dask input)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    # -- using a fitted model ----------------------------------------------------------------------

    @on_default_scheduler
    def predict(self, X):
        """Index of the nearest centre of every row of ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,), int32; a lazy dask array for a dask input
        """
        check_is_fitted(self)
        x, X_np = self._validate_X(X, reset=False)
        if X_np is not None:
            return _label_rows(X_np, self.cluster_centers_)
        return _labels(x, self.cluster_centers_)

    @on_default_scheduler
    def transform(self, X):
        """Euclidean distance of every row of ``X`` to every centre.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
            float32 for float32 input, else float64; a lazy dask array for a dask input.
        """
        check_is_fitted(self)
        x, X_np = self._validate_X(X, reset=False)
        out_dtype = np.float32 if x.dtype == np.float32 else np.float64
        if X_np is not None:
            return _distances_block(X_np, self.cluster_centers_, out_dtype)
        k = self.cluster_centers_.shape[0]
        return x.map_blocks(
            _distances_block,
            self.cluster_centers_,
            out_dtype,
            dtype=out_dtype,
            chunks=(x.chunks[0], (k,)),
            token="bigquant-kmeans-transform",
        )

    @on_default_scheduler
    def score(self, X, y=None, sample_weight=None):
        """Minus the (weighted) inertia of ``X`` against ``cluster_centers_``: higher is better."""
        check_is_fitted(self)
        x, _ = self._validate_X(X, reset=False)
        w = self._weights(sample_weight, x)
        k, c = self.cluster_centers_.shape
        (total,) = dask.compute(kmeans.lloyd_step_graph(x, self.cluster_centers_, w))
        return -float(total[:k, c + 1].sum())


def _recomputed(x: da.Array) -> bool:
    """Whether computing ``x`` runs tasks, not only hands out chunks held in memory (a persisted
    array, or ``da.from_array`` of a NumPy array)."""
    return any(not isinstance(v, np.ndarray) and type(v).__name__ != "Future" for v in x.__dask_graph__().values())


def _warm_start(
    sample: np.ndarray, weights: np.ndarray | None, start: np.ndarray, max_iter: int, tol_total: float
) -> np.ndarray:
    """Lloyd's on the sample, in memory, from ``start``: where the passes over the data begin."""
    w = np.ones(len(sample)) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    pts = np.ascontiguousarray(sample, dtype=np.float64)
    res = lloyd_in_memory(pts, w, start, max_iter=max_iter, tol_abs=float(np.sqrt(tol_total)), sample=pts)
    return res.centroids


def _label_rows(block: np.ndarray, centers: np.ndarray) -> np.ndarray:
    labels, _ = kmeans.label_block(block, centers)
    return labels.astype(np.int32)


def _labels(x: da.Array, centers: np.ndarray) -> da.Array:
    """Lazy int32 labels (n,) of the rows of ``x`` (n, C), one task per chunk of rows."""
    cen = dask.delayed(np.ascontiguousarray(centers, dtype=np.float64), pure=True)
    return x.map_blocks(_label_rows, cen, drop_axis=1, dtype=np.int32, token="bigquant-kmeans-labels")


def _distances_block(block: np.ndarray, centers: np.ndarray, dtype) -> np.ndarray:
    return euclidean_distances(block.astype(np.float64, copy=False), centers).astype(dtype, copy=False)
