"""The bigquant store: a Zarr v3 group. The only module that writes stores.

Layout (``FORMAT_VERSION`` 1; documented in the README)::

    scan.bq.zarr/                 Zarr v3 group
      zarr.json                   attributes: {"bigquant": {...metadata...}}
      labels/                     (rows, cols) uint8 if K <= 256 else uint16, zstd with its checksum,
                                  chunked like the job, every chunk written (``label_chunk_files``)
      codebook/                   (K, C) in the input's dtype (rounded and clipped for integer inputs)

The metadata (group attribute ``bigquant``) holds at least ``format_version``, ``complete``,
``k``, ``shape`` (rows, cols, C), ``dtype``, ``iterations``, ``converged``, ``inertia``, ``mse``,
``psnr``, ``seed`` and ``source``.

Writes are atomic: a store is built in a hidden sibling folder ``.NAME.partial-PID-HOST-<random hex>``
and renamed onto the target only once everything, metadata last, is written. A killed run leaves
at most that hidden folder, never a store at the target path; the next run writing the same
target removes it (once its process is gone).

Every task that touches a store does so by path (labels are written and read by path inside the
tasks), and every task key depends on the store's path, so graphs run on process-based
``dask.distributed`` workers and two jobs sharing a cluster never share a task.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from zarr.codecs import ZstdCodec

from .errors import OutputError, ParameterError, StoreFormatError
from .io import check_output_folder, clean_stale_staging, compute_settled, staging_path
from .kmeans import tree_reduce

FORMAT_VERSION = 1
LABELS = "labels"
CODEBOOK = "codebook"
ATTRS = "bigquant"
#: Largest image a store may claim: guards against allocating from corrupt metadata.
MAX_PIXELS = 1 << 42
#: Largest labels chunk a store may claim (pixels): reading one chunk allocates all of it.
MAX_CHUNK_PIXELS = 1 << 30
#: Largest group ``zarr.json`` read (bytes); the real one is a few KiB (up to ~1 MiB for K=65536).
MAX_METADATA_BYTES = 64 << 20
#: Default zstd level of the labels, chosen with benchmarks/bench_codecs.py and
#: bench_gigapixel.py (README, "Why zstd for the labels").
ZSTD_LEVEL = 3
#: zstd levels a store may use (``--labels-level``).
ZSTD_LEVELS = range(1, 23)
#: ``kind`` of a palette store: a codebook fitted across images, without labels.
PALETTE = "palette"


def labels_dtype(k: int) -> np.dtype:
    """uint8 for K <= 256, else uint16."""
    return np.dtype(np.uint8 if k <= 256 else np.uint16)


def check_labels_level(level: int | None) -> int:
    """The zstd level of the labels: ``level``, or :data:`ZSTD_LEVEL` for None; raises ParameterError."""
    if level is None:
        return ZSTD_LEVEL
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or int(level) not in ZSTD_LEVELS:
        raise ParameterError(f"labels zstd level must be a whole number from {ZSTD_LEVELS.start} to "
                             f"{ZSTD_LEVELS.stop - 1}, got {level!r}")
    return int(level)


def labels_codecs(level: int | None = None) -> list:
    """The lossless codec pipeline of the ``labels`` array.

    zstd at ``level`` (default :data:`ZSTD_LEVEL`) with its frame checksum, so a damaged chunk
    fails to decode instead of decoding to wrong labels.
    """
    return [ZstdCodec(level=check_labels_level(level), checksum=True)]


def _is_store_dir(p: Path) -> bool:
    """True for a folder whose zarr.json carries bigquant metadata (complete or not)."""
    try:
        zj = p / "zarr.json"
        if not p.is_dir() or zj.stat().st_size > MAX_METADATA_BYTES:
            return False
        doc = json.loads(zj.read_text())
        return isinstance(doc, dict) and isinstance((doc.get("attributes") or {}).get(ATTRS), dict)
    except (OSError, ValueError, AttributeError):
        return False


def check_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate a store target before any work; raises OutputError.

    The target must not exist, or with ``overwrite`` be a bigquant store (never an unrelated
    file or folder); its folder must exist and take new entries (probed by creating and removing
    an empty hidden folder, since permission bits say nothing for root or read-only mounts).
    """
    target = Path(path)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise OutputError(f"output {str(target)!r} exists; pass --overwrite to replace it")
        if not _is_store_dir(target):
            raise OutputError(f"output {str(target)!r} exists and is not a bigquant store; "
                              "--overwrite only replaces stores: remove it or choose another output")
    check_output_folder(target)
    return target


