"""Check ``bigquant info``'s estimate of a compress against real runs of it.

Usage::

    python benchmarks/check_estimates.py IMAGE:K [IMAGE:K ...]

For each image and K: ``bigquant info IMAGE --json -k K`` (the estimate), then ``bigquant compress
IMAGE -k K`` as a separate process under ``/usr/bin/time -v``, then ``bigquant info STORE --json``
for the iterations. Prints one JSON line per run (estimated and real wall time and peak RSS,
passes, iterations) and a Markdown table of the errors. Outputs go to benchmarks/out/estimates/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import OUT, bigquant_cmd, md_table, timed_run  # noqa: E402


def info(path: str, *args: str) -> dict:
    out = subprocess.run([*bigquant_cmd(), "info", path, "--json", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    out = OUT / "estimates"
    out.mkdir(parents=True, exist_ok=True)
    print(f"# check_estimates: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rows = []
    for spec in sys.argv[1:]:
        path, k = spec.rsplit(":", 1)
        est = info(path, "-k", k)["estimate"]
        store = out / f"{Path(path).name}.{k}.bq.zarr"
        res = timed_run([*bigquant_cmd(), "compress", path, "-k", k, "-o", str(store), "--overwrite", "-q"])
        if res["rc"] != 0:
            print(f"{spec}: compress failed")
            return 1
        iters = info(str(store))["iterations"]
        passes = iters + 2
        lo = est["time_s"][0]
        at_real = lo + (passes - 3) * est["pass_s"] if est["path"] == "pixels" else est["time_s"][1]
        peak = est["peak_bytes"] / 2**20
        print(
            json.dumps(
                {
                    "input": spec,
                    "estimate": est,
                    "wall_s": res["wall_s"],
                    "rss_mib": res["rss_mib"],
                    "iterations": iters,
                }
            ),
            flush=True,
        )
        rows.append(
            [
                Path(path).name,
                k,
                est["path"],
                f"{at_real:.1f}",
                f"{res['wall_s']:.1f}",
                iters,
                f"{100 * (at_real / res['wall_s'] - 1):+.0f} %",
                f"{peak:.0f}",
                f"{res['rss_mib']:.0f}",
                f"{100 * (peak / res['rss_mib'] - 1):+.0f} %",
            ]
        )
    print(
        md_table(
            [
                "input",
                "K",
                "path",
                "estimate s (at the real passes)",
                "real s",
                "iterations",
                "time error",
                "peak estimate MiB",
                "real MiB",
                "memory error",
            ],
            rows,
            right=set(range(1, 10)),
        )
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
