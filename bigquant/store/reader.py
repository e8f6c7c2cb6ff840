"""Reading stores: validated metadata, the labels as a lazy dask array, the codebook.

:func:`open` is the one way in: it returns a :class:`Store`, or a :class:`Palette` for a palette.
Labels are read by path inside the tasks (:class:`LabelsReader`), so the graphs run on
process-based ``dask.distributed`` workers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from ..errors import StoreFormatError
from ..metrics import seed_bits
from ..reconstruction import reconstruct
from .format import (
    CODEBOOK,
    LABELS,
    MAX_CHUNK_PIXELS,
    MAX_METADATA_BYTES,
    PALETTE,
    describe_codecs,
    is_store_document,
    label_chunk_count,
    validate_metadata,
)

PathLike = str | os.PathLike


def read_metadata(path: PathLike) -> dict:
    """The ``bigquant`` metadata of a store or palette, validated; raises StoreFormatError otherwise."""
    p = Path(path)
    if not p.exists():
        raise StoreFormatError(f"store {str(p)!r} does not exist")
    zj = p / "zarr.json"
    if not p.is_dir() or not zj.is_file():
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store (no Zarr v3 group there)")
    try:
        size = zj.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise StoreFormatError(
                f"{str(p)!r} is not a bigquant store: its zarr.json has {size} bytes, "
                f"more than the {MAX_METADATA_BYTES} a store's metadata can need"
            )
        doc = json.loads(zj.read_text())
    except (OSError, ValueError) as exc:
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store: unreadable zarr.json ({exc})") from exc
    return validate_metadata(p, doc)


def is_store(path: PathLike) -> bool:
    """True when ``path`` is a folder whose group ``zarr.json`` carries bigquant metadata (a store
    or a palette, complete or not): what :func:`open` is for, rather than an image reader."""
    zj = Path(path) / "zarr.json"
    try:
        if not zj.is_file() or zj.stat().st_size > MAX_METADATA_BYTES:
            return False
        return is_store_document(json.loads(zj.read_text()))
    except (OSError, ValueError):
        return False


class LabelsReader:
    """Path-based, picklable view of a store's ``labels`` for :func:`dask.array.from_array`.

    Each chunk opens the array by path (no open handle travels in the graph), and a chunk that
    cannot be read or decoded (truncated, corrupt) raises :class:`StoreFormatError` naming the
    store and the rows and columns. ``stamp`` (the store's zarr.json inode and mtime) enters the
    task keys, so a store rewritten at the same path gets new keys.
    """

    def __init__(self, path: str, shape: tuple[int, int], dtype: np.dtype, stamp: tuple[int, int]):
        self.path = path
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = 2
        self.stamp = stamp

    def __dask_tokenize__(self) -> tuple:
        return ("bigquant-labels", self.path, self.stamp)

    def __repr__(self) -> str:
        return f"LabelsReader({self.path!r}, shape={self.shape})"

    def __getitem__(self, key) -> np.ndarray:
        try:
            block = zarr.open_array(self.path, mode="r")[key]
        except Exception as exc:
            where = ", ".join(
                f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                for k in (key if isinstance(key, tuple) else (key,))
            )
            store = str(Path(self.path).parent)
            raise StoreFormatError(
                f"store {store!r} is damaged: labels [{where}] cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        return np.asarray(block, dtype=self.dtype)


def _open_array(p: Path, name: str) -> Any:
    try:
        return zarr.open_array(str(p / name), mode="r")
    except Exception as exc:  # zarr raises several kinds for damaged metadata
        raise StoreFormatError(
            f"store {str(p)!r} is damaged: its '{name}' array cannot be opened ({type(exc).__name__}: {exc})"
        ) from exc


def _check_labels(p: Path, meta: dict, labels: Any) -> tuple[int, ...]:
    """The labels' chunk shape, once their shape, dtype, chunks and files agree with the metadata."""
    rows, cols, _ = meta["shape"]
    k = meta["k"]
    if tuple(labels.shape) != (rows, cols):
        raise StoreFormatError(
            f"store {str(p)!r}: labels shape {tuple(labels.shape)} disagrees with the metadata shape {(rows, cols)}"
        )
    if labels.dtype not in (np.uint8, np.uint16) or (k > 256 and labels.dtype != np.uint16):
        raise StoreFormatError(f"store {str(p)!r}: labels dtype {labels.dtype} cannot hold K={k}")
    chunks = tuple(int(n) for n in labels.chunks)
    if len(chunks) != 2 or math.prod(chunks) > MAX_CHUNK_PIXELS:
        raise StoreFormatError(
            f"store {str(p)!r}: labels chunks {chunks} are absurd (at most {MAX_CHUNK_PIXELS} pixels per chunk)"
        )
    _check_chunks_present(p, meta, labels.shape, chunks)
    return chunks


def _read_store_codebook(p: Path, meta: dict, codebook: Any) -> np.ndarray:
    k, c = meta["k"], meta["shape"][2]
    if tuple(codebook.shape) != (k, c):
        raise StoreFormatError(
            f"store {str(p)!r}: codebook shape {tuple(codebook.shape)} disagrees with the metadata (K={k}, C={c})"
        )
    if np.dtype(codebook.dtype) != np.dtype(meta["dtype"]):
        raise StoreFormatError(
            f"store {str(p)!r}: codebook dtype {codebook.dtype} disagrees with the metadata dtype {meta['dtype']}"
        )
    try:
        missing = codebook.nchunks_initialized < codebook.nchunks
        cb = np.asarray(codebook[...])
    except Exception as exc:
        raise StoreFormatError(
            f"store {str(p)!r} is damaged: its codebook cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if missing:  # stores always write the codebook chunk (write_empty_chunks), zeros included
        raise StoreFormatError(f"store {str(p)!r} is damaged: its codebook data is missing")
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise StoreFormatError(f"store {str(p)!r}: codebook holds NaN or inf")
    return cb


def _check_chunks_present(p: Path, meta: dict, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    """Every labels chunk a store says it wrote is on disk.

    zarr reads a missing chunk as fill value, so without this a deleted file would decode to
    label 0 without a word. Stores record ``label_chunk_files`` (every chunk is written, zeros
    included); stores written before that key are not checked, since older versions skipped
    all-zero chunks.
    """
    expected = meta.get("label_chunk_files")
    if not isinstance(expected, int) or isinstance(expected, bool):
        return
    grid = label_chunk_count(shape, chunks)
    if expected != grid:
        raise StoreFormatError(
            f"store {str(p)!r}: label_chunk_files {expected} disagrees with the labels' chunk grid of {grid}"
        )
    root = p / LABELS / "c"
    found = sum(1 for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    if found < expected:
        raise StoreFormatError(
            f"store {str(p)!r} is damaged: {expected - found} of its {expected} labels chunks are missing"
        )


def store_bytes(path: PathLike) -> int:
    """Bytes on disk of every file in a store (or any folder or file)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


class Store:
    """An opened, validated bigquant store.

    Opening checks the metadata, that both arrays are there, and that their shapes, dtypes and
    chunk files agree with it. Labels with values >= K can only be found by reading them;
    :meth:`reconstruct` checks every chunk it decodes.

    Attributes
    ----------
    path : Path
    metadata : dict
        The group attribute ``bigquant`` (see the README's store format).
    labels : dask array of shape (rows, cols), uint8 or uint16
    codebook : ndarray of shape (K, C)
    labels_codec : str
        The labels' codecs as stored, e.g. ``"zstd-3"``.

    Raises
    ------
    StoreFormatError
        ``path`` is not a complete, valid store (a palette included: it has no labels).
    """

    def __init__(self, path: PathLike) -> None:
        p = Path(path)
        meta = read_metadata(p)
        if meta.get("kind") == PALETTE:
            raise StoreFormatError(
                f"{str(p)!r} is a palette (a codebook without labels); "
                "use it with `bigquant compress IMAGE --codebook` instead"
            )
        for name in (LABELS, CODEBOOK):
            if not (p / name / "zarr.json").is_file():
                raise StoreFormatError(f"store {str(p)!r} has no '{name}' array")
        labels = _open_array(p, LABELS)
        codebook = _open_array(p, CODEBOOK)
        chunks = _check_labels(p, meta, labels)
        self.codebook: np.ndarray = _read_store_codebook(p, meta, codebook)
        rows, cols, _ = meta["shape"]
        zj = (p / "zarr.json").stat()
        reader = LabelsReader(os.path.abspath(p / LABELS), (rows, cols), labels.dtype, (zj.st_ino, zj.st_mtime_ns))
        self.labels: da.Array = da.from_array(
            reader,
            chunks=chunks,
            lock=False,
            asarray=True,
            fancy=False,
            meta=np.empty((0, 0), dtype=labels.dtype),
            name=f"bigquant-labels-{tokenize(reader)}",
        )
        self.path = p
        self.metadata: dict = meta
        self.labels_codec = describe_codecs(labels)

    @property
    def attrs(self) -> dict:
        """Alias of :attr:`metadata`."""
        return self.metadata

    @property
    def k(self) -> int:
        """The number of codebook entries."""
        return int(self.metadata["k"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(rows, cols, C) of the image."""
        rows, cols, c = self.metadata["shape"]
        return int(rows), int(cols), int(c)

    def reconstruct(self) -> da.Array:
        """The reconstruction ``codebook[labels]`` as a lazy dask array (rows, cols, C)."""
        return reconstruct(self.labels, self.codebook)

    def info(self) -> dict:
        """Metadata plus accounting: bytes on disk, compression ratios, bits per pixel."""
        m = dict(self.metadata)
        rows, cols, c = m["shape"]
        n = rows * cols
        raw = n * c * np.dtype(m["dtype"]).itemsize
        nbytes = store_bytes(self.path)
        seeds = seed_bits(n, m["k"], 8 * c * np.dtype(m["dtype"]).itemsize)
        m.update(
            path=str(self.path),
            pixels=n,
            raw_bytes=raw,
            store_bytes=nbytes,
            ratio=raw / nbytes if nbytes else None,
            bits_per_pixel=8.0 * nbytes / n,
            seed_bits=seeds,
            seed_ratio=seeds / (8.0 * raw),
            labels_codec=self.labels_codec,
        )
        return m

    def __repr__(self) -> str:
        r, c, ch = self.shape
        return f"<bigquant.Store {str(self.path)!r}: {r} x {c} x {ch} {self.metadata['dtype']}, K={self.k}>"


def read_codebook(path: PathLike) -> tuple[np.ndarray, dict]:
    """The codebook (K, C) and metadata of a palette or of a full store (``--codebook``)."""
    p = Path(path)
    meta = read_metadata(p)
    try:
        cb = np.asarray(zarr.open_array(str(p / CODEBOOK), mode="r")[...])
    except Exception as exc:
        raise StoreFormatError(f"{str(p)!r} has no readable 'codebook' array ({exc})") from exc
    channels = meta.get("channels") if meta.get("kind") == PALETTE else meta["shape"][2]
    if cb.ndim != 2 or cb.shape != (meta["k"], channels):
        raise StoreFormatError(
            f"{str(p)!r}: codebook shape {cb.shape} disagrees with the metadata (K={meta['k']}, C={channels})"
        )
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise StoreFormatError(f"{str(p)!r}: codebook holds NaN or inf")
    return cb, meta


@dataclass
class Palette:
    """A codebook fitted across several images (see :func:`bigquant.fit`).

    Attributes
    ----------
    path : Path
    codebook : ndarray of shape (K, C)
    metadata : dict
    """

    path: Path
    codebook: np.ndarray
    metadata: dict

    @classmethod
    def read(cls, path: PathLike) -> Palette:
        """The palette (or a full store's codebook) at ``path``, validated."""
        cb, meta = read_codebook(path)
        return cls(path=Path(path), codebook=cb, metadata=meta)


def open(path: PathLike) -> Store | Palette:  # noqa: A001 - the store's own open, like zarr.open
    """Open and validate what is at ``path``: a :class:`Palette` for a palette, else a :class:`Store`.

    Raises
    ------
    StoreFormatError
        Neither a complete store nor a palette.
    """
    if read_metadata(path).get("kind") == PALETTE:
        return Palette.read(path)
    return Store(path)


__all__ = ["LabelsReader", "Palette", "Store", "is_store", "open", "read_codebook", "read_metadata", "store_bytes"]
