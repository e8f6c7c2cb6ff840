"""Exact colour-histogram path for integer images of at most 24 bits per pixel (uint8, C <= 3).

Identical colours always land in the same cluster, so Lloyd's k-means on the distinct colours
weighted by their pixel counts is the same algorithm as Lloyd's on every pixel. The work is:

1. one map-reduce pass builds the sparse histogram (per chunk: a dense count table of at most
   2**24 entries turned sparse; groups of chunks' parts are merged in parallel, and the groups
   folded into one running histogram);
2. Lloyd's iterations run on the distinct colours weighted by their counts, in memory (at most
   2**24 of them), with Hamerly's bounds (:func:`bigquant.hamerly.lloyd_in_memory`): first on
   coarse 15-, 18- and 21-bit histograms to get close cheaply, then on the exact one until
   convergence (:func:`fit`);
3. one more pass labels every pixel through a colour -> label lookup table
   (:func:`label_table`, :func:`full_label_table`; :func:`label_block` is this path's one
   labelling routine).
"""

from __future__ import annotations

import threading
from typing import Any

import dask
import dask.array as da
import numpy as np

from .hamerly import lloyd_in_memory, sliced
from .kmeans import Callback, LloydResult, centroid_tree
from .kmeans import label_block as nearest_labels
from .params import COARSE_TOL_FACTOR, labels_dtype
from .progress import Progress

#: Bits per channel of the coarse histograms that warm-start the exact iterations, coarsest first.
COARSE_LEVELS = (5, 6, 7)
COARSE_BITS = COARSE_LEVELS[0]
#: A coarse level with fewer occupied bins per cluster than this is skipped: its bins are too
#: wide for the clusters' spacing and its optimum leads the exact stage astray.
COARSE_MIN_BINS_PER_CLUSTER = 32
#: Chunks' sparse histograms combined by one first-level merge task.
MERGE_FAN_IN = 8
#: First-level merges added into the running histogram by one fold step.
FOLD_IN = 2
#: Below one code per this many table entries, a task sorts its codes instead of counting them in
#: the dense per-thread table: a small image then never touches (or keeps) the 64 MiB table.
SPARSE_RATIO = 16

Hist = tuple[np.ndarray, np.ndarray]


def applies(dtype: Any, channels: int) -> bool:
    """True where the exact histogram path applies: uint8 with 1 to 3 channels."""
    return np.dtype(dtype) == np.uint8 and 1 <= channels <= 3


def nbins(channels: int) -> int:
    """Colour codes of a uint8 image with ``channels`` channels: ``2**(8 C)``."""
    return 1 << (8 * channels)


_scratch = threading.local()


def _table(n: int, dtype: Any = np.int32) -> np.ndarray:
    """A zeroed per-thread count table of ``n`` entries, reused across tasks.

    The kernels leave it zeroed, so a task pays for the colours it sees, not for 2**24 entries.
    int32 (64 MiB for 2**24 colours) where the counts fit, as they do for every chunk and for
    any merge of fewer than 2**31 pixels: half the pages of an int64 table to fault in; int64
    only for merges beyond that.
    """
    name = f"table_{np.dtype(dtype).name}"
    t = getattr(_scratch, name, None)
    if t is None or len(t) < n:
        t = np.zeros(n, dtype=dtype)
        setattr(_scratch, name, t)
    return t


def count_dtype(pixels: int) -> np.dtype:
    """The dtype of a histogram's counts: int32 where every total fits (fewer than 2**31 pixels),
    else int64."""
    return np.dtype(np.int32 if pixels < 2**31 else np.int64)


