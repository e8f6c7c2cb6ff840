"""Output checks and the one atomic write: build under a hidden sibling, move it into place.

Every output bigquant writes (a store, a palette, every image format) is built under a hidden
sibling name ``.NAME.partial-PID-HOST-<random hex>`` and renamed onto its target only once it is
complete, so a run killed at any instant leaves the old output or the new one, never a
complete-looking half. A directory cannot atomically replace another, so an existing one is
first moved aside (``.NAME.old-...``) and removed after the new one is in place. The next run
writing the same target removes the siblings of killed runs (whose process is gone).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from .errors import OutputError

PathLike = str | os.PathLike

#: This machine, as written into staging names (other hosts sharing a file system keep theirs).
HOST = "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname()) or "host"
#: The kinds of hidden siblings: being written, a replaced output on its way out, a write probe.
KINDS = ("partial", "old", "probe")


def staging_path(target: PathLike, kind: str = "partial") -> Path:
    """A hidden sibling ``.NAME.KIND-PID-HOST-<random hex>`` of ``target`` for this process.

    ``kind`` is one of :data:`KINDS`. The PID and host let :func:`clean_stale_staging` tell a
    killed run's leftovers from those of a run still going on, here or on another machine
    sharing the folder.
    """
    t = Path(target)
    return t.with_name(f".{t.name}.{kind}-{os.getpid()}-{HOST}-{uuid.uuid4().hex[:8]}")


def check_output_folder(target: PathLike) -> Path:
    """Check that the folder of ``target`` exists and that we can really create entries in it.

    ``os.access`` is not enough: as root it says yes to read-only bind mounts, ``/proc`` and
    ``/sys``. So an empty hidden folder is created and removed again as a probe. Returns the
    folder.

    Raises
    ------
    OutputError
        The folder does not exist, is a file, or refuses new entries (the message says why).
    """
    t = Path(target)
    parent = t.parent
    if not parent.exists():
        raise OutputError(f"folder '{parent}' of output '{t}' does not exist")
    if not parent.is_dir():
        raise OutputError(f"folder '{parent}' of output '{t}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"folder '{parent}' of output '{t}' is not writable")
    probe = staging_path(t, "probe")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(
            f"folder '{parent}' of output '{t}' is not writable ({exc.strerror or type(exc).__name__})"
        ) from None
    return parent


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_staging(target: PathLike) -> list[Path]:
    """Remove the hidden siblings of ``target`` left by killed runs on this machine.

    Only entries whose process is gone are removed; a run still writing (here or on another
    host) keeps its folder. Returns what was removed.
    """
    t = Path(target)
    removed = []
    for kind in KINDS:
        prefix = f".{t.name}.{kind}-"
        try:
            entries = list(t.parent.glob(glob.escape(prefix) + "*"))
        except OSError:
            continue
        for entry in entries:
            pid_s, _, rest = entry.name[len(prefix) :].partition("-")
            host = rest.rpartition("-")[0]  # '' for names without a host part
            if not pid_s.isdigit() or host not in ("", HOST) or _pid_alive(int(pid_s)):
                continue
            remove(entry)
            removed.append(entry)
    return removed


def remove(p: Path) -> None:
    """Remove a file, link or folder tree; nothing if it is gone already."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``: atomic for a file; an existing folder goes aside first.

    If the rename fails, an output moved aside is put back.
    """
    if tmp.is_file() and (target.is_file() or not target.exists()):
        os.replace(tmp, target)  # atomic
        return
    old = staging_path(target, "old")
    had_old = target.exists() or target.is_symlink()
    if had_old:
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if had_old and not target.exists():
            os.replace(old, target)
        raise
    if had_old:
        remove(old)


class Staging:
    """A hidden sibling of ``target`` to build an output in, then :meth:`commit` or :meth:`abort`.

    Creating it removes the leftovers of killed runs (:func:`clean_stale_staging`); nothing is
    created at :attr:`path` until the caller writes there. Use :func:`staged` for a block that
    writes and commits in one go; a writer whose work spans several calls holds a Staging.

    Parameters
    ----------
    target : path
        Where the finished output goes.
    overwrite : bool
        Whether an output that exists at commit time may be replaced.
    noun : str
        What the messages call the output ("output", "store").
    quoted : str, optional
        The target as the messages quote it (default ``'TARGET'``).
    """

    def __init__(self, target: PathLike, overwrite: bool, *, noun: str = "output", quoted: str | None = None):
        self.target = Path(target)
        self.overwrite = overwrite
        self.noun = noun
        self.quoted = quoted if quoted is not None else f"'{self.target}'"
        clean_stale_staging(self.target)
        self.path = staging_path(self.target)

    def write_error(self, exc: OSError) -> OutputError:
        """The OutputError for an OSError while writing (disk full, quota, a folder gone read-only)."""
        return OutputError(f"cannot write {self.noun} {self.quoted}: {exc.strerror or exc}")

    def commit(self) -> Path:
        """Move the finished output onto the target; raises OutputError (the staging stays for
        :meth:`abort`)."""
        # Someone may have created the target while we worked; don't clobber it unasked.
        if (self.target.exists() or self.target.is_symlink()) and not self.overwrite:
            raise OutputError(f"output {self.quoted} appeared while writing; pass --overwrite to replace it")
        try:
            move_into_place(self.path, self.target)
        except OSError as exc:
            raise OutputError(f"cannot move {self.noun} {self.quoted} into place: {exc.strerror or exc}") from exc
        return self.target

    def abort(self) -> None:
        """Remove whatever was written at :attr:`path`."""
        remove(self.path)

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()


@contextlib.contextmanager
def staged(target: PathLike, overwrite: bool, *, noun: str = "output", quoted: str | None = None) -> Iterator[Path]:
    """Yield a hidden sibling of ``target`` to write, then move it into place.

    An OSError in the block becomes an :class:`OutputError` naming the output; on any exception
    the sibling is removed and ``target`` is left as it was.
    """
    staging = Staging(target, overwrite, noun=noun, quoted=quoted)
    try:
        try:
            yield staging.path
        except OSError as exc:
            raise staging.write_error(exc) from exc
        staging.commit()
    except BaseException:
        staging.abort()
        raise
