"""The bigquant store: a Zarr v3 group. The only module that writes stores.

Layout (``FORMAT_VERSION`` 1; documented in the README)::

    scan.bq.zarr/                 Zarr v3 group
      zarr.json                   attributes: {"bigquant": {...metadata...}}
      labels/                     (rows, cols) uint8 if K <= 256 else uint16, zstd, chunked like the job
      codebook/                   (K, C) in the input's dtype (rounded and clipped for integer inputs)

The metadata (group attribute ``bigquant``) holds at least ``format_version``, ``complete``,
``k``, ``shape`` (rows, cols, C), ``dtype``, ``iterations``, ``converged``, ``inertia``, ``mse``,
``psnr``, ``seed`` and ``source``.

Writes are atomic: a store is built in a hidden sibling folder ``.NAME.partial-PID-XXXX`` and
renamed onto the target only once everything, metadata last, is written. A killed run leaves at
most that hidden folder, never a store at the target path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from .errors import OutputError, StoreFormatError
from .kmeans import tree_reduce

FORMAT_VERSION = 1
LABELS = "labels"
CODEBOOK = "codebook"
ATTRS = "bigquant"
#: Largest image a store may claim: guards against allocating from corrupt metadata.
MAX_PIXELS = 1 << 42
ZSTD_LEVEL = 3
#: ``kind`` of a palette store: a codebook fitted across images, without labels.
PALETTE = "palette"


def labels_dtype(k: int) -> np.dtype:
    """uint8 for K <= 256, else uint16."""
    return np.dtype(np.uint8 if k <= 256 else np.uint16)


def labels_codecs() -> list:
    """The lossless codec pipeline of the ``labels`` array."""
    return [ZstdCodec(level=ZSTD_LEVEL)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate a store target before any work; raises OutputError. Writes nothing."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputError(f"output {str(target)!r} exists; pass --overwrite to replace it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {str(parent)!r} is not writable")
    return target


def _clean_stale_partials(target: Path) -> None:
    # Partial stores of runs that were killed (their process is gone) are ours to clean up.
    prefix = f".{target.name}.partial-"
    for p in target.parent.glob(prefix + "*"):
        try:
            pid = int(p.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _write_block(block: np.ndarray, label_fn: Callable, labels_path: str, *fn_args, block_info=None):
    labels, stats = label_fn(block, *fn_args)
    loc = block_info[0]["array-location"]
    arr = zarr.open_array(labels_path, mode="r+")
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
    """

    def __init__(self, target, shape, chunks, k: int, *, overwrite: bool = False):
        self.target = check_target(target, overwrite)
        self.overwrite = overwrite
        self.shape = tuple(int(s) for s in shape)
        self.k = int(k)
        _clean_stale_partials(self.target)
        self.tmp = self.target.parent / f".{self.target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        group = zarr.create_group(str(self.tmp), zarr_format=3, attributes={ATTRS: {"complete": False}})
        group.create_array(LABELS, shape=self.shape[:2], chunks=tuple(int(c) for c in chunks),
                           dtype=labels_dtype(self.k), compressors=labels_codecs(), fill_value=0,
                           dimension_names=["row", "col"])
        self.labels_path = str(self.tmp / LABELS)

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
        out = da.map_blocks(_write_block, x, label_fn, self.labels_path, *fn_args, dtype=np.float64,
                            chunks=((1,) * nr, (1,) * nc, (int(stats_len),)),
                            name="bigquant-write-labels", meta=np.empty((0, 0, 0)))
        parts = out.to_delayed().ravel().tolist()
        (total,) = dask.compute(tree_reduce(parts, combine))
        return np.asarray(total).reshape(-1)

    def commit(self, codebook: np.ndarray, metadata: dict[str, Any]) -> Path:
        """Write the codebook and the metadata, then rename the store onto its target."""
        group = zarr.open_group(str(self.tmp), mode="r+")
        cb = np.asarray(codebook)
        group.create_array(CODEBOOK, shape=cb.shape, dtype=cb.dtype, chunks=cb.shape,
                           fill_value=0, dimension_names=["label", "channel"])
        group[CODEBOOK][...] = cb
        meta = dict(metadata)
        meta.update(format_version=FORMAT_VERSION, complete=True)
        group.attrs[ATTRS] = _jsonable(meta)
        old = None
        if self.target.exists():
            if not self.overwrite:
                raise OutputError(f"output {str(self.target)!r} appeared while writing; "
                                  "pass --overwrite to replace it")
            old = self.target.parent / f".{self.target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
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


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``bigquant`` metadata of a store, validated; raises StoreFormatError otherwise."""
    p = Path(path)
    if not p.exists():
        raise StoreFormatError(f"store {str(p)!r} does not exist")
    zj = p / "zarr.json"
    if not p.is_dir() or not zj.is_file():
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store (no Zarr v3 group there)")
    try:
        doc = json.loads(zj.read_text())
    except (OSError, ValueError) as exc:
        raise StoreFormatError(f"{str(p)!r} is not a bigquant store: unreadable zarr.json ({exc})") from exc
    meta = (doc.get("attributes") or {}).get(ATTRS) if isinstance(doc, dict) else None
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
    if not isinstance(k, int) or not 1 <= k <= 65536:
        raise StoreFormatError(f"store {str(p)!r} claims an invalid K {k!r}")
    return meta


def open_store(path: str | os.PathLike) -> StoreContents:
    """Open and validate a store: metadata, array presence, shapes and dtypes agree.

    Labels with values >= K can only be found by reading them; :func:`bigquant.decode.reconstruct`
    checks every chunk it decodes.
    """
    p = Path(path)
    meta = read_metadata(p)
    if meta.get("kind") == PALETTE:
        raise StoreFormatError(f"{str(p)!r} is a palette (a codebook without labels); "
                               "use it with `bigquant compress IMAGE --codebook` instead")
    try:
        group = zarr.open_group(str(p), mode="r")
    except Exception as exc:  # zarr raises several kinds for a damaged group
        raise StoreFormatError(f"store {str(p)!r} cannot be opened: {exc}") from exc
    members = set(group.array_keys())
    for name in (LABELS, CODEBOOK):
        if name not in members:
            raise StoreFormatError(f"store {str(p)!r} has no '{name}' array")
    labels, codebook = group[LABELS], group[CODEBOOK]
    rows, cols, c = meta["shape"]
    k = meta["k"]
    if tuple(labels.shape) != (rows, cols):
        raise StoreFormatError(f"store {str(p)!r}: labels shape {tuple(labels.shape)} disagrees with "
                               f"the metadata shape {(rows, cols)}")
    if labels.dtype not in (np.uint8, np.uint16) or (k > 256 and labels.dtype != np.uint16):
        raise StoreFormatError(f"store {str(p)!r}: labels dtype {labels.dtype} cannot hold K={k}")
    if tuple(codebook.shape) != (k, c):
        raise StoreFormatError(f"store {str(p)!r}: codebook shape {tuple(codebook.shape)} disagrees "
                               f"with the metadata (K={k}, C={c})")
    cb = np.asarray(codebook[...])
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise StoreFormatError(f"store {str(p)!r}: codebook holds NaN or inf")
    lab = da.from_zarr(str(p / LABELS))
    return StoreContents(path=p, metadata=meta, labels=lab, codebook=cb)


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
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        group = zarr.create_group(str(tmp), zarr_format=3, attributes={ATTRS: {"complete": False}})
        group.create_array(CODEBOOK, shape=cb.shape, dtype=cb.dtype, chunks=cb.shape, fill_value=0,
                           dimension_names=["label", "channel"])
        group[CODEBOOK][...] = cb
        meta = dict(metadata)
        meta.update(format_version=FORMAT_VERSION, complete=True, kind=PALETTE, k=int(cb.shape[0]),
                    channels=int(cb.shape[1]), dtype=str(cb.dtype))
        group.attrs[ATTRS] = _jsonable(meta)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
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
