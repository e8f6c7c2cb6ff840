"""Chunk shapes from a memory budget and the source's tiles: pure arithmetic, no I/O.

Also the memory budget's units both ways: :func:`parse_memory_limit` reads ``"2GiB"`` and
:func:`format_bytes` writes sizes in the same units.

The budget is for the whole job on one machine. Each worker thread holds a few copies of a
chunk at once (the decoded input, the labels, temporaries of the kernels), so a chunk gets
``budget / (threads * WORKING_COPIES)`` bytes of input at most.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from dask.utils import parse_bytes

from .errors import ParameterError

#: Default memory budget of a job (``--memory-limit``).
DEFAULT_MEMORY_LIMIT = "1GiB"
#: How many chunk-sized buffers a thread may hold at once (input, labels, codes, temporaries).
WORKING_COPIES = 6
#: Bytes of per-pixel working memory beyond the input itself (labels, colour codes, float row).
EXTRA_BYTES_PER_PIXEL = 8
#: Chunks are never smaller than this many pixels on a side unless the image or tile is.
MIN_SIDE = 256
#: Nor larger than this, so a gigapixel image still has enough chunks for every thread.
MAX_SIDE = 8192
#: Side of the small regions a pass reads when it needs only a few places of a large file (the
#: pixel sample): about a quarter of a megapixel, rounded up to the file's tiles.
WINDOW_SIDE = 512


#: Most chunks one pass over an image may have: each is a few tasks (read, label, statistics,
#: their reduction) that the scheduler tracks, so their number costs time on every pass, and
#: memory (:data:`CHUNK_OVERHEAD_BYTES`) while the graph lives.
MAX_CHUNKS = 4096
#: Memory the graph and the scheduler take for one chunk of a pass (its tasks, keys and results).
CHUNK_OVERHEAD_BYTES = 8 * 1024

#: The least memory budget: 64 MB (a round decimal figure, so that ``64MB`` is accepted; every
#: chunk shape stays at least MIN_SIDE on a side within it).
MIN_MEMORY_LIMIT = 64_000_000
#: The largest: 1 PiB. Beyond any machine, and budgets derived from it stay exact integers.
MAX_MEMORY_LIMIT = 2**50


def parse_memory_limit(value: str | int | float | None) -> int:
    """Return a memory budget in bytes from ``"2GiB"``, ``"500MB"``, an int, or None (default).

    Raises
    ------
    ParameterError
        If the value cannot be parsed (``nan``, ``inf``, ``1e400``), is below
        :data:`MIN_MEMORY_LIMIT` (64 MB) or above :data:`MAX_MEMORY_LIMIT` (1 PiB).
    """
    if value is None:
        value = DEFAULT_MEMORY_LIMIT
    try:
        # int() of inf (``1e400`` parses to it) raises OverflowError, of nan ValueError
        n = int(parse_bytes(value)) if isinstance(value, str) else int(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ParameterError(f"memory limit {value!r} is not a size such as '2GiB' or '500MB'") from exc
    if n > MAX_MEMORY_LIMIT:
        raise ParameterError(
            f"memory limit {value!r} ({n:,} bytes) is above the largest, 1PiB ({MAX_MEMORY_LIMIT:,} bytes)"
        )
    if n < MIN_MEMORY_LIMIT:
        raise ParameterError(
            f"memory limit {value!r} ({n:,} bytes) is below the minimum of 64MB ({MIN_MEMORY_LIMIT:,} bytes)"
        )
    return n


def format_bytes(n: float) -> str:
    """``3221225472 -> '3.0 GiB'``: binary units as ``--memory-limit`` takes them, one decimal
    (whole bytes below 1 KiB), with thousands separators."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover - the loop always returns


def default_threads() -> int:
    """The number of threads Dask's local scheduler uses here."""
    return max(1, os.cpu_count() or 1)


#: Memory a worker process of ``--workers`` takes before it holds any data, out of the job's
#: budget: Python, NumPy, Dask, distributed and zarr are half of it, numba with bigquant's
#: kernels loaded (as the first task of any compress loads them) the other half.
WORKER_PROCESS_BYTES = 256 * 2**20


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container may narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return default_threads()


