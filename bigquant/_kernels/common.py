"""Helpers shared by the compiled kernels: the jit options, centroid norms, the rounding bound of
expanded distances, the nearest centroid."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

#: Options of every kernel: the GIL released (dask threads run kernels in parallel), compiled
#: code cached on disk (a process loads it instead of compiling), IEEE semantics kept.
JIT: dict[str, Any] = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")


@njit(**JIT)
def sq_norms(centroids):  # pragma: no cover - compiled
    """|c|^2 of every centroid (K,)."""
    k, c = centroids.shape
    cn = np.empty(k, dtype=np.float64)
    for j in range(k):
        s = 0.0
        for ch in range(c):
            s += centroids[j, ch] * centroids[j, ch]
        cn[j] = s
    return cn


@njit(**JIT)
def expanded_slack(pts, pcn):  # pragma: no cover - compiled
    """``(R, f)``: the largest centroid norm and the factor of :func:`nearest`'s slack."""
    r2 = 0.0
    for p in range(pcn.shape[0]):
        r2 = max(r2, pcn[p])
    # |error| of |c|^2 - 2 x.c, of |x|^2 and of a box bound: each under (2C + 2) u (|x| + R)^2
    return np.sqrt(r2), 16.0 * (pts.shape[1] + 1) * 2.0**-52


@njit(**JIT)
def nearest(row, centroids, cn):  # pragma: no cover - compiled
    """Index of the centroid nearest to ``row`` (C,) by ``|c|^2 - 2 x.c``; the first on ties."""
    k, c = centroids.shape
    best = 0
    bestd = np.inf
    for j in range(k):
        d = cn[j]
        for ch in range(c):
            d -= 2.0 * row[ch] * centroids[j, ch]
        if d < bestd:
            bestd = d
            best = j
    return best


@njit(**JIT)
def transposed(centroids):  # pragma: no cover - compiled
    """``(centroids.T contiguous (C, K), |c|^2 (K,), scratch (K,))``: the full search of
    :func:`.lloyd.scan` runs channel by channel over all K at once (a loop the compiler
    vectorises), with the same operations in the same order as :func:`nearest`, so it returns
    the same index, bit for bit."""
    return np.ascontiguousarray(centroids.T), sq_norms(centroids), np.empty(centroids.shape[0], dtype=np.float64)


@njit(inline="always", **JIT)
def pair_sq_dist(centroids, a, b):  # pragma: no cover - compiled
    s = 0.0
    for ch in range(centroids.shape[1]):
        t = centroids[a, ch] - centroids[b, ch]
        s += t * t
    return s
