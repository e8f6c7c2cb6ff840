"""Lloyd's k-means as map-reduce over the chunks of a dask array: pure algorithm, no file I/O.

One Lloyd step is ``map_blocks(partials) -> tree sum -> one compute``: every chunk returns a
``(K + 1, C + 2)`` array (per-cluster sums, weights and inertia, plus a count of non-finite
rows) and a tree reduction adds them up. Nothing proportional to the image is ever materialised.
The step works on any dask array whose last axis holds the C channels, so the same engine runs
on the pixels of an image (H, W, C) and on the distinct colours of its histogram (M, C) with
their counts as weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed

from .errors import InputError, ParameterError

#: Default number of pixels sampled for the k-means++ initialisation and empty-cluster repair.
DEFAULT_SAMPLE_SIZE = 100_000
#: Largest number of chunks the initialisation sample is drawn from (bounds that pass's I/O).
SAMPLE_MAX_BLOCKS = 64
#: Largest K bigquant accepts: labels are stored as uint16.
MAX_K = 65536


def check_k(k: object) -> int:
    """Return ``k`` as an int if it is a whole number in ``[1, MAX_K]``, else raise ParameterError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        if isinstance(k, (float, np.floating)) and float(k).is_integer():
            k = int(k)
        else:
            raise ParameterError(f"K must be a whole number between 1 and {MAX_K}, got {k!r}")
    k = int(k)
    if not 1 <= k <= MAX_K:
        raise ParameterError(f"K must be between 1 and {MAX_K}, got {k}")
    return k


