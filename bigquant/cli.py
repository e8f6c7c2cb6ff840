"""The ``bigquant`` command line: a thin face on :mod:`bigquant.api`.

Exit status: 0 success; 2 a problem with the input, arguments, output or scheduler address (one
line on stderr); 1 a bug or a failure of the Dask cluster (short message; the traceback with
``--debug``).

Scheduler: ``--scheduler ADDRESS``, else ``$DASK_SCHEDULER_ADDRESS``, else Dask's local threaded
scheduler; ``--workers N`` starts a ``LocalCluster`` of N processes for the run instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path

from ._version import __version__
from .chunking import DEFAULT_MEMORY_LIMIT
from .errors import BigquantError, BigquantWarning, SchedulerError

#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 10
#: Seconds for the plain TCP connection that checks the address first (refused: at once).
PROBE_TIMEOUT_S = 5
#: Longest error message printed (a cluster's exception can quote a whole task graph).
MAX_MESSAGE_CHARS = 2000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage line + one error line, exit 2 (argparse's convention)
        self.print_usage(sys.stderr)
        self.exit(2, f"bigquant: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return n


def _seed(text: str) -> int:
    # numpy's generators take any non-negative int; scikit-learn's k-means++ takes 32 bits.
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be a whole number from 0 to {2**32 - 1}, got {text!r}")
    return n


def _chunks(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
        if r < 1 or c < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"chunks must be ROWS,COLS with positive integers, got {text!r}")
    return r, c


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bigquant", description="Colour quantization by K-means for images too big for memory.")
    p.add_argument("--version", action="version", version=f"bigquant {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def debug(sp):  # also accepted after the command; SUPPRESS keeps the top-level value
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of unexpected errors")

    def common_run(sp):
        debug(sp)
        sp.add_argument("--memory-limit", default=None, metavar="SIZE",
                        help=f"memory budget of the job; chunk sizes follow from it (default {DEFAULT_MEMORY_LIMIT})")
        sp.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on an existing dask.distributed cluster, e.g. tcp://host:8786 "
                             "(default: $DASK_SCHEDULER_ADDRESS, else Dask's local scheduler)")
        sp.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="start a local dask.distributed cluster of N worker processes for this run "
                             "(instead of --scheduler or $DASK_SCHEDULER_ADDRESS)")
        sp.add_argument("-q", "--quiet", action="store_true", help="print only the final summary")
        sp.add_argument("--overwrite", action="store_true", help="replace an existing output")

    c = sub.add_parser("compress", help="fit a K-colour codebook and write labels + codebook to a store",
                       description="Quantize an image to K colours and write a bigquant store (Zarr v3).")
    c.add_argument("input", nargs="?", help="PNG, JPEG, TIFF or Zarr image")
    c.add_argument("--sample", action="store_true",
                   help="compress scikit-learn's sample photograph (china.jpg) instead of an input")
    c.add_argument("-k", default="16", metavar="K", help="colours in the codebook, 1-65536 (default 16)")
    c.add_argument("-o", "--output", default=None, help="store to write (default: <input stem>.bq.zarr "
                   "beside the input; for --sample, in the current folder)")
    c.add_argument("--seed", type=_seed, default=0, help="seed of the sample and k-means++ (default 0)")
    c.add_argument("--max-iter", type=int, default=100, help="most Lloyd iterations (default 100)")
    c.add_argument("--tol", type=float, default=1e-4,
                   help="stop when the largest centroid shift is below TOL times the data's scale, or when five "
                        "iterations in a row each lower the inertia by at most TOL/100 of it (default 1e-4)")
    c.add_argument("--method", choices=METHODS, default="auto",
                   help="histogram: exact Lloyd's on the colour histogram (uint8, 1-3 channels); "
                        "pixels: Lloyd's over every pixel; auto (default): histogram where it applies")
    c.add_argument("--level", type=int, default=0, help="pyramid level of a pyramidal TIFF (default 0, full size)")
    c.add_argument("--chunks", type=_chunks, default=None, metavar="ROWS,COLS",
                   help="chunk shape instead of one derived from --memory-limit")
    c.add_argument("--codebook", default=None, metavar="STORE",
                   help="encode with the codebook of this palette (from `bigquant fit`) or store: no fitting")
    c.add_argument("--target-psnr", type=float, default=None, metavar="DB",
                   help="choose the smallest K (up to --max-k) whose PSNR reaches DB; -k is then ignored")
    c.add_argument("--max-k", default="256", metavar="K", help="largest K --target-psnr may choose (default 256)")
    c.add_argument("--labels-level", type=int, default=None, metavar="N",
                   help="zstd level of the stored labels, 1-22 (default 3); higher is smaller and slower to write")
    common_run(c)

    f = sub.add_parser("fit", help="fit one codebook (a palette) across several images",
                       description="Fit one K-colour codebook across all the chunks of several images and "
                                   "write it as a palette store; encode each image with it by "
                                   "`bigquant compress IMAGE --codebook PALETTE`.")
    f.add_argument("inputs", nargs="+", metavar="IMAGE", help="images with the same channels and dtype")
    f.add_argument("-k", default="16", metavar="K", help="colours in the palette, 1-65536 (default 16)")
    f.add_argument("-o", "--output", required=True, help="palette store to write (e.g. palette.bq.zarr)")
    f.add_argument("--seed", type=_seed, default=0, help="seed of the sample and k-means++ (default 0)")
    f.add_argument("--max-iter", type=int, default=100, help="most Lloyd iterations (default 100)")
    f.add_argument("--tol", type=float, default=1e-4, help="as for compress (default 1e-4)")
    f.add_argument("--method", choices=METHODS, default="auto", help="as for compress")
    f.add_argument("--level", type=int, default=0, help="pyramid level of pyramidal TIFFs (default 0)")
    common_run(f)

    v = sub.add_parser("preview", help="pictures of a store: side by side, palette, convergence",
                       description="Write a downsampled picture of the original (if given) beside the "
                                   "reconstruction, computed by streaming; and/or the palette as swatches "
                                   "sorted by frequency; and/or the inertia per Lloyd iteration.")
    v.add_argument("store", help="bigquant store (.bq.zarr)")
    v.add_argument("-o", "--output", default=None, metavar="PNG", help="side-by-side preview to write (.png)")
    v.add_argument("--original", default=None, metavar="IMAGE", help="the input image, shown on the left")
    v.add_argument("--palette", default=None, metavar="PNG", help="write the codebook as swatches sorted by frequency")
    v.add_argument("--convergence", default=None, metavar="PNG", help="write the inertia per Lloyd iteration")
    v.add_argument("--max-size", type=_chunks, default=None, metavar="ROWS,COLS",
                   help="the preview fits in this many pixels (default 1200,1600)")
    common_run(v)

    d = sub.add_parser("decode", help="write the reconstruction codebook[labels] of a store",
                       description="Stream a store's reconstruction to .tif/.tiff (tiled BigTIFF), "
                                   ".zarr, or .png/.jpg (small images).")
    d.add_argument("store", help="bigquant store (.bq.zarr)")
    d.add_argument("-o", "--output", required=True, help="output image: .tif, .tiff, .zarr, .png, .jpg")
    d.add_argument("--compression", default="zlib", type=_compression,
                   help="TIFF compression: zlib (Deflate, the default), zstd, lzw or none; for .zarr "
                        "anything but none means zstd")
    d.add_argument("--compression-level", type=int, metavar="N",
                   help="level of that compression (default: 1 for zlib, the fastest; zstd 3)")
    common_run(d)

    i = sub.add_parser("info", help="summarise a store", description="Print a store's metadata and accounting.")
    i.add_argument("store", help="bigquant store (.bq.zarr)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    debug(i)
    return p


#: compress --method choices (bigquant.api.METHODS; the CLI does not import the API to build
#: its parser, so ``--help`` and usage errors stay fast).
METHODS = ("auto", "histogram", "pixels")


def _api():
    from . import api

    return api


def _compression(value: str) -> str | None:
    name = value.strip().lower()
    if name not in ("zlib", "zstd", "lzw", "none"):
        raise argparse.ArgumentTypeError(f"{value!r} is not one of zlib, zstd, lzw, none")
    return None if name == "none" else name


def _sample_path() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"


def _scheduler_address(args) -> tuple[str | None, str]:
    """The scheduler address to connect to and where it came from, or (None, "") for none."""
    explicit = getattr(args, "scheduler", None)
    if explicit is not None and getattr(args, "workers", None):
        raise _usage("give --scheduler or --workers, not both")
    if explicit is not None:
        if not explicit.strip():
            raise SchedulerError("--scheduler needs an address such as tcp://HOST:8786, got ''")
        return explicit.strip(), "--scheduler"
    env = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if env and not getattr(args, "workers", None):  # an explicit --workers beats the environment
        return env, "$DASK_SCHEDULER_ADDRESS"
    return None, ""


def _probe(address: str, source: str) -> None:
    """Fail fast, in one line, unless a Dask scheduler answers at ``address``.

    distributed's own connect retries a refused connection until its timeout, and its Client
    waits forever on a peer that accepts the connection but never speaks (another service's
    port). So: parse the address; open a plain TCP connection (refused: at once); then ask the
    peer who it is, bounded by CONNECT_TIMEOUT_S, and insist on a scheduler (not a worker or a
    nanny). Other protocols (tls, ucx, inproc) need their own settings and go straight to Client.
    """
    import asyncio

    from distributed.comm.addressing import parse_address, parse_host_port

    def fail(reason: str) -> SchedulerError:
        return SchedulerError(f"cannot connect to the Dask scheduler at {address} ({source}): {reason}")

    try:
        protocol, location = parse_address(address)
        if protocol != "tcp":
            return
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise SchedulerError(f"scheduler address {address!r} ({source}) is not valid: {exc}; "
                             "expected tcp://HOST:PORT") from None
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise fail(exc.strerror or type(exc).__name__) from None
    try:
        asyncio.get_running_loop()
        return  # called from async code (a notebook): leave it to Client
    except RuntimeError:
        pass

    async def identity() -> dict:
        from distributed.core import rpc

        async def ask() -> dict:
            r = rpc(address, timeout=CONNECT_TIMEOUT_S)
            try:
                return await r.identity()
            finally:
                await r.close_rpc()

        return await asyncio.wait_for(ask(), CONNECT_TIMEOUT_S)

    try:
        info = asyncio.run(identity())
    except asyncio.TimeoutError:
        raise fail(f"no answer in {CONNECT_TIMEOUT_S} s; is it a Dask scheduler's address?") from None
    except Exception as exc:  # something answered, but not in Dask's protocol
        raise fail(f"it does not speak Dask's protocol ({type(exc).__name__}: {exc})") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "Scheduler":
        raise fail(f"that is a Dask {kind or 'server'}, not a scheduler")


def _describe(client) -> str:
    """One line about the cluster: address, workers, threads, dashboard link."""
    try:
        nthreads = client.nthreads()
        n, t = len(nthreads), sum(nthreads.values())
        workers = f"{n} worker{'s' if n != 1 else ''}, {t} thread{'s' if t != 1 else ''}"
        if not nthreads:
            workers = "no workers yet (tasks wait until one joins)"
    except Exception:  # purely informative
        workers = "workers unknown"
    try:
        link = client.dashboard_link
    except Exception:
        link = None
    where = getattr(client.scheduler, "address", None) or "the cluster"
    return f"dask: {where}, {workers}; dashboard {link or 'not available'}"


@contextlib.contextmanager
def _scheduler(args, err):
    """Connect to a cluster (--scheduler / $DASK_SCHEDULER_ADDRESS) or start one (--workers).

    Yields the ``distributed.Client`` (set as Dask's default scheduler for the run) or None for
    Dask's local scheduler. The client, and a cluster started here, are closed on the way out.
    """
    address, source = _scheduler_address(args)
    workers = getattr(args, "workers", None)
    if address is None and not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = None
    if address:
        _probe(address, source)
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=True)
        except Exception as exc:  # refused, timed out, or not a Dask scheduler at all
            raise SchedulerError(f"cannot connect to the Dask scheduler at {address} ({source}): "
                                 f"{type(exc).__name__}: {exc}") from exc
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0",
                               processes=True)
        try:
            client = Client(cluster, set_as_default=True)
        except BaseException:
            cluster.close()
            raise
    try:
        if not args.quiet:
            print(_describe(client), file=err, flush=True)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def summary_lines(info: dict) -> list[str]:
    from .store import run_state

    rows, cols, c = info["shape"]
    # With --target-psnr, K below --max-k is the search's choice (the "auto K" line says so).
    reduced = info["k"] != info.get("k_requested", info["k"]) and info.get("target_psnr") is None
    k_note = f" (reduced from {info['k_requested']}: fewer distinct colours)" if reduced else ""
    psnr = info["psnr"]
    psnr_s = "inf" if psnr is None or (isinstance(psnr, float) and math.isinf(psnr)) or psnr == "inf" else f"{psnr:.2f}"
    return [
        f"  size        {rows} x {cols} x {c} {info['dtype']} ({rows * cols / 1e6:.2f} Mpx)",
        f"  K           {info['k']}{k_note}, method {info['method']}",
        f"  iterations  {info['iterations']} ({run_state(info)})",
        f"  MSE         {info['mse']:.4g}    PSNR {psnr_s} dB",
        f"  store       {_fmt_bytes(info['store_bytes'])} ({info['bits_per_pixel']:.3f} bits/pixel, "
        f"labels {info.get('labels_codec') or 'unknown'}); "
        f"raw {_fmt_bytes(info['raw_bytes'])}; ratio {info['ratio']:.1f}:1",
        f"  time        {info.get('time_s', float('nan')):.1f} s",
    ]


def _cmd_compress(args, out, err) -> int:
    if args.sample and args.input:
        raise _usage("give an input or --sample, not both")
    if not args.sample and not args.input:
        raise _usage("an input image is needed (or --sample for the bundled sample photograph)")
    source = _sample_path() if args.sample else args.input
    output = args.output or (Path.cwd() / "china.bq.zarr" if args.sample else None)
    if args.codebook and args.target_psnr is not None:
        raise _usage("give --codebook or --target-psnr, not both")
    progress = _progress(args, err)
    with _scheduler(args, err), _bar(progress, err):
        store = _api().compress(source, output, k=_k(args.k), seed=args.seed, max_iter=args.max_iter, tol=args.tol,
                             method=args.method, memory_limit=args.memory_limit, chunks=args.chunks,
                             level=args.level, overwrite=args.overwrite, progress=progress,
                             codebook=args.codebook, target_psnr=args.target_psnr, max_k=_k(args.max_k),
                             labels_level=args.labels_level)
    info = store.info()
    print(f"wrote {store.path}", file=out)
    print("\n".join(summary_lines(info)), file=out)
    if args.target_psnr is not None:
        print(f"  auto K      chose K={info['k']} for a target of {args.target_psnr:g} dB "
              f"(estimate: {info['auto_k_estimate']}); got {_psnr_text(info['psnr'])} dB", file=out)
    return 0


def _progress(args, err):
    """A progress printer for stderr, or None: silent with --quiet or when stderr is no terminal."""
    if args.quiet or not err.isatty():
        return None
    return lambda msg: print(msg, file=err, flush=True)


@contextlib.contextmanager
def _bar(progress, err):
    """A progress bar for each pass over the chunks that takes over a second (local scheduler).

    On a dask.distributed cluster the per-iteration lines still show; Dask's local progress bar
    does not see tasks run there.
    """
    if progress is None:
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0, out=err, width=30):
        yield


def _psnr_text(psnr) -> str:
    if psnr is None or psnr == "inf" or (isinstance(psnr, float) and math.isinf(psnr)):
        return "inf"
    return f"{psnr:.2f}"


def _cmd_fit(args, out, err) -> int:
    progress = _progress(args, err)
    with _scheduler(args, err), _bar(progress, err):
        pal = _api().fit(args.inputs, args.output, k=_k(args.k), seed=args.seed, max_iter=args.max_iter,
                      tol=args.tol, method=args.method, memory_limit=args.memory_limit, level=args.level,
                      overwrite=args.overwrite, progress=progress)
    m = pal.metadata
    print(f"wrote palette {pal.path}", file=out)
    print(f"  K           {m['k']} across {len(m['sources'])} images, method {m['method']}", file=out)
    from .store import run_state

    print(f"  iterations  {m['iterations']} ({run_state(m)})", file=out)
    print(f"  MSE         {m['mse']:.4g}    PSNR {_psnr_text(m['psnr'])} dB (all images together)", file=out)
    print(f"  use it      bigquant compress IMAGE --codebook {pal.path}", file=out)
    return 0


def _cmd_preview(args, out, err) -> int:
    from . import io, preview

    outputs = [p for p in (args.output, args.palette, args.convergence) if p]
    if not outputs:
        raise _usage("nothing to write: give -o PNG, --palette PNG and/or --convergence PNG")
    if args.original and not args.output:
        raise _usage("--original is shown in the -o preview; give -o PNG too")
    if len({os.path.abspath(p) for p in outputs}) != len(outputs):
        raise _usage("the outputs must be different files")
    for p in outputs:  # refuse an existing output or a bad extension before any work
        io.check_output_path(p, overwrite=args.overwrite, extensions=(".png",))
    store = _api().open_store(args.store)
    written = []
    if args.output:
        with _scheduler(args, err):
            written.append(preview.write_preview(store, args.output, args.original,
                                                 max_size=args.max_size or preview.DEFAULT_MAX_SIZE,
                                                 memory_limit=args.memory_limit, overwrite=args.overwrite))
    if args.palette:
        written.append(preview.write_palette(store, args.palette, overwrite=args.overwrite))
    if args.convergence:
        written.append(preview.write_convergence(store, args.convergence, overwrite=args.overwrite))
    for p in written:
        print(f"wrote {p}", file=out)
    return 0


def _k(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)  # check_k accepts 16.0, refuses 16.5 with a clear message
        except ValueError:
            return text


def _cmd_decode(args, out, err) -> int:
    with _scheduler(args, err), _bar(_progress(args, err), err):
        path = _api().decode(args.store, args.output, overwrite=args.overwrite, memory_limit=args.memory_limit,
                          compression=args.compression, compression_level=args.compression_level)
    print(f"wrote {path}", file=out)
    return 0


def _cmd_info(args, out, err) -> int:
    from . import store as _store

    meta = _store.read_metadata(args.store)
    if meta.get("kind") == _store.PALETTE:  # a palette: a codebook without labels
        if args.json:
            print(json.dumps({**meta, "path": str(args.store)}, default=str), file=out)
        else:
            print(f"{args.store}  (bigquant palette, format {meta['format_version']})", file=out)
            print(f"  K           {meta['k']} x {meta['channels']} {meta['dtype']}, fitted across "
                  f"{len(meta.get('sources', []))} images, method {meta.get('method')}", file=out)
            print(f"  iterations  {meta.get('iterations')} ({_store.run_state(meta)})", file=out)
            print(f"  MSE         {meta.get('mse', float('nan')):.4g}    PSNR {_psnr_text(meta.get('psnr'))} dB",
                  file=out)
        return 0
    info = _api().open_store(args.store).info()
    if args.json:
        print(json.dumps(info, default=str), file=out)
    else:
        print(f"{info['path']}  (bigquant store, format {info['format_version']})", file=out)
        print("\n".join(summary_lines(info)), file=out)
        print(f"  seeds' bits {info['seed_bits']:,} ({100 * info['seed_ratio']:.1f} % of raw)", file=out)
        print(f"  source      {info['source']}  seed {info['seed']}", file=out)
    return 0


class _UsageError(Exception):
    pass


def _usage(msg: str) -> _UsageError:
    return _UsageError(msg)


def _one_line(text: object) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed), at most MAX_MESSAGE_CHARS."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 3] + "..."


def _from_cluster(exc: BaseException) -> bool:
    """True for dask.distributed's own failures (a worker died too often, a lost connection)."""
    return type(exc).__module__.split(".")[0] == "distributed"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(err)
        return 2
    handlers = {"compress": _cmd_compress, "fit": _cmd_fit, "decode": _cmd_decode, "info": _cmd_info,
                "preview": _cmd_preview}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BigquantWarning)
        try:
            status = handlers[args.command](args, out, err)
        except _UsageError as exc:
            print(f"bigquant {args.command}: error: {_one_line(exc)}", file=err)
            return 2
        except BigquantError as exc:
            if args.debug:
                traceback.print_exc(file=err)
            print(f"bigquant: error: {_one_line(exc)}", file=err)
            return 2
        except KeyboardInterrupt:
            print("bigquant: interrupted", file=err)
            return 130
        except Exception as exc:  # a bug (or the cluster failing): short message, traceback with --debug
            if args.debug:
                traceback.print_exc(file=err)
            what = "the Dask cluster failed" if _from_cluster(exc) else "internal error"
            print(f"bigquant: {what}: {_one_line(f'{type(exc).__name__}: {exc}')} "
                  "(run with --debug for the traceback)", file=err)
            return 1
        finally:
            for w in caught:
                if issubclass(w.category, BigquantWarning):
                    print(f"bigquant: warning: {_one_line(w.message)}", file=err)
    return status


