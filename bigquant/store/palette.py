"""Reading palettes: a codebook fitted across images, or a full store's codebook for ``--codebook``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._objstore import Location
from ..errors import StoreFormatError
from .format import CODEBOOK, PALETTE
from .metadata import read_metadata
from .root import StoreRoot

PathLike = str | os.PathLike


def checked_codebook(root: StoreRoot, meta: dict) -> np.ndarray:
    """The codebook (K, C) of the store or palette at ``root``, whose validated metadata is ``meta``.

    Its shape and dtype must agree with the metadata, its one chunk must be there (writers
    always write it, zeros included: zarr would read a missing chunk as zeros), and a float
    codebook must be finite; raises StoreFormatError naming what is wrong.
    """
    p = root.name
    if not root.has(f"{CODEBOOK}/zarr.json"):
        raise StoreFormatError(f"store {p!r} has no '{CODEBOOK}' array")
    k = meta["k"]
    c = meta["channels"] if meta.get("kind") == PALETTE else meta["shape"][2]
    codebook = root.array(CODEBOOK)
    if tuple(codebook.shape) != (k, c):
        raise StoreFormatError(
            f"store {p!r}: codebook shape {tuple(codebook.shape)} disagrees with the metadata (K={k}, C={c})"
        )
    if np.dtype(codebook.dtype) != np.dtype(meta["dtype"]):
        raise StoreFormatError(
            f"store {p!r}: codebook dtype {codebook.dtype} disagrees with the metadata dtype {meta['dtype']}"
        )
    try:
        missing = codebook.nchunks_initialized < codebook.nchunks
        cb = np.asarray(codebook[...])
    except Exception as exc:
        raise StoreFormatError(
            f"store {p!r} is damaged: its codebook cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if missing:
        raise StoreFormatError(f"store {p!r} is damaged: its codebook data is missing")
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise StoreFormatError(f"store {p!r}: codebook holds NaN or inf")
    return cb


def read_codebook(path: PathLike | Location) -> tuple[np.ndarray, dict]:
    """The codebook (K, C) and metadata of a palette or of a full store (``--codebook``), at a
    local path or a :class:`~bigquant._objstore.Location`."""
    root = StoreRoot(path)
    meta = read_metadata(root)
    return checked_codebook(root, meta), meta


@dataclass
class Palette:
    """A codebook fitted across several images (see :func:`bigquant.fit`).

    Attributes
    ----------
    path : Path
    codebook : ndarray of shape (K, C)
    metadata : dict
    """

    path: Path | str
    codebook: np.ndarray
    metadata: dict

    @classmethod
    def read(cls, path: PathLike | Location) -> Palette:
        """The palette (or a full store's codebook) at ``path`` (a local path or a Location), validated."""
        cb, meta = read_codebook(path)
        return cls(path=StoreRoot(path).path, codebook=cb, metadata=meta)


__all__ = ["Palette", "checked_codebook", "read_codebook"]
