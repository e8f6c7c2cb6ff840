"""The ``bigquant`` command line: a thin face on :mod:`bigquant.api`, one module per subcommand.

:func:`main` parses and runs (tests call ``main([...])``); :func:`entry` is the console script.
Building the parser imports nothing of the numerical stack, so ``--help`` and usage errors are
fast; each subcommand imports the library when it runs.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .main import build_parser, guard_standard_streams, main

__all__ = ["build_parser", "entry", "main"]


def entry() -> None:  # pragma: no cover - the console script; tests call main()
    """The ``bigquant`` command: tune the process (:mod:`bigquant._runtime`), :func:`main`, then
    exit at once.

    Every output is complete and closed when ``main`` returns; tearing down the interpreter's
    modules (Dask, Zarr, numba, NumPy) would only add to each run's time.
    """
    from .. import _runtime

    _runtime.lean_dask_import()
    _runtime.WARM_UP_WITHOUT_BLAS = True
    _runtime.map_large_arrays()
    guard_standard_streams()
    status = main()
    for stream in (sys.stdout, sys.stderr):  # main has reported a stream that fails
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    entry()
