"""Exact colour-histogram path for integer images of at most 24 bits per pixel (uint8, C <= 3).

Identical colours always land in the same cluster, so Lloyd's k-means on the distinct colours
weighted by their pixel counts is the same algorithm as Lloyd's on every pixel. The work is:

1. one map-reduce pass builds the sparse histogram (per chunk: a dense count table of at most
   2**24 entries turned sparse; groups of chunks' parts are merged in parallel, and the groups
   folded into one running histogram);
2. Lloyd's iterations run on the distinct colours weighted by their counts, in memory (at most
   2**24 of them), with the same loop as the pixel path (:func:`bigquant.kmeans.lloyd_loop`) and
   Hamerly's bounds to skip the distance computations that cannot change an assignment: first
   on coarse 15-, 18- and 21-bit histograms to get close cheaply, then on the exact one until
   convergence;
3. one more pass labels every pixel through a colour -> label lookup table.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np

from .kmeans import LloydResult, lloyd_loop

#: Bits per channel of the coarse histograms that warm-start the exact iterations, coarsest first.
COARSE_LEVELS = (5, 6, 7)
COARSE_BITS = COARSE_LEVELS[0]
#: A coarse level with fewer occupied bins per cluster than this is skipped: its bins are too
#: wide for the clusters' spacing and its optimum leads the exact stage astray.
COARSE_MIN_BINS_PER_CLUSTER = 32
#: The coarse stages stop at this multiple of the exact stage's tolerance.
COARSE_TOL_FACTOR = 10.0
#: Chunks' sparse histograms combined by one first-level merge task.
MERGE_FAN_IN = 8
#: First-level merges added into the running histogram by one fold step.
FOLD_IN = 2
#: Up to this K a searched point looks only at its centroid's near neighbours, from K x K tables
#: of the centroids' distances (8 MiB each at 1024); beyond it, at every centroid.
RING_MAX_K = 1024
#: Points per slice of the in-memory Lloyd iterations (fixed, so results don't depend on threads).
HAMERLY_SLICE = 1 << 15


def applies(dtype: np.dtype, channels: int) -> bool:
    """True where the exact histogram path applies: uint8 with 1 to 3 channels."""
    return np.dtype(dtype) == np.uint8 and 1 <= channels <= 3


def _nbins(channels: int) -> int:
    return 1 << (8 * channels)


_scratch = threading.local()


def _table(nbins: int, dtype=np.int32) -> np.ndarray:
    """A zeroed per-thread count table of ``nbins`` entries, reused across tasks.

    The kernels leave it zeroed, so a task pays for the colours it sees, not for 2**24 entries.
    int32 (64 MiB for 2**24 colours) where the counts fit, as they do for every chunk and for
    any merge of fewer than 2**31 pixels: half the pages of an int64 table to fault in (SafeLanding's
    histogram pass 15 % faster); int64 only for merges beyond that.
    """
    name = f"table_{np.dtype(dtype).name}"
    t = getattr(_scratch, name, None)
    if t is None or len(t) < nbins:
        t = np.zeros(nbins, dtype=dtype)
        setattr(_scratch, name, t)
    return t


#: Below one code per this many table entries, a task sorts its codes instead of counting them in
#: the dense per-thread table: a small image then never touches (or keeps) the 64 MiB table.
SPARSE_RATIO = 16


def count_dtype(pixels: int) -> np.dtype:
    """The dtype of a histogram's counts: int32 where every total fits (fewer than 2**31 pixels),
    else int64."""
    return np.dtype(np.int32 if pixels < 2**31 else np.int64)


def _sorted_counts(codes: np.ndarray, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
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
    return codes[starts].astype(np.uint32, copy=False), np.add.reduceat(counts, starts, dtype=np.int64).astype(dtype)


def _block_hist(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from . import _kernels

    flat = block.reshape(-1, block.shape[-1])
    nbins = _nbins(flat.shape[1])
    if len(flat) * SPARSE_RATIO < nbins:
        return _sorted_counts(_kernels.colour_codes(flat), None)
    return _kernels.block_histogram(flat, _table(nbins, count_dtype(len(flat))))


def _merge_hists(parts, nbins):
    """The sparse histogram of several ``(codes, counts)`` parts, without concatenating them."""
    from . import _kernels

    total = sum(len(p[0]) for p in parts)
    if total * SPARSE_RATIO < nbins:
        return _sorted_counts(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    pixels = sum(int(p[1].sum()) for p in parts)
    table = _table(nbins, count_dtype(pixels))
    # Past one code per 16 table entries the result is read by a scan of the table, in order:
    # no list of the distinct codes is kept (at the root of a gigapixel image's merges it was
    # 38 MB of the peak).
    scan = total * 16 > nbins
    uniq = np.empty(0 if scan else total, dtype=np.uint32)
    m = 0
    for codes, counts in parts:
        m = _kernels.insert_codes(codes, counts, table, uniq, m)
    return _kernels.drain_table(table, m) if scan else _kernels.drain(uniq[:m], table, True)


def colour_histogram(x) -> tuple[np.ndarray, np.ndarray]:
    """Exact histogram of the colours of a uint8 image (rows, cols, C), C <= 3, in one pass.

    ``x`` may be a list of such images with the same C: their histograms are summed in the same
    reduction (one palette across several images).

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
        parts += [dask.delayed(_block_hist, pure=True, nout=2)(b) for b in arr.to_delayed().ravel().tolist()]
    nbins = _nbins(c)
    merge = dask.delayed(lambda ps: _merge_hists(ps, nbins), pure=True)
    # First level: groups of MERGE_FAN_IN chunks' parts (few colours each) merged in parallel.
    # Above it the parts share most of their colours, so a tree would hold fan-in parts almost
    # as big as the result at once; a fold instead adds them into one running histogram,
    # FOLD_IN at a time. Integer counts: the same result for any shape of the reduction.
    # The chunks' parts come unsorted and every merge sorts, so the root is always a merge.
    firsts = [merge(parts[i:i + MERGE_FAN_IN]) for i in range(0, len(parts), MERGE_FAN_IN)]
    root = firsts[0]
    for i in range(1, len(firsts), FOLD_IN):
        root = merge([root, *firsts[i:i + FOLD_IN]])
    (hist,) = dask.compute(root)
    codes, counts = hist
    return codes_to_colours(codes, c), counts


