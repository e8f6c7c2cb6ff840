"""Kernels of Hamerly's bounds for weighted Lloyd's on in-memory points (the histogram path)."""

from __future__ import annotations

import numpy as np
from numba import njit

from . import kdtree as kt
from .common import JIT, pair_sq_dist


@njit(**JIT)
def centroid_sq_distances(centroids):  # pragma: no cover - compiled
    """Squared distances between the centroids (K, K), with -1 on the diagonal, so that sorting
    a row puts the centroid itself first (even beside a twin at distance 0)."""
    k = centroids.shape[0]
    d = np.empty((k, k), dtype=np.float64)
    for a in range(k):
        for b in range(k):
            d[a, b] = pair_sq_dist(centroids, a, b)
        d[a, a] = -1.0
    return d


@njit(**JIT)
def half_separations(centroids):  # pragma: no cover - compiled
    """Half the distance from each centroid to its nearest other one (inf for K = 1), in O(K)
    memory."""
    k = centroids.shape[0]
    out = np.full(k, np.inf)
    for a in range(k):
        best = np.inf
        for b in range(k):
            if b != a:
                best = min(best, pair_sq_dist(centroids, a, b))
        out[a] = 0.5 * np.sqrt(best)
    return out


@njit(**JIT)
def rings(sq_dist, order):  # pragma: no cover - compiled
    """The distances of :func:`centroid_sq_distances` in each row's ``order`` (0 for itself)."""
    k = sq_dist.shape[0]
    ring = np.empty((k, k), dtype=np.float64)
    for a in range(k):
        for r in range(k):
            v = sq_dist[a, order[a, r]]
            ring[a, r] = np.sqrt(v) if v > 0.0 else 0.0
    return ring


#: Bounds are stored scaled outwards by this much, so that rounding them to float32 only ever
#: loosens them (float32 rounds to within 2**-24 of the value).
UP = 1.0 + 2.0**-20
DOWN = 1.0 - 2.0**-20


@njit(inline="always", **JIT)
def two_largest(shift):  # pragma: no cover - compiled
    """``(largest, second largest, index of the largest)`` of ``shift`` (K,) (0, 0, -1 if all 0)."""
    max1 = 0.0
    max2 = 0.0
    arg1 = -1
    for j in range(shift.shape[0]):
        if shift[j] > max1:
            max2 = max1
            max1 = shift[j]
            arg1 = j
        elif shift[j] > max2:
            max2 = shift[j]
    return max1, max2, arg1


@njit(inline="always", **JIT)
def two_nearest(row, centroids):  # pragma: no cover - compiled
    """``(index of the nearest centroid, its squared distance, the second nearest's)`` of ``row``
    (C,) by a search of every centroid (K, C); ties go to the lower index."""
    b1 = 0
    d1 = np.inf
    d2 = np.inf
    for j in range(centroids.shape[0]):
        d = 0.0
        for ch in range(centroids.shape[1]):
            diff = row[ch] - centroids[j, ch]
            d += diff * diff
        if d < d1:
            d2 = d1
            d1 = d
            b1 = j
        elif d < d2:
            d2 = d
    return b1, d1, d2


@njit(inline="always", **JIT)
def move_point(out, row, wi, a, b):  # pragma: no cover - compiled
    """Move a point ``row`` (C,) of weight ``wi`` from cluster ``a`` (none if negative) to ``b``
    in :func:`hamerly_step`'s carried sums ``out`` (K, C + 2)."""
    c = row.shape[0]
    q = 0.0
    for ch in range(c):
        q += row[ch] * row[ch]
    for ch in range(c):
        out[b, ch] += wi * row[ch]
    out[b, c] += wi
    out[b, c + 1] += wi * q
    if a >= 0:
        for ch in range(c):
            out[a, ch] -= wi * row[ch]
        out[a, c] -= wi
        out[a, c + 1] -= wi * q


