"""Process tuning for the ``bigquant`` command: lean imports, malloc settings, kernel warm-up.

The settings that change the whole process (:func:`lean_dask_import`, :func:`map_large_arrays`,
:data:`WARM_UP_WITHOUT_BLAS`) are made by the command's entry point only, never by the library:
a library user's program may need what they leave out. :func:`release_freed_memory` and
:func:`start_kernel_warm_up` are harmless anywhere and are called by the library.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: Set by the ``bigquant`` command for its own process: the warm-up skips numba's BLAS probe
#: (see :func:`set_up_numba`). A library user's other threads might import scipy.linalg meanwhile,
#: so it stays off in-process.
WARM_UP_WITHOUT_BLAS = False
#: Arrays from this size up get pages of their own from the OS (see :func:`map_large_arrays`).
MMAP_THRESHOLD = 4 << 20

_LIBC: Any = None


def lean_dask_import() -> None:
    """Import ``dask.array`` without the modules it only imports to recognise foreign arrays.

    Dask imports xarray and sparse, when installed, and scipy.sparse and scipy.fftpack, to
    recognise their arrays, which a bigquant command never meets: about 0.5 s and 0.15 s of
    every run. xarray and sparse stay out of this process; the two scipy modules are kept out
    only while ``dask.array`` is imported, so anything that needs them later (scikit-learn, for
    ``--sample``) imports them as usual.

    While ``dask.array`` is imported, ``dask.utils.derived_from`` also skips rewriting NumPy's
    docstrings for the functions and ufuncs Dask mirrors (about half of ``import dask.array``);
    the functions themselves are unchanged, and one NumPy lacks still gets Dask's stand-in that
    raises.
    """
    import dask.utils

    for name in ("xarray", "sparse"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    held = [name for name in ("scipy.sparse", "scipy.fftpack") if name not in sys.modules]
    for name in held:
        sys.modules[name] = None  # type: ignore[assignment]
    derived_from = dask.utils.derived_from

    def without_docs(original: Any, *args: Any, **kwargs: Any) -> Any:
        full = derived_from(original, *args, **kwargs)
        return lambda method: method if hasattr(original, getattr(method, "__name__", "")) else full(method)

    dask.utils.derived_from = without_docs  # type: ignore[assignment]
    try:
        import dask.array  # noqa: F401
    finally:
        dask.utils.derived_from = derived_from
        for name in held:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _libc() -> Any:
    """glibc through ctypes (loaded once), or None where there is none."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            _LIBC = lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else False
        except OSError:
            _LIBC = False
    return _LIBC or None


