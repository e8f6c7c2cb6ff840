"""Compiled per-block loops (numba, GIL released, cached on disk).

Every kernel works on one chunk of pixels flattened to ``(n, C)`` and never builds an
``n x K`` temporary: each pixel is assigned to its nearest centroid and accumulated in the same
loop. Distances use ``|c|^2 - 2 x.c`` to choose the centroid (3 multiply-adds per channel and
centroid), then the exact ``|x - c|^2`` of the chosen one for the inertia, so the inertia does not
suffer from the cancellation of the expanded form.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")


@njit(**_JIT)
def _sq_norms(centroids):  # pragma: no cover - compiled
    """|c|^2 of every centroid (K,)."""
    k, c = centroids.shape
    cn = np.empty(k, dtype=np.float64)
    for j in range(k):
        s = 0.0
        for ch in range(c):
            s += centroids[j, ch] * centroids[j, ch]
        cn[j] = s
    return cn


@njit(**_JIT)
def _nearest(row, centroids, cn):  # pragma: no cover - compiled
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


@njit(**_JIT)
def lloyd_partials(x, w, centroids):  # pragma: no cover - compiled
    """Assign and accumulate one block.

    Parameters
    ----------
    x : ndarray of shape (n, C), any real dtype
        Pixels (or distinct colours) of one block.
    w : ndarray of shape (n,) or (0,), float64
        Weight of each row (pixel counts of distinct colours); empty means all ones.
    centroids : ndarray of shape (K, C), float64

    Returns
    -------
    partial : ndarray of shape (K + 1, C + 2), float64
        Rows 0..K-1: per-cluster sums of the members (C columns), their total weight and their
        inertia (sum of squared distances). Row K: ``[non-finite rows seen, 0, ...]``; rows that
        hold NaN or inf are skipped and counted there.
    """
    n, c = x.shape
    k = centroids.shape[0]
    out = np.zeros((k + 1, c + 2), dtype=np.float64)
    cn = _sq_norms(centroids)
    weighted = w.shape[0] > 0
    row = np.empty(c, dtype=np.float64)
    for i in range(n):
        finite = True
        for ch in range(c):
            v = np.float64(x[i, ch])
            row[ch] = v
            if not np.isfinite(v):
                finite = False
        if not finite:
            out[k, 0] += 1.0
            continue
        best = _nearest(row, centroids, cn)
        wi = w[i] if weighted else 1.0
        err = 0.0
        for ch in range(c):
            out[best, ch] += wi * row[ch]
            diff = row[ch] - centroids[best, ch]
            err += diff * diff
        out[best, c] += wi
        out[best, c + 1] += wi * err
    return out


@njit(**_JIT)
def assign_labels(x, centroids, labels):  # pragma: no cover - compiled
    """Write the index of the nearest centroid of every row of ``x`` into ``labels``.

    Parameters
    ----------
    x : ndarray of shape (n, C), any real dtype
    centroids : ndarray of shape (K, C), float64
    labels : ndarray of shape (n,), uint8 or uint16 (written)

    Returns
    -------
    stats : ndarray of shape (K + 3,), float64
        Members per label (K), the sum of squared errors against the centroids, and the
        minimum and maximum value seen (the data range, for PSNR of float images).
    """
    n, c = x.shape
    k = centroids.shape[0]
    stats = np.zeros(k + 3, dtype=np.float64)
    stats[k + 1] = np.inf
    stats[k + 2] = -np.inf
    cn = _sq_norms(centroids)
    row = np.empty(c, dtype=np.float64)
    for i in range(n):
        for ch in range(c):
            v = np.float64(x[i, ch])
            row[ch] = v
            if v < stats[k + 1]:
                stats[k + 1] = v
            if v > stats[k + 2]:
                stats[k + 2] = v
        best = _nearest(row, centroids, cn)
        labels[i] = best
        err = 0.0
        for ch in range(c):
            diff = row[ch] - centroids[best, ch]
            err += diff * diff
        stats[best] += 1.0
        stats[k] += err
    return stats


@njit(**_JIT)
def colour_codes(x):  # pragma: no cover - compiled
    """Pack uint8 pixels of shape (n, C), C <= 3, into uint32 codes ``c0 << 16 | c1 << 8 | c2``."""
    n, c = x.shape
    codes = np.empty(n, dtype=np.uint32)
    for i in range(n):
        v = np.uint32(0)
        for ch in range(c):
            v = (v << np.uint32(8)) | np.uint32(x[i, ch])
        codes[i] = v
    return codes


@njit(**_JIT)
def unpack_codes(codes, channels):  # pragma: no cover - compiled
    """The inverse of :func:`colour_codes`: uint32 codes (m,) to uint8 colours (m, channels)."""
    m = codes.shape[0]
    out = np.empty((m, channels), dtype=np.uint8)
    for i in range(m):
        v = codes[i]
        for ch in range(channels - 1, -1, -1):
            out[i, ch] = np.uint8(v & np.uint32(0xFF))
            v = v >> np.uint32(8)
    return out


@njit(**_JIT)
def drain(uniq, table, sort):  # pragma: no cover - compiled
    """The distinct codes ``uniq`` (sorted if ``sort``), with their totals from ``table``, which
    is re-zeroed.

    Sorting many codes costs more than reading the whole table in order: past one code in 16
    table entries the sorted codes come from a scan of the table instead.
    """
    m = len(uniq)
    if sort and m * 16 > len(table):
        return drain_table(table, m)
    out_counts = np.empty(m, dtype=table.dtype)  # int32 tables give int32 parts: a third smaller
    # a copy either way: ``uniq`` is usually a view of a buffer as long as the chunk's pixels,
    # which a returned view would keep alive as long as the result
    out_codes = np.sort(uniq) if sort else uniq.copy()
    for j in range(m):
        code = out_codes[j]
        out_counts[j] = table[code]
        table[code] = 0
    return out_codes, out_counts


@njit(**_JIT)
def drain_table(table, m):  # pragma: no cover - compiled
    """The ``m`` codes with a non-zero total in ``table``, sorted, with their totals, read by a
    scan of the whole table, which is re-zeroed (no list of the codes needed)."""
    out_codes = np.empty(m, dtype=np.uint32)
    out_counts = np.empty(m, dtype=table.dtype)  # int32 tables give int32 parts: a third smaller
    j = 0
    for code in range(len(table)):
        if table[code] != 0:
            out_codes[j] = code
            out_counts[j] = table[code]
            table[code] = 0
            j += 1
    return out_codes, out_counts


@njit(**_JIT)
def insert_codes(codes, counts, table, uniq, m):  # pragma: no cover - compiled
    """Add ``counts`` (or one each, if empty) per code into ``table``; codes seen for the first
    time go to ``uniq[m:]`` (or are only counted, if ``uniq`` is empty: for
    :func:`drain_table`). Returns the new ``m``.

    ``table`` is an all-zero int32 or int64 scratch array (wide enough for the totals) of at
    least ``max(codes) + 1`` entries; after
    the inserts, :func:`drain` reads the totals out and leaves it all-zero again, so one table
    serves many calls (clearing only the entries that were touched keeps the cost proportional
    to the codes, not to the table's size).
    """
    weighted = counts.shape[0] > 0
    listed = uniq.shape[0] > 0
    for i in range(codes.shape[0]):
        c = codes[i]
        if table[c] == 0:
            if listed:
                uniq[m] = c
            m += 1
        table[c] += counts[i] if weighted else 1
    return m


@njit(**_JIT)
def block_histogram(x, table):  # pragma: no cover - compiled
    """:func:`colour_codes`, :func:`insert_codes` and :func:`drain` in one pass over uint8 pixels
    (n, C).

    Returns ``(codes uint32, counts)`` (counts of the table's dtype) in order of first appearance (the merges sort; a
    sort per chunk would cost half the kernel's time); ``table`` as for :func:`insert_codes`
    (all zero before and after).
    """
    n, c = x.shape
    uniq = np.empty(n, dtype=np.uint32)
    m = 0
    for i in range(n):
        v = np.uint32(0)
        for ch in range(c):
            v = (v << np.uint32(8)) | np.uint32(x[i, ch])
        if table[v] == 0:
            uniq[m] = v
            m += 1
        table[v] += 1
    return drain(uniq[:m], table, False)


@njit(**_JIT)
def lut_labels(x, lut, codebook, labels, with_error):  # pragma: no cover - compiled
    """Label uint8 pixels (n, C) through a colour-code -> label table.

    Returns the stats of :func:`assign_labels`: members per label (K), the sum of squared errors
    against ``codebook`` (K, C) float64 (left 0 unless ``with_error``: the histogram path knows
    it exactly already), and the minimum and maximum value seen.
    """
    n, c = x.shape
    k = codebook.shape[0]
    stats = np.zeros(k + 3, dtype=np.float64)
    lo = np.uint8(255)
    hi = np.uint8(0)
    err = 0.0
    for i in range(n):
        v = np.uint32(0)
        for ch in range(c):
            p = x[i, ch]
            if p < lo:
                lo = p
            if p > hi:
                hi = p
            v = (v << np.uint32(8)) | np.uint32(p)
        lab = lut[v]
        labels[i] = lab
        stats[lab] += 1.0
        if with_error:
            for ch in range(c):
                diff = np.float64(x[i, ch]) - codebook[lab, ch]
                err += diff * diff
    stats[k] = err
    stats[k + 1] = np.float64(lo)
    stats[k + 2] = np.float64(hi)
    return stats


@njit(inline="always", **_JIT)
def _pair_sq_dist(centroids, a, b):  # pragma: no cover - compiled
    s = 0.0
    for ch in range(centroids.shape[1]):
        t = centroids[a, ch] - centroids[b, ch]
        s += t * t
    return s


@njit(**_JIT)
def centroid_sq_distances(centroids):  # pragma: no cover - compiled
    """Squared distances between the centroids (K, K), with -1 on the diagonal, so that sorting
    a row puts the centroid itself first (even beside a twin at distance 0)."""
    k = centroids.shape[0]
    d = np.empty((k, k), dtype=np.float64)
    for a in range(k):
        for b in range(k):
            d[a, b] = _pair_sq_dist(centroids, a, b)
        d[a, a] = -1.0
    return d


@njit(**_JIT)
def half_separations(centroids):  # pragma: no cover - compiled
    """Half the distance from each centroid to its nearest other one (inf for K = 1), in O(K)
    memory."""
    k = centroids.shape[0]
    out = np.full(k, np.inf)
    for a in range(k):
        best = np.inf
        for b in range(k):
            if b != a:
                best = min(best, _pair_sq_dist(centroids, a, b))
        out[a] = 0.5 * np.sqrt(best)
    return out


@njit(**_JIT)
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
_UP = 1.0 + 2.0**-20
_DOWN = 1.0 - 2.0**-20


@njit(**_JIT)
def hamerly_step(x, w, centroids, shift, half_sep, order, ring, assign, upper, lower,
                 first):  # pragma: no cover - compiled
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
        every centroid.
    assign : ndarray of shape (n,), uint8 or int32; upper, lower : ndarray of shape (n,)
        The per-point state, updated in place (initialised when ``first``). The bounds may be
        float32: every bound is stored scaled outwards by 2**-20 (upper up, lower down, a
        negative lower bound as 0), which float32's rounding cannot undo, so they stay bounds.

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
    max1 = 0.0
    max2 = 0.0
    arg1 = -1
    if not first:
        for j in range(k):
            if shift[j] > max1:
                max2 = max1
                max1 = shift[j]
                arg1 = j
            elif shift[j] > max2:
                max2 = shift[j]
    row = np.empty(c, dtype=np.float64)
    ringed = order.shape[1] == k
    for i in range(n):
        a = -1
        if not first:
            a = assign[i]
            u = (upper[i] + shift[a]) * _UP
            lo = lower[i] - (max2 if a == arg1 else max1)
            lo = lo * _DOWN if lo > 0.0 else 0.0
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
                upper[i] = np.sqrt(dsq) * _UP
                continue
            # the others, nearest to ``a`` first, while they can still be among the two nearest
            da = np.sqrt(dsq)
            b1 = a
            d1 = dsq
            d2 = np.inf
            reach = np.inf
            for r in range(1, k):
                if ringed:
                    if ring[a, r] - da > reach:
                        break
                    j = order[a, r]
                else:  # every other centroid, in index order
                    j = r - 1 if r - 1 < a else r
                d = 0.0
                for ch in range(c):
                    diff = row[ch] - centroids[j, ch]
                    d += diff * diff
                if d < d1 or (d == d1 and j < b1):
                    d2 = d1
                    d1 = d
                    b1 = j
                    reach = np.sqrt(d2) * (1.0 + 1e-9) + 1e-9
                elif d < d2:
                    d2 = d
                    reach = np.sqrt(d2) * (1.0 + 1e-9) + 1e-9
        else:
            for ch in range(c):
                row[ch] = np.float64(x[i, ch])
            b1 = 0
            d1 = np.inf
            d2 = np.inf
            for j in range(k):
                d = 0.0
                for ch in range(c):
                    diff = row[ch] - centroids[j, ch]
                    d += diff * diff
                if d < d1:
                    d2 = d1
                    d1 = d
                    b1 = j
                elif d < d2:
                    d2 = d
        upper[i] = np.sqrt(d1) * _UP
        lower[i] = np.sqrt(d2) * _DOWN
        if b1 == a:
            continue
        assign[i] = b1
        wi = w[i]
        q = 0.0
        for ch in range(c):
            q += row[ch] * row[ch]
        for ch in range(c):
            out[b1, ch] += wi * row[ch]
        out[b1, c] += wi
        out[b1, c + 1] += wi * q
        if a >= 0:
            for ch in range(c):
                out[a, ch] -= wi * row[ch]
            out[a, c] -= wi
            out[a, c + 1] -= wi * q
    return out


@njit(**_JIT)
def sq_dist_to(x, point, out):  # pragma: no cover - compiled
    """``out[i] = |x[i] - point|^2`` for every row of ``x`` (n, C) (float64)."""
    n, c = x.shape
    for i in range(n):
        s = 0.0
        for ch in range(c):
            d = x[i, ch] - point[ch]
            s += d * d
        out[i] = s


@njit(**_JIT)
def kpp_best_candidate(x, w, closest, candidates):  # pragma: no cover - compiled
    """One greedy k-means++ step: of the ``candidates`` (row indices of ``x``), the one whose
    addition leaves the smallest potential ``sum w_i min(closest_i, |x_i - x_cand|^2)``.

    Updates ``closest`` (n,) in place for the chosen one and returns ``(position in candidates,
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


@njit(**_JIT)
def nearest_sq_dist(x, centroids, out, labels):  # pragma: no cover - compiled
    """``out[i]`` = squared distance of row ``x[i]`` (n, C) to its nearest centroid (K, C);
    that centroid's index goes to ``labels[i]`` unless ``labels`` is empty."""
    n, c = x.shape
    cn = _sq_norms(centroids)
    row = np.empty(c, dtype=np.float64)
    with_labels = labels.shape[0] > 0
    for i in range(n):
        for ch in range(c):
            row[ch] = np.float64(x[i, ch])
        j = _nearest(row, centroids, cn)
        s = 0.0
        for ch in range(c):
            d = row[ch] - centroids[j, ch]
            s += d * d
        out[i] = s
        if with_labels:
            labels[i] = j


@njit(**_JIT)
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


@njit(**_JIT)
def coarse_bins(x, counts, bits):  # pragma: no cover - compiled
    """Merge uint8 colours (n, C) with their ``counts`` into bins of ``bits`` per channel.

    Returns ``(points (m, C), weights (m,))`` of the occupied bins in bin order, each point the
    weighted mean of its colours. The sums run in the order of the colours, as
    ``np.bincount(key, weights)`` does, in one pass instead of one per channel.
    """
    n, c = x.shape
    shift = 8 - bits
    nb = 1 << (bits * c)
    wsum = np.zeros(nb, dtype=np.float64)
    ssum = np.zeros((nb, c), dtype=np.float64)
    for i in range(n):
        key = 0
        for ch in range(c):
            key = (key << bits) | (np.int64(x[i, ch]) >> shift)
        wi = np.float64(counts[i])
        wsum[key] += wi
        for ch in range(c):
            ssum[key, ch] += np.float64(x[i, ch]) * wi
    m = 0
    for b in range(nb):
        if wsum[b] != 0.0:
            m += 1
    pts = np.empty((m, c), dtype=np.float64)
    wts = np.empty(m, dtype=np.float64)
    j = 0
    for b in range(nb):
        if wsum[b] != 0.0:
            wts[j] = wsum[b]
            for ch in range(c):
                pts[j, ch] = ssum[b, ch] / wsum[b]
            j += 1
    return pts, wts


@njit(**_JIT)
def count_bins(x, bits):  # pragma: no cover - compiled
    """How many bins of ``bits`` per channel the uint8 colours (n, C) occupy."""
    n, c = x.shape
    shift = 8 - bits
    seen = np.zeros(1 << (bits * c), dtype=np.uint8)
    m = 0
    for i in range(n):
        key = 0
        for ch in range(c):
            key = (key << bits) | (np.int64(x[i, ch]) >> shift)
        if seen[key] == 0:
            seen[key] = 1
            m += 1
    return m


def warm_up(without_blas: bool = False) -> None:
    """Load numba's compiler machinery and a first kernel from the cache.

    A process's first call of any compiled function costs about 0.25 s of numba set-up (its
    typing and lowering registries), whatever the function, after 0.1 s of importing numba.
    :func:`bigquant.io.read_image` imports this module and runs this on a thread while a PNG
    or JPEG decodes (the decoders release the GIL), so a one-shot ``bigquant compress`` does
    not pay for either after the decode.

    With ``without_blas`` (the ``bigquant`` command's own process only), ``scipy.linalg`` is
    held out while numba sets up: numba imports it (0.2 s) only to find out whether ``np.dot``
    can be compiled, which no kernel here uses. Anything that imports it afterwards gets it.
    """
    import sys

    held = without_blas and "scipy.linalg" not in sys.modules
    if held:
        sys.modules["scipy.linalg"] = None  # type: ignore[assignment]
    try:
        colour_codes(np.zeros((1, 3), dtype=np.uint8))
    finally:
        if held and sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]
    _load_histogram_path()


def _load_histogram_path() -> None:
    """Load the kernels of the uint8 histogram path from the cache (about 4 ms each), with the
    argument types the real calls use, so that they are loaded before the decode ends."""
    x = np.zeros((4, 3), dtype=np.uint8)
    f = np.zeros((4, 3))
    cen = np.zeros((2, 3))
    table = np.zeros(256, dtype=np.int32)
    counts = np.ones(4, dtype=np.int32)
    codes, parts = block_histogram(x, table)
    m = insert_codes(codes, parts, table, np.zeros(4, dtype=np.uint32), 0)
    unpack_codes(drain(np.zeros(4, dtype=np.uint32)[:m], table, True)[0], 3)
    m = insert_codes(codes, parts, table, np.zeros(0, dtype=np.uint32), 0)
    drain_table(table, m)
    coarse_bins(x, counts, 5)
    count_bins(x, 5)
    weighted_moments(x, counts)
    sq_dist_to(f, f[0], np.zeros(4))
    kpp_best_candidate(f, np.ones(4), np.zeros(4), np.zeros(1, dtype=np.int64))
    sqd = centroid_sq_distances(cen)
    rings(sqd, np.argsort(sqd, axis=1))
    for pts, wts in ((f, np.ones(4)), (x, counts)):
        hamerly_step(pts, wts, cen, np.zeros(2), np.ones(2), np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2)),
                     np.zeros(4, dtype=np.uint8),
                     np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32), True)
    nearest_sq_dist(x, cen, np.zeros(4), np.zeros(4, dtype=np.uint8))
    lut_labels(x, np.zeros(1, dtype=np.uint8), cen, np.zeros(4, dtype=np.uint8), False)
