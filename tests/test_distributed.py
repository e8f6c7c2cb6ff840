"""bigquant on a real dask.distributed cluster: `dask scheduler` + two `dask worker` processes.

The workers are separate processes (with nannies), so everything a task needs must pickle: the
TIFF input is read by path inside the tasks, the store's labels are written and read by path.
A run on the cluster must give bit-identical labels and codebook to a run on Dask's local
threaded scheduler with the same seed and chunking (the tree reductions fix the order of every
floating-point sum). And every task key must depend on its inputs, or a second Lloyd step (or a
second job on the same scheduler) silently gets the results of the first.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import bigquant
from bigquant import kmeans
from bigquant.cli import _cluster, main
from bigquant.reconstruction import reconstruct

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, china):
    """china.jpg as a tiled TIFF (64 x 64 tiles), a float32 TIFF and a uint16 Zarr array."""
    d = tmp_path_factory.mktemp("inputs")
    tifffile.imwrite(d / "china.tif", china, tile=(64, 64), photometric="rgb")
    rng = np.random.default_rng(7)
    f = (china[:300, :260].astype(np.float32) / 255 + rng.normal(0, 0.02, (300, 260, 3))).astype(np.float32)
    tifffile.imwrite(d / "float.tif", f, tile=(64, 64), photometric="rgb")
    u16 = china[100:350, 200:500].astype(np.uint16) * 257
    zarr.create_array(str(d / "u16.zarr"), data=u16, chunks=(100, 100, 3))
    return d


def _same_store(a, b):
    sa, sb = bigquant.open(a), bigquant.open(b)
    assert sa.codebook.dtype == sb.codebook.dtype
    assert np.array_equal(sa.codebook, sb.codebook)
    assert np.array_equal(sa.labels.compute(), sb.labels.compute())
    for key in ("k", "iterations", "converged", "inertia", "mse", "inertia_history", "shift_history", "chunks"):
        assert sa.metadata[key] == sb.metadata[key], key


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- Task keys: the root of "identical on a cluster" and "two jobs on one cluster" ---------------


def test_task_keys_depend_on_their_inputs(tmp_path):
    x = da.from_array(np.random.default_rng(0).random((8, 8, 3)), chunks=(4, 4, 3))
    y = da.from_array(np.random.default_rng(1).random((8, 8, 3)) + 5, chunks=(4, 4, 3))
    a, b = np.zeros((2, 3)), np.ones((2, 3))
    # Two Lloyd steps from different centroids must not share a key: a distributed scheduler that
    # still holds the first step's results would hand them to the second.
    ka = set(dict(kmeans.lloyd_step_graph(x, a).__dask_graph__()))
    kb = set(dict(kmeans.lloyd_step_graph(x, b).__dask_graph__()))
    assert not {k for k in ka & kb if "partials" in str(k)}
    # Several images in one step (a palette across images): each image's partials are its own.
    (total,) = dask.compute(kmeans.lloyd_step_graph([x, y], np.array([[0.5] * 3, [5.5] * 3])))
    assert list(total[:2, 3]) == [64.0, 64.0]
    # Two reconstructions from different codebooks of the same labels.
    labels = da.zeros((8, 8), dtype=np.uint8, chunks=4)
    assert reconstruct(labels, a).name != reconstruct(labels, b).name
    # Two stores, and one store rewritten at the same path, read through different keys.
    img = np.random.default_rng(2).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    s1 = bigquant.compress(img, tmp_path / "s.bq.zarr", k=3, max_iter=2)
    s2 = bigquant.compress(img, tmp_path / "t.bq.zarr", k=4, max_iter=2)
    assert s1.labels.name != s2.labels.name
    s3 = bigquant.compress(img, tmp_path / "s.bq.zarr", k=5, max_iter=2, overwrite=True)
    assert s3.labels.name != s1.labels.name


# --- The cluster ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, args",
    [
        # uint8 RGB TIFF read tile by tile in the workers; exact colour-histogram path
        ("china.tif", ["-k", "16", "--max-iter", "6"]),
        # float32 TIFF: Lloyd's over every pixel, each step a map-reduce over 9 chunks
        ("float.tif", ["-k", "8", "--method", "pixels", "--max-iter", "12"]),
        # uint16 Zarr array (ragged last chunks): pixel path, Zarr read by path in the workers
        ("u16.zarr", ["-k", "6", "--max-iter", "8", "--seed", "3"]),
    ],
)
def test_cluster_run_is_identical_to_local(cluster, inputs, tmp_path, capsys, name, args):
    src = str(inputs / name)
    common = ["compress", src, "--chunks", "128,128", *args]
    assert main([*common, "-o", str(tmp_path / "local.bq.zarr"), "--quiet"]) == 0
    assert main([*common, "-o", str(tmp_path / "dist.bq.zarr"), "--scheduler", cluster.address]) == 0
    err = capsys.readouterr().err
    assert f"dask: {cluster.address}, 2 workers" in err and "dashboard" in err  # the link, on stderr
    assert dask.config.get("scheduler", None) is None  # the CLI's client is gone after the run
    _same_store(tmp_path / "local.bq.zarr", tmp_path / "dist.bq.zarr")
    store = bigquant.open(tmp_path / "dist.bq.zarr")
    # One task per zarr chunk: the labels are chunked exactly like the job.
    assert zarr.open_array(str(tmp_path / "dist.bq.zarr" / "labels" / "0"), mode="r").chunks == (128, 128)
    assert store.metadata["chunks"] == [128, 128]

    # Decode through the cluster too: a streamed tiled TIFF and a Zarr array, both as local.
    expected = store.reconstruct().compute()
    for out in ("r.tif", "r.zarr"):
        assert (
            main(
                [
                    "decode",
                    str(tmp_path / "dist.bq.zarr"),
                    "-o",
                    str(tmp_path / out),
                    "--scheduler",
                    cluster.address,
                    "-q",
                ]
            )
            == 0
        )
    assert np.array_equal(tifffile.imread(tmp_path / "r.tif").reshape(expected.shape), expected)
    assert np.array_equal(zarr.open_array(str(tmp_path / "r.zarr"), mode="r")[...], expected)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial left behind


def test_environment_variable_selects_the_cluster(cluster, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    out = tmp_path / "env.bq.zarr"
    assert main(["compress", str(inputs / "china.tif"), "-k", "4", "--max-iter", "2", "-o", str(out)]) == 0
    assert f"dask: {cluster.address}" in capsys.readouterr().err
    # --quiet: no cluster line, only the summary on stdout.
    assert main(["decode", str(out), "-o", str(tmp_path / "env.tif"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert bigquant.open(out).k == 4 and (tmp_path / "env.tif").is_file()


def test_workers_option_starts_a_local_cluster(inputs, tmp_path, capsys):
    common = [
        "compress",
        str(inputs / "float.tif"),
        "-k",
        "5",
        "--method",
        "pixels",
        "--max-iter",
        "4",
        "--chunks",
        "128,128",
    ]
    assert main([*common, "-o", str(tmp_path / "local.bq.zarr"), "-q"]) == 0
    assert main([*common, "-o", str(tmp_path / "lc.bq.zarr"), "--workers", "1"]) == 0
    assert "dask: tcp://127.0.0.1:" in capsys.readouterr().err  # a LocalCluster of processes
    _same_store(tmp_path / "local.bq.zarr", tmp_path / "lc.bq.zarr")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("image", ["float.tif", "big.png"])
def test_workers_run_says_nothing_from_distributed(inputs, tmp_path, china, image):
    """A --workers run prints bigquant's lines only: no "Port 8787 is already in use" while
    another service holds the dashboard's default port, no nanny's "killing worker" at the end,
    nothing else of distributed's logs, from this process or from the worker processes. A PNG
    is decoded in this process: its 14 MiB of pixels must reach the workers outside the graph
    (distributed warns about graphs over 10 MB)."""
    import os
    import subprocess
    import sys

    if image == "big.png":
        Image.fromarray(np.tile(china, (5, 4, 1))[:2100, :2400]).save(tmp_path / image)
    source = tmp_path / image if image == "big.png" else inputs / image

    holder = socket.socket()
    with contextlib.suppress(OSError):  # another cluster may hold it already: the same case
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(bigquant.__file__).parents[1]), env.get("PYTHONPATH")]))
    argv = ["compress", str(source), "-k", "5", "--max-iter", "4", "--chunks", "128,128"]
    try:
        r = subprocess.run(
            [sys.executable, "-m", "bigquant.cli", *argv, "-o", str(tmp_path / "w.bq.zarr"), "--workers", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        holder.close()
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines and lines[0].startswith("dask: tcp://127.0.0.1:"), r.stderr
    noisy = [
        line
        for line in lines
        if any(word in line for word in ("distributed", "Port 8787", "killing", " - INFO - ", " - WARNING - "))
    ]
    assert noisy == [], r.stderr


def _refused_address() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture()
def fake_server():
    """A TCP server on 127.0.0.1 that accepts connections and then either never says a word
    ("silent") or sends another protocol's banner ("banner"); yields address(kind)."""
    servers, conns = [], []

    def start(kind: str) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        servers.append(srv)

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conns.append(conn)
                if kind == "banner":
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" * 64)

        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    for s in servers + conns:
        s.close()


