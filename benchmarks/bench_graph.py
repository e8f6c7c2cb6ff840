"""How big is a compress's label pass as a task graph, and how long does it take to submit?

For each size, builds the plan of the label pass (the pass that reads every chunk, labels it
through the colour -> label table and writes it to the store) on a uint8 RGB Zarr array that
holds only its metadata (no chunk is ever written, so a 100 Gpx "image" costs nothing), with a
fixed codebook of K colours, on a ``dask.distributed`` LocalCluster with one single-threaded
worker. The plan is submitted, timed until the scheduler holds every task, then cancelled: it
never runs. Reports tasks, the graph pickled (bytes, and its largest single task), whether
distributed warned about the graph's size, and the submit time.

Chunks are bigquant's own choice for ``--memory-limit`` (default 4GiB: at most
:data:`bigquant.chunking.MAX_CHUNKS` chunks a pass, and 100 Gpx needs that budget for chunks of
over 5018 pixels a side) unless ``--chunk`` says.

Run:  python benchmarks/bench_graph.py [--gigapixels 1 100] [--chunk 5120] [-k 16]
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bigquant import fitting, sources  # noqa: E402
from bigquant._dask import tree_reduce  # noqa: E402
from bigquant.fitting import FitResult  # noqa: E402
from bigquant.kmeans import combine_label_stats  # noqa: E402
from bigquant.store import StoreWriter  # noqa: E402


def measure(client, gpx: float, chunk: int | None, memory: str, k: int, folder: Path) -> dict:
    side = int(math.sqrt(gpx * 1e9))
    src = folder / f"img-{gpx:g}.zarr"
    stored = chunk or 512  # the array's own chunks, of which bigquant's are whole multiples
    zarr.create_array(src, shape=(side, side, 3), chunks=(stored, stored, 3), dtype=np.uint8)  # metadata only
    x = sources.load(str(src), memory_limit=memory, chunks=(chunk, chunk) if chunk else None).x
    cb = np.random.default_rng(0).integers(0, 256, (k, 3)).astype(np.uint8)
    t0 = time.perf_counter()
    plan = fitting.label_plan(x, FitResult(cb, "fixed"))  # the full colour table, scattered once
    t_table = time.perf_counter() - t0
    writer = StoreWriter(folder / f"out-{gpx:g}.bq.zarr", x.shape, x.chunksize[:2], k)
    parts = writer.label_tasks(x, plan.fn, plan.args, k + 3)
    total = tree_reduce(parts, combine_label_stats)
    graph = dict(total.__dask_graph__())
    sizes = [len(pickle.dumps(v, protocol=5)) for v in graph.values()]
    before = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        fut = client.compute(total)
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) < before + len(graph) // 2:
            time.sleep(0.01)
        t_submit = time.perf_counter() - t0
    client.cancel(fut)
    time.sleep(1)  # let the one worker finish its running task before the store goes
    writer.abort()
    large = [w for w in caught if "large graph" in str(w.message)]
    return {
        "gpx": gpx,
        "shape": f"{side} x {side} x 3",
        "chunks": f"{x.chunksize[0]} x {x.chunksize[1]}",
        "tasks": len(graph),
        "graph_bytes": sum(sizes),
        "largest_task": max(sizes),
        "warned": bool(large),
        "table_s": t_table,
        "submit_s": t_submit,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gigapixels", type=float, nargs="+", default=[1.0, 100.0])
    ap.add_argument("--chunk", type=int, help="chunk side in pixels (default: bigquant's choice for --memory-limit)")
    ap.add_argument("--memory-limit", default="4GiB", help="the job's budget (default 4GiB, the least for 100 Gpx)")
    ap.add_argument("-k", type=int, default=16)
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    print(f"K={args.k}, colour table {1 << 24} entries (scattered once)\n")
    print("| Gpx | shape | chunks | tasks | graph pickled | largest task | size warning | submit |")
    print("|---:|---|---|---:|---:|---:|---|---:|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as lc, Client(lc) as client:
            with client.as_current():
                for gpx in args.gigapixels:
                    r = measure(client, gpx, args.chunk, args.memory_limit, args.k, Path(tmp))
                    print(
                        f"| {r['gpx']:g} | {r['shape']} | {r['chunks']} | {r['tasks']:,} "
                        f"| {r['graph_bytes'] / 2**20:.1f} MiB "
                        f"| {r['largest_task'] / 1024:.1f} KiB | {'yes' if r['warned'] else 'no'} "
                        f"| {r['submit_s']:.2f} s |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
