"""Measure what :mod:`bigquant.chunking`'s limits stand for: the cost of a chunk, of a worker.

Usage::

    python benchmarks/bench_limits.py [IMAGE] [--counts 256 1024 4096] [--beyond 16384]

(a) ``bigquant compress IMAGE -k 32`` with ``--chunks`` chosen for about each of ``--counts``
    chunks (and the chunks the memory budget chooses), each a process under ``/usr/bin/time -v``:
    wall time, peak RSS, and the seconds each pass took (from the progress log). The difference
    between two counts, divided by the difference in chunks, is the cost of one chunk: bytes
    (``CHUNK_OVERHEAD_BYTES``) and seconds a pass (``MAX_CHUNKS``). ``--beyond`` runs counts
    above ``MAX_CHUNKS`` with the limit lifted in that process, to see whether the cost stays
    linear past it.
(b) The resident memory of one idle worker process of ``--workers`` once bigquant's modules are
    loaded in it (``WORKER_PROCESS_BYTES``): a ``LocalCluster`` like the command's, its workers
    made to import what a compress task imports, then read from /proc; and the peak RSS of each
    worker process while ``bigquant compress IMAGE --workers 2`` runs, polled from /proc.

Prints Markdown tables. Outputs go to benchmarks/out/limits/.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA, GNU_TIME, OUT, bigquant_cmd, md_table, python, timed_run  # noqa: E402

#: A 13.4 Mpx photograph that benchmarks/fetch_images.sh fetches.
DEFAULT_IMAGE = DATA / "photos" / "Dragonfly_by_Bolly.jpg"

#: In the process of a ``--beyond`` run: the command with chunking's limit lifted.
LIFTED = (
    "import sys; import bigquant.chunking as c; c.MAX_CHUNKS = 1 << 30; "
    "from bigquant.cli import main; sys.exit(main(sys.argv[1:]))"
)


def side_for(shape: tuple[int, int], count: int) -> int:
    """The square chunk side whose chunk count over ``shape`` is nearest ``count``."""
    rows, cols = shape

    def n(side: int) -> int:
        return math.ceil(rows / side) * math.ceil(cols / side)

    guess = max(1, math.isqrt(rows * cols // count))
    return min(range(max(1, guess - 8), guess + 9), key=lambda s: abs(n(s) - count))


def seconds(text: str) -> float:
    """The progress log's durations back to seconds: '0.4 s', '12 s', '3 min 05 s', '2 h 03 min'."""
    total = 0.0
    for value, unit in re.findall(r"([\d.]+) (h|min|s)\b", text):
        total += float(value) * {"h": 3600, "min": 60, "s": 1}[unit]
    return total


def passes(log: Path) -> dict[str, float]:
    """{pass name: seconds} from the progress log ('pass 1 · histogram: 4768 tasks in 8.1 s')."""
    found = re.finditer(r"pass \d+ · (\w+): [\d,]+ tasks in ([^\n]+)", log.read_text(errors="replace"))
    return {m.group(1): seconds(m.group(2)) for m in found}


def chunk_runs(image: Path, shape: tuple[int, int], counts: list[int], beyond: list[int], method: str) -> list[list]:
    out = OUT / "limits"
    rows = []
    for count in [None, *counts, *beyond]:
        store = out / "limits.bq.zarr"
        args = ["compress", str(image), "-k", "32", "-o", str(store), "--overwrite", "--method", method]
        side = None
        if count is not None:
            side = side_for(shape, count)
            args += ["--chunks", f"{side},{side}"]
        cmd = [python(), "-c", LIFTED, *args] if count in beyond else [*bigquant_cmd(), *args]
        log = out / f"chunks-{method}-{count or 'budget'}.log"
        res = timed_run(cmd, log=log, timeout=1800)
        if res["rc"] != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({res['rc']}); see {log}")
        n = math.ceil(shape[0] / side) * math.ceil(shape[1] / side) if side else None
        p = passes(log)
        rows.append(
            [
                f"{side},{side}" if side else "from the budget",
                n or "",
                round(res["wall_s"], 1),
                round(res["rss_mib"]),
                " + ".join(f"{k} {v:.1f}" for k, v in p.items()),
                round(1000 * sum(p.values()) / (len(p) * n), 2) if n else "",
            ]
        )
        print(rows[-1], flush=True)
    return rows


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        m = re.search(r"VmRSS:\s+(\d+) kB", fh.read())
    return int(m.group(1)) / 1024 if m else 0.0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of children too), from /proc."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


