"""How far a pass has got: task counts from Dask's local scheduler or from a distributed cluster.

The library's passes are plain ``dask.compute`` calls, so the counts are taken where they run:

* on the local scheduler, by a :class:`dask.callbacks.Callback` (:class:`LocalTasks`), which
  sees every compute of the process;
* on a ``distributed.Client``, from the client: :class:`ClusterTasks` polls the futures the
  client holds (those of the compute under way) and, for each new set, asks the scheduler to
  feed the count of the tasks they depend on, done and in all (distributed's own ``Progress``
  plugin, as ``distributed.progress`` uses it). Nothing is installed on the cluster for good,
  and nothing of bigquant needs to be importable on the scheduler.

:func:`watching` runs both for the length of a command, with a ticker that redraws the line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from .render import REDRAW_S, Renderer

#: Seconds between two looks at the client's futures.
POLL_S = 0.25


def local_tasks(renderer: Renderer) -> Any:
    """A dask Callback that counts the tasks of every local compute into ``renderer``."""
    from dask.callbacks import Callback

    class LocalTasks(Callback):
        def _start_state(self, dsk: Any, state: dict) -> None:
            renderer.tasks_started(sum(len(state[k]) for k in ("ready", "waiting", "running", "finished")))

        def _posttask(self, key: Any, result: Any, dsk: Any, state: dict, worker_id: Any) -> None:
            renderer.task_done()

    return LocalTasks()


class ClusterTasks(threading.Thread):
    """Polls ``client``'s futures and feeds the scheduler's counts of their tasks to ``renderer``."""

    def __init__(self, client: Any, renderer: Renderer) -> None:
        super().__init__(name="bigquant-cluster-progress", daemon=True)
        self.client, self.renderer = client, renderer
        self.stopped = threading.Event()
        self._seen: set = set()
        self._feeds = 0

    def run(self) -> None:
        while not self.stopped.wait(POLL_S):
            try:
                keys = set(list(self.client.futures))
            except RuntimeError:  # changed size while copied (the client's loop adds futures)
                continue
            new = keys - self._seen
            if new:
                self._seen |= keys
                self._feed(new)

    def _feed(self, keys: set) -> None:
        from distributed.diagnostics.progressbar import ProgressBar

        renderer, generation = self.renderer, self.renderer.generation
        self._feeds += 1
        ident = self._feeds

        class Feed(ProgressBar):
            def _draw_bar(self, remaining: int = 0, all: int = 0, **kwargs: Any) -> None:
                renderer.feed(generation, ident, all - remaining, all)

        feed = Feed(keys, scheduler=self.client.scheduler.address, interval=f"{int(REDRAW_S * 2000)}ms")
        client = self.client

        async def listen() -> None:
            try:
                await feed.listen()
            except Exception:  # progress is informative; the compute itself reports failures
                logging.getLogger(__name__).debug("progress feed failed", exc_info=True)

        with contextlib.suppress(Exception):
            client.loop.add_callback(listen)

    def stop(self) -> None:
        self.stopped.set()
        self.join(2)


def _ticker(renderer: Renderer, stopped: threading.Event) -> None:
    while not stopped.wait(REDRAW_S * 2):
        renderer.tick()


@contextlib.contextmanager
def watching(renderer: Renderer | None, client: Any = None) -> Iterator[None]:
    """Count tasks into ``renderer`` (local scheduler, or ``client``'s cluster) and redraw its
    line while the block runs; finish its line on the way out. A no-op for None."""
    if renderer is None:
        yield
        return
    stopped = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(renderer, stopped), name="bigquant-progress", daemon=True)
    cluster = ClusterTasks(client, renderer) if client is not None else None
    counter = local_tasks(renderer) if client is None else contextlib.nullcontext()
    ticker.start()
    if cluster is not None:
        cluster.start()
    failed = True
    try:
        with counter:
            yield
        failed = False
    finally:
        stopped.set()
        if cluster is not None:
            cluster.stop()
        ticker.join(2)
        renderer.close(failed)
