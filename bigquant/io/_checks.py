"""Image checks shared by the readers and the writers: dtypes, shapes, the memory budget, the
output's checks and its staging, on disk or on object storage."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from .._dask import from_memory
from .._objstore import Location, RemoteStaging, check_target
from .._staging import check_output_folder, clean_stale_staging, staged
from ..chunking import choose_chunks, format_bytes, parse_memory_limit
from ..errors import InputError, MemoryBudgetError, OutputError, ParameterError, show_path

PathLike = str | os.PathLike

#: The usual input extensions; inputs are recognised by content (:mod:`.sniff`), whatever their name.
SUPPORTED_INPUT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".zarr")
#: Output extensions (case-insensitive).
SUPPORTED_OUTPUT = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".zarr")
#: The files that make a folder a zarr array or group.
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")
#: Pixel dtypes bigquant reads and writes (any byte order; arrays come back in native order).
SUPPORTED_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64")


def check_index(name: str, value: Any, optional: bool) -> int | None:
    """A level or series index as an int (None where ``optional`` and not given); ParameterError otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ParameterError(f"{name} {value!r} is not a non-negative integer")
    return int(value)


def check_dtype(dtype: Any, where: str) -> np.dtype:
    """Return the native-order dtype, or raise InputError naming it and the supported list."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InputError(
            f"{where} has dtype {dtype!r}, which bigquant does not support; supported: {', '.join(SUPPORTED_DTYPES)}"
        ) from exc
    native = dt.newbyteorder("=") if dt.kind in "uif" else dt
    if native.name not in SUPPORTED_DTYPES:
        raise InputError(
            f"{where} has dtype {dt}, which bigquant does not support; supported: {', '.join(SUPPORTED_DTYPES)}"
        )
    return native


def check_image_shape(shape: tuple[int, ...], where: str, axes: str | None = None) -> None:
    """Require (rows, cols) or (rows, cols, C) with no zero-length axis."""
    with_axes = f" (axes {axes!r})" if axes else ""
    if len(shape) not in (2, 3):
        raise InputError(
            f"{where} has shape {tuple(shape)}{with_axes}; expected (rows, cols) or (rows, cols, channels)"
        )
    if 0 in shape:
        raise InputError(f"{where} has shape {tuple(shape)}{with_axes}: it holds no pixels")


def validate_image(shape: tuple[int, ...], dtype: Any, where: str = "image") -> np.dtype:
    """Check an image's shape and dtype before any work; returns the native dtype.

    Raises
    ------
    InputError
        Not (rows, cols) or (rows, cols, C); an axis of length zero; or an unsupported dtype
        (bool, complex, object, ...). The message names ``where``, the value and the rule.
    """
    check_image_shape(tuple(shape), where)
    return check_dtype(dtype, where)


def budget_error(where: str, need: int, budget: int) -> MemoryBudgetError:
    """The error for an image that must be decoded whole but does not fit the budget."""
    return MemoryBudgetError(
        f"{where} decodes to {format_bytes(need)}, more than the memory budget {format_bytes(budget)} "
        "allows; convert it to a tiled TIFF or Zarr (or raise --memory-limit)"
    )


def as_image(array: Any, *, memory_limit: Any = None, chunks: tuple[int, int] | None = None) -> da.Array:
    """Validate an in-memory (NumPy) or dask array and return it as a (rows, cols, C) dask array.

    A NumPy array is chunked by the memory budget (or ``chunks``); a dask array keeps its chunks
    unless ``chunks`` is given. Raises InputError as :func:`validate_image` does.
    """
    x = array if isinstance(array, da.Array) else np.asarray(array)
    validate_image(x.shape, x.dtype, "array")
    if x.ndim == 2:
        x = x[..., None]
    if not isinstance(x, da.Array):
        cr, cc = chunks or choose_chunks(x.shape[:2], x.dtype.itemsize * x.shape[2], parse_memory_limit(memory_limit))
        return from_memory(x, (cr, cc, x.shape[2]))
    if chunks:
        x = x.rechunk((chunks[0], chunks[1], -1))
    return x


def as_output_image(image: da.Array | np.ndarray) -> da.Array:
    """An image to write as a (rows, cols, C) dask array with a supported dtype, or ParameterError."""
    if not isinstance(image, da.Array):
        image = np.asarray(image)
        image = da.from_array(image, chunks=image.shape)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or 0 in image.shape:
        raise ParameterError(f"image of shape {image.shape} is not (rows, cols, C) with pixels")
    try:
        dtype = check_dtype(image.dtype, "image")
    except InputError as exc:
        raise ParameterError(str(exc)) from None
    if image.dtype != dtype:
        image = image.astype(dtype)
    return image


def check_output_path(path: PathLike, *, overwrite: bool, extensions: Sequence[str] = SUPPORTED_OUTPUT) -> Path:
    """Validate an output path before any work is done; writes nothing.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or ``.zarr`` directory).
    overwrite : bool
        Whether an existing output may be replaced.
    extensions : sequence of str
        Allowed extensions, lower case with the dot (default :data:`SUPPORTED_OUTPUT`).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    ParameterError
        The extension is not one of ``extensions``.
    OutputError
        The output exists and ``overwrite`` is False, or its folder is missing or not writable.
    """
    p = Path(path)
    clean_stale_staging(p)  # first: a replaced output a killed run had moved aside goes back
    if p.suffix.lower() not in tuple(e.lower() for e in extensions):
        raise ParameterError(
            f"output {show_path(path)} has extension {p.suffix or '(none)'!r}; supported: {', '.join(extensions)}"
        )
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise OutputError(f"output {show_path(path)} exists; pass --overwrite to replace it")
    if (
        p.is_dir()
        and not p.is_symlink()
        and not (p.suffix.lower() == ".zarr" and any((p / m).exists() for m in ZARR_MARKERS))
    ):
        # --overwrite replaces an image (a file, or a zarr folder), never an unrelated folder.
        raise OutputError(
            f"output {show_path(path)} is a folder that is not a zarr image; --overwrite will not "
            "replace it: remove it or choose another output"
        )
    check_output_folder(p)
    return p


def _holds_zarr(where: Location) -> bool:
    return any(where.fs.exists(f"{where.path}/{m}") for m in ZARR_MARKERS)


def check_output_url(where: Location, *, overwrite: bool, extensions: Sequence[str] = SUPPORTED_OUTPUT) -> Location:
    """:func:`check_output_path` for a URL: a ``.zarr`` output (a prefix of keys) replaces only a
    Zarr there, a file output (one object) only an object; a dead run's placeholder is replaced."""
    suffix = where.suffix.lower()
    if suffix not in tuple(e.lower() for e in extensions):
        raise ParameterError(
            f"output {where.url!r} has extension {suffix or '(none)'!r}; supported: {', '.join(extensions)}"
        )
    if suffix == ".zarr":
        return check_target(where, overwrite, _holds_zarr, "is not a Zarr; --overwrite only replaces a Zarr there")
    return check_target(
        where,
        overwrite,
        lambda w: bool(w.fs.isfile(w.path)),
        "holds keys, not one file; --overwrite only replaces a file",
    )


