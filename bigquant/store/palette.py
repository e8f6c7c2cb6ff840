"""Reading palettes: a codebook fitted across images, or a full store's codebook for ``--codebook``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from ..errors import StoreFormatError
from .format import CODEBOOK, PALETTE
from .metadata import check_document, read_metadata

PathLike = str | os.PathLike


def read_codebook(path: PathLike) -> tuple[np.ndarray, dict]:
    """The codebook (K, C) and metadata of a palette or of a full store (``--codebook``)."""
    p = Path(path)
    meta = read_metadata(p)
    check_document(p / CODEBOOK / "zarr.json", p)
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


__all__ = ["Palette", "read_codebook"]
