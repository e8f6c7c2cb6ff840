"""The store format, version 2 (version 1 still read): names, limits, codecs, the pyramid's rule.

Layout (specified in docs/store-format.md)::

    scan.bq.zarr/                 Zarr v3 group, written last: {"bigquant": {...}} + consolidated metadata
      labels/                     Zarr v3 group: an OME-Zarr (NGFF 0.5) multiscale label image
        0/                        (rows, cols) uint8 if K <= 256 else uint16, zstd with its checksum,
                                  chunked like the job, every chunk written (``label_chunk_files``)
        1/, 2/, ...               each level halves the previous one by its 2 x 2 mode (:func:`mode_2x2`)
      codebook/                   (K, C) in the input's dtype (rounded and clipped for integer inputs)

In version 1 ``labels`` was the full-resolution array itself, without levels.

The metadata (group attribute ``bigquant``) holds at least ``format_version``, ``complete``,
``k``, ``shape`` (rows, cols, C), ``dtype``, ``iterations``, ``converged``, ``inertia``, ``mse``,
``psnr``, ``seed`` and ``source``. A *palette* (``kind`` ``"palette"``) is the same group with a
``codebook`` and no labels. A store written by a newer format version is refused. The limits
here bind the writer and the reader alike (:mod:`.metadata` reads and validates the metadata).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from zarr.codecs import ZstdCodec

from .._objstore import ATTRS as OBJSTORE_ATTRS
from .._objstore import MAX_DOCUMENT_BYTES
from ..params import LABELS_ZSTD_LEVEL, check_labels_level

FORMAT_VERSION = 2
#: The first version whose ``labels`` is a multiscale group (``labels/0``, ``labels/1``, ...).
PYRAMID_VERSION = 2
LABELS = "labels"
CODEBOOK = "codebook"
#: The group attribute holding the metadata; the placeholder root of a write on object storage
#: carries it too (:mod:`bigquant._objstore`), so one name serves both.
ATTRS = OBJSTORE_ATTRS
#: ``kind`` of a palette store: a codebook fitted across images, without labels.
PALETTE = "palette"
#: Largest image a store may claim: guards against allocating from corrupt metadata.
MAX_PIXELS = 1 << 42
#: Largest labels chunk a store may claim (pixels): reading one chunk allocates all of it.
MAX_CHUNK_PIXELS = 1 << 30
#: Largest metadata document read or written (bytes), every ``zarr.json`` of a store: the real
#: ones are a few KiB (the group's, with its consolidated metadata, up to ~1 MiB for K=65536).
MAX_METADATA_BYTES = MAX_DOCUMENT_BYTES
#: Most channels a store may claim.
MAX_CHANNELS = 64
#: Default zstd level of the labels (:data:`bigquant.params.LABELS_ZSTD_LEVEL`).
ZSTD_LEVEL = LABELS_ZSTD_LEVEL


#: The label pyramid ends at the first level whose longer side is at most this: a screen's worth.
SCREEN_SIDE = 2048
#: The label pass writes a level's chunks itself while they keep at least this many rows and
#: columns (smaller chunk files cost more to list than to write); smaller levels are built
#: afterwards from the level above, in chunks of :data:`SMALL_LEVEL_CHUNK`.
MIN_TASK_CHUNK = 128
SMALL_LEVEL_CHUNK = 1024
#: The NGFF version of the labels group's ``ome`` metadata.
NGFF_VERSION = "0.5"
#: Axis (dimension) names of every labels level, as NGFF requires them to match its axes.
LABEL_AXES = ("y", "x")


def level_path(level: int) -> str:
    """The key of pyramid level ``level`` inside the store: ``labels/0``, ``labels/1``, ..."""
    return f"{LABELS}/{int(level)}"


def level_shape(shape: tuple[int, ...], level: int) -> tuple[int, int]:
    """(rows, cols) of level ``level`` of a (rows, cols) image: each halving rounds up."""
    f = 1 << level
    return -(-int(shape[0]) // f), -(-int(shape[1]) // f)


def pyramid_levels(shape: tuple[int, ...], screen_side: int | None = None) -> int:
    """How many levels (full resolution included) a (rows, cols) image's label pyramid has:
    down to the first whose longer side is at most ``screen_side`` (default :data:`SCREEN_SIDE`)."""
    side = SCREEN_SIDE if screen_side is None else int(screen_side)
    n = 1
    while max(level_shape(shape, n - 1)) > side:
        n += 1
    return n


def level_chunks(shape: tuple[int, ...], chunks: tuple[int, ...], levels: int) -> tuple[list[tuple[int, int]], int]:
    """Chunk shapes of every level, and how many levels the label pass writes itself.

    Level ``l`` is written by the label pass's tasks (each task its own chunk's part, whole
    chunks of ``chunks / 2**l``) while, along every axis cut into several chunks, the chunk side
    divides by ``2**l`` (so every task's part starts on a 2 x 2 block) and stays at least
    :data:`MIN_TASK_CHUNK`. The levels after those are built from the level above them, in
    chunks of :data:`SMALL_LEVEL_CHUNK` (at most the level's size).
    """
    counts = [-(-int(n) // int(c)) for n, c in zip(shape[:2], chunks)]
    out = [(int(chunks[0]), int(chunks[1]))]
    in_task = 1
    for lv in range(1, levels):
        f = 1 << lv
        fits = all(n == 1 or (c % f == 0 and c // f >= MIN_TASK_CHUNK) for n, c in zip(counts, chunks))
        if not fits:
            break
        out.append((-(-int(chunks[0]) // f), -(-int(chunks[1]) // f)))
        in_task += 1
    for lv in range(in_task, levels):
        rows, cols = level_shape(shape, lv)
        out.append((min(SMALL_LEVEL_CHUNK, rows), min(SMALL_LEVEL_CHUNK, cols)))
    return out, in_task


def mode_2x2(labels: np.ndarray) -> np.ndarray:
    """The next pyramid level of ``labels`` (rows, cols): each 2 x 2 block's most frequent label,
    ties to the smallest; a block cut by an odd edge votes with the labels it has.

    Categorical, never an interpolation: every output label occurs in its block. Returns an
    array of shape (ceil(rows / 2), ceil(cols / 2)) and the same dtype.
    """
    return _compiled_mode()(np.ascontiguousarray(labels))


@functools.cache
def _compiled_mode() -> Any:
    # Compiled, not NumPy: the label pass runs this on every chunk, and the array expression
    # (four strided views, a dozen temporaries) took a quarter of the label pass. numba is
    # imported here, on first use, so that importing bigquant does not load it.
    from numba import njit

    return njit(nogil=True, cache=True)(_mode_2x2)


def _mode_2x2(labels):  # pragma: no cover - compiled
    # branches follow the common case: most blocks of a label image hold one label
    rows, cols = labels.shape
    out = np.empty(((rows + 1) // 2, (cols + 1) // 2), dtype=labels.dtype)
    for i in range(out.shape[0]):
        r0 = 2 * i
        r1 = min(r0 + 1, rows - 1)  # an odd edge repeats its last row: the same winner
        for j in range(out.shape[1]):
            c0 = 2 * j
            c1 = min(c0 + 1, cols - 1)
            a, b, c, d = labels[r0, c0], labels[r0, c1], labels[r1, c0], labels[r1, c1]
            if a == b:  # a twice or more; only c == d can tie with it
                out[i, j] = c if (c == d and c < a) else a
            elif c == d:  # c twice or more, and no other label twice
                out[i, j] = c
            else:  # a != b, c != d: a and b may each occur twice (with c or d), or all differ
                twice_a = a == c or a == d
                twice_b = b == c or b == d
                if twice_a and twice_b:
                    out[i, j] = min(a, b)
                elif twice_a or twice_b:
                    out[i, j] = a if twice_a else b
                else:
                    out[i, j] = min(min(a, b), min(c, d))
    return out


def chunk_keys(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[str]:
    """The chunk keys (``c/ROW/COL``, relative to the array) of every chunk of a 2-D grid."""
    for i in range(-(-int(shape[0]) // int(chunks[0]))):
        for j in range(-(-int(shape[1]) // int(chunks[1]))):
            yield f"c/{i}/{j}"


def labels_codecs(level: int | None = None) -> list:
    """The lossless codec pipeline of the ``labels`` array.

    zstd at ``level`` (default :data:`ZSTD_LEVEL`) with its frame checksum, so a damaged chunk
    fails to decode instead of decoding to wrong labels.
    """
    return [ZstdCodec(level=check_labels_level(level), checksum=True)]


def describe_codecs(array: Any) -> str:
    """A Zarr array's filters and compressors in a few characters: ``"zstd-3"``, ``"none"``."""
    parts = []
    for codec in (*array.filters, *array.compressors):
        name = type(codec).__name__.removesuffix("Codec").lower()
        level = getattr(codec, "level", None)
        parts.append(name if level is None else f"{name}-{level}")
    return "+".join(parts) or "none"


def label_chunk_count(shape: tuple[int, ...], chunks: tuple[int, ...]) -> int:
    """Chunks in the grid of a (rows, cols) labels array: the files a store writes."""
    return math.prod(-(-int(n) // int(c)) for n, c in zip(shape, chunks))


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays as Python values, non-finite floats as None or
    ``"inf"``/``"-inf"``, and paths as strings: what the metadata JSON can hold."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj
