"""Weighted Lloyd's on in-memory points with Hamerly's bounds: exact, but skips most of the work.

Used by the histogram path (the distinct colours weighted by their counts, and their coarse
bins) and by the pixel path's warm start on its pixel sample. The loop itself is
:func:`bigquant.kmeans.lloyd_loop`, so both paths share one convergence rule.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._dask import worker_threads
from .kmeans import Callback, LloydResult, lloyd_loop, use_tree
from .progress import Progress

#: Up to this K a searched point looks only at its centroid's near neighbours, from K x K tables
#: of the centroids' distances (8 MiB each at 1024); beyond it, it is searched in a k-d tree of
#: the centroids (built each step), and the half-separations come from that tree too.
RING_MAX_K = 1024
#: Points per slice of the in-memory Lloyd iterations (fixed, so results don't depend on threads).
HAMERLY_SLICE = 1 << 15


def sliced(n: int) -> tuple[list[tuple[int, int]], ThreadPoolExecutor]:
    """Fixed slices of :data:`HAMERLY_SLICE` points over ``n`` (so results never depend on the
    number of threads) and a thread pool sized for them (the kernels release the GIL)."""
    slices = [(s, min(n, s + HAMERLY_SLICE)) for s in range(0, n, HAMERLY_SLICE)]
    return slices, ThreadPoolExecutor(max_workers=max(1, min(worker_threads(), len(slices))))


def _neighbours(cen: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """(order, ring, half_sep, tree) of :func:`bigquant._kernels.hamerly.hamerly_step` for
    centroids (K, C)."""
    from ._kernels import hamerly as kha
    from ._kernels import kdtree as kt

    if k <= RING_MAX_K:
        sqd = kha.centroid_sq_distances(cen)
        order = np.argsort(sqd, axis=1)  # each centroid's neighbours, itself first, nearest next
        ring = kha.rings(sqd, order)
        half_sep = 0.5 * ring[:, 1] if k > 1 else np.full(1, np.inf)
        return order, ring, half_sep, None
    # K x K tables would outgrow the memory budget; a tree gives the same answers in O(K log K)
    tree = kt.build(cen) if use_tree(k, cen.shape[1]) else None
    half_sep = kt.half_separations(tree, k) if tree is not None else kha.half_separations(cen)
    return np.zeros((k, 1), dtype=np.int64), np.zeros((k, 1)), half_sep, tree


def lloyd_in_memory(
    colours: np.ndarray,
    counts: np.ndarray,
    init: np.ndarray,
    *,
    max_iter: int,
    tol_abs: float,
    inertia_rtol: float = 0.0,
    sample: np.ndarray | None = None,
    callback: Callback | None = None,
    progress: Progress | None = None,
    stage: str = "Lloyd",
) -> LloydResult:
    """Weighted Lloyd's on in-memory points with Hamerly's bounds.

    Exact Lloyd's k-means (the same assignments and updates as :func:`bigquant.kmeans.lloyd`),
    but after the first steps almost every point is skipped by its bounds, so the long tail of
    small updates costs little. The cluster sums are carried from step to step and only the
    points that change cluster update them; with integer points and weights (the exact
    histogram) every sum is an integer and exact, so the centroids are those of recomputed
    sums, bit for bit. The inertia of each step comes from the carried sums (within rounding of
    the direct sum). The points are split in fixed slices processed on threads and their
    changes added in slice order, so the result does not depend on the number of threads.

    Parameters
    ----------
    colours : ndarray of shape (n, C)
        The points (distinct colours, coarse bins, or a pixel sample as float64).
    counts : ndarray of shape (n,)
        Their weights (pixel counts).
    init : ndarray of shape (K, C)
    max_iter, tol_abs, inertia_rtol, sample, callback, progress, stage
        As for :func:`bigquant.kmeans.lloyd_loop`.
    """
    from ._kernels import hamerly as kha

    n = len(colours)
    k, c = np.shape(init)
    # The per-point state is what the fit holds for every distinct colour (millions), so it is
    # narrow: integer pixel counts stay integers (exact as float64 where the kernel multiplies),
    # labels are uint8 up to 256 clusters, and the bounds float32, rounded outwards by the kernel.
    w = np.ascontiguousarray(counts)
    x = np.ascontiguousarray(colours)
    assign = np.zeros(n, dtype=np.uint8 if k <= 256 else np.int32)
    upper = np.zeros(n, dtype=np.float32)
    lower = np.zeros(n, dtype=np.float32)
    slices, pool = sliced(n)
    totals = np.zeros((k, c + 2))  # per cluster: sum of w x, of w, of w |x|^2 (carried)

    with pool:

        def step(centroids: np.ndarray, shift: np.ndarray, first: bool) -> np.ndarray:
            cen = np.ascontiguousarray(centroids)
            order, ring, half_sep, tree = _neighbours(cen, k)
            parts = (map if len(slices) == 1 else pool.map)(  # one slice: no hand-off to a thread
                lambda ab: kha.hamerly_step(
                    x[ab[0] : ab[1]],
                    w[ab[0] : ab[1]],
                    cen,
                    shift,
                    half_sep,
                    order,
                    ring,
                    assign[ab[0] : ab[1]],
                    upper[ab[0] : ab[1]],
                    lower[ab[0] : ab[1]],
                    first,
                    tree,
                ),
                slices,
            )
            for p in parts:
                totals[...] += p
            # the (K + 1, C + 2) partial of lloyd_loop; inertia from the carried sums:
            # sum w |x - m|^2 = sum w |x|^2 - 2 m . sum w x + |m|^2 sum w
            out = np.zeros((k + 1, c + 2))
            out[:k, : c + 1] = totals[:, : c + 1]
            sse = totals[:, c + 1] - 2 * (cen * totals[:, :c]).sum(1) + (cen * cen).sum(1) * totals[:, c]
            out[:k, c + 1] = np.maximum(sse, 0.0)
            return out

        return lloyd_loop(
            step,
            init,
            max_iter=max_iter,
            tol_abs=tol_abs,
            inertia_rtol=inertia_rtol,
            sample=sample,
            callback=callback,
            progress=progress,
            stage=stage,
        )
