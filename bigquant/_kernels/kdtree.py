"""A k-d tree over a few thousand to a few million low-dimensional points, and exact searches in it.

For large K the nearest-centroid search dominates every stage of a fit (the assignment of each
Lloyd step, the half-separations of Hamerly's bounds, the colour -> label table): a full search
costs K distances a point, a search of a k-d tree over the centroids a few dozen in 3 channels.
The searches here are exact and give what the full searches of :mod:`.common` and
:mod:`.hamerly` give, bit for bit, ties included (the lowest index wins):

* every candidate distance is computed by the same expression, in the same order, as in the
  full search, and candidates are compared as ``(distance, index)`` pairs, so the order in which
  the tree visits them cannot change the winner;
* a node is skipped only when no point in it can win. For the exact squared distance
  (:func:`two_nearest`) the bound is safe without slack: the box's lower bound is computed by
  the same operations on values that are nearer than any point's, and IEEE rounding is
  monotonic, so no computed distance falls below it. The expanded form ``|c|^2 - 2 x.c`` of
  :func:`.common.nearest` does not round monotonically, so :func:`nearest` skips a node only
  when its bound beats the best by more than a bound on that form's rounding error.

A tree is the tuple ``(perm, nodes, boxes, pts)`` of :func:`build`: ``perm`` (n,) the point
indices in tree order, ``nodes`` (m, 4) each node's ``[start, end, left, right]`` (a range of
``perm``; children -1 for a leaf), ``boxes`` (m, 2, C) each node's lower and upper corner,
``pts`` (n, C) the points in tree order (contiguous leaves).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .common import JIT, expanded_slack, sq_norms
from .common import nearest as full_nearest

#: Points per leaf: a leaf's points are scanned in full, so small leaves prune finer but cost
#: more nodes to visit; 8 is about the fastest for 3-channel colours.
LEAF = 8
#: Deepest node stack a search needs (a median split halves the points: depth <= log2 n + 1).
STACK = 128


@njit(**JIT)
def build(points):  # pragma: no cover - compiled
    """A k-d tree over ``points`` (n, C) float64, n >= 1: median splits on the widest side."""
    n, c = points.shape
    perm = np.arange(n)
    nodes = np.full((max(2 * n, 1), 4), -1, dtype=np.int64)
    boxes = np.empty((max(2 * n, 1), 2, c), dtype=np.float64)
    nodes[0, 0] = 0
    nodes[0, 1] = n
    count = 1
    todo = np.empty(2 * n + 1, dtype=np.int64)
    todo[0] = 0
    top = 1
    while top > 0:
        top -= 1
        nd = todo[top]
        s, e = nodes[nd, 0], nodes[nd, 1]
        for ch in range(c):
            boxes[nd, 0, ch] = np.inf
            boxes[nd, 1, ch] = -np.inf
        for p in range(s, e):
            for ch in range(c):
                v = points[perm[p], ch]
                boxes[nd, 0, ch] = min(boxes[nd, 0, ch], v)
                boxes[nd, 1, ch] = max(boxes[nd, 1, ch], v)
        if e - s <= LEAF:
            continue
        dim = 0
        width = -1.0
        for ch in range(c):
            wd = boxes[nd, 1, ch] - boxes[nd, 0, ch]
            if wd > width:
                width = wd
                dim = ch
        if not width > 0.0:  # all the points coincide (or hold NaN): one leaf
            continue
        sub = perm[s:e].copy()
        order = np.argsort(points[sub, dim], kind="mergesort")
        for p in range(e - s):
            perm[s + p] = sub[order[p]]
        m = (s + e) // 2
        for child in range(2):
            nodes[count, 0] = s if child == 0 else m
            nodes[count, 1] = m if child == 0 else e
            nodes[nd, 2 + child] = count
            todo[top] = count
            top += 1
            count += 1
    pts = np.empty((n, c), dtype=np.float64)
    for p in range(n):
        for ch in range(c):
            pts[p, ch] = points[perm[p], ch]
    return perm, nodes[:count].copy(), boxes[:count].copy(), pts


@njit(inline="always", **JIT)
def box_sq_dist(row, boxes, nd):  # pragma: no cover - compiled
    """Squared distance from ``row`` (C,) to the box of node ``nd`` (0 inside), computed as the
    full search computes a point's, so that it never exceeds any computed point distance."""
    s = 0.0
    for ch in range(row.shape[0]):
        v = row[ch]
        lo = boxes[nd, 0, ch]
        hi = boxes[nd, 1, ch]
        if v < lo:
            t = v - lo
            s += t * t
        elif v > hi:
            t = v - hi
            s += t * t
        else:
            s += 0.0
    return s


