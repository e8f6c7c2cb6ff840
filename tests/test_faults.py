"""Faults: a worker killed mid-job, bigquant itself killed mid-write, two jobs sharing a cluster.

(a) Dask reruns the tasks a dead worker held; the tree reductions fix the order of every sum,
    so the result is bit-identical to an undisturbed run.
(b) A store is built in a hidden sibling folder and renamed into place at the end, so a SIGKILL
    while writing leaves no complete-looking store at the target (and an existing one untouched);
    the same command run again succeeds and removes the dead run's partial folder.
(c) Every task key depends on its job's inputs and output path, so two jobs on one scheduler
    never share a task and each gets what it would have got alone.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cli_harness import CliJob, tree_digest

import bigquant
from bigquant.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, china):
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(11)
    # float32: the pixel path (a coreset pass, then label passes) over 144 chunks of 32 x 32.
    f = (china[:384, :384].astype(np.float32) / 255 + rng.normal(0, 0.02, (384, 384, 3))).astype(np.float32)
    tifffile.imwrite(d / "float.tif", f, tile=(32, 32), photometric="rgb")
    # uint8 noise, 512 x 512 in 32 x 32 tiles: 256 label chunks to write, about a second of writing.
    tifffile.imwrite(
        d / "noise.tif", rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), tile=(32, 32), photometric="rgb"
    )
    return d


def _same_store(a, b):
    sa, sb = bigquant.open(a), bigquant.open(b)
    assert np.array_equal(sa.codebook, sb.codebook)
    assert np.array_equal(sa.labels.compute(), sb.labels.compute())
    for key in ("k", "iterations", "inertia", "mse", "inertia_history", "shift_history"):
        assert sa.metadata[key] == sb.metadata[key], key


# --- (a) a worker dies in the middle of a compress -----------------------------------------------


@pytest.mark.timeout(240)
def test_worker_killed_mid_compress_gives_identical_output(cluster, inputs, tmp_path):
    args = [
        "compress",
        str(inputs / "float.tif"),
        "-k",
        "8",
        "--method",
        "pixels",
        "--chunks",
        "32,32",
        "--max-iter",
        "10",
        "--tol",
        "0",
        "--seed",
        "5",
    ]
    assert main([*args, "-o", str(tmp_path / "alone.bq.zarr"), "-q"]) == 0  # undisturbed (local)

    pids = cluster.worker_pids()
    victim, victim_pid = sorted(pids.items())[0]
    job = CliJob([*args, "-o", str(tmp_path / "hit.bq.zarr"), "--scheduler", cluster.address], tmp_path)
    # The coreset pass is under way on both workers (the image itself persisted on them).
    job.wait_for("pass 2 · coreset", timeout=120)
    os.kill(victim_pid, signal.SIGKILL)  # the worker process itself; its nanny starts a new one
    assert job.proc.poll() is None, "the job ended before the worker was killed"
    assert job.finish(timeout=180)[0] == 0, job.text
    assert "coreset:" in job.text and "labels:" in job.text
    _same_store(tmp_path / "alone.bq.zarr", tmp_path / "hit.bq.zarr")

    # The scheduler did lose that worker mid-job (so tasks were rerun elsewhere).
    log = (cluster.folder / "scheduler.log").read_text(errors="replace")
    assert f"Remove worker addr: {victim}" in log or f"Removing worker {victim}" in log, cluster.logs()
    assert victim_pid not in cluster.worker_pids().values()


# --- (b) bigquant itself dies while writing the store ----------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "existing",
    [
        False,  # a new target: nothing may appear there
        True,  # --overwrite of a complete store: the old store must survive untouched
    ],
)
def test_bigquant_killed_while_writing_leaves_no_store(inputs, tmp_path, capsys, existing):
    target = tmp_path / "out.bq.zarr"

    def command(out: Path) -> list[str]:
        return [
            "compress",
            str(inputs / "noise.tif"),
            "-o",
            str(out),
            "-k",
            "32",
            "--method",
            "pixels",
            "--max-iter",
            "1",
            "--chunks",
            "32,32",
            "-q",
        ]

    args = command(target)
    if existing:
        assert main(["compress", str(inputs / "noise.tif"), "-o", str(target), "-k", "3", "--max-iter", "1", "-q"]) == 0
        before = tree_digest(target)
        args.append("--overwrite")
    job = CliJob(args, tmp_path)
    try:
        partial = job.wait_for_chunks(tmp_path, target.name, timeout=120)
        job.signal(signal.SIGKILL)
    finally:
        # Reaped (the group killed if need be): its PID is free, so the next run may clean its
        # partial folder.
        rc, _ = job.finish(timeout=30)
    assert rc == -signal.SIGKILL
    assert partial.is_dir()  # what a killed run leaves: a hidden folder, never a store at the target

    capsys.readouterr()
    if existing:
        assert tree_digest(target) == before
        assert main(["info", str(target)]) == 0 and "K           3" in capsys.readouterr().out
    else:
        assert not target.exists()
        assert main(["info", str(target)]) == 2
        assert "does not exist" in capsys.readouterr().err
    assert main(["info", str(partial)]) == 2  # the partial folder is no store either
    assert "incomplete" in capsys.readouterr().err

    # The same command again succeeds, and cleans up after the dead run.
    assert main(args) == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.")]
    assert main(command(tmp_path / "alone.bq.zarr")) == 0
    _same_store(tmp_path / "alone.bq.zarr", target)


# --- (c) two jobs on one cluster at the same time ---------------------------------------------------


@pytest.mark.timeout(240)
def test_two_jobs_sharing_a_cluster_get_what_they_would_alone(cluster, inputs, tmp_path):
    with cluster.client() as c:  # the worker killed in (a) is back
        c.wait_for_workers(2, timeout=60)
    # Same input (the read tasks are the same), different seeds and K (every other task differs).
    jobs = {
        "a": ["-k", "6", "--seed", "1"],
        "b": ["-k", "7", "--seed", "2"],
    }
    common = [
        "compress",
        str(inputs / "float.tif"),
        "--method",
        "pixels",
        "--chunks",
        "64,64",
        "--max-iter",
        "20",
        "--tol",
        "0",
    ]
    for name, extra in jobs.items():
        assert main([*common, *extra, "-o", str(tmp_path / f"{name}-alone.bq.zarr"), "-q"]) == 0
    running = {
        name: CliJob(
            [*common, *extra, "-o", str(tmp_path / f"{name}.bq.zarr"), "--scheduler", cluster.address],
            tmp_path,
            tmp_path / f"{name}.out",
        )
        for name, extra in jobs.items()
    }
    for job in running.values():  # both connected and reading before either finished
        job.wait_for("pass 1 · sample", timeout=120)
    assert all(job.proc.poll() is None for job in running.values()), "the jobs did not overlap"
    for name, job in running.items():
        assert job.finish(timeout=180)[0] == 0, job.text
    for name in jobs:
        _same_store(tmp_path / f"{name}-alone.bq.zarr", tmp_path / f"{name}.bq.zarr")
