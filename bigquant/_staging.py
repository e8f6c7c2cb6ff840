"""Output checks and the one atomic write: build under a hidden sibling, move it into place.

Every output bigquant writes (a store, a palette, every image format) is built under a hidden
sibling name ``.NAME.partial-PID-HOST-<random hex>`` and renamed onto its target only once it is
complete, so a run killed at any instant leaves the old output or the new one, never a
complete-looking half. A folder cannot atomically replace another, so replacing one takes three
renames, and at every instant a complete copy is findable under a known name:

1. the old output goes aside, ``TARGET -> .NAME.old-...`` (a complete copy of the old one);
2. the new one goes into place, ``.NAME.partial-... -> TARGET``;
3. the old one becomes trash, ``.NAME.old-... -> .NAME.trash-...``, and is deleted.

An ``.old`` sibling is therefore always complete and a ``.trash`` one never needed. The next
run writing the same target (:func:`clean_stale_staging`, called before its output checks)
deals with the siblings of killed runs (whose process is gone): an ``.old`` one goes back onto
a missing target (the kill came between steps 1 and 2), a complete ``.partial`` store goes onto
a missing target if nothing else can, and everything else is removed.

:func:`check_apart` refuses, in every command, an output that is, holds or lies inside
something the command reads, so that replacing it can never delete an input.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ._abort import AbortOnError
from ._signals import signals_held
from .errors import OutputError

PathLike = str | os.PathLike

#: This machine, as written into staging names (other hosts sharing a file system keep theirs).
HOST = "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname()) or "host"
#: The kinds of hidden siblings: being written, a replaced output (complete) on its way out, the
#: same once the new output is in place (being deleted), a write probe.
KINDS = ("partial", "old", "trash", "probe")
#: Test only: a step name of :func:`move_into_place` (one of :data:`STEPS`) at which the process
#: kills itself with SIGKILL (or with the signal named after a colon, ``aside:SIGINT``), so tests
#: can check what a kill or a Ctrl-C at each rename leaves behind.
KILL_AT_ENV = "BIGQUANT_TEST_KILL_AT"
#: The steps of :func:`move_into_place`: the new output complete (before any rename), the old
#: one moved aside, the new one in place, the old one renamed to trash (before its deletion).
STEPS = ("staged", "aside", "placed", "trashed")


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


def _stale_siblings(t: Path) -> dict[str, list[Path]]:
    """The hidden siblings of ``t`` by kind whose process (on this machine) is gone, newest first."""
    found: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        prefix = f".{t.name}.{kind}-"
        try:
            entries = list(t.parent.glob(glob.escape(prefix) + "*"))
        except OSError:
            continue
        for entry in entries:
            pid_s, _, rest = entry.name[len(prefix) :].partition("-")
            host = rest.rpartition("-")[0]  # '' for names without a host part
            if pid_s.isdigit() and host in ("", HOST) and not _pid_alive(int(pid_s)):
                found[kind].append(entry)
        found[kind].sort(key=_mtime, reverse=True)
    return found


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except OSError:
        return 0.0


def _exists(p: Path) -> bool:
    return p.exists() or p.is_symlink()


def _restore(entry: Path, target: Path) -> bool:
    """Rename ``entry`` onto a missing ``target``; False if the target appeared or the rename failed."""
    if _exists(target):
        return False
    try:
        os.rename(entry, target)
    except OSError:
        return False
    return True


def clean_stale_staging(target: PathLike, complete: Callable[[Path], bool] | None = None) -> list[Path]:
    """Recover or remove the hidden siblings of ``target`` left by killed runs on this machine.

    Only entries whose process is gone are touched; a run still writing (here or on another
    host) keeps its own. With ``target`` missing, an ``.old`` sibling (always a complete copy:
    the kill came between moving it aside and moving the new output in) is renamed back onto
    it; failing that, a ``.partial`` sibling for which ``complete(path)`` is true (a finished
    store whose run was killed just before its rename). Everything else is removed: with the
    target in place, ``.old`` and ``.trash`` siblings are replaced outputs and ``.partial``
    ones unfinished or superseded. An ``.old`` sibling is never removed while the target is
    missing (its rename back failed). Returns what was removed.
    """
    t = Path(target)
    stale = _stale_siblings(t)
    for entry in stale["old"]:
        if _restore(entry, t):
            stale["old"].remove(entry)
            break
    if complete is not None:
        for entry in stale["partial"]:
            if not _exists(t) and complete(entry) and _restore(entry, t):
                stale["partial"].remove(entry)
                break
    if not _exists(t):  # nothing could be put back: keep every old output rather than lose one
        stale["old"] = []
    removed = [entry for kind in KINDS for entry in stale[kind]]
    for entry in removed:
        remove(entry)
    return removed


def remove(p: Path) -> None:
    """Remove a file, link or folder tree; nothing if it is gone already."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _step(name: str) -> None:
    """Signal this process here if the test hook :data:`KILL_AT_ENV` names this step (never set
    outside tests): ``STEP`` sends SIGKILL, ``STEP:SIGNAL`` (``aside:SIGINT``) that signal."""
    step, _, sig = os.environ.get(KILL_AT_ENV, "").partition(":")
    if step == name:
        os.kill(os.getpid(), signal.Signals[sig] if sig else signal.SIGKILL)


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``: atomic for a file; an existing folder goes aside first.

    A replaced folder (or anything a file cannot atomically replace) is moved aside to
    ``.NAME.old-...``, kept until the new output is in place, then renamed to ``.NAME.trash-...``
    and deleted, so a kill at any step leaves a complete copy that :func:`clean_stale_staging`
    finds (see the module's docstring). If the rename fails, an output moved aside is put back.
    """
    _step("staged")
    if tmp.is_file() and not tmp.is_symlink() and (target.is_file() or not _exists(target)):
        os.replace(tmp, target)  # atomic, a link at target included (the link is replaced)
        _step("placed")
        return
    old = staging_path(target, "old")
    trash = staging_path(target, "trash")
    had_old = _exists(target)
    try:
        with signals_held():  # a Ctrl-C here lands after the swap: the new output in place
            if had_old:
                os.replace(target, old)
                _step("aside")
            try:
                os.replace(tmp, target)
            except BaseException:
                if had_old and not _exists(target):
                    os.replace(old, target)
                raise
            _step("placed")
            if had_old:
                os.replace(old, trash)
                _step("trashed")
    finally:  # also when a held signal stops the run: the replaced output is not needed
        if had_old and _exists(target):
            remove(trash)


def _real(p: PathLike) -> Path:
    return Path(os.path.realpath(p))


def _entry(p: PathLike) -> Path:
    """The directory entry a replacement of ``p`` renames: its real folder, its own name."""
    p = Path(os.path.abspath(p))
    return _real(p.parent) / p.name


def _relation(out: Path, read: Path) -> str | None:
    if out == read:
        return "is"
    if read.is_relative_to(out):
        return "holds"
    if out.is_relative_to(read):
        return "lies inside"
    return None


def check_apart(reads: Iterable[object], writes: Iterable[object]) -> None:
    """Refuse any output that is, holds or lies inside something the command reads.

    Replacing an output deletes what was there, so an input inside it (or the input itself)
    would be lost; and an output written inside an input changes what is read. Paths are
    compared after resolving ``..`` and symbolic links, both as the output's directory entry and
    as what it points to, and hard links to one file count as the same. Entries that are not
    paths (arrays) are skipped.

    Raises
    ------
    OutputError
        Naming the output, the input and how they overlap.
    """
    ins = [r for r in reads if isinstance(r, (str, os.PathLike))]
    for w in writes:
        if not isinstance(w, (str, os.PathLike)):
            continue
        for r in ins:
            how = next(filter(None, (_relation(o, _real(r)) for o in (_entry(w), _real(w)))), None)
            if how is None and _samefile(w, r):
                how = "is"
            if how is not None:
                raise OutputError(
                    f"output '{w}' {how} the input '{r}'{' itself' if how == 'is' else ''}: "
                    "writing it could destroy what is read; choose an output apart from the inputs"
                )


def _samefile(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class Staging(AbortOnError):
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
    complete : callable, optional
        ``complete(path) -> bool``: whether a killed run's staging folder holds a finished output
        that may go onto a missing target (:func:`clean_stale_staging`); by default none does.
    """

    def __init__(
        self,
        target: PathLike,
        overwrite: bool,
        *,
        noun: str = "output",
        quoted: str | None = None,
        complete: Callable[[Path], bool] | None = None,
    ):
        self.target = Path(target)
        self.overwrite = overwrite
        self.noun = noun
        self.quoted = quoted if quoted is not None else f"'{self.target}'"
        clean_stale_staging(self.target, complete)
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


def write_atomic(path: PathLike, data: bytes | str) -> Path:
    """Write one file whole: ``data`` goes to a hidden sibling (:func:`staging_path`), which is then
    renamed over ``path``, so a reader sees the old file or the new one, never a part. A failed
    write removes the sibling; a killed one leaves it, named as :func:`clean_stale_staging` knows."""
    target = Path(path)
    tmp = staging_path(target)
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        remove(tmp)
        raise
    return target
