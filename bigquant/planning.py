"""How a compress of an input would run, before running it: the path, the chunks, the passes over
the image, and estimates of the time and the peak memory (``bigquant info INPUT``).

The estimate is a cost model, not a dry run:

* **passes** are exact for the histogram path (one to count the colours, one to write the
  labels) and a range for the pixel path (a sample pass over at most
  :data:`~bigquant.seeding.SAMPLE_MAX_BLOCKS` chunks, the coreset pass, the label pass, then
  none to ``max_iter`` exact Lloyd passes and a second label pass where the codebook still
  moves), with a typical count: none for 1-3 channels, :data:`TYPICAL_EXACT_PASSES` for more;
* **time** = process start + for every pass the pixels' read cost and the kernel's cost,
  divided among the threads the chunks can keep busy, + the fit on the histogram. The read cost
  is *measured* (:func:`bigquant.io.probe_read`: a few of the source's own tiles decoded and timed on one
  thread) where the source is read in tiles, and a per-pixel constant for PNG and JPEG (decoded
  once, whole); the kernels' costs are per-pixel constants measured on this project's machine;
* **peak memory** = the process's base + per busy thread its chunk (input and per-pixel working
  bytes) and, on the histogram path, the touched part of its dense count table; + the colour ->
  label table and the distinct colours (histogram path); + the decoded image for PNG and JPEG.
* the fit on the histogram grows with the distinct colours, which are only known after the
  first pass: they are guessed from the pixel count, so that part is the least sure (within 3x).

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
#: Resident memory of that process before it holds any pixel (measured: 216 MiB for a 3.8 Mpx
#: uint16 image in one chunk, of which about 50 MiB was the chunk).
BASE_BYTES = 180 << 20
#: Histogram pass, per pixel and thread: colour codes, counts and the merges of the chunks' parts.
HIST_NS = 6.0
#: Label pass, per pixel and thread: the colour -> label table, the store's zstd, its write.
LABEL_NS = 12.0
#: Pixel path, per pixel, thread and Lloyd pass: fixed, and per centroid and channel.
LLOYD_NS = 24.0
LLOYD_NS_PER_KC = 0.3
#: Fit on the histogram: ``FIT_NS * distinct colours * K ** FIT_K_POWER`` (Hamerly's bounds
#: make the cost grow slower than K).
FIT_NS = 40.0
FIT_K_POWER = 0.63
#: Distinct colours of a uint8 RGB image, guessed from its pixels: ``DISTINCT_SCALE * pixels **
#: DISTINCT_POWER`` (photographs and slides of 7 Mpx to 0.25 Gpx lie within 3x of it), capped
#: by the pixels and the 2**(8 C) colours that exist.
DISTINCT_SCALE = 30.0
DISTINCT_POWER = 0.6
#: Decode of a whole PNG or JPEG, per pixel (one thread; it is not split).
WHOLE_DECODE_NS = {"png": 15.0, "jpeg": 8.0}
#: Per-thread memory of the histogram path: the touched pages of the dense count table (int32,
#: 64 MiB for 3 channels, touched where the chunk's colours fall), and the colour -> label table.
TABLE_BYTES = 40 << 20
LUT_BYTES = 16 << 20
#: Bytes per distinct colour the fit holds (the colour, its count, bounds and labels).
COLOUR_BYTES = 16
#: Exact Lloyd passes assumed "typical" on the pixel path after its coreset fit, for images of 4
#: or more channels, whose coarser cells leave more to polish (median of the six 4-band
#: photographs at K = 32: 6, range 1-18; images of 1-3 channels: none).
TYPICAL_EXACT_PASSES = 6
#: Seconds of the in-memory fit on the coreset (the best of 8 starts, then the fit on every
#: cell), for 1-3 channels and for more (measured at K = 32 on 14.7 Mpx photographs: 0.4-1.6 s
#: and 1.4-2.4 s).
CORESET_FIT_S = (0.8, 2.0)
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
    pass_s : float
        Seconds of one more pass: an exact Lloyd pass (pixel path) or the label pass (histogram path).
    fit_s : float
        Seconds of the in-memory fit: on the histogram, or on the pixel path's coreset.
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
    pass_s: float
    fit_s: float
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
    ns = _Costs(pixels, busy, read_ns, whole)
    peak = BASE_BYTES + busy * cr * cc * (bpp + EXTRA_BYTES_PER_PIXEL) + (pixels * bpp if whole else 0)
    if hist:
        distinct = min(pixels, nbins(c), int(DISTINCT_SCALE * pixels**DISTINCT_POWER))
        fit_s = 1e-9 * FIT_NS * distinct * k**FIT_K_POWER
        pass_s = ns.pass_s(LABEL_NS)
        t = START_S + ns.first_s(HIST_NS) + fit_s + pass_s
        passes, times = (2, 2, 2), (t, t, t)
        peak += busy * TABLE_BYTES * (c == 3) + LUT_BYTES + COLOUR_BYTES * distinct
    else:
        fit_s, pass_s = CORESET_FIT_S[c > 3], ns.pass_s(LLOYD_NS + LLOYD_NS_PER_KC * k * c)
        share = min(1.0, SAMPLE_MAX_BLOCKS / n_chunks)  # the sample pass reads at most 64 chunks
        # The sample pass (or the one decode of a PNG/JPEG), the coreset pass, its fit and the
        # label pass; then n exact Lloyd passes and, after any, the label pass again.
        fixed = START_S + (ns.first_s(0.0) if whole else ns.again * share) + 2 * ns.pass_s(LABEL_NS) + fit_s
        counts = (0, min(TYPICAL_EXACT_PASSES if c > 3 else 0, max_iter), max_iter)
        p0, p1, p2 = (3 + n + (n > 0) for n in counts)
        t0, t1, t2 = (fixed + n * pass_s + (n > 0) * ns.pass_s(LABEL_NS) for n in counts)
        passes, times = (p0, p1, p2), (t0, t1, t2)
    return Estimate(
        "histogram" if hist else "pixels",
        k,
        (cr, cc),
        n_chunks,
        threads,
        budget,
        passes,
        (round(times[0], 1), round(times[1], 1), round(times[2], 1)),
        int(peak),
        round(pass_s, 3),
        round(fit_s, 3),
        float(read_ns),
        basis,
    )


@dataclass(frozen=True)
class _Costs:
    """Seconds of passes over ``pixels`` split among ``busy`` threads, reading at ``read_ns`` per
    pixel and thread; a ``whole`` image (PNG, JPEG) is decoded once on one thread and then in memory."""

    pixels: int
    busy: int
    read_ns: float
    whole: bool

    @property
    def again(self) -> float:
        """The read part of a pass after the first."""
        return 0.0 if self.whole else 1e-9 * self.read_ns * self.pixels / self.busy

    def first_s(self, kernel_ns: float) -> float:
        """The first pass: the first read of every pixel, and a kernel of ``kernel_ns`` a pixel."""
        read = 1e-9 * self.read_ns * self.pixels * (1 if self.whole else 1 / self.busy)
        return read + 1e-9 * kernel_ns * self.pixels / self.busy

    def pass_s(self, kernel_ns: float) -> float:
        """A later pass: the read again (from the file; in memory for PNG/JPEG) and the kernel."""
        return self.again + 1e-9 * kernel_ns * self.pixels / self.busy
