"""Object storage: inputs and stores by URL, the commit protocol that needs no rename.

The commit protocol is tested on fsspec's ``memory://`` file system; the rest on a real S3 API
(moto's server on 127.0.0.1, a random port) with a real `dask scheduler` and two `dask worker`
processes, each worker in an empty working folder of its own: whatever they read or write goes
through the bucket.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import (
    blocks_image,
    dask_cluster,
    object_keys,
    one_line,
    upload_bucket_inputs,
    write_bucket_inputs,
)

import bigquant
import bigquant.io
from bigquant import store as bq_store
from bigquant._objstore import Location
from bigquant.cli import main
from bigquant.errors import InputError, OutputError, StoreFormatError

ROOT = Path(__file__).resolve().parents[1]


def _root(fs, path: str) -> dict:
    fs.invalidate_cache()
    return json.loads(fs.cat_file(f"{path}/zarr.json"))


# --- the commit protocol, on memory:// --------------------------------------------------------------


@pytest.fixture
def mem():
    """A fresh prefix of fsspec's in-process memory file system, removed afterwards."""
    import fsspec

    fs = fsspec.filesystem("memory")
    prefix = f"/bq-{uuid.uuid4().hex[:8]}"
    fs.mkdir(prefix)
    yield fs, prefix
    fs.rm(prefix, recursive=True)


@pytest.mark.parametrize(
    ("photometric", "planar", "channels"),
    [
        # RGB as three planes: the source's channel axis comes first and is moved last.
        ("rgb", "separate", 3),
        # Greyscale: the source has no channel axis; a length-1 one is added.
        ("minisblack", None, 1),
    ],
)
def test_a_remote_tiff_in_strips_reads_as_the_local_one(mem, tmp_path, photometric, planar, channels):
    fs, prefix = mem
    img = blocks_image()[:, :, :channels]
    data = np.moveaxis(img, 2, 0) if planar else img[:, :, 0]
    tifffile.imwrite(tmp_path / "s.tif", data, photometric=photometric, planarconfig=planar, rowsperstrip=16)
    fs.pipe_file(f"{prefix}/s.tif", (tmp_path / "s.tif").read_bytes())  # strips: read through tifffile's store
    remote = bigquant.read_image(f"memory://{prefix}/s.tif", chunks=(48, 80))
    assert remote.shape == img.shape
    np.testing.assert_array_equal(remote.compute(), img)
    np.testing.assert_array_equal(remote.compute(), bigquant.read_image(tmp_path / "s.tif").compute())


@pytest.mark.parametrize(
    ("byteorder", "bigtiff"),
    [
        # Classic little-endian TIFF: 32-bit tile offsets.
        ("<", False),
        # Big-endian BigTIFF: 64-bit offsets in the other byte order.
        (">", True),
    ],
)
def test_a_remote_tiled_tiffs_tasks_read_their_own_tile_offsets(mem, tmp_path, byteorder, bigtiff):
    """The graph carries where the tile tables lie, not the tables: its size does not grow with
    the number of tiles (a 100 Gpx file in 256-pixel tiles has 24 MB of them)."""
    import pickle

    fs, prefix = mem
    img = np.concatenate([blocks_image()] * 2, axis=1)  # 192 x 256
    graphs = {}
    for tile in (16, 64):
        name = f"t{tile}.tif"
        tifffile.imwrite(
            tmp_path / name, img, tile=(tile, tile), compression="zlib", photometric="rgb",
            byteorder=byteorder, bigtiff=bigtiff,
        )  # fmt: skip
        fs.pipe_file(f"{prefix}/{name}", (tmp_path / name).read_bytes())
        remote = bigquant.read_image(f"memory://{prefix}/{name}", chunks=(96, 128))
        np.testing.assert_array_equal(remote.compute(), img)
        graphs[tile] = len(pickle.dumps(dict(remote.__dask_graph__())))
    assert abs(graphs[16] - graphs[64]) < 256  # 16x as many tiles, the same graph


