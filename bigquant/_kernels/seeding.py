"""Kernels of the greedy k-means++ seeding."""

from __future__ import annotations

import numpy as np
from numba import njit

from . import kdtree as kt
from .common import JIT


@njit(**JIT)
def sq_dist_to(x, point, out):  # pragma: no cover - compiled
    """``out[i] = |x[i] - point|^2`` for every row of ``x`` (n, C) (float64); ``out`` (n,) is OUT."""
    n, c = x.shape
    for i in range(n):
        s = 0.0
        for ch in range(c):
            d = x[i, ch] - point[ch]
            s += d * d
        out[i] = s


@njit(**JIT)
def kpp_best_candidate(x, w, closest, candidates):  # pragma: no cover - compiled
    """One greedy k-means++ step: of the ``candidates`` (row indices of ``x``), the one whose
    addition leaves the smallest potential ``sum w_i min(closest_i, |x_i - x_cand|^2)``.

    Updates ``closest`` (n,) in place (IN/OUT) for the chosen one and returns ``(position in candidates,
    its potential)``; the first candidate wins ties, as ``np.argmin`` does.
    """
    n, c = x.shape
    best = 0
    best_pot = np.inf
    for t in range(len(candidates)):
        p = x[candidates[t]]
        pot = 0.0
        for i in range(n):
            s = 0.0
            for ch in range(c):
                d = x[i, ch] - p[ch]
                s += d * d
            pot += w[i] * min(s, closest[i])
        if pot < best_pot:
            best_pot = pot
            best = t
    p = x[candidates[best]]
    for i in range(n):
        s = 0.0
        for ch in range(c):
            d = x[i, ch] - p[ch]
            s += d * d
        if s < closest[i]:
            closest[i] = s
    return best, best_pot


@njit(**JIT)
def _node_max(closest, nodes, nd):  # pragma: no cover - compiled
    left = nodes[nd, 2]
    if left >= 0:
        return -1.0  # internal: the caller takes the larger of the children's
    m = 0.0
    for p in range(nodes[nd, 0], nodes[nd, 1]):
        m = max(m, closest[p])
    return m


@njit(**JIT)
def _gain(wt, closest, tree, maxc, point, scratch, update, sums, size):  # pragma: no cover - compiled
    """``sum w_i (closest_i - d_i)`` over the points with ``d_i = |x_i - point|^2 < closest_i``:
    how much adding ``point`` lowers the potential.

    Visits only the nodes of ``tree`` whose box is nearer to ``point`` than their largest
    ``closest`` (``maxc``): no other point can move. ``wt`` and ``closest`` are in the tree's
    order (the points' own order is the sum tree's). With ``update``, also sets those points'
    ``closest``, their entries of the sum tree ``sums`` (``size`` leaves) and the ``maxc`` of
    the nodes visited."""
    perm, nodes, boxes, pts = tree
    stack, bounds, visited = scratch
    c = pts.shape[1]
    gain = 0.0
    seen = 0
    stack[0] = 0
    bounds[0] = kt.box_sq_dist(point, boxes, 0)
    top = 1
    while top > 0:
        top -= 1
        nd = stack[top]
        if bounds[top] >= maxc[nd]:  # no computed distance in the box is below its bound
            continue
        visited[seen] = nd
        seen += 1
        left = nodes[nd, 2]
        if left >= 0:
            right = nodes[nd, 3]
            stack[top], bounds[top] = left, kt.box_sq_dist(point, boxes, left)
            stack[top + 1], bounds[top + 1] = right, kt.box_sq_dist(point, boxes, right)
            top += 2
            continue
        for p in range(nodes[nd, 0], nodes[nd, 1]):
            s = 0.0
            for ch in range(c):
                d = pts[p, ch] - point[ch]
                s += d * d
            if s < closest[p]:
                gain += wt[p] * (closest[p] - s)
                if update:
                    closest[p] = s
                    j = size + perm[p]
                    sums[j] = wt[p] * s
                    while j > 1:
                        j >>= 1
                        sums[j] = sums[2 * j] + sums[2 * j + 1]
    if update:  # children were visited after their parents: fix the maxima bottom up
        for v in range(seen - 1, -1, -1):
            nd = visited[v]
            m = _node_max(closest, nodes, nd)
            maxc[nd] = m if m >= 0.0 else max(maxc[nodes[nd, 2]], maxc[nodes[nd, 3]])
    return gain


@njit(**JIT)
def _draw(sums, size, r, n):  # pragma: no cover - compiled
    """The first index whose cumulative sum of the leaves of ``sums`` reaches ``r``
    (``np.searchsorted(np.cumsum(leaves), r)``), at most ``n - 1``."""
    j = 1
    while j < size:
        if r <= sums[2 * j]:
            j = 2 * j
        else:
            r -= sums[2 * j]
            j = 2 * j + 1
    return min(j - size, n - 1)


@njit(**JIT)
def kpp_pruned(x, w, first, rand):  # pragma: no cover - compiled
    """Greedy k-means++ for large K: the choices of :func:`kpp_best_candidate` step after step,
    for far less work.

    ``x`` (n, C) float64, ``w`` (n,) float64, ``first`` the first centre's row, ``rand``
    (K - 1, trials) the uniform draws of each later step. Each step draws ``trials`` candidates
    by weighted squared distance (through a sum tree of ``w * closest``: O(log n) a draw, not a
    cumulative sum of n) and keeps the one that lowers the potential most, first on ties. A
    candidate's potential is the current one less what it gains, and only the points nearer to
    it than to every centre so far gain: a k-d tree of the points with each node's largest
    distance to its centre finds them without reading the others. Equal to the full
    computation in exact arithmetic; in floating point the potentials differ by rounding, so a
    near-tie between two candidates may go the other way. Returns the K chosen rows (int64).
    """
    n = x.shape[0]
    k = rand.shape[0] + 1
    tree = kt.build(x)
    perm, nodes, _, _ = tree
    m = nodes.shape[0]
    dist = np.empty(n, dtype=np.float64)
    sq_dist_to(x, x[first], dist)
    size = 1
    while size < n:
        size *= 2
    sums = np.zeros(2 * size, dtype=np.float64)
    for i in range(n):
        sums[size + i] = w[i] * dist[i]
    for j in range(size - 1, 0, -1):
        sums[j] = sums[2 * j] + sums[2 * j + 1]
    closest = dist[perm]  # in tree order from here on: the leaves' points lie side by side
    wt = w[perm]
    maxc = np.empty(m, dtype=np.float64)
    for nd in range(m - 1, -1, -1):  # children come after their parents
        v = _node_max(closest, nodes, nd)
        maxc[nd] = v if v >= 0.0 else max(maxc[nodes[nd, 2]], maxc[nodes[nd, 3]])
    scratch = (np.empty(kt.STACK, dtype=np.int64), np.empty(kt.STACK, dtype=np.float64), np.empty(m, dtype=np.int64))
    out = np.empty(k, dtype=np.int64)
    out[0] = first
    for step in range(1, k):
        pot = sums[1]
        best = -1
        best_pot = np.inf
        for t in range(rand.shape[1]):
            cand = _draw(sums, size, rand[step - 1, t] * pot, n)
            g = _gain(wt, closest, tree, maxc, x[cand], scratch, False, sums, size)
            if pot - g < best_pot:
                best_pot = pot - g
                best = cand
        _gain(wt, closest, tree, maxc, x[best], scratch, True, sums, size)
        out[step] = best
    return out
