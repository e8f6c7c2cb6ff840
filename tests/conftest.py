"""Shared fixtures: small real images (scikit-learn / scikit-image bundled data) and synthetic ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def china() -> np.ndarray:
    """scikit-learn's bundled photograph, 427 x 640 x 3 uint8."""
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")


@pytest.fixture(scope="session")
def v1_store() -> Path:
    """A format-version-1 store (labels one array), as bigquant wrote them: tests/data/README.md."""
    return Path(__file__).parent / "data" / "v1_coffee.bq.zarr"


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """scikit-image's bundled photograph, 400 x 600 x 3 uint8."""
    from skimage import data

    return data.coffee()


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """scikit-image's bundled greyscale photograph, 512 x 512 uint8."""
    from skimage import data

    return data.camera()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's bundled photograph, 512 x 512 x 3 uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def photo_array(china) -> np.ndarray:
    """A 60 x 80 x 3 uint8 crop of china.jpg: the good input of the bad-input tables."""
    return np.ascontiguousarray(china[100:160, 200:280])


@pytest.fixture(scope="module")
def template_store(tmp_path_factory, photo_array) -> Path:
    """A small good store (K=4, 2 x 3 label chunks of 32 x 32) that the tables copy and damage."""
    import bigquant

    path = tmp_path_factory.mktemp("template") / "good.bq.zarr"
    bigquant.compress(photo_array, path, k=4, max_iter=3, chunks=(32, 32))
    return path


_RNG = np.random.default_rng(1234)


