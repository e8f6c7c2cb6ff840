"""Where Lloyd's iterations start: a reproducible pixel sample and k-means++ on it.

Pure algorithm on NumPy and dask arrays: no file I/O, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import numpy as np

from ._dask import as_list, windows
from .params import DEFAULT_SAMPLE_SIZE

__all__ = [
    "DEFAULT_SAMPLE_SIZE",
    "INIT_MIN_POINTS",
    "INIT_POINTS_PER_CLUSTER",
    "KPP_PRUNED_MIN_K",
    "SAMPLE_MAX_BLOCKS",
    "distinct_rows",
    "init_centroids",
    "kmeans_plusplus",
    "sample_pixels",
]

#: Largest number of chunks the initialisation sample is drawn from (bounds that pass's I/O).
SAMPLE_MAX_BLOCKS = 64
#: k-means++ runs on at most max(INIT_MIN_POINTS, INIT_POINTS_PER_CLUSTER * K) sampled points.
INIT_MIN_POINTS = 10_000
INIT_POINTS_PER_CLUSTER = 40
#: From this K on (with at most KPP_PRUNED_MAX_CHANNELS channels) k-means++ runs pruned
#: (:func:`bigquant._kernels.seeding.kpp_pruned`): a step then reads only the points the new
#: centre takes over, and a candidate is drawn in O(log n), where a full step costs
#: ``n x (2 + log K)`` distances; at 65536 centres that is the difference between minutes and
#: seconds. Below it the full computation is as fast and its choices are scikit-learn's
#: exactly (the pruned one's equal them in exact arithmetic, but not always in rounding).
KPP_PRUNED_MIN_K = 1024
KPP_PRUNED_MAX_CHANNELS = 4


def _block_sample(block: np.ndarray, n: int, seed: int) -> np.ndarray:
    flat = block.reshape(-1, block.shape[-1])
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(flat), size=min(n, len(flat)), replace=False))
    return np.array(flat[idx])


def _sampled_view(x: Any, max_blocks: int) -> Any:
    """``x``, or its small-region view when reading ``max_blocks`` regions of it reads less than
    reading ``max_blocks`` of its chunks (a large image; never one held in memory)."""
    view = windows(x)
    if view is None:
        return x
    chunks, regions = (math.prod(a.numblocks[:-1]) for a in (x, view))
    return view if min(regions, max_blocks) / regions < min(chunks, max_blocks) / chunks else x


def sample_pixels(
    points: Any, n: int = DEFAULT_SAMPLE_SIZE, seed: int = 0, max_blocks: int = SAMPLE_MAX_BLOCKS
) -> np.ndarray:
    """A reproducible random sample of about ``n`` pixels of ``points`` (..., C), as an (n, C) array.

    ``points`` may be a list of dask arrays (several images): the sample is drawn from all of
    them in proportion to their sizes. Draws from at most ``max_blocks`` chunks chosen at random
    with probability proportional to their size, so the pass that feeds the initialisation
    reads a bounded part of the data. An array read from a file that has a view of small
    regions (:func:`bigquant._dask.windows`) is sampled in those regions instead, where they
    read less than its chunks would. The same seed, input and chunking always give the same sample.
    """
    arrays: Sequence[Any] = [_sampled_view(x, max_blocks) for x in as_list(points)]
    rng = np.random.default_rng(seed)
    sizes, delayed_blocks = [], []
    for x in arrays:
        dl = x.to_delayed().reshape(-1)
        for flat, b in enumerate(np.ndindex(*x.numblocks[:-1])):
            sizes.append(math.prod(x.chunks[a][i] for a, i in enumerate(b)))
            delayed_blocks.append(dl[flat])
    sizes_a = np.array(sizes, dtype=np.float64)
    total = sizes_a.sum()
    n = int(min(n, total))
    if len(sizes) > max_blocks:
        chosen = np.sort(rng.choice(len(sizes), size=max_blocks, replace=False, p=sizes_a / total))
    else:
        chosen = np.arange(len(sizes))
    alloc = rng.multinomial(n, sizes_a[chosen] / sizes_a[chosen].sum())
    alloc = np.minimum(alloc, sizes_a[chosen].astype(np.int64))
    seeds = rng.integers(0, 2**63 - 1, size=len(chosen))
    parts = [
        dask.delayed(_block_sample, pure=True)(delayed_blocks[i], int(m), int(s))
        for i, m, s in zip(chosen, alloc, seeds)
        if m > 0
    ]
    out = dask.compute(*parts)
    c = arrays[0].shape[-1]
    return np.concatenate(out, axis=0) if out else np.empty((0, c), arrays[0].dtype)


def kmeans_plusplus(
    points: np.ndarray, k: int, seed: int = 0, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeding: scikit-learn's ``kmeans_plusplus``, compiled.

    The same algorithm and the same random stream (``np.random.RandomState(seed)``; the first
    centre drawn by weight, then ``2 + int(log k)`` candidates per centre drawn by weighted
    squared distance, the one that lowers the potential most kept), so it picks the same
    centres as scikit-learn up to ties in float rounding. It is here, and not imported, because
    importing ``sklearn.cluster`` takes longer than a whole run on a 15 Mpx photo. From
    :data:`KPP_PRUNED_MIN_K` centres on it runs pruned (same choices in exact arithmetic).

    Parameters
    ----------
    points : ndarray of shape (n, C)
    k : int
    seed : int
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    centres : ndarray of shape (K, C), float64
    indices : ndarray of shape (K,), int64
        The rows of ``points`` chosen.
    """
    from ._kernels import seeding as ks

    x = np.ascontiguousarray(points, dtype=np.float64)
    n = len(x)
    w = np.ones(n) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    rs = np.random.RandomState(seed)
    trials = 2 + int(np.log(k))
    indices = np.full(k, -1, dtype=np.int64)
    indices[0] = rs.choice(n, p=w / w.sum())
    if k >= KPP_PRUNED_MIN_K and x.shape[1] <= KPP_PRUNED_MAX_CHANNELS:
        # the same random stream: the draws of every later step, in order
        indices = ks.kpp_pruned(x, w, int(indices[0]), rs.uniform(size=(k - 1, trials)))
        return x[indices], indices
    closest = np.empty(n)
    ks.sq_dist_to(x, x[indices[0]], closest)
    pot = float(closest @ w)
    for c in range(1, k):
        cand = np.searchsorted(np.cumsum(w * closest), rs.uniform(size=trials) * pot)
        np.clip(cand, None, n - 1, out=cand)
        best, pot = ks.kpp_best_candidate(x, w, closest, cand.astype(np.int64))
        indices[c] = cand[best]
    return x[indices], indices


def init_centroids(sample: np.ndarray, k: int, seed: int = 0, sample_weight: np.ndarray | None = None) -> np.ndarray:
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


def distinct_rows(sample: np.ndarray) -> int:
    """How many distinct rows ``sample`` holds."""
    return len(np.unique(np.asarray(sample), axis=0))
