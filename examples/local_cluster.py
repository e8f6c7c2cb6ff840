"""Compress an image on a local dask.distributed cluster.

bigquant runs on whatever Dask scheduler is current and never starts a cluster itself: create a
``distributed.Client`` and every pass (the sample, each Lloyd iteration, the labelling) runs on
its workers. This script starts a ``LocalCluster`` of 2 single-threaded worker processes, prints
its dashboard link (open it while the job runs; the dashboard needs ``bokeh`` installed),
compresses an image through it, and closes the cluster. The same code runs on a real cluster
with ``Client("tcp://scheduler:8786")`` instead; see ``cluster/`` for recipes.

Run::

    python examples/local_cluster.py                      # scikit-learn's china.jpg, K=16
    python examples/local_cluster.py scan.tif -k 32 --workers 4 --out-dir results/

Without an input it writes china.jpg as a tiled TIFF into the output folder (default: a new
temporary folder) and compresses it in 128 x 128 chunks. Give big inputs as TIFF or Zarr: the
workers then read their own chunks from the path (a PNG or JPEG is decoded whole and shipped to
the workers inside the task graph).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster, get_task_stream

import bigquant


def sample_image(folder: Path) -> Path:
    """scikit-learn's china.jpg as a tiled TIFF: workers read their own tiles from the path."""
    import tifffile
    from sklearn.datasets import load_sample_image

    path = folder / "china.tif"
    tifffile.imwrite(path, load_sample_image("china.jpg"), tile=(128, 128), photometric="rgb")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", type=Path, help="PNG, JPEG, TIFF or Zarr image (default: china.jpg)")
    parser.add_argument("-k", type=int, default=16, help="colours in the codebook (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--chunks",
        default=None,
        metavar="ROWS,COLS",
        help="chunk shape (default: from bigquant's memory budget; 128,128 for the sample)",
    )
    parser.add_argument("--out-dir", type=Path, default=None, help="folder for the outputs (default: a temp folder)")
    args = parser.parse_args(argv)

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bigquant-example-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    image = args.image or sample_image(out_dir)
    if args.chunks:
        chunks = tuple(int(v) for v in args.chunks.split(","))
    else:  # the small sample would be one chunk; split it so both workers get some
        chunks = None if args.image else (128, 128)

    # dashboard_address=":0": any free port, so a second cluster on this machine does not clash
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        print(f"cluster: {len(client.scheduler_info()['workers'])} workers at {cluster.scheduler_address}")
        print(f"dashboard: {client.dashboard_link}")
        t0 = time.perf_counter()
        with get_task_stream(client) as stream:  # records every task the workers run
            store = bigquant.compress(
                image, out_dir / (image.stem + ".bq.zarr"), k=args.k, chunks=chunks, overwrite=True
            )
        elapsed = time.perf_counter() - t0
        workers = sorted({task["worker"] for task in stream.data})
        print(
            f"compressed {image} on the cluster in {elapsed:.1f} s: K={store.k}, "
            f"PSNR {store.metadata['psnr']:.2f} dB, {store.metadata['iterations']} iterations -> {store.path}"
        )
        print(f"{len(stream.data)} tasks ran on {len(workers)} workers")
    print("cluster closed")


if __name__ == "__main__":
    main()
