"""Static and smoke checks for the deployment recipes under cluster/.

Nothing here needs a real cluster, SLURM, Docker or Kubernetes, and
dask-jobqueue does not have to be installed: the SLURM launcher is driven with a
stand-in SLURMCluster built on distributed.LocalCluster.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
PLAIN = CLUSTER / "plain"
SLURM = CLUSTER / "slurm"
K8S = CLUSTER / "kubernetes"

YAML_FILES = sorted([*CLUSTER.rglob("*.yaml"), *CLUSTER.rglob("*.yml")])
SH_FILES = sorted(CLUSTER.rglob("*.sh"))
README_FILES = sorted(CLUSTER.rglob("README.md"))

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash not available")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --------------------------------------------------------------------------- YAML


def test_recipe_files_exist():
    # The layout the READMEs describe; a rename must update both.
    for p in (
        CLUSTER / "README.md",
        PLAIN / "README.md",
        PLAIN / "start-scheduler.sh",
        PLAIN / "start-worker.sh",
        SLURM / "README.md",
        SLURM / "launch.py",
        K8S / "README.md",
        K8S / "daskcluster.yaml",
        K8S / "Dockerfile",
    ):
        assert p.is_file(), f"missing {_rel(p)}"


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_parses_into_kubernetes_objects(path):
    # One case per YAML file under cluster/, so a new manifest is checked as soon
    # as it is added: valid YAML, and each document a k8s object (apiVersion/kind/metadata.name).
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{_rel(path)} holds no documents"
    for d in docs:
        assert isinstance(d, dict)
        assert d.get("apiVersion") and d.get("kind"), d
        assert d.get("metadata", {}).get("name"), d


def _k8s_docs():
    return [d for d in yaml.safe_load_all((K8S / "daskcluster.yaml").read_text()) if d]


def _daskcluster():
    found = [d for d in _k8s_docs() if d.get("kind") == "DaskCluster"]
    assert len(found) == 1, "daskcluster.yaml must define exactly one DaskCluster"
    return found[0]


def _pod_spec(role):
    return _daskcluster()["spec"][role]["spec"]


def _container(role):
    containers = _pod_spec(role)["containers"]
    by_name = {c["name"]: c for c in containers}
    # the operator's conventions: the Dask container is named after its role
    assert role in by_name, f"no container named {role!r} in {role} spec"
    return by_name[role]


def test_daskcluster_kind_apiversion_replicas():
    dc = _daskcluster()
    assert dc["apiVersion"] == "kubernetes.dask.org/v1"
    assert dc["kind"] == "DaskCluster"
    replicas = dc["spec"]["worker"]["replicas"]
    assert isinstance(replicas, int) and replicas >= 1


@pytest.mark.parametrize(
    "role",
    [
        # the scheduler pod is where `kubectl exec ... bigquant compress` runs, so it
        # needs the bigquant image and the shared /data volume too
        "scheduler",
        # workers read the input and write the store by path under /data
        "worker",
    ],
)
def test_role_uses_bigquant_image_and_shared_data_volume(role):
    c = _container(role)
    assert "bigquant" in c["image"], c["image"]
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    assert "/data" in mounts, f"{role}: /data not mounted"
    volumes = {v["name"]: v for v in _pod_spec(role).get("volumes", [])}
    vol = volumes[mounts["/data"]]
    claim = vol["persistentVolumeClaim"]["claimName"]
    pvcs = {d["metadata"]["name"]: d for d in _k8s_docs() if d["kind"] == "PersistentVolumeClaim"}
    assert claim in pvcs, f"{role}: /data claim {claim!r} not defined in daskcluster.yaml"
    # shared between pods on different nodes -> must be ReadWriteMany
    assert "ReadWriteMany" in pvcs[claim]["spec"]["accessModes"]


def test_scheduler_and_worker_share_one_image():
    # versions must match between scheduler and workers; one image guarantees it
    assert _container("scheduler")["image"] == _container("worker")["image"]


def test_container_commands_use_dask_cli():
    # distributed 2026 ships only the `dask` entry point (no dask-worker/dask-scheduler scripts)
    assert _container("scheduler")["args"][:2] == ["dask", "scheduler"]
    wargs = _container("worker")["args"]
    assert wargs[:2] == ["dask", "worker"]
    assert "$(DASK_WORKER_NAME)" in wargs  # injected by the operator


def test_scheduler_service_ports():
    svc = _daskcluster()["spec"]["scheduler"]["service"]
    ports = {p["name"]: p["port"] for p in svc["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    cports = {p["name"]: p["containerPort"] for p in _container("scheduler")["ports"]}
    assert cports["tcp-comm"] == 8786 and cports["http-dashboard"] == 8787
    assert svc["selector"]["dask.org/cluster-name"] == _daskcluster()["metadata"]["name"]


# ------------------------------------------------------------------------- shell


def test_shell_scripts_found():
    # guards the parametrized tests below against silently running zero cases
    assert {p.name for p in SH_FILES} >= {"start-scheduler.sh", "start-worker.sh"}


@needs_bash
@pytest.mark.parametrize("path", SH_FILES, ids=_rel)
def test_shell_script_syntax_and_strict_mode(path):
    # One case per .sh under cluster/: `bash -n` syntax check, strict mode, and the
    # executable bit (the READMEs run them as cluster/plain/start-*.sh).
    r = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    assert os.access(path, os.X_OK), f"{_rel(path)} is not executable"


def _dry_run(script, args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIGQUANT_", "DASK_SCHEDULER"))}
    env.update(env_extra or {})
    return subprocess.run(
        [BASH, str(PLAIN / script), "--dry-run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


@needs_bash
@pytest.mark.parametrize(
    "script, args, env, expected",
    [
        # scheduler defaults match the ports the READMEs and the k8s Service use
        ("start-scheduler.sh", [], {}, "dask scheduler --port 8786 --dashboard-address :8787"),
        # environment variables are the documented alternative to options
        (
            "start-scheduler.sh",
            [],
            {"BIGQUANT_SCHEDULER_PORT": "9999"},
            "dask scheduler --port 9999 --dashboard-address :8787",
        ),
        # anything after `--` goes to dask unchanged
        (
            "start-scheduler.sh",
            ["--", "--idle-timeout", "1h"],
            {},
            "dask scheduler --port 8786 --dashboard-address :8787 --idle-timeout 1h",
        ),
        # the README's worker example: address + nthreads + memory limit + local directory
        (
            "start-worker.sh",
            ["tcp://sched:8786", "--nthreads", "8", "--memory-limit", "16GiB", "--local-directory", "/local/scratch"],
            {},
            "dask worker tcp://sched:8786 --nworkers 1 --memory-limit 16GiB --nthreads 8 "
            "--local-directory /local/scratch",
        ),
        # DASK_SCHEDULER_ADDRESS replaces the positional address, as in the top README
        (
            "start-worker.sh",
            [],
            {"DASK_SCHEDULER_ADDRESS": "tcp://h:8786"},
            "dask worker tcp://h:8786 --nworkers 1 --memory-limit auto",
        ),
        # a scheduler file on a shared file system instead of an address
        (
            "start-worker.sh",
            ["--scheduler-file", "/shared/s.json"],
            {},
            "dask worker --scheduler-file /shared/s.json --nworkers 1 --memory-limit auto",
        ),
    ],
)
def test_script_dry_run_builds_dask_command(script, args, env, expected):
    r = _dry_run(script, args, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == expected.split()


@needs_bash
@pytest.mark.parametrize(
    "script, args",
    [
        # a worker without any scheduler address must fail loudly, not hang
        ("start-worker.sh", []),
        # an option missing its value must not swallow the next option
        ("start-worker.sh", ["tcp://h:8786", "--nthreads"]),
        # typos are errors, not silently ignored
        ("start-scheduler.sh", ["--prot", "1"]),
    ],
)
def test_script_usage_errors_exit_2(script, args):
    r = _dry_run(script, args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr


# ------------------------------------------------------------------ SLURM launcher


@pytest.fixture
def launch(monkeypatch):
    """cluster/slurm/launch.py loaded as a module, with dask_jobqueue made unimportable
    (so the test proves the module-level import does not need it)."""
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    spec = importlib.util.spec_from_file_location("bigquant_cluster_slurm_launch", SLURM / "launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SAMPLE_ARGV = [
    "/shared/in.tif",
    "-o",
    "/shared/out.bq.zarr",
    "-k",
    "16",
    "--seed",
    "3",
    "--partition",
    "compute",
    "--account",
    "proj",
    "--cores",
    "16",
    "--memory",
    "64GiB",
    "--processes",
    "2",
    "--walltime",
    "02:00:00",
    "--jobs",
    "4",
    "--local-directory",
    "$TMPDIR",
    "--job-extra-directive=--qos=long",
    "--prologue",
    "source /shared/venv/bin/activate",
]


def test_launch_parses_sample_argv(launch):
    args = launch.build_parser().parse_args(SAMPLE_ARGV)
    assert (args.input, args.output, args.k, args.seed) == ("/shared/in.tif", "/shared/out.bq.zarr", 16, 3)
    assert (args.queue, args.account, args.cores, args.memory) == ("compute", "proj", 16, "64GiB")
    assert (args.processes, args.walltime, args.jobs) == (2, "02:00:00", 4)
    assert args.job_extra_directives == ["--qos=long"]


def test_launch_cluster_kwargs_match_slurmcluster_names(launch):
    kw = launch.cluster_kwargs(launch.build_parser().parse_args(SAMPLE_ARGV))
    assert kw == {
        "cores": 16,
        "memory": "64GiB",
        "processes": 2,
        "walltime": "02:00:00",
        "queue": "compute",
        "account": "proj",
        "local_directory": "$TMPDIR",
        "job_extra_directives": ["--qos=long"],
        "job_script_prologue": ["source /shared/venv/bin/activate"],
        "scheduler_options": {"dashboard_address": ":8787"},
    }


@pytest.mark.parametrize(
    "argv, expected",
    [
        # the documented default call: compress(in, out, k=32), nothing else
        (["/i.tif", "-o", "/o.bq.zarr"], {"k": 32}),
        # --seed/--overwrite are forwarded only when given
        (
            ["/i.tif", "-o", "/o.bq.zarr", "-k", "8", "--seed", "0", "--overwrite"],
            {"k": 8, "seed": 0, "overwrite": True},
        ),
    ],
)
def test_launch_compress_kwargs(launch, argv, expected):
    assert launch.compress_kwargs(launch.build_parser().parse_args(argv)) == expected


@pytest.mark.parametrize(
    "argv",
    [
        # compress mode needs both paths
        ["/i.tif"],
        # --print-address mode must not silently ignore paths
        ["--print-address", "/i.tif", "-o", "/o.bq.zarr"],
        # threads per process = cores / processes must be whole
        ["/i.tif", "-o", "/o", "--cores", "6", "--processes", "4"],
        # zero jobs would wait for workers forever
        ["/i.tif", "-o", "/o", "--jobs", "0"],
    ],
)
def test_launch_rejects_bad_argv(launch, argv, capsys):
    with pytest.raises(SystemExit) as e:
        launch.main(argv)
    assert e.value.code == 2


def test_launch_main_without_dask_jobqueue_returns_2(launch, capsys):
    assert launch.main(["/i.tif", "-o", "/o.bq.zarr"]) == 2
    assert "pip install dask-jobqueue" in capsys.readouterr().err


def _fake_jobqueue(record):
    """A dask_jobqueue stand-in whose SLURMCluster is an in-process LocalCluster."""
    from distributed import LocalCluster

    class FakeSLURMCluster(LocalCluster):
        def __init__(self, **kwargs):
            record["cluster_kwargs"] = kwargs
            super().__init__(n_workers=0, processes=False, threads_per_worker=1, dashboard_address=":0")

        def scale(self, n=0, jobs=0, **kw):
            # LocalCluster calls scale(n) itself (e.g. on close); the launcher uses jobs=
            record.setdefault("scale_jobs", []).append(jobs)
            return super().scale(jobs or n)

        def job_script(self):
            return "#!/usr/bin/env bash\n#SBATCH -J dask-worker\n"

    return types.SimpleNamespace(SLURMCluster=FakeSLURMCluster)


def test_launch_main_runs_compress_on_the_cluster(launch, monkeypatch):
    record = {}

    def compress(input_path, output_path, **kwargs):
        from distributed import get_client

        client = get_client()  # compress must see the launcher's Client as current
        record["compress"] = (input_path, output_path, kwargs)
        record["n_workers"] = len(client.nthreads())
        record["sum"] = client.submit(sum, [1, 2, 3]).result()

    monkeypatch.setitem(sys.modules, "dask_jobqueue", _fake_jobqueue(record))
    monkeypatch.setitem(sys.modules, "bigquant", types.SimpleNamespace(compress=compress))
    rc = launch.main(
        [
            "/shared/in.tif",
            "-o",
            "/shared/out.bq.zarr",
            "-k",
            "4",
            "--jobs",
            "2",
            "--cores",
            "1",
            "--memory",
            "1GiB",
            "--dashboard-address",
            ":0",
            "--wait-timeout",
            "60",
        ]
    )
    assert rc == 0
    assert record["compress"] == ("/shared/in.tif", "/shared/out.bq.zarr", {"k": 4})
    assert 2 in record["scale_jobs"] and record["n_workers"] >= 1 and record["sum"] == 6
    assert record["cluster_kwargs"]["cores"] == 1


def test_launch_print_address_mode(launch, monkeypatch, capsys):
    record = {}
    monkeypatch.setitem(sys.modules, "dask_jobqueue", _fake_jobqueue(record))

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "_block_until_interrupted", interrupted)
    rc = launch.main(
        ["--print-address", "--jobs", "1", "--cores", "1", "--memory", "1GiB", "--dashboard-address", ":0"]
    )
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    # stdout is exactly the address, so `ADDR=$(launch.py --print-address ... | head -n 1)` works
    assert len(out) == 1 and re.fullmatch(r"(tcp|inproc)://\S+", out[0]), out


# --------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions():
    lines, buf = [], ""
    for raw in (K8S / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    return lines


def test_dockerfile_base_copy_and_pip_install_dot():
    ins = _dockerfile_instructions()
    assert ins[0].split()[:2] == ["FROM", "python:3.11-slim"]
    assert any(i.split()[0] == "COPY" and i.split()[1] == "." for i in ins), "repo root not copied"
    runs = [i for i in ins if i.startswith("RUN ")]
    pip_runs = [r for r in runs if "pip install" in r]
    assert pip_runs, "no RUN pip install"
    # `pip install .` (the repo, built from the root context), plus dask[distributed...]
    assert any("." in r.split("pip install", 1)[1].split() for r in pip_runs)
    assert any(re.search(r"dask\[[^\]]*distributed", r) for r in pip_runs)
    entry = " ".join(i for i in ins if i.split()[0] in {"CMD", "ENTRYPOINT"})
    assert '"dask", "worker"' in entry


def test_dockerignore_keeps_what_pip_install_needs():
    # pip install . needs the package, pyproject.toml and README.md in the context
    ignore = K8S / "Dockerfile.dockerignore"
    patterns = {l.strip() for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")}
    assert not patterns & {"bigquant", "pyproject.toml", "README.md", "*", "**"}


def test_image_tag_consistent_between_readme_and_manifest():
    readme = (K8S / "README.md").read_text()
    m = re.search(r"docker build -f cluster/kubernetes/Dockerfile -t (\S+) \.", readme)
    assert m, "README lacks the repo-root docker build command"
    assert _container("worker")["image"] == m.group(1)


# ----------------------------------------------------------------------- READMEs

README_MUST_MENTION = {
    # overview: the three recipes, how to point bigquant at a cluster, the dashboard,
    # the shared-path rule and the version rule
    "cluster/README.md": [
        "plain/",
        "slurm/",
        "kubernetes/",
        "--scheduler tcp://",
        "DASK_SCHEDULER_ADDRESS",
        ":8787",
        "shared file system",
        "same versions",
        "bigquant compress",
    ],
    # plain hosts: both scripts, the dask commands they wrap, and the bigquant call
    "cluster/plain/README.md": [
        "start-scheduler.sh",
        "start-worker.sh",
        "dask scheduler",
        "dask worker tcp://",
        "--memory-limit",
        "--local-directory",
        "--nthreads",
        "bigquant compress",
        "--scheduler tcp://",
    ],
    # SLURM: the launcher, its two modes, and its dependency
    "cluster/slurm/README.md": [
        "launch.py",
        "SLURMCluster",
        "dask-jobqueue",
        "--print-address",
        "--partition",
        "--account",
        "--walltime",
        "--jobs",
        "bigquant compress",
        "--scheduler",
    ],
    # Kubernetes: operator install, repo-root image build, apply, run, dashboard
    "cluster/kubernetes/README.md": [
        "dask-kubernetes-operator",
        "docker build -f cluster/kubernetes/Dockerfile -t bigquant:latest .",
        "kubectl apply -f cluster/kubernetes/daskcluster.yaml",
        "ReadWriteMany",
        "/data",
        "bigquant compress",
        "kubectl port-forward",
        "kubernetes.dask.org/v1",
    ],
}


def test_every_readme_has_expectations():
    # a README added under cluster/ must get an entry in README_MUST_MENTION
    assert {_rel(p) for p in README_FILES} == set(README_MUST_MENTION)


@pytest.mark.parametrize("rel", sorted(README_MUST_MENTION))
def test_readme_mentions_its_commands(rel):
    # One case per README, each with the commands/facts a user of that recipe needs.
    path = ROOT / rel
    assert path.is_file(), rel
    text = path.read_text().replace("**", "")
    missing = [s for s in README_MUST_MENTION[rel] if s not in text]
    assert not missing, f"{rel} does not mention {missing}"


@pytest.mark.parametrize("path", README_FILES, ids=_rel)
def test_readme_relative_links_resolve(path):
    # One case per README: relative markdown links (e.g. plain/README.md) must exist.
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        assert (path.parent / target).exists(), f"{_rel(path)} links to missing {target}"
