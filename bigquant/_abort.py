"""The one ``with`` rule of everything that writes an output in several steps: an exception in
the block aborts the write, a clean exit leaves it for the caller to commit."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TypeVar

_W = TypeVar("_W", bound="AbortOnError")


class AbortOnError(abc.ABC):
    """Base of the writers that stage an output (:class:`bigquant._staging.Staging`,
    :class:`bigquant._objstore.RemoteStaging`, :class:`bigquant.store.writer.StoreWriter`).

    Leaving a ``with`` block on an exception calls :meth:`abort`, and the exception goes on;
    leaving it normally does nothing, since what a commit needs (a codebook, metadata) differs
    from writer to writer and comes from the caller, who calls ``commit`` itself.
    """

    @abc.abstractmethod
    def abort(self) -> None:
        """Remove whatever this write has put down so far, leaving the target as it was."""

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
