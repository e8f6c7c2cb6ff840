"""The progress of a run: the library's events, the renderer (fake clock), a real terminal (pty)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import threading

import numpy as np
import pytest
import tifffile

import bigquant
from bigquant.cli.render import Renderer, bar, duration, eta_seconds, iterations_left
from bigquant.cli.warn import captured
from bigquant.progress import Iteration, Pass, Step


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Out(io.StringIO):
    """A text stream with an encoding, as stderr has."""

    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


def _renderer(live: bool) -> tuple[Renderer, Out, Clock]:
    out, clock = Out(), Clock()
    return Renderer(out, live=live, clock=clock, width=100), out, clock


def _screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: each ``\\r`` returns to the line's start, erase to its end."""
    lines, cur = [], ""
    for part in text.replace("\x1b[K", "").split("\n"):
        cur = part.split("\r")[-1]
        lines.append(cur)
    return [line for line in lines if line]


def test_duration_and_bar_texts():
    assert [duration(s) for s in (0.44, 12.4, 185, 7380)] == ["0.4 s", "12 s", "3 min 05 s", "2 h 03 min"]
    assert bar(0, 8, 8) == "▕        ▏"
    assert bar(4, 8, 8) == "▕████    ▏"
    assert bar(8, 8, 8) == "▕████████▏"
    assert bar(1, 16, 4) == "▕▎   ▏"  # a quarter of a cell: two eighths
    assert bar(3, 0, 4) == "▕    ▏"  # no total known yet


@pytest.mark.parametrize(
    "shifts, stop, left, expected",
    [
        # halving each iteration from 8 to 1: three more halvings reach 0.125
        ([8.0, 4.0, 2.0, 1.0], 0.125, 50, (3, True)),
        # the same trend, but max_iter comes first: the bound
        ([8.0, 4.0, 2.0, 1.0], 0.125, 2, (2, False)),
        # not falling: only the bound can be said
        ([1.0, 1.2, 1.1, 1.3], 0.01, 40, (40, False)),
        # too few iterations to see a trend
        ([1.0, 0.5], 0.01, 40, (40, False)),
    ],
)
def test_iterations_left(shifts, stop, left, expected):
    assert iterations_left(shifts, stop, left) == expected


def test_live_lines_update_in_place_and_stay_when_done():
    r, out, clock = _renderer(live=True)
    r(Step("reading scan.tif: 100 x 100 x 3 uint8"))
    r(Pass("histogram"))
    r.tasks_started(8)
    for _ in range(3):
        clock.t += 0.5
        r.task_done()
    assert out.getvalue().endswith("\rpass 1 · histogram  ▕███████▌            ▏ 3/8 tasks · 1.5 s\x1b[K")
    clock.t += 0.5
    r(Step("histogram: 1,234 distinct colours"))  # ends the pass: its line stays, finished
    for it, shift in enumerate([4.0, 2.0, 1.0], start=1):
        clock.t += 1.0
        r(Iteration("Lloyd", it, 100, 1e6 / it, shift, 0.125))
    # after 3 iterations of 1 s, halving: 3 more to reach 0.125
    assert out.getvalue().endswith("\rLloyd 3/100 · shift 1 → stop ≤ 0.125 · ETA ~3.0 s\x1b[K")
    clock.t += 1.0
    r(Pass("labels"))
    clock.t += 2.0
    r.close()
    assert _screen(out.getvalue()) == [
        "reading scan.tif: 100 x 100 x 3 uint8",
        "pass 1 · histogram: 8 tasks in 2.0 s",
        "histogram: 1,234 distinct colours",
        "Lloyd: 3 iterations in 3.0 s · last shift 1 (stop ≤ 0.125)",
        "pass 2 · labels: 2.0 s",
    ]


def test_pixel_path_lloyd_is_one_line_with_its_pass_bar():
    r, out, clock = _renderer(live=True)
    r(Pass("sample"))
    for it in (1, 2):
        r(Pass("Lloyd", it, 10))
        r.tasks_started(4)
        clock.t += 0.5
        r.task_done()
        clock.t += 0.5
        r.task_done()
        if it == 1:
            assert out.getvalue().endswith("\rLloyd 1/10 · pass 2 ▕█████     ▏ 2/4 tasks\x1b[K")
        r.task_done()
        r.task_done()
        r(Iteration("Lloyd", it, 10, 100.0, 0.5 / it, 0.01))
    r(Pass("Lloyd", 3, 10))
    # iteration 3 is under way: the bound (shifts not yet a trend) over 1 s per iteration
    assert out.getvalue().endswith("\rLloyd 3/10 · shift 0.25 → stop ≤ 0.01 · ETA ≤ 8.0 s\x1b[K")
    r.close()
    assert _screen(out.getvalue())[-1] == "Lloyd: 2 iterations in 2.0 s · last shift 0.25 (stop ≤ 0.01)"
    assert r.passes == 4  # sample + three Lloyd passes


