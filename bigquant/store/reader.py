"""Reading stores: validated metadata, the labels as a lazy dask array, the codebook.

:func:`open` is the one way in: it returns a :class:`Store`, or a :class:`Palette` for a palette,
from a local path or a URL (a :class:`~bigquant._objstore.Location`); both are checked alike,
through :class:`~.root.StoreRoot`. Labels are read by path or URL inside the tasks
(:class:`LabelsReader`), so the graphs run on process-based ``dask.distributed`` workers.
"""

from __future__ import annotations

import math
import os
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from .._objstore import Location, open_array
from ..display import bands_of
from ..errors import StoreFormatError
from ..metrics import seed_bits
from ..reconstruction import reconstruct
from .format import (
    CODEBOOK,
    LABELS,
    MAX_CHUNK_PIXELS,
    PALETTE,
    PYRAMID_VERSION,
    chunk_keys,
    describe_codecs,
    label_chunk_count,
    level_path,
    level_shape,
    mode_2x2,
    pyramid_levels,
)
from .metadata import read_metadata, store_document
from .palette import Palette, checked_codebook
from .root import StoreRoot, store_bytes

PathLike = str | os.PathLike


def is_store(path: PathLike | Location) -> bool:
    """True when ``path`` is a folder (or a URL) whose group ``zarr.json`` carries bigquant
    metadata (a store or a palette, complete or not): what :func:`open` is for, rather than an
    image reader."""
    return store_document(path) is not None