def random_image(shape, dtype) -> np.ndarray:
    """Random pixels over most of the dtype's range (floats in [0, 1))."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return _RNG.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    return _RNG.integers(max(info.min, -30000), min(info.max, 60000), size=shape, endpoint=True).astype(dtype)


def known_colours_image(k: int = 6, shape=(120, 170), noise: float = 2.0, seed: int = 0, dtype=np.uint8):
    """An image made of ``k`` well separated colours in random blocks, plus small Gaussian noise.

    Returns ``(image, colours)`` with ``colours`` of shape (k, 3) float64.
    """
    rng = np.random.default_rng(seed)
    colours = rng.permutation(
        np.array(
            [
                [30, 30, 200],
                [220, 40, 40],
                [40, 200, 60],
                [240, 240, 240],
                [20, 20, 20],
                [200, 200, 40],
                [150, 60, 200],
                [60, 180, 190],
            ],
            dtype=np.float64,
        )
    )[:k]
    cell = rng.integers(0, k, size=(shape[0] // 10 + 1, shape[1] // 10 + 1))
    idx = np.kron(cell, np.ones((10, 10), dtype=int))[: shape[0], : shape[1]]
    idx.flat[:k] = np.arange(k)  # every colour present
    img = colours[idx] + rng.normal(0, noise, size=shape + (3,))
    if np.dtype(dtype).kind == "u":
        img = np.clip(np.rint(img), 0, np.iinfo(dtype).max)
    return img.astype(dtype), colours


# --- Object storage: the images put in a bucket, and what the remote tests check with ---------------
# Used by tests/test_remote.py (S3, memory://) and tests/test_remote_gcs_azure.py (GCS, Azure).


def blocks_image(seed: int = 3, shape=(256, 320)) -> np.ndarray:
    """uint8 RGB: a few colour blocks with noise (the histogram path, fast labels)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 3))
    idx = (np.arange(shape[0])[:, None] // 48 + np.arange(shape[1])[None, :] // 64) % 6
    return np.clip(base[idx] + rng.normal(0, 6, (*shape, 3)), 0, 255).astype(np.uint8)


def write_bucket_inputs(folder: Path) -> Path:
    """Write one 384 x 384 image as a tiled BigTIFF (``slide.tif``) and as a Zarr array
    (``img.zarr``) in ``folder``: the inputs the remote tests put in a bucket."""
    import tifffile
    import zarr

    img = blocks_image(shape=(384, 384))
    tifffile.imwrite(folder / "slide.tif", img, tile=(64, 64), compression="zlib", photometric="rgb", bigtiff=True)
    zarr.create_array(folder / "img.zarr", shape=img.shape, chunks=(64, 64, 3), dtype=img.dtype)[...] = img
    return folder


def upload_bucket_inputs(fs, bucket: str, folder: Path) -> None:
    """Upload :func:`write_bucket_inputs`' files from ``folder`` to ``bucket`` on the fsspec file system ``fs``."""
    fs.put_file(str(folder / "slide.tif"), f"{bucket}/slide.tif")
    fs.put(str(folder / "img.zarr"), f"{bucket}/img.zarr", recursive=True)


def object_keys(fs, path: str) -> set[str]:
    """The keys below ``path`` on ``fs``, relative to it (listed afresh)."""
    fs.invalidate_cache()
    base = path.strip("/")
    return {k.strip("/")[len(base) + 1 :] for k in fs.find(path)}


def one_line(err: str) -> str:
    """The one non-blank line of ``err``; fails on more, or on a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- A real dask.distributed cluster: `dask scheduler` + `dask worker` subprocesses on 127.0.0.1 ---
# Used by tests/test_distributed.py and tests/test_faults.py, each through a module-scoped fixture.

import contextlib  # noqa: E402


class DaskCluster:
    """A scheduler and worker processes started by :func:`dask_cluster`; ``address`` is tcp://..."""

    def __init__(self, folder, n_workers: int):
        self.folder = folder
        self.n_workers = n_workers
        self.address = None
        self.procs = []  # (name, Popen, log path); each its own process group

    def client(self, **kw):
        """A short-lived Client (use in a ``with``); never set as Dask's default."""
        from distributed import Client

        return Client(self.address, timeout="20s", set_as_default=False, **kw)

    def worker_pids(self) -> dict:
        """{worker address: pid of the worker process (not its nanny)}."""
        import os

        with self.client() as c:
            return c.run(os.getpid)

    def logs(self) -> str:
        out = []
        for name, _, log in self.procs:
            text = log.read_text(errors="replace") if log.exists() else ""
            out.append(f"--- {name} ---\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(out)


@contextlib.contextmanager
def dask_cluster(
    folder, n_workers: int = 2, start_timeout: float = 90, own_folders: bool = False, env: dict | None = None
):
    """Start `dask scheduler` and ``n_workers`` `dask worker --nthreads 1` (with nannies) on 127.0.0.1.

    ``own_folders``: each worker runs in an empty working folder of its own, apart from the
    scheduler's and the test's (a cluster that shares no file system with its client).
    ``env``: variables to set in the processes' environment (this one's otherwise); None as a
    value removes the variable.

    Each process runs in its own session, so teardown kills whole process groups (nanny and worker
    alike): SIGTERM, then SIGKILL whatever is left after a few seconds. Workers also exit by
    themselves 60 s after losing the scheduler (``--death-timeout``), should teardown never run.
    """
    import json
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    import bigquant

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k not in extra}
    env.update({k: v for k, v in extra.items() if v is not None})
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    # Workers import the same bigquant as this process, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(bigquant.__file__).parents[1]), env.get("PYTHONPATH")]))
    dask_cli = [sys.executable, "-m", "dask"]
    sched_file = folder / "scheduler.json"
    cluster = DaskCluster(folder, n_workers)

    def spawn(name, args, cwd=folder):
        log = folder / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                dask_cli + args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
            )
        cluster.procs.append((name, proc, log))
        return proc

    try:
        sched = spawn(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(sched_file),
            ],
        )
        deadline = time.monotonic() + start_timeout
        while not sched_file.exists():
            if sched.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start\n" + cluster.logs())
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one go, but give it a moment
        cluster.address = json.loads(sched_file.read_text())["address"]
        for i in range(n_workers):
            cwd = Path(tempfile.mkdtemp(prefix=f"bq-worker{i}-")) if own_folders else folder
            spawn(
                f"worker{i}",
                [
                    "worker",
                    "--scheduler-file",
                    str(sched_file),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--death-timeout",
                    "60",
                    "--local-directory",
                    str(cwd / f"worker{i}") if own_folders else str(folder / f"worker{i}"),
                ],
                cwd=cwd,
            )
        with cluster.client() as c:
            c.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
        yield cluster
    finally:
        for _, proc, _ in reversed(cluster.procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        end = time.monotonic() + 10
        for _, proc, _ in cluster.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, end - time.monotonic()))
        for _, proc, _ in cluster.procs:  # nannies' children too: the whole group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real dask scheduler and two workers on 127.0.0.1, shared by the tests of one module."""
    with dask_cluster(tmp_path_factory.mktemp("cluster"), n_workers=2) as c:
        yield c


@pytest.fixture
def small_screen(monkeypatch):
    """Label pyramids down to 100 pixels instead of a screen's 2048, so small images get levels."""
    from bigquant.store import format as store_format

    monkeypatch.setattr(store_format, "SCREEN_SIDE", 100)
    return 100