@pytest.mark.parametrize(
    ("data", "said"),
    [
        # No bytes at all: the same line as for an empty local file.
        (b"", "is empty (0 bytes)"),
        # Bytes of no format bigquant reads.
        (b"hello, world\n", "is not an image bigquant can read: its content is none of TIFF"),
    ],
)
def test_a_remote_object_of_no_known_kind_is_one_input_error(mem, data, said):
    fs, prefix = mem
    fs.pipe_file(f"{prefix}/x.tif", data)
    with pytest.raises(InputError, match=re.escape(f"input 'memory://{prefix}/x.tif' {said}")):
        bigquant.io.inspect(f"memory://{prefix}/x.tif")


def test_memory_store_equals_local_one(mem, tmp_path):
    fs, prefix = mem
    img = blocks_image()
    tifffile.imwrite(tmp_path / "a.tif", img, tile=(64, 64), compression="zlib", photometric="rgb")
    fs.pipe_file(f"{prefix}/a.tif", (tmp_path / "a.tif").read_bytes())
    local = bigquant.compress(tmp_path / "a.tif", tmp_path / "a.bq.zarr", k=6, chunks=(64, 64))
    remote = bigquant.compress(f"memory://{prefix}/a.tif", f"memory://{prefix}/a.bq.zarr", k=6, chunks=(64, 64))
    assert np.array_equal(remote.codebook, local.codebook)
    assert np.array_equal(remote.labels.compute(), local.labels.compute())
    # The same keys as the local store's files, hidden staging names aside.
    files = {p.relative_to(tmp_path / "a.bq.zarr").as_posix() for p in (tmp_path / "a.bq.zarr").rglob("*")}
    assert object_keys(fs, f"{prefix}/a.bq.zarr") == {f for f in files if (tmp_path / "a.bq.zarr" / f).is_file()}
    # The root consolidates every node, so plain zarr opens it without listing.
    assert set(_root(fs, f"{prefix}/a.bq.zarr")["consolidated_metadata"]["metadata"]) >= {
        "codebook",
        "labels",
        "labels/0",
    }


def test_unfinished_store_is_refused_and_replaced_by_the_next_run(mem):
    fs, prefix = mem
    url = f"memory://{prefix}/s.bq.zarr"
    img = blocks_image()
    # A run that died while writing: the writer was set up (chunks written) but never committed.
    writer = bq_store.StoreWriter(Location(url), img.shape, (32, 32), 6)
    zarr.open_array(f"{url}/labels/0", mode="r+")[:32, :32] = 1
    assert _root(fs, f"{prefix}/s.bq.zarr")["attributes"]["bigquant"]["complete"] is False
    with pytest.raises(StoreFormatError, match="incomplete|complete"):
        bq_store.open(Location(url))
    del writer
    # The next run writes there without --overwrite, and nothing of the dead run's survives.
    done = bigquant.compress(img, url, k=6, chunks=(64, 64))
    fresh = bigquant.compress(img, f"memory://{prefix}/fresh.bq.zarr", k=6, chunks=(64, 64))
    assert object_keys(fs, f"{prefix}/s.bq.zarr") == object_keys(fs, f"{prefix}/fresh.bq.zarr")
    assert np.array_equal(done.labels.compute(), fresh.labels.compute())


def test_overwrite_on_object_storage(mem):
    fs, prefix = mem
    url = f"memory://{prefix}/o.bq.zarr"
    img = blocks_image()
    bigquant.compress(img, url, k=6, chunks=(32, 32))
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        bigquant.compress(img, url, k=4)
    new = bigquant.compress(img, url, k=4, chunks=(128, 128), overwrite=True)
    assert new.k == 4 and bq_store.open(Location(url)).k == 4
    # Old chunks (32 x 32) are gone: only the new store's keys are there.
    bigquant.compress(img, f"memory://{prefix}/n.bq.zarr", k=4, chunks=(128, 128))
    assert object_keys(fs, f"{prefix}/o.bq.zarr") == object_keys(fs, f"{prefix}/n.bq.zarr")
    # Something else under the prefix is never replaced, --overwrite or not.
    fs.pipe_file(f"{prefix}/other/data.bin", b"x")
    with pytest.raises(OutputError, match="not a bigquant store"):
        bigquant.compress(img, f"memory://{prefix}/other", k=4, overwrite=True)
    assert fs.cat_file(f"{prefix}/other/data.bin") == b"x"