class LabelsReader:
    """Path- or URL-based, picklable view of a store's ``labels`` for :func:`dask.array.from_array`.

    Each chunk opens the array by path or URL (no open handle travels in the graph), and a chunk
    that cannot be read or decoded (truncated, corrupt) raises :class:`StoreFormatError` naming
    the store and the rows and columns. ``stamp`` (:meth:`~.root.StoreRoot.stamp`) enters the
    task keys, so a store rewritten at the same path gets new keys.
    """

    def __init__(self, path: str | Location, shape: tuple[int, int], dtype: np.dtype, stamp: tuple):
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
            block = open_array(self.path, "r")[key]
        except Exception as exc:
            where = ", ".join(
                f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                for k in (key if isinstance(key, tuple) else (key,))
            )
            parent, name = str(self.path).rsplit("/", 1)
            store, what = (parent, "labels") if name == LABELS else (parent.rsplit("/", 1)[0], f"labels/{name}")
            raise StoreFormatError(
                f"store {store!r} is damaged: {what} [{where}] cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        return np.asarray(block, dtype=self.dtype)


def _check_level(p: str, meta: dict, labels: Any, lv: int) -> tuple[int, ...]:
    """Level ``lv``'s chunk shape, once its shape, dtype and chunks agree with the metadata."""
    want = level_shape(meta["shape"], lv)
    k = meta["k"]
    what = "labels" if lv == 0 else f"labels level {lv}"
    if tuple(labels.shape) != want:
        raise StoreFormatError(
            f"store {str(p)!r}: {what} shape {tuple(labels.shape)} disagrees with the metadata shape {want}"
        )
    if labels.dtype not in (np.uint8, np.uint16) or (k > 256 and labels.dtype != np.uint16):
        raise StoreFormatError(f"store {str(p)!r}: {what} dtype {labels.dtype} cannot hold K={k}")
    chunks = tuple(int(n) for n in labels.chunks)
    if len(chunks) != 2 or min(chunks) < 1 or math.prod(chunks) > MAX_CHUNK_PIXELS:
        raise StoreFormatError(
            f"store {str(p)!r}: {what} chunks {chunks} are absurd "
            f"(at least 1 and at most {MAX_CHUNK_PIXELS} pixels per chunk)"
        )
    return chunks


def _level_paths(root: StoreRoot, meta: dict) -> list[str]:
    """The labels arrays of a store, full resolution first: ``labels`` (version 1) or the
    ``labels/0``, ``labels/1``, ... its labels group's OME multiscales lists (version 2)."""
    if meta["format_version"] < PYRAMID_VERSION:
        return [LABELS]
    p = root.name
    if not root.has(f"{LABELS}/zarr.json"):
        raise StoreFormatError(f"store {p!r} has no '{LABELS}' group")
    doc = root.document(f"{LABELS}/zarr.json")
    try:
        paths = [d["path"] for d in doc["attributes"]["ome"]["multiscales"][0]["datasets"]]
    except (KeyError, IndexError, TypeError) as exc:
        raise StoreFormatError(
            f"store {str(p)!r} is damaged: its labels group has no readable OME multiscales ({type(exc).__name__})"
        ) from exc
    if not paths or paths != [str(i) for i in range(len(paths))]:
        raise StoreFormatError(f"store {str(p)!r}: labels levels {paths!r} are not 0, 1, 2, ...")
    return [level_path(i) for i in range(len(paths))]


def check_chunks_present(
    root: StoreRoot, meta: dict, levels: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
) -> None:
    """Every labels chunk a store says it wrote is there: the one guard against missing chunks.

    ``levels`` holds (array key, shape, chunks) per level, full resolution first. zarr reads a
    missing chunk as the fill value, so without this a deleted chunk would decode to label 0
    without a word. Stores record ``label_chunk_files`` (version 1: the count of ``labels``;
    version 2: one count per level, every chunk written, zeros included), and each level's grid
    must have that many chunks, each of whose keys must be present. Stores written before that
    key are not checked, since older versions skipped all-zero chunks.
    """
    p = root.name
    recorded = meta.get("label_chunk_files")
    counts = recorded if isinstance(recorded, list) else [recorded]
    if recorded is None or len(counts) != len(levels):
        if recorded is None:
            return
        raise StoreFormatError(
            f"store {str(p)!r}: label_chunk_files {recorded!r} does not give one count per labels level ({len(levels)})"
        )
    for (key, shape, chunks), expected in zip(levels, counts):
        if not isinstance(expected, int) or isinstance(expected, bool):
            raise StoreFormatError(f"store {str(p)!r}: label_chunk_files {recorded!r} holds a non-integer")
        grid = label_chunk_count(shape, chunks)
        if expected != grid:
            raise StoreFormatError(
                f"store {str(p)!r}: label_chunk_files {expected} of {key!r} disagrees with its chunk grid of {grid}"
            )
        missing = root.missing(key, chunk_keys(shape, chunks))
        if missing:
            raise StoreFormatError(
                f"store {str(p)!r} is damaged: {missing} of the {expected} chunks of {key!r} are missing"
            )


def lazy_pyramid(labels: da.Array, levels: int) -> list[da.Array]:
    """``levels`` label levels computed lazily from ``labels`` (rows, cols) by :func:`mode_2x2`,
    full resolution first; each level is rechunked to even chunks first, so every 2 x 2 block
    lies in one chunk."""
    out = [labels]
    for _ in range(1, levels):
        x = out[-1]
        even = tuple(max(2, c + c % 2) for c in x.chunksize)
        if any(c % 2 for dim in x.chunks for c in dim[:-1]):
            x = x.rechunk(even)
        chunks = tuple(tuple(-(-c // 2) for c in dim) for dim in x.chunks)
        out.append(da.map_blocks(mode_2x2, x, chunks=chunks, dtype=x.dtype, meta=np.empty((0, 0), dtype=x.dtype)))
    return out


def _lazy_labels(path: str | Location, shape: tuple, dtype: Any, chunks: tuple, stamp: tuple) -> da.Array:
    reader = LabelsReader(path, shape, dtype, stamp)
    return da.from_array(
        reader,
        chunks=chunks,
        lock=False,
        asarray=True,
        fancy=False,
        meta=np.empty((0, 0), dtype=dtype),
        name=f"bigquant-labels-{tokenize(reader)}",
    )


class Store:
    """An opened, validated bigquant store, in a local folder or on object storage.

    Opening checks the metadata, that both arrays are there, and that their shapes, dtypes and
    chunk files agree with it, wherever the store is. Labels with values >= K can only be found
    by reading them; :meth:`reconstruct` checks every chunk it decodes.

    Parameters
    ----------
    path : path or Location
        A local folder, or a :class:`~bigquant._objstore.Location` (a URL with its storage options).

    Attributes
    ----------
    path : Path, or str for a URL
    metadata : dict
        The group attribute ``bigquant`` (see the README's store format).
    labels : dask array of shape (rows, cols), uint8 or uint16
        The full-resolution labels (``levels[0]``).
    levels : list of dask arrays
        The stored label pyramid, full resolution first; level ``l`` has shape
        (ceil(rows / 2**l), ceil(cols / 2**l)). A version-1 store has one level.
    codebook : ndarray of shape (K, C)
    labels_codec : str
        The labels' codecs as stored, e.g. ``"zstd-3"``.

    Raises
    ------
    StoreFormatError
        ``path`` is not a complete, valid store (a palette included: it has no labels).
    """

    def __init__(self, path: PathLike | Location) -> None:
        root = StoreRoot(path)
        p = root.name
        meta = read_metadata(root)
        if meta.get("kind") == PALETTE:
            raise StoreFormatError(
                f"{p!r} is a palette (a codebook without labels); "
                "use it with `bigquant compress IMAGE --codebook` instead"
            )
        paths = _level_paths(root, meta)
        for name in (paths[0], CODEBOOK):
            if not root.has(f"{name}/zarr.json"):
                raise StoreFormatError(f"store {p!r} has no '{name}' array")
        arrays = [root.array(name) for name in paths]
        chunks = [_check_level(p, meta, arr, lv) for lv, arr in enumerate(arrays)]
        check_chunks_present(root, meta, [(k, tuple(a.shape), c) for k, a, c in zip(paths, arrays, chunks)])
        self.codebook: np.ndarray = checked_codebook(root, meta)
        stamp = root.stamp()
        #: The stored label levels, full resolution first (version 1 stores: one).
        self.levels: list[da.Array] = [
            _lazy_labels(root.ref(key), tuple(a.shape), a.dtype, c, stamp) for key, a, c in zip(paths, arrays, chunks)
        ]
        self.labels: da.Array = self.levels[0]
        self.root = root
        #: A Path, or the URL of a store on object storage.
        self.path = root.path
        self.metadata: dict = meta
        self.labels_codec = describe_codecs(arrays[0])

    @property
    def name(self) -> str:
        """The store's own name: the last component of its path or URL."""
        return str(self.path).rstrip("/").rsplit("/", 1)[-1]

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

    def reconstruct(self, level: int = 0) -> da.Array:
        """The reconstruction ``codebook[labels]`` of a stored level (0: full size) as a lazy dask
        array (rows, cols, C)."""
        return reconstruct(self.levels[level], self.codebook)

    def pyramid(self, screen_side: int | None = None) -> list[da.Array]:
        """The label levels down to a screen's size, lazily: the stored ones, and for a store
        without them (version 1) levels computed from the full-resolution labels by the same
        2 x 2 mode (:func:`bigquant.store.format.mode_2x2`)."""
        if len(self.levels) > 1:
            return list(self.levels)
        return lazy_pyramid(self.labels, pyramid_levels(self.labels.shape, screen_side))

    @property
    def bands(self) -> list[str]:
        """What each channel is (``red``, ``green``, ``blue``, ``alpha``, ``grey``, ``band_<i>``):
        the recorded ``bands``, else :func:`bigquant.display.default_bands`."""
        return bands_of(self.metadata, self.shape[2])

    @property
    def pixel_size(self) -> dict | None:
        """``{"y": float, "x": float, "unit": "micrometer"}`` if the store records it, else None."""
        ps = self.metadata.get("pixel_size")
        return dict(ps) if isinstance(ps, dict) else None

    def info(self) -> dict:
        """Metadata plus accounting: bytes on disk, compression ratios, bits per pixel."""
        m = dict(self.metadata)
        rows, cols, c = m["shape"]
        n = rows * cols
        raw = n * c * np.dtype(m["dtype"]).itemsize
        nbytes = self.root.nbytes()
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
            levels=[list(map(int, x.shape)) for x in self.levels],
        )
        return m

    def __repr__(self) -> str:
        r, c, ch = self.shape
        return f"<bigquant.Store {str(self.path)!r}: {r} x {c} x {ch} {self.metadata['dtype']}, K={self.k}>"


def open(path: PathLike | Location) -> Store | Palette:  # noqa: A001 - the store's own open, like zarr.open
    """Open and validate what is at ``path`` (a local path or a
    :class:`~bigquant._objstore.Location`): a :class:`Palette` for a palette, else a :class:`Store`.

    Raises
    ------
    StoreFormatError
        Neither a complete store nor a palette.
    """
    if read_metadata(path).get("kind") == PALETTE:
        return Palette.read(path)
    return Store(path)


__all__ = ["LabelsReader", "Store", "is_store", "lazy_pyramid", "open", "read_metadata", "store_bytes"]
