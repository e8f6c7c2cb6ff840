"""The progress of a run on stderr: one updating line per phase on a terminal, a compact log otherwise.

:class:`Renderer` turns the library's :mod:`bigquant.progress` events into text. A *phase* is a
pass over the chunks (``pass 2 · labels ▕████▌   ▏ 37/64 tasks · 3.1 s``) or a run of Lloyd
iterations (``Lloyd 37/100 · shift 0.075 → stop ≤ 0.01 · ETA ≤ 12 s``). On a terminal the
phase's line is rewritten in place (``\\r`` and erase-to-end-of-line) and left, finished, when
the next phase begins; otherwise each phase gets one line when it ends, and one every
:data:`LOG_EVERY_S` while it runs. Nothing here knows the scheduler: the task counts come from
:mod:`bigquant.cli.tasks` through :meth:`Renderer.tasks_started` / :meth:`Renderer.task_done`
(Dask's local scheduler) and :meth:`Renderer.feed` (a distributed cluster).
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from ..progress import Event, Iteration, Pass, Step

#: Seconds between two lines of the same phase when stderr is not a terminal.
LOG_EVERY_S = 10.0
#: Seconds between two redraws of the terminal line.
REDRAW_S = 0.1
#: Cells of a pass's bar.
BAR_CELLS = 20
_EIGHTHS = " ▏▎▍▌▋▊▉"
_ASCII = str.maketrans({"·": "|", "→": "->", "≤": "<=", "▕": "[", "▏": "]", "█": "#", "~": "~"})


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``2 h 03 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def bar(done: int, total: int, cells: int = BAR_CELLS) -> str:
    """A bar of ``cells`` characters, eighths of a cell resolved: ``▕███▌      ▏``."""
    frac = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    eighths = int(frac * cells * 8)
    full, part = divmod(eighths, 8)
    body = "█" * full + (_EIGHTHS[part] if full < cells else "")
    return "▕" + body.ljust(cells) + "▏"


def _geometric(values: list[float], stop: float) -> int | None:
    """Steps until the last of ``values`` (falling roughly geometrically) reaches ``stop``, at the
    rate of the last few; None where they do not fall steadily."""
    recent = [v for v in values[-6:] if v > 0]
    if stop <= 0 or len(recent) < 3:
        return None
    if recent[-1] <= stop:
        return 0
    rate = (recent[-1] / recent[0]) ** (1.0 / (len(recent) - 1))
    if rate >= 0.999:
        return None
    return math.ceil(math.log(stop / recent[-1]) / math.log(rate))


def iterations_left(
    shifts: list[float], stop: float, left: int, inertias: list[float] | None = None, stop_gain: float = 0.0
) -> tuple[int, bool]:
    """How many more Lloyd iterations, at most ``left``: ``(n, estimated)``.

    Each of the two stop tests gives an estimate where its measure falls steadily (a geometric
    rate below 1 over the last five iterations): the shift until it reaches ``stop``; the
    inertia's relative gain per iteration until it reaches ``stop_gain``, plus the
    :data:`~bigquant.params.INERTIA_PATIENCE` iterations the test waits (fewer for those already
    under it). The sooner of the two, ``estimated=True``; else the bound ``left`` (``max_iter``).
    """
    from ..params import INERTIA_PATIENCE

    guesses = []
    n = _geometric(shifts, stop)
    if n is not None and n > 0:
        guesses.append(n)
    if inertias and stop_gain > 0 and len(inertias) >= 2:
        gains = [(a - b) / b for a, b in zip(inertias[:-1], inertias[1:]) if b > 0]
        under = 0
        for g in reversed(gains):
            if g > stop_gain:
                break
            under += 1
        m = _geometric(gains, stop_gain) if under == 0 else 0
        if m is not None:
            guesses.append(m + max(INERTIA_PATIENCE - under, 1))
    if guesses and min(guesses) < left:
        return max(min(guesses), 1), True
    return left, False


def eta_seconds(elapsed: float, iterations_done: int, left: int, fraction: float) -> float:
    """Seconds until ``left`` more iterations (the one under way among them) are done.

    The rate is that of the work completed across the whole phase, not restarted at each
    iteration: ``iterations_done`` whole iterations plus ``fraction`` (0 to 1) of the one under
    way, in ``elapsed`` seconds. So the estimate falls as the iteration under way progresses,
    instead of growing with the time spent in it; it rises only where the work goes slower than
    it went so far.
    """
    work = iterations_done + min(max(fraction, 0.0), 1.0)
    if work <= 0:
        return math.inf
    return max(left - min(max(fraction, 0.0), 1.0), 0.0) * elapsed / work


@dataclass
class _Phase:
    """What the current line shows."""

    name: str
    started: float
    number: int = 0  # the pass over the chunks (0: none, the in-memory iterations)
    iterations: bool = False
    it: int = 0  # iterations ended
    current: int = 0  # the iteration whose pass is under way (pixel path), else 0
    max_iter: int = 0
    shift: float = math.nan
    stop: float = math.nan
    shifts: list[float] = field(default_factory=list)
    inertias: list[float] = field(default_factory=list)
    stop_gain: float = 0.0
    it_started: float = 0.0  # when the current iteration (pass) began
    it_ended: float = 0.0  # when the last iteration ended
    done: int = 0
    total: int = 0
    feeds: dict[int, tuple[int, int]] = field(default_factory=dict)
    logged: float = 0.0

    def counts(self) -> tuple[int, int]:
        """Tasks done and in all, over every compute of this phase (local) or every feed (cluster)."""
        if self.feeds:
            return sum(d for d, _ in self.feeds.values()), sum(t for _, t in self.feeds.values())
        return self.done, self.total


class Renderer:
    """Shows a run's progress on ``stream``; call it with each :mod:`bigquant.progress` event.

    Parameters
    ----------
    stream : text stream
        stderr.
    live : bool
        Rewrite one line per phase in place (a terminal), else log a line per phase.
    clock : callable, optional
        Seconds, monotonic (tests pass a fake one).
    width : int, optional
        Columns of the terminal (default: asked of the terminal); lines are cut to fit, since
        a wrapped line cannot be rewritten in place.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.stream = stream
        self.live = live
        self.clock = clock
        self.width = width or shutil.get_terminal_size((100, 24)).columns
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.unicode = enc.startswith("utf")
        self.phase: _Phase | None = None
        self.passes = 0
        self.generation = 0  # bumped at every phase: cluster feeds of an older phase are ignored
        self._lock = threading.RLock()
        self._drawn = 0.0
        self._line_open = False
        self._last = clock()  # when the last event came

    # --- events -----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._event(event)
            self._last = self.clock()

    def _event(self, event: Event) -> None:
        if isinstance(event, Step):
            self._finish()
            self._write_line(event.text)
        elif isinstance(event, Pass):
            self._pass(event)
        elif isinstance(event, Iteration):
            self._iteration(event)
        self._draw(force=True)

    def _pass(self, event: Pass) -> None:
        now = self.clock()
        self.passes += 1
        p = self.phase
        if event.index is not None and p is not None and p.iterations and p.name == event.name:
            p.number, p.it_started, p.current = self.passes, now, int(event.index)  # the next pass
            p.done = p.total = 0
            p.feeds.clear()
            self.generation += 1
            return
        self._start(_Phase(event.name, now, number=self.passes, iterations=event.index is not None))
        if event.index is not None:
            p = self.phase
            assert p is not None
            p.max_iter, p.it_started, p.current = int(event.total or 0), now, int(event.index)

    def _iteration(self, event: Iteration) -> None:
        p = self.phase
        if p is None or not p.iterations or p.name != event.stage:
            # In-memory iterations announce no pass: the stage began when the last event ended.
            self._start(_Phase(event.stage, self._last, iterations=True))
            p = self.phase
        assert p is not None
        p.it, p.max_iter, p.shift, p.stop = event.it, event.max_iter, event.shift, event.stop_shift
        p.shifts.append(event.shift)
        p.inertias.append(event.inertia)
        p.stop_gain = event.stop_gain
        p.it_ended = self.clock()

    def _start(self, phase: _Phase) -> None:
        self._finish()
        self.generation += 1
        phase.logged = phase.started
        self.phase = phase

    # --- task counts ------------------------------------------------------------------------

    def tasks_started(self, n: int) -> None:
        """A compute of ``n`` tasks began on the local scheduler."""
        with self._lock:
            if self.phase is not None:
                self.phase.total += n

    def task_done(self) -> None:
        """One task of the local scheduler finished."""
        with self._lock:
            if self.phase is not None:
                self.phase.done += 1
                self._draw()

    def feed(self, generation: int, key: int, done: int, total: int) -> None:
        """A cluster's count for one compute (``key``) of the phase ``generation``."""
        with self._lock:
            if self.phase is not None and generation == self.generation:
                self.phase.feeds[key] = (done, total)
                self._draw(force=True)  # feeds come a few times a second at most

    def tick(self) -> None:
        """Redraw (the elapsed time moves on) or, not live, log a running phase now and then."""
        with self._lock:
            self._draw()

    def message(self, text: str) -> None:
        """A line of its own (a warning) that leaves the current phase's line where it is."""
        with self._lock:
            self._write_line(text)
            self._draw(force=True)

    def close(self, failed: bool = False) -> None:
        """Finish the current line. After a failure, a phase that had barely begun (under a
        second, nothing done) is dropped: the error line says enough."""
        with self._lock:
            p = self.phase
            if failed and p is not None and p.counts()[0] == 0 and p.it == 0 and self.clock() - p.started < 1:
                if self._line_open:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                    self._line_open = False
                self.phase = None
            self._finish()

    # --- text -------------------------------------------------------------------------------

    def status(self, final: bool = False) -> str:
        """The current phase's line (``final``: as it is left when the phase ends)."""
        p = self.phase
        if p is None:
            return ""
        now = self.clock()
        done, total = p.counts()
        if not p.iterations:
            if final:
                tasks = f"{total} tasks in " if total else ""
                return f"pass {p.number} · {p.name}: {tasks}{duration(now - p.started)}"
            tasks = f"{bar(done, total)} {done}/{total} tasks · " if total else ""
            return f"pass {p.number} · {p.name}  {tasks}{duration(now - p.started)}"
        tasks = f" · pass {p.number} {bar(done, total, BAR_CELLS // 2)} {done}/{total} tasks" if total else ""
        if p.it == 0:
            return (f"{p.name} {max(p.current, 1)}/{p.max_iter}" if p.max_iter else p.name) + tasks
        if final:
            return (
                f"{p.name}: {p.it} iteration{'s' if p.it != 1 else ''} in {duration(p.it_ended - p.started)}"
                f" · last shift {p.shift:.3g} (stop ≤ {p.stop:.3g})"
            )
        line = f"{p.name} {max(p.it, p.current)}/{p.max_iter} · shift {p.shift:.3g} → stop ≤ {p.stop:.3g}"
        left = p.max_iter - p.it
        if left > 0 and p.it >= 2:
            n, estimated = iterations_left(p.shifts, p.stop, left, p.inertias, p.stop_gain)
            eta = eta_seconds(now - p.started, p.it, n, self._fraction(p, now, done, total))
            line += f" · ETA {'~' if estimated else '≤ '}{duration(eta)}"
        return line + tasks

    @staticmethod
    def _fraction(p: _Phase, now: float, done: int, total: int) -> float:
        """How far the iteration under way is: its pass's tasks (pixel path), else the time spent
        in it over the mean time of an iteration so far (in-memory iterations report no tasks;
        capped at 1, so an iteration slower than the mean raises the estimate)."""
        if p.current > p.it and total:
            return done / total
        per = (p.it_ended - p.started) / p.it
        return min((now - p.it_ended) / per, 1.0) if per > 0 else 0.0

    def _fit(self, text: str) -> str:
        if not self.unicode:
            text = text.translate(_ASCII).encode("ascii", "replace").decode()
        if self.live and len(text) > self.width - 1:
            text = text[: max(self.width - 2, 1)] + ("…" if self.unicode else ">")
        return text

    def _draw(self, force: bool = False) -> None:
        if self.phase is None:
            return
        now = self.clock()
        if not self.live:
            if now - self.phase.logged >= LOG_EVERY_S:
                self.phase.logged = now
                self._write_line(self.status())
            return
        if not force and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        self.stream.write("\r" + self._fit(self.status()) + "\x1b[K")
        self.stream.flush()
        self._line_open = True

    def _finish(self) -> None:
        if self.phase is not None:
            self._write_line(self.status(final=True))
            self.phase = None

    def _write_line(self, text: str) -> None:
        prefix = "\r\x1b[K" if self._line_open else ""
        self.stream.write(prefix + self._fit(text) + "\n")
        self.stream.flush()
        self._line_open = False
