"""How a compress of an input would run, before running it: the path, the chunks, the passes over
the image, and estimates of the time and the peak memory (``bigquant info INPUT``).

The estimate is a cost model, not a dry run:

* **passes** are exact for the histogram path (one to count the colours, one to write the
  labels) and a range for the pixel path (a sample pass over at most
  :data:`~bigquant.seeding.SAMPLE_MAX_BLOCKS` chunks, one pass per Lloyd iteration, at least
  one and at most ``max_iter``, then the label pass), with a typical count;
* **time** = process start + for every pass the pixels' read cost and the kernel's cost,
  divided among the threads the chunks can keep busy, + the fit on the histogram. The read cost
  is *measured* (:func:`bigquant.io.probe_read`: a few of the source's own tiles decoded and timed on one
  thread) where the source is read in tiles, and a per-pixel constant for PNG and JPEG (decoded
  once, whole); the kernels' costs are per-pixel constants measured on this project's machine;
* **peak memory** = the process's base + per thread: the chunk and its working copies and, on
  the histogram path, the dense count table; + the decoded image for PNG and JPEG.

The constants and the check of the model against real runs (its error) are in
benchmarks/README.md ("Estimates of bigquant info").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from . import io
from ._dask import worker_threads
from .chunking import EXTRA_BYTES_PER_PIXEL, parse_memory_limit, resolve_chunks
from .fitting import use_histogram
from .histogram import nbins
from .io import ImageInfo
from .params import check_k
from .seeding import SAMPLE_MAX_BLOCKS

#: Process start of ``bigquant compress``: imports, numba's set-up, the kernels from the cache.
START_S = 1.0
#: Resident memory of that process before it holds any pixel.
BASE_BYTES = 230 << 20
#: Histogram pass, per pixel and thread: a colour code and its count.
HIST_NS = 4.0
#: Label pass, per pixel and thread: the colour -> label table, the store's zstd, its write.
LABEL_NS = 6.0
#: Pixel path, per pixel, thread and Lloyd pass: per centroid and channel, and fixed.
LLOYD_NS_PER_KC = 1.0
LLOYD_NS = 5.0
#: Fit on the histogram, per distinct colour and centroid (Hamerly's bounds prune most pairs).
FIT_NS_PER_COLOUR_K = 2.0
#: Decode of a whole PNG or JPEG, per pixel (one thread; it is not split).
WHOLE_DECODE_NS = {"png": 12.0, "jpeg": 8.0}
#: Bytes per pixel of a chunk a thread holds at once: input, labels, codes and temporaries.
CHUNK_COPIES = 2.0
#: Lloyd passes of a typical pixel-path fit after its warm start on the pixel sample.
TYPICAL_LLOYD_PASSES = 12
#: Tiles :func:`bigquant.io.probe_read` decodes, spread along the image's diagonal.
PROBE_TILES = 6


@dataclass(frozen=True)
class Estimate:
    """The plan of a compress and its cost, from :func:`estimate`.

    Attributes
    ----------
    path : {"histogram", "pixels"}
    k : int
    chunks : (int, int)
        The chunk shape (rows, cols) bigquant would use.
    n_chunks, threads : int
        Chunks of the image; threads of the local scheduler.
    memory_limit : int
        The budget in bytes the chunks follow from.
    passes : (int, int, int)
        Passes over the image: fewest, typical, most (equal on the histogram path).
    time_s : (float, float, float)
        Estimated wall time for those pass counts, start-up included.
    peak_bytes : int
        Estimated peak resident memory.
    read_ns : float
        Read cost per pixel and thread used for the time (measured, or the PNG/JPEG constant).
    read_basis : str
        How ``read_ns`` was found: ``"measured on 6 tiles"`` or ``"decoded whole (constant)"``.
    """

    path: str
    k: int
    chunks: tuple[int, int]
    n_chunks: int
    threads: int
    memory_limit: int
    passes: tuple[int, int, int]
    time_s: tuple[float, float, float]
    peak_bytes: int
    read_ns: float
    read_basis: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}


def estimate(
    info: ImageInfo,
    *,
    k: int = 16,
    method: str = "auto",
    memory_limit: Any = None,
    chunks: tuple[int, int] | None = None,
    max_iter: int = 100,
    threads: int | None = None,
    read_ns: float | None = None,
) -> Estimate:
    """Plan a compress of the image ``info`` describes and estimate its passes, time and memory.

    ``read_ns`` is the read cost per pixel and thread; by default it is measured with
    :func:`bigquant.io.probe_read` (tiled sources) or taken from :data:`WHOLE_DECODE_NS` (PNG, JPEG).
    Raises ParameterError for a bad K, method (``histogram`` on an image it cannot take),
    memory limit or chunk shape, as compress would.
    """
    k = check_k(k)
    budget = parse_memory_limit(memory_limit)
    threads = threads or worker_threads()
    rows, cols, c = info.shape
    pixels = rows * cols
    hist = use_histogram(method, info.dtype, c)
    bpp = info.dtype.itemsize * c
    cr, cc = resolve_chunks((rows, cols), bpp, budget, chunks, info.tile, threads)
    n_chunks = math.ceil(rows / cr) * math.ceil(cols / cc)
    busy = max(1, min(threads, n_chunks))
    whole = info.tile is None
    if read_ns is None and not whole:
        read_ns = io.probe_read(info.path, level=info.level, series=info.series, axes=info.axes, tiles=PROBE_TILES)
    if read_ns is None:
        read_ns = WHOLE_DECODE_NS.get(info.container, 10.0)
    basis = "decoded whole (constant)" if whole else f"measured on {PROBE_TILES} tiles"
    sample_share = min(1.0, SAMPLE_MAX_BLOCKS / n_chunks)
    # A PNG/JPEG is decoded once, on one thread; later passes find its pixels in memory.
    first_read = read_ns * pixels if whole else read_ns * pixels / busy
    again_read = 0.0 if whole else read_ns * pixels / busy
    label_pass = again_read + LABEL_NS * pixels / busy
    if hist:
        distinct = min(pixels, nbins(c), 4_000_000)
        fit = FIT_NS_PER_COLOUR_K * distinct * math.sqrt(k) * 40
        t = START_S + 1e-9 * (first_read + HIST_NS * pixels / busy + fit + label_pass)
        passes, times = (2, 2, 2), (t, t, t)
    else:
        lloyd = again_read + (LLOYD_NS + LLOYD_NS_PER_KC * k * c) * pixels / busy
        fixed = START_S + 1e-9 * (first_read * sample_share + label_pass + lloyd)
        first_is_sample = first_read * (1 - sample_share)  # the first Lloyd pass may read the rest
        counts = (1, min(TYPICAL_LLOYD_PASSES, max_iter), max_iter)
        passes = tuple(2 + n for n in counts)  # type: ignore[assignment]
        times = tuple(fixed + 1e-9 * (first_is_sample + (n - 1) * lloyd) for n in counts)  # type: ignore[assignment]
    chunk_bytes = cr * cc * (bpp + EXTRA_BYTES_PER_PIXEL) * CHUNK_COPIES
    table = 4 * nbins(c) if hist and c == 3 else 0
    peak = BASE_BYTES + busy * (chunk_bytes + table) + (pixels * bpp * 2 if whole else 0)
    return Estimate(
        "histogram" if hist else "pixels",
        k,
        (cr, cc),
        n_chunks,
        threads,
        budget,
        passes,
        tuple(round(t, 1) for t in times),  # type: ignore[arg-type]
        int(peak),
        float(read_ns),
        basis,
    )
