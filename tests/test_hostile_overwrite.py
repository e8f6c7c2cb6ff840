"""``--overwrite`` and the commit protocol under attack: overlapping paths, kills at every rename.

Two ways data was lost: an output that held an input (``--overwrite`` deleted the input with
the old output), and a kill between the two renames of a replacement (the old store hidden
as ``.NAME.old-...``, the next run deleting it and the finished new one). The overlap cases
follow tests/test_bad_input.py's table: exit 2, one error line, no traceback, the folder
byte-identical. The kill tests run the real CLI in a subprocess that SIGKILLs itself right
after each step of the replacement (the test-only hook ``BIGQUANT_TEST_KILL_AT``, see
:mod:`bigquant._staging`), then check that a complete copy is there and that the next run
recovers it instead of deleting it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import zarr

import bigquant
from bigquant import _staging
from bigquant import store as bq_store
from bigquant.cli import main
from bigquant.errors import BigquantError, OutputError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def photo(china) -> np.ndarray:
    return np.ascontiguousarray(china[100:160, 200:280])  # 60 x 80 x 3


@pytest.fixture(scope="module")
def template(tmp_path_factory, photo) -> Path:
    path = tmp_path_factory.mktemp("template") / "good.bq.zarr"
    bigquant.compress(photo, path, k=4, max_iter=3)
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too, links as their target) with its bytes' hash."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def error_line(err: str) -> str:
    assert "Traceback" not in err and "usage:" not in err, err
    said = [line for line in err.splitlines() if line.startswith("bigquant")]
    assert len(said) == 1 and "error" in said[0], err
    return said[0]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _make(name: str, d: Path, photo: np.ndarray, template: Path) -> None:
    """Create ``name`` in ``d``: stores are copies of the template, ``X->Y`` a symbolic link."""
    target = d / name
    if "->" in name:
        link, to = name.split("->")
        (d / link).symlink_to(to)
    elif name.endswith("/"):
        target.mkdir(parents=True)
    elif name.endswith(".bq.zarr"):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(template, target)
    elif name.endswith(".png"):
        target.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(target, photo)
    elif name.endswith("=hardlink"):
        os.link(d / "photo.png", d / name.removesuffix("=hardlink"))
    elif name.endswith(".zarr"):  # a Zarr image (a decode output, or an input)
        zarr.create_array(str(target), data=photo, chunks=(32, 32, 3))
    else:
        raise ValueError(name)


# (id, entries to make in order, argv, fragment of the one error line)
CASES = [
    # --- the two data losses of the report: an input inside the output --overwrite replaces
    (
        "compress-input-inside-output",
        ["old.bq.zarr", "old.bq.zarr/photo.png"],
        ["compress", "old.bq.zarr/photo.png", "-k", "2", "-o", "old.bq.zarr", "--overwrite"],
        "output 'old.bq.zarr' holds the input 'old.bq.zarr/photo.png'",
    ),
    (
        "decode-store-inside-output",
        ["proj.zarr", "proj.zarr/scan.bq.zarr"],
        ["decode", "proj.zarr/scan.bq.zarr", "-o", "proj.zarr", "--overwrite"],
        "output 'proj.zarr' holds the input 'proj.zarr/scan.bq.zarr'",
    ),
    # --- the same reached through '..' and through a symbolic link to the output
    (
        "input-through-dotdot",
        ["old.bq.zarr", "old.bq.zarr/photo.png", "sub/"],
        ["compress", "sub/../old.bq.zarr/photo.png", "-k", "2", "-o", "old.bq.zarr", "--overwrite"],
        "holds the input 'sub/../old.bq.zarr/photo.png'",
    ),
    (
        "input-through-symlink",
        ["old.bq.zarr", "old.bq.zarr/photo.png", "alias->old.bq.zarr"],
        ["compress", "alias/photo.png", "-k", "2", "-o", "old.bq.zarr", "--overwrite"],
        "holds the input 'alias/photo.png'",
    ),
    # an output that is a link to the folder holding the input: replaced through the link
    (
        "output-symlink-to-input-folder",
        ["real.bq.zarr", "real.bq.zarr/photo.png", "link.bq.zarr->real.bq.zarr"],
        ["compress", "real.bq.zarr/photo.png", "-k", "2", "-o", "link.bq.zarr", "--overwrite"],
        "holds the input",
    ),
    # --- outputs inside an input: writing there changes what is read
    (
        "decode-output-inside-store",
        ["good.bq.zarr"],
        ["decode", "good.bq.zarr", "-o", "good.bq.zarr/r.tif"],
        "output 'good.bq.zarr/r.tif' lies inside the input 'good.bq.zarr'",
    ),
    (
        "compress-output-inside-zarr-input",
        ["image.zarr"],
        ["compress", "image.zarr", "-k", "2", "-o", "image.zarr/x.bq.zarr"],
        "lies inside the input 'image.zarr'",
    ),
    # --- the other inputs: --codebook, fit's images, preview's store and original
    (
        "codebook-is-the-output",
        ["photo.png", "good.bq.zarr"],
        ["compress", "photo.png", "--codebook", "good.bq.zarr", "-o", "good.bq.zarr", "--overwrite"],
        "output 'good.bq.zarr' is the input 'good.bq.zarr' itself",
    ),
    (
        "codebook-inside-the-output",
        ["photo.png", "old.bq.zarr", "old.bq.zarr/pal.bq.zarr"],
        ["compress", "photo.png", "--codebook", "old.bq.zarr/pal.bq.zarr", "-o", "old.bq.zarr", "--overwrite"],
        "holds the input 'old.bq.zarr/pal.bq.zarr'",
    ),
    (
        "fit-image-inside-the-output",
        ["photo.png", "old.bq.zarr", "old.bq.zarr/b.png"],
        ["fit", "photo.png", "old.bq.zarr/b.png", "-k", "2", "-o", "old.bq.zarr", "--overwrite"],
        "holds the input 'old.bq.zarr/b.png'",
    ),
    # preview -o over its own --original: the original photograph was replaced by the preview
    (
        "preview-over-the-original",
        ["good.bq.zarr", "photo.png"],
        ["preview", "good.bq.zarr", "-o", "photo.png", "--original", "photo.png", "--overwrite"],
        "output 'photo.png' is the input 'photo.png' itself",
    ),
    (
        "preview-palette-over-the-original",
        ["good.bq.zarr", "photo.png"],
        ["preview", "good.bq.zarr", "-o", "s.png", "--original", "photo.png", "--palette", "photo.png", "--overwrite"],
        "output 'photo.png' is the input 'photo.png' itself",
    ),
    (
        "preview-inside-the-store",
        ["good.bq.zarr"],
        ["preview", "good.bq.zarr", "--convergence", "good.bq.zarr/c.png"],
        "lies inside the input 'good.bq.zarr'",
    ),
    # a hard link to the original: the same file under another name
    (
        "preview-over-a-hard-link-of-the-original",
        ["good.bq.zarr", "photo.png", "twin.png=hardlink"],
        ["preview", "good.bq.zarr", "-o", "twin.png", "--original", "photo.png", "--overwrite"],
        "output 'twin.png' is the input 'photo.png' itself",
    ),
]


@pytest.mark.parametrize("case, make, argv, message", CASES, ids=[c[0] for c in CASES])
def test_overlapping_input_and_output_refused(
    tmp_path, monkeypatch, capsys, photo, template, case, make, argv, message
):
    monkeypatch.chdir(tmp_path)
    for name in make:
        _make(name, tmp_path, photo, template)
    before = snapshot(tmp_path)
    status = main(list(argv))
    cap = capsys.readouterr()
    assert status == 2, cap.err
    assert message in error_line(cap.err)
    assert snapshot(tmp_path) == before  # the inputs are untouched, nothing written


def test_disjoint_paths_pass(tmp_path):
    # Siblings with a common prefix are not inside one another; arrays are not paths.
    (tmp_path / "a.bq.zarr").mkdir()
    _staging.check_apart([tmp_path / "a.bq.zarr2", np.zeros(3), None], [tmp_path / "a.bq.zarr"])
    _staging.check_apart([tmp_path / "x" / "in.png"], [tmp_path / "xy.bq.zarr", tmp_path / "x.png"])


# --- Kills at every step of a replacement ------------------------------------------------------


def _cli(argv: list[str], cwd: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(_staging.KILL_AT_ENV, None)
    if kill_at:
        env[_staging.KILL_AT_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "bigquant.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


def _store_ok(p: Path, k: int) -> bool:
    try:
        s = bigquant.open(p)
        return s.k == k and s.labels.compute().max() < k
    except BigquantError:
        return False


#: A palette store written by a small subprocess (no fit: seconds, not tens of seconds), through
#: the same StoreWriter commit as compress: check_target, the staging folder, move_into_place.
WRITE_PALETTE = """
import sys, numpy as np
from bigquant.store import write_palette
k = int(sys.argv[1])
meta = dict(iterations=1, mse=1.0, psnr=40.0, method="pixels", seed=0, sources=["x.png"])
write_palette("p.bq.zarr", np.arange(3 * k, dtype=np.uint8).reshape(k, 3), meta, overwrite=True)
"""


def _write_palette(cwd: Path, k: int, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {key: v for key, v in os.environ.items() if key != _staging.KILL_AT_ENV}
    env.update({_staging.KILL_AT_ENV: kill_at} if kill_at else {})
    return subprocess.run(
        [sys.executable, "-c", WRITE_PALETTE, str(k)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("step", _staging.STEPS)
def test_kill_at_each_step_of_a_store_replacement(tmp_path, step):
    """A K=2 palette store replaced by a K=3 one, killed right after ``step``.

    At every step a complete store is findable: the old one at the target or under
    ``.p.bq.zarr.old-...``, or the new one at the target. The next writer's checks
    (check_target, without overwrite) put an orphaned old store back instead of deleting it,
    then refuse to replace it; nothing hidden is left.
    """
    assert _write_palette(tmp_path, 2).returncode == 0
    target = tmp_path / "p.bq.zarr"
    old = snapshot(target)
    r = _write_palette(tmp_path, 3, kill_at=step)
    assert r.returncode == -signal.SIGKILL, r.stderr
    olds = [p for p in tmp_path.iterdir() if p.name.startswith(".p.bq.zarr.old-")]
    if step == "aside":
        assert not target.exists() and [snapshot(p) for p in olds] == [old]
    else:
        assert bq_store.open(target).codebook.shape[0] == (2 if step == "staged" else 3)
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        bq_store.check_target(target, overwrite=False)
    assert hidden(tmp_path) == []
    if step in ("staged", "aside"):
        assert snapshot(target) == old  # the original, recovered
    else:
        assert bq_store.open(target).codebook.shape[0] == 3


def test_compress_killed_between_the_renames_then_rerun(tmp_path, monkeypatch, capsys, photo):
    """The reported loss, through the CLI: compress --overwrite killed with the old store moved
    aside and the new one not yet in place; the rerun (no --overwrite) used to delete both."""
    iio.imwrite(tmp_path / "photo.png", photo)
    monkeypatch.chdir(tmp_path)
    assert main(["compress", "photo.png", "-k", "2", "-o", "s.bq.zarr", "-q"]) == 0
    old = snapshot(tmp_path / "s.bq.zarr")
    r = _cli(["compress", "photo.png", "-k", "3", "-o", "s.bq.zarr", "--overwrite", "-q"], tmp_path, kill_at="aside")
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not (tmp_path / "s.bq.zarr").exists()
    assert main(["compress", "photo.png", "-k", "3", "-o", "s.bq.zarr", "-q"]) == 2
    assert "exists; pass --overwrite" in error_line(capsys.readouterr().err)
    assert hidden(tmp_path) == [] and snapshot(tmp_path / "s.bq.zarr") == old
    assert main(["compress", "photo.png", "-k", "3", "-o", "s.bq.zarr", "-q", "--overwrite"]) == 0
    assert _store_ok(tmp_path / "s.bq.zarr", 3) and hidden(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_between_the_renames_lands_after_the_swap(tmp_path, monkeypatch, capsys, photo, signum):
    """Ctrl-C (or SIGTERM) arriving with the old store moved aside and the new one not yet in
    place is held back until the new one is at the target: the run then stops as interrupted
    (130, 143), with a complete store at the target and nothing hidden left beside it."""
    iio.imwrite(tmp_path / "photo.png", photo)
    monkeypatch.chdir(tmp_path)
    assert main(["compress", "photo.png", "-k", "2", "-o", "s.bq.zarr", "-q"]) == 0
    name = signal.Signals(signum).name
    argv = ["compress", "photo.png", "-k", "3", "-o", "s.bq.zarr", "--overwrite", "-q"]
    r = _cli(argv, tmp_path, kill_at=f"aside:{name}")
    assert r.returncode == 128 + signum, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.splitlines() == [f"bigquant: interrupted ({name})"], r.stderr
    assert _store_ok(tmp_path / "s.bq.zarr", 3)  # the new store, complete, at the target
    assert hidden(tmp_path) == []  # the old one deleted, no .partial nor .old left


def test_kill_before_a_first_store_is_renamed_keeps_the_finished_store(tmp_path, capsys):
    # No old store: killed between the last write and the rename, the finished .partial store is
    # the only complete copy; the next writer moves it into place instead of deleting it.
    r = _write_palette(tmp_path, 3, kill_at="staged")
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not (tmp_path / "p.bq.zarr").exists() and len(hidden(tmp_path)) == 1
    assert main(["info", str(tmp_path / "p.bq.zarr")]) == 2  # reading recovers nothing
    capsys.readouterr()
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        bq_store.check_target(tmp_path / "p.bq.zarr", overwrite=False)
    assert hidden(tmp_path) == [] and bq_store.open(tmp_path / "p.bq.zarr").codebook.shape == (3, 3)


@pytest.mark.parametrize("step", ["aside", "placed"])
def test_kill_during_zarr_image_replacement(tmp_path, monkeypatch, capsys, template, step):
    """decode -o r.zarr --overwrite (a folder output, not a store) killed after ``step``: an
    orphaned old image goes back onto a missing target; the next run cleans up."""
    shutil.copytree(template, tmp_path / "s.bq.zarr")
    assert main(["decode", str(tmp_path / "s.bq.zarr"), "-o", str(tmp_path / "r.zarr")]) == 0
    (tmp_path / "r.zarr" / "mine.txt").write_text("marks the old image")
    old = snapshot(tmp_path / "r.zarr")
    r = _cli(["decode", "s.bq.zarr", "-o", "r.zarr", "--overwrite"], tmp_path, kill_at=step)
    assert r.returncode == -signal.SIGKILL, r.stderr
    monkeypatch.chdir(tmp_path)
    assert main(["decode", "s.bq.zarr", "-o", "r.zarr"]) == 2
    assert "exists; pass --overwrite" in error_line(capsys.readouterr().err)
    assert hidden(tmp_path) == []
    if step == "aside":
        assert snapshot(tmp_path / "r.zarr") == old
    else:
        assert not (tmp_path / "r.zarr" / "mine.txt").exists()
        assert np.array_equal(
            zarr.open_array(str(tmp_path / "r.zarr"))[...], bigquant.open(template).reconstruct().compute()
        )


def test_kill_after_a_file_replacement(tmp_path, template):
    # A file is replaced by one atomic rename: killed before it, the old file stays; after, the new.
    shutil.copytree(template, tmp_path / "s.bq.zarr")
    (tmp_path / "r.tif").write_bytes(b"the old output")
    r = _cli(["decode", "s.bq.zarr", "-o", "r.tif", "--overwrite"], tmp_path, kill_at="staged")
    assert r.returncode == -signal.SIGKILL and (tmp_path / "r.tif").read_bytes() == b"the old output"
    assert main(["decode", str(tmp_path / "s.bq.zarr"), "-o", str(tmp_path / "r.tif"), "--overwrite"]) == 0
    assert hidden(tmp_path) == [] and (tmp_path / "r.tif").read_bytes()[:2] in (b"II", b"MM")


# --- Symbolic links ------------------------------------------------------------------------------


def test_overwrite_through_a_symlink_leaves_nothing_hidden(tmp_path, photo, capsys):
    """A store output that is a link to a store elsewhere, and a TIFF output that is a link:
    --overwrite replaces the link itself (the store or file it pointed to stays as it was) and
    leaves no ``.NAME.old-...`` or ``.trash`` entry in either folder."""
    iio.imwrite(tmp_path / "photo.png", photo)
    real = tmp_path / "elsewhere"
    real.mkdir()
    assert main(["compress", str(tmp_path / "photo.png"), "-k", "2", "-o", str(real / "s.bq.zarr"), "-q"]) == 0
    before = snapshot(real)
    (tmp_path / "link.bq.zarr").symlink_to(real / "s.bq.zarr")
    (tmp_path / "r.tif").symlink_to(real / "r.tif")
    (real / "r.tif").write_bytes(b"pointed to")
    before = snapshot(real)
    assert (
        main(
            [
                "compress",
                str(tmp_path / "photo.png"),
                "-k",
                "3",
                "-o",
                str(tmp_path / "link.bq.zarr"),
                "-q",
                "--overwrite",
            ]
        )
        == 0
    )
    assert main(["decode", str(tmp_path / "link.bq.zarr"), "-o", str(tmp_path / "r.tif"), "--overwrite"]) == 0
    capsys.readouterr()
    assert hidden(tmp_path) == [] and hidden(real) == []
    assert snapshot(real) == before
    assert not (tmp_path / "link.bq.zarr").is_symlink() and _store_ok(tmp_path / "link.bq.zarr", 3)
    assert not (tmp_path / "r.tif").is_symlink()


# --- Stale cleanup, step by step (the leftovers of a process that is gone) -----------------------


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _sibling(target: Path, kind: str, pid: int) -> Path:
    return target.with_name(f".{target.name}.{kind}-{pid}-{_staging.HOST}-0123abcd")


def test_cleanup_restores_an_orphaned_old_and_removes_the_rest(tmp_path, dead_pid):
    t = tmp_path / "out.zarr"
    old, part, trash = (_sibling(t, k, dead_pid) for k in ("old", "partial", "trash"))
    for p in (old, part, trash):
        p.mkdir()
        (p / "which").write_text(p.name)
    removed = _staging.clean_stale_staging(t)
    assert (t / "which").read_text() == old.name  # the old output is back
    assert sorted(removed) == sorted([part, trash]) and hidden(tmp_path) == []


def test_cleanup_keeps_a_live_runs_siblings(tmp_path):
    t = tmp_path / "out.zarr"
    mine = _sibling(t, "old", os.getpid())
    mine.mkdir()
    assert _staging.clean_stale_staging(t) == [] and mine.exists() and not t.exists()


def test_cleanup_with_the_target_in_place_removes_an_old(tmp_path, dead_pid):
    # Killed after the new output went in: the old one is superseded.
    t = tmp_path / "out.zarr"
    t.mkdir()
    old = _sibling(t, "old", dead_pid)
    old.mkdir()
    assert _staging.clean_stale_staging(t) == [old] and t.is_dir() and hidden(tmp_path) == []


def test_cleanup_promotes_only_a_complete_partial(tmp_path, dead_pid):
    t = tmp_path / "out.bq.zarr"
    part = _sibling(t, "partial", dead_pid)
    part.mkdir()
    assert _staging.clean_stale_staging(t, complete=lambda p: False) == [part] and not t.exists()
    part.mkdir()
    assert _staging.clean_stale_staging(t, complete=lambda p: p == part) == [] and t.is_dir()


def test_cleanup_never_removes_an_old_it_could_not_put_back(tmp_path, monkeypatch, dead_pid):
    # The rename back fails (simulated: a read-only folder would do it for a user, not for root);
    # with the target still missing, the old output is the only complete copy and stays.
    t = tmp_path / "out.zarr"
    old = _sibling(t, "old", dead_pid)
    old.mkdir()
    (old / "x").write_text("the only copy")
    real_rename = os.rename

    def failing(src, dst, *a, **kw):
        if Path(src) == old:
            raise OSError("simulated")
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", failing)
    assert _staging.clean_stale_staging(t) == []
    monkeypatch.undo()
    assert (old / "x").read_text() == "the only copy" and not t.exists()
