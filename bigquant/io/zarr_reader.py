"""The pixels of a Zarr input, each read checked against what the input held when it was opened.

A compress reads its input two or more times (the fit's passes, then the label pass). A TIFF is
one file, stamped by its (mtime, size); a Zarr array is a folder of chunk files, so here every
stored chunk (a shard, where the array has shards) and the array's metadata document are stamped
once, before any pixel is read, and every read re-stamps the chunks it covered, after reading
them. A chunk rewritten, deleted or added between or during the passes is an InputError, never a
store that mixes two versions of the input.

A stamp is the file's size, inode number, modification and status-change times (``st_size``,
``st_ino``, ``st_mtime_ns``, ``st_ctime_ns``). A chunk replaced by a rename (written to a
temporary file, then moved over the old one) has a new inode, so it is caught whatever its size
and times. The status-change time cannot be set back (``touch -d`` moves it too), so a rewrite
in place is caught as soon as the clock that stamps it has ticked since the file's previous
change. The one change that looks unchanged: the same inode (a rewrite in place, or a delete
and re-create that happens to get the inode number back) with the same size, whose write falls
in the same tick of the file system's timestamp clock as the change before bigquant stamped
the file: within a few milliseconds on Linux file systems with nanosecond timestamps (the
kernel's coarse clock), 1 or 2 s on those without (ext3, FAT, some network file systems).
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import numpy as np
import zarr

from ..errors import InputError

#: Most stored chunks (or shards) a Zarr input may have: each is a file to stamp and, for every
#: pass, to open. 2**20 is a 68-gigapixel image in 256 x 256 chunks.
MAX_SOURCE_CHUNKS = 2**20
#: The metadata documents a change of which changes the array (Zarr v3, then v2).
_METADATA = ("zarr.json", ".zarray")


#: The stamp of a chunk with no file (zarr reads the fill value there).
_MISSING = (-1, -1, -1, -1)


def _stamp(path: str) -> tuple[int, int, int, int]:
    """(mtime_ns, size, inode, ctime_ns) of ``path``; :data:`_MISSING` where there is no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _MISSING
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns


def _digest(stamp: tuple[int, int, int, int]) -> int:
    """A 64-bit digest of a chunk's stamp: a quarter of its size in the graph, and a changed
    stamp that keeps its digest is a 2**-64 chance."""
    raw = b"".join(int(v).to_bytes(8, "little", signed=True) for v in stamp)
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


class ZarrReader:
    """Picklable stand-in for one Zarr array, for :func:`dask.array.from_array`.

    Holds the array's path, its storage grid and a digest of each of its chunk files' stamps (8
    bytes per stored chunk: 3 MiB for 100 gigapixels in chunks of 512 x 512), so it pickles small
    enough to travel in the graph once without distributed's warning of a large graph.

    Parameters
    ----------
    root : str
        Absolute path of the Zarr folder (array or group).
    component : str or None
        The array's path inside ``root``, or None for an array at ``root``.
    where : str
        How messages name the input (``input 'x.zarr'``).
    """

    def __init__(self, root: str, component: str | None, where: str) -> None:
        self.root = root
        self.component = component or ""
        self.where = where
        arr = zarr.open_array(root, path=self.component, mode="r")
        self.shape = tuple(int(n) for n in arr.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(arr.dtype)
        # The storage grid: shards are the files where there are any, else chunks.
        self.grid = tuple(int(n) for n in (getattr(arr, "shards", None) or arr.chunks))
        counts = tuple(math.ceil(n / g) if n else 0 for n, g in zip(self.shape, self.grid, strict=True))
        total = math.prod(counts)
        if total > MAX_SOURCE_CHUNKS:
            chunk = " x ".join(str(g) for g in self.grid)
            raise InputError(
                f"{where} is stored in {total:,} chunks of {chunk}, more than bigquant reads "
                f"({MAX_SOURCE_CHUNKS:,}: each is a file to open on every pass); rewrite it in larger "
                "chunks, e.g. 512 x 512 pixels"
            )
        self._encode = arr.metadata.encode_chunk_key
        self.folder = os.path.join(root, self.component) if self.component else root
        self.meta_stamp = self._meta_stamp()
        self.stamps = np.empty(counts, np.uint64)
        for coords in np.ndindex(*counts):
            self.stamps[coords] = _digest(_stamp(self._key_path(coords)))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_encode"]  # a bound method of zarr's metadata: rebuilt after unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._encode = zarr.open_array(self.root, path=self.component, mode="r").metadata.encode_chunk_key

    def __dask_tokenize__(self) -> tuple:
        return ("bigquant-zarr", self.root, self.component, self.meta_stamp, self.stamps.tobytes())

    def __repr__(self) -> str:
        return f"ZarrReader({self.root!r}, {self.component!r}, shape={self.shape}, dtype={self.dtype})"

    def _key_path(self, coords: tuple[int, ...]) -> str:
        return os.path.join(self.folder, *self._encode(tuple(int(c) for c in coords)).split("/"))

    def _meta_stamp(self) -> tuple[int, int, int, int]:
        for name in _METADATA:
            stamp = _stamp(os.path.join(self.folder, name))
            if stamp != _MISSING:
                return stamp
        return _MISSING

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        # Dask passes slices, and integers where the graph took one index of an axis (the axes
        # of length 1 beside rows, cols and channels): read those as 1-long slices, then drop them.
        sel = tuple(
            slice(*k.indices(n)) if isinstance(k, slice) else slice(int(k) % n, int(k) % n + 1)
            for k, n in zip(key, self.shape, strict=True)
        )
        region = ", ".join(f"{s.start}:{s.stop}" for s in sel)
        try:
            block = np.asarray(zarr.open_array(self.root, path=self.component, mode="r")[sel])
        except Exception as exc:  # a chunk zarr cannot decode: a damaged input, not a bug
            raise InputError(f"cannot read [{region}] of {self.where}: {type(exc).__name__}: {exc}") from exc
        self.check_unchanged(sel)
        dropped = tuple(i for i, k in enumerate(key) if not isinstance(k, slice))
        return block.squeeze(axis=dropped) if dropped else block

    def check_unchanged(self, sel: tuple[slice, ...]) -> None:
        """Raise InputError if a stored chunk under ``sel``, or the metadata, is not as it was
        when this reader was made."""
        if self._meta_stamp() != self.meta_stamp:
            raise self._changed("its metadata")
        spans = [range(s.start // g, -(-s.stop // g)) for s, g in zip(sel, self.grid, strict=True)]
        for coords in np.ndindex(*(len(r) for r in spans)):
            c = tuple(r[i] for r, i in zip(spans, coords, strict=True))
            if _digest(_stamp(self._key_path(c))) != int(self.stamps[c]):
                raise self._changed(f"its chunk {self._encode(c)!r}")

    def _changed(self, what: str) -> InputError:
        return InputError(
            f"{self.where} changed on disk while it was read ({what} was rewritten, added or deleted); "
            "nothing was written: run again once it no longer changes"
        )


def zarr_source(root: str, component: str | None, where: str) -> ZarrReader:
    """A :class:`ZarrReader` of the array ``component`` of ``root``, named ``where`` in messages."""
    return ZarrReader(root, component, where)