def check_output(path: PathLike | Location, *, overwrite: bool) -> Path | Location:
    """:func:`check_output_path`, or for a :class:`~bigquant._objstore.Location` the checks of a
    Zarr written in place there (a file format needs a seekable file: refused, in one line)."""
    if not isinstance(path, Location):
        return check_output_path(path, overwrite=overwrite)
    if path.suffix.lower() in SUPPORTED_OUTPUT and path.suffix.lower() != ".zarr":
        raise ParameterError(
            f"output {path.url!r}: a {path.suffix} file needs a seekable file, which object storage is not; "
            "write .zarr or .ome.zarr there (bigquant decode uploads other formats written locally)"
        )
    return check_output_url(path, overwrite=overwrite)


@contextlib.contextmanager
def staged_output(p: Path | Location, overwrite: bool) -> Iterator[Path | Location]:
    """Where a writer builds its output: a hidden sibling moved into place
    (:func:`bigquant._staging.staged`), or on object storage the target itself behind a
    placeholder root (:class:`~bigquant._objstore.RemoteStaging`), whose commit is the root
    ``zarr.json`` the writer PUTs last."""
    if not isinstance(p, Location):
        with staged(p, overwrite) as tmp:
            yield tmp
        return
    with RemoteStaging(p, overwrite, noun="output") as staging:
        try:
            yield staging.path
        except OSError as exc:
            raise staging.write_error(exc) from exc
