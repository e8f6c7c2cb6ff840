"""Kernels of Lloyd's pixel path: assign and accumulate a block, label it, nearest distances, moments.

Distances use ``|c|^2 - 2 x.c`` to choose the centroid (3 multiply-adds per channel and centroid),
then the exact ``|x - c|^2`` of the chosen one for the inertia, so the inertia does not suffer from
the cancellation of the expanded form. No kernel builds an ``n x K`` temporary."""

from __future__ import annotations

import numpy as np
from numba import njit

from .common import JIT, keep_bounds, keeps, load_row, nearest_t, sq_dist_to, transposed
from .kdtree import find, searcher


@njit(**JIT)
def lloyd_partials(x, w, centroids, tree=None):  # pragma: no cover - compiled
    """Assign and accumulate one block.

    Parameters
    ----------
    x : ndarray of shape (n, C), any real dtype
        Pixels (or distinct colours) of one block.
    w : ndarray of shape (n,) or (0,), float64
        Weight of each row (pixel counts of distinct colours); empty means all ones.
    centroids : ndarray of shape (K, C), float64
    tree : tuple, optional
        :func:`.kdtree.build` of ``centroids``: the nearest centroid is searched in it (the
        same one as without it, ties included).

    Returns
    -------
    partial : ndarray of shape (K + 1, C + 2), float64
        Rows 0..K-1: per-cluster sums of the members (C columns), their total weight and their
        inertia (sum of squared distances). Row K: ``[non-finite rows seen, 0, ...]``; rows that
        hold NaN or inf are skipped and counted there.
    """
    n, c = x.shape
    k = centroids.shape[0]
    out = np.zeros((k + 1, c + 2), dtype=np.float64)
    ct, cn, d = transposed(centroids)
    srch = searcher(tree, cn)
    bounds = keep_bounds(centroids, cn)
    weighted = w.shape[0] > 0
    row = np.empty(c, dtype=np.float64)
    best = 0
    for i in range(n):
        finite = True
        for ch in range(c):
            v = np.float64(x[i, ch])
            row[ch] = v
            if not np.isfinite(v):
                finite = False
        if not finite:
            out[k, 0] += 1.0
            continue
        err = sq_dist_to(row, centroids, best)
        if not keeps(row, best, err, bounds):
            if tree is None:  # decided here: inside the inlined find() it cost 40 %
                best = nearest_t(row, ct, cn, d)
            else:
                best = find(row, centroids, cn, tree, srch)
            err = sq_dist_to(row, centroids, best)
        wi = w[i] if weighted else 1.0
        for ch in range(c):
            out[best, ch] += wi * row[ch]
        out[best, c] += wi
        out[best, c + 1] += wi * err
    return out


@njit(**JIT)
def assign_labels(x, centroids, labels, tree=None):  # pragma: no cover - compiled
    """Write the index of the nearest centroid of every row of ``x`` into ``labels``.

    Parameters
    ----------
    x : ndarray of shape (n, C), any real dtype
    centroids : ndarray of shape (K, C), float64
    labels : ndarray of shape (n,), uint8 or uint16 (OUT)
    tree : tuple, optional
        As for :func:`lloyd_partials`.

    Returns
    -------
    stats : ndarray of shape (K + 3,), float64
        Members per label (K), the sum of squared errors against the centroids, and the
        minimum and maximum value seen (the data range, for PSNR of float images).
    """
    n, c = x.shape
    k = centroids.shape[0]
    stats = np.zeros(k + 3, dtype=np.float64)
    stats[k + 1] = np.inf
    stats[k + 2] = -np.inf
    ct, cn, d = transposed(centroids)
    srch = searcher(tree, cn)
    bounds = keep_bounds(centroids, cn)
    row = np.empty(c, dtype=np.float64)
    best = 0
    for i in range(n):
        load_row(x, i, row, stats, k + 1)
        err = sq_dist_to(row, centroids, best)
        if not keeps(row, best, err, bounds):
            if tree is None:  # decided here: inside the inlined find() it cost 40 %
                best = nearest_t(row, ct, cn, d)
            else:
                best = find(row, centroids, cn, tree, srch)
            err = sq_dist_to(row, centroids, best)
        labels[i] = best
        stats[best] += 1.0
        stats[k] += err
    return stats


@njit(**JIT)
def nearest_sq_dist(x, centroids, out, labels, tree=None):  # pragma: no cover - compiled
    """``out[i]`` = squared distance of row ``x[i]`` (n, C) to its nearest centroid (K, C);
    that centroid's index goes to ``labels[i]`` unless ``labels`` is empty.

    ``out`` (n,) float64 and ``labels`` (n,) or (0,) are OUT; ``x`` and ``centroids`` IN;
    ``tree`` as for :func:`lloyd_partials`.
    """
    n, c = x.shape
    ct, cn, dd = transposed(centroids)
    srch = searcher(tree, cn)
    bounds = keep_bounds(centroids, cn)
    row = np.empty(c, dtype=np.float64)
    with_labels = labels.shape[0] > 0
    j = 0
    for i in range(n):
        for ch in range(c):
            row[ch] = np.float64(x[i, ch])
        s = sq_dist_to(row, centroids, j)
        if not keeps(row, j, s, bounds):
            if tree is None:  # decided here: inside the inlined find() it cost 40 %
                j = nearest_t(row, ct, cn, dd)
            else:
                j = find(row, centroids, cn, tree, srch)
            s = sq_dist_to(row, centroids, j)
        out[i] = s
        if with_labels:
            labels[i] = j


@njit(**JIT)
def weighted_moments(x, w):  # pragma: no cover - compiled
    """``(sum w, sum w x (C,), sum w x^2 (C,))`` over the rows of ``x`` (n, C) weighted by ``w``."""
    n, c = x.shape
    s1 = np.zeros(c, dtype=np.float64)
    s2 = np.zeros(c, dtype=np.float64)
    sw = 0.0
    for i in range(n):
        wi = np.float64(w[i])
        sw += wi
        for ch in range(c):
            v = np.float64(x[i, ch])
            s1[ch] += wi * v
            s2[ch] += wi * v * v
    return sw, s1, s2