def _lean_dask_import() -> None:
    """Import ``dask.array`` without the modules it only imports to recognise foreign arrays.

    Dask imports xarray and sparse, when installed, and scipy.sparse and scipy.fftpack, to
    recognise their arrays, which a bigquant command never meets: about 0.5 s and 0.15 s of
    every run. xarray and sparse stay out of this process; the two scipy modules are kept out
    only while ``dask.array`` is imported, so anything that needs them later (scikit-learn, for
    ``--sample``) imports them as usual.

    While ``dask.array`` is imported, ``dask.utils.derived_from`` also skips rewriting NumPy's
    docstrings for the functions and ufuncs Dask mirrors (0.1 s of every run: half of
    ``import dask.array``); the functions themselves are unchanged, and one NumPy lacks still
    gets Dask's stand-in that raises.
    """
    import dask.utils

    for name in ("xarray", "sparse"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    held = [name for name in ("scipy.sparse", "scipy.fftpack") if name not in sys.modules]
    for name in held:
        sys.modules[name] = None  # type: ignore[assignment]
    derived_from = dask.utils.derived_from

    def without_docs(original, *args, **kwargs):
        full = derived_from(original, *args, **kwargs)
        return lambda method: method if hasattr(original, getattr(method, "__name__", "")) else full(method)

    dask.utils.derived_from = without_docs
    try:
        import dask.array  # noqa: F401
    finally:
        dask.utils.derived_from = derived_from
        for name in held:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def entry() -> None:  # pragma: no cover - the console script; tests call main()
    """The ``bigquant`` command: :func:`main`, then exit at once.

    Every output is complete and closed when ``main`` returns; tearing down the interpreter's
    modules (Dask, Zarr, numba, NumPy) would only add about 0.3 s to each run.
    """
    _lean_dask_import()
    from . import io

    io.WARM_UP_WITHOUT_BLAS = True
    io.map_large_arrays()
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    entry()