def _sorted_counts(codes: np.ndarray, counts: np.ndarray | None) -> Hist:
    """Distinct codes, sorted, with their summed counts (one each when ``counts`` is None)."""
    if counts is None:
        uniq, n = np.unique(codes, return_counts=True)
        return uniq.astype(np.uint32, copy=False), n.astype(count_dtype(len(codes)))
    dtype = count_dtype(int(counts.sum()))
    if len(codes) == 0:
        return codes.astype(np.uint32), np.zeros(0, dtype)
    order = np.argsort(codes, kind="stable")
    codes, counts = codes[order], counts[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    summed = np.add.reduceat(counts, starts, dtype=np.int64).astype(dtype)
    return codes[starts].astype(np.uint32, copy=False), summed


def block_histogram(block: np.ndarray) -> Hist:
    """The sparse histogram ``(codes uint32, counts)`` of one uint8 chunk (..., C), unsorted."""
    from ._kernels import histogram as kh

    flat = block.reshape(-1, block.shape[-1])
    n = nbins(flat.shape[1])
    if len(flat) * SPARSE_RATIO < n:
        return _sorted_counts(kh.colour_codes(flat), None)
    return kh.block_histogram(flat, _table(n, count_dtype(len(flat))))


def merge_histograms(parts: list[Hist], n: int) -> Hist:
    """The sorted sparse histogram of several ``(codes, counts)`` parts over ``n`` codes, without
    concatenating them (counts widen to int64 when the total reaches 2**31 pixels)."""
    from ._kernels import histogram as kh

    total = sum(len(p[0]) for p in parts)
    if total * SPARSE_RATIO < n:
        return _sorted_counts(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    pixels = sum(int(p[1].sum()) for p in parts)
    table = _table(n, count_dtype(pixels))
    # Past one code per 16 table entries the result is read by a scan of the table, in order:
    # no list of the distinct codes is kept (at the root of a gigapixel image's merges it would
    # be tens of MB of the peak).
    scan = total * 16 > n
    uniq = np.empty(0 if scan else total, dtype=np.uint32)
    m = 0
    for codes, counts in parts:
        m = kh.insert_codes(codes, counts, table, uniq, m)
    return kh.drain_table(table, m) if scan else kh.drain(uniq[:m], table, True)


def colour_histogram(x: Any) -> Hist:
    """Exact histogram of the colours of a uint8 image (rows, cols, C), C <= 3, in one pass.

    ``x`` may be a list of such dask arrays with the same C: their histograms are summed in the
    same reduction (one palette across several images).

    Returns
    -------
    colours : ndarray of shape (M, C), uint8
        The distinct colours, sorted by their packed code.
    counts : ndarray of shape (M,), int32 (int64 from 2**31 pixels on)
        Pixels of each colour (:func:`count_dtype`: the fit holds them, 4 bytes a colour).
    """
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    c = arrays[0].shape[-1]
    parts = []
    for arr in arrays:
        if arr.numblocks[-1] != 1:
            arr = arr.rechunk({arr.ndim - 1: -1})
        blocks = arr.to_delayed().ravel().tolist()
        parts += [dask.delayed(block_histogram, pure=True, nout=2)(b) for b in blocks]
    n = nbins(c)
    merge = dask.delayed(lambda ps: merge_histograms(ps, n), pure=True)
    # First level: groups of MERGE_FAN_IN chunks' parts (few colours each) merged in parallel.
    # Above it the parts share most of their colours, so a tree would hold fan-in parts almost
    # as big as the result at once; a fold instead adds them into one running histogram,
    # FOLD_IN at a time. Integer counts: the same result for any shape of the reduction.
    # The chunks' parts come unsorted and every merge sorts, so the root is always a merge.
    firsts = [merge(parts[i : i + MERGE_FAN_IN]) for i in range(0, len(parts), MERGE_FAN_IN)]
    root = firsts[0]
    for i in range(1, len(firsts), FOLD_IN):
        root = merge([root, *firsts[i : i + FOLD_IN]])
    (hist,) = dask.compute(root)
    codes, counts = hist
    return codes_to_colours(codes, c), counts


def codes_to_colours(codes: np.ndarray, channels: int) -> np.ndarray:
    """Unpack uint32 colour codes (M,) into an (M, C) uint8 array."""
    from ._kernels import histogram as kh

    return kh.unpack_codes(np.ascontiguousarray(codes, dtype=np.uint32), int(channels))


def coarse_histogram(colours: np.ndarray, counts: np.ndarray, bits: int = COARSE_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Merge colours into bins of ``bits`` per channel; each bin is the weighted mean of its colours.

    Returns ``(points (m, C) float64, weights (m,) float64)``, in bin order (one compiled pass).
    """
    from ._kernels import histogram as kh

    return kh.coarse_bins(np.ascontiguousarray(colours), np.ascontiguousarray(counts), int(bits))


def sample_from_histogram(colours: np.ndarray, counts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A reproducible sample of ``n`` pixels (n, C) drawn from the histogram (with replacement).

    Pixel ``j`` of the ``sum(counts)`` is drawn uniformly and mapped to its colour through the
    cumulative counts: integers throughout (``Generator.choice`` with probabilities would check
    and normalise them in float, several times slower on a million colours).
    """
    rng = np.random.default_rng(seed)
    cum = np.cumsum(counts, dtype=np.int64)
    pixels = np.sort(rng.integers(0, int(cum[-1]), size=n))
    return colours[np.searchsorted(cum, pixels, side="right")]


def fit(
    colours: np.ndarray,
    counts: np.ndarray,
    init: np.ndarray,
    *,
    max_iter: int,
    tol_abs: float,
    sample: np.ndarray,
    inertia_rtol: float = 0.0,
    coarse: bool = True,
    callback: Callback | None = None,
    progress: Progress | None = None,
) -> LloydResult:
    """Weighted Lloyd's k-means on a colour histogram, warm-started on coarser versions of it.

    Lloyd's iterations converge slowly near the end, and each one touches every distinct colour
    (millions on a large photograph). The coarse stages run the same iterations on the colours
    merged into bins of 5, then 6, then 7 bits per channel (each bin at the weighted mean of
    its colours), each from where the previous stopped and to
    :data:`~bigquant.params.COARSE_TOL_FACTOR` times the shift tolerance, so the exact stage
    starts close to its optimum. Every stage has the same ``inertia_rtol``. A level is skipped
    when it would not have at most half as many points as the next, or when it has fewer than
    :data:`COARSE_MIN_BINS_PER_CLUSTER` occupied bins per cluster (too coarse a level leads to a
    worse optimum). With ``coarse=False`` the exact stage starts at ``init`` (used to check the
    path against the pixel-level engine from the same initial centroids). ``progress`` receives
    the :class:`~bigquant.progress.Iteration` of every stage (``"coarse 5-bit"``, ..., ``"Lloyd"``).

    Returns
    -------
    LloydResult
        Of the exact stage, with ``coarse_iterations`` the steps of the coarse stages.
    """
    start = np.asarray(init, dtype=np.float64)
    coarse_iters = 0
    if coarse and len(colours) > 4 * len(start):
        from ._kernels import histogram as kh

        x = np.ascontiguousarray(colours)
        sizes = [kh.count_bins(x, bits) for bits in COARSE_LEVELS] + [len(colours)]
        for i, bits in enumerate(COARSE_LEVELS):
            if sizes[i] > sizes[i + 1] // 2 or sizes[i] < COARSE_MIN_BINS_PER_CLUSTER * len(start):
                continue
            cpts, cw = coarse_histogram(x, counts, bits)
            cres = lloyd_in_memory(
                cpts,
                cw,
                start,
                max_iter=max_iter,
                tol_abs=COARSE_TOL_FACTOR * tol_abs,
                inertia_rtol=inertia_rtol,
                sample=sample,
                progress=progress,
                stage=f"coarse {bits}-bit",
            )
            start, coarse_iters = cres.centroids, coarse_iters + cres.n_iter
    res = lloyd_in_memory(
        colours,
        counts,
        start,
        max_iter=max_iter,
        tol_abs=tol_abs,
        inertia_rtol=inertia_rtol,
        sample=sample,
        callback=callback,
        progress=progress,
    )
    res.coarse_iterations = coarse_iters
    return res


def label_table(colours: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour-code -> label lookup table over all ``2**(8C)`` codes, and each colour's squared error.

    Only the colours present are filled in; the table is uint8 for K <= 256, else uint16.

    Returns
    -------
    lut : ndarray of shape (2**(8C),)
    sq_err : ndarray of shape (M,), float64
        Squared distance of each distinct colour to its codebook entry (:func:`weighted_sse`
        sums it over the pixels).
    """
    from ._kernels import histogram as kh
    from ._kernels import lloyd as kl

    k, c = codebook.shape
    dtype = labels_dtype(k)
    n = len(colours)
    labels = np.empty(n, dtype=dtype)
    sq_err = np.empty(n, dtype=np.float64)
    cb = np.ascontiguousarray(codebook, dtype=np.float64)
    x = np.ascontiguousarray(colours)
    tree = centroid_tree(cb)
    slices, pool = sliced(n)
    with pool:
        list(
            pool.map(
                lambda ab: kl.nearest_sq_dist(x[ab[0] : ab[1]], cb, sq_err[ab[0] : ab[1]], labels[ab[0] : ab[1]], tree),
                slices,
            )
        )
    lut = np.zeros(nbins(c), dtype=dtype)
    lut[kh.colour_codes(x)] = labels
    return lut, sq_err


def weighted_sse(sq_err: np.ndarray, counts: np.ndarray) -> float:
    """The sum of squared errors over the pixels, ``sum(sq_err * counts)``, without an array of
    the products (einsum casts the counts in buffers)."""
    return float(np.einsum("i,i->", sq_err, counts))


def _label_codes(codes: np.ndarray, codebook: np.ndarray, channels: int) -> np.ndarray:
    return nearest_labels(codes_to_colours(codes, channels), codebook)[0]


def full_label_table(codebook: np.ndarray, channels: int) -> np.ndarray:
    """Colour-code -> label table (2**(8C),) over every possible colour (for a fixed codebook).

    Labelling all ``2**(8C)`` colours once is cheaper than labelling each pixel against K
    centroids when the image has more pixels than there are colours. Computed in parallel
    chunks of the colour space, with the pixel path's :func:`bigquant.kmeans.label_block`.
    """
    dtype = labels_dtype(codebook.shape[0])
    cbd = dask.delayed(np.ascontiguousarray(codebook, dtype=np.float64), pure=True)
    codes = da.arange(nbins(channels), dtype=np.uint32, chunks=1 << 20)
    (lut,) = dask.compute(da.map_blocks(_label_codes, codes, cbd, channels, dtype=dtype))
    return lut


def label_block(
    block: np.ndarray, lut: np.ndarray, codebook: np.ndarray, with_error: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Label one uint8 chunk (rows, cols, C) through ``lut``.

    Returns ``(labels (rows, cols), stats (K + 3,))`` in the layout of
    :func:`bigquant.kmeans.label_block`: pixels per label, the sum of squared errors against
    ``codebook`` (K, C) (0 unless ``with_error``), and the data range.
    """
    from ._kernels import histogram as kh

    flat = block.reshape(-1, block.shape[-1])
    labels = np.empty(len(flat), dtype=lut.dtype)
    stats = kh.lut_labels(flat, lut, np.ascontiguousarray(codebook, dtype=np.float64), labels, with_error)
    stats[-2:] = (block.min(), block.max()) if block.size else (255, 0)
    return labels.reshape(block.shape[:-1]), stats
