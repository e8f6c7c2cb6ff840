"""Hold back the signals that stop a run while a few system calls must happen together."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals a user or a supervisor sends to stop a run; held back while a folder is swapped.
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then deliver any that came, as they came.

    The renames that swap a folder must not be parted: a Ctrl-C between them would leave the
    target missing (the old output hidden aside, the new one never moved in). In the main
    thread the signals are blocked (``pthread_sigmask``), and their handlers swapped for one
    that only records them, since another thread of the process (a thread pool's, a cluster
    client's) may receive a process-directed signal and have Python run the handler in the main
    thread all the same. After the block the mask and the handlers are restored and what was
    recorded is raised again, so Ctrl-C still stops the run (with the new output in place). Off
    the main thread, where Python can neither install handlers nor run them, a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def record(signum: int, frame: object) -> None:
        if signum not in came:
            came.append(signum)

    handlers = {s: signal.signal(s, record) for s in HELD_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending one reaches record() here
        for s, h in handlers.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)  # None: a handler set outside Python
        for signum in came:
            signal.raise_signal(signum)