def tree_reduce(parts: Sequence[Delayed], combine: Callable, split_every: int = 8) -> Delayed:
    """Combine delayed parts in a tree: ``combine`` takes a list of parts and returns one part.

    The tree's shape depends only on ``len(parts)`` and ``split_every``, and each combine adds
    its inputs in list order, so float results are bit-identical from run to run and scheduler
    to scheduler.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("tree_reduce needs at least one part")
    fn = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [fn(parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    if not isinstance(parts[0], Delayed):
        return dask.delayed(parts[0])
    return parts[0]


def _sum_parts(parts: list[np.ndarray]) -> np.ndarray:
    out = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        out += p
    return out


def _flat(block: np.ndarray) -> np.ndarray:
    return block.reshape(-1, block.shape[-1])


def _partials_block(block, *rest):
    # rest is (centroids,) or (weights_block, centroids); returns shape (1, ..., 1, L)
    from . import _kernels
    if len(rest) == 2:
        wblock, centroids = rest
        w = np.ascontiguousarray(wblock.reshape(-1), dtype=np.float64)
    else:
        (centroids,) = rest
        w = np.empty(0, dtype=np.float64)
    out = _kernels.lloyd_partials(_flat(block), w, centroids)
    return out.reshape((1,) * (block.ndim - 1) + (-1,))


def _as_list(obj) -> list:
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


def lloyd_step_graph(points, centroids: np.ndarray, weights=None) -> Delayed:
    """Delayed ``(K + 1, C + 2)`` sum of the per-chunk partials of one Lloyd step.

    Parameters
    ----------
    points : dask array of shape (..., C), or a list of them
        Pixels (rows, cols, C) or colours (M, C); several arrays (several images) are reduced
        together, so one codebook is fitted across all of them.
    centroids : ndarray of shape (K, C), float64
    weights : dask array (or list, one per array) of the shape of ``points`` without its last
        axis, optional
    """
    k, c = centroids.shape
    arrays = _as_list(points)
    wlist = _as_list(weights) if weights is not None else [None] * len(arrays)
    cen = dask.delayed(np.ascontiguousarray(centroids, dtype=np.float64), pure=True)
    width = (k + 1) * (c + 2)
    parts: list = []
    for arr, w in zip(arrays, wlist):
        if arr.numblocks[-1] != 1:
            arr = arr.rechunk({arr.ndim - 1: -1})
        out_chunks = tuple((1,) * n for n in arr.numblocks[:-1]) + ((width,),)
        args = [arr] if w is None else [arr, w[..., None]]
        partial = da.map_blocks(_partials_block, *args, cen, chunks=out_chunks, dtype=np.float64,
                                token="bigquant-lloyd-partials")
        parts.extend(partial.to_delayed().ravel().tolist())
    total = tree_reduce(parts, _sum_parts)
    return dask.delayed(np.reshape, pure=True)(total, (k + 1, c + 2))


@dataclass
class LloydResult:
    """Outcome of :func:`lloyd`.

    Attributes
    ----------
    centroids : ndarray of shape (K, C), float64
    n_iter : int
        Lloyd steps (passes over the data) run.
    converged : bool
        True if the run stopped before ``max_iter``: the largest centroid shift fell to
        ``tol_abs`` or below, or the inertia stalled (see :func:`lloyd_loop`).
    stopped_by : str
        ``"shift"``, ``"inertia"`` or ``"max_iter"``: which test ended the run.
    inertia : float
        Sum of squared distances of the points to the centroids they were assigned to in the
        last step (before that step's update).
    inertia_history, shift_history : list of float
        Per step: the inertia, and the largest centroid shift of the update.
    reseeded : int
        Empty clusters that were re-seeded over the run.
    """

    centroids: np.ndarray
    n_iter: int
    converged: bool
    inertia: float
    inertia_history: list = field(default_factory=list)
    shift_history: list = field(default_factory=list)
    reseeded: int = 0
    stopped_by: str = "max_iter"


#: ``compress`` and ``fit`` also stop when the inertia stalls: five steps in a row that each
#: lower it by at most this fraction of ``tol`` (1e-6 of the inertia at the default tol 1e-4).
INERTIA_RTOL_PER_TOL = 0.01
#: Steps in a row whose inertia gain must stay under the relative tolerance. Five, not two: a
#: run can cross a short plateau (china.jpg at K = 32 gains under 1e-6 for four steps at step
#: 61, then 0.04 dB more by step 214; with two it stopped at 63).
INERTIA_PATIENCE = 5


def inertia_rtol(tol: float) -> float:
    """The relative inertia gain per step below which ``compress`` and ``fit`` call a run
    converged, for the shift tolerance ``tol`` (:data:`INERTIA_RTOL_PER_TOL`)."""
    return INERTIA_RTOL_PER_TOL * float(tol)


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
    d = _min_sq_dist(sample, full) if len(full) else np.ones(len(sample))
    order = np.argsort(-d, kind="stable")
    for j, idx in zip(np.flatnonzero(empty), order):
        new[j] = sample[idx]
    return new, bool(d[order[0]] > 0)


def _min_sq_dist(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distance of each point to its nearest centroid (compiled; no N x K temporary)."""
    from . import _kernels

    out = np.empty(len(points))
    _kernels.nearest_sq_dist(np.ascontiguousarray(points), np.ascontiguousarray(centroids, dtype=np.float64), out,
                             np.empty(0, np.int32))
    return out


def lloyd(
    points,
    init: np.ndarray,
    *,
    weights: da.Array | None = None,
    max_iter: int = 100,
    tol_abs: float = 0.0,
    inertia_rtol: float = 0.0,
    sample: np.ndarray | None = None,
    callback: Callable[[int, float, float], None] | None = None,
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
        Non-negative weight per row of ``points`` (pixel counts of distinct colours).
    max_iter : int
    tol_abs : float
        Absolute tolerance on the largest Euclidean centroid shift of one step.
    inertia_rtol : float
        Relative tolerance on the inertia's gain per step (0: no such test).
    sample : ndarray of shape (n, C), optional
        Points to re-seed empty clusters from.
    callback : callable(iteration, inertia, shift), optional
        Called after every step, e.g. for progress output.
    """
    if max_iter < 1:
        raise ParameterError(f"max_iter must be at least 1, got {max_iter}")

    def step(centroids: np.ndarray, shift: np.ndarray, first: bool) -> np.ndarray:
        (total,) = dask.compute(lloyd_step_graph(points, centroids, weights))
        return total

    return lloyd_loop(step, init, max_iter=max_iter, tol_abs=tol_abs, inertia_rtol=inertia_rtol, sample=sample,
                      callback=callback)


def lloyd_loop(
    step: Callable[[np.ndarray, np.ndarray, bool], np.ndarray],
    init: np.ndarray,
    *,
    max_iter: int,
    tol_abs: float,
    inertia_rtol: float = 0.0,
    sample: np.ndarray | None = None,
    callback: Callable[[int, float, float], None] | None = None,
) -> LloydResult:
    """The Lloyd loop around a ``step(centroids, shift, first) -> (K + 1, C + 2)`` partial sum.

    ``shift`` holds how far each centroid moved in the previous update (for steps that keep
    distance bounds, see :func:`bigquant.histogram.fit`). Handles the update, empty clusters,
    the convergence test and the history; :func:`lloyd` is this loop around one map-reduce pass.

    The run converges when the largest centroid shift is at most ``tol_abs``, or, with
    ``inertia_rtol > 0``, when :data:`INERTIA_PATIENCE` steps in a row each lower the inertia by
    at most ``inertia_rtol`` times its value (no re-seeding among them). Lloyd's iterations end
    in a long tail of small moves; on the five bundled photographs and two 15 Mpx ones at
    K = 16, 32, 64 and 256 (up to 300 steps) the test at 1e-6 cut that tail by up to 114 steps
    (SafeLanding K = 32: 27 steps instead of 70) for at most 0.0008 dB of PSNR against running
    on to the shift test; at the default 100 steps, 0.0002 dB at most over 32 fits (8 images).
    A plateau longer than the patience would still end a run early.
    """
    centroids = np.array(init, dtype=np.float64)
    k, c = centroids.shape
    result = LloydResult(centroids=centroids, n_iter=0, converged=False, inertia=float("nan"))
    moved = np.zeros(k)
    stalled = 0
    for it in range(1, max_iter + 1):
        total = step(centroids, moved, it == 1)
        if it == 1 and total[k, 0] > 0:
            raise InputError(f"the image holds {int(total[k, 0])} pixels with NaN or inf values; "
                             "bigquant needs finite values")
        sums, counts, inertia = total[:k, :c], total[:k, c], float(total[:k, c + 1].sum())
        empty = counts <= 0
        new = np.where(empty[:, None], centroids, sums / np.where(empty, 1.0, counts)[:, None])
        reseeded = False
        if empty.any():
            new, reseeded = _reseed_empty(new, empty, sample)
            result.reseeded += int(empty.sum()) if reseeded else 0
        moved = np.sqrt(((new - centroids) ** 2).sum(1))
        shift = float(moved.max())
        centroids = new
        gain = result.inertia_history[-1] - inertia if result.inertia_history else np.inf
        stalled = stalled + 1 if gain <= inertia_rtol * inertia and not reseeded else 0
        result.inertia_history.append(inertia)
        result.shift_history.append(shift)
        result.n_iter, result.inertia, result.centroids = it, inertia, centroids
        if callback is not None:
            callback(it, inertia, shift)
        if shift <= tol_abs and not reseeded:
            result.converged, result.stopped_by = True, "shift"
            break
        if inertia_rtol > 0 and stalled >= INERTIA_PATIENCE:
            result.converged, result.stopped_by = True, "inertia"
            break
    return result


def _block_sample(block, n, seed):
    flat = _flat(block)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(flat), size=min(n, len(flat)), replace=False))
    return np.array(flat[idx])


def sample_pixels(points, n: int = DEFAULT_SAMPLE_SIZE, seed: int = 0,
                  max_blocks: int = SAMPLE_MAX_BLOCKS) -> np.ndarray:
    """A reproducible random sample of about ``n`` pixels of ``points`` (..., C), as an (n, C) array.

    ``points`` may be a list of arrays (several images): the sample is drawn from all of them in
    proportion to their sizes. Draws from at most ``max_blocks`` chunks chosen at random with
    probability proportional to their size, so the pass that feeds the initialisation reads a
    bounded part of the data. The same seed and chunking always give the same sample.
    """
    arrays = _as_list(points)
    rng = np.random.default_rng(seed)
    blocks, sizes, delayed_blocks = [], [], []
    for x in arrays:
        nd = x.numblocks[:-1]
        dl = x.to_delayed().reshape(-1)
        for flat, b in enumerate(np.ndindex(*nd)):
            blocks.append(b)
            sizes.append(math.prod(x.chunks[a][i] for a, i in enumerate(b)))
            delayed_blocks.append(dl[flat])
    sizes_a = np.array(sizes, dtype=np.float64)
    total = sizes_a.sum()
    n = int(min(n, total))
    if len(blocks) > max_blocks:
        chosen = np.sort(rng.choice(len(blocks), size=max_blocks, replace=False, p=sizes_a / total))
    else:
        chosen = np.arange(len(blocks))
    alloc = rng.multinomial(n, sizes_a[chosen] / sizes_a[chosen].sum())
    alloc = np.minimum(alloc, sizes_a[chosen].astype(np.int64))
    seeds = rng.integers(0, 2**63 - 1, size=len(chosen))
    parts = [dask.delayed(_block_sample, pure=True)(delayed_blocks[i], int(m), int(s))
             for i, m, s in zip(chosen, alloc, seeds) if m > 0]
    out = dask.compute(*parts)
    c = arrays[0].shape[-1]
    return np.concatenate(out, axis=0) if out else np.empty((0, c), arrays[0].dtype)


#: k-means++ runs on at most max(INIT_MIN_POINTS, INIT_POINTS_PER_CLUSTER * K) sampled points.
INIT_MIN_POINTS = 10_000
INIT_POINTS_PER_CLUSTER = 40


def kmeans_plusplus(points: np.ndarray, k: int, seed: int = 0,
                    sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeding: scikit-learn's ``kmeans_plusplus``, compiled.

    The same algorithm and the same random stream (``np.random.RandomState(seed)``; the first
    centre drawn by weight, then ``2 + int(log k)`` candidates per centre drawn by weighted
    squared distance, the one that lowers the potential most kept), so it picks the same
    centres as scikit-learn up to ties in float rounding. It is here, and not imported, because
    importing ``sklearn.cluster`` takes about 1.5 s, longer than a whole run on a 15 Mpx photo.

    Returns ``(centres (K, C) float64, indices (K,))``.
    """
    from . import _kernels

    x = np.ascontiguousarray(points, dtype=np.float64)
    n = len(x)
    w = np.ones(n) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    rs = np.random.RandomState(seed)
    trials = 2 + int(np.log(k))
    indices = np.full(k, -1, dtype=np.int64)
    indices[0] = rs.choice(n, p=w / w.sum())
    closest = np.empty(n)
    _kernels.sq_dist_to(x, x[indices[0]], closest)
    pot = float(closest @ w)
    for c in range(1, k):
        cand = np.searchsorted(np.cumsum(w * closest), rs.uniform(size=trials) * pot)
        np.clip(cand, None, n - 1, out=cand)
        best, pot = _kernels.kpp_best_candidate(x, w, closest, cand.astype(np.int64))
        indices[c] = cand[best]
    return x[indices], indices


def init_centroids(sample: np.ndarray, k: int, seed: int = 0,
                   sample_weight: np.ndarray | None = None) -> np.ndarray:
    """k-means++ (:func:`kmeans_plusplus`) on a sample; returns (K, C) float64.

    k-means++ costs O(points x K x log K); it only seeds Lloyd's iterations, which then run on all
    the data, so it runs on a random subset of ``max(10000, 40 K)`` points of the sample.
    """
    pts = np.asarray(sample, dtype=np.float64)
    limit = max(INIT_MIN_POINTS, INIT_POINTS_PER_CLUSTER * k)
    if len(pts) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(pts), size=limit, replace=False))
        pts = pts[keep]
        sample_weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
    centers, _ = kmeans_plusplus(pts, k, seed, sample_weight)
    return centers


