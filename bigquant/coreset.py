"""The pixel path's weighted grid coreset: every pixel in a cell of a fine grid, in one pass.

Each pixel falls in a cell of a grid over the data's range (``bits`` per channel). One
map-reduce pass yields every occupied cell's pixel count, per-channel sums and sum of squared
norms; chunks' cells are merged by a tree reduction of fixed shape, so the result is the same
on every run with the same chunking. A merge whose cells exceed the budget
(:func:`cell_budget`) drops one bit per channel and merges again: cells of a coarser level are
unions of finer ones, so every sum stays exact.

A cell stands for its pixels as its mean weighted by its count. Weighted Lloyd's on the cells
is exact Lloyd's for every cell that lies wholly inside one Voronoi region of the centroids, and
the inertia of a codebook on the cells is exact for those cells and an upper bound overall
(each pixel of a cell is charged to the cell's centroid, not necessarily its own nearest), so a
PSNR computed on the coreset is a lower bound on the pixels' PSNR for the same codebook.
Pure algorithm on NumPy and dask arrays: no file I/O, no printing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from ._dask import as_list, parallel_tasks, tree_reduce, worker_threads
from .params import labels_dtype

#: Most occupied cells a merge keeps before it coarsens the grid by one bit per channel ...
CORESET_CELLS = 1 << 20
#: ... and this many times as many from :data:`WIDE_CHANNELS` channels on (:func:`cell_budget`).
WIDE_BUDGET = 2
WIDE_CHANNELS = 4
#: A chunk's own cells are coarsened to at most this share of the budget, so the first merges of
#: a tree rarely need a second grouping (:func:`chunk_share`).
CHUNK_SHARE = 4
WIDE_CHUNK_SHARE = 2
#: k-means++ starts :func:`best_start` compares on a coarse grid.
RESTARTS = 8
#: Most cells of that coarse grid (5-6 bits per channel for RGB, 4 for four bands): a start costs
#: a fifth of what it does on 2**17 cells, and the finer grid's ranking ends within 0.04 dB of
#: this one's either way (benchmarks/README.md, "a coarser grid for the starts").
COARSE_CELLS = 1 << 15
#: Fewer coarse cells than this many per centroid cannot rank the starts.
COARSE_MIN_CELLS_PER_K = 8
#: Parts merged by one task of the tree.
MERGE_FAN_IN = 4
#: Finest grid: bits per channel (fewer where a code would pass 60 bits; no finer than integers).
MAX_BITS = 10

#: The grid starts at the finest level on which the pixel sample has at most one distinct cell
#: per this many sampled pixels.
SAMPLE_SHARE = 1.25
#: One part of the reduction: (codes, counts, sums, sq, bits, non-finite rows).
Part = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]


@dataclass
class Coreset:
    """The occupied cells of an image (or of several images together).

    Attributes
    ----------
    points : ndarray of shape (m, C), float64
        Each cell's mean.
    counts : ndarray of shape (m,), float64
        Pixels per cell (whole numbers).
    sums : ndarray of shape (m, C), float64
        Per-channel sums of each cell's pixels.
    sq : ndarray of shape (m,), float64
        Sum of ``|x|^2`` over each cell's pixels.
    bits : int
        Bits per channel of the grid the cells ended on.
    nonfinite : int
        Pixels holding NaN or inf (left out of every cell).
    codes : ndarray of shape (m,), int64
        Each cell's packed grid code (sorted), from which :meth:`coarser` merges cells.
    lo, unit : ndarray of shape (C,), float64
        The grid: a value ``v`` of channel ``ch`` has index ``floor((v - lo) * unit * 2**bits)``
        (clipped to the grid: the edge cells also hold the values beyond it).
    """

    points: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    sq: np.ndarray
    bits: int
    nonfinite: int
    codes: np.ndarray
    lo: np.ndarray
    unit: np.ndarray

    @property
    def pixels(self) -> float:
        """Pixels in the cells."""
        return float(self.counts.sum())

    def coarser(self, budget: int) -> Coreset:
        """The same pixels on the finest coarser grid (whole bits per channel) with at most
        ``budget`` cells: every cell a union of these, every sum exact."""
        part = (self.codes, self.counts, self.sums, self.sq, self.bits, self.nonfinite)
        return from_part(_fit_budget(part, budget), self.lo, self.unit)

    def scale(self) -> float:
        """The data's scale (square root of the mean per-channel variance) over every pixel, exact
        up to rounding: the same number :func:`bigquant.kmeans.data_scale` gives on all pixels."""
        n = self.pixels
        mean = self.sums.sum(0) / n
        c = self.points.shape[1]
        return float(np.sqrt(max(float(self.sq.sum()) / n - float(mean @ mean), 0.0) / c))

    def within(self) -> float:
        """Sum of squared distances of the pixels to their cells' means (no codebook does better
        than this on the cells)."""
        own = self.sq - (self.sums * self.points).sum(1)
        return float(np.maximum(own, 0.0).sum())

    def sse(self, codebook: np.ndarray) -> float:
        """Sum of squared errors of the pixels when each cell takes its mean's nearest entry of
        ``codebook`` (K, C): an upper bound on the pixels' own sum for that codebook."""
        from ._kernels import lloyd as kl

        d = np.empty(len(self.points))
        cb = np.ascontiguousarray(codebook, dtype=np.float64)
        kl.nearest_sq_dist(self.points, cb, d, np.empty(0, np.int32))
        return self.within() + float(d @ self.counts)


