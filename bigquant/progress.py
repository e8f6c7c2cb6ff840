"""The structured progress of a run: the events the library emits, for its caller to show.

The algorithm and the store never print. Each function that runs for a while takes a
``progress`` callable and calls it with one of the events below as it goes; the CLI renders them
(an updating line per phase on a terminal, a compact log otherwise), a notebook may draw a bar,
and ``progress=print`` prints one plain line per event (``str(event)``).

The events say *what* is happening; how far a pass over the chunks has got (tasks done / total)
is not an event: the caller counts the tasks of the scheduler it chose (Dask's local callbacks,
or the futures of a ``distributed.Client``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """A one-off step, said in words: ``"reading scan.tif: 427 x 640 x 3 uint8, ..."``."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Pass:
    """A pass over the image's chunks begins (one Dask compute: every chunk read once).

    Attributes
    ----------
    name : str
        ``"histogram"``, ``"sample"``, ``"Lloyd"``, ``"label table"``, ``"labels"``, ``"decode"``.
    index, total : int or None
        For the repeated passes (Lloyd's), this pass's number and the most there can be
        (``max_iter``).
    """

    name: str
    index: int | None = None
    total: int | None = None

    def __str__(self) -> str:
        count = f" {self.index}/{self.total}" if self.index is not None else ""
        return f"{self.name} pass{count}"


@dataclass(frozen=True)
class Iteration:
    """A Lloyd iteration ended.

    Attributes
    ----------
    stage : str
        ``"Lloyd"`` for the iterations that give the codebook; ``"coarse N-bit"`` for the warm
        start on a coarse histogram (N bits per channel).
    it, max_iter : int
        This iteration (from 1) and the most the stage runs.
    inertia : float
        Sum of squared errors of this step (against the centroids it started from).
    shift : float
        Largest move of a centroid in this step, in the image's units.
    stop_shift : float
        The stage stops once ``shift <= stop_shift`` (the tolerance in the image's units).
    stop_gain : float
        ... or once :data:`~bigquant.params.INERTIA_PATIENCE` steps in a row each lower the
        inertia by at most this fraction of it (0: no such test).
    """

    stage: str
    it: int
    max_iter: int
    inertia: float
    shift: float
    stop_shift: float
    stop_gain: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.stage} iteration {self.it}/{self.max_iter}: inertia {self.inertia:.6g}, "
            f"largest shift {self.shift:.4g} (stops at <= {self.stop_shift:.4g})"
        )


Event = Step | Pass | Iteration
#: Receives the events of a run.
Progress = Callable[[Event], None]


def silent(event: Event) -> None:
    """The progress callable that ignores every event (the default)."""


def or_silent(progress: Progress | None) -> Progress:
    """``progress``, or :func:`silent` for None."""
    return progress if progress is not None else silent
