"""Helpers shared by the benchmark scripts: timed subprocesses and Markdown tables.

Not a benchmark itself.  Every measured step runs in its own process under GNU time
(``/usr/bin/time -v``), so wall time and peak resident memory (``Maximum resident set size``)
are those of that process and its children alone.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = HERE / "out"
GNU_TIME = "/usr/bin/time"


def python() -> str:
    """The interpreter running the benchmarks (used for every Python subprocess)."""
    return sys.executable or "python3"


def bigquant_cmd() -> list[str]:
    """How to start the bigquant CLI: the ``bigquant`` script next to this interpreter or on
    PATH, else ``python -m bigquant.cli`` (the console script's target)."""
    exe = Path(python()).with_name("bigquant")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("bigquant")
    if found:
        return [found]
    return [python(), "-c", "import sys; from bigquant.cli import main; sys.exit(main())"]


def _parse_clock(text: str) -> float:
    """'1:02:03' or '1:02.34' (GNU time's h:mm:ss / m:ss.cc) -> seconds."""
    secs = 0.0
    for part in text.strip().split(":"):
        secs = secs * 60 + float(part)
    return secs


def parse_gnu_time(text: str) -> dict:
    """Pick the useful fields out of ``/usr/bin/time -v`` output."""
    out: dict = {}
    pats = {
        "rss_kib": r"Maximum resident set size \(kbytes\):\s*(\d+)",
        "user_s": r"User time \(seconds\):\s*([\d.]+)",
        "sys_s": r"System time \(seconds\):\s*([\d.]+)",
        "cpu_pct": r"Percent of CPU this job got:\s*(\d+)%",
        "exit_status": r"Exit status:\s*(-?\d+)",
        "wall_gnu_s": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\):\s*([\d:.]+)",
        "major_faults": r"Major \(requiring I/O\) page faults:\s*(\d+)",
    }
    for key, pat in pats.items():
        m = re.search(pat, text)
        if not m:
            continue
        val = m.group(1)
        if key == "wall_gnu_s":
            out[key] = _parse_clock(val)
        elif key in ("user_s", "sys_s"):
            out[key] = float(val)
        else:
            out[key] = int(val)
    if "rss_kib" in out:
        out["rss_mib"] = out["rss_kib"] / 1024.0
    return out


def timed_run(
    cmd: list[str],
    *,
    log: Path | str | None = None,
    env: dict | None = None,
    timeout: float | None = None,
    cwd: Path | str | None = None,
) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``; return wall time, peak RSS and status.

    stdout and stderr of the command go to ``log`` (or are discarded).  The wall time is
    measured here with ``time.perf_counter`` (GNU time's own figure is kept as
    ``wall_gnu_s``).  On timeout the whole process group is killed and ``timed_out`` is True.

    Returns a dict with keys ``rc``, ``wall_s``, ``rss_mib``, ``cpu_pct``, ``user_s``,
    ``sys_s``, ``timed_out``, ``cmd``, ``log``.
    """
    if not os.path.exists(GNU_TIME):
        raise SystemExit(f"{GNU_TIME} not found: install GNU time (apt-get install time)")
    cmd = [str(c) for c in cmd]
    fd, time_file = tempfile.mkstemp(suffix=".gnutime")
    os.close(fd)
    logfh = open(log, "w") if log else subprocess.DEVNULL
    res: dict = {"cmd": cmd, "log": str(log) if log else None, "timed_out": False}
    try:
        if log:
            logfh.write("$ " + " ".join(cmd) + "\n")
            logfh.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "-v", "-o", time_file, *cmd],
            stdout=logfh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            res["timed_out"] = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        res["wall_s"] = time.perf_counter() - t0
        res["rc"] = proc.returncode
        with open(time_file) as fh:
            res.update(parse_gnu_time(fh.read()))
    finally:
        if log:
            logfh.close()
        os.unlink(time_file)
    if "exit_status" in res and not res["timed_out"]:
        res["rc"] = res["exit_status"]
    return res


def tail(path: Path | str | None, n: int = 15) -> str:
    """The last ``n`` lines of a log file (for error messages)."""
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as fh:
        return "".join(fh.readlines()[-n:])


def fmt(x, nd: int = 2) -> str:
    """Format a number for a table: '' for None, 'inf' for infinities."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf"
        return f"{x:.{nd}f}"
    return str(x)


def md_table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A GitHub Markdown table; columns whose index is in ``right`` are right-aligned
    (default: every column whose cells are all numbers)."""
    if right is None:
        right = {
            i
            for i in range(len(headers))
            if rows and all(isinstance(r[i], (int, float)) or r[i] in ("", None) for r in rows)
        }
    cells = [[fmt(c) for c in r] for r in rows]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of 8-bit data: 10·log10(255² / MSE)."""
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def mse_uint8(a, b, block_rows: int = 512) -> float:
    """Mean squared error over all pixels and channels of two uint8 arrays of equal shape,
    computed in blocks of rows so that large images need little extra memory."""
    import numpy as np

    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    total = 0
    for r in range(0, a.shape[0], block_rows):
        d = a[r : r + block_rows].astype(np.int32) - b[r : r + block_rows].astype(np.int32)
        total += int((d * d).sum(dtype=np.int64))
    return total / a.size


def load_rgb(path: Path | str):
    """Decode an image file to an (H, W, 3) uint8 array with a single copy in memory.

    Uses imagecodecs (libjpeg-turbo/libpng; identical pixels to Pillow's for the Debian JPEGs)
    and falls back to Pillow.  Grey is repeated to three channels and alpha is dropped, as
    Pillow's ``convert('RGB')`` does.
    """
    import numpy as np

    try:
        import imagecodecs

        a = imagecodecs.imread(str(path))
    except Exception:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"))
    if a.dtype != np.uint8:
        raise ValueError(f"{path}: {a.dtype} images are not supported here")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        a = np.ascontiguousarray(a[:, :, :3])
    elif a.shape[2] == 2:  # grey + alpha
        a = np.repeat(a[:, :, :1], 3, axis=2)
    return a
