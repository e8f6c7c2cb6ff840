"""Stores edited by hand, and the limits the writer and the reader share.

The table's cases follow tests/test_bad_input.py: each copies a good store, damages one thing
the way a hand edit (or a stray file manager) would, and runs info or decode; each must exit 2
with exactly one error line, no traceback, nothing on stdout (the metadata is validated before a
word is printed) and the folder byte-identical afterwards. tests/test_bad_input.py already has
missing arrays, a K mismatch, a newer format_version, an incomplete flag, absurd shapes and
chunks, labels >= K, missing or damaged chunks; the cases here are the ones it lacks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import zarr

import bigquant
from bigquant.cli import main

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def template(tmp_path_factory, china) -> Path:
    path = tmp_path_factory.mktemp("template") / "good.bq.zarr"
    bigquant.compress(np.ascontiguousarray(china[100:160, 200:280]), path, k=4, max_iter=3, chunks=(32, 32))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too) with a hash of each file's bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def error_line(err: str) -> str:
    """The one error line; nothing else that starts with 'bigquant', no traceback, no usage."""
    assert "Traceback" not in err and "usage:" not in err, err
    said = [line for line in err.splitlines() if line.startswith("bigquant")]
    assert len(said) == 1 and "error" in said[0], err
    return said[0]


def _edit(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def _meta(**changes):
    return lambda s: _edit(s / "zarr.json", lambda d: d["attributes"]["bigquant"].update(changes))


def _drop(key: str):
    return lambda s: _edit(s / "zarr.json", lambda d: d["attributes"]["bigquant"].pop(key))


def _array(name: str, **changes):
    return lambda s: _edit(s / name / "zarr.json", lambda d: d.update(changes))


def _chunks(shape):
    return lambda s: _edit(
        s / "labels" / "0" / "zarr.json", lambda d: d["chunk_grid"]["configuration"].update(chunk_shape=shape)
    )


def _padded(name: str, nbytes: int):
    """A metadata document swollen by one huge attribute (the JSON stays valid)."""
    return lambda s: _edit(s / name, lambda d: d.setdefault("attributes", {}).update(junk="x" * nbytes))


def _stray_and_gone(s: Path) -> None:
    (s / "labels" / "0" / "c" / "1" / "2").unlink()
    (s / "labels" / "0" / "c" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (s / "labels" / "0" / "c" / "1" / "Icon\r").write_bytes(b"")


def _chunk_files(value):
    def edit(s: Path) -> None:
        (s / "labels" / "0" / "c" / "0" / "1").unlink()
        if value == "missing":
            _drop("label_chunk_files")(s)
        else:
            _meta(label_chunk_files=value)(s)

    return edit


BIG = 65 << 20  # past MAX_METADATA_BYTES (64 MiB)

# (id, damage, command (after the store), fragment of the error line)
CASES = [
    # --- metadata documents that are not objects: exit 1 (AttributeError) before
    ("root-is-a-list", lambda s: (s / "zarr.json").write_text("[1, 2]"), ["decode"], "is not a bigquant store"),
    ("root-is-null", lambda s: (s / "zarr.json").write_text("null"), ["decode"], "is not a bigquant store"),
    ("attributes-a-list", _array(".", attributes=[1]), ["info"], "'s.bq.zarr'"),
    # --- keys the summary prints, missing or mistyped: exit 1 (KeyError) after validation passed
    ("no-iterations", _drop("iterations"), ["info"], "its metadata has no 'iterations'"),
    ("no-mse", _drop("mse"), ["info"], "its metadata has no 'mse'"),
    ("no-source", _drop("source"), ["info"], "its metadata has no 'source'"),
    ("mse-a-string", _meta(mse="low"), ["info"], "its metadata 'mse' is 'low'"),
    ("iterations-negative", _meta(iterations=-3), ["info"], "'iterations' is -3"),
    ("psnr-a-list", _meta(psnr=[1]), ["info"], "'psnr' is [1]"),
    # a pixel size without x: info printed the summary's first lines, then KeyError
    ("pixel-size-half", _meta(pixel_size={"y": 0.5}), ["info"], "'pixel_size' is"),
    # bands naming one channel of three: decode wrote a TIFF labelled as one band (exit 0)
    ("bands-short", _meta(bands=["red"]), ["decode"], "bands ['red'] do not name its 3 channels"),
    # (these three held before; guards)
    ("k-a-bool", _meta(k=True), ["info"], "invalid K True"),
    ("format-version-a-float", _meta(format_version=2.0), ["info"], "invalid format_version 2.0"),
    ("complete-a-string", _meta(complete="yes"), ["info"], "is incomplete"),
    # --- the missing-chunk guard: never switched off, never fooled by stray files
    # label_chunk_files null or absent in a version-2 store: the check was skipped, label 0 read
    ("chunk-files-null", _chunk_files(None), ["decode"], "label_chunk_files None is not one chunk count"),
    ("chunk-files-missing", _chunk_files("missing"), ["decode"], "label_chunk_files None is not one chunk"),
    ("chunk-files-empty", _chunk_files([]), ["decode"], "label_chunk_files [] is not one chunk"),
    # a Finder artefact in c/ and an odd file in c/1 do not stand in for the deleted chunk c/1/2
    # (the guard counts the grid's keys, not files: held before, kept as a guard)
    ("stray-files", _stray_and_gone, ["decode"], "1 of the 6 chunks of 'labels/0' are missing"),
    # --- arrays edited by hand (all but the zero chunk side held before; guards)
    ("chunks-zero", _chunks([0, 32]), ["decode"], "chunks (0, 32) are absurd"),  # was ZeroDivisionError
    ("chunks-negative", _chunks([-32, 32]), ["decode"], "cannot be opened"),
    ("labels-int32", _array("labels/0", data_type="int32"), ["info"], "dtype int32 cannot hold K=4"),
    ("labels-float", _array("labels/0", data_type="float32"), ["decode"], "dtype float32 cannot hold K=4"),
    ("codebook-dtype", _array("codebook", data_type="uint16"), ["decode"], "codebook dtype uint16 disagrees"),
    ("codebook-rows", _array("codebook", shape=[3, 3]), ["info"], "codebook shape (3, 3) disagrees"),
    ("labels-shape", _array("labels/0", shape=[60, 81]), ["decode"], "shape (60, 81) disagrees"),
    # --- oversized metadata documents: each was parsed whole (a 1 GiB one peaked at 3.1 GiB)
    ("huge-labels-group-json", _padded("labels/zarr.json", BIG), ["info"], "labels/zarr.json has"),
    ("huge-array-json", _padded("labels/0/zarr.json", BIG), ["decode"], "labels/0/zarr.json has"),
    ("huge-codebook-json", _padded("codebook/zarr.json", BIG), ["info"], "codebook/zarr.json has"),
]


@pytest.mark.parametrize("case, damage, command, message", CASES, ids=[c[0] for c in CASES])
def test_hand_edited_store_one_line_exit_2(tmp_path, monkeypatch, capsys, template, case, damage, command, message):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.bq.zarr"
    shutil.copytree(template, store)
    damage(store)
    before = snapshot(tmp_path)
    argv = [command[0], "s.bq.zarr", *(["-o", "r.tif"] if command[0] == "decode" else [])]
    status = main(argv)
    cap = capsys.readouterr()
    assert status == 2, cap.err
    assert message in error_line(cap.err)
    assert cap.out == ""  # nothing half-printed before the error
    assert snapshot(tmp_path) == before


def test_template_is_good(template, capsys):
    # The cases above damage this store; undamaged, both commands succeed.
    assert main(["info", str(template)]) == 0
    assert main(["info", str(template), "--json"]) == 0
    capsys.readouterr()


# --- The writer and the reader agree ----------------------------------------------------------


def test_one_colour_black_image_gives_a_valid_store(tmp_path, capsys):
    # K reduces to 1 and the codebook is all zeros, zarr's fill value: the chunk must still be
    # written, or the reader finds "codebook data is missing" (exit 2 with the store left behind).
    iio.imwrite(tmp_path / "black.png", np.zeros((20, 30, 3), np.uint8))
    out = tmp_path / "b.bq.zarr"
    assert main(["compress", str(tmp_path / "black.png"), "-k", "4", "-o", str(out), "-q"]) == 0, capsys.readouterr()
    s = bigquant.open(out)
    assert s.k == 1 and np.array_equal(s.codebook, np.zeros((1, 3), np.uint8))
    assert main(["decode", str(out), "-o", str(tmp_path / "b.png")]) == 0
    assert np.array_equal(iio.imread(tmp_path / "b.png"), np.zeros((20, 30, 3), np.uint8))
    # the same for a palette fitted on it
    assert main(["fit", str(tmp_path / "black.png"), "-k", "2", "-o", str(tmp_path / "p.bq.zarr"), "-q"]) == 0
    assert main(["info", str(tmp_path / "p.bq.zarr")]) == 0
    capsys.readouterr()


def test_more_channels_than_a_store_holds_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    # The reader caps a store at MAX_CHANNELS (64); the writer used to write a 65-channel store
    # that nothing could open. Refused before the fit, nothing written.
    from bigquant.store.format import MAX_CHANNELS

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    zarr.create_array("wide.zarr", data=rng.integers(0, 255, (8, 8, MAX_CHANNELS + 1), dtype=np.uint8))
    before = snapshot(tmp_path)
    assert main(["compress", "wide.zarr", "-k", "2", "-o", "w.bq.zarr"]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"the image has {MAX_CHANNELS + 1} channels; a bigquant store holds at most {MAX_CHANNELS}" in line
    assert snapshot(tmp_path) == before
    # exactly the limit is fine, and reads back
    zarr.create_array("edge.zarr", data=rng.integers(0, 255, (8, 8, MAX_CHANNELS), dtype=np.uint8))
    assert main(["compress", "edge.zarr", "-k", "2", "-o", "e.bq.zarr", "-q"]) == 0
    assert bigquant.open(tmp_path / "e.bq.zarr").shape == (8, 8, MAX_CHANNELS)
    capsys.readouterr()


def _no_codebook_chunk(s: Path) -> None:
    for p in (s / "codebook").rglob("*"):
        if p.is_file() and p.name != "zarr.json":
            p.unlink()


PALETTE_CASES = [
    # the codebook chunk deleted: zarr reads zeros, and compress encoded with an all-black palette
    ("palette-codebook-data-gone", _no_codebook_chunk, "codebook data is missing"),
    # a palette codebook stored as uint16 while the metadata says uint8
    ("palette-codebook-dtype", _array("codebook", data_type="uint16"), "codebook dtype uint16 disagrees"),
    # a palette missing the keys info prints
    ("palette-no-mse", _drop("mse"), "its metadata has no 'mse'"),
    ("palette-sources-not-a-list", _meta(sources="a.png"), "'sources' is 'a.png'"),
]


@pytest.mark.parametrize("case, damage, message", PALETTE_CASES, ids=[c[0] for c in PALETTE_CASES])
def test_hand_edited_palette_one_line_exit_2(tmp_path, monkeypatch, capsys, china, case, damage, message):
    monkeypatch.chdir(tmp_path)
    photo = np.ascontiguousarray(china[100:160, 200:280])
    iio.imwrite("photo.png", photo)
    bigquant.fit([photo], "p.bq.zarr", k=3, max_iter=3)
    damage(tmp_path / "p.bq.zarr")
    before = snapshot(tmp_path)
    for argv in (["compress", "photo.png", "--codebook", "p.bq.zarr", "-o", "c.bq.zarr"], ["info", "p.bq.zarr"]):
        assert main(argv) == 2
        cap = capsys.readouterr()
        assert message in error_line(cap.err) and cap.out == ""
        assert snapshot(tmp_path) == before


def test_writer_limits_are_the_readers():
    # One set of constants binds both sides: what the writer accepts, the reader opens.
    from bigquant.errors import ParameterError
    from bigquant.store import check_store_limits
    from bigquant.store.format import MAX_CHANNELS, MAX_CHUNK_PIXELS, MAX_PIXELS

    check_store_limits((1 << 20, 1 << 20, MAX_CHANNELS), 65536, (1 << 15, 1 << 15))  # at the limits
    for shape, k, chunks, words in [
        ((1, 1, MAX_CHANNELS + 1), 2, None, "channels"),
        ((MAX_PIXELS, 2, 3), 2, None, "pixels"),
        ((8, 8, 3), 65537, None, "K=65537"),
        ((1 << 20, 1 << 20, 3), 2, (MAX_CHUNK_PIXELS, 2), "a labels chunk"),
    ]:
        with pytest.raises(ParameterError, match=words):
            check_store_limits(shape, k, chunks)