def _distinct_cells(pts: np.ndarray, lo: np.ndarray, unit: np.ndarray, bits: int) -> int:
    q = np.clip(np.floor((pts - lo) * (unit * float(1 << bits))), 0, (1 << bits) - 1).astype(np.int64)
    codes = (q << (bits * np.arange(pts.shape[1], dtype=np.int64))).sum(1)
    return len(np.unique(codes))


def cell_budget(channels: int) -> int:
    """The most cells a coreset of ``channels`` keeps: :data:`CORESET_CELLS`, times
    :data:`WIDE_BUDGET` from :data:`WIDE_CHANNELS` channels on.

    One bit less per channel leaves up to 2**C times fewer cells, so in four bands a budget just
    short of a grid's cells drops it to a grid so coarse that exact passes must finish the fit,
    many of them (benchmarks/README.md, "Four bands").
    """
    return CORESET_CELLS * (WIDE_BUDGET if channels >= WIDE_CHANNELS else 1)


def chunk_share(channels: int) -> int:
    """The share of the budget one chunk's cells may take: one in :data:`CHUNK_SHARE`, one in
    :data:`WIDE_CHUNK_SHARE` from :data:`WIDE_CHANNELS` channels on (a chunk whose table fills
    drags the whole coreset a bit coarser, which in four bands costs exact passes too)."""
    return WIDE_CHUNK_SHARE if channels >= WIDE_CHANNELS else CHUNK_SHARE


