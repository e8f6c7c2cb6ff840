"""How big is a compress's label pass as a task graph, and how long does it take to submit?

For each size, builds the plan of the label pass (the pass that reads every chunk, labels it
through the colour -> label table and writes it to the store), with a fixed codebook of K
colours, on one of two inputs: a uint8 RGB Zarr array in 512-pixel chunks that holds only its
metadata (no chunk is ever written, so a 100 Gpx "image" costs nothing), or (``--input tiff``) a
tiled uint8 RGB BigTIFF in an S3 bucket (moto's server on 127.0.0.1), read as bigquant reads any
remote TIFF: the header once, then each task its own tiles' byte ranges. Every tile of that file
is the same few compressed bytes, so at 100 Gpx in 512-pixel tiles (``--tile``) it holds little
more than its 381,924 tiles' offsets and byte counts. on a ``dask.distributed`` LocalCluster with one single-threaded
worker. The plan is submitted, timed until the scheduler holds every task, then cancelled: it
never runs. Reports tasks, the graph pickled (bytes, and its largest single task), whether
distributed warned about the graph's size, and the submit time.

Chunks are bigquant's own choice for ``--memory-limit`` (default 4GiB: at most
:data:`bigquant.chunking.MAX_CHUNKS` chunks a pass, and 100 Gpx needs that budget for chunks of
over 5018 pixels a side) unless ``--chunk`` says.

Run:  python benchmarks/bench_graph.py [--gigapixels 1 100] [--input zarr tiff] [--tile 512] [--chunk 5120] [-k 16]
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


def zarr_input(side: int, chunk: int | None, folder: Path) -> tuple[str, dict | None]:
    src = folder / f"img-{side}.zarr"
    stored = chunk or 512  # the array's own chunks, of which bigquant's are whole multiples
    zarr.create_array(src, shape=(side, side, 3), chunks=(stored, stored, 3), dtype=np.uint8)  # metadata only
    return str(src), None


def tiff_input(side: int, tile: int, folder: Path, bucket) -> tuple[str, dict | None]:
    """A BigTIFF of ``side``² pixels whose every tile is one colour's compressed bytes, in the bucket."""
    import imagecodecs
    import tifffile

    fs, opts = bucket
    data = imagecodecs.zstd_encode(np.full((tile, tile, 3), (95, 130, 194), dtype=np.uint8).tobytes())
    n = (-(-side // tile)) ** 2
    src = folder / f"img-{side}-{tile}.tif"
    tifffile.imwrite(
        src, (data for _ in range(n)), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile),
        compression="zstd", photometric="rgb", bigtiff=True, metadata=None,
    )  # fmt: skip
    fs.put(str(src), f"bench/{src.name}")
    return f"s3://bench/{src.name}", opts


def moto_bucket():
    """moto's S3 server on 127.0.0.1 with an empty bucket ``bench``: (server, (fs, options))."""
    import logging

    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    opts = {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench-secret"}
    boto3.client(
        "s3", endpoint_url=opts["endpoint_url"], aws_access_key_id=opts["key"], aws_secret_access_key=opts["secret"],
        region_name="us-east-1",
    ).create_bucket(Bucket="bench")  # fmt: skip
    opts["client_kwargs"] = {"region_name": "us-east-1"}
    return server, (s3fs.S3FileSystem(**opts), opts)


def measure(client, gpx: float, kind: str, args, folder: Path, bucket) -> dict:
    side = int(math.sqrt(gpx * 1e9))
    chunk, k = args.chunk, args.k
    src, opts = zarr_input(side, chunk, folder) if kind == "zarr" else tiff_input(side, args.tile, folder, bucket)
    t0 = time.perf_counter()
    chunks = (chunk, chunk) if chunk else None
    x = sources.load(src, memory_limit=args.memory_limit, chunks=chunks, storage_options=opts).x
    t_open = time.perf_counter() - t0
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
        "input": kind if kind == "zarr" else f"tiff, {args.tile} px tiles",
        "open_s": t_open,
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
    ap.add_argument("--input", nargs="+", choices=("zarr", "tiff"), default=["zarr", "tiff"])
    ap.add_argument("--tile", type=int, default=512, help="the TIFF's tile side in pixels (default 512)")
    ap.add_argument("--chunk", type=int, help="chunk side in pixels (default: bigquant's choice for --memory-limit)")
    ap.add_argument("--memory-limit", default="4GiB", help="the job's budget (default 4GiB, the least for 100 Gpx)")
    ap.add_argument("-k", type=int, default=16)
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    print(f"K={args.k}, colour table {1 << 24} entries (scattered once)\n")
    print("| input | Gpx | shape | chunks | open | tasks | graph pickled | largest task | size warning | submit |")
    print("|---|---:|---|---|---:|---:|---:|---:|---|---:|", flush=True)
    server, bucket = moto_bucket() if "tiff" in args.input else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as lc, Client(lc) as client:
            with client.as_current():
                for kind in args.input:
                    for gpx in args.gigapixels:
                        r = measure(client, gpx, kind, args, Path(tmp), bucket)
                        print(
                            f"| {r['input']} | {r['gpx']:g} | {r['shape']} | {r['chunks']} | {r['open_s']:.2f} s "
                            f"| {r['tasks']:,} "
                            f"| {r['graph_bytes'] / 2**20:.1f} MiB "
                            f"| {r['largest_task'] / 1024:.1f} KiB | {'yes' if r['warned'] else 'no'} "
                            f"| {r['submit_s']:.2f} s |",
                            flush=True,
                        )
    if server is not None:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