def codes_to_colours(codes: np.ndarray, channels: int) -> np.ndarray:
    """Unpack uint32 colour codes into an (M, C) uint8 array."""
    from . import _kernels

    return _kernels.unpack_codes(np.ascontiguousarray(codes, dtype=np.uint32), int(channels))


def coarse_histogram(colours: np.ndarray, counts: np.ndarray, bits: int = COARSE_BITS):
    """Merge colours into bins of ``bits`` per channel; each bin is the weighted mean of its colours.

    Returns ``(points (m, C) float64, weights (m,) float64)``, in bin order (one compiled pass,
    :func:`bigquant._kernels.coarse_bins`).
    """
    from . import _kernels

    return _kernels.coarse_bins(np.ascontiguousarray(colours), np.ascontiguousarray(counts), int(bits))


def sample_from_histogram(colours: np.ndarray, counts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A reproducible sample of ``n`` pixels drawn from the histogram (with replacement).

    Pixel ``j`` of the ``sum(counts)`` is drawn uniformly and mapped to its colour through the
    cumulative counts: integers throughout (``Generator.choice`` with probabilities checks and
    normalises them in float, 4x slower on a million colours).
    """
    rng = np.random.default_rng(seed)
    cum = np.cumsum(counts, dtype=np.int64)
    pixels = np.sort(rng.integers(0, int(cum[-1]), size=n))
    return colours[np.searchsorted(cum, pixels, side="right")]


def _threads() -> int:
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _sliced(n: int) -> tuple[list[tuple[int, int]], ThreadPoolExecutor]:
    """Fixed slices of ``HAMERLY_SLICE`` points over ``n`` (so results never depend on the number
    of threads) and a thread pool sized for them."""
    slices = [(s, min(n, s + HAMERLY_SLICE)) for s in range(0, n, HAMERLY_SLICE)]
    return slices, ThreadPoolExecutor(max_workers=max(1, min(_threads(), len(slices))))


def lloyd_in_memory(colours: np.ndarray, counts: np.ndarray, init: np.ndarray, *, max_iter: int,
                    tol_abs: float, inertia_rtol: float = 0.0, sample: np.ndarray | None = None,
                    callback=None) -> LloydResult:
    """Weighted Lloyd's on in-memory points with Hamerly's bounds (:func:`_kernels.hamerly_step`).

    Exact Lloyd's k-means (the same assignments and updates as :func:`bigquant.kmeans.lloyd`),
    but after the first steps almost every point is skipped by its bounds, so the long tail of
    small updates costs little. The cluster sums are carried from step to step and only the
    points that change cluster update them; with integer points and weights (the exact
    histogram) every sum is an integer and exact, so the centroids are those of recomputed
    sums, bit for bit. The inertia of each step comes from the carried sums (within rounding of
    the direct sum). The points are split in fixed slices processed on threads (the kernel
    releases the GIL) and their changes added in slice order, so the result does not depend on
    the number of threads.
    """
    from . import _kernels

    n = len(colours)
    k, c = np.shape(init)
    # The per-point state is what the fit holds for every distinct colour (millions), so it is
    # narrow: integer pixel counts stay integers (exact as float64 where the kernel multiplies),
    # labels are uint8 up to 256 clusters, and the bounds float32, rounded outwards by the
    # kernel (16 bytes a colour with the colours themselves, against 31 with int64 counts, int32
    # labels and float64 bounds).
    w = np.ascontiguousarray(counts)
    x = np.ascontiguousarray(colours)
    assign = np.zeros(n, dtype=np.uint8 if k <= 256 else np.int32)
    upper = np.zeros(n, dtype=np.float32)
    lower = np.zeros(n, dtype=np.float32)
    slices, pool = _sliced(n)
    totals = np.zeros((k, c + 2))  # per cluster: sum of w x, of w, of w |x|^2 (carried)

    with pool:

        def step(centroids: np.ndarray, shift: np.ndarray, first: bool) -> np.ndarray:
            cen = np.ascontiguousarray(centroids)
            if k <= RING_MAX_K:
                sqd = _kernels.centroid_sq_distances(cen)
                order = np.argsort(sqd, axis=1)  # each centroid's neighbours, itself first, nearest next
                ring = _kernels.rings(sqd, order)
                half_sep = 0.5 * ring[:, 1] if k > 1 else np.full(1, np.inf)
            else:  # K x K tables would outgrow the memory budget: search every centroid
                order, ring = np.zeros((k, 1), dtype=np.int64), np.zeros((k, 1))
                half_sep = _kernels.half_separations(cen)
            parts = pool.map(lambda ab: _kernels.hamerly_step(
                x[ab[0]:ab[1]], w[ab[0]:ab[1]], cen, shift, half_sep, order, ring, assign[ab[0]:ab[1]],
                upper[ab[0]:ab[1]], lower[ab[0]:ab[1]], first), slices)
            for p in parts:
                totals[...] += p
            # the (K + 1, C + 2) partial of lloyd_loop; inertia from the carried sums:
            # sum w |x - m|^2 = sum w |x|^2 - 2 m . sum w x + |m|^2 sum w
            out = np.zeros((k + 1, c + 2))
            out[:k, :c + 1] = totals[:, :c + 1]
            sse = totals[:, c + 1] - 2 * (cen * totals[:, :c]).sum(1) + (cen * cen).sum(1) * totals[:, c]
            out[:k, c + 1] = np.maximum(sse, 0.0)
            return out

        return lloyd_loop(step, init, max_iter=max_iter, tol_abs=tol_abs, inertia_rtol=inertia_rtol, sample=sample,
                          callback=callback)


def fit(colours: np.ndarray, counts: np.ndarray, init: np.ndarray, *, max_iter: int, tol_abs: float,
        sample: np.ndarray, inertia_rtol: float = 0.0, coarse: bool = True, callback=None) -> LloydResult:
    """Weighted Lloyd's k-means on a colour histogram, warm-started on coarser versions of it.

    Lloyd's iterations converge slowly near the end, and each one touches every distinct colour
    (millions on a large photograph). The coarse stages run the same iterations on the colours
    merged into bins of 5, then 6, then 7 bits per channel (each bin at the weighted mean of
    its colours), each from where the previous stopped and to 10x the shift tolerance, so the
    exact stage starts close to its optimum. Every stage has the same ``inertia_rtol`` (see
    :func:`bigquant.kmeans.lloyd_loop`): at 10x it stopped the 7-bit stage of a 0.25-gigapixel
    mosaic after 24 steps instead of 81, and the exact stage then needed 83 steps instead of 19.
    Measured on a 1-gigapixel photo mosaic (4.35M colours, K=32) the cascade took 2.4 s against
    3.9 s with a single 5-bit stage, and ended at a lower inertia. A level is skipped when it would not have at most half as many points as the next,
    or when it has fewer than 32 occupied bins per cluster: on the bundled 0.27 Mpx photographs
    at K=256 a 5-bit level (1-5K bins) led to a worse optimum (flower 38.49 dB against 38.54
    without it, mean of seeds 0-2; K=16 and 64 unchanged).
    With ``coarse=False`` the exact stage starts at ``init`` (used to check the path against the
    pixel-level engine from the same initial centroids).
    """
    start = np.asarray(init, dtype=np.float64)
    coarse_iters = 0
    if coarse and len(colours) > 4 * len(start):
        from . import _kernels

        x = np.ascontiguousarray(colours)
        sizes = [_kernels.count_bins(x, bits) for bits in COARSE_LEVELS] + [len(colours)]
        for i, bits in enumerate(COARSE_LEVELS):
            if sizes[i] > sizes[i + 1] // 2 or sizes[i] < COARSE_MIN_BINS_PER_CLUSTER * len(start):
                continue
            cpts, cw = coarse_histogram(x, counts, bits)
            cres = lloyd_in_memory(cpts, cw, start, max_iter=max_iter, tol_abs=COARSE_TOL_FACTOR * tol_abs,
                                   inertia_rtol=inertia_rtol, sample=sample)
            start, coarse_iters = cres.centroids, coarse_iters + cres.n_iter
    res = lloyd_in_memory(colours, counts, start, max_iter=max_iter, tol_abs=tol_abs, inertia_rtol=inertia_rtol,
                          sample=sample, callback=callback)
    res.coarse_iterations = coarse_iters  # type: ignore[attr-defined]
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
    from . import _kernels

    k, c = codebook.shape
    dtype = np.uint8 if k <= 256 else np.uint16
    n = len(colours)
    labels = np.empty(n, dtype=dtype)
    sq_err = np.empty(n, dtype=np.float64)
    cb = np.ascontiguousarray(codebook, dtype=np.float64)
    x = np.ascontiguousarray(colours)
    slices, pool = _sliced(n)
    with pool:
        list(pool.map(lambda ab: _kernels.nearest_sq_dist(x[ab[0]:ab[1]], cb, sq_err[ab[0]:ab[1]],
                                                          labels[ab[0]:ab[1]]), slices))
    lut = np.zeros(_nbins(c), dtype=dtype)
    lut[_kernels.colour_codes(x)] = labels
    return lut, sq_err


def weighted_sse(sq_err: np.ndarray, counts: np.ndarray) -> float:
    """The sum of squared errors over the pixels, ``sum(sq_err * counts)``, without an array of
    the products (einsum casts the counts in buffers)."""
    return float(np.einsum("i,i->", sq_err, counts))


def full_label_table(codebook: np.ndarray, channels: int) -> np.ndarray:
    """Colour-code -> label table over every possible colour (for a fixed codebook).

    Labelling all ``2**(8C)`` colours once is cheaper than labelling each pixel against K
    centroids when the image has more pixels than there are colours. Computed in parallel
    chunks of the colour space.
    """
    k = codebook.shape[0]
    dtype = np.uint8 if k <= 256 else np.uint16
    nbins = _nbins(channels)
    cb = np.ascontiguousarray(codebook, dtype=np.float64)
    cbd = dask.delayed(cb, pure=True)

    def block(codes, cb):
        from . import _kernels
        labels = np.empty(len(codes), dtype=dtype)
        _kernels.assign_labels(codes_to_colours(codes, channels), cb, labels)
        return labels

    codes = da.arange(nbins, dtype=np.uint32, chunks=1 << 20)
    (lut,) = dask.compute(da.map_blocks(block, codes, cbd, dtype=dtype))
    return lut


def label_block(block: np.ndarray, lut: np.ndarray, codebook: np.ndarray,
                with_error: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Label one uint8 chunk (rows, cols, C) through ``lut``.

    Returns ``(labels (rows, cols), stats (K + 3,))`` in the layout of
    :func:`bigquant.kmeans.label_block`: pixels per label, the sum of squared errors against
    ``codebook`` (K, C) (0 unless ``with_error``), and the data range.
    """
    from . import _kernels

    flat = block.reshape(-1, block.shape[-1])
    labels = np.empty(len(flat), dtype=lut.dtype)
    stats = _kernels.lut_labels(flat, lut, np.ascontiguousarray(codebook, dtype=np.float64), labels,
                                with_error)
    return labels.reshape(block.shape[:-1]), stats