def _clean_stale_partials(target: Path) -> None:
    # Partial stores of runs that were killed (their process is gone) are ours to clean up.
    clean_stale_staging(target)


def _new_partial(target: Path) -> Path:
    """Create the hidden sibling folder a store is built in (as an empty Zarr v3 group)."""
    tmp = staging_path(target)
    try:
        zarr.create_group(str(tmp), zarr_format=3, attributes={ATTRS: {"complete": False}})
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write store {str(target)!r}: {exc.strerror or exc}") from exc
    return tmp


def _rename_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished store onto ``target``; an existing one goes aside first, then away."""
    old = None
    try:
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise OutputError(f"output {str(target)!r} appeared while writing; "
                                  "pass --overwrite to replace it")
            old = staging_path(target, "old")
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as exc:
        if old is not None and not target.exists():
            os.replace(old, target)
        raise OutputError(f"cannot move store {str(target)!r} into place: {exc.strerror or exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def _write_codebook(group, cb: np.ndarray) -> None:
    # write_empty_chunks: an all-zero codebook is still written, so a missing chunk means damage.
    group.create_array(CODEBOOK, shape=cb.shape, dtype=cb.dtype, chunks=cb.shape, fill_value=0,
                       dimension_names=["label", "channel"], config={"write_empty_chunks": True})
    group[CODEBOOK][...] = cb


def _write_block(block: np.ndarray, label_fn: Callable, labels_path: str, *fn_args, block_info=None):
    labels, stats = label_fn(block, *fn_args)
    loc = block_info[0]["array-location"]
    # Every chunk is written, zeros included: skips zarr's all-equal scan of each chunk, and a
    # missing chunk can only mean damage.
    arr = zarr.open_array(labels_path, mode="r+").with_config({"write_empty_chunks": True})
    arr[loc[0][0]:loc[0][1], loc[1][0]:loc[1][1]] = labels
    return np.asarray(stats, dtype=np.float64).reshape(1, 1, -1)


class StoreWriter:
    """Builds a store in a hidden sibling of ``target`` and renames it into place on :meth:`commit`.

    Use as a context manager: leaving the block by an exception removes the partial store.

    Parameters
    ----------
    target : path
        Where the finished store goes.
    shape : (int, int, int)
        Image rows, cols and channels.
    chunks : (int, int)
        Chunk shape of ``labels``; must equal the (regular) chunks of the image the labels are
        computed from, so each task writes whole chunks.
    k : int
    overwrite : bool
        Replace an existing store at ``target`` (only once the new one is complete).
    labels_level : int, optional
        zstd level of the labels, 1-22 (default :data:`ZSTD_LEVEL`).
    """

    def __init__(self, target, shape, chunks, k: int, *, overwrite: bool = False, labels_level: int | None = None):
        self.target = check_target(target, overwrite)
        self.overwrite = overwrite
        self.shape = tuple(int(s) for s in shape)
        self.k = int(k)
        codecs = labels_codecs(labels_level)
        _clean_stale_partials(self.target)
        self.tmp = _new_partial(self.target)
        try:
            group = zarr.open_group(str(self.tmp), mode="r+")
            group.create_array(LABELS, shape=self.shape[:2], chunks=tuple(int(c) for c in chunks),
                               dtype=labels_dtype(self.k), compressors=codecs, fill_value=0,
                               dimension_names=["row", "col"])
        except BaseException:
            self.abort()
            raise
        # Absolute: tasks may run on workers whose working folder is not ours.
        self.labels_path = os.path.abspath(self.tmp / LABELS)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def write_labels(self, x: da.Array, label_fn: Callable, fn_args: tuple, stats_len: int,
                     combine: Callable) -> np.ndarray:
        """Label every chunk of ``x`` (rows, cols, C) and write it; one pass, tree-reduced stats.

        ``label_fn(block, *fn_args) -> (labels (rows, cols), stats (stats_len,))`` runs in the
        tasks; ``fn_args`` may hold ``dask.delayed`` objects (a lookup table travels to each
        worker once). The tasks open the labels array by path, so the graph holds no open handle.
        Returns the combined stats of all chunks (``combine(list_of_stats)``).
        """
        if x.numblocks[-1] != 1:
            x = x.rechunk({2: -1})
        nr, nc = x.numblocks[:2]
        # token, not name: the keys hash the labels path (unique per run) and the arguments, so
        # two jobs on one cluster, or two runs in one session, never share a task.
        out = da.map_blocks(_write_block, x, label_fn, self.labels_path, *fn_args, dtype=np.float64,
                            chunks=((1,) * nr, (1,) * nc, (int(stats_len),)),
                            token="bigquant-write-labels", meta=np.empty((0, 0, 0)))
        parts = out.to_delayed().ravel().tolist()
        # Settled: if a chunk fails, abort() runs only once no other task still writes into tmp.
        total = compute_settled(tree_reduce(parts, combine), *parts)[0]
        return np.asarray(total).reshape(-1)

    def commit(self, codebook: np.ndarray, metadata: dict[str, Any]) -> Path:
        """Write the codebook and the metadata, then rename the store onto its target."""
        group = zarr.open_group(str(self.tmp), mode="r+")
        _write_codebook(group, np.asarray(codebook))
        meta = dict(metadata)
        labels = group[LABELS]
        meta.update(format_version=FORMAT_VERSION, complete=True,
                    label_chunk_files=label_chunk_count(labels.shape, labels.chunks))
        group.attrs[ATTRS] = _jsonable(meta)
        _rename_into_place(self.tmp, self.target, self.overwrite)
        return self.target

    def abort(self) -> None:
        """Remove the partial store."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass
