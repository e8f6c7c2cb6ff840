#!/usr/bin/env python3
"""Run bigquant on a SLURM cluster through dask-jobqueue.

Starts a Dask scheduler in this process. Submits ``--jobs`` SLURM jobs, each
running Dask worker process(es). Waits for the first worker, then either runs
``bigquant.compress(INPUT, OUTPUT, k=K)`` on the cluster, or (with
``--print-address``) prints the scheduler address for ``bigquant compress
--scheduler ...`` and keeps the cluster up until interrupted. The worker jobs
are cancelled (scancel) on exit.

    python cluster/slurm/launch.py /shared/in.tif -o /shared/out.bq.zarr -k 32 \\
        --partition compute --account myproj --cores 16 --memory 64GiB \\
        --walltime 02:00:00 --jobs 4

Needs ``pip install dask-jobqueue`` in the environment that runs it. The import
happens inside ``main()``, so this module (and ``build_parser()``) can be
imported without dask-jobqueue.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

__all__ = ["build_parser", "cluster_kwargs", "compress_kwargs", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="launch.py",
        description=(
            "Start Dask workers as SLURM jobs (dask_jobqueue.SLURMCluster) and run "
            "bigquant compress on them. INPUT and OUTPUT must be on a file system "
            "that every compute node sees."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    job = p.add_argument_group("bigquant job")
    job.add_argument("input", nargs="?", help="input image (absolute path on the shared file system)")
    job.add_argument("-o", "--output", help="output .bq.zarr store (absolute path on the shared file system)")
    job.add_argument("-k", type=int, default=32, help="number of colours")
    job.add_argument("--seed", type=int, default=None, help="random seed passed to bigquant.compress")
    job.add_argument("--overwrite", action="store_true", help="replace an existing output store")
    job.add_argument(
        "--print-address",
        action="store_true",
        help="do not compress: print the scheduler address, keep the cluster up "
        "until Ctrl-C (or SIGTERM), for use with `bigquant compress --scheduler ADDRESS`",
    )

    slurm = p.add_argument_group("SLURM / dask-jobqueue (one SLURM job = one node's worth of workers)")
    slurm.add_argument(
        "-p",
        "--partition",
        "--queue",
        dest="queue",
        default=None,
        metavar="PARTITION",
        help="SLURM partition (#SBATCH -p)",
    )
    slurm.add_argument("-A", "--account", default=None, help="SLURM account (#SBATCH -A)")
    slurm.add_argument("--cores", type=int, default=8, help="CPU cores per job")
    slurm.add_argument("--memory", default="32GiB", help="memory per job (split evenly between --processes)")
    slurm.add_argument(
        "--processes",
        type=int,
        default=1,
        help="Dask worker processes per job (threads per process = cores / processes)",
    )
    slurm.add_argument("--walltime", default="01:00:00", help="walltime per job (#SBATCH -t)")
    slurm.add_argument("-n", "--jobs", type=int, default=2, help="number of SLURM jobs to submit")
    slurm.add_argument("--interface", default=None, help="network interface for scheduler and workers, e.g. ib0")
    slurm.add_argument(
        "--local-directory", default=None, help="node-local scratch for worker spilling, e.g. $TMPDIR or /local/scratch"
    )
    slurm.add_argument("--log-directory", default=None, help="where SLURM writes the worker job logs")
    slurm.add_argument(
        "--job-extra-directive",
        dest="job_extra_directives",
        action="append",
        default=[],
        metavar="DIRECTIVE",
        help="extra #SBATCH line; write it with '=' since it starts with '--': "
        "--job-extra-directive=--qos=long (repeatable)",
    )
    slurm.add_argument(
        "--prologue",
        dest="job_script_prologue",
        action="append",
        default=[],
        metavar="COMMAND",
        help="shell command run in each job before the worker starts, "
        "e.g. 'source /shared/venvs/bigquant/bin/activate' (repeatable)",
    )
    slurm.add_argument(
        "--python", default=None, help="python executable on the compute nodes (default: the one running launch.py)"
    )
    slurm.add_argument("--dashboard-address", default=":8787", help="scheduler dashboard address")
    slurm.add_argument(
        "--wait-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for the first worker (jobs may queue); 0 = no limit",
    )
    slurm.add_argument(
        "--show-job-script", action="store_true", help="print the generated sbatch script before submitting"
    )
    return p


def cluster_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``dask_jobqueue.SLURMCluster`` from parsed args."""
    kw: dict[str, Any] = {
        "cores": args.cores,
        "memory": args.memory,
        "processes": args.processes,
        "walltime": args.walltime,
        "scheduler_options": {"dashboard_address": args.dashboard_address},
    }
    optional = {
        "queue": args.queue,
        "account": args.account,
        "interface": args.interface,
        "local_directory": args.local_directory,
        "log_directory": args.log_directory,
        "python": args.python,
    }
    kw.update({k: v for k, v in optional.items() if v is not None})
    if args.job_extra_directives:
        kw["job_extra_directives"] = list(args.job_extra_directives)
    if args.job_script_prologue:
        kw["job_script_prologue"] = list(args.job_script_prologue)
    return kw


