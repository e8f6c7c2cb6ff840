"""The Python API: compress an image, fit a palette, open a store, decode it.

Each function is a short plan: validate the arguments once (:class:`bigquant.params.FitOptions`),
read the image (:mod:`bigquant.io`), fit (:mod:`bigquant.fitting`), write the store
(:mod:`bigquant.store`), and return it, on the current Dask scheduler (local threads, or a
``dask.distributed`` ``Client`` the caller created; bigquant never starts a cluster itself).
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from . import autok, display, fitting, metrics, params, polishing
from . import sources as _sources
from . import store as _store
from ._dask import on_default_scheduler
from ._objstore import location
from ._runtime import release_freed_memory
from .chunking import parse_memory_limit
from .decoding import decode
from .errors import BigquantWarning, ParameterError
from .fitting import FitResult
from .params import DEFAULT_SAMPLE_SIZE, FitOptions
from .progress import Pass, Progress, Step, or_silent
from .sources import default_output
from .store import Palette, Store

__all__ = ["compress", "decode", "default_output", "fit", "load_source", "open_store"]

PathLike = str | os.PathLike


def load_source(
    source: Any,
    *,
    level: int = 0,
    memory_limit: Any = None,
    chunks: tuple[int, int] | None = None,
    storage_options: dict | None = None,
) -> tuple[da.Array, str]:
    """The image a compress or fit reads, as a regularly chunked dask array (rows, cols, C), and its
    name (:func:`bigquant.sources.load` without the description)."""
    src = _sources.load(source, level=level, memory_limit=memory_limit, chunks=chunks, storage_options=storage_options)
    return src.x, src.name


def _fit_image(
    x: da.Array, name: str, opts: FitOptions, init: Any, target_psnr: float | None, max_k: int, say: Progress
) -> FitResult:
    """Fit the codebook of ``x`` for :func:`compress` (with the auto-K search if asked)."""
    rows, cols, c = x.shape
    use_hist = fitting.use_histogram(opts.method, x.dtype, c)
    say(
        Step(
            f"reading {name}: {rows} x {cols} x {c} {x.dtype}, chunks {x.chunksize[:2]}, "
            f"{'histogram' if use_hist else 'pixel'} path"
        )
    )
    data = fitting.prepare(x, use_hist, opts, f"input {name!r}", say)
    k = fitting.reduce_k(opts.k, data.distinct)
    if target_psnr is not None:
        return autok.auto_k(data, opts, target_psnr, min(k, max_k), init=init, say=say)
    return fitting.fit_k(data, k, opts, init=init, progress=say)


def _write_store(
    x: da.Array,
    output: Any,
    fit: FitResult,
    *,
    opts: FitOptions,
    k_requested: int,
    source: _sources.Source,
    options: dict[str, Any],
    labels_level: int,
    overwrite: bool,
    t0: float,
    say: Progress,
    described: dict[str, Any],
) -> Store:
    """The last pass: label every chunk of ``x`` into a new store with ``fit``'s codebook."""
    rows, cols, c = x.shape
    k = fit.codebook.shape[0]
    release_freed_memory()
    plan = fitting.label_plan(x, fit, say)
    release_freed_memory()
    say(Step(f"writing labels ({params.labels_dtype(k).name}) to {output}"))
    say(Pass("labels"))
    chunks = (int(x.chunksize[0]), int(x.chunksize[1]))
    with _store.StoreWriter(
        output, (rows, cols, c), chunks, k, overwrite=overwrite, labels_level=labels_level
    ) as writer:
        stats = plan.total(writer.write_labels(x, plan.fn, plan.args, plan.stats_len, plan.combine))
        again = polishing.after_labels(x, fit, plan, stats, opts, say)
        while again is not None:  # the pixel path's codebook moved: label again
            plan = again
            say(Pass("labels"))
            stats = plan.total(writer.write_labels(x, plan.fn, plan.args, plan.stats_len, plan.combine))
            again = polishing.after_labels(x, fit, plan, stats, opts, say)
        sse = float(stats[k]) if plan.sse is None else plan.sse
        data_range = (float(stats[k + 1]), float(stats[k + 2]))
        mse = sse / (rows * cols * c)
        peak = metrics.peak_value(x.dtype, data_range)
        run = fitting.fit_metadata(fit, opts)
        meta = {
            "k": int(k),
            "k_requested": int(k_requested),
            "shape": [int(rows), int(cols), int(c)],
            "dtype": str(x.dtype),
            "chunks": [int(s) for s in x.chunksize[:2]],
            **{key: run[key] for key in fitting.RUN_KEYS},
            "inertia": sse,
            **{key: run[key] for key in ("inertia_history", "shift_history", "reseeded_clusters")},
            "mse": mse,
            "psnr": metrics.psnr(mse, peak),
            "psnr_peak": peak,
            "data_range": list(data_range),
            "label_counts": [int(v) for v in stats[:k]],
            "seed": int(opts.seed),
            "source": source.name,
            **_sources.source_metadata(source),
            "options": options,
            **fitting.stamp(opts),
            **fit.extra,
            **described,
        }
        target = fit.extra.get("target_psnr")
        if target is not None:
            meta["target_reached"] = bool(meta["psnr"] >= target)
            if not meta["target_reached"]:
                warnings.warn(
                    f"PSNR {meta['psnr']:.2f} dB at K={k} stays below the target {target} dB",
                    BigquantWarning,
                    stacklevel=3,
                )
        meta["time_s"] = round(time.perf_counter() - t0, 3)
        path = writer.commit(fit.codebook, meta)
    return Store(path)


