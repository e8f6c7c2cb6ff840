"""Writing stores and palettes: atomically, through :mod:`bigquant._staging`.

A store is built in a hidden sibling folder ``.NAME.partial-PID-HOST-<random hex>`` and renamed
onto the target only once everything, metadata last, is written. A killed run leaves at most
that hidden folder, never a store at the target path; the next run writing the same target
removes it (once its process is gone).

Every task that touches a store does so by path (labels are written by path inside the
tasks), and every task key depends on the store's path, so graphs run on process-based
``dask.distributed`` workers and two jobs sharing a cluster never share a task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import dask.array as da
import numpy as np
import zarr

from .._dask import compute_settled, tree_reduce
from .._staging import Staging, check_output_folder
from ..errors import OutputError
from ..params import labels_dtype
from .format import (
    ATTRS,
    CODEBOOK,
    FORMAT_VERSION,
    LABELS,
    MAX_METADATA_BYTES,
    PALETTE,
    is_store_document,
    jsonable,
    label_chunk_count,
    labels_codecs,
)

PathLike = str | os.PathLike


def _is_store_dir(p: Path) -> bool:
    """True for a folder whose zarr.json carries bigquant metadata (complete or not)."""
    try:
        zj = p / "zarr.json"
        if not p.is_dir() or zj.stat().st_size > MAX_METADATA_BYTES:
            return False
        return is_store_document(json.loads(zj.read_text()))
    except (OSError, ValueError, AttributeError):
        return False


def check_target(path: PathLike, overwrite: bool) -> Path:
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
            raise OutputError(
                f"output {str(target)!r} exists and is not a bigquant store; "
                "--overwrite only replaces stores: remove it or choose another output"
            )
    check_output_folder(target)
    return target


def _new_group(target: Path, overwrite: bool) -> Staging:
    """A staging for ``target`` holding an empty, incomplete Zarr v3 group."""
    staging = Staging(target, overwrite, noun="store", quoted=repr(str(target)))
    try:
        zarr.create_group(str(staging.path), zarr_format=3, attributes={ATTRS: {"complete": False}})
    except OSError as exc:
        staging.abort()
        raise staging.write_error(exc) from exc
    return staging


def _write_codebook(group: Any, cb: np.ndarray) -> None:
    # write_empty_chunks: an all-zero codebook is still written, so a missing chunk means damage.
    group.create_array(
        CODEBOOK,
        shape=cb.shape,
        dtype=cb.dtype,
        chunks=cb.shape,
        fill_value=0,
        dimension_names=["label", "channel"],
        config={"write_empty_chunks": True},
    )
    group[CODEBOOK][...] = cb


def _write_block(
    block: np.ndarray, label_fn: Callable, labels_path: str, *fn_args: Any, block_info: Any = None
) -> np.ndarray:
    labels, stats = label_fn(block, *fn_args)
    loc = block_info[0]["array-location"]
    # Every chunk is written, zeros included: skips zarr's all-equal scan of each chunk, and a
    # missing chunk can only mean damage.
    arr = zarr.open_array(labels_path, mode="r+").with_config({"write_empty_chunks": True})
    arr[loc[0][0] : loc[0][1], loc[1][0] : loc[1][1]] = labels
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
        zstd level of the labels, 1-22 (default :data:`~bigquant.store.format.ZSTD_LEVEL`).
    """

    def __init__(
        self,
        target: PathLike,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        k: int,
        *,
        overwrite: bool = False,
        labels_level: int | None = None,
    ) -> None:
        self.target = check_target(target, overwrite)
        self.shape = tuple(int(s) for s in shape)
        self.k = int(k)
        codecs = labels_codecs(labels_level)
        self.staging = _new_group(self.target, overwrite)
        self.tmp = self.staging.path
        try:
            group = zarr.open_group(str(self.tmp), mode="r+")
            group.create_array(
                LABELS,
                shape=self.shape[:2],
                chunks=tuple(int(c) for c in chunks),
                dtype=labels_dtype(self.k),
                compressors=codecs,
                fill_value=0,
                dimension_names=["row", "col"],
            )
        except BaseException:
            self.abort()
            raise
        # Absolute: tasks may run on workers whose working folder is not ours.
        self.labels_path = os.path.abspath(self.tmp / LABELS)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()

    def write_labels(
        self, x: da.Array, label_fn: Callable, fn_args: tuple, stats_len: int, combine: Callable[[list], Any]
    ) -> np.ndarray:
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
        out = da.map_blocks(
            _write_block,
            x,
            label_fn,
            self.labels_path,
            *fn_args,
            dtype=np.float64,
            chunks=((1,) * nr, (1,) * nc, (int(stats_len),)),
            token="bigquant-write-labels",
            meta=np.empty((0, 0, 0)),
        )
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
        meta.update(
            format_version=FORMAT_VERSION,
            complete=True,
            label_chunk_files=label_chunk_count(labels.shape, labels.chunks),
        )
        group.attrs[ATTRS] = jsonable(meta)
        return self.staging.commit()

    def abort(self) -> None:
        """Remove the partial store."""
        self.staging.abort()


def write_palette(target: PathLike, codebook: np.ndarray, metadata: dict[str, Any], *, overwrite: bool = False) -> Path:
    """Write a palette store (Zarr v3 group with a ``codebook`` array and metadata, no labels).

    Atomic like :class:`StoreWriter`: built in a hidden sibling, renamed into place.
    """
    cb = np.asarray(codebook)
    path = check_target(target, overwrite)
    with _new_group(path, overwrite) as staging:
        group = zarr.open_group(str(staging.path), mode="r+")
        _write_codebook(group, cb)
        meta = dict(metadata)
        meta.update(
            format_version=FORMAT_VERSION,
            complete=True,
            kind=PALETTE,
            k=int(cb.shape[0]),
            channels=int(cb.shape[1]),
            dtype=str(cb.dtype),
        )
        group.attrs[ATTRS] = jsonable(meta)
        return staging.commit()
