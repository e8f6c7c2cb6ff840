"""A seeded mutation fuzz of the CLI: damaged TIFF, SVS, PNG, JPEG inputs and damaged stores.

Each case flips, truncates, overwrites, inserts or zeroes bytes of a real file (a real Aperio
SVS, scikit-image and scikit-learn photographs written as TIFF, PNG and JPEG; the ``zarr.json``
documents and chunk files of a store bigquant wrote), then runs the command on it through
:func:`bigquant.cli.main`. A run may succeed (and then what it wrote must open and decode) or
refuse with status 2 and one line on stderr; never status 1, a traceback, a run of more than
:data:`CASE_S` seconds, or memory far beyond the budget. The seeds are fixed, so a failure
found once is found again; a case's id names its file, mutation and seed.
"""

from __future__ import annotations

import io
import json
import random
import resource
import shutil
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import bigquant
from bigquant.cli import main

DATA = Path(__file__).parent / "data"
#: Mutated copies of each input and of each store file; the whole test stays well under 2 min.
CASES_PER_INPUT = 10
CASES_PER_STORE_FILE = 4
#: Seconds a single damaged case may take (a clean one takes well under one).
CASE_S = 60.0
#: Memory budget given to every run, and the most the process may grow beyond it over the test.
BUDGET = "256MB"
GROWTH_LIMIT_MIB = 1024


def _mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One random damage of ``data``: which, and the damaged bytes."""
    n = len(data)
    kind = rng.choice(["flip", "truncate", "overwrite", "insert", "zero"])
    b = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del b[rng.randrange(n) :]
    elif kind == "overwrite":
        i = rng.randrange(n)
        b[i : i + rng.randint(1, 64)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "insert":
        i = rng.randrange(n)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    else:
        i = rng.randrange(n)
        span = len(b[i : i + rng.randint(1, 256)])
        b[i : i + span] = bytes(span)
    return bytes(b), kind


def _edit_json(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A well-formed JSON document with one value replaced by one of another kind or size."""
    doc = json.loads(data)
    paths = []

    def walk(node, path):
        paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            walk(value, (*path, key))

    walk(doc, ())
    path = rng.choice(paths[1:] or paths)
    value = rng.choice([None, -1, 0, 2**63, 1e308, "", "x" * 10, [], {}, [1, 2, 3], True, 3.5])
    if not path:
        return json.dumps(value).encode(), "json-root"
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc).encode(), "json-" + "/".join(map(str, path))


def _run(argv: list[str]) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv)
    return status, err.getvalue(), time.monotonic() - start


def _verdict(status: int, err: str, seconds: float, what: str) -> str | None:
    """What is wrong with a run, or None: status 0, or 2 with one line (warnings aside), in time."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("bigquant: warning")]
    one_line = len(errors) == 1 and errors[0].startswith("bigquant")
    if "Traceback" in err or seconds >= CASE_S or status not in (0, 2) or (status == 2 and not one_line):
        return f"{what}: status {status}, {seconds:.1f} s: {err[-600:]}"
    return None


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def originals(tmp_path_factory, china, coffee, camera) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("originals")
    files = {}
    files["tiff"] = d / "coffee.tif"  # tiled, Deflate: tile offsets, byte counts and a codec to damage
    tifffile.imwrite(files["tiff"], coffee[:128, :192], tile=(32, 32), photometric="rgb", compression="zlib")
    files["tiff-strips"] = d / "camera.tif"  # stripped greyscale, LZW
    tifffile.imwrite(files["tiff-strips"], camera[:96, :128], rowsperstrip=16, compression="lzw")
    files["png"] = d / "china.png"
    Image.fromarray(china[:96, :128]).save(files["png"])
    files["jpeg"] = d / "coffee.jpg"
    Image.fromarray(coffee[:96, :128]).save(files["jpeg"], quality=90)
    files["svs"] = DATA / "cmu_small_region.svs"
    return files


@pytest.mark.timeout(600)
def test_damaged_inputs(originals, tmp_path):
    """Every damaged input is compressed (into a store that decodes) or refused in one line."""
    start_rss = _rss_mib()
    failures: list[str] = []
    for name, path in originals.items():
        data = path.read_bytes()
        for seed in range(CASES_PER_INPUT):
            rng = random.Random(f"{name}-{seed}")
            damaged, kind = _mutate(data, rng)
            src = tmp_path / f"{name}-{seed}{path.suffix}"
            src.write_bytes(damaged)
            out = tmp_path / f"{name}-{seed}.bq.zarr"
            argv = ["compress", str(src), "-o", str(out), "-k", "4", "--max-iter", "3", "-q", "--memory-limit", BUDGET]
            if name == "svs":  # the slide's smallest level: the damage is mostly in its headers
                argv += ["--level", "2"]
            what = f"{name} seed {seed} ({kind})"
            status, err, seconds = _run(argv)
            failures.append(_verdict(status, err, seconds, what) or "")
            if status == 0:
                labels = bigquant.open(out).labels.compute()
                assert labels.ndim == 2, what
                shutil.rmtree(out)
            elif out.exists():
                failures.append(f"{what}: status {status} but {out.name} was written")
            if name == "svs":
                failures.append(_verdict(*_run(["info", str(src)]), f"info {what}") or "")
            src.unlink()
    assert [f for f in failures if f] == []
    assert _rss_mib() - start_rss < GROWTH_LIMIT_MIB


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory, coffee) -> Path:
    d = tmp_path_factory.mktemp("store")
    src = d / "coffee.tif"
    tifffile.imwrite(src, coffee[:128, :192], tile=(32, 32), photometric="rgb")
    store = d / "clean.bq.zarr"
    assert main(["compress", str(src), "-o", str(store), "-k", "6", "--chunks", "64,64", "-q"]) == 0
    return store


@pytest.mark.timeout(600)
def test_damaged_stores(clean_store, tmp_path):
    """Every store with one damaged file is shown and decoded, or refused in one line."""
    files = sorted(p.relative_to(clean_store) for p in clean_store.rglob("*") if p.is_file())
    assert any(f.name == "zarr.json" for f in files) and any("c" in f.parts for f in files)
    failures: list[str] = []
    for rel in files:
        for seed in range(CASES_PER_STORE_FILE):
            rng = random.Random(f"{rel}-{seed}")
            data = (clean_store / rel).read_bytes()
            if rel.name == "zarr.json" and seed % 2:
                damaged, kind = _edit_json(data, rng)
            else:
                damaged, kind = _mutate(data, rng)
            store = tmp_path / "damaged.bq.zarr"
            shutil.copytree(clean_store, store)
            (store / rel).write_bytes(damaged)
            what = f"{rel} seed {seed} ({kind})"
            failures.append(_verdict(*_run(["info", str(store)]), f"info {what}") or "")
            failures.append(_verdict(*_run(["info", "--json", str(store)]), f"info --json {what}") or "")
            out = tmp_path / "decoded.png"
            status, err, seconds = _run(["decode", str(store), "-o", str(out), "-q"])
            failures.append(_verdict(status, err, seconds, f"decode {what}") or "")
            if status == 0:
                assert np.asarray(Image.open(out)).shape[:2] == (128, 192), what
                out.unlink()
            elif out.exists():
                failures.append(f"decode {what}: status {status} but {out.name} was written")
            shutil.rmtree(store)
    assert [f for f in failures if f] == []
