"""``bigquant decode``: write the reconstruction codebook[labels] of a store."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from . import options
from ._cluster import scheduler
from .common import bar, progress

NAME = "decode"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    d = sub.add_parser(
        NAME,
        help="write the reconstruction codebook[labels] of a store",
        description="Stream a store's reconstruction to .tif/.tiff (tiled BigTIFF), .ome.tif "
        "(pyramidal OME-TIFF), .zarr, .ome.zarr (OME-Zarr with labels), or .png/.jpg (small images).",
    )
    d.add_argument("store", help="bigquant store (.bq.zarr)")
    d.add_argument(
        "-o", "--output", required=True, help="output image: .tif, .tiff, .ome.tif, .zarr, .ome.zarr, .png, .jpg"
    )
    d.add_argument(
        "--compression",
        default="zlib",
        type=options.compression,
        help="TIFF compression: zlib (Deflate, the default), zstd, lzw or none; for .zarr anything but none means zstd",
    )
    d.add_argument(
        "--compression-level",
        type=int,
        metavar="N",
        help="level of that compression (default: 1 for zlib, the fastest; zstd 3)",
    )
    options.add_run_options(d)
    return d


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api

    with scheduler(args, err), bar(progress(args, err), err):
        path = api.decode(
            args.store,
            args.output,
            overwrite=args.overwrite,
            memory_limit=args.memory_limit,
            compression=args.compression,
            compression_level=args.compression_level,
        )
    print(f"wrote {path}", file=out)
    return 0