@njit(**JIT)
def nearest(row, tree, pcn, radius, factor, stack, bounds):  # pragma: no cover - compiled
    """Index of the centroid nearest to ``row`` (C,) by ``|c|^2 - 2 x.c``, the lowest on ties:
    what :func:`.common.nearest` returns, bit for bit.

    ``pcn`` (n,) holds ``|c|^2`` of the tree's points in tree order (:func:`.common.sq_norms`
    of ``pts``); ``radius, factor`` come from :func:`expanded_slack`; ``stack`` (int64) and
    ``bounds`` (float64) are scratch arrays of :data:`STACK` entries.
    """
    perm, nodes, boxes, pts = tree
    c = row.shape[0]
    xx = 0.0
    for ch in range(c):
        xx += row[ch] * row[ch]
    scale = np.sqrt(xx) + radius
    slack = xx + factor * scale * scale
    best = 0
    bestd = np.inf
    stack[0] = 0
    bounds[0] = box_sq_dist(row, boxes, 0)
    top = 1
    while top > 0:
        top -= 1
        nd = stack[top]
        if bounds[top] > bestd + slack:
            continue
        left = nodes[nd, 2]
        if left < 0:
            for p in range(nodes[nd, 0], nodes[nd, 1]):
                d = pcn[p]
                for ch in range(c):
                    d -= 2.0 * row[ch] * pts[p, ch]
                j = perm[p]
                if d < bestd or (d == bestd and j < best):
                    bestd = d
                    best = j
            continue
        right = nodes[nd, 3]
        bl = box_sq_dist(row, boxes, left)
        br = box_sq_dist(row, boxes, right)
        if bl <= br:  # the nearer child on top of the stack, searched first
            stack[top], bounds[top], stack[top + 1], bounds[top + 1] = right, br, left, bl
        else:
            stack[top], bounds[top], stack[top + 1], bounds[top + 1] = left, bl, right, br
        top += 2
    return best


@njit(**JIT)
def two_nearest(row, tree, stack, bounds):  # pragma: no cover - compiled
    """``(index of the nearest point, its squared distance, the second smallest distance)`` of
    ``row`` (C,) by the exact ``|x - c|^2``, the lowest index on ties; a point at the same
    distance as the nearest (a twin) makes the second distance equal the first. What
    :func:`.hamerly.two_nearest` returns, bit for bit. ``stack``, ``bounds``: as for :func:`nearest`.
    """
    perm, nodes, boxes, pts = tree
    c = row.shape[0]
    b1 = 0
    d1 = np.inf
    d2 = np.inf
    stack[0] = 0
    bounds[0] = box_sq_dist(row, boxes, 0)
    top = 1
    while top > 0:
        top -= 1
        nd = stack[top]
        if bounds[top] > d2:
            continue
        left = nodes[nd, 2]
        if left < 0:
            for p in range(nodes[nd, 0], nodes[nd, 1]):
                d = 0.0
                for ch in range(c):
                    diff = row[ch] - pts[p, ch]
                    d += diff * diff
                j = perm[p]
                if d < d1 or (d == d1 and j < b1):
                    d2 = d1
                    d1 = d
                    b1 = j
                elif d < d2:
                    d2 = d
            continue
        right = nodes[nd, 3]
        bl = box_sq_dist(row, boxes, left)
        br = box_sq_dist(row, boxes, right)
        if bl <= br:
            stack[top], bounds[top], stack[top + 1], bounds[top + 1] = right, br, left, bl
        else:
            stack[top], bounds[top], stack[top + 1], bounds[top + 1] = left, bl, right, br
        top += 2
    return b1, d1, d2


@njit(**JIT)
def half_separations(tree, k):  # pragma: no cover - compiled
    """Half the distance from each of the ``k`` points of ``tree`` to its nearest other one
    (inf for k = 1): :func:`.hamerly.half_separations` in O(k log k) instead of O(k^2)."""
    perm, _, _, pts = tree
    out = np.empty(k, dtype=np.float64)
    stack = np.empty(STACK, dtype=np.int64)
    bounds = np.empty(STACK, dtype=np.float64)
    for p in range(k):
        # the point itself is the nearest (distance 0): the second distance is the nearest other
        _, _, d2 = two_nearest(pts[p], tree, stack, bounds)
        out[perm[p]] = 0.5 * np.sqrt(d2)
    return out


@njit(**JIT)
def searcher(tree, cn):  # pragma: no cover - compiled
    """The scratch and constants :func:`find` needs: ``(|c|^2 in tree order, radius, factor,
    stack, bounds)``; for no tree (None), placeholders."""
    stack = np.empty(STACK, dtype=np.int64)
    bounds = np.empty(STACK, dtype=np.float64)
    if tree is None:
        return cn, 0.0, 0.0, stack, bounds
    pcn = sq_norms(tree[3])
    radius, factor = expanded_slack(tree[3], pcn)
    return pcn, radius, factor, stack, bounds


@njit(inline="always", **JIT)
def find(row, centroids, cn, tree, s):  # pragma: no cover - compiled
    """The centroid nearest to ``row`` as :func:`.common.nearest` finds it: by a full search
    of ``centroids`` (K, C) for no tree (None), else in ``tree`` (its :func:`build`), with ``s``
    from :func:`searcher`."""
    if tree is None:
        return full_nearest(row, centroids, cn)
    return nearest(row, tree, s[0], s[1], s[2], s[3], s[4])