@pytest.mark.parametrize(
    "how, message",
    [
        ("refused", "cannot connect to the Dask scheduler at tcp://127.0.0.1:"),  # nothing listens
        ("env-refused", "($DASK_SCHEDULER_ADDRESS)"),  # same, from the environment
        ("no-port", "is not valid: missing port"),  # malformed address
        ("bad-port", "is not valid"),  # port is not a number
        ("empty", "needs an address"),  # --scheduler ''
        # a port that accepts and stays silent: distributed's Client alone would wait forever
        ("silent", "no answer in 1 s; is it a Dask scheduler's address?"),
        ("banner", "does not speak Dask's protocol"),  # another service's port
        ("worker", "that is a Dask Worker, not a scheduler"),  # a worker's address
    ],
)
def test_bad_scheduler_is_one_line_exit_2_fast(
    cluster, inputs, tmp_path, capsys, monkeypatch, fake_server, how, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_cluster, "CONNECT_TIMEOUT_S", 1)
    address = {
        "refused": _refused_address,
        "no-port": lambda: "tcp://127.0.0.1",
        "bad-port": lambda: "tcp://localhost:port",
        "empty": lambda: "",
        "silent": lambda: fake_server("silent"),
        "banner": lambda: fake_server("banner"),
        "worker": lambda: sorted(cluster.worker_pids())[0],
    }.get(how, lambda: None)()
    argv = ["compress", str(inputs / "china.tif"), "-k", "4", "-o", str(tmp_path / "x.bq.zarr")]
    if how == "env-refused":
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", _refused_address())
    else:
        argv += ["--scheduler", address]
    t0 = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - t0 < 10
    assert message in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_scheduler_and_workers_together_is_a_usage_error(inputs, tmp_path, capsys):
    argv = [
        "compress",
        str(inputs / "china.tif"),
        "-o",
        str(tmp_path / "x.bq.zarr"),
        "--scheduler",
        "tcp://127.0.0.1:8786",
        "--workers",
        "2",
    ]
    assert main(argv) == 2
    assert "--scheduler or --workers, not both" in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_relative_paths_mean_the_callers_folder(cluster, inputs, tmp_path, monkeypatch, capsys):
    # The workers run in another folder (the cluster's): every path a task opens must be absolute.
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(inputs / "u16.zarr", tmp_path / "in.zarr")
    assert (
        main(
            [
                "compress",
                "in.zarr",
                "-k",
                "5",
                "--max-iter",
                "3",
                "--chunks",
                "128,128",
                "-o",
                "rel.bq.zarr",
                "--scheduler",
                cluster.address,
                "-q",
            ]
        )
        == 0
    )
    assert main(["decode", "rel.bq.zarr", "-o", "rel.zarr", "--scheduler", cluster.address, "-q"]) == 0
    store = bigquant.open(tmp_path / "rel.bq.zarr")
    assert np.array_equal(zarr.open_array(str(tmp_path / "rel.zarr"), mode="r")[...], store.reconstruct().compute())
    assert int(store.labels.max().compute()) > 0  # the labels were written here, not lost elsewhere
    stray = [p for p in cluster.folder.rglob("*") if "rel" in p.name or "in.zarr" in p.name]
    assert not stray, stray