def grid(sample: np.ndarray, dtype: Any, pixels: int, budget: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(lo, unit, bits)``: the grid over the range of ``sample`` (n, C) is ``floor((v - lo) *
    unit * 2**bits)`` per channel, clipped to ``[0, 2**bits)``.

    ``bits`` is the finest grid if the image's ``pixels`` fit the chunks' share of ``budget``,
    else the finest whose cells the sample's pixels share (at most one distinct cell per
    :data:`SAMPLE_SHARE` sampled pixels): a finer one would hold about one cell per pixel. Values outside the sample's range fall in the edge cells: a cell is any set of
    pixels, so the sums stay exact, only those cells are wider.
    """
    pts = np.asarray(sample, dtype=np.float64)
    lo, hi = pts.min(0), pts.max(0)
    if np.dtype(dtype).kind in "ui":
        hi = hi + 1.0  # integer v lies in [v, v + 1): the top value gets a cell of its own
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = 1.0 / span
    top = min(MAX_BITS, 60 // pts.shape[1])
    if np.dtype(dtype).kind in "ui":  # no finer than one cell per integer value
        top = min(top, max(1, int(np.ceil(np.log2(float(span.max()))))))
    bits = max(1, top)
    while pixels * CHUNK_SHARE > budget and bits > 1 and _distinct_cells(pts, lo, unit, bits) * SAMPLE_SHARE > len(pts):
        bits -= 1
    return lo, unit, bits


def _coarsen(part: Part, bits: int) -> Part:
    """``part`` on the grid of ``bits`` per channel (cells merged; sorted by code)."""
    from ._kernels import coreset as kc

    codes, counts, sums, sq, b, bad = part
    if b != bits:
        codes = kc.coarsen_codes(codes, sums.shape[1], b, b - bits)
    order = np.argsort(codes, kind="stable")
    codes, counts, sums, sq = kc.sum_sorted(codes, order, counts, sums, sq)
    return codes, counts, sums, sq, bits, bad


def _fit_budget(part: Part, budget: int) -> Part:
    while len(part[0]) > budget and part[4] > 1:
        part = _coarsen(part, part[4] - 1)
    return part


def block_part(block: np.ndarray, lo: np.ndarray, unit: np.ndarray, bits: int, budget: int) -> Part:
    """The cells of one chunk (..., C), sorted by code, within ``budget // chunk_share(C)`` cells
    (on a coarser grid than ``bits`` if need be)."""
    from ._kernels import coreset as kc

    flat = block.reshape(-1, block.shape[-1])
    cap = max(1, budget // chunk_share(block.shape[-1]))
    codes, counts, sums, sq, bad, bits = kc.block_cells(flat, lo, unit * float(1 << bits), bits, cap)
    return _coarsen((codes, counts, sums, sq, bits, int(bad)), bits)


def merge_parts(parts: list[Part], budget: int) -> Part:
    """Parts merged on the coarsest grid among them, then coarsened to within ``budget`` cells."""
    bits = min(p[4] for p in parts)
    same = [p if p[4] == bits else _coarsen(p, bits) for p in parts]
    joined: Part = (
        np.concatenate([p[0] for p in same]),
        np.concatenate([p[1] for p in same]),
        np.concatenate([p[2] for p in same]),
        np.concatenate([p[3] for p in same]),
        bits,
        sum(p[5] for p in same),
    )
    return _fit_budget(_coarsen(joined, bits), budget)


def coreset(xs: Any, sample: np.ndarray, budget: int | None = None) -> Coreset:
    """The grid coreset of ``xs`` (rows, cols, C), or a list of such dask arrays, in one pass.

    ``sample`` (n, C), a sample of the pixels, sets the grid's range; ``budget`` bounds the
    cells (default :func:`cell_budget`).
    """
    arrays = as_list(xs)
    pixels = sum(int(np.prod(a.shape[:-1])) for a in arrays)
    budget = cell_budget(arrays[0].shape[-1]) if budget is None else budget
    lo, unit, bits = grid(sample, arrays[0].dtype, pixels, budget)
    blocks = []
    for arr in arrays:
        if arr.numblocks[-1] != 1:
            arr = arr.rechunk({arr.ndim - 1: -1})
        blocks += arr.to_delayed().ravel().tolist()
    part = dask.delayed(block_part, pure=True)
    # Chunks spread over the image go first; the others start on the coarsest grid these end
    # on. Every part is merged onto the coarsest grid among them anyway, so the coreset is the
    # same, but a chunk no longer fills its table on a finer grid only to merge it down.
    probes = np.unique(np.linspace(0, len(blocks) - 1, min(len(blocks), parallel_tasks())).round().astype(int))
    parts: list[Any] = [None] * len(blocks)
    if len(probes) < len(blocks):
        done = dask.persist(*[part(blocks[i], lo, unit, bits, budget) for i in probes])
        bits = min(dask.compute(*[dask.delayed(_bits_of)(p) for p in done]))
        for i, p in zip(probes, done):
            parts[i] = p
    parts = [p if p is not None else part(b, lo, unit, bits, budget) for p, b in zip(parts, blocks)]
    root = tree_reduce(parts, lambda ps: merge_parts(ps, budget), split_every=MERGE_FAN_IN)
    (res,) = dask.compute(root)
    return from_part(res, lo, unit)


def _bits_of(part: Part) -> int:
    return int(part[4])


def from_part(part: Part, lo: np.ndarray, unit: np.ndarray) -> Coreset:
    """The coreset of a reduced part on the grid ``lo``, ``unit``."""
    codes, counts, sums, sq, bits, bad = part
    return Coreset(sums / counts[:, None], counts, sums, sq, int(bits), int(bad), codes, lo, unit)


def best_start(
    cells: Coreset, start: np.ndarray, seed: int, tol_abs: float, inertia_rtol: float, max_iter: int
) -> np.ndarray | None:
    """The best of :data:`RESTARTS` fits on a coarse grid of ``cells`` (at most
    :data:`COARSE_CELLS` cells): from ``start`` (K, C) and from weighted k-means++ on the coarse
    cells with seeds drawn from ``seed``. Returns the converged centroids of the one with the
    least inertia, from which a second fit on every cell is worth running, or None when that is
    ``start``'s own or the grid has too few cells to rank starts.

    A single k-means++ start can end in a local optimum some hundredths of a dB from a better
    one; on the coarse cells a fit costs little, and their inertia ranks the starts (not
    perfectly: the caller keeps the second fit only if it ends better than the first).
    """
    from .hamerly import lloyd_in_memory
    from .seeding import kmeans_plusplus

    k = len(start)
    coarse = cells.coarser(COARSE_CELLS)
    if RESTARTS < 2 or len(coarse.points) < COARSE_MIN_CELLS_PER_K * k:
        return None
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=RESTARTS - 1)
    # the seedings side by side (their kernel releases the GIL, and runs on one thread each), and
    # then the fits: a fit's late steps skip almost every cell, so much of their time is Python's
    with ThreadPoolExecutor(max_workers=max(1, min(worker_threads(), len(seeds)))) as pool:
        seeded = pool.map(lambda s: kmeans_plusplus(coarse.points, k, int(s), coarse.counts)[0], seeds)
        starts = [start, *seeded]
        fits = list(
            pool.map(
                lambda s: lloyd_in_memory(
                    coarse.points, coarse.counts, s, max_iter=max_iter, tol_abs=tol_abs, inertia_rtol=inertia_rtol
                ),
                starts,
            )
        )
    best = min(range(len(fits)), key=lambda i: fits[i].inertia)  # the first on ties
    return None if best == 0 else fits[best].centroids


@dataclass(frozen=True)
class CellLabels:
    """The label of every cell of a coarsened coreset grid that lies inside one centroid's
    region (:func:`cell_labels`), for :func:`label_and_sum`.

    Attributes
    ----------
    table : ndarray of shape (2**(bits * C),), int16
        By packed cell code: the label, or -1 (the cell straddles regions or holds no pixel).
    lo, scale : ndarray of shape (C,), float64; bits : int
        A value ``v`` of channel ``ch`` has grid index ``floor((v - lo) * scale)``.
    share : float
        The share of the coreset's pixels in labelled cells.
    held : ndarray of shape (K + 3 + K * C,), float64
        Those pixels' part of :func:`label_and_sum`'s stats, which the label pass leaves out:
        each label's pixel count and per-channel sums over its cells (zeros elsewhere). Add it
        once to the combined stats of a pass over the coreset's pixels.
    """

    table: np.ndarray
    lo: np.ndarray
    scale: np.ndarray
    bits: int
    share: float
    held: np.ndarray


#: A label table has at most 2**TABLE_LOG2 cells (4 MiB): 7 bits per channel for RGB, 5 for 4 bands.
TABLE_LOG2 = 21
#: Coarser tables label too few pixels to pay for themselves.
TABLE_MIN_BITS = 4
#: Below this share of the pixels in labelled cells, a lookup for every pixel (the others then
#: searched apart) costs more than it saves (benchmarks/README.md, "labels from the coreset's cells").
TABLE_MIN_SHARE = 0.6


def cell_labels(cells: Coreset, codebook: np.ndarray, min_share: float = TABLE_MIN_SHARE) -> CellLabels | None:
    """The label table of ``codebook`` (K, C) on the cells of ``cells``, or None where K is
    beyond the table's int16 labels and neighbour lists, the grid would be too coarse, or the
    table would label less than ``min_share`` of the pixels."""
    from ._kernels import coreset as kc
    from ._kernels import lloyd as kl
    from ._kernels.common import transposed

    k, c = codebook.shape
    bits = min(cells.bits, TABLE_LOG2 // c)
    if k > kl.NEIGHBOURS_MAX_K or bits < TABLE_MIN_BITS:
        return None
    cb = np.ascontiguousarray(codebook, dtype=np.float64)
    order, gap, _, _ = kl.neighbour_lists(cb, transposed(cb)[1], k * k)
    coarse = kc.coarsen_codes(cells.codes, c, cells.bits, cells.bits - bits)
    scale = cells.unit * float(1 << bits)
    table = kc.pure_cells(np.unique(coarse), bits, cells.lo, scale, cb, order, gap)
    label = table[coarse]
    held = label >= 0
    share = float(cells.counts[held].sum()) / cells.pixels
    if share < min_share:
        return None
    stats = np.zeros(k + 3 + k * c)
    stats[:k] = np.bincount(label[held], cells.counts[held], minlength=k)
    for ch in range(c):
        stats[k + 3 + ch :: c] = np.bincount(label[held], cells.sums[held, ch], minlength=k)
    return CellLabels(table, cells.lo, scale, bits, share, stats)


def label_and_sum(
    block: np.ndarray, codebook: np.ndarray, table: CellLabels | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Label one chunk (..., C) like :func:`bigquant.kmeans.label_block`, and sum each
    cluster's pixels: the label pass that is also an exact Lloyd step. A pixel in a labelled
    cell of ``table`` takes its label unsearched and is left out of the counts and sums, which
    ``table.held`` holds for the coreset's pixels (add it once to all chunks' stats).

    Returns
    -------
    labels : ndarray of the shape of ``block`` without its last axis
    stats : ndarray of shape (K + 3 + K * C,), float64
        :func:`bigquant.kmeans.label_block`'s stats, then the per-cluster sums (K x C).
    """
    from ._kernels import coreset as kc

    k, c = codebook.shape
    flat = block.reshape(-1, block.shape[-1])
    labels = np.empty(len(flat), dtype=labels_dtype(k))
    cb = np.ascontiguousarray(codebook, dtype=np.float64)
    if table is None:
        table = CellLabels(np.empty(0, np.int16), np.zeros(c), np.ones(c), 1, 0.0, np.zeros(0))
    stats = kc.label_and_sum(flat, cb, labels, table.table, table.lo, table.scale, table.bits)
    return labels.reshape(block.shape[:-1]), stats


def combine_fused(parts: list[np.ndarray], k: int) -> np.ndarray:
    """Combine the :func:`label_and_sum` stats of several chunks for K = ``k``: counts, error
    and sums added in list order, the data range's minimum and maximum taken."""
    stack = np.stack([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])
    out = stack.sum(0)
    out[k + 1] = stack[:, k + 1].min()
    out[k + 2] = stack[:, k + 2].max()
    return out
