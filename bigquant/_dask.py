"""Dask scheduling helpers: the local scheduler without ``distributed``, settled computes, trees.

Nothing here creates a ``distributed.Client``: the library runs on whatever scheduler is current.
"""

from __future__ import annotations

import functools
import os
import sys
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import dask
import dask.threaded
import numpy as np
from dask.delayed import Delayed

F = TypeVar("F", bound=Callable[..., Any])


def as_list(obj: Any) -> list:
    """``obj`` as a list: a list or tuple (of dask arrays, say) as it is, anything else as a list of one."""
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


def regular_chunks(x: Any) -> Any:
    """``x`` (a dask array) rechunked, only if needed, to a regular grid: along each axis equal
    chunks but a smaller last one, so that each task writes whole chunks of a Zarr array whose
    chunk shape is the first chunk's."""
    ok = all(all(c == dim[0] for c in dim[:-1]) and dim[-1] <= dim[0] for dim in x.chunks)
    return x if ok else x.rechunk(tuple(dim[0] for dim in x.chunks))


def worker_threads() -> int:
    """Threads of Dask's local scheduler: ``num_workers`` if configured, else the CPU count."""
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def parallel_tasks() -> int:
    """Tasks the current scheduler runs at once: the threads of every worker of a
    ``dask.distributed`` client, else :func:`worker_threads`."""
    client = current_client()
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return worker_threads()


