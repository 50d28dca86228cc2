"""Benchmark: validating canonical events with gaelp_bayes.io (DuckDB) vs plain pandas.

Writes a synthetic, valid ``events`` table of ``--rows`` rows as Parquet and as
CSV into a temporary folder, then times, ``--repeat`` times each:

* ``read_events(path, mode="strict")`` (DuckDB engine: every contract rule,
  row numbers, duplicate check, report), and
* a plain pandas read-and-check of the same file: ``pd.read_csv`` (all columns
  as text) or ``pd.read_parquet``, then vectorised versions of the same checks
  (timestamps parsed to UTC, event_type, device_id, channel on
  impressions/clicks, cost/value numeric and >= 0, duplicate event_id) and
  the canonical columns. It builds no rejects, row lists or report, so it is
  a lower bound for a pandas implementation.

Prints the median seconds of each and the ratio pandas / DuckDB.

Usage::

    python benchmarks/io_bench.py                    # 5,000,000 rows, 3 repeats
    python benchmarks/io_bench.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

EVENT_TYPES = np.array(["impression", "click", "visit", "conversion"])
CHANNELS = np.array(["search", "social", "display", "video", "email"])


def synthetic_events(rows: int, seed: int = 0) -> pa.Table:
    """A valid canonical events table (timestamps as ISO-8601 text with Z)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    ts = start + rng.integers(0, 60 * 86_400 * 1_000_000, rows)
    et = EVENT_TYPES[rng.choice(4, rows, p=[0.6, 0.2, 0.15, 0.05])]
    paid = np.isin(et, ["impression", "click"])
    has_uid = rng.random(rows) < 0.3
    uid = np.char.add("u", rng.integers(0, max(rows // 20, 1), rows).astype(str))
    iso = np.datetime_as_string(ts.astype("datetime64[us]"), unit="us")
    return pa.table(
        {
            "event_id": np.char.add("e", np.arange(rows).astype(str)),
            "device_id": np.char.add("d", rng.integers(0, max(rows // 10, 1), rows).astype(str)),
            "timestamp": np.char.add(iso, "Z"),
            "event_type": et,
            "channel": pa.array(CHANNELS[rng.integers(0, 5, rows)]),
            "user_id": pa.array(np.where(has_uid, uid, None)),
            "cost": pa.array(np.where(paid, rng.random(rows), np.nan), from_pandas=True),
            "value": pa.array(np.where(et == "conversion", 50.0, np.nan), from_pandas=True),
            "device_type": np.array(["mobile", "desktop", "tablet"])[rng.integers(0, 3, rows)],
        }
    )


def pandas_check(df: pd.DataFrame) -> pd.DataFrame:
    """Vectorised contract checks in plain pandas; returns the valid rows."""
    text = {c: df[c].astype("string") for c in ("device_id", "event_type", "channel")}
    ts = df["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts, utc=True, format="ISO8601", errors="coerce")
    bad = ts.isna()
    bad |= text["device_id"].isna() | (text["device_id"].str.strip() == "")
    bad |= ~text["event_type"].isin(list(EVENT_TYPES))
    paid = text["event_type"].isin(["impression", "click"])
    bad |= paid & (text["channel"].isna() | (text["channel"].str.strip() == ""))
    out = df.assign(timestamp=ts)
    for col in ("cost", "value"):
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        present = raw.notna() & (raw.astype("string") != "")
        bad |= (present & num.isna()) | (num < 0)
        out[col] = num
    keep = ~bad
    dup = out["event_id"].notna() & out["event_id"].duplicated() & keep
    return out[keep & ~dup].reset_index(drop=True)


def time_it(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of synthetic events")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from gaelp_bayes.io import read_events

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gaelp-io-bench-") as tmp:
        t0 = time.perf_counter()
        table = synthetic_events(args.rows, args.seed)
        paths = {"parquet": Path(tmp) / "events.parquet", "csv": Path(tmp) / "events.csv"}
        pq.write_table(table, paths["parquet"])
        pcsv.write_csv(table, paths["csv"])
        del table
        print(f"wrote {args.rows:,} events as Parquet and CSV in {time.perf_counter() - t0:.1f} s")

        readers = {
            "parquet": lambda p: pd.read_parquet(p),
            "csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""]),
        }
        print(f"{'format':<8} {'duckdb s':>10} {'pandas s':>10} {'pandas/duckdb':>14}")
        for fmt, path in paths.items():
            kept = len(read_events(path).table)  # warm-up and sanity check
            assert kept == args.rows, (kept, args.rows)
            read = readers[fmt]
            assert len(pandas_check(read(path))) == args.rows  # same verdict
            ddb = time_it(lambda path=path: read_events(path, mode="strict"), args.repeat)
            pdt = time_it(lambda path=path, read=read: pandas_check(read(path)), args.repeat)
            results[f"{fmt}_duckdb_s"], results[f"{fmt}_pandas_s"] = ddb, pdt
            print(f"{fmt:<8} {ddb:>10.2f} {pdt:>10.2f} {pdt / ddb:>14.2f}")
    return results


if __name__ == "__main__":
    main()
