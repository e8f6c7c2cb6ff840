"""Where a store's keys are: a local folder or a URL on object storage, behind one face.

The reader (:mod:`.metadata`, :mod:`.palette`, :mod:`.reader`) checks a store through a
:class:`StoreRoot` only, so a store in a bucket is validated exactly as one on disk: the same
documents within the same size limit, the same arrays, every chunk key counted. Keys are
``/``-separated and relative to the store (``zarr.json``, ``labels/0``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._objstore import Location, describe_error, location, open_array
from ..errors import StoreFormatError
from .format import MAX_METADATA_BYTES

PathLike = str | os.PathLike


class StoreRoot:
    """A store's root: a local folder (``local``) or a :class:`~bigquant._objstore.Location`
    (``where``). ``path`` is what a store reports as its path: a Path, or the URL; ``name`` is
    how messages quote it."""

    def __init__(self, path: PathLike | Location) -> None:
        self.where: Location | None = None
        self.local: Path | None = None
        if isinstance(path, Location):
            self.where = path
        else:
            self.local = Path(path)
        self.path: Path | str = path.url if isinstance(path, Location) else Path(path)
        self.name = str(self.path)

    @property
    def _fs(self) -> Any:
        return self.where.fs  # type: ignore[union-attr]

    def _key(self, key: str) -> str:
        return f"{self.where.path}/{key}"  # type: ignore[union-attr]

    def _ask(self, method: str, *args: Any) -> Any:
        """One request to the object store; a refusal other than "not found" is one line."""
        try:
            return getattr(self._fs, method)(*args)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise StoreFormatError(f"cannot read store {self.name!r}: {describe_error(exc)}") from None

    def exists(self) -> bool:
        if self.local is not None:
            return self.local.exists()
        self._fs.invalidate_cache(self.where.path)  # type: ignore[union-attr]
        return bool(self._ask("exists", self.where.path))  # type: ignore[union-attr]

    def is_folder(self) -> bool:
        return self.local.is_dir() if self.local is not None else not self._fs.isfile(self.where.path)  # type: ignore[union-attr]

    def size(self, key: str) -> int | None:
        """Bytes of the file at ``key``, None where there is none."""
        try:
            if self.local is not None:
                p = self.local / key
                return p.stat().st_size if p.is_file() else None
            info = self._ask("info", self._key(key))
            return int(info["size"]) if info.get("type") == "file" else None
        except (OSError, KeyError):
            return None

    def has(self, key: str) -> bool:
        return self.size(key) is not None

    def read(self, key: str) -> bytes:
        """The bytes at ``key``; raises OSError (FileNotFoundError where there are none)."""
        if self.local is not None:
            return (self.local / key).read_bytes()
        return bytes(self._ask("cat_file", self._key(key)))

    def check(self, key: str) -> None:
        """Refuse a metadata document larger than :data:`MAX_METADATA_BYTES`, before anything parses
        it (a missing one is left to the caller)."""
        size = self.size(key)
        if size is not None and size > MAX_METADATA_BYTES:
            raise StoreFormatError(
                f"store {self.name!r} is damaged: its {key} has {size} bytes, "
                f"more than the {MAX_METADATA_BYTES} a store's metadata can need"
            )

    def document(self, key: str) -> Any:
        """The parsed JSON document at ``key``, within the size limit."""
        self.check(key)
        try:
            return json.loads(self.read(key))
        except (OSError, ValueError) as exc:
            raise StoreFormatError(
                f"store {self.name!r} is damaged: unreadable {key.rsplit('/', 1)[-1]} ({type(exc).__name__})"
            ) from exc

    def ref(self, key: str) -> str | Location:
        """What a task opens ``key`` by: an absolute path (workers may run in other folders), or a URL."""
        if self.local is not None:
            return os.path.abspath(self.local / key)
        return self.where.child(key)  # type: ignore[union-attr]

    def array(self, key: str) -> Any:
        """The zarr array at ``key``, its metadata document checked first."""
        self.check(f"{key}/zarr.json")
        try:
            return open_array(self.ref(key), "r")
        except Exception as exc:  # zarr raises several kinds for damaged metadata
            raise StoreFormatError(
                f"store {self.name!r} is damaged: its '{key}' array cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc

    def missing(self, key: str, chunk_keys: Iterable[str]) -> int:
        """How many of ``chunk_keys`` (relative to the array ``key``) are not there as files;
        on object storage from one listing, not one request per chunk."""
        if self.local is not None:
            base = self.local / key
            return sum(1 for c in chunk_keys if not (base / c).is_file())
        prefix = self._key(key).strip("/") + "/"
        self._fs.invalidate_cache(self._key(key))
        found = {k.strip("/")[len(prefix) :] for k in self._fs.find(self._key(f"{key}/c"))}
        return sum(1 for c in chunk_keys if c not in found)

    def stamp(self) -> tuple:
        """What changes whenever the store is rewritten: the root's inode and mtime on disk, the
        root document's hash on object storage (it holds the ``created`` time)."""
        if self.local is not None:
            zj = (self.local / "zarr.json").stat()
            return (zj.st_ino, zj.st_mtime_ns)
        return (hashlib.sha256(self.read("zarr.json")).hexdigest(),)

    def nbytes(self) -> int:
        """Bytes of every file of the store (on object storage from a listing; 0 if refused)."""
        if self.local is not None:
            return store_bytes(self.local)
        try:
            return int(self._fs.du(self.where.path))  # type: ignore[union-attr]
        except Exception:  # a listing refused: the accounting is all that is missing
            return 0


def store_bytes(path: PathLike) -> int:
    """Bytes on disk of every file in a store (or any folder or file)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def store_root(path: PathLike | Location, storage_options: dict | None = None) -> StoreRoot:
    """The :class:`StoreRoot` of a local path, a URL (with ``storage_options``) or a Location."""
    return StoreRoot(location(path, storage_options) or path)


__all__ = ["StoreRoot", "store_bytes", "store_root"]
