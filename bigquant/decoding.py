"""A store's reconstruction to image files: TIFF, Zarr, PNG, JPEG, OME-Zarr or OME-TIFF (io's writers).

Named ``decoding``, not ``decode``: a submodule ``bigquant.decode`` would shadow the function
:func:`bigquant.decode` once imported.

The labels are streamed to the writers with the codebook as their palette, so a TIFF is
computed one strip of labels at a time and looked up tile by tile; nothing the size of the
image is held in memory. OME-Zarr and OME-TIFF outputs take their reduced levels from the
store's label pyramid (``codebook[labels/l]``), never by resampling the full-size image; the
store's ``pixel_size`` and ``bands`` travel to every output.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import io
from ._dask import on_default_scheduler
from ._staging import check_apart
from .chunking import parse_memory_limit
from .store import Store

PathLike = str | os.PathLike


def decode_store(
    store: PathLike | Store,
    output: PathLike,
    *,
    overwrite: bool = False,
    memory_limit: str | int | None = None,
    compression: str | None = "zlib",
    compression_level: int | None = None,
) -> Path:
    """Write the reconstruction of ``store`` to ``output`` (see :func:`bigquant.decode`).

    Raises before writing anything if the output is, holds or lies inside the store (replacing
    it could delete the store), exists (without ``overwrite``) or has an unknown extension.
    """
    io.check_output_path(output, overwrite=overwrite)
    check_apart([store.path if isinstance(store, Store) else store], [output])
    s = store if isinstance(store, Store) else Store(store)
    meta = s.metadata
    if io.is_ome_zarr(output):
        return io.write_ome_zarr(s.pyramid(), s.codebook, output, overwrite=overwrite, metadata=meta)
    if io.is_ome_tiff(output):
        return io.write_ome_tiff(
            s.pyramid(),
            s.codebook,
            io.check_output_path(output, overwrite=overwrite),
            overwrite,
            parse_memory_limit(memory_limit),
            compression=compression,
            compression_level=compression_level,
            bands=s.bands,
            pixel_size=s.pixel_size,
        )
    return io.write_image(
        s.labels,
        output,
        overwrite=overwrite,
        memory_limit=memory_limit,
        compression=compression,
        compression_level=compression_level,
        palette=s.codebook,
        bands=s.bands,
        pixel_size=s.pixel_size,
    )


@on_default_scheduler
def decode(
    store: PathLike | Store,
    output: PathLike,
    *,
    overwrite: bool = False,
    memory_limit: str | int | None = None,
    compression: str | None = "zlib",
    compression_level: int | None = None,
) -> Path:
    """Write the reconstruction of a store to ``.tif`` (tiled BigTIFF), ``.zarr``, ``.png``, ``.jpg``,
    ``.ome.zarr`` (NGFF 0.5 image + labels) or ``.ome.tif`` (pyramidal OME-TIFF), see docs/cli.md.

    Streams chunk by chunk for TIFF and Zarr; PNG and JPEG only for images that fit the budget.
    Raises before writing anything if the output exists (without ``overwrite``) or its
    extension is unknown. ``compression`` and ``compression_level`` apply to TIFF (a tifffile
    compression name, or None; default Deflate at level 1) and Zarr (None, or zstd) outputs, as
    in :func:`bigquant.io.write_image`.
    """
    return decode_store(
        store,
        output,
        overwrite=overwrite,
        memory_limit=memory_limit,
        compression=compression,
        compression_level=compression_level,
    )
