"""Benchmark: `gaelp-bayes fit` then `gaelp-bayes report` on the example world.

The fit/report issue's budget is 5 minutes on 2 cores at 20,000 persons for
both commands together. Each repeat runs the two commands as a user would (a
fresh process each, so JAX compilation and imports are paid every time) on a
world generated once. The baseline in the same run is the time of
`gaelp-bayes validate` on the same files (reading and checking the input
once), so the ratio says how much of the time is modelling rather than I/O.

    python benchmarks/fit_report_bench.py --persons 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "gaelp_bayes.cli.main"]


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([*CLI, *args], capture_output=True, text=True)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return took


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=None, help="passed to fit --models (default: all)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fit-report-bench-"))
    try:
        data = tmp / "data"
        _run(
            [
                "example-data",
                str(data),
                "--persons",
                str(args.persons),
                "--days",
                str(args.days),
                "--seed",
                str(args.seed),
                "--quiet",
            ]
        )
        ev, au = str(data / "events.parquet"), str(data / "auctions.parquet")
        fits, reports, validates = [], [], []
        models: list[str] = []
        for r in range(args.repeat):
            validates.append(_run(["validate", ev, "--auctions", au]))
            out = tmp / f"bundle{r}"
            fit_args = ["fit", ev, "--auctions", au, "--out", str(out), "--seed", str(r)]
            if args.models:
                fit_args += ["--models", args.models]
            fits.append(_run([*fit_args, "--quiet"]))
            reports.append(_run(["report", str(out), "--out", str(tmp / f"r{r}.html")]))
            models = json.loads((out / "manifest.json").read_text())["models"]
        f, rep, v = (statistics.median(x) for x in (fits, reports, validates))
        total = [a + b for a, b in zip(fits, reports, strict=True)]
        t = statistics.median(total)
        print(f"persons={args.persons} days={args.days} repeat={args.repeat} models={models}")
        print(f"fit    median {f:.1f} s (runs: {', '.join(f'{x:.1f}' for x in fits)})")
        print(f"report median {rep:.1f} s (runs: {', '.join(f'{x:.1f}' for x in reports)})")
        print(f"fit+report median {t:.1f} s; ratio to the 300 s budget = {t / 300:.2f}")
        print(f"validate baseline median {v:.1f} s; ratio fit+report/validate = {t / v:.1f}x")
        return {"fit_s": f, "report_s": rep, "total_s": t, "validate_s": v}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
