"""A store's reconstruction to image files: TIFF, Zarr, PNG, JPEG, OME-Zarr or OME-TIFF (io's writers).

Named ``decoding``, not ``decode``: a submodule ``bigquant.decode`` would shadow the function
:func:`bigquant.decode` once imported.

The labels are streamed to the writers with the codebook as their palette, so a TIFF is
computed one strip of labels at a time and looked up tile by tile; nothing the size of the
image is held in memory. OME-Zarr and OME-TIFF outputs take their reduced levels from the
store's label pyramid (``codebook[labels/l]``), never by resampling the full-size image; the
store's ``pixel_size`` and ``bands`` travel to every output.

Stores and outputs may be URLs (:mod:`bigquant._objstore`). A Zarr or OME-Zarr output there is
written in place, its root ``zarr.json`` last (:class:`~bigquant._objstore.RemoteStaging`); a
TIFF, PNG or JPEG needs a seekable file, so it is written to a local temporary folder and then
uploaded as one object, which appears whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import io
from ._dask import on_default_scheduler
from ._objstore import Location, check_urls_apart, location, upload
from ._staging import check_apart
from .chunking import parse_memory_limit
from .store import Store

PathLike = str | os.PathLike


def _write(
    s: Store,
    output: Path | Location,
    overwrite: bool,
    memory_limit: str | int | None,
    compression: str | None,
    compression_level: int | None,
) -> None:
    """Write ``s``'s reconstruction to ``output``, checked already (a Location only for Zarr)."""
    if io.is_ome_zarr(str(output)):
        io.write_ome_zarr(s.pyramid(), s.codebook, output, overwrite=overwrite, metadata=s.metadata)
    elif io.is_ome_tiff(str(output)) and isinstance(output, Path):
        io.write_ome_tiff(
            s.pyramid(),
            s.codebook,
            output,
            overwrite,
            parse_memory_limit(memory_limit),
            compression=compression,
            compression_level=compression_level,
            bands=s.bands,
            pixel_size=s.pixel_size,
        )
    else:
        io.write_image(
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
    storage_options: dict | None = None,
) -> Path | str:
    """Write the reconstruction of a store to ``.tif`` (tiled BigTIFF), ``.zarr``, ``.png``, ``.jpg``,
    ``.ome.zarr`` (NGFF 0.5 image + labels) or ``.ome.tif`` (pyramidal OME-TIFF), see docs/cli.md.

    Streams chunk by chunk for TIFF and Zarr; PNG and JPEG only for images that fit the budget.
    Raises before writing anything if the output exists (without ``overwrite``), is, holds or lies
    inside the store (replacing it could delete the store), or its extension is unknown.
    ``compression`` and ``compression_level`` apply to TIFF (a tifffile compression name, or
    None; default Deflate at level 1) and Zarr (None, or zstd) outputs, as in
    :func:`bigquant.io.write_image`.

    ``store`` and ``output`` may be URLs (``s3://``, ``gs://``, ``az://``, ``memory://``; ``https://``
    to read), opened with fsspec's ``storage_options``. A Zarr or OME-Zarr output there is written
    in place with its root metadata last (``--overwrite`` is then no swap: docs/store-format.md);
    any other format is written to a local temporary file (``$TMPDIR``) and uploaded. Returns the
    output's path, or its URL.
    """
    out = location(output, storage_options)
    if isinstance(store, (str, os.PathLike)):
        store = location(store, storage_options) or store  # type: ignore[assignment]
    if out is None:
        io.check_output_path(output, overwrite=overwrite)
        check_apart([store.path if isinstance(store, Store) else store], [output])
    else:
        io.check_output_url(out, overwrite=overwrite)
        check_urls_apart([store.root.where if isinstance(store, Store) else store], [out])
    s = store if isinstance(store, Store) else Store(store)
    args = (memory_limit, compression, compression_level)
    if out is None:
        _write(s, Path(output), overwrite, *args)
        return Path(output)
    if out.suffix.lower() == ".zarr":
        _write(s, out, overwrite, *args)
        return out.url
    with tempfile.TemporaryDirectory(prefix="bigquant-decode-") as folder:
        local = Path(folder) / out.name
        _write(s, local, False, *args)
        upload(local, out)
    return out.url