#: What the tasks of a compress bring into a worker: the API and store (zarr, numcodecs), the
#: readers (imagecodecs, tifffile, Pillow), the algorithm and its numba kernels.
WORKER_MODULES = ("bigquant.api", "bigquant.io", "bigquant.histogram", "bigquant.coreset", "bigquant.kmeans")


def idle_workers() -> list[tuple[str, list[float]]]:
    """RSS (MiB) of each worker of a 2-process LocalCluster like the command's: once bigquant's
    modules are loaded in it, once its kernels are loaded too, and after a small compress ran
    on it (its data released, freed heap handed back with ``malloc_trim``)."""
    import numpy as np
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_sample_image

    import bigquant

    def load() -> int:
        import gc
        import importlib

        for name in WORKER_MODULES:
            importlib.import_module(name)
        gc.collect()
        return os.getpid()

    def warm() -> None:
        from bigquant import _runtime

        _runtime.warm_up()
        _runtime.release_freed_memory()

    def settle() -> None:
        import gc

        from bigquant import _runtime

        gc.collect()
        _runtime.release_freed_memory()

    out = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:

            def read(what: str) -> None:
                time.sleep(2)
                out.append((what, [rss_mib(pid) for pid in pids.values()]))

            pids = client.run(load)
            read("idle, bigquant's modules loaded")
            client.run(warm)
            read("idle, its kernels loaded too (`_runtime.warm_up`)")
            photo = np.ascontiguousarray(load_sample_image("china.jpg"))
            bigquant.compress(photo, OUT / "limits" / "china.bq.zarr", k=32, chunks=(128, 128), overwrite=True)
            client.run(settle)
            read("idle after a compress of china.jpg (427 x 640), heap trimmed")
    return out


def busy_workers(image: Path) -> tuple[list[float], float, float]:
    """Peak RSS of each worker process while ``compress --workers 2`` runs, the peak of all
    the job's processes together, and the command's wall time."""
    store = OUT / "limits" / "workers.bq.zarr"
    cmd = [*bigquant_cmd(), "compress", str(image), "-k", "32", "-o", str(store), "--overwrite", "-q", "--workers", "2"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[int, float] = {}
    total = 0.0
    while proc.poll() is None:
        now = {}
        for pid in descendants(proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    line = fh.read()
                now[pid] = (rss_mib(pid), b"spawn_main" in line)
            except OSError:
                continue
        total = max(total, rss_mib(proc.pid) + sum(r for r, _ in now.values()))
        for pid, (r, worker) in now.items():
            if worker:  # multiprocessing's spawned children: the worker processes
                peaks[pid] = max(peaks.get(pid, 0.0), r)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return sorted(peaks.values()), total, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--counts", type=int, nargs="*", default=[256, 1024, 4096])
    ap.add_argument("--beyond", type=int, nargs="*", default=[16384], help="counts above MAX_CHUNKS, limit lifted")
    ap.add_argument("--method", default="auto", help="compress's --method (default auto)")
    ap.add_argument("--no-workers", action="store_true", help="skip (b)")
    a = ap.parse_args()
    if not os.path.exists(GNU_TIME):
        raise SystemExit(f"{GNU_TIME} not found")
    (OUT / "limits").mkdir(parents=True, exist_ok=True)
    from PIL import Image

    with Image.open(a.image) as im:
        shape = (im.height, im.width)
    print(
        f"# bench_limits: {a.image.name} {shape[0]} x {shape[1]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = chunk_runs(a.image, shape, a.counts, a.beyond, a.method)
    print(md_table(["--chunks", "chunks", "wall s", "peak RSS MiB", "passes s", "ms a chunk a pass"], rows))
    if not a.no_workers:
        idle = idle_workers()
        busy, total, wall = busy_workers(a.image)
        print()
        print(
            md_table(
                ["worker processes", "RSS MiB each"],
                [
                    *([what, " / ".join(f"{r:.0f}" for r in rss)] for what, rss in idle),
                    [f"peak during `compress --workers 2` ({wall:.1f} s)", " / ".join(f"{r:.0f}" for r in busy)],
                    ["peak of the whole job (command + nannies + workers)", f"{total:.0f}"],
                ],
            )
        )
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
