"""Kernels of the pixel path's grid coreset: cell codes, per-cell sums, and the fused label pass.

A pixel's cell is its per-channel grid index packed into one int64 (``bits`` per channel); a
cell carries its pixel count, per-channel sums and the sum of squared norms of its pixels, so
merging cells is exact and their means are the cells' centres of mass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .common import JIT, expanded_slack
from .lloyd import none, scan

#: The multiplier of the cell tables' Fibonacci hash (the slot is the product's bits from 17 up).
HASH = -7046029254386353131
#: Cells whose codes differ only in the low bits of the first channel share a hashed run of
#: ``2**RUN_BITS`` slots: neighbouring pixels of a smooth image fall in nearby cells, whose
#: records are then near in memory (15-20 % off the kernel on the uint16 mosaic of benchmarks/).
RUN_BITS = 4


@njit(inline="always", **JIT)
def slot_hash(code):  # pragma: no cover - compiled
    """The hash of a cell's ``code`` (take it modulo the table's size)."""
    run = np.int64((1 << RUN_BITS) - 1)
    return (((code >> np.int64(RUN_BITS)) * np.int64(HASH)) >> np.int64(17) << np.int64(RUN_BITS)) | (code & run)


@njit(**JIT)
def block_cells(x, lo, scale, bits, max_cells):  # pragma: no cover - compiled
    """The occupied cells of one block, in table order, on the finest grid of at most ``bits``
    per channel that holds them in ``max_cells`` cells.

    Parameters
    ----------
    x : ndarray of shape (n, C), any real dtype (IN)
    lo, scale : ndarray of shape (C,), float64 (IN)
        A value ``v`` of channel ``ch`` falls in grid index ``floor((v - lo) * scale)``, clipped
        to ``[0, 2**bits - 1]``.
    bits, max_cells : int

    Returns
    -------
    codes : (m,) int64; counts : (m,) float64; sums : (m, C) float64; sq : (m,) float64
        Each cell's packed code, pixel count, per-channel sum and sum of ``|x|^2``.
    bad : int
        Rows holding NaN or inf, skipped; -1 if even one bit per channel needs more cells
        (then the arrays are empty).
    bits : int
        The grid the cells are on. When the table fills, its cells are merged onto the grid of
        one bit less and the scan goes on: one pass whatever the grid, where starting again
        would read the block once per bit.
    """
    n, c = x.shape
    cap = min(n, max_cells)
    size = 16
    while size < 2 * cap:
        size *= 2
    mask = size - 1
    # the table's slots hold the cells themselves, one record each (count, sums, sum of squares)
    # next to its code: a pixel costs about two cache misses, not one per array
    slot_code = np.full(size, -1, dtype=np.int64)
    acc = np.zeros((size, c + 2), dtype=np.float64)
    row = np.empty(c, dtype=np.float64)
    sc = scale.copy()
    m = 0
    bad = 0
    ftop = np.float64((1 << bits) - 1)
    for i in range(n):
        # one test of |x|^2 finds a non-finite value (rare: then the channels are looked at)
        nn = 0.0
        for ch in range(c):
            v = np.float64(x[i, ch])
            row[ch] = v
            nn += v * v
        if not np.isfinite(nn):
            finite = True
            for ch in range(c):
                if not np.isfinite(row[ch]):
                    finite = False
            if not finite:
                bad += 1
                continue
        while True:  # once, but again after each merge onto a coarser grid
            code = np.int64(0)  # a clipped truncation is the clipped floor, without a branch
            for ch in range(c):
                t = (row[ch] - lo[ch]) * sc[ch]
                t = t if t > 0.0 else 0.0
                t = t if t < ftop else ftop
                code |= np.int64(t) << np.int64(bits * ch)
            h = slot_hash(code)
            s = h & mask
            while slot_code[s] != -1 and slot_code[s] != code:
                s = (s + 1) & mask
            if slot_code[s] != -1 or m < cap:
                break
            if bits == 1:
                e = np.empty(0, dtype=np.int64)
                return e, np.empty(0), np.empty((0, c)), np.empty(0), -1, bits
            m = merge_down(slot_code, acc, bits)
            bits -= 1
            ftop = np.float64((1 << bits) - 1)
            for ch in range(c):
                sc[ch] *= 0.5  # floor(t / 2) = floor(t) >> 1: the merged cells' grid
        if slot_code[s] == -1:
            slot_code[s] = code
            m += 1
        acc[s, 0] += 1.0
        for ch in range(c):
            acc[s, 1 + ch] += row[ch]
        acc[s, c + 1] += nn
    codes = np.empty(m, dtype=np.int64)
    counts = np.empty(m, dtype=np.float64)
    sums = np.empty((m, c), dtype=np.float64)
    sq = np.empty(m, dtype=np.float64)
    j = 0
    for s in range(size):  # in slot order: the same for the same pixels
        if slot_code[s] != -1:
            codes[j] = slot_code[s]
            counts[j] = acc[s, 0]
            for ch in range(c):
                sums[j, ch] = acc[s, 1 + ch]
            sq[j] = acc[s, c + 1]
            j += 1
    return codes, counts, sums, sq, bad, bits


@njit(**JIT)
def merge_down(slot_code, acc, bits):  # pragma: no cover - compiled
    """:func:`block_cells`'s table (IN/OUT) with its cells of ``bits`` per channel merged onto
    the grid of ``bits - 1``, in place, in slot order; returns the number of cells."""
    size = slot_code.shape[0]
    mask = size - 1
    c = acc.shape[1] - 2
    held = np.flatnonzero(slot_code != -1)
    old_codes = coarsen_codes(slot_code[held], c, bits, 1)
    old_acc = acc[held].copy()
    slot_code[:] = -1
    acc[:] = 0.0
    m = 0
    for r in range(held.shape[0]):
        code = old_codes[r]
        h = slot_hash(code)
        s = h & mask
        while slot_code[s] != -1 and slot_code[s] != code:
            s = (s + 1) & mask
        if slot_code[s] == -1:
            slot_code[s] = code
            m += 1
        for f in range(c + 2):
            acc[s, f] += old_acc[r, f]
    return m


@njit(**JIT)
def coarsen_codes(codes, channels, bits, drop):  # pragma: no cover - compiled
    """Codes of ``bits`` per channel (IN) as codes of ``bits - drop`` per channel (a new array)."""
    n = codes.shape[0]
    out = np.empty(n, dtype=np.int64)
    mask = (np.int64(1) << np.int64(bits)) - 1
    nb = bits - drop
    for i in range(n):
        code = codes[i]
        new = np.int64(0)
        for ch in range(channels):
            q = (code >> np.int64(bits * ch)) & mask
            new |= (q >> np.int64(drop)) << np.int64(nb * ch)
        out[i] = new
    return out


@njit(**JIT)
def sum_sorted(codes, order, counts, sums, sq):  # pragma: no cover - compiled
    """Cells listed in ``order`` (sorted by code, IN) summed per code: (codes, counts, sums, sq)."""
    n = order.shape[0]
    c = sums.shape[1]
    oc = np.empty(n, dtype=np.int64)
    on = np.zeros(n, dtype=np.float64)
    osum = np.zeros((n, c), dtype=np.float64)
    osq = np.zeros(n, dtype=np.float64)
    m = -1
    last = np.int64(-1)
    for t in range(n):
        i = order[t]
        if m < 0 or codes[i] != last:
            m += 1
            last = codes[i]
            oc[m] = last
        on[m] += counts[i]
        for ch in range(c):
            osum[m, ch] += sums[i, ch]
        osq[m] += sq[i]
    m += 1
    return oc[:m].copy(), on[:m].copy(), osum[:m].copy(), osq[:m].copy()


@njit(**JIT)
def label_and_sum(x, centroids, labels, table, tlo, tscale, tbits):  # pragma: no cover - compiled
    """Label every row of ``x`` (n, C) with its nearest centroid and accumulate the Lloyd update.

    A row that lies in a labelled cell of ``table`` (:func:`pure_cells`; empty: none) takes the
    cell's label without a search, and its count and sum are left out: they are the coreset's,
    added once for the whole image (:class:`bigquant.coreset.CellLabels`). The other rows are
    searched by :func:`.lloyd.scan`; one beyond the grid that the coreset put in a labelled edge
    cell, and that the search labels otherwise, is moved from that cell's label to its own.
    Either way the label is the full search's, and the squared error is summed for every row.

    Parameters
    ----------
    x : ndarray of shape (n, C), any real dtype (IN)
    centroids : ndarray of shape (K, C), float64 (IN)
    labels : ndarray of shape (n,), uint8 or uint16 (OUT)
    table : ndarray of shape (2**(tbits * C),) or (0,), int16 (IN)
        A row falls in the cell of grid indices ``floor((v - tlo) * tscale)``, packed as the
        coreset's codes (and clipped to the grid, as the coreset clips them).
    tlo, tscale : ndarray of shape (C,), float64 (IN)
    tbits : int

    Returns
    -------
    stats : ndarray of shape (K + 3 + K * C,), float64
        Members per label (K), the sum of squared errors, the minimum and maximum value seen,
        then each cluster's per-channel sum of its members (K x C, row-major); members and sums
        without the rows of labelled cells.
    """
    n = x.shape[0]
    k, c = centroids.shape
    stats = np.zeros(k + 3 + k * c, dtype=np.float64)
    sums = stats[k + 3 :].reshape(k, c)
    _, no_1d, no_2d = none()
    if table.shape[0] == 0:
        scan(x, no_1d, centroids, None, labels, no_1d, no_2d, stats[: k + 3], sums)
        return stats
    miss = np.empty(n, dtype=np.int64)
    owner = np.empty(n, dtype=np.int64)  # the label of the cell the coreset put a missed row in
    m = 0
    lo, hi = np.inf, -np.inf
    sse = 0.0
    top = np.float64(1 << tbits)
    for i in range(n):
        code = np.int64(0)
        inside = True
        finite = True
        for ch in range(c):
            t = (np.float64(x[i, ch]) - tlo[ch]) * tscale[ch]
            if not (t >= 0.0 and t < top):  # beyond the grid, or NaN: clipped as the coreset does
                inside = False
                finite = finite and t - t == 0.0
                t = top - 1.0 if t >= top else 0.0
            code |= np.int64(t) << np.int64(tbits * ch)
        j = table[code]
        if not inside or j < 0:
            miss[m] = i
            owner[m] = j if finite else -1  # the coreset leaves out rows that hold NaN or inf
            m += 1
            continue
        err = 0.0
        for ch in range(c):
            v = np.float64(x[i, ch])
            e = v - centroids[j, ch]
            err += e * e
            lo = min(lo, v)
            hi = max(hi, v)
        labels[i] = j
        sse += err
    stats[k] = sse
    if m:
        rows = np.empty((m, c), dtype=x.dtype)
        for r in range(m):
            for ch in range(c):
                rows[r, ch] = x[miss[r], ch]
        found = np.empty(m, dtype=labels.dtype)
        part = np.zeros(k + 3, dtype=np.float64)
        scan(rows, no_1d, centroids, None, found, no_1d, no_2d, part, sums)
        for r in range(m):
            labels[miss[r]] = found[r]
            j = owner[r]
            if j >= 0:  # counted in its cell's label by the coreset: taken back from there
                stats[j] -= 1.0
                for ch in range(c):
                    sums[j, ch] -= np.float64(rows[r, ch])
        for j in range(k + 1):
            stats[j] += part[j]
        lo = min(lo, part[k + 1])
        hi = max(hi, part[k + 2])
    stats[k + 1] = lo
    stats[k + 2] = hi
    return stats


@njit(**JIT)
def pure_cells(codes, bits, tlo, tscale, centroids, order, gap):  # pragma: no cover - compiled
    """The label table of :func:`label_and_sum`: for each cell of ``codes`` (packed, ``bits`` per
    channel, on the grid ``floor((v - tlo) * tscale)``) the centroid that is nearest to every
    point of the cell, or -1 where the cell's box reaches into another centroid's region.

    ``order``, ``gap``: each centroid's neighbour list, nearest first (:func:`.lloyd.neighbour_lists`;
    where a list ends nearer than a box's reach, every centroid is compared). A cell is
    labelled only if its box, widened by a millionth of a cell for the rounding of
    ``(v - tlo) * tscale``, lies in the region with a margin of four times
    :func:`.common.expanded_slack`'s bound on the rounding of an expanded distance: then every
    pixel that falls in the cell has that centroid as the full search's answer, bit for bit.
    """
    k, c = centroids.shape
    table = np.full(np.int64(1) << np.int64(bits * c), -1, dtype=np.int16)
    cn = np.empty(k)
    for j in range(k):
        cn[j] = 0.0
        for ch in range(c):
            cn[j] += centroids[j, ch] * centroids[j, ch]
    radius, factor = expanded_slack(centroids, cn)
    width = order.shape[1]
    mask = (np.int64(1) << np.int64(bits)) - 1
    a = np.empty(c)
    b = np.empty(c)
    for r in range(codes.shape[0]):
        code = codes[r]
        norm = 0.0
        for ch in range(c):
            q = np.float64((code >> np.int64(bits * ch)) & mask)
            a[ch] = tlo[ch] + (q - 1e-6) / tscale[ch]
            b[ch] = tlo[ch] + (q + 1.0 + 1e-6) / tscale[ch]
            norm += max(a[ch] * a[ch], b[ch] * b[ch])
        best = 0
        bestd = np.inf
        for j in range(k):  # nearest to the box's centre: the only candidate
            d = 0.0
            for ch in range(c):
                t = 0.5 * (a[ch] + b[ch]) - centroids[j, ch]
                d += t * t
            if d < bestd:
                bestd = d
                best = j
        reach = 0.0  # the box's farthest point from the candidate, squared
        for ch in range(c):
            reach += max((a[ch] - centroids[best, ch]) ** 2, (b[ch] - centroids[best, ch]) ** 2)
        margin = 4.0 * factor * (np.sqrt(norm) + radius) ** 2
        # a centroid at least 2 sqrt(reach + margin) from the candidate is farther from every
        # point of the box by more than the margin; the list holds the nearer ones, nearest first
        far = 4.0 * (reach + margin)
        pure = True
        t = 0
        while pure and t < width + k:
            if t < width:
                if gap[best, t] >= far:
                    break
                i = order[best, t]
            elif width == k:
                break  # the list held every centroid
            else:  # the list ended nearer than that: every centroid is compared
                i = t - width
            t += 1
            if i == best:
                continue
            worst = cn[best] - cn[i]  # the box's largest (|c_best|^2 - 2 x.c_best) - (... c_i)
            for ch in range(c):
                g = 2.0 * (centroids[i, ch] - centroids[best, ch])
                worst += max(a[ch] * g, b[ch] * g)
            pure = worst < -margin
        if pure:
            table[code] = best
    return table
