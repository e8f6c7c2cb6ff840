"""Kernels of Lloyd's pixel path: assign and accumulate a block, label it, nearest distances, moments.

Distances use ``|c|^2 - 2 x.c`` to choose the centroid (3 multiply-adds per channel and centroid),
then the exact ``|x - c|^2`` of the chosen one for the inertia, so the inertia does not suffer from
the cancellation of the expanded form. No kernel builds an ``n x K`` temporary.

All four labelling kernels run one loop, :func:`scan`, which writes what its caller asks for.
Its search starts from the previous row's centroid ``p``: neighbouring pixels (and neighbouring
colours of a sorted table) mostly share their centroid. With ``dp`` the row's squared distance
to ``c_p``, a centroid ``j`` with ``|c_j - c_p|^2 >= 4 (dp + delta)`` is farther from the row than
``c_p`` by at least ``delta`` (``|x - c_j| >= |c_j - c_p| - |x - c_p|``). Each centroid lists its
nearest others (:func:`neighbour_lists`); the search compares ``p``'s list up to the first that
far, as the full search compares (expanded distance, then index), so it usually tries one to a
few centroids instead of K. With ``delta`` twice :func:`.common.expanded_slack`'s bound, eight
times what rounding can move a comparison of expanded distances, no centroid left out could have
won the full search: the index is the full search's, bit for bit. Where the list ends first, or
the row is not finite, the full search runs (the k-d tree's where there is one).

The search is written into the loop, not called: a call per row to a helper that takes arrays
costs more than the search itself (numba counts references to each array argument).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .common import JIT, expanded_slack, pair_sq_dist, transposed
from .kdtree import find, searcher

#: Centroids each centroid lists as its neighbours, nearest first (all of them for K up to this).
NEIGHBOURS = 24
#: Codebooks up to this size get neighbour lists; larger ones search their k-d tree alone.
NEIGHBOURS_MAX_K = 4096
#: ... and only for blocks of at least K^2 / this many rows: the lists cost K^2 distances
#: (84 ms at K = 4096), which only a block of many rows earns back.
ROWS_PER_LIST_COST = 16


@njit(**JIT)
def neighbour_lists(centroids, cn, rows):  # pragma: no cover - compiled
    """``(order (K, W), gap (K, W), R, f)``: for each centroid the W = min(K, NEIGHBOURS) nearest
    centroids (itself included) by squared distance, ``gap`` those squared distances, then
    :func:`.common.expanded_slack` of the centroids. Empty lists (W = 0) beyond
    NEIGHBOURS_MAX_K or for a block of too few ``rows`` to repay them."""
    k = centroids.shape[0]
    w = min(k, NEIGHBOURS) if k <= NEIGHBOURS_MAX_K and rows * ROWS_PER_LIST_COST >= k * k else 0
    order = np.empty((k if w else 0, w), dtype=np.int64)
    gap = np.empty((k if w else 0, w), dtype=np.float64)
    for a in range(order.shape[0]):
        # the W smallest (distance, index) pairs by insertion: most centroids fail the first test
        m = 0
        for b in range(k):
            g = pair_sq_dist(centroids, a, b)
            if m == w and g >= gap[a, w - 1]:
                continue
            t = m if m < w else w - 1
            while t > 0 and gap[a, t - 1] > g:
                gap[a, t] = gap[a, t - 1]
                order[a, t] = order[a, t - 1]
                t -= 1
            gap[a, t] = g
            order[a, t] = b
            m = min(m + 1, w)
    radius, factor = expanded_slack(centroids, cn)
    return order, gap, radius, factor


@njit(**JIT)
def full_search(row, centroids, ct, cn, d, tree, srch):  # pragma: no cover - compiled
    """The nearest centroid of ``row`` (C,) among all K: in the k-d tree where there is one,
    else channel by channel over all K with :func:`.common.transposed` centroids ``ct``, ``cn``
    and scratch ``d``; either way :func:`.common.nearest`'s index, bit for bit."""
    if tree is not None:
        return find(row, centroids, cn, tree, srch)
    k = cn.shape[0]
    for j in range(k):
        d[j] = cn[j]
    for ch in range(row.shape[0]):
        r2 = 2.0 * row[ch]
        for j in range(k):
            d[j] -= r2 * ct[ch, j]
    best = 0
    bestd = np.inf
    for j in range(k):
        if d[j] < bestd:
            bestd = d[j]
            best = j
    return best


