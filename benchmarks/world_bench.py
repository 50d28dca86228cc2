"""Benchmark: generating the example world (`gaelp-bayes example-data`).

The issue's budget is 100,000 persons in under a minute on 2 cores. The
baseline measured in the same run is the time to only write the same tables
(Parquet), i.e. the I/O floor of any generator producing these files.

    python benchmarks/world_bench.py --persons 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from gaelp_bayes.world import get_world, make_world, write_world
from gaelp_bayes.world.build import _POPULATION_CACHE


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--world", default="parental-controls")
    args = ap.parse_args(argv)
    spec = get_world(args.world)
    gen, write_only = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            _POPULATION_CACHE.clear()  # a fresh process pays for the truth population too
            t0 = time.perf_counter()
            w = make_world(spec, persons=args.persons, days=args.days, seed=r)
            write_world(w, Path(tmp) / f"w{r}")
            gen.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pq.write_table(w.events, Path(tmp) / "e.parquet")
            pq.write_table(w.auctions, Path(tmp) / "a.parquet")
            write_only.append(time.perf_counter() - t0)
    g, b = statistics.median(gen), statistics.median(write_only)
    print(f"persons={args.persons} days={args.days} repeat={args.repeat}")
    print(f"events rows={w.events.num_rows:,} auctions rows={w.auctions.num_rows:,}")
    print(f"generate+write median {g:.1f} s (runs: {', '.join(f'{x:.1f}' for x in gen)})")
    print(f"write-only baseline median {b:.2f} s; ratio generate/write-only = {g / b:.1f}x")
    print(f"ratio to the 60 s budget = {g / 60:.2f}")
    return {"generate_s": g, "write_only_s": b}


if __name__ == "__main__":
    main()