def test_log_mode_a_line_per_phase_and_every_ten_seconds():
    r, out, clock = _renderer(live=False)
    r(Pass("histogram"))
    r.tasks_started(100)
    for _ in range(60):
        clock.t += 0.25  # 15 s in all: one periodic line, at 10 s
        r.task_done()
        r.tick()
    r(Pass("labels"))
    r.close()
    assert out.getvalue().splitlines() == [
        "pass 1 · histogram  ▕████████            ▏ 40/100 tasks · 10 s",
        "pass 1 · histogram: 100 tasks in 15 s",
        "pass 2 · labels: 0.0 s",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_ascii_terminal_and_narrow_width():
    out, clock = Out("ascii"), Clock()
    r = Renderer(out, live=True, clock=clock, width=30)
    r(Iteration("Lloyd", 2, 100, 1.0, 0.5, 0.01))
    line = out.getvalue().split("\r")[-1].replace("\x1b[K", "")
    assert line.isascii() and len(line) <= 29 and line.startswith("Lloyd 2/100 | shift 0.5 ->")


def test_a_warning_prints_above_the_live_line_once():
    r, out, clock = _renderer(live=True)
    r(Pass("histogram"))
    with captured(out) as hub:
        hub.renderer = r
        import logging

        for _ in range(4):  # tifffile logs damaged metadata once per page it parses
            logging.getLogger("tifffile").error("<tifffile.TiffFile 'a.tif'> invalid shaped series metadata")
    r.close()
    assert _screen(out.getvalue()) == [
        "bigquant: warning (tifffile): <tifffile.TiffFile 'a.tif'> invalid shaped series metadata",
        "pass 1 · histogram: 0.0 s",
    ]


def test_feeds_of_an_older_phase_are_ignored():
    r, out, clock = _renderer(live=True)
    r(Pass("sample"))
    old = r.generation
    r.feed(old, 1, 2, 4)
    assert "2/4 tasks" in out.getvalue()
    r(Pass("Lloyd", 1, 10))
    r.feed(old, 1, 4, 4)  # the sample's feed reporting late
    r.feed(r.generation, 2, 1, 6)
    assert out.getvalue().endswith("1/6 tasks\x1b[K")


def test_a_failure_right_away_leaves_no_progress_line():
    r, out, clock = _renderer(live=True)
    r(Pass("decode"))
    r.close(failed=True)
    assert _screen(out.getvalue()) == []


def test_library_events_of_a_compress(tmp_path, china):
    """The events a histogram-path compress emits, in order; str(event) is a plain line."""
    events = []
    bigquant.compress(china, tmp_path / "c.bq.zarr", k=8, progress=events.append)
    kinds = [type(e).__name__ + (f":{e.name}" if isinstance(e, Pass) else "") for e in events]
    assert kinds[0] == "Step" and kinds[1] == "Pass:histogram" and kinds[-1] == "Pass:labels"
    its = [e for e in events if isinstance(e, Iteration) and e.stage == "Lloyd"]
    assert [e.it for e in its] == list(range(1, len(its) + 1)) and its[-1].max_iter == 100
    assert all(e.stop_shift > 0 for e in its)
    assert str(its[0]).startswith("Lloyd iteration 1/100: inertia ")


def test_library_events_of_the_pixel_path(tmp_path, china):
    events = []
    bigquant.compress(china, tmp_path / "p.bq.zarr", k=4, method="pixels", max_iter=3, progress=events.append)
    passes = [(e.name, e.index) for e in events if isinstance(e, Pass)]
    # One pass for the sample and one for the coreset, then the label pass (which also checks the
    # codebook against exact Lloyd's); exact Lloyd passes and another label pass only if it moved.
    assert passes[:3] == [("sample", None), ("coreset", None), ("labels", None)]
    assert passes[-1] == ("labels", None)
    assert all(name == "Lloyd" for name, _ in passes[3:-1])


@pytest.mark.timeout(120)
def test_a_real_terminal_sees_the_line_rewritten(tmp_path):
    """``bigquant compress`` with stderr on a pseudo-terminal: the iteration line (of Lloyd's on
    the pixel path's coreset) is rewritten in place (carriage returns, erase to the end of the
    line), then left finished."""
    rng = np.random.default_rng(0)
    img = (rng.random((96, 128, 3)) * 1000).astype(np.float32)  # float: the pixel path
    tifffile.imwrite(tmp_path / "f.tif", img)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bigquant.cli", "compress", "f.tif", "-k", "4", "--max-iter", "6", "--tol", "0"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=110)
    reader.join(5)
    os.close(master)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, text
    assert "\rcoreset " in text and "\x1b[K" in text  # rewritten in place
    screen = _screen(text.replace("\r\n", "\n"))
    assert any(line.startswith("coreset: ") and " iterations in " in line for line in screen), screen
    assert not any(line.startswith("coreset 3/") for line in screen), screen  # no line per iteration left
    assert b"wrote f.bq.zarr" in stdout


@pytest.mark.timeout(120)
def test_cluster_task_counts_come_from_the_scheduler(cluster):
    """On a distributed client the counts are the scheduler's: every task of the compute, done."""
    import time

    import dask
    from distributed import Client

    from bigquant.cli.tasks import watching

    def slow(i: int) -> int:
        time.sleep(0.4)
        return i

    seen = []
    r, out, clock = _renderer(live=True)
    original = r.feed
    r.feed = lambda *a: (seen.append(a[2:]), original(*a))  # type: ignore[method-assign]
    with Client(cluster.address) as client, watching(r, client):
        r(Pass("slow"))
        parts = [dask.delayed(slow)(i, dask_key_name=f"slow-{i}") for i in range(6)]
        (total,) = dask.compute(dask.delayed(sum)(parts, dask_key_name="sum"))
        deadline = time.monotonic() + 10
        while (not seen or seen[-1][0] < seen[-1][1]) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert total == 15
    assert seen and seen[-1] == (7, 7), seen  # six tasks and their sum
    assert "7 tasks in" in _screen(out.getvalue())[-1]


def _inertias(gains: list[float]) -> list[float]:
    """An inertia history whose step ``i`` lowers the inertia by ``gains[i]`` of the new value."""
    out = [1e6]
    for g in gains:
        out.append(out[-1] / (1 + g))
    return out


@pytest.mark.parametrize(
    "gains, expected",
    [
        # gains halving from 1e-3 to 1.25e-4: seven more halvings fall under 1e-6, then the
        # five iterations of patience; the shift (flat) says nothing
        ([1e-3, 5e-4, 2.5e-4, 1.25e-4], (12, True)),
        # the last two gains already under 1e-6: three more iterations of patience
        ([1e-3, 1e-4, 5e-7, 4e-7], (3, True)),
        # gains not falling: only the bound
        ([1e-4, 2e-4, 1e-4, 2e-4], (100, False)),
    ],
)
def test_iterations_left_from_the_inertia(gains, expected):
    inertias = _inertias(gains)
    shifts = [1.0] * len(inertias)  # not falling
    assert iterations_left(shifts, 0.01, 100, inertias, 1e-6) == expected


def test_eta_is_the_rate_of_the_work_done_across_the_phase():
    # 2 iterations done in 10 s, 8 left (the one under way among them): 40 s at that pace.
    assert eta_seconds(10.0, 2, 8, 0.0) == pytest.approx(40.0)
    # Half-way through the third at the same pace (12.5 s in): 2.5 s fewer, not more.
    assert eta_seconds(12.5, 2, 8, 0.5) == pytest.approx(37.5)
    # The third done but not yet reported, at the same pace: 7 left at 5 s each.
    assert eta_seconds(15.0, 2, 8, 1.0) == pytest.approx(35.0)
    # Slower than so far (the third half done after 20 s): the estimate rises, honestly.
    assert eta_seconds(20.0, 2, 8, 0.5) > 40.0
    assert eta_seconds(0.0, 0, 8, 0.0) == float("inf")  # nothing done yet: no rate


def _eta(line: str) -> float:
    text = line.split("ETA ")[1].lstrip("~≤ ").split(" s")[0]
    return float(text)


def test_eta_counts_down_within_an_in_memory_iteration():
    # In-memory iterations report no tasks: between two of them the time spent counts against
    # the mean pace, so the ETA falls while the iteration runs (it used to grow with that time).
    r, out, clock = _renderer(live=True)
    r(Step("start"))
    for it, shift in enumerate([4.0, 2.0, 1.0], start=1):
        clock.t += 1.0
        r(Iteration("Lloyd", it, 100, 1e6 / it, shift, 0.125))
    etas = []
    for _ in range(4):
        etas.append(_eta(r.status()))
        clock.t += 0.25
    assert etas == pytest.approx([3.0, 2.75, 2.5, 2.25], abs=0.051)  # shown to 0.1 s
    clock.t += 5.0  # far slower than the mean: the iteration under way counts as one, no more
    assert _eta(r.status()) > 2.25
    r.close()


def test_eta_falls_as_the_tasks_of_the_pass_under_way_finish():
    r, out, clock = _renderer(live=True)
    shifts = [0.5, 0.25, 0.2]
    for it in (1, 2, 3):
        r(Pass("Lloyd", it, 10))
        r.tasks_started(4)
        etas = []
        for _ in range(4):
            clock.t += 0.25
            r.task_done()
            if it == 3:
                etas.append(_eta(r.status()))
        r(Iteration("Lloyd", it, 10, 100.0, shifts[it - 1], 0.01))
    # iteration 3 at the pace of the first two (1 s each, 8 left as it began): 8, 7.75, ... s
    assert etas == pytest.approx([7.75, 7.5, 7.25, 7.0], abs=0.051)  # shown to 0.1 s
    r.close()