@njit(**JIT)
def scan(x, w, centroids, tree, labels, dist, partials, stats, sums):  # pragma: no cover - compiled
    """The nearest centroid of every row of ``x`` (n, C), and what the caller asks of it (an
    empty array: not wanted; the module's docstring says how the search proceeds).

    ``w`` (n,) or (0,): row weights for ``partials``; ``tree``: :func:`.kdtree.build` of
    ``centroids`` (K, C) or None. OUT: ``labels`` (n,) each row's centroid, ``dist`` (n,) its
    squared distance. IN/OUT, zeros: ``partials`` (K + 1, C + 2) per centroid the weighted sums
    of its rows, their weight and weighted inertia (rows holding NaN or inf skipped and counted
    in ``partials[K, 0]``); ``stats`` (K + 3,) rows per centroid, the sum of squared errors, the
    smallest and largest value; ``sums`` (K, C) per centroid the sum of its rows.
    """
    n, c = x.shape
    k = centroids.shape[0]
    ct, cn, d = transposed(centroids)
    srch = searcher(tree, cn)
    order, gap, radius, factor = neighbour_lists(centroids, cn, n)
    width = order.shape[1]
    weighted = w.shape[0] > 0
    want_partials = partials.shape[0] > 0
    want_stats = stats.shape[0] > 0
    lo, hi = np.inf, -np.inf
    row = np.empty(c, dtype=np.float64)
    best = 0
    for i in range(n):
        xx = 0.0
        finite = True
        for ch in range(c):
            v = np.float64(x[i, ch])
            row[ch] = v
            xx += v * v
            if not np.isfinite(v):
                finite = False
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        if want_partials and not finite:
            partials[k, 0] += 1.0
            continue
        p = best
        best = -1
        if width > 0 and finite and np.isfinite(xx):
            dp = 0.0
            for ch in range(c):
                t = row[ch] - centroids[p, ch]
                dp += t * t
            scale = np.sqrt(xx) + radius
            stop = 4.0 * (dp + 2.0 * factor * scale * scale)
            bestd = np.inf
            done = width == k
            for t in range(width):
                if gap[p, t] >= stop:
                    done = True
                    break
                j = order[p, t]
                e = cn[j]
                for ch in range(c):
                    e -= (2.0 * row[ch]) * ct[ch, j]
                if e < bestd or (e == bestd and j < best):
                    bestd = e
                    best = j
            if not done:
                best = -1
        if best < 0:  # a call, but a rare one: the list ran out, or the row is not finite
            best = full_search(row, centroids, ct, cn, d, tree, srch)
        err = 0.0
        for ch in range(c):
            t = row[ch] - centroids[best, ch]
            err += t * t
        if labels.shape[0]:
            labels[i] = best
        if dist.shape[0]:
            dist[i] = err
        if want_partials:
            wi = w[i] if weighted else 1.0
            for ch in range(c):
                partials[best, ch] += wi * row[ch]
            partials[best, c] += wi
            partials[best, c + 1] += wi * err
        if want_stats:
            stats[best] += 1.0
            stats[k] += err
        if sums.shape[0]:
            for ch in range(c):
                sums[best, ch] += row[ch]
    if want_stats:
        stats[k + 1] = lo
        stats[k + 2] = hi


@njit(**JIT)
def none():  # pragma: no cover - compiled
    """The empty outputs of :func:`scan`: (labels, 1-D, 2-D)."""
    return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.float64), np.empty((0, 0), dtype=np.float64)


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
    k, c = centroids.shape
    out = np.zeros((k + 1, c + 2), dtype=np.float64)
    no_labels, no_1d, no_2d = none()
    scan(x, w, centroids, tree, no_labels, no_1d, out, no_1d, no_2d)
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
    k = centroids.shape[0]
    stats = np.zeros(k + 3, dtype=np.float64)
    _, no_1d, no_2d = none()
    scan(x, no_1d, centroids, tree, labels, no_1d, no_2d, stats, no_2d)
    return stats


@njit(**JIT)
def nearest_sq_dist(x, centroids, out, labels, tree=None):  # pragma: no cover - compiled
    """``out[i]`` = squared distance of row ``x[i]`` (n, C) to its nearest centroid (K, C);
    that centroid's index goes to ``labels[i]`` unless ``labels`` is empty.

    ``out`` (n,) float64 and ``labels`` (n,) or (0,) are OUT; ``x`` and ``centroids`` IN;
    ``tree`` as for :func:`lloyd_partials`.
    """
    _, no_1d, no_2d = none()
    scan(x, no_1d, centroids, tree, labels, out, no_2d, no_1d, no_2d)


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
