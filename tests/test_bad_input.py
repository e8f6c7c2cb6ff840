"""Bad input through the command line: one line on stderr, exit status 2, nothing touched.

Every case checks the whole contract, not just the message: exit status 2; exactly one error
line on stderr (argument-parsing errors too: no usage block); no traceback; nothing
written or deleted in the working folder (hidden partial folders included) and every input
byte-identical afterwards. tests/test_cli.py already covers a missing .png, a text file named
.png, K of 0, 65537, 2.5 and "many", an existing output folder, and decode/info on a plain folder
or a missing store; the cases here extend those. No memory bombs: absurd sizes are refused from
headers and metadata, before any allocation.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr
from cli_harness import error_line, png_claiming, refused, snapshot, table
from PIL import Image

import bigquant
from bigquant.cli import main
from bigquant.errors import InputError

pytestmark = pytest.mark.timeout(120)


#: The messages for a folder whose zarr.json is JSON but not an object: as a store, as an input.
NOT_AN_OBJECT_STORE = ".zarr' is not a bigquant store: zarr.json is not a JSON object"
NOT_AN_OBJECT_INPUT = ".zarr' is not a readable zarr array or group: zarr.json is not a JSON object"


# --- Inputs, each made in the working folder on demand ------------------------------------------


def _edit_json(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def _edit_meta(store: Path, **changes) -> None:
    _edit_json(store / "zarr.json", lambda d: d["attributes"]["bigquant"].update(changes))


def _huge_png(path: Path, rows: int = 100_000, cols: int = 100_000) -> None:
    path.write_bytes(png_claiming(rows, cols))


def _huge_jpeg(path: Path, photo: np.ndarray, side: int = 60_000) -> None:
    """A small real JPEG whose frame header (SOF0) is patched to claim side x side pixels."""
    Image.fromarray(photo).save(path, format="JPEG")
    data = bytearray(path.read_bytes())
    i = data.index(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[i + 5 : i + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))


def _make(name: str, d: Path, photo: np.ndarray, template: Path) -> None:
    """Create the input called ``name`` in ``d`` (names are those used in CASES)."""
    if name == "photo.png":
        iio.imwrite(d / name, photo)
    elif name == "plain_dir":
        (d / name).mkdir()
        (d / name / "notes.txt").write_text("not an image")
    elif name.startswith("empty."):
        (d / name).write_bytes(b"")
    elif name.startswith("truncated."):
        full = d / ("full" + Path(name).suffix)
        if name.endswith(".png"):
            iio.imwrite(full, photo)
        elif name.endswith(".jpg"):
            Image.fromarray(photo).save(full, format="JPEG")
        else:
            tifffile.imwrite(full, photo, tile=(16, 16), photometric="rgb", compression="zlib")
        data = full.read_bytes()
        full.unlink()
        (d / name).write_bytes(data[: len(data) // 2])
    elif name.startswith("text."):
        (d / name).write_text("this is not an image\n")
    elif name.startswith("json_") and name.endswith(".zarr"):  # zarr.json valid JSON, but no object
        (d / name).mkdir()
        doc = {"json_list.zarr": "[]", "json_number.zarr": "3", "json_string.zarr": '"group"'}[name]
        (d / name / "zarr.json").write_text(doc)
    elif name == "zero_rows.zarr":
        zarr.create_array(str(d / name), shape=(0, 10, 3), dtype="uint8", chunks=(1, 10, 3))
    elif name == "zero_cols.zarr":
        zarr.create_array(str(d / name), shape=(10, 0, 3), dtype="uint8", chunks=(10, 1, 3))
    elif name == "four_d.zarr":
        zarr.create_array(str(d / name), data=np.zeros((2, 6, 7, 3), np.uint8))
    elif name == "one_d.zarr":
        zarr.create_array(str(d / name), data=np.zeros(50, np.uint8))
    elif name == "nan.zarr":
        a = photo.astype(np.float32) / 255
        a[7, 9, 1] = np.nan
        zarr.create_array(str(d / name), data=a)
    elif name == "neginf.zarr":
        a = photo.astype(np.float64)
        a[59, 79, 2] = -np.inf
        zarr.create_array(str(d / name), data=a, chunks=(16, 16, 3))
    elif name == "inf.tif":
        a = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
        a[200, 17, 0] = np.inf
        tifffile.imwrite(d / name, a, tile=(16, 16), photometric="rgb")
    elif name == "complex.zarr":
        zarr.create_array(str(d / name), data=np.zeros((10, 10, 3), np.complex64))
    elif name == "bool.zarr":
        zarr.create_array(str(d / name), data=np.zeros((10, 10, 3), bool))
    elif name == "strings.zarr":  # zarr's variable-length strings: numpy's object-like StringDType
        from zarr.core.dtype import VariableLengthUTF8

        zarr.create_array(str(d / name), shape=(10, 10, 3), dtype=VariableLengthUTF8(), chunks=(10, 10, 3))
    elif name == "exists.bq.zarr":
        (d / name).write_text("a file where the store would go")
    elif name in ("folder.bq.zarr", "folder.zarr"):
        (d / name).mkdir()
        (d / name / "precious.txt").write_text("not a store")
    elif name == "plain_group.zarr":
        zarr.create_group(str(d / name), zarr_format=3)
    elif name == "image.zarr":
        zarr.create_array(str(d / name), data=photo)
    elif name == "huge.png":
        _huge_png(d / name)
    elif name == "huge.jpg":
        _huge_jpeg(d / name, photo)
    elif name.endswith(".bq.zarr"):  # a damaged copy of a good store
        store = d / name
        shutil.copytree(template, store)
        damage = name[: -len(".bq.zarr")]
        if damage == "no_labels":
            shutil.rmtree(store / "labels")
        elif damage == "no_codebook":
            shutil.rmtree(store / "codebook")
        elif damage == "labels_beyond_k":
            zarr.open_array(str(store / "labels" / "0"), mode="r+")[40, 50] = 9  # K is 4
        elif damage == "k_mismatch":
            _edit_meta(store, k=5)
        elif damage == "codebook_channels":  # a (K, 4) codebook in an RGB store
            shutil.rmtree(store / "codebook")
            zarr.create_array(str(store / "codebook"), data=np.zeros((4, 4), np.uint8))
        elif damage == "newer":
            _edit_meta(store, format_version=99)
        elif damage == "incomplete":
            _edit_meta(store, complete=False)
        elif damage == "absurd_shape":
            _edit_meta(store, shape=[10**9, 10**9, 3])
        elif damage == "absurd_chunks":

            def huge_chunks(doc):
                doc["shape"] = [2**21, 2**21]
                doc["chunk_grid"]["configuration"]["chunk_shape"] = [2**21, 2**21]

            _edit_json(store / "labels" / "0" / "zarr.json", huge_chunks)
            _edit_meta(store, shape=[2**21, 2**21, 3])
        elif damage == "corrupt_chunk":
            chunk = next(p for p in sorted((store / "labels").rglob("*")) if p.is_file() and p.name != "zarr.json")
            chunk.write_bytes(chunk.read_bytes()[:5])
        elif damage in ("no_label_chunk", "flipped_chunk"):
            chunk = store / "labels" / "0" / "c" / "1" / "2"  # the template has 2 x 3 chunks
            if damage == "no_label_chunk":
                chunk.unlink()
            else:  # bytes changed inside the zstd data, length kept: only the checksum can tell
                data = bytearray(chunk.read_bytes())
                data[12:20] = bytes(b ^ 0x5A for b in data[12:20])
                chunk.write_bytes(bytes(data))
        elif damage == "labels_json":
            (store / "labels" / "0" / "zarr.json").write_text("{not json")
        elif damage == "no_codebook_data":
            for p in (store / "codebook").rglob("*"):
                if p.is_file() and p.name != "zarr.json":
                    p.unlink()
        elif damage != "good":
            raise ValueError(name)
    else:
        raise ValueError(f"no recipe for {name}")


# (id, inputs to make in the working folder, argv, fragment of the one error line)
CASES = [
    # --- inputs that do not exist or are not images
    # a missing TIFF (test_cli has a missing PNG): checked before the TIFF reader opens anything
    ("missing-tiff", [], ["compress", "missing.tif"], "input 'missing.tif' does not exist"),
    # a missing Zarr path: not mistaken for an empty array or group
    ("missing-zarr", [], ["compress", "gone.zarr"], "does not exist"),
    # a folder given as the input that is no zarr array or group
    ("directory", ["plain_dir"], ["compress", "plain_dir"], "is a directory but not a zarr array"),
    # empty files, one per reader: each must say "empty", not a decoder's riddle
    ("empty-png", ["empty.png"], ["compress", "empty.png"], "empty.png' is empty (0 bytes)"),
    ("empty-jpeg", ["empty.jpg"], ["compress", "empty.jpg"], "empty.jpg' is empty (0 bytes)"),
    ("empty-tiff", ["empty.tif"], ["compress", "empty.tif"], "empty.tif' is empty (0 bytes)"),
    # truncated files (first half only), one per reader
    ("truncated-png", ["truncated.png"], ["compress", "truncated.png"], "cannot decode input 'truncated.png'"),
    ("truncated-jpeg", ["truncated.jpg"], ["compress", "truncated.jpg"], "truncated.jpg"),
    ("truncated-tiff", ["truncated.tif"], ["compress", "truncated.tif"], "truncated.tif' is truncated"),
    # text files with image extensions (test_cli has text named .png): the content decides
    ("text-as-jpeg", ["text.jpg"], ["compress", "text.jpg"], "(extension '.jpg') is not an image bigquant can read"),
    ("text-as-tiff", ["text.tif"], ["compress", "text.tif"], "(extension '.tif') is not an image bigquant can read"),
    # an extension no reader claims, holding no known format
    ("unknown-extension", ["text.bmp"], ["compress", "text.bmp"], "(extension '.bmp') is not an image"),
    # a folder whose zarr.json is valid JSON but not an object: said plainly (was a Python
    # AttributeError named in the message) by info, by compress and fit (as an input), by decode
    ("info-json-list", ["json_list.zarr"], ["info", "json_list.zarr"], NOT_AN_OBJECT_STORE),
    ("info-json-number", ["json_number.zarr"], ["info", "json_number.zarr"], NOT_AN_OBJECT_STORE),
    ("info-json-string", ["json_string.zarr"], ["info", "json_string.zarr"], NOT_AN_OBJECT_STORE),
    ("compress-json-list", ["json_list.zarr"], ["compress", "json_list.zarr"], NOT_AN_OBJECT_INPUT),
    ("compress-json-number", ["json_number.zarr"], ["compress", "json_number.zarr"], NOT_AN_OBJECT_INPUT),
    ("fit-json-string", ["json_string.zarr"], ["fit", "json_string.zarr", "-o", "p.bq.zarr"], NOT_AN_OBJECT_INPUT),
    ("decode-json-list", ["json_list.zarr"], ["decode", "json_list.zarr", "-o", "r.tif"], NOT_AN_OBJECT_STORE),
    ("preview-json-list", ["json_list.zarr"], ["preview", "json_list.zarr", "-o", "r.png"], NOT_AN_OBJECT_STORE),
    # --- arrays bigquant cannot quantize
    # zero height, then zero width: no pixels, so no k-means
    ("zero-height", ["zero_rows.zarr"], ["compress", "zero_rows.zarr"], "shape (0, 10, 3): it holds no pixels"),
    ("zero-width", ["zero_cols.zarr"], ["compress", "zero_cols.zarr"], "shape (10, 0, 3): it holds no pixels"),
    # a 4-D stack and a 1-D vector: not (rows, cols[, C])
    ("four-d", ["four_d.zarr"], ["compress", "four_d.zarr"], "shape (2, 6, 7, 3); expected (rows, cols)"),
    ("one-d", ["one_d.zarr"], ["compress", "one_d.zarr"], "shape (50,); expected (rows, cols)"),
    # NaN in a float32 image small enough to be sampled whole: caught by the sample check
    ("nan-float32", ["nan.zarr"], ["compress", "nan.zarr"], "NaN or inf"),
    # -inf in the last pixel of a float64 image
    ("neg-inf-float64", ["neginf.zarr"], ["compress", "neginf.zarr", "--method", "pixels"], "NaN or inf"),
    # one inf among 65536 pixels in 256 chunks: found by the first Lloyd pass if the sample missed it
    ("inf-tiff", ["inf.tif"], ["compress", "inf.tif", "--chunks", "16,16"], "1 pixels with NaN or inf"),
    # unsupported dtypes: complex, bool, zarr's variable-length strings (numpy's object-like StringDType)
    ("complex", ["complex.zarr"], ["compress", "complex.zarr"], "dtype complex64, which bigquant does not support"),
    ("bool", ["bool.zarr"], ["compress", "bool.zarr"], "dtype bool, which bigquant does not support"),
    ("strings", ["strings.zarr"], ["compress", "strings.zarr"], "which bigquant does not support"),
    # --- K and the other numbers (test_cli has K = 0, 65537, 2.5 and "many")
    # K below 1 and far above 65536
    ("k-negative", ["photo.png"], ["compress", "photo.png", "-k", "-1"], "K must be between 1 and 65536, got -1"),
    ("k-huge", ["photo.png"], ["compress", "photo.png", "-k", "100000"], "got 100000"),
    # K not a whole number: a fraction, nan, inf, nothing
    ("k-fraction", ["photo.png"], ["compress", "photo.png", "-k", "3.7"], "whole number"),
    ("k-nan", ["photo.png"], ["compress", "photo.png", "-k", "nan"], "whole number"),
    ("k-inf", ["photo.png"], ["compress", "photo.png", "-k", "inf"], "whole number"),
    ("k-empty", ["photo.png"], ["compress", "photo.png", "-k", ""], "whole number"),
    # a negative seed would reach numpy and scikit-learn as a ValueError (exit 1) without the check
    ("seed-negative", ["photo.png"], ["compress", "photo.png", "--seed", "-1"], "seed must be a whole number"),
    # --workers 0 used to be silently ignored
    ("workers-zero", ["photo.png"], ["compress", "photo.png", "--workers", "0"], "at least 1, got '0'"),
    # iteration count, tolerance, memory budget, pyramid level out of range
    ("max-iter-zero", ["photo.png"], ["compress", "photo.png", "--max-iter", "0"], "max_iter must be"),
    ("tol-negative", ["photo.png"], ["compress", "photo.png", "--tol", "-1"], "tol must be a number >= 0"),
    ("memory-junk", ["photo.png"], ["compress", "photo.png", "--memory-limit", "lots"], "memory limit 'lots'"),
    ("level-missing", ["photo.png"], ["compress", "photo.png", "--level", "2"], "level 2"),
    # a zstd level zstd does not have, refused before the fit (zstd itself would clamp it silently)
    (
        "labels-level",
        ["photo.png"],
        ["compress", "photo.png", "--labels-level", "23"],
        "labels zstd level must be a whole number from 1 to 22, got 23",
    ),
    # --- outputs that exist or cannot be written
    # the output exists as a file (test_cli has an existing folder)
    (
        "output-exists-file",
        ["photo.png", "exists.bq.zarr"],
        ["compress", "photo.png", "-o", "exists.bq.zarr"],
        "exists; pass --overwrite",
    ),
    # --overwrite replaces bigquant stores only: never an unrelated folder...
    (
        "overwrite-foreign-folder",
        ["photo.png", "folder.bq.zarr"],
        ["compress", "photo.png", "-o", "folder.bq.zarr", "--overwrite"],
        "is not a bigquant store",
    ),
    # ... nor the input itself
    (
        "overwrite-the-input",
        ["photo.png"],
        ["compress", "photo.png", "-o", "photo.png", "--overwrite"],
        "is not a bigquant store",
    ),
    # the output's folder does not exist
    (
        "output-folder-missing",
        ["photo.png"],
        ["compress", "photo.png", "-o", "nowhere/x.bq.zarr"],
        "folder 'nowhere' of output 'nowhere/x.bq.zarr' does not exist",
    ),
    # the output's "folder" is a file
    (
        "output-under-a-file",
        ["photo.png"],
        ["compress", "photo.png", "-o", "photo.png/x.bq.zarr"],
        "is a file, not a folder",
    ),
    # root may write anywhere by permission bits, but not into /proc: a real unwritable folder, refused
    # before any work (it used to fail with exit 1 after the whole k-means)
    (
        "output-folder-unwritable",
        ["photo.png"],
        ["compress", "photo.png", "-o", "/proc/x.bq.zarr"],
        "folder '/proc' of output '/proc/x.bq.zarr' is not writable",
    ),
    # the same for decode's output
    ("decode-unwritable", ["good.bq.zarr"], ["decode", "good.bq.zarr", "-o", "/proc/x.tif"], "is not writable"),
    # decode --overwrite replaces an image, never a folder that holds something else
    (
        "decode-overwrite-folder",
        ["good.bq.zarr", "folder.zarr"],
        ["decode", "good.bq.zarr", "-o", "folder.zarr", "--overwrite"],
        "is a folder that is not a zarr image",
    ),
    # unknown decode output extensions (test_cli has .webp): another one, and none at all
    ("decode-unknown-extension", ["good.bq.zarr"], ["decode", "good.bq.zarr", "-o", "r.bmp"], "extension '.bmp'"),
    ("decode-no-extension", ["good.bq.zarr"], ["decode", "good.bq.zarr", "-o", "recon"], "extension '(none)'"),
    # --- things that are not (complete, valid) bigquant stores
    # decode of an image file; info of a plain zarr group holding no image (info of a zarr image
    # array describes the image: tests/test_inputs.py)
    ("decode-a-png", ["photo.png"], ["decode", "photo.png", "-o", "r.tif"], "is not a bigquant store"),
    ("info-plain-group", ["plain_group.zarr"], ["info", "plain_group.zarr"], "holds no arrays"),
    # a store missing its labels (info), its codebook (decode)
    ("info-no-labels", ["no_labels.bq.zarr"], ["info", "no_labels.bq.zarr"], "has no 'labels' group"),
    (
        "decode-no-codebook",
        ["no_codebook.bq.zarr"],
        ["decode", "no_codebook.bq.zarr", "-o", "r.tif"],
        "has no 'codebook' array",
    ),
    # labels >= K can only be seen by reading them: decode checks every chunk and leaves no partial file
    (
        "decode-labels-beyond-k",
        ["labels_beyond_k.bq.zarr"],
        ["decode", "labels_beyond_k.bq.zarr", "-o", "r.tif"],
        "labels hold the value 9, but its codebook has only K=4",
    ),
    # the same into a Zarr output, whose chunks are written by parallel tasks: none may outlive the cleanup
    (
        "decode-labels-beyond-k-zarr",
        ["labels_beyond_k.bq.zarr"],
        ["decode", "labels_beyond_k.bq.zarr", "-o", "r.zarr"],
        "labels hold the value 9",
    ),
    # metadata K (5) disagrees with the codebook's 4 rows
    ("info-k-mismatch", ["k_mismatch.bq.zarr"], ["info", "k_mismatch.bq.zarr"], "codebook shape (4, 3) disagrees"),
    # a 4-channel codebook in an RGB store
    (
        "decode-codebook-channels",
        ["codebook_channels.bq.zarr"],
        ["decode", "codebook_channels.bq.zarr", "-o", "r.tif"],
        "codebook shape (4, 4) disagrees",
    ),
    # a store from a newer bigquant, through info and decode
    ("info-newer-version", ["newer.bq.zarr"], ["info", "newer.bq.zarr"], "format_version 99, newer than"),
    ("decode-newer-version", ["newer.bq.zarr"], ["decode", "newer.bq.zarr", "-o", "r.tif"], "upgrade bigquant"),
    # an interrupted write: the complete flag is false
    ("info-incomplete", ["incomplete.bq.zarr"], ["info", "incomplete.bq.zarr"], "is incomplete"),
    # a truncated labels chunk: zstd's error becomes "damaged" naming the rows and columns (was exit 1)
    (
        "decode-corrupt-chunk",
        ["corrupt_chunk.bq.zarr"],
        ["decode", "corrupt_chunk.bq.zarr", "-o", "r.tif"],
        "is damaged: labels",
    ),
    # a deleted labels chunk: zarr would silently read label 0 for all its pixels
    (
        "decode-missing-chunk",
        ["no_label_chunk.bq.zarr"],
        ["decode", "no_label_chunk.bq.zarr", "-o", "r.tif"],
        "1 of the 6 chunks of 'labels/0' are missing",
    ),
    # flipped bytes inside a chunk's zstd data: zstd's frame checksum fails, not wrong labels
    (
        "decode-flipped-chunk",
        ["flipped_chunk.bq.zarr"],
        ["decode", "flipped_chunk.bq.zarr", "-o", "r.tif"],
        "is damaged: labels",
    ),
    # unparsable labels/zarr.json (was exit 1)
    ("info-labels-metadata", ["labels_json.bq.zarr"], ["info", "labels_json.bq.zarr"], "is damaged"),
    # the codebook's chunk file is gone: zarr would silently read zeros
    (
        "info-codebook-data-missing",
        ["no_codebook_data.bq.zarr"],
        ["info", "no_codebook_data.bq.zarr"],
        "codebook data is missing",
    ),
    # --- memory bombs: refused from the header or the metadata, before any allocation
    # a PNG of a few dozen bytes whose IHDR claims 100000 x 100000 RGB (28 GiB)
    ("huge-png", ["huge.png"], ["compress", "huge.png"], "convert it to a tiled TIFF or Zarr"),
    # a JPEG whose frame header claims 60000 x 60000: Pillow's bomb guard, as a budget error
    ("huge-jpeg", ["huge.jpg"], ["compress", "huge.jpg"], "convert it to a tiled TIFF or Zarr"),
    # metadata claiming 10^18 pixels
    ("absurd-shape", ["absurd_shape.bq.zarr"], ["decode", "absurd_shape.bq.zarr", "-o", "r.tif"], "absurd shape"),
    # a plausible shape, but one 2^42-pixel labels chunk: reading it would allocate it whole
    (
        "absurd-chunks",
        ["absurd_chunks.bq.zarr"],
        ["decode", "absurd_chunks.bq.zarr", "-o", "r.tif"],
        "labels chunks (2097152, 2097152) are absurd",
    ),
]


@table(CASES)
def test_bad_input_one_line_exit_2_nothing_touched(
    tmp_path, monkeypatch, capsys, photo_array, template_store, case, make, argv, message
):
    if any(a.startswith("/proc/") for a in argv) and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    monkeypatch.chdir(tmp_path)
    for name in make:
        _make(name, tmp_path, photo_array, template_store)
    # stderr is no terminal here: the compact progress log of the steps done before the input
    # was found bad may come before the error line.
    refused(capsys, argv, tmp_path, message, case, progress_before=True)


# --- Cases that need more than one command line ------------------------------------------------


def test_k_above_distinct_colours_is_reduced_and_said_pixel_path(tmp_path, capsys):
    # tests/test_cli.py checks this for the histogram path; here the pixel path (a float image).
    img = np.zeros((30, 40, 3), np.float32)
    img[:, 20:] = [1.0, 0.5, 0.0]
    img[20:, :] = [0.0, 0.25, 1.0]
    zarr.create_array(str(tmp_path / "three.zarr"), data=img)
    assert main(["compress", str(tmp_path / "three.zarr"), "-k", "9", "-o", str(tmp_path / "t.bq.zarr")]) == 0
    cap = capsys.readouterr()
    assert "bigquant: warning: the image has only 3 distinct colours; K reduced from 9 to 3" in cap.err
    assert "K           3 (reduced from 9" in cap.out
    store = bigquant.open(tmp_path / "t.bq.zarr")
    assert store.metadata["k"] == 3 and store.metadata["k_requested"] == 9
    assert np.array_equal(store.reconstruct().compute(), img)
    assert main(["info", str(tmp_path / "t.bq.zarr")]) == 0
    assert "reduced from 9" in capsys.readouterr().out


def test_object_dtype_through_the_api_is_an_input_error(tmp_path):
    # zarr cannot store numpy object arrays, so this case goes through the Python API.
    with pytest.raises(InputError, match="dtype object, which bigquant does not support"):
        bigquant.compress(np.zeros((10, 10, 3), dtype=object), tmp_path / "o.bq.zarr")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_by_permissions(tmp_path, monkeypatch, capsys, photo_array):
    """A folder whose permission bits forbid writing. Root ignores the bits, so there os.access is
    made to say no (bigquant asks it first, then probes); as a user the folder is chmod 0o555."""
    iio.imwrite(tmp_path / "photo.png", photo_array)
    assert main(["compress", str(tmp_path / "photo.png"), "-k", "2", "-o", str(tmp_path / "s.bq.zarr"), "-q"]) == 0
    capsys.readouterr()
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != out_dir and real_access(p, mode))
    else:
        out_dir.chmod(0o555)
    try:
        for argv in (
            ["compress", str(tmp_path / "photo.png"), "-o", str(out_dir / "x.bq.zarr")],
            ["decode", str(tmp_path / "s.bq.zarr"), "-o", str(out_dir / "r.tif")],
        ):
            before = snapshot(tmp_path)
            assert main(argv) == 2
            line = error_line(capsys.readouterr().err, progress_before=True)
            assert f"folder '{out_dir}' of output" in line and "is not writable" in line
            assert snapshot(tmp_path) == before
    finally:
        out_dir.chmod(0o755)


def test_debug_shows_the_traceback(tmp_path, capsys):
    missing = str(tmp_path / "missing.png")
    for argv in (["--debug", "compress", missing], ["compress", missing, "--debug"], ["info", missing, "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert err.strip().splitlines()[-1].startswith("bigquant: error:")


def test_pillow_bomb_guard_is_never_disabled(tmp_path, photo_array):
    default = 1024 * 1024 * 1024 // 4 // 3  # Pillow's own default, 89478485 pixels
    assert Image.MAX_IMAGE_PIXELS == default  # importing bigquant left it alone
    iio.imwrite(tmp_path / "a.png", photo_array)
    Image.fromarray(photo_array).save(tmp_path / "a.jpg")
    _huge_png(tmp_path / "huge.png")
    _huge_jpeg(tmp_path / "huge.jpg", photo_array)
    for name in ("a.png", "a.jpg", "huge.png", "huge.jpg"):
        main(["compress", str(tmp_path / name), "-k", "2", "--max-iter", "1", "-q"])
    assert Image.MAX_IMAGE_PIXELS == default
    import warnings

    assert not [f for f in warnings.filters if f[2] is Image.DecompressionBombWarning and f[0] == "ignore"]