@on_default_scheduler
def compress(
    source: Any,
    output: PathLike | None = None,
    *,
    k: int = 16,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-4,
    method: str = "auto",
    memory_limit: str | int | None = None,
    chunks: tuple[int, int] | None = None,
    level: int = 0,
    series: int | None = None,
    axes: str | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    init: np.ndarray | None = None,
    codebook: PathLike | np.ndarray | None = None,
    target_psnr: float | None = None,
    max_k: int = 256,
    labels_level: int | None = None,
    pixel_size: float | tuple[float, float] | dict | None = None,
    bands: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    storage_options: dict | None = None,
) -> Store:
    """Quantize an image to K colours and write a bigquant store.

    Parameters
    ----------
    source : path or array
        An image path (any TIFF flavour, PNG, JPEG, Zarr or OME-Zarr, recognised by content; see
        :func:`bigquant.read_image`), or an array of shape (rows, cols) or (rows, cols, C)
        (NumPy or dask).
    output : path, optional
        The store to write. Default: ``<input stem>.bq.zarr`` beside a path input.
    k : int
        Colours in the codebook, 1 to 65536. Reduced (with a :class:`KReducedWarning`, and
        ``k_requested`` in the metadata) when the image has fewer distinct colours.
    seed : int
        Seed of the pixel sample and the k-means++ initialisation; the same seed and chunking
        give bit-identical labels and codebook.
    max_iter : int
        Most Lloyd iterations.
    tol : float
        Stop when the largest centroid shift of an iteration is at most ``tol`` times the data's
        scale (the square root of the mean per-channel variance), or when five iterations in a
        row each lower the inertia by at most ``tol / 100`` of it. ``0`` runs until nothing moves.
    method : {"auto", "histogram", "pixels"}
        ``histogram``: exact Lloyd's on the colour histogram (uint8 images with 1-3 channels);
        ``pixels``: Lloyd's over every pixel. ``auto`` takes the histogram where it applies.
    memory_limit : str or int, optional
        Memory budget of the job (default 1GiB); chunk sizes are derived from it.
    chunks : (int, int), optional
        Explicit chunk shape (rows, cols) instead of one derived from the budget.
    level : int
        Pyramid level of a pyramidal TIFF or OME-Zarr (0 = full resolution).
    series : int, optional
        Image of a multi-image file (default: the first that is not a slide's label, macro or
        thumbnail); see :func:`bigquant.read_image`.
    axes : str, optional
        The source's axes (``"CYX"``, ...) when its metadata does not say them.
    sample_size : int
        Pixels sampled for the k-means++ initialisation.
    init : ndarray of shape (K, C), optional
        Initial centroids instead of k-means++ (e.g. to compare with another implementation).
    codebook : path or ndarray of shape (K, C), optional
        Encode with this fixed codebook (a palette from :func:`fit`, another store, or an array)
        instead of fitting one: one pass over the image. ``k`` is then the codebook's size.
    target_psnr : float, optional
        Choose the smallest K up to ``max_k`` whose PSNR reaches this many dB (``k`` is ignored).
        Exact for the histogram path; estimated on the pixel sample for the pixel path.
    max_k : int
        Largest K ``target_psnr`` may choose.
    labels_level : int, optional
        zstd level of the stored labels, 1-22 (default 3). Higher is smaller and slower to
        write.
    pixel_size : float, (float, float) or dict, optional
        Micrometres per pixel: one number, (y, x), or ``{"y", "x", "unit": "micrometer"}``.
    bands : sequence of str, optional
        Each channel's meaning: ``red``, ``green``, ``blue``, ``alpha``, ``grey`` or ``band_<i>``
        (default :func:`bigquant.display.default_bands`). Both win over what the input file says
        and travel to every output (OME scales and channels, TIFF resolution tags).
    overwrite : bool
        Replace an existing output store.
    progress : callable(event), optional
        Receives the run's :mod:`bigquant.progress` events: a ``Step`` for each step, a
        ``Pass`` as each pass over the chunks begins, an ``Iteration`` after each Lloyd step.
        ``str(event)`` is one line of text, so ``progress=print`` prints them.
    storage_options : dict, optional
        fsspec options (endpoint, credentials, ...) for a ``source`` or ``output`` given as a URL
        (``s3://``, ``gs://``, ``az://``, ``memory://``; ``https://`` for reading only). A store on
        object storage is written in place with a commit protocol that needs no rename
        (docs/store-format.md).

    Returns
    -------
    Store
        The written store, opened (its ``path`` the URL for one on object storage).
    """
    t0 = time.perf_counter()
    say = or_silent(progress)
    opts = FitOptions(k=k, seed=seed, method=method, max_iter=max_iter, tol=tol, sample_size=sample_size)
    k_requested = opts.k
    labels_level = params.check_labels_level(labels_level)
    if target_psnr is not None:
        if codebook is not None:
            raise ParameterError("give either a target PSNR or a fixed codebook, not both")
        target_psnr = params.check_target_psnr(target_psnr)
        k_requested = max_k = params.check_k(max_k)
    fixed = _sources.fixed_codebook(codebook, storage_options) if codebook is not None else None
    if fixed is not None:
        k_requested = fixed[0].shape[0]
    pixel = params.check_pixel_size(pixel_size)
    mem = parse_memory_limit(memory_limit)
    target = _sources.check_output(source, output, overwrite, storage_options)
    _sources.check_apart([source, codebook], [target])
    src = _sources.load(
        source, level=level, series=series, axes=axes, memory_limit=mem, chunks=chunks, storage_options=storage_options
    )
    x, name = src.x, src.name
    _store.check_store_limits(x.shape, k_requested, x.chunksize)  # before the fit: the store's limits
    if fixed is None and not fitting.use_histogram(opts.method, x.dtype, x.shape[2]) and x.nbytes <= mem // 4:
        x = _sources.decoded(x, fitting.load_pixel_kernels)  # the pixel path reads it several times
    asked = dict(level=level, series=series, axes=axes, labels_level=labels_level, target_psnr=target_psnr)
    asked.update(max_k=max_k if target_psnr is not None else None, codebook=fixed[1] if fixed else None)
    options = _sources.run_options(opts, memory_limit=mem, chunks=chunks, **asked)
    described: dict[str, Any] = {"pixel_size": pixel} if pixel else {}
    if bands is not None:
        described["bands"] = display.check_bands(bands, x.shape[2])
    if fixed is not None:
        cb, cb_source = fixed
        if cb.shape[1] != x.shape[2]:
            raise ParameterError(f"the codebook has {cb.shape[1]} channels, the image {x.shape[2]}")
        rows, cols, c = x.shape
        say(Step(f"reading {name}: {rows} x {cols} x {c} {x.dtype}; encoding with a fixed codebook of K={len(cb)}"))
        fit = FitResult(metrics.round_codebook(cb, x.dtype), "fixed", extra={"codebook_source": cb_source})
    else:
        fit = _fit_image(x, name, dataclasses.replace(opts, k=k_requested), init, target_psnr, max_k, say)
    return _write_store(
        x,
        target,
        fit,
        opts=opts,
        k_requested=k_requested,
        source=src,
        options=options,
        labels_level=labels_level,
        overwrite=overwrite,
        t0=t0,
        say=say,
        described=described,
    )


