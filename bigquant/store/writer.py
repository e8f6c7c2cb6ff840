"""Writing stores and palettes: atomically, through :mod:`bigquant._staging`.

A store is built in a hidden sibling folder ``.NAME.partial-PID-HOST-<random hex>`` and renamed
onto the target only once everything is written: the arrays, the labels group's metadata, and
last of all the root ``zarr.json`` (:func:`write_root`), which holds the bigquant metadata with
``complete: true`` and the consolidated metadata of every node. On object storage, where
nothing can be renamed, the same root is written last in place (:mod:`.remote`).

The label pass writes the label pyramid as it goes: each task writes its chunk of ``labels/0``
and of every level it can write whole chunks of (:func:`bigquant.store.format.level_chunks`);
the remaining small levels are built afterwards from the level above, never from the input.

Every task touches a store by path or URL, and every task key depends on it, so graphs run on
process-based ``dask.distributed`` workers and two jobs sharing a cluster never share a task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

from .. import ngff
from .._abort import AbortOnError
from .._dask import compute_settled, tree_reduce
from .._objstore import Location, RemoteStaging, open_array, open_group
from .._staging import Staging, check_output_folder, clean_stale_staging, write_atomic
from ..display import bands_of
from ..errors import OutputError, ParameterError
from ..params import labels_dtype
from . import remote
from .format import (
    ATTRS,
    CODEBOOK,
    FORMAT_VERSION,
    LABEL_AXES,
    LABELS,
    MAX_METADATA_BYTES,
    PALETTE,
    jsonable,
    label_chunk_count,
    labels_codecs,
    level_chunks,
    level_path,
    level_shape,
    mode_2x2,
    pyramid_levels,
)
from .metadata import check_store_limits, store_document

PathLike = str | os.PathLike


def _is_store_dir(p: Path) -> bool:
    """True for a folder whose zarr.json carries bigquant metadata (complete or not)."""
    return store_document(p) is not None


def is_complete_store(p: Path) -> bool:
    """True for a folder whose root ``zarr.json`` (written last of all) says ``complete``: a
    killed run's staging folder that holds a finished store."""
    doc = store_document(p)
    return doc is not None and doc["attributes"][ATTRS].get("complete") is True


def check_target(path: PathLike | Location, overwrite: bool) -> Any:
    """Validate a store target before any work; raises OutputError.

    A :class:`~bigquant._objstore.Location` (a URL) is checked by
    :func:`bigquant.store.remote.check_target`.

    The target must not exist, or with ``overwrite`` be a bigquant store (never an unrelated
    file or folder); its folder must exist and take new entries (probed by creating and removing
    an empty hidden folder, since permission bits say nothing for root or read-only mounts).
    """
    if isinstance(path, Location):
        return remote.check_target(path, overwrite)
    target = Path(path)
    # First recover what a killed run left: a replaced store it had moved aside goes back.
    clean_stale_staging(target, is_complete_store)
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


def _new_group(target: Any, overwrite: bool) -> Staging | RemoteStaging:
    """A staging for ``target`` holding an empty, incomplete Zarr v3 group (on object storage:
    the target itself, :class:`~bigquant._objstore.RemoteStaging`)."""
    if isinstance(target, Location):
        return RemoteStaging(target, overwrite)
    staging = Staging(target, overwrite, noun="store", quoted=repr(str(target)), complete=is_complete_store)
    try:
        zarr.create_group(str(staging.path), zarr_format=3, attributes={ATTRS: {"complete": False}})
    except OSError as exc:
        staging.abort()
        raise staging.write_error(exc) from exc
    return staging


def _write_codebook(group: Any, cb: np.ndarray) -> None:
    # write_empty_chunks: an all-zero codebook is still written, so a missing chunk means damage.
    # The array create_array returns holds that setting; reopening it by key would drop it.
    arr = group.create_array(
        CODEBOOK,
        shape=cb.shape,
        dtype=cb.dtype,
        chunks=cb.shape,
        fill_value=0,
        dimension_names=["label", "channel"],
        config={"write_empty_chunks": True},
    )
    arr[...] = cb


def _node_documents(root: Path) -> dict[str, dict]:
    """Every node's ``zarr.json`` below ``root`` (keys relative to it, ``/``-separated), parsed."""
    docs = {}
    for folder, subfolders, files in os.walk(root):
        # Chunks live under each array's "c/" (Zarr v3's default keys): no nodes there to find.
        subfolders[:] = sorted(d for d in subfolders if d != "c")
        key = Path(folder).relative_to(root).as_posix()
        if key != "." and "zarr.json" in files:
            docs[key] = json.loads((Path(folder) / "zarr.json").read_text())
    return docs