def test_an_output_url_inside_an_input_url_is_refused(mem):
    fs, prefix = mem
    img = blocks_image()
    zarr.create_array(f"memory://{prefix}/img.zarr", shape=img.shape, chunks=(64, 64, 3), dtype=img.dtype)[...] = img
    with pytest.raises(OutputError, match="lies inside the input"):
        bigquant.compress(f"memory://{prefix}/img.zarr", f"memory://{prefix}/img.zarr/x.bq.zarr", k=4)
    assert not fs.exists(f"{prefix}/img.zarr/x.bq.zarr")
    store = bigquant.compress(img, f"memory://{prefix}/s.bq.zarr", k=4)
    with pytest.raises(OutputError, match="lies inside the input"):
        bigquant.decode(store, f"memory://{prefix}/s.bq.zarr/labels/r.zarr")


def test_failed_run_removes_what_it_wrote(mem):
    fs, prefix = mem
    url = f"memory://{prefix}/f.bq.zarr"
    img = blocks_image()

    def fail(block):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with bq_store.StoreWriter(Location(url), img.shape, (64, 64), 6) as w:
            import dask.array as da

            w.write_labels(da.from_array(img, chunks=(64, 64, 3)), fail, (), 9, sum)
    assert not fs.exists(f"{prefix}/f.bq.zarr/zarr.json")


# --- S3 on loopback, with a real cluster ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (random port) holding a TIFF and a Zarr array of one image."""
    server_mod = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    # The server logs every request at INFO; pytest would capture and format thousands of them.
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    opts = {
        "endpoint_url": f"http://{host}:{port}",
        "key": "bq-test",
        "secret": "bq-test-secret",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    boto3 = pytest.importorskip("boto3")
    boto3.client(
        "s3", endpoint_url=opts["endpoint_url"], aws_access_key_id=opts["key"], aws_secret_access_key=opts["secret"],
        region_name="us-east-1",
    ).create_bucket(Bucket="bq-test")  # fmt: skip
    fs = s3fs.S3FileSystem(**opts)
    d = write_bucket_inputs(tmp_path_factory.mktemp("s3-inputs"))
    upload_bucket_inputs(fs, "bq-test", d)
    yield {"opts": opts, "fs": fs, "local": d, "json": json.dumps(opts)}
    server.stop()
    quiet.setLevel(level)


@pytest.fixture(scope="module")
def s3_cluster(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("s3-cluster"), n_workers=2, own_folders=True) as c:
        yield c


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["slide.tif", "img.zarr"])  # ranged TIFF tiles; zarr's fsspec store
def test_bucket_input_and_store_on_a_cluster_match_a_local_run(s3, s3_cluster, tmp_path, name):
    local = bigquant.compress(s3["local"] / name, tmp_path / "local.bq.zarr", k=6, chunks=(128, 128))
    url = f"s3://bq-test/{name}.bq.zarr"
    with s3_cluster.client() as client:
        with client.as_current():
            remote = bigquant.compress(
                f"s3://bq-test/{name}", url, k=6, chunks=(128, 128), storage_options=s3["opts"], overwrite=True
            )
            if name == "img.zarr":  # decode by URL on the cluster too: the workers write the chunks
                for out in ("out.zarr", "out.ome.zarr"):
                    bigquant.decode(url, f"s3://bq-test/{out}", storage_options=s3["opts"], overwrite=True)
    assert np.array_equal(remote.codebook, local.codebook)
    assert np.array_equal(remote.labels.compute(), local.labels.compute())
    assert remote.metadata["source_path"] == f"s3://bq-test/{name}"
    # Plain zarr opens the bucket's store and decodes it.
    g = zarr.open_group(url, mode="r", storage_options=s3["opts"])
    assert g.attrs["bigquant"]["complete"] is True
    decoded = np.asarray(g["codebook"][...])[np.asarray(g["labels/0"][...])]
    assert np.array_equal(decoded, local.reconstruct().compute())
    if name == "img.zarr":
        out = zarr.open_array("s3://bq-test/out.zarr", mode="r", storage_options=s3["opts"])[...]
        ome = zarr.open_group("s3://bq-test/out.ome.zarr", mode="r", storage_options=s3["opts"])
        assert np.array_equal(out, decoded) and np.array_equal(np.moveaxis(ome["0"][...], 0, -1), decoded)


