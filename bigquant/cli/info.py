"""``bigquant info``: summarise a store or a palette."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from . import options

NAME = "info"


EXAMPLES = """
  bigquant info scan.bq.zarr                  # the summary of compress, the bound, the source
  bigquant info scan.bq.zarr --json | jq .psnr
  bigquant info palette.bq.zarr               # a palette from bigquant fit
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    i = sub.add_parser(
        NAME,
        help="summarise a store",
        description="Print a store's metadata and accounting (or a palette's).",
        epilog=options.epilog(EXAMPLES, sizes=False),
    )
    g = options.groups(i, "input", "output", "diagnostics")
    g["input"].add_argument("store", help="bigquant store or palette (.bq.zarr)")
    g["output"].add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    options.add(g["diagnostics"], "debug")
    return i


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import report, store

    opened = store.open(args.store)
    if isinstance(opened, store.Palette):  # a codebook without labels
        meta = opened.metadata
        if args.json:
            print(json.dumps({**meta, "path": str(args.store)}, default=str), file=out)
        else:
            print("\n".join(report.palette_lines(args.store, meta)), file=out)
        return 0
    info = opened.info()
    if args.json:
        print(json.dumps(info, default=str), file=out)
    else:
        print("\n".join(report.info_lines(info)), file=out)
    return 0
