"""Every script in examples/ runs to completion on small images and prints what it promises.

Each runs as a subprocess (as a user would run it) with its outputs in ``tmp_path``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bigquant

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 240  # seconds; the slowest (local_cluster) takes ~25 s, mostly starting 2 worker processes


def run_example(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_every_example_has_a_test_and_a_docstring():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == ["compress_and_decode.py", "local_cluster.py", "read_without_bigquant.py", "shared_palette.py"]
    for name in scripts:
        text = (EXAMPLES / name).read_text()
        assert text.startswith('"""') and "Run::" in text, f"{name} needs a docstring saying how to run it"


def test_compress_and_decode(tmp_path):
    out = run_example("compress_and_decode.py", "-k", "8", "--out-dir", tmp_path, cwd=tmp_path).stdout
    recorded, recomputed = map(float, re.search(r"PSNR ([\d.]+) dB \(recorded.*?\), ([\d.]+) dB", out).groups())
    assert recorded == pytest.approx(recomputed, abs=0.01) and recorded > 20
    assert re.search(r"store [\d,]+ B \([\d.]+:1", out)
    assert (tmp_path / "recon.tif").is_file() and (tmp_path / "china.bq.zarr" / "zarr.json").is_file()


def test_read_without_bigquant(tmp_path):
    # no store given: the script makes one with the CLI in a subprocess, then reads it three ways
    out = run_example("read_without_bigquant.py", "--out-dir", tmp_path, cwd=tmp_path).stdout
    assert "zarr, dask and xarray agree" in out and "label counts match the metadata" in out
    assert "done without importing bigquant" in out
    assert (tmp_path / "china.bq.zarr").is_dir()


def test_shared_palette(tmp_path, coffee, chelsea_crop):
    import imageio.v3 as iio

    paths = [tmp_path / "coffee.png", tmp_path / "chelsea.png"]
    iio.imwrite(paths[0], coffee[::2, ::2])
    iio.imwrite(paths[1], chelsea_crop)
    out = run_example("shared_palette.py", *paths, "-k", "8", "--out-dir", tmp_path, cwd=tmp_path).stdout
    assert "fitted a palette of K=8 colours across 2 images" in out
    for name in ("coffee.png", "chelsea.png"):
        shared, own = map(float, re.search(rf"{name}\s+([\d.]+) dB\s+([\d.]+) dB", out).groups())
        assert shared > 15 and own > 15
    codebooks = [bigquant.open(tmp_path / f"{n}.shared.bq.zarr").codebook for n in ("coffee", "chelsea")]
    np.testing.assert_array_equal(codebooks[0], codebooks[1])


@pytest.fixture
def chelsea_crop() -> np.ndarray:
    """A 150 x 200 corner of scikit-image's cat photograph."""
    from skimage import data

    return data.chelsea()[:150, :200]


def test_local_cluster(tmp_path):
    proc = run_example("local_cluster.py", "-k", "8", "--out-dir", tmp_path, cwd=tmp_path)
    out = proc.stdout
    assert re.search(r"cluster: 2 workers at tcp://", out)
    assert re.search(r"dashboard: http://\S+", out)
    assert re.search(r"\d+ tasks ran on 2 workers", out), "the work did not run on both workers"
    assert "cluster closed" in out
    assert (tmp_path / "china.bq.zarr" / "zarr.json").is_file()
    if "Detected different `run_spec`" in proc.stderr:
        # every Lloyd iteration builds the same task keys with other centroids: map_blocks(name=...)
        # in kmeans.lloyd_step_graph fixes the whole key; token=... would add the arguments' hash
        pytest.xfail("kmeans.lloyd_step_graph reuses task keys across iterations (distributed warns)")
