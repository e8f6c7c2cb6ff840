"""Orchestration of a fit, without I/O: the path, the warm starts, the auto-K search, the label plan.

:mod:`bigquant.api` reads the image and writes the store; between the two it calls this module:

1. :func:`use_histogram` chooses the path (the colour histogram for uint8 with 1-3 channels);
2. :func:`prepare` makes the pass the path needs (the histogram, or the pixel sample and the
   grid coreset), and :func:`reduce_k` lowers K to the number of distinct colours;
3. :func:`fit_k` fits K centroids (:func:`search_k` bisects K for a target PSNR);
4. :func:`label_plan` says how the last pass labels every chunk (on the pixel path it also checks
   the codebook against exact Lloyd's: :func:`bigquant.polishing.after_labels`).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

from . import coreset, histogram, kmeans, metrics, params
from ._dask import as_list, shared
from ._runtime import release_freed_memory
from ._version import __version__
from .errors import BigquantWarning, InputError, KReducedWarning, ParameterError
from .hamerly import lloyd_in_memory
from .params import FitOptions
from .progress import Pass, Progress, Step, or_silent
from .seeding import KPP_PRUNED_MIN_K, distinct_rows, init_centroids, kmeans_plusplus, sample_pixels

#: Most in-memory Lloyd iterations on the coreset (each costs a small fraction of a pass).
CORESET_MAX_ITER = 3000

#: The label function of the last pass: ``fn(block, *args) -> (labels, stats (K + 3,))``.
LabelFn = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass
class FitResult:
    """A fitted codebook and how it was obtained.

    Attributes
    ----------
    codebook : ndarray of shape (K, C)
        In the image's dtype (rounded and clipped for integers).
    method : {"histogram", "pixels", "fixed"}
    result : LloydResult or None
        The run that gave the codebook (None for a fixed codebook).
    coarse_iterations : int
        Warm-start steps: on coarse histograms (histogram path), or on the pixel sample.
    data : FitData or None
        What the fit ran on (the histogram or the pixel sample).
    extra : dict
        Metadata of the auto-K search, if there was one.
    tol_abs : float
        The absolute shift tolerance of the run (pixel path: checked by the label pass).
    """

    codebook: np.ndarray
    method: str
    result: kmeans.LloydResult | None = None
    coarse_iterations: int = 0
    data: FitData | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tol_abs: float = 0.0


@dataclass
class FitData:
    """The pass a fit needs before its iterations: the colour histogram, or the pixel sample.

    Attributes
    ----------
    xs : dask array of shape (rows, cols, C), or a list of them
    dtype : numpy dtype
    channels : int
    colours, counts : ndarray of shape (M, C) uint8 and (M,), or None
        The histogram path's distinct colours and their pixel counts.
    sample : ndarray of shape (n, C), or None
        The pixel path's sample.
    cells : Coreset or None
        The pixel path's grid coreset (:mod:`bigquant.coreset`).
    """

    xs: Any
    dtype: np.dtype
    channels: int
    colours: np.ndarray | None = None
    counts: np.ndarray | None = None
    sample: np.ndarray | None = None
    cells: coreset.Coreset | None = None

    @property
    def distinct(self) -> int:
        """Distinct colours: exact on the histogram path, in the sample on the pixel path."""
        if self.colours is not None:
            return len(self.colours)
        assert self.sample is not None
        return distinct_rows(self.sample)


def use_histogram(method: str, dtype: Any, channels: int) -> bool:
    """Whether ``method`` takes the histogram path for this dtype and channel count.

    Raises ParameterError when ``method="histogram"`` is asked for an image it cannot take.
    """
    applies = histogram.applies(dtype, channels)
    if method == "histogram" and not applies:
        raise ParameterError(
            f"the histogram method needs a uint8 image with 1-3 channels, not {np.dtype(dtype)} with {channels}"
        )
    return applies and method != "pixels"


def prepare(xs: Any, use_hist: bool, opts: FitOptions, what: str, progress: Progress | None = None) -> FitData:
    """The histogram (one pass), or the pixel sample and the grid coreset (one pass and the
    sample's chunks), of ``xs`` (rows, cols, C) or a list of them.

    ``what`` names the input in the error raised for NaN or inf; ``progress`` hears of the
    passes (:class:`~bigquant.progress.Pass` ``"histogram"``, or ``"sample"`` and ``"coreset"``).
    """
    say = or_silent(progress)
    first = as_list(xs)[0]
    data = FitData(xs, first.dtype, first.shape[2])
    if use_hist:
        say(Pass("histogram"))
        data.colours, data.counts = histogram.colour_histogram(xs)
        release_freed_memory()
        say(Step(f"histogram: {len(data.colours):,} distinct colours"))
        return data
    say(Pass("sample"))
    data.sample = sample_pixels(xs, opts.sample_size, opts.seed)
    if data.sample.dtype.kind == "f" and not np.isfinite(data.sample).all():
        raise InputError(f"{what} holds NaN or inf values; bigquant needs finite values")
    if len(data.sample) == 0:
        raise InputError(f"{what} has no pixels")
    say(Pass("coreset"))
    data.cells = coreset.coreset(xs, data.sample)
    release_freed_memory()
    if data.cells.nonfinite:
        raise InputError(
            f"{what} holds {data.cells.nonfinite} pixels with NaN or inf values; bigquant needs finite values"
        )
    say(Step(f"coreset: {len(data.cells.counts):,} cells of {data.cells.bits} bits per channel"))
    return data


def load_pixel_kernels(dtype: Any, channels: int) -> None:
    """Load the pixel path's kernels from numba's cache for images of ``dtype`` and ``channels``,
    through the functions a fit and its label pass call on a small image of that kind, so that
    the argument types are theirs."""
    dt = np.dtype(dtype)
    ramp = np.linspace(0.0, 1.0, 64 * channels).reshape(-1, channels)
    block = (ramp * 255).astype(dt) if dt.kind in "ui" else ramp.astype(dt)
    budget = coreset.cell_budget(channels)
    lo, unit, bits = coreset.grid(block, dt, len(block), budget)
    cells = coreset.from_part(coreset.block_part(block, lo, unit, bits, budget), lo, unit)
    start = kmeans_plusplus(cells.points, 2, 0, cells.counts)[0]
    fit = lloyd_in_memory(cells.points, cells.counts, start, max_iter=2, tol_abs=0.0)
    coreset.label_and_sum(block, fit.centroids, coreset.cell_labels(cells, fit.centroids, min_share=0.0))


def reduce_k(k: int, distinct: int) -> int:
    """``k``, or the number of distinct colours if that is smaller (with a KReducedWarning)."""
    if distinct < k:
        warnings.warn(
            f"the image has only {distinct} distinct colours; K reduced from {k} to {distinct}",
            KReducedWarning,
            stacklevel=3,
        )
        return max(1, distinct)
    return k


def initial(init: Any, sample: np.ndarray, k: int, channels: int, seed: int) -> np.ndarray:
    """The start of Lloyd's iterations: k-means++ on the sample, or ``init`` (K, C) checked."""
    if init is None:
        return init_centroids(sample, k, seed)
    start = np.asarray(init, dtype=np.float64)
    if start.shape != (k, channels):
        raise ParameterError(f"init has shape {start.shape}, expected (K, C) = {(k, channels)}")
    return start


def fit_k(
    data: FitData,
    k: int,
    opts: FitOptions,
    *,
    init: Any = None,
    progress: Progress | None = None,
    restarts: bool = True,
) -> FitResult:
    """Fit ``k`` centroids on the path ``data`` was prepared for; ``progress`` receives the
    :class:`~bigquant.progress.Iteration` of every step. Without ``restarts`` the pixel path
    fits from its one k-means++ start only (a quicker trial, as auto K's)."""
    if data.colours is not None:
        return _fit_histogram(data, k, opts, init, progress)
    return _fit_cells(data, k, opts, init if init is not None or restarts else False, progress)


def _fit_histogram(data: FitData, k: int, opts: FitOptions, init: Any, progress: Progress | None) -> FitResult:
    colours, counts = data.colours, data.counts
    assert colours is not None and counts is not None
    sample = histogram.sample_from_histogram(colours, counts, min(opts.sample_size, int(counts.sum())), opts.seed)
    exact = init is None and k >= len(colours)
    if exact:  # every colour its own centroid: the optimum, which one step confirms
        start = colours.astype(np.float64)
    elif init is None and k >= KPP_PRUNED_MIN_K:
        # too many centres for the pixel sample (and duplicates in it): k-means++ on the
        # histogram itself, every distinct colour weighted by its pixels
        or_silent(progress)(Step(f"seeding: k-means++ of {k:,} centres on {len(colours):,} colours"))
        start = init_centroids(colours, k, opts.seed, counts)
    else:
        start = initial(init, sample, k, colours.shape[1], opts.seed)
    tol_abs = params.tol_abs(opts.tol, kmeans.data_scale(colours, counts))
    res = histogram.fit(
        colours,
        counts,
        start,
        max_iter=opts.max_iter,
        tol_abs=tol_abs,
        sample=sample.astype(float),
        inertia_rtol=opts.inertia_rtol,
        coarse=init is None and not exact,
        progress=progress,
    )
    codebook = metrics.round_codebook(res.centroids, data.dtype)
    return FitResult(codebook, "histogram", res, res.coarse_iterations, data)


def _fit_cells(data: FitData, k: int, opts: FitOptions, init: Any, progress: Progress | None) -> FitResult:
    """Weighted Lloyd's on the coreset's cells, in memory, to convergence (not capped by
    ``max_iter``, which counts passes over the pixels; :data:`CORESET_MAX_ITER` bounds it).
    ``init`` None: k-means++ and the best of :func:`.coreset.best_start`; False: k-means++ alone."""
    cells, sample = data.cells, data.sample
    restarts = init is None
    init = None if init is False else init
    assert cells is not None and sample is not None
    start = initial(init, sample, k, sample.shape[1], opts.seed)
    tol_abs = params.tol_abs(opts.tol, cells.scale())
    pts = np.ascontiguousarray(sample, dtype=np.float64)

    def fit_from(centres: np.ndarray, shown: Progress | None) -> kmeans.LloydResult:
        return lloyd_in_memory(
            cells.points,
            cells.counts,
            centres,
            max_iter=CORESET_MAX_ITER,
            tol_abs=tol_abs,
            inertia_rtol=opts.inertia_rtol,
            sample=pts,
            progress=shown,
            stage="coreset",
        )

    other = None
    if restarts:
        or_silent(progress)(Step(f"seeding: the best of {coreset.RESTARTS} starts on a coarse grid"))
        # the fit from the one start runs meanwhile: its late steps are more Python than kernel
        with ThreadPoolExecutor(max_workers=1) as side:
            own = side.submit(fit_from, start, progress)
            other = coreset.best_start(cells, start, opts.seed, tol_abs, opts.inertia_rtol, CORESET_MAX_ITER)
            res = own.result()
    else:
        res = fit_from(start, progress)
    if other is not None:  # kept only if it ends better: never worse than the one start
        alt = fit_from(other, None)
        res = alt if alt.inertia < res.inertia else res
    if not res.converged:
        warnings.warn(
            f"Lloyd's on the coreset stopped at {CORESET_MAX_ITER} iterations before converging; "
            "the passes over the pixels go on from there",
            BigquantWarning,
            stacklevel=4,
        )
    passes = kmeans.LloydResult(res.centroids, 0, False, res.inertia, reseeded=res.reseeded, stopped_by="coreset")
    cb = metrics.round_codebook(res.centroids, data.dtype)
    return FitResult(cb, "pixels", passes, res.n_iter, data, tol_abs=tol_abs)


def fit_psnr(fit: FitResult) -> float:
    """The PSNR of ``fit`` on what it was fitted on: exact on the histogram, else on the pixel
    sample (against the rounded codebook, in both cases)."""
    data = fit.data
    assert data is not None
    if data.colours is not None:
        assert data.counts is not None
        _, sq_err = histogram.label_table(data.colours, fit.codebook)
        n = float(data.counts.sum()) * data.colours.shape[1]
        return metrics.psnr(histogram.weighted_sse(sq_err, data.counts) / n, metrics.peak_value(data.dtype))
    sample = data.sample
    assert sample is not None
    assert data.cells is not None  # a lower bound: each cell takes one entry for all its pixels
    peak = metrics.peak_value(data.dtype, (sample.min(), sample.max()))
    return metrics.psnr(data.cells.sse(fit.codebook) / (data.cells.pixels * data.channels), peak)


def training_error(fit: FitResult) -> tuple[float, float]:
    """``(mse, psnr peak)`` of a fit over all the pixels it was fitted on, without another pass:
    exact from the histogram, else the last step's inertia (against the float centroids)."""
    data = fit.data
    assert data is not None and fit.result is not None
    if data.colours is not None:
        assert data.counts is not None
        _, sq_err = histogram.label_table(data.colours, fit.codebook)
        n = float(data.counts.sum()) * data.channels
        return histogram.weighted_sse(sq_err, data.counts) / n, metrics.peak_value(data.dtype)
    assert data.sample is not None
    n = float(sum(x.shape[0] * x.shape[1] for x in as_list(data.xs))) * data.channels
    peak = metrics.peak_value(data.dtype, (float(data.sample.min()), float(data.sample.max())))
    return fit.result.inertia / n, peak


@dataclass
class LabelPlan:
    """How the last pass labels each chunk: ``fn(block, *args) -> (labels, stats)``.

    ``stats`` has ``stats_len`` entries, the first K + 3 those of :func:`bigquant.kmeans.label_block`;
    ``combine`` adds a list of them, and :meth:`total` the part no chunk's stats hold. ``sse``:
    the exact SSE when known without that pass (the histogram path). ``polish``: the pass also
    sums the codebook's Lloyd update. ``held``: the counts and sums of the pixels that the
    chunks label from their coreset cell (:class:`bigquant.coreset.CellLabels`), or None.
    """

    fn: LabelFn
    args: tuple
    sse: float | None
    stats_len: int
    combine: Callable[[list], np.ndarray]
    polish: bool = False
    held: np.ndarray | None = None

    def total(self, combined: np.ndarray) -> np.ndarray:
        """The pass's stats from ``combined``, the chunks' stats combined."""
        return combined if self.held is None else combined + self.held


def label_plan(x: da.Array, fit: FitResult, progress: Progress | None = None) -> LabelPlan:
    """The label plan for image ``x`` (rows, cols, C) and a fitted (or fixed) codebook.

    ``progress`` hears of the pass that labels every possible colour, where there is one. On
    the pixel path ``x`` must be the image the fit's coreset holds: the plan takes the counts
    and sums of the pixels in its labelled cells from there.
    """
    cb = fit.codebook
    k, c = cb.shape[0], x.shape[2]
    cbd = dask.delayed(cb, pure=True)
    data = fit.data
    plain = k + 3, kmeans.combine_label_stats
    if data is not None and data.colours is not None:
        assert data.counts is not None
        lut, sq_err = histogram.label_table(data.colours, cb)
        sse = histogram.weighted_sse(sq_err, data.counts)
        return LabelPlan(histogram.label_block, (shared(lut), cbd, False), sse, *plain)
    if data is not None and data.cells is not None and fit.result is not None:
        combine = functools.partial(coreset.combine_fused, k=k)
        table = coreset.cell_labels(data.cells, cb)
        held = None if table is None else table.held
        args = (cbd, table and shared(table))
        return LabelPlan(coreset.label_and_sum, args, None, k + 3 + k * c, combine, True, held)
    if histogram.applies(x.dtype, c) and x.shape[0] * x.shape[1] >= histogram.nbins(c) // 4:
        # More pixels than colours: label every possible colour once, then look pixels up.
        or_silent(progress)(Pass("label table"))
        lut = histogram.full_label_table(cb, c)
        return LabelPlan(histogram.label_block, (shared(lut), cbd, True), None, *plain)
    return LabelPlan(kmeans.label_block, (cbd,), None, *plain)


def fit_metadata(fit: FitResult, opts: FitOptions) -> dict[str, Any]:
    """The store metadata that describes the fit (iterations, stop reason, histories)."""
    res = fit.result
    return {
        "method": fit.method,
        "iterations": int(res.n_iter) if res else 0,
        "coarse_iterations": int(fit.coarse_iterations),
        "converged": bool(res.converged) if res else True,
        "stopped_by": res.stopped_by if res else "fixed codebook",
        "max_iter": int(opts.max_iter),
        "tol": float(opts.tol),
        "inertia_history": [float(v) for v in res.inertia_history] if res else [],
        "shift_history": [float(v) for v in res.shift_history] if res else [],
        "reseeded_clusters": int(res.reseeded) if res else 0,
    }


def stamp(opts: FitOptions) -> dict[str, Any]:
    """The seed, bigquant's version and the time, for the metadata."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"seed": int(opts.seed), "bigquant_version": __version__, "created": created}


#: The fit's metadata keys that come before the inertia in a store's metadata.
RUN_KEYS = ("method", "iterations", "coarse_iterations", "converged", "stopped_by", "max_iter", "tol")
