"""Exceptions and warnings raised by bigquant.

Library code raises :class:`BigquantError` subclasses for anything the user can fix (bad input,
bad arguments, an existing output, a damaged store).  The CLI prints them as one line and exits
with status 2; any other exception is a bug.
"""

from __future__ import annotations


class BigquantError(Exception):
    """Base class of every error bigquant raises on purpose."""


class InputError(BigquantError):
    """The input image cannot be read or is not something bigquant can quantize."""


class ParameterError(BigquantError, ValueError):
    """An argument is out of range or of the wrong kind (K, tol, memory limit, ...)."""


class OutputError(BigquantError):
    """The output cannot be written: it exists (without ``overwrite``), or its folder is not writable."""


class StoreFormatError(BigquantError):
    """A path is not a complete, valid bigquant store, or was written by a newer format version."""


class SchedulerError(BigquantError):
    """The Dask scheduler given (``--scheduler`` or ``$DASK_SCHEDULER_ADDRESS``) cannot be used:
    a malformed address, nothing listening there, or something that is not a Dask scheduler."""


class MemoryBudgetError(InputError):
    """An operation would need more memory than the configured budget allows."""


class BigquantWarning(UserWarning):
    """Base class of bigquant's warnings, so users can filter them all at once."""


class KReducedWarning(BigquantWarning):
    """Fewer distinct colours than K were found; K was reduced to that number."""


class RecomputeWarning(BigquantWarning):
    """A lazy input is recomputed on every pass over it (persist it first if it fits in memory)."""


def show_path(path: object) -> str:
    """``path`` quoted for a message: ``'scan.tif'``, with control characters escaped as Python
    writes them (``'a\\nb.tif'``), so that a newline or tab in a name stays visible on the one
    error line instead of breaking it or reading as a space."""
    text = str(path)
    if text.isprintable():
        return f"'{text}'"
    return "'" + text.encode("unicode_escape").decode("ascii").replace("'", "\\'") + "'"
