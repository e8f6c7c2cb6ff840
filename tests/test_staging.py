"""bigquant._staging: write_atomic replaces one file whole, nothing left beside it; a Staging
in a ``with`` block is aborted by an exception and only by one."""

from __future__ import annotations

import pytest

from bigquant._staging import Staging, write_atomic


def test_write_atomic_replaces_the_file_whole_and_leaves_no_sibling(tmp_path):
    target = tmp_path / "zarr.json"
    target.write_text("old")
    assert write_atomic(target, '{"new": 1}') == target
    assert target.read_text() == '{"new": 1}'
    write_atomic(target, b"bytes")
    assert target.read_bytes() == b"bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zarr.json"]


def test_a_failed_write_atomic_keeps_the_old_file_and_removes_its_sibling(tmp_path):
    target = tmp_path / "zarr.json"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "\udc80")  # a lone surrogate cannot be encoded: the write fails midway
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zarr.json"]


def test_an_exception_in_a_staging_block_removes_the_staging_and_keeps_the_target(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        with Staging(target, overwrite=True) as staging:
            staging.path.mkdir()
            (staging.path / "half").write_text("x")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert list(target.iterdir()) == []


def test_a_clean_staging_block_leaves_the_staging_for_the_commit(tmp_path):
    target = tmp_path / "out"
    with Staging(target, overwrite=False) as staging:
        staging.path.mkdir()
        (staging.path / "done").write_text("x")
    assert staging.path.is_dir()  # not aborted: committing is the caller's call
    assert staging.commit() == target
    assert (target / "done").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
