"""Labels + codebook -> the lazy reconstruction ``codebook[labels]``, chunk by chunk.

A leaf of the house: the store's reader (:meth:`bigquant.Store.reconstruct`) and the image
writers (a TIFF looks its tiles up one by one) both use it, and neither imports the other.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from .errors import StoreFormatError


def lookup(labels: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """``codebook[labels]``, or StoreFormatError if a label reaches K or beyond (a damaged store)."""
    k = codebook.shape[0]
    if labels.size and int(labels.max()) >= k:
        raise StoreFormatError(
            f"the store's labels hold the value {int(labels.max())}, but its codebook has only K={k} entries"
        )
    return codebook[labels]


def reconstruct(labels: da.Array, codebook: np.ndarray) -> da.Array:
    """The reconstruction of an image from its labels and codebook, as a lazy dask array.

    Parameters
    ----------
    labels : dask array of shape (rows, cols), uint8 or uint16
    codebook : ndarray of shape (K, C)

    Returns
    -------
    dask array of shape (rows, cols, C), dtype of ``codebook``
        Chunked like ``labels``. Computing a chunk raises :class:`StoreFormatError` if its
        labels reach K or beyond.
    """
    cb = np.asarray(codebook)
    c = cb.shape[1]
    cbd = dask.delayed(cb, pure=True)
    return da.map_blocks(
        lookup,
        labels,
        cbd,
        new_axis=2,
        chunks=labels.chunks + ((c,),),
        dtype=cb.dtype,
        meta=np.empty((0, 0, 0), dtype=cb.dtype),
        token="bigquant-reconstruct",
    )
