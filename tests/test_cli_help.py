"""The command line's help, usage errors and summary numbers, and the README agreeing with --help."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import pytest

from bigquant import report
from bigquant.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("compress", "fit", "decode", "info", "preview")
RUNNING = ("compress", "fit", "decode", "preview")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> list[set[str]]:
    """The option strings of each optional argument (one set per action), -h/--help left out."""
    return [set(a.option_strings) for a in parser._actions if a.option_strings and "--help" not in a.option_strings]


def _help(command: str, capsys) -> str:
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_groups_examples_and_exit_statuses(command, capsys):
    text = _help(command, capsys)
    examples = text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert examples and all(line.strip().startswith("bigquant ") for line in examples), text
    assert any(line.strip().startswith(f"bigquant {command} ") for line in examples)
    for status in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {status}" in text.split("exit status:", 1)[1]
    groups = re.findall(r"^([a-z][a-z ]+):$", text, flags=re.M)
    assert "diagnostics" in groups and "input" in groups
    if command in RUNNING:
        assert {"output", "memory and cluster"} <= set(groups)
        assert "64MB (the least)" in text  # the size units of --memory-limit
    # no flat list: every option but --help sits in a named group
    assert re.search(r"^options:\n  -h, --help .*\n\n", text, flags=re.M), text


def test_choices_outputs_and_quiet_texts(capsys):
    decode = _help("decode", capsys)
    assert "--compression {zlib,zstd,lzw,none}" in decode
    for ext in (".tif", ".zarr", ".ome.zarr", ".png", ".jpg"):
        assert ext in decode
    assert "--method {auto,histogram,pixels}" in _help("compress", capsys)
    preview = _help("preview", capsys)
    quiet = preview.split("-q, --quiet", 1)[1].split("\n  -", 1)[0]
    assert "summary" not in quiet and "wrote PNG" in quiet  # preview prints no summary


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["compress", "x.png", "--seed", "-1"], "--seed"),  # a negative seed
        (["compress", "x.png", "--workers", "0"], "--workers"),  # no workers
        (["compress", "x.png", "--chunks", "0,0"], "--chunks"),  # an empty chunk
        (["decode", "s.bq.zarr", "-o", "r.tif", "--compression", "jpeg"], "--compression"),  # no such codec
        (["decode", "s.bq.zarr"], None),  # a required option missing
        (["compress", "x.png", "--frobnicate"], None),  # an unknown option
    ],
)
def test_usage_errors_are_one_line(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    prog = f"bigquant {argv[0]}"
    assert lines[0].startswith(f"{prog}: error: ") and lines[0].endswith(f"(see {prog} --help)")
    if flag:
        assert f"argument {flag}" in lines[0]
    elif "--frobnicate" in argv:
        assert "unrecognized arguments: --frobnicate" in lines[0]
    else:
        assert "the following arguments are required: -o/--output" in lines[0]


def test_memory_limit_64mb_is_accepted_63mb_refused(tmp_path, china, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "c.tif", china)
    assert main(["compress", str(tmp_path / "c.tif"), "-k", "2", "--memory-limit", "64MB", "-q"]) == 0
    assert main(["compress", str(tmp_path / "c.tif"), "-k", "2", "--memory-limit", "63MB", "--overwrite"]) == 2
    assert "below the minimum of 64MB" in capsys.readouterr().err


# --- the README and docs/cli.md say what --help says ---------------------------------------------

_OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def _table_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not set(line) <= set("|- ")
    ]


def _opts(cell: str) -> set[str]:
    return {m for code in re.findall(r"`([^`]*)`", cell) for m in _OPTION.findall(code)}


def _readme_options() -> dict[str, set[str]]:
    """Each command's options as the README's Commands section lists them."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    compress_part, rest = section.split("The other commands:", 1)
    others, running = rest.split("Every command but `info` also takes:", 1)
    found = {"compress": set().union(*(_opts(r[0]) for r in _table_rows(compress_part)))}
    for row in _table_rows(others)[1:]:
        command = re.findall(r"`(\w+)", row[0])[0]
        found[command] = _opts(row[0]) | _opts(row[1])
    shared = set().union(*(_opts(r[0]) for r in _table_rows(running)))
    for command in RUNNING:
        found[command] |= shared
    return found


