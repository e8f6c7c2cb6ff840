"""``bigquant compress``: fit a K-colour codebook and write labels + codebook to a store."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import OutputError, show_path
from . import options
from ._cluster import scheduler
from .common import UsageError, compile_notice, renderer

NAME = "compress"
#: errno values of a write that the user can fix: a full disk or quota, a file-size limit, a
#: read-only filesystem.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}

EXAMPLES = """
  bigquant compress scan.tif -k 32                  # -> scan.bq.zarr beside the input
  bigquant compress scan.tif -k 32 -o out/scan.bq.zarr --overwrite
  bigquant compress slide.svs --level 2 --memory-limit 4GiB   # any TIFF flavour, by content
  bigquant compress cells.zarr --axes CYX                   # a channels-first array, read as it is
  bigquant compress scan.tif --target-psnr 35 --max-k 256   # smallest K reaching 35 dB
  bigquant compress a.tif --codebook palette.bq.zarr        # a palette from bigquant fit: no fitting
  bigquant compress big.tif --workers 4                     # a local cluster of 4 processes
  bigquant compress --sample -k 16                          # scikit-learn's china.jpg -> ./china.bq.zarr
  bigquant compress scan.tif -q --json | jq .psnr            # the summary as JSON, for scripts
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    c = sub.add_parser(
        NAME,
        help="fit a K-colour codebook and write labels + codebook to a store",
        description="Quantize an image to K colours and write a bigquant store (Zarr v3): the labels "
        "(one index per pixel) and the codebook. Prints a summary on stdout (with --json, one JSON object); "
        "progress goes to stderr.",
        epilog=options.epilog(EXAMPLES),
    )
    g = options.groups(c, "input", "fit", "output", "cluster", "diagnostics")
    g["input"].add_argument(
        "input", nargs="?", help="image: any TIFF (SVS, NDPI, OME-TIFF, ...), PNG, JPEG, Zarr or OME-Zarr"
    )
    g["input"].add_argument(
        "--sample",
        action="store_true",
        help="compress scikit-learn's sample photograph (china.jpg) instead of an input, "
        "to ./china.bq.zarr (replacing an earlier sample store there)",
    )
    options.add_fit_options(g, "chunks")
    c.set_defaults(k=None)  # so that a -k given with --codebook is seen (and refused)
    g["fit"].add_argument(
        "--codebook",
        default=None,
        metavar="STORE",
        help="encode with the codebook of this palette (from bigquant fit) or store: no fitting, one pass; "
        "K is its size (not with -k)",
    )
    g["fit"].add_argument(
        "--target-psnr",
        type=float,
        default=None,
        metavar="DB",
        help="choose the smallest K (up to --max-k) whose PSNR reaches DB decibels; -k is then ignored",
    )
    g["fit"].add_argument(
        "--max-k", default="256", metavar="K", help="largest K --target-psnr may choose (default 256)"
    )
    g["output"].add_argument(
        "-o",
        "--output",
        default=None,
        metavar="STORE",
        help="store to write (default: <input stem>.bq.zarr beside the input; for --sample, ./china.bq.zarr)",
    )
    g["output"].add_argument(
        "--labels-level",
        type=int,
        default=None,
        metavar="N",
        help="zstd level of the stored labels, 1-22 (default 3); higher is smaller and slower to write",
    )
    g["output"].add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (the keys of info --json of the store, "
        "plus input_bytes and input_ratio); everything else goes to stderr",
    )
    options.add_run_options(g)
    return c


def sample_path() -> Path:
    """scikit-learn's bundled photograph, china.jpg (``--sample``)."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"


def input_bytes(path: Any) -> int | None:
    """Bytes on disk of an input: a file's size, or the files of a Zarr folder; None for an array."""
    try:
        p = Path(path)
        if p.is_file():
            return p.stat().st_size
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    except (OSError, TypeError):
        pass
    return None


@contextlib.contextmanager
def disk_errors(what: str) -> Iterator[None]:
    """A full disk (or quota, file-size limit, read-only filesystem) met while writing becomes an
    OutputError, one line and exit 2, instead of a bug's exit 1; the store is not written."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise OutputError(f"cannot write {what}: {exc.strerror}; nothing was written") from exc


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api, report
    from .tasks import watching  # with the library: --help stays light

    if args.sample and args.input:
        raise UsageError("give an input or --sample, not both")
    if not args.sample and not args.input:
        raise UsageError("an input image is needed (or --sample for the bundled sample photograph)")
    source = sample_path() if args.sample else args.input
    output = args.output or (Path.cwd() / "china.bq.zarr" if args.sample else None)
    # --sample's own output replaces an earlier sample store, so that the README's set-up line
    # runs twice; as with --overwrite, anything but a bigquant store there is refused.
    overwrite = args.overwrite or (args.sample and args.output is None)
    if args.codebook and args.target_psnr is not None:
        raise UsageError("give --codebook or --target-psnr, not both")
    if args.codebook and args.k is not None:
        raise UsageError("give -k or --codebook, not both: the codebook's colours are K")
    options.check_run_options(args)
    r = renderer(args, err)
    with (
        scheduler(args, err) as client,
        watching(r, client),
        disk_errors(f"the store {show_path(output)}" if output else f"the store of input {show_path(source)}"),
    ):
        compile_notice(r)
        store = api.compress(
            source,
            output,
            **options.fit_keywords(args),
            chunks=args.chunks,
            overwrite=overwrite,
            progress=r,
            codebook=args.codebook,
            target_psnr=args.target_psnr,
            max_k=options.k_value(args.max_k),
            labels_level=args.labels_level,
        )
    info = store.info()
    nbytes = info.get("source_bytes") or input_bytes(source)  # recorded, unless a URL's was unknown
    if args.json:
        print(f"wrote {store.path}", file=err)
        print(json.dumps(report.summary_object(info, nbytes), default=str), file=out)
        return 0
    print(f"wrote {store.path}", file=out)
    print("\n".join(report.summary_lines(info, input_bytes=nbytes)), file=out)
    if args.target_psnr is not None:
        print(report.auto_k_line(info, args.target_psnr), file=out)
    return 0
