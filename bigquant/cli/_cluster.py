"""The Dask cluster of a run: ``--scheduler ADDRESS``, else ``$DASK_SCHEDULER_ADDRESS``, else
Dask's local threaded scheduler; ``--workers N`` starts a ``LocalCluster`` of N processes.

The library never creates a ``distributed.Client``; this module, for the command's own run, does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any, TextIO

from ..errors import SchedulerError
from .common import UsageError

#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 10
#: Seconds for the plain TCP connection that checks the address first (refused: at once).
PROBE_TIMEOUT_S = 5


def scheduler_address(args: Any) -> tuple[str | None, str]:
    """The scheduler address to connect to and where it came from, or (None, "") for none."""
    explicit = getattr(args, "scheduler", None)
    if explicit is not None and getattr(args, "workers", None):
        raise UsageError("give --scheduler or --workers, not both")
    if explicit is not None:
        if not explicit.strip():
            raise SchedulerError("--scheduler needs an address such as tcp://HOST:8786, got ''")
        return explicit.strip(), "--scheduler"
    env = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if env and not getattr(args, "workers", None):  # an explicit --workers beats the environment
        return env, "$DASK_SCHEDULER_ADDRESS"
    return None, ""


def probe(address: str, source: str) -> None:
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
        raise SchedulerError(
            f"scheduler address {address!r} ({source}) is not valid: {exc}; expected tcp://HOST:PORT"
        ) from None
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


def has_bokeh() -> bool:
    """Whether bokeh, which Dask's dashboard needs, is importable here (``pip install 'bigquant-kmeans[cluster]'``)."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _scheduler_has_bokeh(client: Any) -> bool:
    """Whether the scheduler can serve its dashboard: without bokeh its link only says so."""

    def probe() -> bool:  # nested: pickled by value, so the scheduler needs no bigquant
        import importlib.util

        return importlib.util.find_spec("bokeh") is not None

    try:
        return bool(client.run_on_scheduler(probe))
    except Exception:  # the scheduler may refuse to run functions: no link then
        return False


def describe(client: Any, local: bool = False) -> str:
    """One line about the cluster: address, workers, threads, and the dashboard link where the
    scheduler has a dashboard (``local``: the scheduler runs in this process)."""
    try:
        nthreads = client.nthreads()
        n, t = len(nthreads), sum(nthreads.values())
        workers = f"{n} worker{'s' if n != 1 else ''}, {t} thread{'s' if t != 1 else ''}"
        if not nthreads:
            workers = "no workers yet (tasks wait until one joins)"
    except Exception:  # purely informative
        workers = "workers unknown"
    link = None
    if has_bokeh() if local else _scheduler_has_bokeh(client):
        try:
            link = client.dashboard_link
        except Exception:
            link = None
    where = getattr(client.scheduler, "address", None) or "the cluster"
    dashboard = f"dashboard {link}" if link else "no dashboard (it needs bokeh on the scheduler)"
    return f"dask: {where}, {workers}; {dashboard}"


def _local_cluster(factory: Any, workers: Any) -> Any:
    """A ``LocalCluster`` of ``workers`` single-threaded processes."""
    return factory(
        n_workers=workers,
        threads_per_worker=1,
        # A free port: the default, 8787, is often another cluster's (a warning, every run).
        # Not None: the scheduler's HTTP server (health, metrics) starts even without bokeh,
        # and None means 8787 to it.
        dashboard_address=":0",
        processes=True,
        # distributed's own warnings (a worker slow to stop, tasks cancelled by an interrupt)
        # say nothing a user can act on; errors still reach the command as exceptions.
        silence_logs=logging.ERROR,
    )


def deaf_to_ctrl_c(client: Any) -> None:
    """Have the workers of a cluster started here ignore SIGINT, now and when restarted.

    Ctrl-C on a terminal sends SIGINT to the whole process group, workers included: each would
    print a traceback and die mid-task, and its nanny start another. This process stops them
    itself once it is interrupted. (A signal mask or a handler does not survive the way
    multiprocessing starts the workers; a worker plugin runs in each, on its main thread.)
    """
    from distributed import WorkerPlugin

    class DeafToCtrlC(WorkerPlugin):  # nested: pickled by value
        name = "bigquant-deaf-to-ctrl-c"

        def setup(self, worker: Any) -> None:
            import signal

            with contextlib.suppress(ValueError):  # not on the main thread: nothing to do
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    client.register_plugin(DeafToCtrlC())


def quiet_workers(client: Any) -> None:
    """Keep distributed's own log records in the workers of a cluster started here off stderr.

    ``silence_logs`` reaches only the nannies' logger: a worker process still prints its errors
    with a traceback, such as the failed heartbeat of a worker outliving the scheduler by a
    moment when the cluster closes after a run that went well. A task's failure still reaches
    the command as its exception, and other libraries' warnings come through
    ``forward_logging`` (bigquant.cli.warn prints each once).
    """
    from distributed import WorkerPlugin

    class QuietWorker(WorkerPlugin):  # nested: pickled by value
        name = "bigquant-quiet-worker"

        def setup(self, worker: Any) -> None:
            import logging

            logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)

    client.register_plugin(QuietWorker())


@contextlib.contextmanager
def scheduler(args: Any, err: TextIO) -> Iterator[Any]:
    """Connect to a cluster (--scheduler / $DASK_SCHEDULER_ADDRESS) or start one (--workers).

    Yields the ``distributed.Client`` (set as Dask's default scheduler for the run) or None for
    Dask's local scheduler. The client, and a cluster started here, are closed on the way out.
    """
    address, source = scheduler_address(args)
    workers = getattr(args, "workers", None)
    if address is None and not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = None
    if address:
        probe(address, source)
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=True)
        except Exception as exc:  # refused, timed out, or not a Dask scheduler at all
            raise SchedulerError(
                f"cannot connect to the Dask scheduler at {address} ({source}): {type(exc).__name__}: {exc}"
            ) from exc
    else:
        cluster = _local_cluster(LocalCluster, workers)
        try:
            client = Client(cluster, set_as_default=True)
            # The workers' log records (tifffile's warnings) come to this process's handlers,
            # which print each once (bigquant.cli.warn), instead of to the workers' stderr.
            client.forward_logging(level=logging.WARNING)
            deaf_to_ctrl_c(client)
            quiet_workers(client)
        except BaseException:
            cluster.close()
            raise
    try:
        if not args.quiet:
            print(describe(client, local=cluster is not None), file=err, flush=True)
        yield client
    finally:
        # Closing, distributed warns of what closing does (a worker slow to stop is killed,
        # its cancelled tasks): nothing to act on, the run has ended either way.
        quiet = logging.getLogger("distributed")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        finally:
            quiet.setLevel(level)
