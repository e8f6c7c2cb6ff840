"""Read a bigquant store with zarr, dask and xarray alone: bigquant is never imported.

A store (format version 2) is a plain Zarr v3 group with consolidated metadata: ``labels`` is an
OME-Zarr multiscale label image whose array ``labels/0`` (rows, cols) uint8/uint16, dimension
names ``["y", "x"]``, holds the full-resolution labels and ``labels/1``, ``labels/2``, ... the
halved levels; ``codebook`` (K, C) has ``["label", "channel"]``; the metadata is the group
attribute ``bigquant``. This script opens one three ways, rebuilds the image
``codebook[labels/0]`` with each (lazily with dask and xarray), checks the three agree, checks
the per-label pixel counts against the metadata, and lists the pyramid's levels.

Run::

    python examples/read_without_bigquant.py                   # makes a store of china.jpg first
    python examples/read_without_bigquant.py scan.bq.zarr      # or reads yours

Without an argument it creates ``china.bq.zarr`` in a temporary folder (``--out-dir`` to choose
it) by running the command line ``python -m bigquant.cli compress --sample`` in a subprocess, so
this process still never imports bigquant.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr


def make_store(out_dir: Path) -> Path:
    """Compress scikit-learn's china.jpg with bigquant's command line, in another process."""
    path = out_dir / "china.bq.zarr"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bigquant.cli",
            "compress",
            "--sample",
            "-k",
            "16",
            "-o",
            str(path),
            "--overwrite",
            "-q",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return path


def with_zarr(path: Path) -> tuple[dict, np.ndarray]:
    """zarr + NumPy: the metadata, and the whole image in memory (fine for small stores)."""
    group = zarr.open_group(path, mode="r")
    meta = dict(group.attrs["bigquant"])
    codebook = group["codebook"][...]  # (K, C)
    labels = group["labels/0"]  # a zarr array; slicing reads only those chunks
    levels = group["labels"].attrs["ome"]["multiscales"][0]["datasets"]
    print("levels: " + ", ".join(f"labels/{d['path']} {group['labels/' + d['path']].shape}" for d in levels))
    print(
        f"zarr:   labels {labels.shape} {labels.dtype} chunks {labels.chunks} "
        f"dims {labels.metadata.dimension_names}; codebook {codebook.shape} {codebook.dtype}"
    )
    print(f"        top-left pixel {codebook[labels[0, 0]]} (label {labels[0, 0]})")
    return meta, codebook[labels[...]]


def with_dask(path: Path) -> tuple[da.Array, da.Array]:
    """dask: lazy labels straight from the store, decoded chunk by chunk."""
    labels = da.from_zarr(str(path), component="labels/0")
    codebook = da.from_zarr(str(path), component="codebook").compute()  # K x C: tiny
    image = labels.map_blocks(
        lambda block: codebook[block], new_axis=2, chunks=labels.chunks + ((codebook.shape[1],),), dtype=codebook.dtype
    )
    print(
        f"dask:   image {image.shape} {image.dtype}, {image.npartitions} chunks, "
        f"{image.nbytes / 1e6:.1f} MB when decoded"
    )
    return labels, image


def with_xarray(path: Path) -> xr.DataArray:
    """xarray: the root opens as a Dataset holding the codebook, the labels group as one holding
    the levels (each level its own Dataset: they share the dimension names y and x)."""
    codebook = xr.open_zarr(path)["codebook"].values
    levels = zarr.open_group(path, mode="r")["labels"].attrs["ome"]["multiscales"][0]["datasets"]
    labels = xr.open_zarr(path, group="labels", drop_variables=[d["path"] for d in levels[1:]])["0"]
    image = xr.apply_ufunc(
        lambda lab: codebook[lab],
        labels,
        dask="parallelized",
        output_core_dims=[["channel"]],
        output_dtypes=[codebook.dtype],
        dask_gufunc_kwargs={"output_sizes": {"channel": codebook.shape[1]}},
    )
    print(f"xarray: labels dims {labels.dims}, image dims {image.dims} sizes {dict(image.sizes)}")
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", type=Path, help="a bigquant store (default: make one of china.jpg)")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="where to make the store when none is given (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    if args.store is None:
        out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bigquant-example-"))
        out_dir.mkdir(parents=True, exist_ok=True)
        args.store = make_store(out_dir)
    print(f"reading {args.store}")

    meta, in_memory = with_zarr(args.store)
    labels, lazy = with_dask(args.store)
    image_xr = with_xarray(args.store)
    print(
        f"metadata: K={meta['k']}, shape {meta['shape']}, PSNR {meta['psnr']:.2f} dB, "
        f"format_version {meta['format_version']}"
    )

    # the three readings agree (on a window, so a huge store is not decoded whole)
    window = (slice(0, 256), slice(0, 256))
    a = in_memory[window]
    b = lazy[window].compute()
    c = image_xr.isel(y=window[0], x=window[1]).values
    assert np.array_equal(a, b) and np.array_equal(a, c), "zarr, dask and xarray disagree"
    # and the metadata's pixel counts per label are those of the labels
    counts = da.bincount(labels.ravel().astype(np.int64), minlength=meta["k"]).compute()
    assert counts.tolist() == meta["label_counts"], "label_counts disagree with the labels"
    print(f"zarr, dask and xarray agree on a {a.shape[0]} x {a.shape[1]} window; label counts match the metadata")

    assert "bigquant" not in sys.modules, "bigquant was imported"
    print("done without importing bigquant")


if __name__ == "__main__":
    main()
