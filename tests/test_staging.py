"""bigquant._staging.write_atomic: one file replaced whole, nothing left beside it."""

from __future__ import annotations

import pytest

from bigquant._staging import write_atomic


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
