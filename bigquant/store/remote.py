"""Stores on object storage: the commit protocol that needs no rename, and opening them by URL.

Object stores cannot rename a prefix, so a store there is written in place, in this order
(docs/store-format.md, "On object storage"):

1. the root ``zarr.json`` is PUT first, marking the store incomplete (``complete: false``);
2. every other key under the prefix is deleted (what a killed run, or the replaced store, left);
3. arrays, their metadata and all chunks are written;
4. the root ``zarr.json`` with ``complete: true`` and the consolidated metadata is PUT last.

A PUT of one object is atomic, so a reader sees the old complete store (before step 1), an
incomplete one (steps 1-3, refused by every reader), or the new complete one: never a
complete-looking half. A failed run deletes what it wrote; a killed one leaves an incomplete
store, which the next run writing there replaces without ``--overwrite``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import dask.array as da
import numpy as np
import zarr

from .._objstore import Location, describe_error
from ..errors import OutputError, StoreFormatError
from ..metrics import seed_bits
from ..reconstruction import reconstruct
from .format import (
    ATTRS,
    CODEBOOK,
    LABELS,
    MAX_METADATA_BYTES,
    PALETTE,
    describe_codecs,
)
from .metadata import is_store_document, validate_metadata
from .palette import Palette

#: Schemes whose first path component is a bucket (or container) that must exist.
BUCKETED = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl")


def root_document(where: Location) -> dict | None:
    """The parsed root ``zarr.json`` at ``where``, or None where there is none."""
    fs = where.fs
    try:
        raw = fs.cat_file(f"{where.path}/zarr.json")
    except FileNotFoundError:
        return None
    if len(raw) > MAX_METADATA_BYTES:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _has_keys(where: Location) -> bool:
    fs = where.fs
    fs.invalidate_cache(where.path)
    return bool(fs.exists(where.path) and (fs.isfile(where.path) or fs.ls(where.path)))


def check_target(where: Location, overwrite: bool) -> Location:
    """Validate a store URL before any work; raises OutputError (one line).

    Refused: a read-only scheme, a missing bucket, a denied write (probed by a PUT and a DELETE
    of an empty object), an existing complete store without ``overwrite``, and anything there
    that is not a bigquant store. An incomplete store (a killed run's) is replaced.
    """
    quoted = repr(where.url)
    if not where.writable:
        raise OutputError(f"output {quoted}: {where.url.split('://')[0]}:// is read-only; write to s3://, gs://, az://")
    fs = where.fs
    probe = f"{where.path}/.bigquant-probe-{uuid.uuid4().hex[:8]}"
    try:
        bucket = where.path.split("/", 1)[0]
        if where.url.split("://")[0].lower() in BUCKETED:
            try:
                fs.ls(bucket, detail=False)  # exists() would answer False for any failure
            except FileNotFoundError:
                raise OutputError(f"bucket {bucket!r} of output {quoted} does not exist") from None
        if _has_keys(where):
            doc = root_document(where)
            if doc is None or not is_store_document(doc):
                raise OutputError(
                    f"output {quoted} exists and is not a bigquant store; "
                    "--overwrite only replaces stores: remove it or choose another output"
                )
            if doc["attributes"][ATTRS].get("complete") is True and not overwrite:
                raise OutputError(f"output {quoted} exists; pass --overwrite to replace it")
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"cannot write output {quoted}: {describe_error(exc)}") from None
    return where


def _group_document(attributes: dict, members: dict | None = None) -> bytes:
    doc: dict[str, Any] = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    if members is not None:
        doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": members}
    return json.dumps(doc, indent=2, allow_nan=False).encode()


class RemoteStaging:
    """The in-place write of a store at ``target`` (a URL): steps 1 and 2 on creation, step 4 is
    :func:`write_group` of the root, :meth:`abort` deletes the prefix. Same face as
    :class:`bigquant._staging.Staging`."""

    def __init__(self, target: Location, overwrite: bool, *, noun: str = "store", quoted: str | None = None):
        self.target = self.path = target
        self.noun, self.quoted = noun, quoted or repr(target.url)
        fs = target.fs
        root = f"{target.path}/zarr.json"
        try:
            fs.pipe_file(root, _group_document({ATTRS: {"complete": False, "writer": uuid.uuid4().hex}}))
            fs.invalidate_cache(target.path)
            old = [k for k in fs.find(target.path) if k.lstrip("/") != root.lstrip("/")]
            if old:
                fs.rm(old)
        except Exception as exc:
            raise self.write_error(exc) from None

    def write_error(self, exc: BaseException) -> OutputError:
        return OutputError(f"cannot write {self.noun} {self.quoted}: {describe_error(exc)}")

    def commit(self) -> Location:
        """Nothing left to move: the root written last was the commit."""
        return self.target

    def abort(self) -> None:
        """Delete what this run wrote (the store is incomplete, so nobody reads it)."""
        try:
            self.target.fs.rm(self.target.path, recursive=True)
        except Exception:  # the next run writing here replaces an incomplete store anyway
            pass

    def __enter__(self) -> RemoteStaging:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()


def node_documents(where: Location) -> dict[str, dict]:
    """Every node's ``zarr.json`` below ``where`` (keys relative to it), parsed; chunk folders
    (``c/``) are not listed."""
    fs = where.fs
    fs.invalidate_cache(where.path)
    base = where.path.rstrip("/")
    docs: dict[str, dict] = {}
    todo = [base]
    while todo:
        folder = todo.pop()
        for entry in fs.ls(folder, detail=True):
            name = entry["name"].rstrip("/")
            if entry["type"] == "directory" and name.rsplit("/", 1)[-1] != "c":
                todo.append(name)
            elif name.endswith("/zarr.json") and folder != base:
                docs[folder[len(base) + 1 :]] = json.loads(fs.cat_file(name))
    return dict(sorted(docs.items()))


def write_group(where: Location, attributes: dict) -> None:
    """PUT a group's ``zarr.json`` with ``attributes`` and the consolidated metadata of every
    node below it: one object, so readers see the old document or the new one."""
    members = node_documents(where)
    for doc in members.values():
        if doc.get("node_type") == "group":
            doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
    where.fs.pipe_file(f"{where.path}/zarr.json", _group_document(attributes, members))


def open_group(where: Any, mode: Any) -> Any:
    """A zarr group at a local path (str) or a :class:`Location`."""
    if isinstance(where, Location):
        return zarr.open_group(where.url, mode=mode, storage_options=where.options)
    return zarr.open_group(str(where), mode=mode)


def open_array(where: Any, mode: Any) -> Any:
    """A zarr array at a local path (str) or a :class:`Location`."""
    if isinstance(where, Location):
        return zarr.open_array(where.url, mode=mode, storage_options=where.options)
    return zarr.open_array(where, mode=mode)


class RemoteStore:
    """A complete bigquant store on object storage, opened by URL: metadata, codebook, the label
    levels as dask arrays, and the reconstruction (what :class:`bigquant.store.Store` offers
    for a local store, less the on-disk accounting)."""

    def __init__(self, where: Location) -> None:
        doc = root_document(where)
        if doc is None:
            raise StoreFormatError(f"store {where.url!r} does not exist (no zarr.json there)")
        meta = validate_metadata(Path(where.url), doc)
        if meta.get("kind") == PALETTE:
            raise StoreFormatError(f"{where.url!r} is a palette (a codebook without labels)")
        group = open_group(where, "r")
        levels = sorted(int(k) for k in group[LABELS].array_keys())
        self.where = where
        self.path = where.url
        self.metadata: dict = meta
        self.labels_codec = describe_codecs(group[f"{LABELS}/{levels[0]}"])
        self.codebook: np.ndarray = np.asarray(group[CODEBOOK][...])
        self.levels = [da.from_zarr(group[f"{LABELS}/{lv}"]) for lv in levels]
        self.labels = self.levels[0]

    @property
    def attrs(self) -> dict:
        return self.metadata

    @property
    def k(self) -> int:
        return int(self.metadata["k"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.metadata["shape"])  # type: ignore[return-value]

    def reconstruct(self, level: int = 0) -> da.Array:
        """``codebook[labels]`` of level ``level``, lazily, shape (rows, cols, C)."""
        return reconstruct(self.levels[level], self.codebook)

    def info(self) -> dict:
        """Metadata plus accounting, as :meth:`bigquant.store.Store.info` (bytes from a listing)."""
        m = dict(self.metadata)
        rows, cols, c = m["shape"]
        n = rows * cols
        raw = n * c * np.dtype(m["dtype"]).itemsize
        try:
            nbytes = int(self.where.fs.du(self.where.path))
        except Exception:  # a listing refused: the accounting is all that is missing
            nbytes = 0
        seeds = seed_bits(n, m["k"], 8 * c * np.dtype(m["dtype"]).itemsize)
        m.update(
            path=self.path,
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
        return f"<bigquant.RemoteStore {self.path!r}: {r} x {c} x {ch} {self.metadata['dtype']}, K={self.k}>"


def read_remote_codebook(where: Location) -> tuple[np.ndarray, dict]:
    """The codebook (K, C) and metadata of a palette or store on object storage."""
    doc = root_document(where)
    if doc is None:
        raise StoreFormatError(f"store {where.url!r} does not exist (no zarr.json there)")
    meta = validate_metadata(Path(where.url), doc)
    try:
        cb = np.asarray(open_group(where, "r")[CODEBOOK][...])
    except Exception as exc:
        raise StoreFormatError(f"{where.url!r} has no readable 'codebook' array ({describe_error(exc)})") from None
    return cb, meta


def open_store(path: Any) -> Any:
    """The complete store at a local path (:class:`bigquant.store.Store`) or at a
    :class:`Location` (:class:`RemoteStore`)."""
    from .reader import Store

    return RemoteStore(path) if isinstance(path, Location) else Store(path)


def read_palette(path: Any) -> Palette:
    """The palette at a local path or a :class:`Location`."""
    if not isinstance(path, Location):
        return Palette.read(path)
    cb, meta = read_remote_codebook(path)
    return Palette(path=path.url, codebook=cb, metadata=meta)  # type: ignore[arg-type]
