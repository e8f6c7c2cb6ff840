"""Kernels of the exact colour-histogram path: colour codes, count tables, lookup labelling, coarse bins."""

from __future__ import annotations

import numpy as np
from numba import njit

from .common import JIT


@njit(**JIT)
def code_of(x, i, c):  # pragma: no cover - compiled
    """The colour code of pixel ``i`` of uint8 pixels ``x`` (n, ``c``): ``c0 << 16 | c1 << 8 | c2``."""
    if c == 3:
        # spelled out for RGB, the common case: the loop over a run-time C is not unrolled
        return (np.uint32(x[i, 0]) << np.uint32(16)) | (np.uint32(x[i, 1]) << np.uint32(8)) | np.uint32(x[i, 2])
    v = np.uint32(0)
    for ch in range(c):
        v = (v << np.uint32(8)) | np.uint32(x[i, ch])
    return v


@njit(**JIT)
def colour_codes(x):  # pragma: no cover - compiled
    """Pack uint8 pixels of shape (n, C), C <= 3, into uint32 codes ``c0 << 16 | c1 << 8 | c2``."""
    n, c = x.shape
    codes = np.empty(n, dtype=np.uint32)
    for i in range(n):
        codes[i] = code_of(x, i, c)
    return codes


@njit(**JIT)
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


@njit(**JIT)
def drain(uniq, table, sort):  # pragma: no cover - compiled
    """The distinct codes ``uniq`` (sorted if ``sort``), with their totals from ``table``
    (IN/OUT: re-zeroed).

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


@njit(**JIT)
def drain_table(table, m):  # pragma: no cover - compiled
    """The ``m`` codes with a non-zero total in ``table``, sorted, with their totals, read by a
    scan of the whole table (IN/OUT: re-zeroed; no list of the codes needed)."""
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


@njit(**JIT)
def insert_codes(codes, counts, table, uniq, m):  # pragma: no cover - compiled
    """Add ``counts`` (or one each, if empty) per code into ``table`` (IN/OUT); codes seen for
    the first time go to ``uniq[m:]`` (OUT) (or are only counted, if ``uniq`` is empty: for
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


@njit(**JIT)
def block_histogram(x, table):  # pragma: no cover - compiled
    """:func:`colour_codes`, :func:`insert_codes` and :func:`drain` in one pass over uint8 pixels
    (n, C).

    Returns ``(codes uint32, counts)`` (counts of the table's dtype) in order of first appearance (the merges sort; a
    sort per chunk would cost half the kernel's time); ``table`` (IN/OUT) as for :func:`insert_codes`
    (all zero before and after).
    """
    n, c = x.shape
    uniq = np.empty(n, dtype=np.uint32)
    m = 0
    for i in range(n):
        v = code_of(x, i, c)
        if table[v] == 0:
            uniq[m] = v
            m += 1
        table[v] += 1
    return drain(uniq[:m], table, False)


@njit(**JIT)
def lut_labels(x, lut, codebook, labels, with_error):  # pragma: no cover - compiled
    """Label uint8 pixels (n, C) through a colour-code -> label table into ``labels`` (n,) (OUT).

    Returns the first K + 1 stats of :func:`assign_labels` in an array of K + 3: members per
    label (K) and the sum of squared errors against ``codebook`` (K, C) float64 (left 0 unless
    ``with_error``: the histogram path knows it exactly already). The last two, the data range,
    are left to the caller: a separate reduction over the block's bytes is a tenth of the cost
    of one inside this loop.
    """
    n, c = x.shape
    k = codebook.shape[0]
    stats = np.zeros(k + 3, dtype=np.float64)
    if n == 0:
        return stats
    # Counted by runs: neighbouring pixels mostly share a label, and incrementing the same
    # counter pixel after pixel waits on the previous increment every time.
    counts = np.zeros(k, dtype=np.int64)
    prev = lut[code_of(x, 0, c)]
    run = 0
    for i in range(n):
        lab = lut[code_of(x, i, c)]
        labels[i] = lab
        if lab != prev:
            counts[prev] += run
            run = 0
            prev = lab
        run += 1
    counts[prev] += run
    stats[:k] = counts
    if with_error:
        err = 0.0
        for i in range(n):
            lab = labels[i]
            for ch in range(c):
                diff = np.float64(x[i, ch]) - codebook[lab, ch]
                err += diff * diff
        stats[k] = err
    return stats


@njit(**JIT)
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


@njit(**JIT)
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
