"""Harnesses for the tests that run the ``bigquant`` command line (imported by the test modules).

:class:`CliJob` runs the command in a subprocess of its own session with stderr on a
pseudo-terminal, so it draws its progress lines as a person would see them; a test waits for a
line or for the first label chunks of the hidden partial store, signals it, and reads what it
said (tests/test_hostile_signals.py, tests/test_faults.py).

:func:`refused` holds the contract of the bad-input tables (tests/test_bad_input.py,
tests/test_hostile_inputs.py): exit status 2, one error line on stderr, no traceback, nothing
written, deleted or changed in the working folder, and no more than a few MiB allocated.

A plain module, not a conftest: pytest puts tests/ on ``sys.path`` (tests/ is no package), so
``from cli_harness import ...`` finds it; it holds no fixtures.
"""

from __future__ import annotations

import hashlib
import os
import pty
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

import bigquant
from bigquant.cli import main

#: The environment of the child processes: they import bigquant from this checkout, installed
#: or not, and run on no cluster unless their command line names one.
ENV = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(filter(None, [str(Path(bigquant.__file__).parents[1]), os.environ.get("PYTHONPATH")])),
)
ENV.pop("DASK_SCHEDULER_ADDRESS", None)


def tree_digest(path: Path) -> str:
    """One hash of every name and byte under ``path``: equal digests, an untouched tree."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def hidden(folder: Path, name: str) -> list[str]:
    """The hidden siblings bigquant makes of output ``name`` (``.NAME.partial-*``, ``.NAME.old-*``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def partial_with_chunks(folder: Path, name: str) -> Path | None:
    """The hidden partial store of output ``name`` once a label chunk is on disk in it, else None.

    zarr makes a ``c`` folder only to put the first chunk in: so the run is writing labels.
    """
    for p in folder.glob(f".{name}.partial-*"):
        if (p / "labels" / "0" / "c").exists():
            return p
    return None


def wait_until_writing(proc: subprocess.Popen, folder: Path, name: str, timeout: float) -> Path:
    """Poll for :func:`partial_with_chunks` every 2 ms (a write lasts about a second); return
    that folder, or fail if ``proc`` ended or ``timeout`` seconds passed first."""
    end = time.monotonic() + timeout
    while True:
        found = partial_with_chunks(folder, name)
        if found is not None:
            return found
        assert proc.poll() is None, f"bigquant ended (status {proc.returncode}) before it wrote a label chunk"
        assert time.monotonic() < end, f"bigquant wrote no label chunk in {timeout:.0f} s"
        time.sleep(0.002)


class CliJob:
    """``bigquant ARGV`` in its own session (its own process group), stderr on a pseudo-terminal.

    ``text`` collects all it draws there (``\\r`` redraws included); ``stdout``: a file for its
    standard output (default: none).
    """

    def __init__(self, argv: list[str], cwd: Path, stdout: Path | None = None):
        master, slave = pty.openpty()
        self.text = ""
        self._cond = threading.Condition()
        out = open(stdout, "wb") if stdout is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bigquant.cli", *argv],
                cwd=cwd,
                env=ENV,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
            if stdout is not None:
                out.close()
        self._thread = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._thread.start()

    def _read(self, fd: int) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                with self._cond:
                    self.text += data.decode(errors="replace")
                    self._cond.notify_all()
        finally:
            os.close(fd)
            with self._cond:  # wake a waiter at once: nothing more will come
                self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float) -> int:
        """Until ``needle`` is in ``text``; return where it ends there (what follows is newer)."""
        end = time.monotonic() + timeout
        with self._cond:
            while needle not in self.text:
                left = end - time.monotonic()
                assert self.proc.poll() is None, f"bigquant ended before {needle!r}:\n{self.text}"
                assert left > 0, f"no {needle!r} in {timeout:.0f} s:\n{self.text}"
                self._cond.wait(min(left, 0.2))
            return self.text.index(needle) + len(needle)

    def wait_for_chunks(self, folder: Path, name: str, timeout: float) -> Path:
        """Until the hidden partial store of output ``name`` in ``folder`` holds a label chunk."""
        try:
            return wait_until_writing(self.proc, folder, name, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.text}") from None

    def signal(self, signum: int, times: int = 1, group: bool = False) -> None:
        """Send ``signum`` ``times``, 50 ms apart; ``group``: to the whole process group, as a
        terminal's Ctrl-C does (the workers of --workers get it too)."""
        for i in range(times):
            if i:
                time.sleep(0.05)
            if group:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.send_signal(signum)

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the exit status (after ``timeout`` s: the whole group killed, and the test
        fails); return it with all that was drawn."""
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._thread.join(5)
        return rc, self.text


def screen_lines(text: str) -> list[str]:
    """The lines a person would see: progress redraws (``\\r``) collapsed to their last state."""
    text = text.replace("\x1b[K", "").replace("\r\n", "\n")
    return [line.rsplit("\r", 1)[-1].strip() for line in text.split("\n") if line.strip()]


# --- the bad-input tables --------------------------------------------------------------------------


def table(cases: list[tuple]) -> pytest.MarkDecorator:
    """Parametrize a test by a table of ``(id, inputs to make, argv, fragment of the error line)``."""
    return pytest.mark.parametrize("case, make, argv, message", cases, ids=[c[0] for c in cases])


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too) with a hash of each file's bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def error_line(err: str, progress_before: bool = False) -> str:
    """The one error line on stderr; never a usage block or a traceback. Nothing else may be
    there, or (``progress_before``) only the compact progress log of the steps done before the
    input was found bad (stderr is no terminal here), above it."""
    assert "Traceback" not in err and "usage:" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("bigquant")]
    assert len(said) == 1 and lines[-1] == said[0], err
    assert progress_before or len(lines) == 1, err
    assert "error" in said[0], err
    return said[0]


def refused(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    folder: Path,
    message: str,
    case: str,
    progress_before: bool = False,
) -> str:
    """Run ``main(argv)`` with ``folder`` the working folder and hold it to the contract: status
    2, the one :func:`error_line` holding ``message``, nothing on stdout, ``folder`` as it was,
    and under 64 MiB allocated (absurd sizes are refused from headers and metadata, before any
    allocation). Returns the error line."""
    before = snapshot(folder)
    capsys.readouterr()
    tracemalloc.start()
    try:
        status = main(list(argv))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cap = capsys.readouterr()
    assert status == 2, cap.err
    line = error_line(cap.err, progress_before)
    assert message in line, line
    assert "Traceback" not in cap.out
    assert snapshot(folder) == before  # nothing written, deleted or changed, partial folders included
    assert peak < 64 * 2**20, f"{case}: {peak / 2**20:.0f} MiB allocated"
    return line


def png_claiming(rows: int, cols: int) -> bytes:
    """A valid PNG signature and IHDR (CRC included) claiming rows x cols 8-bit RGB, and almost
    no data: a few dozen bytes that would decode to rows * cols * 3."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", cols, rows, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
