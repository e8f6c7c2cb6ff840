"""The image a compress or fit reads, and what its store records about it.

:func:`load` opens a path (:func:`bigquant.io.open_image`: format by content, the series and
level asked for, the axes) or takes an array, and returns it regularly chunked with its
description; :func:`source_metadata` turns that description into the store's metadata keys
(``source_path``, ``source_series``, ``source_level``, ``source_format``, ``source_axes``,
``pixel_size``, ``bands``), documented in docs/store-format.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from . import _staging, io, params
from . import store as _store
from ._dask import regular_chunks
from ._objstore import Location, check_urls_apart, is_url, location
from ._runtime import start_kernel_warm_up
from .errors import ParameterError
from .io import ImageInfo, as_image, default_bands
from .io.image_info import in_micrometres
from .params import FitOptions

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Source:
    """An input ready for a fit: the regularly chunked array (rows, cols, C), its name as the
    caller gave it (the path, or ``<ndarray>``), and its description (None for an array)."""

    x: da.Array
    name: str
    info: ImageInfo | None


def default_output(source: PathLike) -> Any:
    """``<input stem>.bq.zarr`` beside the input (``scan.tif`` -> ``scan.bq.zarr``; a URL's
    beside it under the same prefix, as a URL)."""
    if is_url(source):
        head, _, tail = str(source).rstrip("/").rpartition("/")
        return f"{head}/{default_output(tail)}"
    p = Path(source)
    name = p.name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    else:
        name = p.stem if p.suffix else p.name
    return p.with_name(name + ".bq.zarr")


def regular(x: da.Array) -> da.Array:
    """``x`` with one chunk along C and a regular grid (:func:`bigquant._dask.regular_chunks`), so
    store writes align."""
    return regular_chunks(x.rechunk({2: -1}) if x.numblocks[2] != 1 else x)


def load(
    source: Any,
    *,
    level: int = 0,
    series: int | None = None,
    axes: str | None = None,
    memory_limit: Any = None,
    chunks: tuple[int, int] | None = None,
    storage_options: dict | None = None,
) -> Source:
    """The image of ``source``, a path or URL (:func:`bigquant.io.open_image`) or an array
    (:func:`bigquant.io.as_image`; ``level``, ``series`` and ``axes`` apply to paths only)."""
    if isinstance(source, (str, os.PathLike)):
        x, info = io.open_image(
            source,
            level=level,
            series=series,
            axes=axes,
            memory_limit=memory_limit,
            chunks=chunks,
            storage_options=storage_options,
        )
        return Source(regular(x), str(source), info)
    x = as_image(source, memory_limit=memory_limit, chunks=chunks)
    return Source(regular(x), f"<{type(source).__name__}>", None)


def decoded(x: da.Array, load: Callable[[Any, int], None]) -> da.Array:
    """``x`` decoded into memory once, for a path that reads it several times, while
    ``load(dtype, channels)`` loads that path's kernels on a thread (the decoders release the GIL)."""
    warm_up = start_kernel_warm_up(load, x.dtype, x.shape[2])
    try:
        return x.persist()
    finally:
        warm_up.join()  # never left running past the decode, or past an error it raised


def source_metadata(src: Source) -> dict[str, Any]:
    """The store's keys about its source: where it was, which image of it, what its pixels are.

    ``bands`` is always there (an array's bands are those of :func:`default_bands`); the
    ``source_*`` keys only for a path, ``pixel_size`` only where the input states it.
    """
    if src.info is None:
        return {"bands": list(default_bands(int(src.x.shape[2])))}
    info = src.info
    meta: dict[str, Any] = {
        "source_path": info.path,
        "source_format": info.format,
        "source_series": info.series,
        "source_level": info.level,
        "source_axes": info.axes,
        # Bytes on disk (a Zarr folder's files, a URL's object or listing), for the ratio against
        # the input file; 0 means unknown (a refused listing).
        "source_bytes": int(info.file_bytes) or None,
        "bands": list(info.bands),
    }
    size = in_micrometres(info.pixel_size)  # the store's unit; info INPUT shows the input's own
    if size is not None:
        meta["pixel_size"] = size
    return meta


def run_options(opts: FitOptions, *, memory_limit: int, chunks: Any, **asked: Any) -> dict[str, Any]:
    """The options that shaped a result, as validated (``opts``) or as asked (``asked``: level,
    series, axes, labels level, ...), for the metadata key ``options``."""
    return {
        "k": int(opts.k),
        "method": opts.method,
        "memory_limit": int(memory_limit),
        "chunks": [int(c) for c in chunks] if chunks else None,
        "seed": int(opts.seed),
        "max_iter": int(opts.max_iter),
        "tol": float(opts.tol),
        "sample_size": int(opts.sample_size),
        **asked,
    }


def fixed_codebook(codebook: Any, storage_options: dict | None = None) -> tuple[np.ndarray, str]:
    """A fixed codebook (K, C) from a palette or store path or URL, or an array; and where it came from."""
    where = location(codebook, storage_options) if isinstance(codebook, str) else None
    if where is not None:
        return _store.read_codebook(where)[0], where.url
    if isinstance(codebook, (str, os.PathLike)):
        return _store.read_codebook(codebook)[0], str(codebook)
    return params.check_codebook(codebook), "<array>"


def output_target(output: PathLike | Location, storage_options: dict | None = None) -> PathLike | Location:
    """A store target: a local path as given, a URL as a :class:`~bigquant._objstore.Location`
    with ``storage_options``."""
    return location(output, storage_options) or output


def check_output(
    source: Any, output: PathLike | None, overwrite: bool, storage_options: dict | None = None
) -> PathLike | Location:
    """The store a compress of ``source`` writes (default beside a path input), checked before any work."""
    if output is None:
        if not isinstance(source, (str, os.PathLike)):
            raise ParameterError("an output path is needed when compressing an array")
        output = default_output(source)
    target = output_target(output, storage_options)
    _store.check_target(target, overwrite)
    if isinstance(source, (str, os.PathLike)):
        same = (
            str(target) == str(source).rstrip("/")
            if isinstance(target, Location) or is_url(source)
            else Path(output).resolve() == Path(source).resolve()
        )
        if same:
            raise ParameterError(f"output {str(output)!r} is the input itself")
    return target


def check_apart(reads: list[Any], writes: list[Any]) -> None:
    """Refuse an output that is, holds or lies inside an input: paths
    (:func:`bigquant._staging.check_apart`) and URLs (:func:`bigquant._objstore.check_urls_apart`)."""
    _staging.check_apart(reads, writes)
    check_urls_apart(reads, writes)
