"""The Python API: compress an image, open a store, decode it. The CLI is a thin face on this.

Every function runs on whatever Dask scheduler is current: the local threaded one by default,
or a ``dask.distributed`` ``Client`` the caller created. bigquant never starts a cluster itself.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import dask
import dask.array as da
import numpy as np

from . import decode as _decode
from . import histogram, io, kmeans, metrics
from . import store as _store
from ._version import __version__
from .chunking import choose_chunks, parse_memory_limit
from .errors import InputError, KReducedWarning, ParameterError

METHODS = ("auto", "histogram", "pixels")
Progress = Callable[[str], None]


def default_output(source: str | os.PathLike) -> Path:
    """``<input stem>.bq.zarr`` beside the input (``scan.tif`` -> ``scan.bq.zarr``)."""
    p = Path(source)
    name = p.name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    else:
        name = p.stem if p.suffix else p.name
    return p.with_name(name + ".bq.zarr")


def _regular(x: da.Array) -> da.Array:
    """Rechunk to a regular grid (equal chunks but a smaller last one) so store writes align."""

    def regular(dim: tuple[int, ...]) -> bool:
        return all(c == dim[0] for c in dim[:-1]) and dim[-1] <= dim[0]

    if not (regular(x.chunks[0]) and regular(x.chunks[1])):
        x = x.rechunk((max(x.chunks[0]), max(x.chunks[1]), -1))
    if x.numblocks[2] != 1:
        x = x.rechunk({2: -1})
    return x


def as_image(array: Any, *, memory_limit=None, chunks: tuple[int, int] | None = None) -> da.Array:
    """Validate an in-memory (NumPy) or dask array and return it as a (rows, cols, C) dask array."""
    x = array if isinstance(array, da.Array) else np.asarray(array)
    io.validate_image(x.shape, x.dtype, "array")
    if x.ndim == 2:
        x = x[..., None]
    if not isinstance(x, da.Array):
        cr, cc = chunks or choose_chunks(x.shape[:2], x.dtype.itemsize * x.shape[2],
                                         parse_memory_limit(memory_limit))
        x = da.from_array(x, chunks=(cr, cc, -1))
    elif chunks:
        x = x.rechunk((chunks[0], chunks[1], -1))
    return x


def _load(source, *, level, memory_limit, chunks) -> tuple[da.Array, str]:
    if isinstance(source, (str, os.PathLike)):
        x = io.read_image(source, level=level, memory_limit=memory_limit, chunks=chunks)
        return x, str(source)
    return as_image(source, memory_limit=memory_limit, chunks=chunks), f"<{type(source).__name__}>"


def compress(
    source: Any,
    output: str | os.PathLike | None = None,
    *,
    k: int = 16,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-4,
    method: str = "auto",
    memory_limit: str | int | None = None,
    chunks: tuple[int, int] | None = None,
    level: int = 0,
    sample_size: int = kmeans.DEFAULT_SAMPLE_SIZE,
    init: np.ndarray | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> "Store":
    """Quantize an image to K colours and write a bigquant store.

    Parameters
    ----------
    source : path or array
        A PNG, JPEG, TIFF or Zarr path, or an array of shape (rows, cols) or (rows, cols, C)
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
        scale (the square root of the mean per-channel variance).
    method : {"auto", "histogram", "pixels"}
        ``histogram``: exact Lloyd's on the colour histogram (uint8 images with 1-3 channels);
        ``pixels``: Lloyd's over every pixel. ``auto`` takes the histogram where it applies.
    memory_limit : str or int, optional
        Memory budget of the job (default 1GiB); chunk sizes are derived from it.
    chunks : (int, int), optional
        Explicit chunk shape (rows, cols) instead of one derived from the budget.
    level : int
        Pyramid level of a pyramidal TIFF (0 = full resolution).
    sample_size : int
        Pixels sampled for the k-means++ initialisation.
    init : ndarray of shape (K, C), optional
        Initial centroids instead of k-means++ (e.g. to compare with another implementation).
    overwrite : bool
        Replace an existing output store.
    progress : callable(str), optional
        Receives one line per step and per Lloyd iteration.

    Returns
    -------
    Store
        The written store, opened.
    """
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    k_requested = kmeans.check_k(k)
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ParameterError(f"max_iter must be a whole number of at least 1, got {max_iter!r}")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ParameterError(f"tol must be a number >= 0, got {tol!r}")
    mem = parse_memory_limit(memory_limit)
    if output is None:
        if not isinstance(source, (str, os.PathLike)):
            raise ParameterError("an output path is needed when compressing an array")
        output = default_output(source)
    _store.check_target(output, overwrite)
    if isinstance(source, (str, os.PathLike)) and Path(output).resolve() == Path(source).resolve():
        raise ParameterError(f"output {str(output)!r} is the input itself")

    x, source_name = _load(source, level=level, memory_limit=mem, chunks=chunks)
    x = _regular(x)
    rows, cols, c = x.shape
    n_pixels = rows * cols
    use_hist = histogram.applies(x.dtype, c)
    if method == "histogram" and not use_hist:
        raise ParameterError(f"the histogram method needs a uint8 image with 1-3 channels, "
                             f"not {x.dtype} with {c}")
    if method == "pixels":
        use_hist = False
    k = k_requested
    say(f"reading {source_name}: {rows} x {cols} x {c} {x.dtype}, chunks {x.chunksize[:2]}, "
        f"{'histogram' if use_hist else 'pixel'} path")

    def on_iter(it: int, inertia: float, shift: float) -> None:
        say(f"iteration {it}: inertia {inertia:.6g}, largest shift {shift:.4g}")

    coarse_iters = 0
    if use_hist:
        colours, counts = histogram.colour_histogram(x)
        say(f"histogram: {len(colours)} distinct colours")
        k = _reduce_k(k, len(colours))
        sample = histogram.sample_from_histogram(colours, counts, min(sample_size, n_pixels), seed)
        start = _initial(init, sample, k, c, seed)
        tol_abs = tol * kmeans.data_scale(colours, counts)
        res = histogram.fit(colours, counts, start, max_iter=max_iter, tol_abs=tol_abs, sample=sample,
                            coarse=init is None, callback=on_iter)
        coarse_iters = getattr(res, "coarse_iterations", 0)
        codebook = metrics.round_codebook(res.centroids, x.dtype)
        lut, sq_err = histogram.label_table(colours, codebook)
        sse = float((sq_err * counts).sum())
        label_fn, fn_args = histogram.label_block, (dask.delayed(lut, pure=True), codebook.shape[0])
    else:
        sample = kmeans.sample_pixels(x, sample_size, seed)
        if sample.dtype.kind == "f" and not np.isfinite(sample).all():
            raise InputError("the image holds NaN or inf values; bigquant needs finite values")
        k = _reduce_k(k, kmeans.distinct_rows(sample))
        start = _initial(init, sample, k, c, seed)
        tol_abs = tol * kmeans.data_scale(sample)
        res = kmeans.lloyd(x, start, max_iter=max_iter, tol_abs=tol_abs, sample=sample.astype(np.float64),
                           callback=on_iter)
        codebook = metrics.round_codebook(res.centroids, x.dtype)
        label_fn, fn_args = kmeans.label_block, (dask.delayed(codebook, pure=True),)
        sse = None

    k = codebook.shape[0]
    say(f"writing labels ({'uint8' if k <= 256 else 'uint16'}) to {output}")
    with _store.StoreWriter(output, (rows, cols, c), x.chunksize[:2], k, overwrite=overwrite) as writer:
        stats = writer.write_labels(x, label_fn, fn_args, k + 3, kmeans.combine_label_stats)
        label_counts = stats[:k]
        if sse is None:
            sse = float(stats[k])
        data_range = (float(stats[k + 1]), float(stats[k + 2])) if not use_hist else None
        mse = sse / (n_pixels * c)
        peak = metrics.peak_value(x.dtype, data_range)
        meta = {
            "k": int(k),
            "k_requested": int(k_requested),
            "shape": [int(rows), int(cols), int(c)],
            "dtype": str(x.dtype),
            "chunks": [int(s) for s in x.chunksize[:2]],
            "method": "histogram" if use_hist else "pixels",
            "iterations": int(res.n_iter),
            "coarse_iterations": int(coarse_iters),
            "converged": bool(res.converged),
            "max_iter": int(max_iter),
            "tol": float(tol),
            "inertia": sse,
            "inertia_history": [float(v) for v in res.inertia_history],
            "shift_history": [float(v) for v in res.shift_history],
            "reseeded_clusters": int(res.reseeded),
            "mse": mse,
            "psnr": metrics.psnr(mse, peak),
            "psnr_peak": peak,
            "data_range": list(data_range) if data_range else None,
            "label_counts": [int(v) for v in label_counts],
            "seed": int(seed),
            "source": source_name,
            "bigquant_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "time_s": round(time.perf_counter() - t0, 3),
        }
        path = writer.commit(codebook, meta)
    return Store(path)


def _reduce_k(k: int, distinct: int) -> int:
    if distinct < k:
        warnings.warn(f"the image has only {distinct} distinct colours; K reduced from {k} to {distinct}",
                      KReducedWarning, stacklevel=3)
        return max(1, distinct)
    return k


def _initial(init, sample, k, c, seed) -> np.ndarray:
    if init is None:
        return kmeans.init_centroids(sample, k, seed)
    start = np.asarray(init, dtype=np.float64)
    if start.shape != (k, c):
        raise ParameterError(f"init has shape {start.shape}, expected (K, C) = {(k, c)}")
    return start


class Store:
    """An opened, validated bigquant store.

    Attributes
    ----------
    path : Path
    metadata : dict
        The group attribute ``bigquant`` (see the README's store format).
    labels : dask array of shape (rows, cols), uint8 or uint16
    codebook : ndarray of shape (K, C)
    """

    def __init__(self, path: str | os.PathLike):
        contents = _store.open_store(path)
        self.path = contents.path
        self.metadata = contents.metadata
        self.labels = contents.labels
        self.codebook = contents.codebook

    @property
    def attrs(self) -> dict:
        """Alias of :attr:`metadata`."""
        return self.metadata

    @property
    def k(self) -> int:
        return int(self.metadata["k"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.metadata["shape"])  # type: ignore[return-value]

    def reconstruct(self) -> da.Array:
        """The reconstruction ``codebook[labels]`` as a lazy dask array (rows, cols, C)."""
        return _decode.reconstruct(self.labels, self.codebook)

    def info(self) -> dict:
        """Metadata plus accounting: bytes on disk, compression ratios, bits per pixel."""
        m = dict(self.metadata)
        rows, cols, c = m["shape"]
        n = rows * cols
        raw = n * c * np.dtype(m["dtype"]).itemsize
        nbytes = _store.store_bytes(self.path)
        seeds = metrics.seed_bits(n, m["k"], 8 * c * np.dtype(m["dtype"]).itemsize)
        m.update(
            path=str(self.path),
            pixels=n,
            raw_bytes=raw,
            store_bytes=nbytes,
            ratio=raw / nbytes if nbytes else None,
            bits_per_pixel=8.0 * nbytes / n,
            seed_bits=seeds,
            seed_ratio=seeds / (8.0 * raw),
        )
        return m

    def __repr__(self) -> str:
        r, c, ch = self.shape
        return f"<bigquant.Store {str(self.path)!r}: {r} x {c} x {ch} {self.metadata['dtype']}, K={self.k}>"


def open_store(path: str | os.PathLike) -> Store:
    """Open and validate a bigquant store (``bigquant.open``)."""
    return Store(path)


def decode(store: str | os.PathLike | Store, output: str | os.PathLike, *, overwrite: bool = False,
           memory_limit: str | int | None = None) -> Path:
    """Write the reconstruction of a store to ``.tif/.tiff`` (tiled BigTIFF), ``.zarr``, ``.png`` or ``.jpg``.

    Streams chunk by chunk for TIFF and Zarr; PNG and JPEG only for images that fit the budget.
    Raises before writing anything if the output exists (without ``overwrite``) or its
    extension is unknown.
    """
    io.check_output_path(output, overwrite=overwrite)
    s = store if isinstance(store, Store) else Store(store)
    return io.write_image(s.reconstruct(), output, overwrite=overwrite, memory_limit=memory_limit)