def compress_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``bigquant.compress`` besides the two paths.

    Only options the user set are passed, so the call stays ``compress(in, out, k=K)``
    by default.
    """
    kw: dict[str, Any] = {"k": args.k}
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.overwrite:
        kw["overwrite"] = True
    return kw


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.print_address and (args.input is None or args.output is None):
        parser.error("INPUT and -o/--output are required (or use --print-address)")
    if args.print_address and (args.input is not None or args.output is not None):
        parser.error("--print-address does not take INPUT/-o; pass them to `bigquant compress`")
    for flag, value in (
        ("--cores", args.cores),
        ("--processes", args.processes),
        ("--jobs", args.jobs),
        ("-k", args.k),
    ):
        if value < 1:
            parser.error(f"{flag} must be at least 1")
    if args.cores % args.processes:
        parser.error("--cores must be a multiple of --processes")


def _sigterm_to_exit(signum, frame):  # pragma: no cover - signal path
    # scancel / walltime on the launcher job sends SIGTERM; turn it into SystemExit
    # so the context managers in _run() close the cluster and scancel the worker jobs.
    raise SystemExit(128 + signum)


def _block_until_interrupted() -> None:
    """Keep the scheduler (which lives in this process) up until Ctrl-C / SIGTERM."""
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        print(
            "launch.py: dask-jobqueue is not installed; run `pip install dask-jobqueue` "
            "in the same environment as bigquant",
            file=sys.stderr,
        )
        return 2

    previous = signal.signal(signal.SIGTERM, _sigterm_to_exit)
    try:
        return _run(args, SLURMCluster)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, cluster_cls: Any) -> int:
    from dask.distributed import Client

    bigquant = None
    if not args.print_address:
        import bigquant  # fail before submitting jobs if bigquant is missing

    with cluster_cls(**cluster_kwargs(args)) as cluster, Client(cluster) as client:
        if args.show_job_script:
            print(cluster.job_script(), file=sys.stderr, flush=True)
        cluster.scale(jobs=args.jobs)
        print(f"scheduler: {cluster.scheduler_address}", file=sys.stderr, flush=True)
        print(f"dashboard: {client.dashboard_link}", file=sys.stderr, flush=True)
        print(f"submitted {args.jobs} SLURM job(s)", file=sys.stderr, flush=True)

        if args.print_address:
            # stdout gets only the address, so `ADDR=$(launch.py --print-address ... | head -n 1)` works.
            print(cluster.scheduler_address, flush=True)
            print(
                "cluster is up; run `bigquant compress ... --scheduler "
                f"{cluster.scheduler_address}`. Ctrl-C here stops it and cancels the jobs.",
                file=sys.stderr,
                flush=True,
            )
            try:
                _block_until_interrupted()
            except KeyboardInterrupt:
                print("stopping cluster", file=sys.stderr)
            return 0

        print("waiting for the first worker (jobs may be queued)...", file=sys.stderr, flush=True)
        client.wait_for_workers(n_workers=1, timeout=args.wait_timeout or None)
        print(
            f"{len(client.nthreads())} worker(s) up; running bigquant.compress",
            file=sys.stderr,
            flush=True,
        )
        bigquant.compress(args.input, args.output, **compress_kwargs(args))
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
