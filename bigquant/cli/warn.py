"""Warnings on stderr, each once and prefixed: ``bigquant: warning (tifffile): ...``.

bigquant's own warnings (:class:`bigquant.BigquantWarning`: K reduced, a PSNR target out of
reach) read ``bigquant: warning: ...``; other libraries' warnings, Python warnings and log
records of level WARNING and up (tifffile logs damaged metadata as an error, once per page it
parses), name the library. The same text is printed once per run, however often it comes. While
a progress line is on the terminal, a warning is printed above it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

from ..errors import BigquantWarning
from .common import one_line


def _package(name: str) -> str:
    """The top-level package of a module or logger name (``tifffile.tifffile`` -> ``tifffile``)."""
    return (name or "python").split(".")[0]


def _origin(category: type, filename: str) -> str:
    """The library a Python warning comes from: its category's package, else the file's."""
    module = _package(getattr(category, "__module__", "") or "")
    if module not in ("builtins", "warnings", ""):
        return module
    parts = str(filename).replace("\\", "/").split("/")
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return "python"


class Hub:
    """Prints each warning once, above the progress line if there is one (``renderer``)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.renderer: Any = None
        self.seen: set[str] = set()

    def say(self, text: str) -> None:
        if text in self.seen:
            return
        self.seen.add(text)
        if self.renderer is not None:
            self.renderer.message(text)
        else:
            print(text, file=self.err, flush=True)

    def showwarning(self, message: Any, category: type, filename: str, lineno: int, *rest: Any, **kw: Any) -> None:
        if issubclass(category, BigquantWarning):
            self.say(f"bigquant: warning: {one_line(message)}")
        else:
            self.say(f"bigquant: warning ({_origin(category, filename)}): {one_line(message)}")


class _LogHandler(logging.Handler):
    def __init__(self, hub: Hub) -> None:
        super().__init__(logging.WARNING)
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format
            text = str(record.msg)
        if not text.strip():  # distributed logs a lost connection's empty exception text
            return
        self.hub.say(f"bigquant: warning ({_package(record.name)}): {one_line(text)}")


@contextlib.contextmanager
def captured(err: TextIO) -> Iterator[Hub]:
    """Route warnings and WARNING log records to one :class:`Hub` for the block."""
    hub = Hub(err)
    handler = _LogHandler(hub)
    root = logging.getLogger()
    with warnings.catch_warnings():
        warnings.simplefilter("always", BigquantWarning)
        # The command keeps sparse out of its process (bigquant._runtime.lean_dask_import), so
        # numba's entry point for sparse's extension cannot load: nothing a user can act on.
        warnings.filterwarnings("ignore", message="Numba extension module 'sparse")
        # A signal that interrupts zarr's event loop leaves its coroutine unawaited; Python says
        # so when it is collected, after the one "interrupted" line: nothing a user can act on.
        warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
        warnings.showwarning = hub.showwarning  # restored by catch_warnings
        root.addHandler(handler)
        try:
            yield hub
        finally:
            root.removeHandler(handler)