class StoreContents:
    """A validated store: its metadata, the labels as a lazy dask array and the codebook."""

    path: Path
    metadata: dict
    labels: da.Array
    codebook: np.ndarray
    #: The labels' codecs as read from their Zarr metadata, e.g. ``"zstd-3"``.
    labels_codec: str = ""


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``bigquant`` metadata of a store, validated; raises StoreFormatError otherwise."""
    p = Path(path)
    if not p.exists():
        raise StoreFormatError(f"store {str(p)!r} does not exist")
    zj = p / "zarr.json"
    if not p.is_dir() or not zj.is_file():
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store (no Zarr v3 group there)")
    try:
        size = zj.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise StoreFormatError(f"{str(p)!r} is not a bigquant store: its zarr.json has {size} bytes, "
                                   f"more than the {MAX_METADATA_BYTES} a store's metadata can need")
        doc = json.loads(zj.read_text())
    except (OSError, ValueError) as exc:
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store: unreadable zarr.json ({exc})") from exc
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    meta = attrs.get(ATTRS) if isinstance(attrs, dict) else None
    if doc.get("node_type") != "group" or not isinstance(meta, dict):
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store (no 'bigquant' metadata)")
    version = meta.get("format_version")
    if not meta.get("complete") or version is None:
        raise StoreFormatError(f"store {str(p)!r} is incomplete (its writing was interrupted); "
                               "run the compress again")
    if not isinstance(version, int) or version < 1:
        raise StoreFormatError(f"store {str(p)!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise StoreFormatError(f"store {str(p)!r} has format_version {version}, newer than the "
                               f"{FORMAT_VERSION} this bigquant reads; upgrade bigquant")
    if meta.get("kind") == PALETTE:
        return _check_palette_meta(p, meta)
    shape, k = meta.get("shape"), meta.get("k")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape)
            or math.prod(shape[:2]) > MAX_PIXELS or shape[2] > 64):
        raise StoreFormatError(f"store {str(p)!r} claims an invalid or absurd shape {shape!r} "
                               f"(at most {MAX_PIXELS} pixels and 64 channels)")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 65536:
        raise StoreFormatError(f"store {str(p)!r} claims an invalid K {k!r} (1 to 65536)")
    dtype = meta.get("dtype")
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "uif"
    except TypeError:
        ok = False
    if not ok:
        raise StoreFormatError(f"store {str(p)!r} claims an invalid dtype {dtype!r}")
    return meta


class _LabelsReader:
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
        return f"_LabelsReader({self.path!r}, shape={self.shape})"

    def __getitem__(self, key) -> np.ndarray:
        try:
            block = zarr.open_array(self.path, mode="r")[key]
        except Exception as exc:
            where = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                              for k in (key if isinstance(key, tuple) else (key,)))
            store = str(Path(self.path).parent)
            raise StoreFormatError(f"store {store!r} is damaged: labels [{where}] cannot be read "
                                   f"({type(exc).__name__}: {exc})") from exc
        return np.asarray(block, dtype=self.dtype)


def open_store(path: str | os.PathLike) -> StoreContents:
    """Open and validate a store: metadata, array presence, shapes and dtypes agree.

    Labels with values >= K can only be found by reading them; :func:`bigquant.reconstruction.reconstruct`
    checks every chunk it decodes.
    """
    p = Path(path)
    meta = read_metadata(p)
    if meta.get("kind") == PALETTE:
        raise StoreFormatError(f"{str(p)!r} is a palette (a codebook without labels); "
                               "use it with `bigquant compress IMAGE --codebook` instead")
    for name in (LABELS, CODEBOOK):
        if not (p / name / "zarr.json").is_file():
            raise StoreFormatError(f"store {str(p)!r} has no '{name}' array")
    try:
        labels = zarr.open_array(str(p / LABELS), mode="r")
    except Exception as exc:  # zarr raises several kinds for damaged metadata
        raise StoreFormatError(f"store {str(p)!r} is damaged: its 'labels' array cannot be opened "
                               f"({type(exc).__name__}: {exc})") from exc
    try:
        codebook = zarr.open_array(str(p / CODEBOOK), mode="r")
    except Exception as exc:
        raise StoreFormatError(f"store {str(p)!r} is damaged: its 'codebook' array cannot be opened "
                               f"({type(exc).__name__}: {exc})") from exc
    rows, cols, c = meta["shape"]
    k = meta["k"]
    if tuple(labels.shape) != (rows, cols):
        raise StoreFormatError(f"store {str(p)!r}: labels shape {tuple(labels.shape)} disagrees with "
                               f"the metadata shape {(rows, cols)}")
    if labels.dtype not in (np.uint8, np.uint16) or (k > 256 and labels.dtype != np.uint16):
        raise StoreFormatError(f"store {str(p)!r}: labels dtype {labels.dtype} cannot hold K={k}")
    chunks = tuple(int(n) for n in labels.chunks)
    if len(chunks) != 2 or math.prod(chunks) > MAX_CHUNK_PIXELS:
        raise StoreFormatError(f"store {str(p)!r}: labels chunks {chunks} are absurd "
                               f"(at most {MAX_CHUNK_PIXELS} pixels per chunk)")
    _check_chunks_present(p, meta, labels.shape, chunks)
    if tuple(codebook.shape) != (k, c):
        raise StoreFormatError(f"store {str(p)!r}: codebook shape {tuple(codebook.shape)} disagrees "
                               f"with the metadata (K={k}, C={c})")
    if np.dtype(codebook.dtype) != np.dtype(meta["dtype"]):
        raise StoreFormatError(f"store {str(p)!r}: codebook dtype {codebook.dtype} disagrees with the "
                               f"metadata dtype {meta['dtype']}")
    try:
        missing = codebook.nchunks_initialized < codebook.nchunks
        cb = np.asarray(codebook[...])
    except Exception as exc:
        raise StoreFormatError(f"store {str(p)!r} is damaged: its codebook cannot be read "
                               f"({type(exc).__name__}: {exc})") from exc
    if missing:  # stores always write the codebook chunk (write_empty_chunks), zeros included
        raise StoreFormatError(f"store {str(p)!r} is damaged: its codebook data is missing")
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise StoreFormatError(f"store {str(p)!r}: codebook holds NaN or inf")
    zj = (p / "zarr.json").stat()
    reader = _LabelsReader(os.path.abspath(p / LABELS), (rows, cols), labels.dtype, (zj.st_ino, zj.st_mtime_ns))
    lab = da.from_array(reader, chunks=chunks, lock=False, asarray=True, fancy=False,
                        meta=np.empty((0, 0), dtype=labels.dtype), name=f"bigquant-labels-{tokenize(reader)}")
    return StoreContents(path=p, metadata=meta, labels=lab, codebook=cb, labels_codec=describe_codecs(labels))


def describe_codecs(array) -> str:
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
        raise StoreFormatError(f"store {str(p)!r}: label_chunk_files {expected} disagrees with the labels' "
                               f"chunk grid of {grid}")
    root = p / LABELS / "c"
    found = sum(1 for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    if found < expected:
        raise StoreFormatError(f"store {str(p)!r} is damaged: {expected - found} of its {expected} "
                               "labels chunks are missing")


def run_state(meta: dict) -> str:
    """How the fit recorded in ``meta`` ended, in words: ``"converged: centroids settled"``,
    ``"converged: inertia stalled"``, ``"not converged: max_iter reached"``, ``"fixed codebook"``
    (stores written before ``stopped_by`` was recorded: ``"converged"`` or ``"not converged"``)."""
    how = {"shift": "converged: centroids settled", "inertia": "converged: inertia stalled",
           "max_iter": "not converged: max_iter reached", "fixed codebook": "fixed codebook"}
    return how.get(meta.get("stopped_by"), "converged" if meta.get("converged") else "not converged")


def store_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of every file in a store (or any folder or file)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _check_palette_meta(p: Path, meta: dict) -> dict:
    k, c = meta.get("k"), meta.get("channels")
    if not isinstance(k, int) or not 1 <= k <= 65536 or not isinstance(c, int) or not 1 <= c <= 64:
        raise StoreFormatError(f"palette {str(p)!r} claims an invalid K {k!r} or channel count {c!r}")
    return meta


def write_palette(target, codebook: np.ndarray, metadata: dict[str, Any], *, overwrite: bool = False) -> Path:
    """Write a palette store (Zarr v3 group with a ``codebook`` array and metadata, no labels).

    Atomic like :class:`StoreWriter`: built in a hidden sibling, renamed into place.
    """
    cb = np.asarray(codebook)
    target = check_target(target, overwrite)
    _clean_stale_partials(target)
    tmp = _new_partial(target)
    try:
        group = zarr.open_group(str(tmp), mode="r+")
        _write_codebook(group, cb)
        meta = dict(metadata)
        meta.update(format_version=FORMAT_VERSION, complete=True, kind=PALETTE, k=int(cb.shape[0]),
                    channels=int(cb.shape[1]), dtype=str(cb.dtype))
        group.attrs[ATTRS] = _jsonable(meta)
        _rename_into_place(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_codebook(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The codebook (K, C) and metadata of a palette or of a full store (``--codebook``)."""
    p = Path(path)
    meta = read_metadata(p)
    try:
        cb = np.asarray(zarr.open_array(str(p / CODEBOOK), mode="r")[...])
    except Exception as exc:
        raise StoreFormatError(f"{str(p)!r} has no readable 'codebook' array ({exc})") from exc
    channels = meta.get("channels") if meta.get("kind") == PALETTE else meta["shape"][2]
    if cb.ndim != 2 or cb.shape != (meta["k"], channels):
        raise StoreFormatError(f"{str(p)!r}: codebook shape {cb.shape} disagrees with the metadata "
                               f"(K={meta['k']}, C={channels})")
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise StoreFormatError(f"{str(p)!r}: codebook holds NaN or inf")
    return cb, meta