def test_missing_bucket_object_and_credentials_are_one_line_exit_2(s3, tmp_path, capsys):
    opts = ["--storage-options", s3["json"], "-q"]
    assert main(["compress", "s3://no-such-bucket/x.tif", "-o", str(tmp_path / "x.bq.zarr"), *opts]) == 2
    assert "not found" in one_line(capsys.readouterr().err)
    assert main(["compress", "s3://bq-test/missing.tif", "-o", str(tmp_path / "x.bq.zarr"), *opts]) == 2
    assert "not found" in one_line(capsys.readouterr().err)
    assert main(["compress", str(s3["local"] / "slide.tif"), "-o", "s3://no-such-bucket/x.bq.zarr", *opts]) == 2
    assert "bucket 'no-such-bucket'" in one_line(capsys.readouterr().err)
    # No credentials anywhere: not in the options, the environment or a config file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    env["PYTHONPATH"] = str(ROOT)
    bare = json.dumps({"endpoint_url": s3["opts"]["endpoint_url"]})
    proc = subprocess.run(
        [sys.executable, "-m", "bigquant.cli", "compress", "s3://bq-test/slide.tif", "-o", str(tmp_path / "y.bq.zarr")]
        + ["--storage-options", bare, "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "credentials" in one_line(proc.stderr)


@pytest.mark.timeout(180)
def test_killed_mid_write_leaves_no_complete_store_and_the_rerun_succeeds(s3, tmp_path):
    fs, url = s3["fs"], "s3://bq-test/killed.bq.zarr"
    argv = ["compress", "s3://bq-test/slide.tif", "-o", url, "-k", "6", "--chunks", "64,64", "-q"]
    argv += ["--storage-options", s3["json"]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bigquant.cli", *argv], env=env, start_new_session=True)
    try:
        end = time.monotonic() + 120
        while not any(k.startswith("labels/0/c/") for k in object_keys(fs, "bq-test/killed.bq.zarr")):
            assert proc.poll() is None, "bigquant finished before it could be killed while writing"
            assert time.monotonic() < end, "bigquant never started writing"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert _root(fs, "bq-test/killed.bq.zarr")["attributes"]["bigquant"]["complete"] is False
    with pytest.raises(StoreFormatError):
        bq_store.open(Location(url, s3["opts"]))
    assert main(argv) == 0  # no --overwrite needed to replace a dead run's store
    done = bq_store.open(Location(url, s3["opts"]))
    assert done.metadata["complete"] is True and done.k == 6


@pytest.mark.timeout(240)
def test_worker_killed_mid_job_changes_nothing(s3, s3_cluster, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    fs = s3["fs"]
    # The reference: the same image read locally (a bucket input gives the same labels: tested above).
    alone = bigquant.compress(s3["local"] / "slide.tif", tmp_path / "alone.bq.zarr", k=6, chunks=(64, 64))
    victim, victim_pid = sorted(s3_cluster.worker_pids().items())[0]

    def job():  # the client in a thread of this process: only the worker is killed
        with s3_cluster.client() as client, client.as_current():
            return bigquant.compress(
                "s3://bq-test/slide.tif", "s3://bq-test/hit.bq.zarr", k=6, chunks=(64, 64), storage_options=s3["opts"]
            )

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(job)
        end = time.monotonic() + 120
        while not any(k.startswith("labels/0/c/") for k in object_keys(fs, "bq-test/hit.bq.zarr")):
            assert not running.done() and time.monotonic() < end, "the job ended before any label was written"
            time.sleep(0.1)
        os.kill(victim_pid, signal.SIGKILL)  # the worker itself; its nanny starts a new one
        running.result(timeout=180)
    hit = bq_store.open(Location("s3://bq-test/hit.bq.zarr", s3["opts"]))
    assert np.array_equal(alone.codebook, hit.codebook)
    assert np.array_equal(alone.labels.compute(), hit.labels.compute())
    assert victim_pid not in s3_cluster.worker_pids().values()


def test_http_input_reads_tiles_by_range(s3):
    # The bucket's objects are also plain HTTP URLs on moto: fsspec's HTTP file system reads the
    # header and then each tile with a Range request, as it would over https://.
    url = f"{s3['opts']['endpoint_url']}/bq-test/slide.tif"
    # A private object: the anonymous request is denied, in one line.
    with pytest.raises(InputError, match="access denied") as denied:
        bigquant.read_image(url)
    assert "\n" not in str(denied.value)
    boto3 = pytest.importorskip("boto3")
    boto3.client(
        "s3", endpoint_url=s3["opts"]["endpoint_url"], aws_access_key_id=s3["opts"]["key"],
        aws_secret_access_key=s3["opts"]["secret"], region_name="us-east-1",
    ).put_object_acl(Bucket="bq-test", Key="slide.tif", ACL="public-read")  # fmt: skip
    local = bigquant.read_image(s3["local"] / "slide.tif", chunks=(128, 128)).compute()
    assert np.array_equal(bigquant.read_image(url, chunks=(128, 128)).compute(), local)
    with pytest.raises(OutputError, match="read-only"):
        bigquant.compress(local, f"{s3['opts']['endpoint_url']}/bq-test/x.bq.zarr", k=4)


# --- decode and info of a store in the bucket; decode to the bucket --------------------------------


@pytest.fixture(scope="module")
def bucket_store(s3, tmp_path_factory):
    """A store compressed locally from the bucket's TIFF, and the same files copied to the bucket;
    with its local decodes to Zarr, OME-Zarr and TIFF to compare with."""
    d = tmp_path_factory.mktemp("bucket-store")
    local = bigquant.compress(s3["local"] / "slide.tif", d / "s.bq.zarr", k=6, chunks=(128, 128))
    s3["fs"].put(str(d / "s.bq.zarr"), "bq-test/copy.bq.zarr", recursive=True)
    for name in ("r.zarr", "r.ome.zarr", "r.tif"):
        bigquant.decode(local, d / name)
    return {"local": local, "dir": d, "url": "s3://bq-test/copy.bq.zarr"}


def test_info_and_decode_of_a_bucket_store_equal_the_local_ones(s3, bucket_store, tmp_path, capsys):
    local, url, opts = bucket_store["local"], bucket_store["url"], ["--storage-options", s3["json"]]
    assert main(["info", str(local.path), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert main(["info", url, "--json", *opts]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got.pop("path") == url and want.pop("path") == str(local.path)
    assert got == want  # store_bytes included: the listing sums the same objects
    assert main(["decode", url, "-o", str(tmp_path / "r.tif"), "-q", *opts]) == 0
    assert np.array_equal(tifffile.imread(tmp_path / "r.tif"), tifffile.imread(bucket_store["dir"] / "r.tif"))
    opened = bigquant.open_store(url, storage_options=s3["opts"])
    assert np.array_equal(opened.reconstruct().compute(), local.reconstruct().compute())
    assert [x.shape for x in opened.levels] == [x.shape for x in local.levels]


def test_decode_to_the_bucket_opens_with_plain_zarr_and_equals_the_local_decode(s3, bucket_store, capsys):
    fs, d, opts = s3["fs"], bucket_store["dir"], s3["opts"]
    base = ["decode", bucket_store["url"], "-q", "--storage-options", s3["json"]]
    for name in ("r.zarr", "r.ome.zarr", "r.tif"):
        assert main([*base, "-o", f"s3://bq-test/out/{name}"]) == 0, capsys.readouterr().err
    got = zarr.open_array("s3://bq-test/out/r.zarr", mode="r", storage_options=opts)
    assert np.array_equal(got[...], zarr.open_array(d / "r.zarr", mode="r")[...])
    remote, here = (
        zarr.open_group("s3://bq-test/out/r.ome.zarr", mode="r", storage_options=opts),
        zarr.open_group(d / "r.ome.zarr", mode="r"),
    )
    assert remote.attrs.asdict() == here.attrs.asdict() and "bigquant" not in remote.attrs
    levels = [d["path"] for d in here.attrs["ome"]["multiscales"][0]["datasets"]]
    for key in [*levels, "labels/quantized/0"]:
        assert np.array_equal(remote[key][...], here[key][...]), key
    assert np.array_equal(tifffile.imread(fs.open("bq-test/out/r.tif")), tifffile.imread(d / "r.tif"))
    # An existing output needs --overwrite; with it, the same keys again (the old ones deleted).
    assert main([*base, "-o", "s3://bq-test/out/r.zarr"]) == 2
    assert "pass --overwrite" in one_line(capsys.readouterr().err)
    before = object_keys(fs, "bq-test/out/r.zarr")
    assert main([*base, "-o", "s3://bq-test/out/r.zarr", "--overwrite"]) == 0
    assert object_keys(fs, "bq-test/out/r.zarr") == before


def test_an_unfinished_decode_in_the_bucket_is_no_zarr_and_the_next_one_replaces_it(s3, bucket_store):
    from bigquant._objstore import RemoteStaging

    url, opts = "s3://bq-test/out/dead.zarr", s3["opts"]
    RemoteStaging(Location(url, opts), overwrite=False)  # a decode killed after its first PUT
    s3["fs"].pipe_file("bq-test/out/dead.zarr/c/0/0/0", b"stale chunk")
    with pytest.raises(zarr.errors.NodeTypeValidationError):  # the placeholder root is a group
        zarr.open_array(url, mode="r", storage_options=opts)
    bigquant.decode(bucket_store["url"], url, storage_options=opts)  # no overwrite needed
    assert np.array_equal(
        zarr.open_array(url, mode="r", storage_options=opts)[...],
        zarr.open_array(bucket_store["dir"] / "r.zarr", mode="r")[...],
    )


def test_decode_and_info_errors_on_object_storage_are_one_line_exit_2(s3, bucket_store, tmp_path, capsys):
    opts = ["--storage-options", s3["json"], "-q"]
    out = ["-o", str(tmp_path / "x.tif")]
    cases = [
        (["decode", "s3://no-such-bucket/x.bq.zarr", *out], "does not exist"),
        (["decode", "s3://bq-test/missing.bq.zarr", *out], "does not exist"),
        (["decode", "s3://bq-test/slide.tif", *out], "not a bigquant store"),
        (["decode", "s3://bq-test/img.zarr", *out], "not a bigquant store"),
        (["info", "s3://bq-test/missing.bq.zarr"], "not found"),
        (["decode", bucket_store["url"], "-o", "s3://no-such-bucket/x.zarr"], "bucket 'no-such-bucket'"),
        (["decode", bucket_store["url"], "-o", f"{bucket_store['url']}/labels/x.zarr"], "lies inside the input"),
        (["decode", bucket_store["url"], "-o", "s3://bq-test/junk.tif", "--overwrite"], "holds keys, not one file"),
        (["decode", bucket_store["url"], "-o", "s3://bq-test/junk.zarr", "--overwrite"], "not a Zarr"),
    ]
    s3["fs"].pipe_file("bq-test/junk.zarr/data.bin", b"x")
    s3["fs"].pipe_file("bq-test/junk.tif/data.bin", b"x")
    for argv, words in cases:
        assert main([*argv, *opts] if argv[0] == "decode" else [*argv, opts[0], opts[1]]) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert re.search(words, line), (argv, line)
    assert s3["fs"].cat_file("bq-test/junk.zarr/data.bin") == s3["fs"].cat_file("bq-test/junk.tif/data.bin") == b"x"
    # A private store read anonymously over HTTP: denied, in one line.
    assert main(["info", f"{s3['opts']['endpoint_url']}/bq-test/copy.bq.zarr"]) == 2
    assert "access denied" in one_line(capsys.readouterr().err)