def check_workers(workers: int, memory_limit: int) -> int:
    """``workers`` if that many worker processes fit both the cores here and the memory budget
    (:data:`WORKER_PROCESS_BYTES` each), else ParameterError saying how many would."""
    cores = available_cores()
    by_memory = max(1, memory_limit // WORKER_PROCESS_BYTES)
    most = min(cores, by_memory)
    if workers > most:
        why = (
            f"{cores} core{'s' if cores != 1 else ''} here"
            if cores <= by_memory
            else f"the memory budget {format_bytes(memory_limit)} holds {by_memory} worker processes of "
            f"{format_bytes(WORKER_PROCESS_BYTES)}"
        )
        raise ParameterError(f"--workers {workers} is more than this machine runs well ({why}); use at most {most}")
    return workers


def chunk_budget_bytes(memory_limit: int, threads: int | None = None) -> int:
    """Bytes of working memory one chunk may use."""
    threads = threads or default_threads()
    return max(1, memory_limit // (threads * WORKING_COPIES))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_to(n: int, step: int) -> int:
    return max(step, (n // step) * step)


def _balanced(n: int, chunk: int, step: int) -> int:
    """The smallest multiple of ``step`` that covers ``n`` in as many chunks as ``chunk`` does.

    A 2880-row image in chunks of 2852 would get one full chunk and one of 28 rows; two chunks of
    1440 keep both threads busy for the same memory.
    """
    parts = _ceil_div(n, chunk)
    return min(n, _ceil_div(_ceil_div(n, parts), step) * step)


def window_chunks(tile: tuple[int, int] | None, chunks: tuple[int, int]) -> tuple[int, int]:
    """The (rows, cols) of the small regions read on their own (:func:`bigquant._dask.windows`):
    whole multiples of ``tile`` from :data:`WINDOW_SIDE` up, never larger than ``chunks``."""
    tr, tc = (max(1, int(t)) for t in tile) if tile else (1, 1)
    return min(chunks[0], _ceil_div(WINDOW_SIDE, tr) * tr), min(chunks[1], _ceil_div(WINDOW_SIDE, tc) * tc)


def choose_chunks(
    shape: tuple[int, int],
    bytes_per_pixel: int,
    memory_limit: int,
    tile: tuple[int, int] | None = None,
    threads: int | None = None,
) -> tuple[int, int]:
    """Choose a (rows, cols) chunk shape for an image of ``shape`` (rows, cols).

    The chunk is square-ish, a whole multiple of ``tile`` (so every source tile is read by one
    task), and holds at most ``chunk_budget_bytes(memory_limit, threads)`` of working memory;
    the chunks along each axis are as even as the tile allows (no thin remainder chunk).
    A chunk never exceeds the image; a tile bigger than the budget is still read whole.

    Parameters
    ----------
    shape : (int, int)
        Image rows and columns.
    bytes_per_pixel : int
        Bytes of one input pixel (itemsize times channels).
    memory_limit : int
        Job memory budget in bytes.
    tile : (int, int), optional
        The source's tile or chunk shape; the result is a multiple of it (or the full extent).
    threads : int, optional
        Worker threads sharing the budget (default: CPU count).
    """
    rows, cols = int(shape[0]), int(shape[1])
    tr, tc = tile if tile else (1, 1)
    tr, tc = max(1, min(int(tr), rows)), max(1, min(int(tc), cols))
    per_pixel = bytes_per_pixel + EXTRA_BYTES_PER_PIXEL
    max_pixels = max(1, chunk_budget_bytes(memory_limit, threads) // per_pixel)
    side = int(math.isqrt(max_pixels))
    side = min(max(side, MIN_SIDE), MAX_SIDE)
    # Whole multiples of the tile; at least one tile.
    cr = min(rows, _round_to(side, tr))
    cc = min(cols, _round_to(side, tc))
    # A short, wide image (or a narrow one) gives the spare budget to the long side.
    if cr == rows and cr * cc < max_pixels:
        cc = min(cols, _round_to(max_pixels // max(cr, 1), tc))
    elif cc == cols and cr * cc < max_pixels:
        cr = min(rows, _round_to(max_pixels // max(cc, 1), tr))
    return _balanced(rows, cr, tr), _balanced(cols, cc, tc)


def resolve_chunks(
    shape: tuple[int, int],
    bytes_per_pixel: int,
    budget: int,
    chunks: Sequence[int] | None,
    tile: tuple[int, int] | None = None,
    threads: int | None = None,
) -> tuple[int, int]:
    """The caller's (rows, cols) chunk shape, checked, or one chosen by :func:`choose_chunks`.

    Raises
    ------
    ParameterError
        ``chunks`` is not a pair of positive integers, or the chunks (given or chosen) are more
        than :func:`max_chunks` allows: a pass over them would spend more time and memory on
        scheduling than on pixels (``--chunks 1,1`` on a 12-megapixel image is 12 million tasks).
    """
    if chunks is None:
        cr, cc = choose_chunks(shape, bytes_per_pixel, budget, tile=tile, threads=threads)
        if chunk_count(shape, (cr, cc)) > max_chunks(budget):
            raise ParameterError(
                _too_many(shape, (cr, cc), budget) + "; " + _enough(shape, bytes_per_pixel, budget, tile, threads)
            )
        return cr, cc
    try:
        cr, cc = (int(c) for c in chunks)
        ok = len(tuple(chunks)) == 2 and cr > 0 and cc > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(f"chunks {chunks!r} is not a (rows, cols) pair of positive integers")
    if chunk_count(shape, (cr, cc)) > max_chunks(budget):
        side = _least_side(shape, max_chunks(budget))
        raise ParameterError(
            f"chunks {cr},{cc}: " + _too_many(shape, (cr, cc), budget) + f"; use chunks of at least {side},{side} "
            "(or leave them out: they then follow from the memory budget)"
        )
    return cr, cc


def chunk_count(shape: Sequence[int], chunks: Sequence[int]) -> int:
    """The number of (rows, cols) ``chunks`` that cover an image of ``shape`` (rows, cols)."""
    return _ceil_div(int(shape[0]), int(chunks[0])) * _ceil_div(int(shape[1]), int(chunks[1]))


def max_chunks(memory_limit: int) -> int:
    """The most chunks a pass over an image may have within ``memory_limit``: :data:`MAX_CHUNKS`,
    or fewer where their scheduling (:data:`CHUNK_OVERHEAD_BYTES` each) would take more than
    half the budget."""
    return max(1, min(MAX_CHUNKS, memory_limit // 2 // CHUNK_OVERHEAD_BYTES))


def _too_many(shape: Sequence[int], chunks: Sequence[int], memory_limit: int) -> str:
    n, most = chunk_count(shape, chunks), max_chunks(memory_limit)
    within = f" within the memory budget {format_bytes(memory_limit)}" if most < MAX_CHUNKS else ""
    return (
        f"the {shape[0]} x {shape[1]} image would be cut into {n:,} chunks of {chunks[0]} x {chunks[1]} "
        f"pixels, more than the {most:,} a pass may have{within} (each chunk costs time and memory on "
        "every pass)"
    )


def _least_side(shape: Sequence[int], limit: int) -> int:
    """The least square chunk side that cuts ``shape`` into at most ``limit`` chunks."""
    side = max(1, math.isqrt(int(shape[0]) * int(shape[1]) // limit))
    while chunk_count(shape, (side, side)) > limit:
        side += max(1, side // 64)
    return side


def _enough(
    shape: Sequence[int], bytes_per_pixel: int, budget: int, tile: tuple[int, int] | None, threads: int | None
) -> str:
    """What to do about an image whose chunks, chosen within ``budget``, are too many: the least
    power-of-two budget above it whose chunks are few enough, if there is one."""
    b = 1 << budget.bit_length()  # the least power of two above the budget
    while b <= MAX_MEMORY_LIMIT:
        rc = choose_chunks((int(shape[0]), int(shape[1])), bytes_per_pixel, b, tile=tile, threads=threads)
        if chunk_count(shape, rc) <= max_chunks(b):
            return "raise --memory-limit to " + format_bytes(b).replace(" ", "").replace(".0", "")
        b *= 2
    return f"no memory budget makes chunks of at most {MAX_SIDE} x {MAX_SIDE} pixels few enough for it"
