"""``bigquant info``: summarise a store or a palette, or describe any input image and plan its compress."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from . import options

NAME = "info"

EXAMPLES = """
  bigquant info scan.bq.zarr                  # the summary of compress, the bound, the source
  bigquant info scan.bq.zarr --json | jq .psnr
  bigquant info palette.bq.zarr               # a palette from bigquant fit
  bigquant info slide.svs -k 32               # an input: series, levels, pixel size, plan, estimate
  bigquant info cells.zarr --axes CYX --json  # a channels-first array, for scripts
  bigquant info s3://bucket/scan.bq.zarr      # a store (or an input) on object storage
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    i = sub.add_parser(
        NAME,
        help="summarise a store, or describe an input image and plan its compress",
        description="Print a store's metadata and accounting (or a palette's); or, for an input image "
        "(any format compress reads), its format, series and levels, tiles, pixel size and bands, the "
        "path and chunks a compress would use, and an estimate of its passes, time and peak memory. "
        "Reads only metadata and, for the estimate, six of the input's tiles.",
        epilog=options.epilog(EXAMPLES),
    )
    g = options.groups(i, "input", "fit", "output", "diagnostics")
    g["input"].add_argument(
        "path", metavar="PATH", help="a bigquant store or palette (.bq.zarr), or an input image; a path or a URL"
    )
    options.add(
        g["input"],
        *options.SOURCE_OPTIONS,
        "chunks",
        chunks="chunk shape of the compress to plan, instead of one derived from --memory-limit (inputs only)",
    )
    options.add(
        g["fit"],
        "k",
        "method",
        "max_iter",
        "memory_limit",
        k="K of the compress to plan, 1-65536 (default 16; inputs only)",
        method="path of the compress to plan (default auto; inputs only)",
        max_iter="most Lloyd iterations of the compress to plan (default 100; inputs only)",
        memory_limit="memory budget of the compress to plan (default 1GiB; inputs only)",
    )
    g["output"].add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    options.add(g["diagnostics"], "debug")
    return i


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import store
    from .._objstore import location, parse_storage_options

    storage_options = parse_storage_options(args.storage_options)
    path = location(args.path, storage_options) or args.path
    if store.is_store(path) or (path is args.path and _not_an_object(str(args.path))):
        return _store_info(path, args, out)  # the latter refused as a store: its zarr.json is no JSON object
    from .. import io, planning, report

    info = io.inspect(args.path, level=args.level, series=args.series, axes=args.axes, storage_options=storage_options)
    est = planning.estimate(
        info,
        k=options.k_value(args.k),
        method=args.method,
        memory_limit=args.memory_limit,
        chunks=args.chunks,
        max_iter=args.max_iter,
    )
    if args.json:
        print(json.dumps({**info.to_dict(), "estimate": est.to_dict()}), file=out)
    else:
        print("\n".join(report.input_lines(info.to_dict(), est.to_dict())), file=out)
    return 0


def _store_info(path: Any, args: argparse.Namespace, out: TextIO) -> int:
    from .. import report, store

    opened = store.open(path)
    if isinstance(opened, store.Palette):  # a codebook without labels
        meta = opened.metadata
        if args.json:
            print(json.dumps({**meta, "path": str(args.path)}, default=str), file=out)
        else:
            print("\n".join(report.palette_lines(args.path, meta)), file=out)
        return 0
    info = opened.info()
    if args.json:  # with input_bytes and input_ratio from the recorded source_bytes, as compress --json
        print(json.dumps(report.summary_object(info, info.get("source_bytes")), default=str), file=out)
    else:
        print("\n".join(report.info_lines(info)), file=out)
    return 0


def _not_an_object(path: str) -> bool:
    """True for a folder whose ``zarr.json`` is valid JSON but not an object (a list, a number):
    neither a store nor a Zarr image, which the store's reader says in one plain line."""
    from ..store.metadata import MAX_METADATA_BYTES

    zj = Path(path) / "zarr.json"
    try:
        if not zj.is_file() or zj.stat().st_size > MAX_METADATA_BYTES:
            return False
        return not isinstance(json.loads(zj.read_bytes()), dict)
    except (OSError, ValueError):
        return False