@on_default_scheduler
def fit(
    sources: Sequence[Any],
    output: PathLike,
    *,
    k: int = 16,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-4,
    method: str = "auto",
    memory_limit: str | int | None = None,
    chunks: tuple[int, int] | None = None,
    level: int = 0,
    series: int | None = None,
    axes: str | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    overwrite: bool = False,
    progress: Progress | None = None,
    storage_options: dict | None = None,
) -> Palette:
    """Fit one codebook across several images and write it as a palette store.

    Every Lloyd step (or, for uint8 images, the colour histogram) is one map-reduce across all
    chunks of all the images, so the palette is the k-means of their pixels taken together.
    Encode each image with it by ``compress(image, out, codebook=palette_path)``.

    Parameters
    ----------
    sources : sequence of paths or arrays
        Images with the same number of channels and dtype.
    output : path
        The palette store to write (a Zarr v3 group with ``codebook`` and metadata, no labels).
    k, seed, max_iter, tol, method, memory_limit, chunks, level, series, axes, sample_size, overwrite, progress
        As for :func:`compress` (``level``, ``series`` and ``axes`` apply to every image).
    storage_options : dict, optional
        fsspec options for sources and an output given as URLs, as for :func:`compress`.
    """
    t0 = time.perf_counter()
    say = or_silent(progress)
    opts = FitOptions(k=k, seed=seed, method=method, max_iter=max_iter, tol=tol, sample_size=sample_size)
    if isinstance(sources, (str, os.PathLike)) or not len(sources):
        raise ParameterError("fit needs a list of one or more images")
    mem = parse_memory_limit(memory_limit)
    target = _sources.output_target(output, storage_options)
    _store.check_target(target, overwrite)
    _sources.check_apart(list(sources), [target])
    kw: Any = {"level": level, "series": series, "axes": axes, "chunks": chunks, "memory_limit": mem}
    loaded = [_sources.load(s, storage_options=storage_options, **kw) for s in sources]
    xs, names = [s.x for s in loaded], [s.name for s in loaded]
    c, dtype = xs[0].shape[2], xs[0].dtype
    _store.check_store_limits((1, 1, c), opts.k)
    for x, name in zip(xs, names):
        if x.shape[2] != c or x.dtype != dtype:
            raise ParameterError(
                f"all images need the same channels and dtype: {names[0]} is {c} x {dtype}, "
                f"{name} is {x.shape[2]} x {x.dtype}"
            )
    use_hist = fitting.use_histogram(opts.method, dtype, c)
    say(Step(f"fitting K={opts.k} across {len(xs)} images ({'histogram' if use_hist else 'pixel'} path)"))
    data = fitting.prepare(xs, use_hist, opts, "an image", say)
    f = fitting.fit_k(data, fitting.reduce_k(opts.k, data.distinct), opts, progress=say)
    if data.cells is not None and f.result is not None:  # exact passes from the coreset's codebook
        polishing.polish(f, f.result.centroids, opts, say)
    mse, peak = fitting.training_error(f)
    run = fitting.fit_metadata(f, opts)
    meta = {
        "k_requested": int(opts.k),
        "sources": names,
        "source_paths": [s.info.path if s.info else None for s in loaded],
        "shapes": [list(map(int, x.shape)) for x in xs],
        **{key: run[key] for key in fitting.RUN_KEYS},
        "inertia_history": run["inertia_history"],
        "mse": mse,
        "psnr": metrics.psnr(mse, peak),
        "options": _sources.run_options(opts, memory_limit=mem, chunks=chunks, level=level, series=series, axes=axes),
        **fitting.stamp(opts),
        "time_s": round(time.perf_counter() - t0, 3),
    }
    path = _store.write_palette(target, f.codebook, meta, overwrite=overwrite)
    return Palette.read(path)


def open_store(path: PathLike, *, storage_options: dict | None = None) -> Store:
    """Open and validate a bigquant store (``bigquant.open``) at a local path or a URL (``s3://``,
    ``gs://``, ``az://``, ``https://``, ``memory://``, with fsspec's ``storage_options``); a
    palette is refused.

    Raises
    ------
    StoreFormatError
        Nothing there, not a store, incomplete, damaged, or a request refused (one line).
    """
    return Store(location(path, storage_options) or path)
