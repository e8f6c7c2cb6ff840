"""Lloyd's k-means as map-reduce over the chunks of a dask array: pure algorithm, no file I/O.

One Lloyd step is ``map_blocks(partials) -> tree sum -> one compute``: every chunk returns a
``(K + 1, C + 2)`` array (per-cluster sums, weights and inertia, plus a count of non-finite
rows) and a tree reduction adds them up. Nothing proportional to the image is ever materialised.
The step works on any dask array whose last axis holds the C channels, so the same engine runs
on the pixels of an image (H, W, C) and on the rows of the estimator's (n, C) data; the loop
(:func:`lloyd_loop`) also drives the in-memory iterations of :mod:`bigquant.hamerly`.

The pixel path labels its chunks with :func:`label_block`, the one assignment routine of that
path (the estimator's ``predict`` and the auto-K estimate use it too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed

from ._dask import as_list, sum_parts, tree_reduce
from .errors import InputError, ParameterError
from .params import INERTIA_PATIENCE, labels_dtype
from .progress import Iteration, Pass, Progress

#: From this K on, with at most TREE_MAX_CHANNELS channels, the nearest centroid is searched in
#: a k-d tree of the centroids (same answers, ties included) instead of among all K. A search of
#: the tree costs about what a full search of 64 centroids does (a photograph's colours against
#: codebooks of them: the tree 0.7x as fast at K = 32, 1.1x at 64, 1.5x at 96, 1.7x at 128,
#: `benchmarks/bench_large_k.py --crossover`); from 96 on it wins by more than the noise of
#: that measurement, and the gap widens with K.
TREE_MIN_K = 96
#: k-d trees prune less as dimensions grow; the tree is tested up to 4 channels (colour with
#: alpha) and timed on 3; more channels keep the full search.
TREE_MAX_CHANNELS = 4

#: ``step(centroids, shift, first) -> (K + 1, C + 2)`` partial sums of one Lloyd step.
Step = Callable[[np.ndarray, np.ndarray, bool], np.ndarray]
#: ``callback(iteration, inertia, largest shift)``, called after every step.
Callback = Callable[[int, float, float], None]


def use_tree(k: int, channels: int) -> bool:
    """Whether the nearest of ``k`` centroids of ``channels`` channels is searched in a k-d tree."""
    return k >= TREE_MIN_K and channels <= TREE_MAX_CHANNELS


def centroid_tree(centroids: np.ndarray) -> Any:
    """The k-d tree the compiled searches take for ``centroids`` (K, C) float64, or None where
    a full search is faster (:func:`use_tree`)."""
    if not use_tree(*centroids.shape):
        return None
    from ._kernels import kdtree as kt

    return kt.build(centroids)


def _partials_block(block: np.ndarray, *rest: np.ndarray) -> np.ndarray:
    # rest is (centroids,) or (weights_block, centroids); returns shape (1, ..., 1, L)
    from ._kernels import lloyd as kl

    if len(rest) == 2:
        wblock, centroids = rest
        w = np.ascontiguousarray(wblock.reshape(-1), dtype=np.float64)
    else:
        (centroids,) = rest
        w = np.empty(0, dtype=np.float64)
    out = kl.lloyd_partials(block.reshape(-1, block.shape[-1]), w, centroids, centroid_tree(centroids))
    return out.reshape((1,) * (block.ndim - 1) + (-1,))


def lloyd_step_graph(points: Any, centroids: np.ndarray, weights: Any = None) -> Delayed:
    """Delayed ``(K + 1, C + 2)`` sum of the per-chunk partials of one Lloyd step.

    Parameters
    ----------
    points : dask array of shape (..., C), or a list of them
        Pixels (rows, cols, C) or rows (n, C); several arrays (several images) are reduced
        together, so one codebook is fitted across all of them.
    centroids : ndarray of shape (K, C), float64
    weights : dask array (or list, one per array) of the shape of ``points`` without its last
        axis, optional
    """
    k, c = centroids.shape
    arrays = as_list(points)
    wlist = as_list(weights) if weights is not None else [None] * len(arrays)
    cen = dask.delayed(np.ascontiguousarray(centroids, dtype=np.float64), pure=True)
    width = (k + 1) * (c + 2)
    parts: list = []
    for arr, w in zip(arrays, wlist):
        if arr.numblocks[-1] != 1:
            arr = arr.rechunk({arr.ndim - 1: -1})
        out_chunks = tuple((1,) * n for n in arr.numblocks[:-1]) + ((width,),)
        args = [arr] if w is None else [arr, w[..., None]]
        partial = da.map_blocks(
            _partials_block, *args, cen, chunks=out_chunks, dtype=np.float64, token="bigquant-lloyd-partials"
        )
        parts.extend(partial.to_delayed().ravel().tolist())
    total = tree_reduce(parts, sum_parts)
    return dask.delayed(np.reshape, pure=True)(total, (k + 1, c + 2))


@dataclass
class LloydResult:
    """Outcome of :func:`lloyd` and :func:`lloyd_loop`.

    Attributes
    ----------
    centroids : ndarray of shape (K, C), float64
    n_iter : int
        Lloyd steps (passes over the data) run.
    converged : bool
        True if the run stopped before ``max_iter``: the largest centroid shift fell to
        ``tol_abs`` or below, or the inertia stalled (see :func:`lloyd_loop`).
    inertia : float
        Sum of squared distances of the points to the centroids they were assigned to in the
        last step (before that step's update).
    inertia_history, shift_history : list of float
        Per step: the inertia, and the largest centroid shift of the update.
    reseeded : int
        Empty clusters that were re-seeded over the run.
    stopped_by : str
        ``"shift"``, ``"inertia"``, ``"gain"`` or ``"max_iter"``: which test ended the run.
    coarse_iterations : int
        Steps of warm-up stages run before this one (the histogram path's coarse cascade).
    """

    centroids: np.ndarray
    n_iter: int
    converged: bool
    inertia: float
    inertia_history: list = field(default_factory=list)
    shift_history: list = field(default_factory=list)
    reseeded: int = 0
    stopped_by: str = "max_iter"
    coarse_iterations: int = 0


def min_sq_dist(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distance (n,) of each point (n, C) to its nearest centroid (compiled; no N x K temporary)."""
    from ._kernels import lloyd as kl

    out = np.empty(len(points))
    cen = np.ascontiguousarray(centroids, dtype=np.float64)
    kl.nearest_sq_dist(np.ascontiguousarray(points), cen, out, np.empty(0, np.int32), centroid_tree(cen))
    return out


def _reseed_empty(new: np.ndarray, empty: np.ndarray, sample: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Move each empty cluster onto the sample point farthest from its nearest centroid.

    Returns the centroids and whether that moved anything: when every sample point already sits
    on a centroid (fewer distinct points than K), there is nothing to re-seed with, and the empty
    clusters must not keep the run from converging.
    """
    if sample is None or len(sample) == 0:
        raise RuntimeError("an empty cluster needs a sample to be re-seeded from")
    new = new.copy()
    full = new[~empty]
    d = min_sq_dist(sample, full) if len(full) else np.ones(len(sample))
    order = np.argsort(-d, kind="stable")
    for j, idx in zip(np.flatnonzero(empty), order):
        new[j] = sample[idx]
    return new, bool(d[order[0]] > 0)


def lloyd(
    points: Any,
    init: np.ndarray,
    *,
    weights: Any = None,
    max_iter: int = 100,
    tol_abs: float = 0.0,
    inertia_rtol: float = 0.0,
    gain_rtol: float = 0.0,
    tol_total: float | None = None,
    sample: np.ndarray | None = None,
    callback: Callback | None = None,
    progress: Progress | None = None,
) -> LloydResult:
    """Run Lloyd's algorithm from ``init`` until the largest shift is ``<= tol_abs``, the
    inertia stalls (``inertia_rtol``, see :func:`lloyd_loop`) or ``max_iter``.

    Each step is one pass over ``points`` (one ``compute``). Empty clusters are re-seeded with the
    points of ``sample`` farthest from their nearest centroid, never left as NaN.

    Parameters
    ----------
    points : dask array of shape (..., C), or a list of them
        Real-valued data; rows containing NaN or inf raise :class:`InputError` after the first
        pass. A list is fitted as one data set (one codebook across several images).
    init : ndarray of shape (K, C)
    weights : dask array, optional
        Non-negative weight per row of ``points``.
    max_iter : int
    tol_abs : float
        Absolute tolerance on the largest Euclidean centroid shift of one step
        (:func:`bigquant.params.tol_abs`).
    inertia_rtol : float
        Relative tolerance on the inertia's gain per step (0: no such test).
    gain_rtol : float
        Relative tolerance on what one update alone gains (see :func:`lloyd_loop`; 0: no such test).
    tol_total : float, optional
        If given, the shift test compares the *sum* of the squared shifts with it instead of the
        largest shift with ``tol_abs`` (scikit-learn's test).
    sample : ndarray of shape (n, C), optional
        Points to re-seed empty clusters from.
    callback : callable(iteration, inertia, shift), optional
        Called after every step.
    progress : callable(event), optional
        Receives a :class:`~bigquant.progress.Pass` before each pass over ``points`` and an
        :class:`~bigquant.progress.Iteration` after it.
    """
    if max_iter < 1:
        raise ParameterError(f"max_iter must be at least 1, got {max_iter}")
    passes = 0

    def step(centroids: np.ndarray, shift: np.ndarray, first: bool) -> np.ndarray:
        nonlocal passes
        passes += 1
        if progress is not None:
            progress(Pass("Lloyd", passes, max_iter))
        (total,) = dask.compute(lloyd_step_graph(points, centroids, weights))
        return total

    return lloyd_loop(
        step,
        init,
        max_iter=max_iter,
        tol_abs=tol_abs,
        inertia_rtol=inertia_rtol,
        gain_rtol=gain_rtol,
        tol_total=tol_total,
        sample=sample,
        callback=callback,
        progress=progress,
    )


def lloyd_loop(
    step: Step,
    init: np.ndarray,
    *,
    max_iter: int,
    tol_abs: float,
    inertia_rtol: float = 0.0,
    gain_rtol: float = 0.0,
    tol_total: float | None = None,
    sample: np.ndarray | None = None,
    callback: Callback | None = None,
    progress: Progress | None = None,
    stage: str = "Lloyd",
) -> LloydResult:
    """The Lloyd loop around a ``step(centroids, shift, first) -> (K + 1, C + 2)`` partial sum.

    ``shift`` holds how far each centroid moved in the previous update (for steps that keep
    distance bounds, see :func:`bigquant.hamerly.lloyd_in_memory`). Handles the update, empty
    clusters, the convergence test and the history; :func:`lloyd` is this loop around one
    map-reduce pass.

    The run converges when the largest centroid shift is at most ``tol_abs``, or, with
    ``inertia_rtol > 0``, when :data:`~bigquant.params.INERTIA_PATIENCE` steps in a row each
    lower the inertia by at most ``inertia_rtol`` times its value (no re-seeding among them).
    Lloyd's iterations end in a long tail of small moves that barely change the result; the
    inertia test cuts that tail. A plateau longer than the patience would still end a run early.
    With ``gain_rtol > 0`` it also converges (``stopped_by="gain"``) when the update's move
    alone lowers the inertia by at most ``gain_rtol`` times it: ``sum_j n_j |new_j - c_j|^2``.
    With ``tol_total`` the shift test is scikit-learn's: the sum of the squared shifts is at
    most ``tol_total``.

    ``callback(it, inertia, shift)`` is called after every step, and ``progress`` receives an
    :class:`~bigquant.progress.Iteration` of ``stage`` (``"Lloyd"``, ``"coarse 5-bit"``).
    """
    centroids = np.array(init, dtype=np.float64)
    k, c = centroids.shape
    result = LloydResult(centroids=centroids, n_iter=0, converged=False, inertia=float("nan"))
    moved = np.zeros(k)
    stalled = 0
    for it in range(1, max_iter + 1):
        total = step(centroids, moved, it == 1)
        if it == 1 and total[k, 0] > 0:
            raise InputError(
                f"the image holds {int(total[k, 0])} pixels with NaN or inf values; bigquant needs finite values"
            )
        sums, counts, inertia = total[:k, :c], total[:k, c], float(total[:k, c + 1].sum())
        empty = counts <= 0
        new = np.where(empty[:, None], centroids, sums / np.where(empty, 1.0, counts)[:, None])
        reseeded = False
        if empty.any():
            new, reseeded = _reseed_empty(new, empty, sample)
            result.reseeded += int(empty.sum()) if reseeded else 0
        moved = np.sqrt(((new - centroids) ** 2).sum(1))
        shift = float(moved.max())
        gain = float((counts * moved * moved).sum())
        centroids = new
        gain = result.inertia_history[-1] - inertia if result.inertia_history else np.inf
        stalled = stalled + 1 if gain <= inertia_rtol * inertia and not reseeded else 0
        result.inertia_history.append(inertia)
        result.shift_history.append(shift)
        result.n_iter, result.inertia, result.centroids = it, inertia, centroids
        if callback is not None:
            callback(it, inertia, shift)
        if progress is not None:
            progress(Iteration(stage, it, max_iter, inertia, shift, tol_abs, inertia_rtol))
        settled = shift <= tol_abs if tol_total is None else float((moved * moved).sum()) <= tol_total
        if settled and not reseeded:
            result.converged, result.stopped_by = True, "shift"
            break
        if inertia_rtol > 0 and stalled >= INERTIA_PATIENCE:
            result.converged, result.stopped_by = True, "inertia"
            break
        if gain_rtol > 0 and gain <= gain_rtol * inertia and not reseeded:
            result.converged, result.stopped_by = True, "gain"
            break
    return result


def data_scale(sample: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The data's scale for the tolerance: the square root of the mean per-channel variance.

    Weighted (a colour histogram: millions of colours), it is one compiled pass of weighted
    moments; with integer colours and counts those sums are exact in float64.
    """
    if weights is None:
        var = np.asarray(sample, dtype=np.float64).var(axis=0)
    else:
        from ._kernels import lloyd as kl

        sw, s1, s2 = kl.weighted_moments(np.ascontiguousarray(sample), np.ascontiguousarray(weights))
        mean = s1 / sw
        var = np.maximum(s2 / sw - mean * mean, 0.0)
    return float(np.sqrt(var.mean()))


def label_block(block: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label one chunk (..., C) with its nearest codebook entries.

    Parameters
    ----------
    block : ndarray of shape (rows, cols, C) or (n, C), any real dtype
    codebook : ndarray of shape (K, C)

    Returns
    -------
    labels : ndarray of the shape of ``block`` without its last axis, uint8 for K <= 256 else uint16
    stats : ndarray of shape (K + 3,), float64
        Pixels per label, the sum of squared errors, and the minimum and maximum value seen.
        Combine the stats of several chunks with :func:`combine_label_stats`.
    """
    from ._kernels import lloyd as kl

    k = codebook.shape[0]
    flat = block.reshape(-1, block.shape[-1])
    labels = np.empty(len(flat), dtype=labels_dtype(k))
    cb = np.ascontiguousarray(codebook, dtype=np.float64)
    stats = kl.assign_labels(flat, cb, labels, centroid_tree(cb))
    return labels.reshape(block.shape[:-1]), stats


def combine_label_stats(parts: list[np.ndarray]) -> np.ndarray:
    """Combine per-chunk label stats: sum the counts and errors, take min and max of the range."""
    stack = np.stack([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])
    out = stack.sum(0)
    out[-2] = stack[:, -2].min()
    out[-1] = stack[:, -1].max()
    return out