def on_default_scheduler(fn: F) -> F:
    """Run ``fn`` on Dask's local threads unless a scheduler was chosen or a Client may exist.

    With no scheduler configured, every ``dask.compute`` imports ``distributed`` (about 0.7 s)
    only to look for a default client; none can exist while ``distributed`` is not imported, so the threaded
    scheduler it would pick is passed as a function (a name would still import it).
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if dask.config.get("scheduler", None) is None and "distributed" not in sys.modules:
            with dask.config.set(scheduler=dask.threaded.get):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def compute_settled(*collections: Any) -> tuple:
    """``dask.compute(*collections)``, but on failure it raises only once no task is still running.

    Dask's schedulers raise at the first failed task while others run on; tasks that write files
    (zarr chunks) would then write into a folder the caller is removing and bring it back. On
    the local threaded scheduler the graph runs in a pool of its own, which is drained before
    returning or raising; on a ``dask.distributed`` client every collection becomes a future and
    all are waited for. Pass every writing task as its own collection (a list of delayed parts).
    """
    sched = dask.base.get_scheduler(collections=list(collections))
    client = getattr(sched, "__self__", None)
    if client is not None and type(client).__module__.startswith("distributed"):
        from distributed import wait

        futures = client.compute(list(collections))
        try:
            wait(futures)  # every future finished or erred: no task of this graph still runs
            return tuple(client.gather(futures))
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or the cluster failed
            settle(client, futures)
            raise
    if sched is dask.threaded.get:
        with ThreadPoolExecutor(max_workers=worker_threads(), thread_name_prefix="bigquant-dask") as pool:
            # leaving the block drains the pool
            return dask.compute(*collections, scheduler=dask.threaded.get, pool=pool)
    return dask.compute(*collections)


def current_client() -> Any:
    """The ``dask.distributed`` client the next compute would run on, or None (no import of
    ``distributed`` when it was never imported: then no client can exist)."""
    if "distributed" not in sys.modules:
        return None
    sched = dask.base.get_scheduler()
    client = getattr(sched, "__self__", None)
    return client if client is not None and type(client).__module__.startswith("distributed") else None


def shared(value: Any) -> Any:
    """``value`` (a large constant: a lookup table) as an argument of many tasks, sent once.

    On a ``dask.distributed`` client it is scattered to every worker (a future, by content
    hash: the graph carries only its key, so the scheduler never receives megabytes of graph);
    otherwise it becomes one delayed literal, which the local schedulers share by reference.
    """
    client = current_client()
    if client is not None:
        return client.scatter(value, broadcast=True, hash=True)
    return dask.delayed(value, pure=True)


#: Views of file-backed arrays in small chunks, by ``id`` of the array (see :func:`windows`).
_WINDOWS: dict[int, Any] = {}


def with_windows(x: Any, view: Any) -> Any:
    """``x``, a dask array read from a file, with ``view``: the same pixels in smaller chunks,
    each read on its own (only the tiles it covers). Returns ``x``.

    Slicing ``x`` still reads whole chunks of ``x`` (Dask does not push a slice into the
    reader), so a pass that wants a few small regions asks :func:`windows` for this view.
    Any new array made from ``x`` (``persist``, ``rechunk``) has no view.
    """
    key = id(x)
    _WINDOWS[key] = view
    weakref.finalize(x, _WINDOWS.pop, key, None)
    return x


def windows(x: Any) -> Any:
    """The small-chunk view :func:`with_windows` gave ``x``, or None."""
    return _WINDOWS.get(id(x))


def from_memory(arr: np.ndarray, chunks: tuple) -> Any:
    """``arr``, an image in this process's memory (a decoded PNG or JPEG, an array given to the
    API), as a dask array of ``chunks``.

    On a ``dask.distributed`` client the array is scattered once and each chunk is a slice of it
    on the workers: :func:`dask.array.from_array` would put every pixel into the graph (51 MiB
    for a 5640 x 3172 JPEG), which the scheduler warns about and then holds. Otherwise
    ``from_array``, named at random rather than by a hash of every pixel.
    """
    import dask.array as da

    client = current_client()
    if client is None:
        return da.from_array(arr, chunks=chunks, name=False)
    held = dask.delayed(client.scatter(arr, hash=False))
    norm = da.core.normalize_chunks(chunks, arr.shape, dtype=arr.dtype)
    starts = [np.cumsum((0, *c[:-1])) for c in norm]

    def piece(index: tuple[int, ...]) -> Any:
        sl = tuple(slice(int(starts[a][i]), int(starts[a][i]) + norm[a][i]) for a, i in enumerate(index))
        shape = tuple(s.stop - s.start for s in sl)
        return da.from_delayed(held[sl], shape=shape, dtype=arr.dtype, meta=np.empty((0,) * arr.ndim, arr.dtype))

    def nest(prefix: tuple[int, ...]) -> Any:
        axis = len(prefix)
        if axis == arr.ndim:
            return piece(prefix)
        return [nest((*prefix, i)) for i in range(len(norm[axis]))]

    return da.block(nest(()))


#: Seconds :func:`settle` waits for tasks that are still running on the workers.
SETTLE_TIMEOUT_S = 60.0


def settle(client: Any, futures: list, timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Cancel ``futures`` and wait until no worker still runs a task of theirs.

    Cancelling stops the tasks not yet started; those running go on to the end (a thread cannot
    be stopped), and would write into a folder the caller is about to remove. So the workers are
    asked, every 0.1 s and for at most ``timeout`` seconds, whether they still run a task of one
    of the futures' layers. Nothing can be asked of a cluster whose scheduler is gone.
    """
    import time

    names = {key[0] if isinstance(key, tuple) else key for key in (f.key for f in futures)}

    def running(names: set, dask_worker: Any = None) -> int:  # nested: pickled by value, run on each worker
        state = dask_worker.state
        tasks = [*state.executing, *state.long_running]
        return sum((ts.key[0] if isinstance(ts.key, tuple) else ts.key) in names for ts in tasks)

    end = time.monotonic() + timeout
    try:
        client.cancel(futures)
        while client.status == "running" and time.monotonic() < end:
            counts = client.run(running, names, on_error="return").values()
            if not any(n for n in counts if isinstance(n, int)):  # a worker that cannot tell: gone
                return
            time.sleep(0.1)
    except Exception:  # the cluster is failing too: nothing more to ask it
        return


def tree_reduce(parts: Sequence[Any], combine: Callable[[list], Any], split_every: int = 8) -> Delayed:
    """Combine delayed parts in a tree: ``combine`` takes a list of parts and returns one part.

    The tree's shape depends only on ``len(parts)`` and ``split_every``, and each combine adds
    its inputs in list order, so float results are bit-identical from run to run and scheduler
    to scheduler.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("tree_reduce needs at least one part")
    fn = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [fn(parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    if not isinstance(parts[0], Delayed):
        return dask.delayed(parts[0])
    return parts[0]


def sum_parts(parts: list[np.ndarray]) -> np.ndarray:
    """The float64 sum of equally shaped arrays, added in list order (for :func:`tree_reduce`)."""
    out = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        out += p
    return out