def _write_json(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` whole (:func:`bigquant._staging.write_atomic`): readers see the
    old document or the new one."""
    text = json.dumps(doc, indent=2, allow_nan=False)
    if len(text) > MAX_METADATA_BYTES:  # the reader's limit: a store it would refuse is never written
        raise OutputError(f"metadata {path} would have {len(text)} bytes, more than the {MAX_METADATA_BYTES} allowed")
    write_atomic(path, text)


def _write_group(path: Any, attributes: dict) -> None:
    """Write a group's ``zarr.json`` with ``attributes`` and the consolidated metadata of every
    node below it (zarr-python's inline form, which xarray and zarr read without listing)."""
    if isinstance(path, Location):
        remote.write_group(path, attributes)
        return
    path = Path(path)
    members = _node_documents(path)
    for doc in members.values():
        if doc.get("node_type") == "group":
            doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
    _write_json(
        path / "zarr.json",
        {
            "zarr_format": 3,
            "node_type": "group",
            "attributes": attributes,
            "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": members},
        },
    )


def write_root(path: PathLike, metadata: dict[str, Any], ome: dict[str, Any] | None = None) -> None:
    """The commit point of a store: write its root ``zarr.json``, the last write of all.

    It holds the bigquant ``metadata`` (``complete: true`` included), the ``ome`` attribute if
    given, and the consolidated metadata of every array and group already written, so it must
    come after all of them; a store whose root does not say ``complete`` is unfinished,
    whatever else it holds.
    """
    attributes = {ATTRS: jsonable(metadata)}
    if ome is not None:
        attributes["ome"] = ome
    _write_group(path, attributes)


def _write_block(
    block: np.ndarray, label_fn: Callable, level_paths: list[str], *fn_args: Any, block_info: Any = None
) -> np.ndarray:
    labels, stats = label_fn(block, *fn_args)
    (r0, r1), (c0, c1) = block_info[0]["array-location"][:2]
    for lv, path in enumerate(level_paths):
        if lv:
            labels = mode_2x2(labels)
        # Every chunk is written, zeros included: skips zarr's all-equal scan of each chunk, and a
        # missing chunk can only mean damage. Offsets divide by 2**lv (level_chunks' rule).
        arr = open_array(path, "r+").with_config({"write_empty_chunks": True})
        r, c = r0 >> lv, c0 >> lv
        arr[r : r + labels.shape[0], c : c + labels.shape[1]] = labels
    return np.asarray(stats, dtype=np.float64).reshape(1, 1, -1)


def _write_small_chunk(src: str, dst: str, region: tuple[int, int, int, int]) -> None:
    """Chunk ``region`` (rows r0:r1, cols c0:c1 of level ``dst``) from twice that region of ``src``."""
    r0, r1, c0, c1 = region
    labels = np.asarray(open_array(src, "r")[2 * r0 : 2 * r1, 2 * c0 : 2 * c1])
    arr = open_array(dst, "r+").with_config({"write_empty_chunks": True})
    arr[r0:r1, c0:c1] = mode_2x2(labels)


class StoreWriter(AbortOnError):
    """Builds a store in a hidden sibling of ``target`` and renames it into place on :meth:`commit`.

    Use as a context manager: leaving the block by an exception removes the partial store.

    Parameters
    ----------
    target : path
        Where the finished store goes.
    shape : (int, int, int)
        Image rows, cols and channels.
    chunks : (int, int)
        Chunk shape of ``labels/0``; must equal the (regular) chunks of the image the labels are
        computed from, so each task writes whole chunks.
    k : int
    overwrite : bool
        Replace an existing store at ``target`` (only once the new one is complete).
    labels_level : int, optional
        zstd level of the labels, 1-22 (default :data:`~bigquant.store.format.ZSTD_LEVEL`).
    screen_side : int, optional
        The pyramid ends at the first level whose longer side is at most this (default
        :data:`~bigquant.store.format.SCREEN_SIDE`).
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
        screen_side: int | None = None,
    ) -> None:
        check_store_limits(shape, k, chunks)
        self.target = check_target(target, overwrite)
        self.shape = tuple(int(s) for s in shape)
        self.k = int(k)
        codecs = labels_codecs(labels_level)
        self.levels = pyramid_levels(self.shape[:2], screen_side)
        self.chunks, self.in_task = level_chunks(self.shape[:2], tuple(int(c) for c in chunks), self.levels)
        self.staging = _new_group(self.target, overwrite)
        self.tmp = self.staging.path
        try:
            labels = open_group(self.tmp, "r+").create_group(LABELS)
            for lv, lchunks in enumerate(self.chunks):
                labels.create_array(
                    str(lv),
                    shape=level_shape(self.shape, lv),
                    chunks=lchunks,
                    dtype=labels_dtype(self.k),
                    compressors=codecs,
                    fill_value=0,
                    dimension_names=list(LABEL_AXES),
                )
        except BaseException:
            self.abort()
            raise
        # Absolute: tasks may run on workers whose working folder is not ours.
        self.level_paths: list[Any] = [
            self.tmp.child(level_path(lv))
            if isinstance(self.tmp, Location)
            else os.path.abspath(self.tmp / level_path(lv))
            for lv in range(self.levels)
        ]
        self.labels_path = self.level_paths[0]

    def write_labels(
        self, x: da.Array, label_fn: Callable, fn_args: tuple, stats_len: int, combine: Callable[[list], Any]
    ) -> np.ndarray:
        """Label every chunk of ``x`` (rows, cols, C) and write it with its pyramid levels; one pass,
        tree-reduced stats. Then build the small levels from the level above them.

        ``label_fn(block, *fn_args) -> (labels (rows, cols), stats (stats_len,))`` runs in the
        tasks; ``fn_args`` may hold ``dask.delayed`` objects (a lookup table travels to each
        worker once). The tasks open the labels arrays by path, so the graph holds no open handle.
        Returns the combined stats of all chunks (``combine(list_of_stats)``).
        """
        parts = self.label_tasks(x, label_fn, fn_args, stats_len)
        # Settled: if a chunk fails, abort() runs only once no other task still writes into tmp.
        total = compute_settled(tree_reduce(parts, combine), *parts)[0]
        for lv in range(self.in_task, self.levels):
            self._write_small_level(lv)
        return np.asarray(total).reshape(-1)

    def label_tasks(self, x: da.Array, label_fn: Callable, fn_args: tuple, stats_len: int) -> list:
        """The label pass planned, not run: one delayed task per chunk of ``x``, each writing its
        labels (and pyramid chunks) and returning its stats (1, 1, ``stats_len``)."""
        if x.numblocks[-1] != 1:
            x = x.rechunk({2: -1})
        nr, nc = x.numblocks[:2]
        # token, not name: the keys hash the labels path (unique per run) and the arguments, so
        # two jobs on one cluster, or two runs in one session, never share a task.
        # One key holds the level paths (URLs with their options), not a copy in every task.
        paths = dask.delayed(self.level_paths[: self.in_task], pure=True)
        out = da.map_blocks(
            _write_block,
            x,
            label_fn,
            paths,
            *fn_args,
            dtype=np.float64,
            chunks=((1,) * nr, (1,) * nc, (int(stats_len),)),
            token="bigquant-write-labels",
            meta=np.empty((0, 0, 0)),
        )
        return out.to_delayed().ravel().tolist()

    def _write_small_level(self, lv: int) -> None:
        """Level ``lv`` from level ``lv - 1``, one task per chunk, each reading twice its region."""
        rows, cols = level_shape(self.shape, lv)
        cr, cc = self.chunks[lv]
        write = dask.delayed(_write_small_chunk, pure=True)
        src, dst = self.level_paths[lv - 1], self.level_paths[lv]
        tasks = [
            write(src, dst, (r, min(r + cr, rows), c, min(c + cc, cols)))
            for r in range(0, rows, cr)
            for c in range(0, cols, cc)
        ]
        compute_settled(*tasks)

    def commit(self, codebook: np.ndarray, metadata: dict[str, Any]) -> Any:
        """Write the codebook, the labels group's metadata and, last, the root; rename into place.

        ``metadata`` may hold ``pixel_size`` and ``bands`` (see the store format); the labels'
        colours follow :mod:`bigquant.display` from the codebook, ``bands`` and ``data_range``.
        """
        cb = np.asarray(codebook)
        group = open_group(self.tmp, "r+")
        _write_codebook(group, cb)
        meta = dict(metadata)
        meta.update(
            format_version=FORMAT_VERSION,
            complete=True,
            label_chunk_files=[label_chunk_count(level_shape(self.shape, lv), c) for lv, c in enumerate(self.chunks)],
        )
        meta = jsonable(meta)
        bands = bands_of(meta, cb.shape[1])
        colours = ngff.label_colours(cb, meta, bands)
        labels = self.tmp.child(LABELS) if isinstance(self.tmp, Location) else self.tmp / LABELS
        _write_group(labels, {"ome": ngff.label_image(self.levels, meta.get("pixel_size"), colours)})
        # The root lists its label image as an NGFF labels container does, so OME-Zarr readers
        # (ome-zarr-py, napari-ome-zarr) opening the store itself find it.
        write_root(self.tmp, meta, ome={"version": ngff.VERSION, "labels": [LABELS]})
        return self.staging.commit()

    def abort(self) -> None:
        """Remove the partial store."""
        self.staging.abort()


def write_palette(
    target: PathLike | Location, codebook: np.ndarray, metadata: dict[str, Any], *, overwrite: bool = False
) -> Path:
    """Write a palette store (Zarr v3 group with a ``codebook`` array and metadata, no labels).

    Atomic like :class:`StoreWriter`: built in a hidden sibling, root ``zarr.json`` last,
    renamed into place.
    """
    cb = np.asarray(codebook)
    if cb.ndim != 2:
        raise ParameterError(f"a palette's codebook is (K, C), got shape {cb.shape}")
    check_store_limits((1, 1, cb.shape[1]), cb.shape[0])
    path = check_target(target, overwrite)
    with _new_group(path, overwrite) as staging:
        group = open_group(staging.path, "r+")
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
        write_root(staging.path, meta)
        return staging.commit()
