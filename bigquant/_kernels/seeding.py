"""Kernels of the greedy k-means++ seeding."""

from __future__ import annotations

import numpy as np
from numba import njit

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