@njit(**JIT)
def hamerly_step(
    x, w, centroids, shift, half_sep, order, ring, assign, upper, lower, first, tree=None
):  # pragma: no cover - compiled
    """One weighted Lloyd assignment with Hamerly's bounds: exact, but skips most of the work.

    Lloyd's algorithm on in-memory points (the distinct colours of a histogram), keeping per point
    the index of its centroid, an upper bound on the distance to it and a lower bound on the
    distance to any other. Each step moves the bounds by how far the centroids moved; a point
    whose upper bound is below both its lower bound and half the distance from its centroid to
    the nearest other centroid cannot change cluster and is not even read. Only when that test
    fails is the distance to its own centroid computed, and only when it still fails are the
    others searched: in order of their distance from its own centroid ``a``, stopping at the
    first centroid ``j`` with ``|a - j| - |x - a|`` above the second-nearest distance found so
    far (by the triangle inequality neither it nor any farther one can be nearer; at K = 256 on
    a photograph's colours this reads a small fraction of the K). Ties go to the lower index,
    as in a full search. Near convergence almost every point is skipped, so a step costs little
    more than a pass over the bounds.

    The cluster sums are carried too: the first step returns every point's contribution, later
    steps only the changes of the points that moved (subtracted from the old cluster, added to
    the new). With integer points and weights (a histogram) every partial sum is an integer below
    2**53, exact in float64, so carried sums equal recomputed ones bit for bit.

    Parameters
    ----------
    x : ndarray of shape (n, C)
    w : ndarray of shape (n,), float64, or int32 or int64 (pixel counts)
    centroids : ndarray of shape (K, C), float64
    shift : ndarray of shape (K,), float64
        How far each centroid moved in the last update (ignored when ``first``).
    half_sep : ndarray of shape (K,), float64
        Half the distance from each centroid to its nearest other centroid.
    order : ndarray of shape (K, K), int; ring : ndarray of shape (K, K), float64
        Row ``a`` of ``order`` lists the centroids by their distance from centroid ``a``
        (itself first), row ``a`` of ``ring`` those distances. With fewer than K columns (for
        a K whose K x K tables would be too big) a point that must be searched is compared with
        every centroid, or searched in ``tree``.
    assign : ndarray of shape (n,), uint8 or int32; upper, lower : ndarray of shape (n,)
        IN/OUT: the per-point state, updated in place (initialised when ``first``). The bounds may be
        float32: every bound is stored scaled outwards by 2**-20 (upper up, lower down, a
        negative lower bound as 0), which float32's rounding cannot undo, so they stay bounds.
    tree : tuple, optional
        :func:`.kdtree.build` of ``centroids`` (with ``order`` of one column): a point that must
        be searched is searched in it, with the same result as a search of every centroid.

    Returns
    -------
    delta : ndarray of shape (K, C + 2), float64
        Per cluster: the change of the weighted sums of the points, of their weights and of
        their weighted squared norms ``w |x|^2`` (the totals when ``first``).
    """
    n, c = x.shape
    k = centroids.shape[0]
    out = np.zeros((k, c + 2), dtype=np.float64)
    # The lower bound is to the nearest *other* centroid: it drops by at most the largest shift
    # among the others, which is the second largest for points of the centroid that moved most.
    max1, max2, arg1 = (0.0, 0.0, -1) if first else two_largest(shift)
    row = np.empty(c, dtype=np.float64)
    ringed = order.shape[1] == k
    stack = np.empty(kt.STACK, dtype=np.int64)
    bounds = np.empty(kt.STACK, dtype=np.float64)
    for i in range(n):
        a = -1
        if not first:
            a = assign[i]
            u = (upper[i] + shift[a]) * UP
            lo = lower[i] - (max2 if a == arg1 else max1)
            lo = lo * DOWN if lo > 0.0 else 0.0
            lower[i] = lo
            z = lo if lo > half_sep[a] else half_sep[a]
            if u <= z and z > 0.0:
                upper[i] = u
                continue
            dsq = 0.0
            for ch in range(c):
                row[ch] = np.float64(x[i, ch])
                diff = row[ch] - centroids[a, ch]
                dsq += diff * diff
            if dsq <= z * z and z > 0.0:
                upper[i] = np.sqrt(dsq) * UP
                continue
            if tree is not None:
                b1, d1, d2 = kt.two_nearest(row, tree, stack, bounds)
            else:
                # The others nearest to ``a`` first while they can still be among the two
                # nearest (``ringed``), else every other one in index order. Written out here:
                # as an inlined function the same loop made the whole fit about 35 % slower.
                da = np.sqrt(dsq)
                b1, d1, d2 = a, dsq, np.inf
                reach = np.inf
                for r in range(1, k):
                    if ringed:
                        if ring[a, r] - da > reach:
                            break
                        j = order[a, r]
                    else:
                        j = r - 1 if r - 1 < a else r
                    d = 0.0
                    for ch in range(c):
                        diff = row[ch] - centroids[j, ch]
                        d += diff * diff
                    if d < d1 or (d == d1 and j < b1):
                        d2, d1, b1 = d1, d, j
                        reach = np.sqrt(d2) * (1.0 + 1e-9) + 1e-9
                    elif d < d2:
                        d2 = d
                        reach = np.sqrt(d2) * (1.0 + 1e-9) + 1e-9
        else:
            for ch in range(c):
                row[ch] = np.float64(x[i, ch])
            if tree is None:
                b1, d1, d2 = two_nearest(row, centroids)
            else:
                b1, d1, d2 = kt.two_nearest(row, tree, stack, bounds)
        upper[i] = np.sqrt(d1) * UP
        lower[i] = np.sqrt(d2) * DOWN
        if b1 == a:
            continue
        assign[i] = b1
        move_point(out, row, w[i], a, b1)
    return out
