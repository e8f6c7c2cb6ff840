"""Process tuning of the bigquant command (bigquant._runtime): glibc returning freed memory."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bigquant import _runtime


def test_release_freed_memory_returns_heap_holes_to_the_os():
    """glibc keeps freed small blocks between live ones; the compress steps trim them."""
    import ctypes.util

    if not os.path.exists("/proc/self/statm") or "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("needs glibc and Linux's /proc")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    blocks = [np.ones(60_000 // 8) for _ in range(4000)]  # 60 kB each: heap, not mmap
    del blocks[::2]  # about 120 MB of holes between live blocks
    before = rss()
    _runtime.release_freed_memory()
    _runtime.release_freed_memory()  # idempotent
    assert before - rss() > 60 * 2**20, (before, rss())
    del blocks


_MAPPED_FREES = """
import os, sys
import numpy as np
from bigquant import _runtime

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "map":
    assert _runtime.map_large_arrays()
first = np.ones((5 << 20) // 8)
del first  # freeing a mapped block raises glibc's own threshold past 5 MiB
blocks = [np.ones((5 << 20) // 8) for _ in range(40)]
before = rss()
del blocks[::2]  # 100 MiB freed between live blocks
print((before - rss()) // 2**20)
"""


@pytest.mark.parametrize("mode", ["map", "default"])
def test_map_large_arrays_returns_freed_arrays_at_once(mode):
    """The ``bigquant`` command has glibc map arrays of 4 MiB and more on their own, so freeing one
    lowers the RSS at once; by default the freed blocks stay in the heap between live ones."""
    import ctypes.util

    if not os.path.exists("/proc/self/statm") or "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("needs glibc and Linux's /proc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _MAPPED_FREES, mode], capture_output=True, text=True, env=env, check=True
    ).stdout
    freed_mib = int(out)
    if mode == "map":
        assert freed_mib > 90, out
    else:
        assert freed_mib < 20, out


def test_the_kernels_count_as_cached_once_one_paths_modules_are(tmp_path, monkeypatch):
    # numba's index files under NUMBA_CACHE_DIR, as a run of one path leaves them: a machine that
    # only ever ran the pixel path has no histogram kernels cached, and is not told it compiles
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    folder = tmp_path / "bigquant_kernels"
    folder.mkdir()
    assert not _runtime.kernels_cached()
    for module in ("common", "hamerly", "kdtree", "lloyd", "seeding"):
        (folder / f"{module}.fn-10.{tag}.nbi").write_bytes(b"")
    assert not _runtime.kernels_cached()  # neither path has all its kernels
    (folder / f"coreset.block_cells-31.{tag}.nbi").write_bytes(b"")
    assert _runtime.kernels_cached()