def _doc_options() -> dict[str, set[str]]:
    """Each command's options as docs/cli.md's tables list them (first column)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    sections = {s.split("\n", 1)[0].strip(): s for s in text.split("\n## ")[1:]}
    shared = set().union(*(_opts(r[0]) for r in _table_rows(sections["Options of every running command"])))
    found = {}
    for command in COMMANDS:
        own = set().union(*(_opts(r[0]) for r in _table_rows(sections[command])))
        found[command] = own | (shared if command in RUNNING else set())
    return found


@pytest.mark.parametrize("source", [_readme_options, _doc_options], ids=["README", "docs-cli"])
def test_documented_options_are_those_of_help(source):
    documented = source()
    for command, parser in _subparsers().items():
        actions = _options(parser)
        listed = documented[command]
        missing = [sorted(a) for a in actions if not a & listed]
        unknown = sorted(o for o in listed if not any(o in a for a in actions))
        assert not missing and not unknown, f"{command}: undocumented {missing}, not options {unknown}"


# --- the numbers of the summary --------------------------------------------------------------------


def test_summary_ratio_against_the_input_file(tmp_path, capsys):
    from sklearn.datasets import load_sample_image

    import bigquant

    src = tmp_path / "china.jpg"
    import imageio.v3 as iio

    iio.imwrite(src, load_sample_image("china.jpg"), quality=90)
    assert main(["compress", str(src), "-k", "8", "-q"]) == 0
    out = capsys.readouterr().out
    info = bigquant.open(tmp_path / "china.bq.zarr").info()
    line = next(l for l in out.splitlines() if l.strip().startswith("ratio"))
    raw, file = (float(v) for v in re.findall(r"([\d.]+):1", line))
    assert raw == pytest.approx(info["raw_bytes"] / info["store_bytes"], abs=0.05)
    assert file == pytest.approx(src.stat().st_size / info["store_bytes"], abs=0.005)
    assert "against the raw pixels" in line and "against the input file" in line


def test_info_names_the_fixed_width_size(tmp_path, china, capsys):
    import bigquant

    bigquant.compress(china, tmp_path / "s.bq.zarr", k=16)
    assert main(["info", str(tmp_path / "s.bq.zarr")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "fixed-width" in l)
    n = 427 * 640
    assert f"{n * 4 + 24 * 16:,} bits = N·⌈log2 K⌉ + bits·K" in line  # 4 bits a label, 24 a colour


def test_psnr_gain_of_a_geometric_tail():
    # each iteration lowers the error by a factor whose log halves: gains 1, 1/2, 1/4 ... dB
    gains = [0.5**i for i in range(11)]
    inertia = [1e6]
    for g in gains:
        inertia.append(inertia[-1] / 10 ** (g / 10))
    gained, more = report.psnr_gain(inertia)
    assert gained == pytest.approx(sum(gains[1:]), rel=1e-9)  # the last 10 gains
    assert more == pytest.approx(sum(0.5**i for i in range(11, 200)), rel=1e-6)  # the rest of the series


@pytest.mark.parametrize(
    "meta, has, lacks",
    [
        # the usual max_iter stop: still moving a little, gaining nothing worth another run
        (
            {
                "stopped_by": "max_iter",
                "shift_history": [0.3] * 20,
                "inertia_history": [1e6 * (1 - 1e-5 * i) for i in range(20)],
            },
            ["still moved by up to 0.3", "more would change PSNR by about"],
            ["--max-iter"],
        ),
        # stopped while still gaining a lot: then a larger --max-iter is worth it
        (
            {
                "stopped_by": "max_iter",
                "shift_history": [2.0] * 20,
                "inertia_history": [1e6 * 0.97**i for i in range(20)],
            },
            ["still improving", "a larger --max-iter would add"],
            [],
        ),
        ({"stopped_by": "inertia", "tol": 1e-4}, ["less than 1e-06 of the error each (5 in a row"], ["--max-iter"]),
        ({"stopped_by": "shift", "shift_history": [1.0, 0.004]}, ["settled", "0.004"], ["--max-iter"]),
    ],
)
def test_stop_line_says_what_the_stop_means(meta, has, lacks):
    text = report.stop_line(meta)
    assert text is not None
    for words in has:
        assert words in text, text
    for words in lacks:
        assert words not in text, text


def test_stop_line_none_for_a_fixed_codebook():
    assert report.stop_line({"stopped_by": "fixed codebook"}) is None
    assert math.isfinite(report.psnr_gain([3.0, 2.0, 1.5])[0])


class _FakeClient:
    """What describe() asks of a distributed.Client."""

    class scheduler:  # noqa: N801 - an attribute of the client, as distributed names it
        address = "tcp://127.0.0.1:8786"

    dashboard_link = "http://127.0.0.1:8787/status"

    def nthreads(self) -> dict:
        return {"tcp://w1": 1, "tcp://w2": 1}


@pytest.mark.parametrize("bokeh", [True, False])
def test_dashboard_link_only_with_bokeh(bokeh, monkeypatch):
    from bigquant.cli import _cluster

    monkeypatch.setattr(_cluster, "has_bokeh", lambda: bokeh)
    line = _cluster.describe(_FakeClient(), local=True)
    assert line.startswith("dask: tcp://127.0.0.1:8786, 2 workers, 2 threads; ")
    assert ("dashboard http://127.0.0.1:8787/status" in line) == bokeh
    assert ("no dashboard (it needs bokeh on the scheduler)" in line) == (not bokeh)