def map_large_arrays(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc map every allocation of ``threshold`` bytes or more on its own, for this process.

    By default glibc raises its mmap threshold (up to 32 MiB) each time a mapped block is freed,
    so the histogram's partial results and the fit's arrays (4-40 MB) end up in the heap, and
    the holes they leave when freed stay in the process's RSS until the next
    :func:`release_freed_memory`. A fixed threshold keeps the peak RSS lower and steadier from
    run to run, for a little more system time (fresh pages for every chunk). A process-wide
    setting, so only the ``bigquant`` command makes it, never the library. Returns False where
    there is no glibc.
    """
    libc = _libc()
    return bool(libc and libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD


def release_freed_memory() -> None:
    """Hand the heap memory freed by the last step back to the operating system.

    glibc keeps freed heap pages (arrays below its mmap threshold, up to 32 MiB) for reuse, so a
    step's peak stays in the process's RSS and the next step's adds to it; ``malloc_trim(0)``
    between the steps of a compress (histogram, fit, label table) keeps the peaks from adding
    up. A no-op where there is no glibc. dask.distributed trims its workers itself; this is for
    the local scheduler's process.
    """
    libc = _libc()
    if libc:
        libc.malloc_trim(0)


def warm_up(without_blas: bool = False) -> None:
    """Load numba's compiler machinery (:func:`set_up_numba`) and the kernels of the histogram
    path from the cache."""
    set_up_numba(without_blas)
    load_histogram_path()


def set_up_numba(without_blas: bool = False) -> None:
    """Import numba and set up its compiler machinery, by loading one kernel from the cache.

    A process's first call of any compiled function costs a few tenths of a second of numba
    set-up (its typing and lowering registries), whatever the function, after importing numba.
    :func:`start_kernel_warm_up` runs this on a thread while an image decodes (the decoders
    release the GIL), so a one-shot ``bigquant compress`` does not pay for it after the decode.

    With ``without_blas`` (the ``bigquant`` command's own process only), ``scipy.linalg`` is
    held out while numba sets up: numba imports it only to find out whether ``np.dot`` can be
    compiled, which no kernel here uses. Anything that imports it afterwards gets it.
    """
    held = without_blas and "scipy.linalg" not in sys.modules
    if held:
        sys.modules["scipy.linalg"] = None  # type: ignore[assignment]
    try:
        from ._kernels import histogram as kh

        kh.colour_codes(np.zeros((1, 3), dtype=np.uint8))
    finally:
        if held and sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


def load_histogram_path() -> None:
    """Load the kernels of the uint8 histogram path from the cache, with the argument types the
    real calls use, so that they are loaded before the decode ends."""
    from ._kernels import hamerly as kha
    from ._kernels import histogram as kh
    from ._kernels import lloyd as kl
    from ._kernels import seeding as ks

    x = np.zeros((4, 3), dtype=np.uint8)
    f = np.zeros((4, 3))
    cen = np.zeros((2, 3))
    table = np.zeros(256, dtype=np.int32)
    counts = np.ones(4, dtype=np.int32)
    codes, parts = kh.block_histogram(x, table)
    m = kh.insert_codes(codes, parts, table, np.zeros(4, dtype=np.uint32), 0)
    kh.unpack_codes(kh.drain(np.zeros(4, dtype=np.uint32)[:m], table, True)[0], 3)
    m = kh.insert_codes(codes, parts, table, np.zeros(0, dtype=np.uint32), 0)
    kh.drain_table(table, m)
    kh.coarse_bins(x, counts, 5)
    kh.count_bins(x, 5)
    kl.weighted_moments(x, counts)
    ks.sq_dist_to(f, f[0], np.zeros(4))
    ks.kpp_best_candidate(f, np.ones(4), np.zeros(4), np.zeros(1, dtype=np.int64))
    sqd = kha.centroid_sq_distances(cen)
    kha.rings(sqd, np.argsort(sqd, axis=1))
    for pts, wts in ((f, np.ones(4)), (x, counts)):
        kha.hamerly_step(
            pts,
            wts,
            cen,
            np.zeros(2),
            np.ones(2),
            np.zeros((2, 2), dtype=np.int64),
            np.zeros((2, 2)),
            np.zeros(4, dtype=np.uint8),
            np.zeros(4, dtype=np.float32),
            np.zeros(4, dtype=np.float32),
            True,
        )
    kl.nearest_sq_dist(x, cen, np.zeros(4), np.zeros(4, dtype=np.uint8))
    kh.lut_labels(x, np.zeros(1, dtype=np.uint8), cen, np.zeros(4, dtype=np.uint8), False)


def _quietly(load: Any, *args: Any) -> None:
    try:
        set_up_numba(WARM_UP_WITHOUT_BLAS)
        (load or load_histogram_path)(*args)
    except Exception:  # pragma: no cover - the real first call will raise it again, in context
        pass


def start_kernel_warm_up(load: Any = None, *args: Any) -> threading.Thread:
    """Set numba up and run ``load(*args)`` (default: :func:`load_histogram_path`) on a thread
    while an image decodes; returns the started thread, which the caller joins. (The modules
    import the kernels where they use them, so importing bigquant does not import numba.)"""
    thread = threading.Thread(target=_quietly, args=(load, *args), name="bigquant-warm-up", daemon=True)
    thread.start()
    return thread


#: The kernel modules (``bigquant/_kernels``) whose compiled code numba caches on disk, by the
#: path of a fit that compiles them: the histogram path's, and the pixel path's.
PATH_KERNELS = (
    ("common", "hamerly", "histogram", "kdtree", "lloyd", "seeding"),
    ("common", "coreset", "hamerly", "kdtree", "lloyd", "seeding"),
)


def kernels_cached() -> bool:
    """Whether numba's on-disk cache holds compiled code of every kernel module of one path of
    :data:`PATH_KERNELS`, without importing numba: a run that finds neither compiles first
    (several seconds, once). A machine that has run one path only compiles the other's few
    kernels, unannounced, on its first run of it.

    numba keeps the cache in ``__pycache__`` beside the sources where that folder is writable,
    else under ``$NUMBA_CACHE_DIR`` or the user's cache folder (``~/.cache/numba``); an index
    file ``<module>.<function>-<line>.py<version>.nbi`` is written per function. A cache of an
    older numba or of edited sources is recompiled without this noticing.
    """
    here = Path(__file__).parent / "_kernels"
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"

    def found(names: Any) -> bool:
        seen = {n.split(".")[0] for n in names if n.endswith(f".{tag}.nbi")}
        return any(set(path) <= seen for path in PATH_KERNELS)

    custom = os.environ.get("NUMBA_CACHE_DIR")
    if not custom:
        try:
            if found(os.listdir(here / "__pycache__")):
                return True
        except OSError:
            pass
    root = Path(custom) if custom else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    try:
        return found(p.name for p in root.rglob("*.nbi") if "_kernels" in p.parent.name or "_kernels" in str(p))
    except OSError:
        return False