def data_scale(sample: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The data's scale for the tolerance: the square root of the mean per-channel variance.

    Weighted (a colour histogram: millions of colours), it is one compiled pass of weighted
    moments; with integer colours and counts those sums are exact in float64.
    """
    if weights is None:
        var = np.asarray(sample, dtype=np.float64).var(axis=0)
    else:
        from . import _kernels

        sw, s1, s2 = _kernels.weighted_moments(np.ascontiguousarray(sample), np.ascontiguousarray(weights))
        mean = s1 / sw
        var = np.maximum(s2 / sw - mean * mean, 0.0)
    return float(np.sqrt(var.mean()))


def distinct_rows(sample: np.ndarray) -> int:
    """How many distinct rows ``sample`` holds."""
    return len(np.unique(np.asarray(sample), axis=0))


def label_block(block: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label one chunk (rows, cols, C) with its nearest codebook entries.

    Returns
    -------
    labels : ndarray of shape (rows, cols), uint8 for K <= 256 else uint16
    stats : ndarray of shape (K + 3,), float64
        Pixels per label, the sum of squared errors, and the minimum and maximum value seen.
        Combine the stats of several chunks with :func:`combine_label_stats`.
    """
    from . import _kernels

    k = codebook.shape[0]
    flat = block.reshape(-1, block.shape[-1])
    labels = np.empty(len(flat), dtype=np.uint8 if k <= 256 else np.uint16)
    stats = _kernels.assign_labels(flat, np.ascontiguousarray(codebook, dtype=np.float64), labels)
    return labels.reshape(block.shape[:-1]), stats


def combine_label_stats(parts: list[np.ndarray]) -> np.ndarray:
    """Combine per-chunk label stats: sum the counts and errors, take min and max of the range."""
    stack = np.stack([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])
    out = stack.sum(0)
    out[-2] = stack[:, -2].min()
    out[-1] = stack[:, -1].max()
    return out
