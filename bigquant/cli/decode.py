"""``bigquant decode``: write the reconstruction codebook[labels] of a store."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from . import options
from ._cluster import scheduler
from .common import renderer

NAME = "decode"

EXAMPLES = """
  bigquant decode scan.bq.zarr -o recon.tif                          # tiled BigTIFF, Deflate level 1
  bigquant decode scan.bq.zarr -o small.tif --compression-level 6    # smaller, slower
  bigquant decode scan.bq.zarr -o recon.tif --compression zstd
  bigquant decode scan.bq.zarr -o recon.zarr                         # Zarr v3, zstd
  bigquant decode scan.bq.zarr -o scan.ome.zarr                      # OME-Zarr image + labels (napari)
  bigquant decode scan.bq.zarr -o scan.ome.tif                       # pyramidal OME-TIFF (sub-IFDs)
  bigquant decode small.bq.zarr -o recon.png                         # PNG/JPEG: images that fit in memory
  bigquant decode s3://bucket/scan.bq.zarr -o s3://bucket/scan.ome.zarr --storage-options '{"anon": false}'
"""

OUTPUTS = (
    ".tif/.tiff (tiled BigTIFF), .ome.tif/.ome.tiff (pyramidal OME-TIFF), .zarr (Zarr v3), .ome.zarr "
    "(OME-Zarr 0.5: image + labels), .png, .jpg/.jpeg (images within half the memory budget)"
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    d = sub.add_parser(
        NAME,
        help="write the reconstruction codebook[labels] of a store",
        description="Stream a store's reconstruction codebook[labels] to an image file; the extension of -o "
        f"chooses the format: {OUTPUTS}.",
        epilog=options.epilog(EXAMPLES),
    )
    g = options.groups(d, "input", "output", "cluster", "diagnostics")
    g["input"].add_argument("store", help="bigquant store (.bq.zarr): a path, or a URL (s3://, gs://, az://, https://)")
    options.add(g["input"], "storage_options")
    g["output"].add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help=f"image to write: {OUTPUTS}; or a URL: .zarr and .ome.zarr are written in place (root metadata "
        "last), other formats locally first and then uploaded",
    )
    g["output"].add_argument(
        "--compression",
        default="zlib",
        type=options.compression,
        choices=options.COMPRESSIONS,
        help="TIFF compression (default zlib, i.e. Deflate); for .zarr anything but none means zstd; "
        "PNG and JPEG ignore it",
    )
    g["output"].add_argument(
        "--compression-level",
        type=int,
        metavar="N",
        help="level of that compression (default: 1 for zlib, the fastest; zstd 3; lzw takes none)",
    )
    options.add_run_options(g)
    return d


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api
    from .._objstore import parse_storage_options
    from ..progress import Pass
    from .tasks import watching  # with the library: --help stays light

    storage_options = parse_storage_options(args.storage_options)
    r = renderer(args, err)
    with scheduler(args, err) as client, watching(r, client):
        if r is not None:
            r(Pass("decode"))
        path = api.decode(
            args.store,
            args.output,
            overwrite=args.overwrite,
            memory_limit=args.memory_limit,
            compression=None if args.compression == "none" else args.compression,
            compression_level=args.compression_level,
            storage_options=storage_options,
        )
    print(f"wrote {path}", file=out)
    return 0
